"""Validation of one delivery: every row checked by its feed's pandera rules, clean rows typed into the
validated Parquet, the others kept as text with their reasons in the quarantine Parquet.

A file streams through in chunks, read, checked and written on three threads at once with a few chunks in
flight, so memory does not grow with the file. A key repeated anywhere in the file is known only once the
whole file was read: key hashes spill to disk during the pass, and only a file that has repeats is checked
a second time, with them known.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fe_platform.lib.feeds import Column, Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.readers import Delivery
from fe_platform.lib.rules import (
    RECORD_RULE,
    RECORD_TEXT,
    RuleContext,
    build_schema,
    check_chunk,
    chunk_scope,
    distinct_values,
    key_hashes,
)
from fe_platform.lib.zones import committed_partitions, current_version

if TYPE_CHECKING:
    from pandera.api.pandas.container import DataFrameSchema

# --- reference data that rules look up -------------------------------------------------------------

def _validated_values(lake: Lake, feed: str, column: str, as_of: date, latest_only: bool = False) -> set[str]:
    """Values of a reference feed's column in its partitions up to `as_of` (the earliest partition when
    none is that old), so that re-validating a delivery after newer reference data arrived gives the
    same result."""
    partitions = committed_partitions(lake, feed)
    usable = [p for p in partitions if p <= as_of.isoformat()] or partitions[:1]
    if latest_only:
        usable = usable[-1:]
    values: set[str] = set()
    for partition in usable:
        version = current_version(lake, feed, partition)
        for key in version.keys("validated") if version else []:
            for batch in lake.parquet_file(key).iter_batches(columns=[column]):
                values.update(v for v in batch.column(0).unique().to_pylist() if v)
    return values


def rule_context(lake: Lake, feed: Feed, data_time: datetime) -> RuleContext:
    """The data date and time plus the reference data the feed's lookups name (from the validated zone)."""
    lookups = {
        lookup.rule: frozenset(_validated_values(lake, lookup.feed, lookup.column, data_time.date(),
                                                 lookup.latest_only) | set(lookup.always))
        for lookup in feed.lookups
    }
    return RuleContext(data_date=data_time.date(), data_time=data_time, lookups=lookups)


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


RECORD_HASH = "_record_hash"  # the keyed hash of a JSON line that is not an object


def quarantine_schema(feed: Feed) -> pa.Schema:
    """Every source column as text (PII hashed or dropped, as everywhere past raw), lineage, reasons."""
    fields = [pa.field(f.name, pa.string()) for f in feed.validated_schema() if not f.name.startswith("_")]
    fields += [f for f in feed.validated_schema() if f.name.startswith("_")]
    if feed.quarantines_records:
        fields.append(pa.field(RECORD_HASH, pa.string()))
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
        if feed.quarantines_records:
            # A line that is no JSON object breaks one rule; its empty columns say nothing more.
            broken = np.flatnonzero(frame[RECORD_TEXT].notna().to_numpy())
            if broken.size:
                reasons = reasons.reindex(reasons.index.union(broken), fill_value="")
                reasons.loc[broken] = RECORD_RULE
        text = _text_columns(feed, chunk, self.pii_key)
        typed, good, reasons = _typed_clean_rows(feed, text, frame, reasons)
        lineage = _lineage(n, first_row, self.source_file, self.data_date, self.ingested_at)
        quarantined, counts = None, Counter()
        if len(reasons):
            bad = pa.array(~good)
            rows = {k: v.filter(bad) for k, v in {**text, **lineage}.items()}
            if feed.quarantines_records:
                rows[RECORD_HASH] = pii_hash(chunk[RECORD_TEXT].filter(bad), self.pii_key)
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


def validate_delivery(delivery: Delivery, data_time: datetime, ingested_at: datetime, pii_key: str,
                      workdir: Path, source_file: str | None = None) -> ValidationResult:
    """Check every row; write clean rows (typed) and quarantined rows (text + reasons) as Parquet.

    A key repeated anywhere in the file quarantines every row that has it, which is known only once the
    whole file was read: the rare file with repeats is checked a second time with them known.
    """
    feed, lake = delivery.feed, delivery.lake
    ctx = rule_context(lake, feed, data_time)

    def run(ctx: RuleContext, keys: KeyCounter | None) -> ValidationResult:
        checker = ChunkChecker(feed, build_schema(feed, ctx), pii_key, source_file or delivery.key, ctx.data_date,
                               ingested_at)
        return _validation_pass(delivery, checker, workdir, keys)

    keys = KeyCounter(workdir) if feed.key else None
    result = run(ctx, keys)
    repeated = keys.repeated() if keys else np.empty(0, dtype=np.uint64)
    if repeated.size:
        result = run(replace(ctx, duplicate_key_hashes=repeated), None)
    return result
