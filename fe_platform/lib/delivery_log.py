"""The delivery log: one record per delivery outcome, append-only, in the lake's `deliveries/` zone.

A delivery is a landing key with its content: the same name with other bytes is a new delivery. Each
record is one small immutable Parquet object whose name says its feed, partition, landing key (as a
digest), the landing object's fingerprint (size and ETag or mtime), its sha256 and its outcome:

    deliveries/<feed>/<partition or none>/<key digest>_<fingerprint>_<sha256[:16]>_<outcome>.parquet

So what was ingested is known from a listing alone (`LogIndex`), without reading a record or hashing a
landing file; and the name is the same whoever writes it, so a delivery is recorded once, whatever
happens (two runs, a re-run after a crash).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fe_platform.lib.lake import Lake, LakeObject

if TYPE_CHECKING:
    import pyarrow as pa

OUTCOMES = ("loaded", "rejected", "duplicate")
ANY = object()  # a read_delivery_log filter that matches everything


def delivery_log_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("feed", pa.string()),
        ("landing_key", pa.string()),
        ("partition", pa.string()),
        ("sha256", pa.string()),
        ("outcome", pa.string()),
        ("rows_in", pa.int64()),
        ("rows_valid", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("reason", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("raw_key", pa.string()),
        ("drift_columns", pa.string()),
        ("rule_counts", pa.string()),  # JSON {rule: rows}
        ("bytes", pa.int64()),
        ("seconds", pa.float64()),
        ("fingerprint", pa.string()),
    ])


@dataclass
class DeliveryRecord:
    """One line of the delivery log."""

    feed: str
    landing_key: str
    partition: str | None
    sha256: str
    outcome: str  # loaded | rejected | duplicate
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    ingested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    raw_key: str | None = None
    drift_columns: str | None = None
    rule_counts: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    fingerprint: str = ""

    @property
    def rules(self) -> dict[str, int]:
        return json.loads(self.rule_counts) if self.rule_counts else {}

    @property
    def object_key(self) -> str:
        name = f"{key_digest(self.landing_key)}_{self.fingerprint or 'none'}_{self.sha256[:16]}_{self.outcome}"
        return f"deliveries/{self.feed}/{self.partition or 'none'}/{name}.parquet"


def key_digest(landing_key: str) -> str:
    """A landing key as a name part: a digest, so no landing file name reaches a log object's name."""
    return hashlib.sha256(landing_key.encode()).hexdigest()[:16]


def record_delivery(lake: Lake, record: DeliveryRecord) -> None:
    """Write the record (idempotent: the same delivery and outcome always have the same object)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([asdict(record)], schema=delivery_log_schema())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "record.parquet")
        pq.write_table(table, path)
        lake.put_file(path, record.object_key)


@dataclass(frozen=True)
class LogEntry:
    """What a record's object name says."""

    object_key: str
    feed: str
    partition: str | None
    key_digest: str
    fingerprint: str
    sha16: str
    outcome: str


def _entry(object_key: str) -> LogEntry | None:
    parts = object_key.split("/")
    if len(parts) != 4 or not parts[3].endswith(".parquet"):
        return None
    fields = parts[3].removesuffix(".parquet").split("_")
    if len(fields) != 4 or fields[3] not in OUTCOMES:
        return None
    partition = None if parts[2] == "none" else parts[2]
    return LogEntry(object_key, parts[1], partition, *fields)


class LogIndex:
    """The delivery log of some feeds as a listing: answers "is this landing object known?"."""

    def __init__(self, entries: Iterable[LogEntry]):
        self.entries = list(entries)
        self._seen = {(e.feed, e.key_digest, e.fingerprint) for e in self.entries}
        self._added: dict[str, DeliveryRecord] = {}  # records added here, some perhaps not written yet

    @classmethod
    def of(cls, lake: Lake, feed: str | None = None) -> LogIndex:
        prefix = f"deliveries/{feed}/" if feed else "deliveries/"
        return cls(e for o in lake.list(prefix) if (e := _entry(o.key)))

    def add(self, record: DeliveryRecord) -> None:
        entry = _entry(record.object_key)
        self.entries.append(entry)
        self._seen.add((entry.feed, entry.key_digest, entry.fingerprint))
        self._added[entry.object_key] = record

    def records(self, lake: Lake, entries: Iterable[LogEntry]) -> list[DeliveryRecord]:
        """The records behind entries: those added here as they are, the others read from the log."""
        entries = list(entries)
        added = [self._added[e.object_key] for e in entries if e.object_key in self._added]
        return sorted(added + read_records(lake, [e for e in entries if e.object_key not in self._added]),
                      key=lambda r: r.ingested_at)

    def knows(self, feed: str, obj: LakeObject) -> bool:
        """This landing object, as it is now (same fingerprint), has a record."""
        return (feed, key_digest(obj.key), obj.fingerprint) in self._seen

    def entry_for(self, feed: str, obj: LakeObject) -> LogEntry | None:
        digest = key_digest(obj.key)
        return next((e for e in reversed(self.entries)
                     if (e.feed, e.key_digest, e.fingerprint) == (feed, digest, obj.fingerprint)), None)

    def loaded_sha(self, feed: str, sha256: str) -> list[LogEntry]:
        return [e for e in self.entries if e.feed == feed and e.sha16 == sha256[:16] and e.outcome == "loaded"]


def read_records(lake: Lake, entries: Iterable[LogEntry]) -> list[DeliveryRecord]:
    """The records behind index entries, oldest first."""
    import pyarrow.dataset as ds

    paths = [lake.path(e.object_key) for e in entries]
    if not paths:
        return []
    # one dataset of the many small files: pyarrow reads them side by side (on S3 too), twice as fast as in turn
    table = ds.dataset(paths, schema=delivery_log_schema(), format="parquet", filesystem=lake.filesystem).to_table()
    return [DeliveryRecord(**row) for row in table.sort_by("ingested_at").to_pylist()]


def read_delivery_log(lake: Lake, feed: str | None = None, partition=ANY, sha256: str | None = None
                      ) -> list[DeliveryRecord]:
    """Records (of one feed, one partition — None for files that name none — or one content hash), oldest
    first."""
    if feed is not None and partition is not ANY:
        prefix = f"deliveries/{feed}/{partition or 'none'}/"
        entries = [e for o in lake.list(prefix) if (e := _entry(o.key))]
    else:
        entries = [e for e in LogIndex.of(lake, feed).entries
                   if partition is ANY or e.partition == (partition or None)]
    if sha256 is not None:
        entries = [e for e in entries if e.sha16 == sha256[:16]]
    records = read_records(lake, entries)
    return [r for r in records if sha256 is None or r.sha256 == sha256]


def delivery_log_table(lake: Lake) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist([asdict(r) for r in read_delivery_log(lake)], schema=delivery_log_schema())
