"""Ingestion of deliveries: landing -> raw (bronze) -> validated + quarantine (silver), in the log.

The zones and outcomes are those of `shared/spec/feeds.md` and `sources.md`:
- a delivery is a landing file with its bytes; one whose bytes equal a loaded delivery of its feed is
  recorded as `duplicate` and skipped;
- a landing entry that is not a regular file (a symbolic link, a device), or a file that cannot be read,
  is rejected: the file (never what a link points to) is copied to `rejected/<feed>/` with a
  `<file>.error.json`, recorded as `rejected`, and nothing of it reaches validated;
- otherwise its bytes are kept in `raw/`, every row is checked (`validation.py`), and its validated and
  quarantined rows are committed to the partition as one step (`zones.py`): a `snapshot` feed's delivery
  replaces the partition, an `append` feed's is added to it; `loaded` is recorded with
  rows_in = rows_valid + rows_quarantined.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fe_platform.lib.delivery_log import DeliveryRecord, LogIndex, read_delivery_log, record_delivery
from fe_platform.lib.feeds import Feed
from fe_platform.lib.lake import Lake, LakeObject
from fe_platform.lib.readers import UnreadableFile, open_delivery
from fe_platform.lib.validation import ValidationResult, validate_delivery
from fe_platform.lib.zones import ZONES, Part, PartitionVersion, commit, current_version, new_version


def _reject(lake: Lake, feed: Feed, obj: LakeObject, sha: str, partition: str | None, problem: str,
            now: datetime, started: float) -> DeliveryRecord:
    name = obj.key.rsplit("/", 1)[-1]
    if obj.regular:
        lake.copy(obj.key, f"rejected/{feed.name}/{name}")
    error = {"file": obj.key, "feed": feed.name, "sha256": sha or None, "problem": problem,
             "rejected_at": now.isoformat()}
    lake.put_bytes(json.dumps(error, indent=2).encode(), f"rejected/{feed.name}/{name}.error.json")
    record = DeliveryRecord(feed.name, obj.key, partition, sha, "rejected", reason=problem, ingested_at=now,
                            bytes=obj.size, seconds=time.perf_counter() - started, fingerprint=obj.fingerprint)
    record_delivery(lake, record)
    return record


def reject(lake: Lake, feed: Feed, obj: LakeObject, problem: str, now: datetime | None = None) -> DeliveryRecord:
    """Reject a landing entry before any run: it names no partition the platform can file it under, or it is
    not a regular file."""
    started = time.perf_counter()
    sha = lake.sha256(obj.key) if obj.regular else ""
    data_time = feed.data_time(obj.key.rsplit("/", 1)[-1])
    partition = data_time.date().isoformat() if data_time and obj.regular else None
    return _reject(lake, feed, obj, sha, partition, problem, now or datetime.now(UTC), started)


def _write_part(lake: Lake, version: PartitionVersion, part: Part, result: ValidationResult) -> None:
    lake.put_file(result.validated_path, version.folder("validated") + part.name)
    lake.put_file(result.quarantine_path, version.folder("quarantine") + part.name)


def _part(record: DeliveryRecord, result: ValidationResult, drift: list[str]) -> Part:
    return Part(record.landing_key, record.sha256, result.rows_in, result.rows_valid, result.rows_quarantined,
                record.ingested_at.isoformat(), record.raw_key,
                dict(sorted(result.rule_counts.items())), drift)


def _commit_delivery(lake: Lake, feed: Feed, partition: str, part: Part, result: ValidationResult,
                     now: datetime) -> PartitionVersion:
    with lake.writing(f"{feed.name}-{partition}"):
        current = current_version(lake, feed.name, partition)
        if feed.mode == "append" and current is not None:
            # A delivery again (its bytes, or its name: a corrected file) replaces its part; others add up.
            replaced = [p for p in current.parts if p.sha256 == part.sha256 or p.landing_key == part.landing_key]
            parts = (*(p for p in current.parts if p not in replaced), part)
            version = PartitionVersion(feed.name, partition, current.version, parts, now.isoformat(),
                                       current.previous_version)
        else:
            replaced = []
            version = PartitionVersion(feed.name, partition, new_version(now), (part,), now.isoformat(),
                                       current.version if current else None)
        _write_part(lake, version, part, result)
        commit(lake, version)
        lake.delete(version.folder(zone) + p.name for p in replaced if p.name != part.name for zone in ZONES)
    return version


def ingest_delivery(lake: Lake, feed: Feed, obj: LakeObject, pii_key: str, workdir: Path,
                    index: LogIndex | None = None, now: datetime | None = None,
                    log_loaded: bool = True) -> DeliveryRecord:
    """Take one landing entry through the zones; returns its record (also written to the log, and added to
    `index` so the next delivery of a batch sees it).

    With `log_loaded=False` a loaded delivery's record is not written: the caller writes it (`record_delivery`)
    once the partition it committed is known to what plans from the log (a Dagster run: after the partition's
    materialization), so a crash in between leaves the delivery new, to be ingested again, rather than logged
    with its partition never materialized."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    index = index if index is not None else LogIndex.of(lake, feed.name)
    known = index.entry_for(feed.name, obj)
    if known:  # this very file, as it is now, was ingested already: nothing new
        return index.records(lake, [known])[0]
    name = obj.key.rsplit("/", 1)[-1]
    data_time = feed.data_time(name)
    if not obj.regular:
        record = reject(lake, feed, obj, "not a regular file (a symbolic link or a special file): only files "
                                         "are accepted, nothing was read", now)
        index.add(record)
        return record
    if data_time is None:
        record = reject(lake, feed, obj, f"the file name does not match the {feed.name} pattern "
                                         f"{feed.file_pattern!r}", now)
        index.add(record)
        return record
    partition = data_time.date().isoformat()
    sha = lake.sha256(obj.key)
    common = dict(ingested_at=now, bytes=obj.size, fingerprint=obj.fingerprint)

    earlier = index.loaded_sha(feed.name, sha)
    if earlier:
        first = index.records(lake, earlier[:1])[0]
        record = DeliveryRecord(feed.name, obj.key, partition, sha, "duplicate",
                                reason=f"same bytes as {first.landing_key}, ingested {first.ingested_at.isoformat()}",
                                seconds=time.perf_counter() - started, **common)
        record_delivery(lake, record)
        index.add(record)
        return record

    try:
        delivery = open_delivery(feed, lake, obj.key)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            result = validate_delivery(delivery, data_time, now, pii_key, Path(tmp))
            if result.rows_in == 0:
                # An empty snapshot would say every account or product is gone: refuse it, loudly.
                raise UnreadableFile(obj.key, "the file has a header but no data rows")
            raw_key = f"raw/{feed.name}/{partition}/{sha[:16]}/{name}"
            lake.copy(obj.key, raw_key)
            record = DeliveryRecord(
                feed.name, obj.key, partition, sha, "loaded", result.rows_in, result.rows_valid,
                result.rows_quarantined, raw_key=raw_key,
                drift_columns=json.dumps(delivery.extra_columns) if delivery.extra_columns else None,
                rule_counts=json.dumps(dict(sorted(result.rule_counts.items()))), **common)
            _commit_delivery(lake, feed, partition, _part(record, result, list(delivery.extra_columns)), result, now)
    except UnreadableFile as exc:
        record = _reject(lake, feed, obj, sha, partition, exc.problem, now, started)
        index.add(record)
        return record

    record.seconds = time.perf_counter() - started
    if log_loaded:
        record_delivery(lake, record)
    index.add(record)
    return record


