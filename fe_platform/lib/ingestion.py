"""Ingestion of one delivery: landing -> raw (bronze) -> validated + quarantine (silver).

The zones and outcomes are those of `shared/spec/feeds.md`:
- a file whose bytes equal an earlier delivery of its feed is recorded as `duplicate` and skipped;
- a file that cannot be read is copied to `rejected/<feed>/` with a `<file>.error.json`, recorded as
  `rejected`, and nothing of it reaches validated;
- otherwise its bytes are kept in `raw/`, every row is checked by the feed's pandera schema, and the
  partition's validated and quarantine datasets are replaced as a whole; `loaded` is recorded with
  rows_in = rows_valid + rows_quarantined.
A file streams through in chunks, read, checked and written on three threads at once with a few chunks in
flight, so memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fe_platform.lib.feeds import FEEDS, Column, Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.readers import Delivery, UnreadableFile, open_delivery
from fe_platform.lib.rules import (
    RuleContext,
    build_schema,
    check_chunk,
    chunk_scope,
    distinct_values,
    key_hashes,
)

if TYPE_CHECKING:
    from pandera.api.pandas.container import DataFrameSchema

PART = "part.parquet"

DELIVERY_LOG_SCHEMA = pa.schema([
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

    @property
    def rules(self) -> dict[str, int]:
        return json.loads(self.rule_counts) if self.rule_counts else {}


def zone_key(zone: str, feed: str, partition: str, name: str = PART) -> str:
    return f"{zone}/{feed}/{partition}/{name}"


# --- the delivery log ------------------------------------------------------------------------------

ANY = object()  # a read_delivery_log filter that matches everything


def _log_key(record: DeliveryRecord) -> str:
    """The record's object name says its partition, hash and outcome, so lookups filter on a listing
    and read only the records they need."""
    stamp = record.ingested_at.strftime("%Y%m%dT%H%M%S%fZ")
    return (f"deliveries/{record.feed}/{stamp}_{record.partition or 'none'}_{record.sha256[:12]}_"
            f"{record.outcome}.parquet")


def record_delivery(lake: Lake, record: DeliveryRecord) -> None:
    """Append a record: one small immutable Parquet object per delivery outcome."""
    table = pa.Table.from_pylist([asdict(record)], schema=DELIVERY_LOG_SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "record.parquet")
        pq.write_table(table, path)
        lake.put_file(path, _log_key(record))


def read_delivery_log(lake: Lake, feed: str | None = None, partition=ANY, sha256: str | None = None
                      ) -> list[DeliveryRecord]:
    """Records (of one feed, one partition — None for files that name none — or one content hash), oldest
    first."""
    prefix = f"deliveries/{feed}/" if feed else "deliveries/"
    wanted_partition = ANY if partition is ANY else (partition or "none")
    keys = []
    for obj in lake.list(prefix):
        _, part, sha12, _ = obj.key.rsplit("/", 1)[-1].split("_")
        if (wanted_partition is ANY or part == wanted_partition) and (sha256 is None or sha256[:12] == sha12):
            keys.append(obj.key)
    tables = [lake.read_parquet(key, schema=DELIVERY_LOG_SCHEMA) for key in keys]
    if not tables:
        return []
    rows = pa.concat_tables(tables).sort_by("ingested_at").to_pylist()
    return [DeliveryRecord(**row) for row in rows if sha256 is None or row["sha256"] == sha256]


def delivery_log_table(lake: Lake) -> pa.Table:
    records = read_delivery_log(lake)
    return pa.Table.from_pylist([asdict(r) for r in records], schema=DELIVERY_LOG_SCHEMA)


# --- reference data that rules look up -------------------------------------------------------------

def _validated_column(lake: Lake, feed: str, column: str, as_of: date, latest_only: bool = False) -> set[str]:
    """Values of a reference feed's column in its partitions up to `as_of` (the earliest partition when
    none is that old), so that re-validating a delivery after newer reference data arrived gives the
    same result."""
    keys = sorted(o.key for o in lake.list(f"validated/{feed}/") if o.key.endswith(PART))
    usable = [k for k in keys if k.split("/")[2] <= as_of.isoformat()] or keys[:1]
    if latest_only:
        usable = usable[-1:]
    values: set[str] = set()
    for key in usable:
        values.update(v for v in lake.read_parquet(key, columns=[column])[column].to_pylist() if v)
    return values


def rule_context(lake: Lake, feed: Feed, data_date: date) -> RuleContext:
    """The data date plus the reference data a feed's rules need (read from the validated zone)."""
    currencies = brands = frozenset()
    if feed.name == "sap_billing":
        currencies = frozenset(_validated_column(lake, "fx_rates", "quote_currency", data_date))
    if feed.name == "sfdc_call":
        brands = frozenset(_validated_column(lake, "product_master", "brand_code", data_date, latest_only=True))
    return RuleContext(
        data_date=data_date,
        known_currencies=currencies,
        known_brand_codes=brands,
    )


