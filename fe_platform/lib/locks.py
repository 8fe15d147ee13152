"""Advisory file locks between processes on one machine: one writer of a home, one of a DuckDB file.

A lock is a `flock` on a file beside what it guards, so it dies with its process (a killed run holds
nothing). Within one process a lock is re-entrant: `fe-platform run` holds its home's lock while the runs
it executes take it again. The file records the holder's pid and command, for the message another
process shows while it waits or gives up.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_held: dict[tuple[str, int], int] = {}  # (path, mode) -> depth, in this process
_guard = threading.Lock()


class LockBusy(RuntimeError):
    """Another process holds the lock (and we were not to wait, or waited long enough)."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def file_lock(path: Path, what: str, wait_seconds: float = 0.0, shared: bool = False) -> Iterator[None]:
    """Hold `path` exclusively (or shared with other shared holders) for the block.

    Waits up to `wait_seconds` for another process to let go, then raises `LockBusy` naming `what` and
    the holder."""
    path = Path(path)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with _guard:
        for (held_path, held_mode), depth in _held.items():
            if held_path == str(path) and depth and (held_mode == fcntl.LOCK_EX or held_mode == mode):
                _held[(held_path, held_mode)] += 1
                reentrant = (held_path, held_mode)
                break
        else:
            reentrant = None
    if reentrant:
        try:
            yield
        finally:
            with _guard:
                _held[reentrant] -= 1
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{what} is in use by {_holder(path)}") from None
                time.sleep(0.2)
        if not shared:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:2])})".encode())
        with _guard:
            _held[(str(path), mode)] = 1
        try:
            yield
        finally:
            with _guard:
                _held[(str(path), mode)] = 0
    finally:
        os.close(fd)  # closing the descriptor releases the lock