def revalidate_partition(lake: Lake, feed: Feed, partition: str, pii_key: str, workdir: Path,
                         now: datetime | None = None) -> PartitionVersion | None:
    """Rebuild a partition from raw (a re-run or a backfill): a snapshot feed from its latest loaded
    delivery, an append feed from every one of them. Each delivery's own ingestion time stamps its rows,
    so a re-run gives the same dataset."""
    loaded = [r for r in read_delivery_log(lake, feed.name, partition=partition) if r.outcome == "loaded"]
    if not loaded:
        return None
    # append: every landing file's latest delivery (a corrected file replaced its earlier bytes) once
    chosen = list({r.landing_key: r for r in loaded}.values()) if feed.mode == "append" else loaded[-1:]
    chosen = list({r.sha256: r for r in chosen}.values())
    now = now or datetime.now(UTC)
    with lake.writing(f"{feed.name}-{partition}"):
        return _revalidate(lake, feed, partition, chosen, pii_key, workdir, now)


def _revalidate(lake: Lake, feed: Feed, partition: str, chosen: list[DeliveryRecord], pii_key: str, workdir: Path,
                now: datetime) -> PartitionVersion:
    current = current_version(lake, feed.name, partition)
    version = PartitionVersion(feed.name, partition, new_version(now), (), now.isoformat(),
                               current.version if current else None)
    parts = []
    for record in chosen:
        delivery = open_delivery(feed, lake, record.raw_key)
        data_time = feed.data_time(record.landing_key.rsplit("/", 1)[-1])
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            result = validate_delivery(delivery, data_time, record.ingested_at, pii_key, Path(tmp),
                                       source_file=record.landing_key)
            part = _part(record, result, list(delivery.extra_columns))
            _write_part(lake, version, part, result)
            parts.append(part)
    version = PartitionVersion(version.feed, partition, version.version, tuple(parts), version.committed_at,
                               version.previous_version)
    commit(lake, version)
    return version


def ingest_landing_file(lake: Lake, key: str, pii_key: str, workdir: Path | None = None,
                        now: datetime | None = None) -> DeliveryRecord:
    """Take the landing file `key` through the zones, as a run would (the library's entry for one file)."""
    from fe_platform.lib.feeds import feed_for_key

    feed = feed_for_key(key)
    if feed is None:
        raise ValueError(f"{key} is not a landing key of a known feed")
    obj = next((o for o in lake.list(feed.landing_prefix) if o.key == key), None)
    if obj is None:
        raise FileNotFoundError(key)
    if workdir is not None:
        return ingest_delivery(lake, feed, obj, pii_key, workdir, now=now)
    with tempfile.TemporaryDirectory() as tmp:
        return ingest_delivery(lake, feed, obj, pii_key, Path(tmp), now=now)
