"""What every puller shares: its error, back-off, and publishing a landing file whole."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fe_platform.lib.lake import Lake

HASH_CHUNK = 4 << 20


class PullError(RuntimeError):
    """A pull failed. The message names the feed, the source (never a secret) and the problem."""

    def __init__(self, feed: str, source: str, problem: str):
        self.feed = feed
        self.source = source
        self.problem = problem
        super().__init__(f"{feed} pull from {source} failed: {problem}")


def backoff_wait(attempt: int, backoff: float, cap: float = 60.0) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): backoff, 2 x backoff, 4 x ..., capped."""
    return min(cap, backoff * 2 ** (attempt - 1))


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret of 3 characters or more replaced by `***`."""
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def publish_file(lake: Lake, path: Path, key: str) -> bool:
    """Put the finished local file `path` at `key` in one atomic put; False when `key` already holds
    these very bytes (then nothing is written, so an unchanged re-pull is no new delivery)."""
    if lake.exists(key) and lake.sha256(key) == _file_sha256(path):
        return False
    lake.put_file(path, key)
    return True


@contextmanager
def local_file(key: str) -> Iterator[Path]:
    """A local path to write the landing file `key` to before publishing it; removed afterwards, so a
    pull that fails half-way leaves nothing behind."""
    with tempfile.TemporaryDirectory(prefix="fe-pull-") as tmp:
        yield Path(tmp) / key.rsplit("/", 1)[-1]