# --- PII --------------------------------------------------------------------------------------------

def pii_hash(values: pa.Array | pa.ChunkedArray, key: str) -> pa.Array:
    """Keyed HMAC-SHA256 of the trimmed, lower-cased value (null stays null)."""
    secret = key.encode()
    return pa.array(
        [None if v is None else hmac.new(secret, v.strip().lower().encode(), hashlib.sha256).hexdigest()
         for v in values.to_pylist()],
        pa.string(),
    )


# --- validation of one delivery ---------------------------------------------------------------------

@dataclass
class ValidationResult:
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rule_counts: Counter
    validated_path: Path
    quarantine_path: Path


def quarantine_schema(feed: Feed) -> pa.Schema:
    """Every source column as text (PII hashed or dropped, as everywhere past raw), lineage, reasons."""
    fields = [pa.field(f.name, pa.string()) for f in feed.validated_schema() if not f.name.startswith("_")]
    fields += [f for f in feed.validated_schema() if f.name.startswith("_")]
    return pa.schema(fields + [pa.field("_reject_reasons", pa.string())])


def _lineage(n: int, first_row: int, source_file: str, data_date: date, ingested_at: datetime) -> dict:
    return {
        "_source_file": pa.repeat(pa.scalar(source_file, pa.string()), n),
        "_source_row": pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
        "_data_date": pa.repeat(pa.scalar(data_date, pa.date32()), n),
        "_ingested_at": pa.repeat(pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")), n),
    }


def _text_columns(feed: Feed, table: pa.Table, pii_key: str) -> dict[str, pa.ChunkedArray]:
    out = {}
    for c in feed.columns:
        if c.pii == "hash":
            out[f"{c.name}_hash"] = pii_hash(table[c.name], pii_key)
        elif c.pii != "drop":
            out[c.name] = table[c.name]
    return out


def _cast(column: Column, values: pa.Array) -> pa.Array:
    if column.kind == "bool":
        return pc.cast(pc.utf8_lower(values), pa.bool_())
    return pc.cast(values, column.arrow_type)


def _castable(column: Column, value: str) -> bool:
    try:
        _cast(column, pa.array([value], pa.string()))
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _with_reason(reasons: pd.Series, rows: np.ndarray, rule: str) -> pd.Series:
    reasons = reasons.reindex(reasons.index.union(rows), fill_value="")
    reasons.loc[rows] = [f"{r};{rule}" if r else rule for r in reasons.loc[rows]]
    return reasons


def _typed_clean_rows(feed: Feed, text: dict[str, pa.ChunkedArray], frame: pd.DataFrame, reasons: pd.Series
                      ) -> tuple[dict[str, pa.Array], np.ndarray, pd.Series]:
    """The rows that broke no rule in the contract types, their mask, and the reasons of the others.

    Each distinct value of a column is cast once. A value the rules let through but no Arrow type holds
    (rare: a timestamp at hour 25) breaks `<column>_type` too, and its row leaves the clean rows."""
    passed = np.ones(len(frame), dtype=bool)
    passed[reasons.index] = False
    good = passed.copy()
    typed_values = {}  # column -> (each row's code, its distinct values typed)
    for c in feed.columns:
        if c.kind == "string" or c.pii:
            continue
        codes, values = distinct_values(frame[c.name])
        values = pa.array(values, pa.string(), from_pandas=True)
        used = np.zeros(len(values), dtype=bool)
        used[codes[passed]] = True  # only the clean rows' values need their type
        try:
            typed_values[c.name] = codes, _cast(c, pc.if_else(pa.array(used), values, None))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fails = np.array([u and not _castable(c, v) for u, v in zip(used, values.to_pylist(), strict=True)])
            if not fails.any():
                raise  # not a value's fault: let the run fail and say so
            broken = passed & fails[codes]
            reasons = _with_reason(reasons, np.flatnonzero(broken), f"{c.name}_type")
            good &= ~broken
            typed_values[c.name] = codes, _cast(c, pc.if_else(pa.array(used & ~fails), values, None))
    all_good = good.all()
    clean = pa.array(good)
    out = {}
    for c in feed.columns:
        if c.name in typed_values:
            codes, typed = typed_values[c.name]
            out[c.name] = typed.take(codes if all_good else codes[good])
        elif c.pii != "drop":
            name = f"{c.name}_hash" if c.pii == "hash" else c.name
            out[name] = text[name] if all_good else text[name].filter(clean)
    return out, good, reasons


@dataclass
class CheckedChunk:
    """One chunk's clean rows (typed) and quarantined rows (text and reasons), ready to write."""

    valid: pa.Table
    quarantined: pa.Table | None
    rule_counts: Counter
    key_hashes: np.ndarray | None


@dataclass
class ChunkChecker:
    """Checks the chunks of one delivery against its feed's schema: what every chunk shares."""

    feed: Feed
    schema: DataFrameSchema  # the feed's rules for this file (its data date and reference data)
    pii_key: str
    source_file: str
    data_date: date
    ingested_at: datetime

    def check(self, chunk: pa.Table, first_row: int) -> CheckedChunk:
        with chunk_scope():
            return self._check(chunk, first_row)

    def _check(self, chunk: pa.Table, first_row: int) -> CheckedChunk:
        feed, n = self.feed, chunk.num_rows
        frame = chunk.to_pandas()
        hashes = key_hashes(frame, feed.key) if feed.key else None
        reasons = check_chunk(self.schema, frame)
        text = _text_columns(feed, chunk, self.pii_key)
        typed, good, reasons = _typed_clean_rows(feed, text, frame, reasons)
        lineage = _lineage(n, first_row, self.source_file, self.data_date, self.ingested_at)
        quarantined, counts = None, Counter()
        if len(reasons):
            bad = pa.array(~good)
            rows = {k: v.filter(bad) for k, v in {**text, **lineage}.items()}
            rows["_reject_reasons"] = pa.array(reasons.to_numpy(), pa.string())
            quarantined = pa.table(rows, schema=quarantine_schema(feed))
            for joined in reasons:
                counts.update(joined.split(";"))
            clean = pa.array(good)
            lineage = {k: v.filter(clean) for k, v in lineage.items()}
        valid = pa.table({**typed, **lineage}, schema=feed.validated_schema())
        return CheckedChunk(valid, quarantined, counts, hashes)


class KeyCounter:
    """Finds the keys that occur more than once in a file, in bounded memory: key hashes spill to
    bucket files by their top bits, and each bucket is counted on its own."""

    BUCKETS = 16

    def __init__(self, workdir: Path):
        self.paths = [workdir / f"keys-{i}.u64" for i in range(self.BUCKETS)]

    def add(self, hashes: np.ndarray) -> None:
        hashes = np.sort(hashes)  # by their top bits, that is by bucket
        bounds = np.searchsorted(hashes, np.arange(1, self.BUCKETS, dtype=np.uint64) << np.uint64(60))
        for path, bucket in zip(self.paths, np.split(hashes, bounds), strict=True):
            if bucket.size:
                with open(path, "ab") as f:
                    bucket.tofile(f)

    def repeated(self) -> np.ndarray:
        repeated = [np.empty(0, dtype=np.uint64)]
        for path in filter(Path.exists, self.paths):
            values, counts = np.unique(np.fromfile(path, dtype=np.uint64), return_counts=True)
            repeated.append(values[counts > 1])
            path.unlink()
        return np.concatenate(repeated)


AHEAD = 3  # chunks read but not yet written: what bounds memory


def _validation_pass(delivery: Delivery, checker: ChunkChecker, workdir: Path, keys: KeyCounter | None
                     ) -> ValidationResult:
    """Check every chunk into validated and quarantine files, as a pipeline of three threads: this one
    reads the file, a second checks the chunks, a third writes them. (Arrow's parsing, kernels and Parquet
    writer release the GIL; more checking threads measured slower on two cores.)"""
    feed = delivery.feed
    valid_path, bad_path = workdir / "validated.parquet", workdir / "quarantine.parquet"
    counts: Counter = Counter()
    rows_in = rows_valid = 0
    writes: deque[Future] = deque()
    valid_schema = feed.validated_schema()
    # A row number is unique: dictionary-encoding it only costs time.
    dictionary_columns = [name for name in valid_schema.names if name != "_source_row"]
    with pq.ParquetWriter(valid_path, valid_schema, use_dictionary=dictionary_columns) as valid_out, \
            pq.ParquetWriter(bad_path, quarantine_schema(feed)) as bad_out, \
            ThreadPoolExecutor(1) as checking, ThreadPoolExecutor(1) as writing:

        def write(checked: Future) -> int:
            chunk: CheckedChunk = checked.result()
            valid_out.write_table(chunk.valid)
            if chunk.quarantined is not None:
                bad_out.write_table(chunk.quarantined)
            if keys is not None and chunk.key_hashes is not None:
                keys.add(chunk.key_hashes)
            counts.update(chunk.rule_counts)
            return chunk.valid.num_rows

        try:
            with closing(delivery.chunks()) as chunks:
                for chunk in chunks:
                    writes.append(writing.submit(write, checking.submit(checker.check, chunk, rows_in + 1)))
                    rows_in += chunk.num_rows
                    if len(writes) >= AHEAD:
                        rows_valid += writes.popleft().result()
            while writes:
                rows_valid += writes.popleft().result()
        except BaseException:
            for pool in (checking, writing):  # what is queued is moot: the file is rejected or the run fails
                pool.shutdown(cancel_futures=True)
            raise
    return ValidationResult(rows_in, rows_valid, rows_in - rows_valid, counts, valid_path, bad_path)


def validate_delivery(delivery: Delivery, data_date: date, ingested_at: datetime, pii_key: str,
                      workdir: Path, source_file: str | None = None) -> ValidationResult:
    """Check every row; write clean rows (typed) and quarantined rows (text + reasons) as Parquet.

    A key repeated anywhere in the file quarantines every row that has it, which is known only once the
    whole file was read: the rare file with repeats is checked a second time with them known.
    """
    feed, lake = delivery.feed, delivery.lake
    ctx = rule_context(lake, feed, data_date)

    def run(ctx: RuleContext, keys: KeyCounter | None) -> ValidationResult:
        checker = ChunkChecker(feed, build_schema(feed, ctx), pii_key, source_file or delivery.key, data_date,
                               ingested_at)
        return _validation_pass(delivery, checker, workdir, keys)

    keys = KeyCounter(workdir) if feed.key else None
    result = run(ctx, keys)
    repeated = keys.repeated() if keys else np.empty(0, dtype=np.uint64)
    if repeated.size:
        result = run(replace(ctx, duplicate_key_hashes=repeated), None)
    return result


# --- a delivery from landing to the zones ----------------------------------------------------------

def _reject(lake: Lake, feed: Feed, key: str, sha: str, partition: str | None, problem: str,
            now: datetime) -> DeliveryRecord:
    name = key.rsplit("/", 1)[-1]
    lake.copy(key, f"rejected/{feed.name}/{name}")
    error = {"file": key, "feed": feed.name, "sha256": sha, "problem": problem,
             "rejected_at": now.isoformat()}
    lake.put_bytes(json.dumps(error, indent=2).encode(), f"rejected/{feed.name}/{name}.error.json")
    record = DeliveryRecord(feed.name, key, partition, sha, "rejected", reason=problem, ingested_at=now)
    record_delivery(lake, record)
    return record


def _publish(lake: Lake, feed: Feed, partition: str, result: ValidationResult) -> None:
    lake.put_file(result.validated_path, zone_key("validated", feed.name, partition))
    lake.put_file(result.quarantine_path, zone_key("quarantine", feed.name, partition))


def ingest_landing_file(lake: Lake, key: str, pii_key: str, now: datetime | None = None,
                        log: list[DeliveryRecord] | None = None) -> DeliveryRecord:
    """Take one landing file through the zones; returns its record (also appended to the log)."""
    now = now or datetime.now(UTC)
    parts = key.split("/")
    feed = FEEDS[parts[1]]
    sha = lake.sha256(key)
    log = read_delivery_log(lake, feed.name, sha256=sha) if log is None else log
    data_date = feed.match(parts[-1])
    partition = data_date.isoformat() if data_date else None

    for earlier in log:
        if earlier.sha256 == sha and earlier.landing_key == key and earlier.outcome in ("loaded", "rejected"):
            return earlier  # this very file was ingested already: nothing new
    for earlier in log:
        # Only a loaded delivery makes a copy a duplicate: a file rejected for its name may come back renamed.
        if earlier.sha256 == sha and earlier.outcome == "loaded":
            record = DeliveryRecord(feed.name, key, partition, sha, "duplicate", ingested_at=now,
                                    reason=f"same bytes as {earlier.landing_key}, ingested "
                                           f"{earlier.ingested_at.isoformat()}")
            record_delivery(lake, record)
            return record

    try:
        delivery = open_delivery(feed, lake, key)
        with tempfile.TemporaryDirectory() as tmp:
            result = validate_delivery(delivery, data_date, now, pii_key, Path(tmp))
            if result.rows_in == 0:
                # An empty snapshot would say every account or product is gone: refuse it, loudly.
                raise UnreadableFile(key, "the file has a header but no data rows")
            raw_key = f"raw/{feed.name}/{partition}/{sha[:16]}/{parts[-1]}"
            lake.copy(key, raw_key)
            _publish(lake, feed, partition, result)
    except UnreadableFile as exc:
        return _reject(lake, feed, key, sha, partition, exc.problem, now)

    record = DeliveryRecord(
        feed.name, key, partition, sha, "loaded", result.rows_in, result.rows_valid,
        result.rows_quarantined, ingested_at=now, raw_key=raw_key,
        drift_columns=json.dumps(delivery.extra_columns) if delivery.extra_columns else None,
        rule_counts=json.dumps(dict(sorted(result.rule_counts.items()))),
    )
    record_delivery(lake, record)
    return record


def revalidate_partition(lake: Lake, feed: Feed, partition: str, pii_key: str) -> DeliveryRecord | None:
    """Rebuild a partition from its latest loaded delivery in raw (a re-run or a backfill).

    The delivery's own ingestion time stamps the rows, so a re-run gives the same dataset.
    """
    loaded = [r for r in read_delivery_log(lake, feed.name, partition=partition) if r.outcome == "loaded"]
    if not loaded:
        return None
    record = loaded[-1]
    delivery = open_delivery(feed, lake, record.raw_key)
    with tempfile.TemporaryDirectory() as tmp:
        result = validate_delivery(delivery, date.fromisoformat(partition), record.ingested_at, pii_key,
                                   Path(tmp), source_file=record.landing_key)
        _publish(lake, feed, partition, result)
    return record


def landing_files(lake: Lake, feed: Feed, start_after: str | None = None) -> list[str]:
    """Landing keys of a feed in key order (after `start_after`), files directly in its folder only."""
    return [o.key for o in lake.list(feed.landing_prefix, start_after=start_after)
            if o.key.count("/") == 2]


def reject_unpartitionable(lake: Lake, key: str, problem: str) -> DeliveryRecord:
    """Reject a landing file before any run: it names no partition the platform can file it under."""
    feed = FEEDS[key.split("/")[1]]
    known = [r for r in read_delivery_log(lake, feed.name, partition=None) if r.landing_key == key]
    if known:
        return known[-1]
    return _reject(lake, feed, key, lake.sha256(key), None, problem, datetime.now(UTC))
