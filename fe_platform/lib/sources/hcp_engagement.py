"""Consume the HCP engagement stream (Kinesis) into landing files, buffered as Firehose does.

Every shard is read from its checkpoint and its records are buffered, one record a line as received
(a line break inside a record becomes a space: in JSON it can only be whitespace between tokens).
A shard's buffer becomes a landing file when it reaches `max_bytes` (default 5 MiB, uncompressed) or
`max_age` seconds (default 60, from its first record), whichever comes first, and when `consume`
returns:

    landing/hcp_engagement/HCP_ENGAGEMENT_<YYYYMMDD>_<HHMMSS>_<shard>_<n>.jsonl.gz

stamped with its close time (UTC), whose date is its partition. The consumer's keys only ever grow
(a close in the same second as a later-sorting key takes the next second), so a landing sensor
whose cursor is the last key it saw misses none, and a key is never written twice.

The checkpoint of a shard, the sequence number of the last record in a written file, lives in the
lake at `_state/hcp_engagement/<shard>.json` and moves only after that file is written: a consumer
that dies between the two re-reads those records next time (at least once into landing; the
warehouse keeps each event_id once) and loses none. A closed shard (split or merged) is read to its
end, and only then are its children read. One consumer at a time per stream: `consume(max_seconds)`
is one bounded invocation (a sensor tick), `consume(stop=event)` a long-running loop.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from fe_platform.lib.lake import Lake
from fe_platform.lib.sources.landing import PullError, backoff_wait

FEED = "hcp_engagement"
STATE_PREFIX = f"_state/{FEED}/"
DEFAULT_BUFFER_BYTES = 5 << 20
DEFAULT_BUFFER_SECONDS = 60.0
GZIP_LEVEL = 6
SHARD_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # it goes into landing and state keys
RETRIED_CODES = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException",
                           "KMSThrottlingException", "InternalFailure", "ServiceUnavailable", "ThrottlingException"})


@dataclass(frozen=True)
class LandedFile:
    key: str
    shard_id: str
    day: date  # the close date: the file's partition
    records: int
    bytes: int  # uncompressed
    last_sequence: str


@dataclass
class ConsumeReport:
    files: list[LandedFile] = field(default_factory=list)
    finished_shards: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    def by_day(self) -> dict[date, list[LandedFile]]:
        out: dict[date, list[LandedFile]] = {}
        for f in self.files:
            out.setdefault(f.day, []).append(f)
        return out


@dataclass
class Checkpoint:
    shard_id: str
    sequence_number: str | None = None  # the last record in a written file
    finished: bool = False  # read to its end: its children may be read
    files: int = 0


def landing_key(closed_at: datetime, shard_id: str, n: int) -> str:
    return (f"landing/{FEED}/HCP_ENGAGEMENT_{closed_at:%Y%m%d}_{closed_at:%H%M%S}_{checked_shard_id(shard_id)}_"
            f"{n:06d}.jsonl.gz")


def checkpoint_key(shard_id: str) -> str:
    return f"{STATE_PREFIX}{checked_shard_id(shard_id)}.json"


def checked_shard_id(shard_id: str) -> str:
    if not SHARD_ID.fullmatch(shard_id):
        raise ValueError(f"unexpected shard id {shard_id[:80]!r}")
    return shard_id


def record_line(data: bytes) -> bytes:
    return data.rstrip(b"\r\n").replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"


class _ExpiredIterator(Exception):
    pass


@dataclass
class _Shard:
    checkpoint: Checkpoint
    ending_sequence: int | None  # set once the shard is closed
    last_read: str | None = None  # the last record buffered or written
    iterator: str | None = None
    next_poll: float = 0.0
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    opened_at: float = 0.0
    caught_up: bool = False  # the last GetRecords returned nothing and the shard was not behind

    @property
    def shard_id(self) -> str:
        return self.checkpoint.shard_id

    def read_to_end(self) -> bool:
        return self.ending_sequence is not None and int(self.last_read or 0) >= self.ending_sequence


class EngagementConsumer:
    """Reads stream `stream` through the boto3 Kinesis client `kinesis` into `lake` (see the module)."""

    def __init__(self, lake: Lake, kinesis, stream: str, *, max_bytes: int = DEFAULT_BUFFER_BYTES,
                 max_age: float = DEFAULT_BUFFER_SECONDS, poll_interval: float = 1.0, min_call_interval: float = 0.2,
                 discover_interval: float = 30.0, limit: int = 10_000, attempts: int = 5, backoff: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep):
        if max_bytes < 1 or max_age <= 0 or attempts < 1:
            raise ValueError("max_bytes, max_age and attempts must be positive")
        self.lake, self.kinesis, self.stream = lake, kinesis, stream
        self.max_bytes, self.max_age, self.limit = max_bytes, max_age, limit
        self.poll_interval, self.min_call_interval, self.discover_interval = (
            poll_interval, min_call_interval, discover_interval)
        self.attempts, self.backoff = attempts, backoff
        self.clock, self.now, self.sleep = clock, now, sleep
        self.active: dict[str, _Shard] = {}
        self.finished: set[str] = set()
        self.last_key = ""
        self.source = f"kinesis stream {stream}"

    # --- the loop --------------------------------------------------------------------------------
    def consume(self, max_seconds: float | None = None, stop: threading.Event | None = None,
                until_caught_up: bool = False) -> ConsumeReport:
        """Read until `max_seconds` have passed, `stop` is set or (with `until_caught_up`) every shard is
        read up to its latest record, then write what is buffered. With none of them, read until every
        shard is closed and read. Raises PullError when the stream fails."""
        report = ConsumeReport()
        self.active, self.finished = {}, set()
        started = self.clock()
        deadline = None if max_seconds is None else started + max_seconds
        self._discover()
        next_discovery = started + self.discover_interval
        while not self._over(deadline, stop):
            progressed = False
            for shard in list(self.active.values()):
                if self.clock() >= shard.next_poll:
                    progressed |= self._poll(shard, report)
            for shard in list(self.active.values()):
                if shard.lines and self.clock() - shard.opened_at >= self.max_age:
                    self._close(shard, report)
            changed = self._finish_read_shards(report)
            if changed or self.clock() >= next_discovery:
                self._discover()
                next_discovery = self.clock() + self.discover_interval
            if not changed and deadline is None and stop is None and not self.active:
                break
            if not changed and until_caught_up and all(s.caught_up for s in self.active.values()):
                # Caught up with the shards we know: look again for closed shards and new children first.
                known = set(self.active)
                self._discover()
                next_discovery = self.clock() + self.discover_interval
                if not self._finish_read_shards(report) and set(self.active) == known:
                    break
                continue
            if not progressed and not changed:
                self._wait(deadline, stop)
        for shard in list(self.active.values()):
            if shard.lines:
                self._close(shard, report)
        return report

    def _over(self, deadline: float | None, stop: threading.Event | None) -> bool:
        return (deadline is not None and self.clock() >= deadline) or (stop is not None and stop.is_set())

    def _wait(self, deadline: float | None, stop: threading.Event | None) -> None:
        now = self.clock()
        until = [s.next_poll for s in self.active.values()]
        until += [s.opened_at + self.max_age for s in self.active.values() if s.lines]
        until += [deadline] if deadline is not None else []
        seconds = max(0.01, min(until, default=now + self.poll_interval) - now)
        seconds = min(seconds, self.poll_interval)
        if stop is not None:
            stop.wait(seconds)
        else:
            self.sleep(seconds)

    # --- shards ----------------------------------------------------------------------------------
    def _list_shards(self) -> list[dict]:
        shards, token = [], None
        while True:
            args = {"NextToken": token} if token else {"StreamName": self.stream}
            page = self._call(self.kinesis.list_shards, **args)
            shards += page.get("Shards", [])
            token = page.get("NextToken")
            if not token:
                return shards

    def _checkpoints(self) -> dict[str, Checkpoint]:
        out = {}
        for obj in self.lake.list(STATE_PREFIX):
            state = json.loads(self.lake.read_bytes(obj.key))
            out[state["shard_id"]] = Checkpoint(**state)
        return out

    def _discover(self) -> None:
        """Start reading every shard that is not finished and whose parents are; note closed shards' ends."""
        listed = {checked_shard_id(s["ShardId"]): s for s in self._list_shards()}
        checkpoints = self._checkpoints()
        for shard_id, shard in listed.items():
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            if shard_id in self.active:
                self.active[shard_id].ending_sequence = int(ending) if ending is not None else None
                continue
            checkpoint = checkpoints.get(shard_id) or Checkpoint(shard_id)
            if checkpoint.finished:
                self.finished.add(shard_id)
        for shard_id, shard in listed.items():
            if shard_id in self.active or shard_id in self.finished:
                continue
            # A parent no longer listed has left the stream's retention: nothing of it is left to read.
            parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p in listed]
            if all(p in self.finished for p in parents):
                checkpoint = checkpoints.get(shard_id) or Checkpoint(shard_id)
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                self.active[shard_id] = _Shard(checkpoint, int(ending) if ending is not None else None,
                                               last_read=checkpoint.sequence_number)

    def _finish_read_shards(self, report: ConsumeReport) -> bool:
        done = [s for s in self.active.values() if s.read_to_end()]
        for shard in done:
            if shard.lines:
                self._close(shard, report)
            shard.checkpoint.finished = True
            self._save(shard.checkpoint)
            del self.active[shard.shard_id]
            self.finished.add(shard.shard_id)
            report.finished_shards.append(shard.shard_id)
        return bool(done)

    # --- reading ---------------------------------------------------------------------------------
    def _iterator(self, shard: _Shard) -> str:
        args = {"StreamName": self.stream, "ShardId": shard.shard_id}
        if shard.last_read:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=shard.last_read)
        else:
            args.update(ShardIteratorType="TRIM_HORIZON")
        return self._call(self.kinesis.get_shard_iterator, **args)["ShardIterator"]

    def _poll(self, shard: _Shard, report: ConsumeReport) -> bool:
        """One GetRecords on `shard`; True when it returned records."""
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            answer = self._call(self.kinesis.get_records, ShardIterator=shard.iterator, Limit=self.limit)
        except _ExpiredIterator:
            shard.iterator = None
            return False
        records = answer.get("Records", [])
        for record in records:
            line = record_line(record["Data"])
            if shard.lines and shard.size + len(line) > self.max_bytes:
                self._close(shard, report)
            if not shard.lines:
                shard.opened_at = self.clock()
            shard.lines.append(line)
            shard.size += len(line)
            shard.last_read = record["SequenceNumber"]
        shard.iterator = answer.get("NextShardIterator")
        if shard.iterator is None and shard.ending_sequence is None:
            # Kinesis ends a closed shard's iterator: read to its end.
            shard.ending_sequence = int(shard.last_read or 0)
        behind = answer.get("MillisBehindLatest", 0) > 0 or len(records) >= self.limit
        shard.caught_up = not records and not behind
        shard.next_poll = self.clock() + (self.min_call_interval if behind else self.poll_interval)
        return bool(records)

    def _call(self, method, **kwargs):
        for attempt in range(1, self.attempts + 1):
            try:
                return method(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ExpiredIteratorException":
                    raise _ExpiredIterator() from None
                if code not in RETRIED_CODES:
                    message = exc.response.get("Error", {}).get("Message", "")
                    raise PullError(FEED, self.source, f"{code}: {message} (not retried)") from None
                problem = code
            except BotoCoreError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.attempts:
                raise PullError(FEED, self.source,
                                f"{problem}, after {self.attempts} attempt{'s' * (self.attempts > 1)}")
            self.sleep(backoff_wait(attempt, self.backoff))
        raise AssertionError("unreachable")

    # --- writing ---------------------------------------------------------------------------------
    def _free_key(self, shard: _Shard) -> tuple[str, datetime, int]:
        closed_at = self.now().astimezone(UTC).replace(microsecond=0)
        n = shard.checkpoint.files + 1
        key = landing_key(closed_at, shard.shard_id, n)
        while key <= self.last_key or self.lake.exists(key):
            if key <= self.last_key:
                closed_at += timedelta(seconds=1)
            else:  # written before a crash that kept the checkpoint from moving
                n += 1
            key = landing_key(closed_at, shard.shard_id, n)
        return key, closed_at, n

    def _close(self, shard: _Shard, report: ConsumeReport) -> None:
        """Write the shard's buffer as a landing file, then move its checkpoint (never the other way)."""
        key, closed_at, n = self._free_key(shard)
        data = b"".join(shard.lines)
        self.lake.put_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0), key)
        self.last_key = key
        report.files.append(LandedFile(key, shard.shard_id, closed_at.date(), len(shard.lines), len(data),
                                       shard.last_read or ""))
        shard.checkpoint.sequence_number = shard.last_read
        shard.checkpoint.files = n
        shard.lines, shard.size = [], 0
        self._save(shard.checkpoint)

    def _save(self, checkpoint: Checkpoint) -> None:
        self.lake.put_bytes(json.dumps(asdict(checkpoint), sort_keys=True).encode(),
                            checkpoint_key(checkpoint.shard_id))


def kinesis_client(region: str | None = None, endpoint_url: str | None = None, max_attempts: int = 3):
    """A boto3 Kinesis client with bounded timeouts and botocore's standard retries under ours."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=5, read_timeout=20)
    return boto3.client("kinesis", region_name=region, endpoint_url=endpoint_url, config=config)
