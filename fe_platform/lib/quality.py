"""Data-quality measures of a committed partition version, for the asset checks (plain Python, no Dagster).

Every measure reads the partition through its manifest and streams its Parquet parts in record batches
(or reads only their metadata), so a check's memory does not grow with the delivery. Each returns a
`Verdict`; the asset checks turn it into Dagster's result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from fe_platform.lib.feeds import FEEDS, Feed, Reference
from fe_platform.lib.lake import Lake
from fe_platform.lib.zones import PartitionVersion, committed_manifests, committed_partitions, current_version

if TYPE_CHECKING:
    import pyarrow as pa

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"(\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"
SAMPLE_ROWS = 5
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Verdict:
    passed: bool
    severity: str = "WARN"  # WARN or ERROR, when not passed
    metadata: dict = field(default_factory=dict)


def batches(lake: Lake, version: PartitionVersion, zone: str, columns: list[str] | None = None
            ) -> Iterator[pa.RecordBatch]:
    """The rows of a partition version's zone, a bounded batch at a time."""
    for key in version.keys(zone):
        yield from lake.parquet_file(key).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def sample_columns(feed: Feed) -> list[str]:
    """Columns safe to show in a check's sample: no PII, not even hashed."""
    return [c.name for c in feed.columns if c.pii is None] + ["_source_row"]


def quarantine_by_rule(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
    """Rows quarantined per rule, with up to SAMPLE_ROWS rows of each (non-PII columns only)."""
    import pyarrow.compute as pc

    counts: dict[str, int] = {}
    samples: dict[str, list[dict]] = {}
    shown = sample_columns(feed)
    quarantined = 0
    for batch in batches(lake, version, "quarantine", [*shown, "_reject_reasons"]):
        quarantined += batch.num_rows
        reasons = batch.column("_reject_reasons")
        for item in pc.value_counts(pc.list_flatten(pc.split_pattern(reasons, ";"))).to_pylist():
            rule = item["values"]
            counts[rule] = counts.get(rule, 0) + item["counts"]
            wanted = SAMPLE_ROWS - len(samples.setdefault(rule, []))
            if wanted > 0:
                hits = batch.filter(pc.match_substring_regex(reasons, rule_pattern(rule)))
                samples[rule] += hits.select(shown).slice(0, wanted).to_pylist()
    rows_in = version.rows_in
    share = quarantined / rows_in if rows_in else 0.0
    return Verdict(
        passed=quarantined == 0,
        severity="ERROR" if 100 * share > feed.quarantine_warn_pct else "WARN",
        metadata={"rows_quarantined": quarantined, "quarantine_pct": round(100 * share, 3),
                  "threshold_pct": feed.quarantine_warn_pct, "by_rule": dict(sorted(counts.items())),
                  "samples": {rule: samples[rule] for rule in sorted(samples)}},
    )


def row_conservation(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
    """For every delivery of the version, rows in = rows validated + rows quarantined (file metadata)."""
    broken = []
    valid = bad = 0
    for part, valid_key, bad_key in zip(version.parts, version.keys("validated"), version.keys("quarantine"),
                                        strict=True):
        v = lake.parquet_file(valid_key).metadata.num_rows
        q = lake.parquet_file(bad_key).metadata.num_rows
        valid, bad = valid + v, bad + q
        if part.rows_in != v + q:
            broken.append(part.landing_key)
    return Verdict(passed=not broken, severity="ERROR",
                   metadata={"rows_in": version.rows_in, "rows_validated": valid, "rows_quarantined": bad,
                             "deliveries": len(version.parts), "deliveries_not_conserved": broken})


def no_pii_in_clear(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
    """No value of the validated dataset looks like an email address or a phone number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = [f.name for f in feed.validated_schema() if pa.types.is_string(f.type) and not f.name.startswith("_")]
    found: dict[str, int] = {}
    for batch in batches(lake, version, "validated", text):
        for name in text:
            column = batch.column(name)
            hits = pc.sum(pc.or_(pc.match_substring_regex(column, EMAIL),
                                 pc.match_substring_regex(column, PHONE))).as_py() or 0
            if hits:
                found[name] = found.get(name, 0) + hits
    return Verdict(passed=not found, severity="ERROR", metadata={"columns_with_matches": found})


def schema_drift(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
    """Columns the contract does not name: kept in raw, left out of validated."""
    return Verdict(passed=not version.drift_columns, metadata={"unexpected_columns": version.drift_columns})


# What every partition's check of a batch looks up: computed once per state of what it reads, since a
# run checks its partitions one after another against the same reference data.
_LOOKUPS: dict[tuple, object] = {}


def _remembered(key: tuple, compute: Callable[[], object]):
    if key not in _LOOKUPS:
        if len(_LOOKUPS) > 64:
            _LOOKUPS.clear()
        _LOOKUPS[key] = compute()
    return _LOOKUPS[key]


def _distinct(lake: Lake, version: PartitionVersion, column: str) -> pa.Array:
    """The distinct values of one column of a partition version, sorted (remembered per version)."""
    def compute():
        import pyarrow as pa

        values: set = set()
        for batch in batches(lake, version, "validated", [column]):
            values.update(batch.column(0).unique().to_pylist())
        values.discard(None)
        return pa.array(sorted(values), pa.string())

    return _remembered(("distinct", lake.uri(version.folder("validated")), column), compute)


def references(ref: Reference) -> Callable[[Lake, Feed, PartitionVersion], Verdict]:
    """`ref.column` values with no match in the latest partition of the target feed."""
    def measure(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
        import pyarrow as pa
        import pyarrow.compute as pc

        target = committed_partitions(lake, ref.target_feed)
        target_version = current_version(lake, ref.target_feed, target[-1]) if target else None
        known = _distinct(lake, target_version, ref.target_column) if target_version else pa.array([], pa.string())
        unmatched, sample = 0, []
        for batch in batches(lake, version, "validated", [ref.column]):
            present = pc.drop_null(batch.column(0))
            missing = present.filter(pc.invert(pc.is_in(present, value_set=known)))
            unmatched += len(missing)
            sample = sorted(set(sample) | set(missing.slice(0, 200).to_pylist()))[:SAMPLE_ROWS]
        return Verdict(passed=unmatched == 0, metadata={
            "unmatched_rows": unmatched, "sample": sample, "reference_partition": target[-1] if target else "none"})

    return measure


def first_rate_dates(lake: Lake) -> dict[str, date]:
    """The first date each currency has a rate, over every committed fx partition (EUR, the base: always);
    remembered while no fx manifest changes."""
    manifests = tuple((o.key, o.fingerprint) for o in committed_manifests(lake, "fx_rates"))

    def compute():
        first_rate: dict[str, date] = {"EUR": date.min}
        for key, _ in manifests:
            fx = current_version(lake, "fx_rates", key.split("/")[2])
            for batch in batches(lake, fx, "validated", ["rate_date", "quote_currency"]):
                for day, currency in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    if currency and day and day < first_rate.get(currency, date.max):
                        first_rate[currency] = day
        return first_rate

    return _remembered(("first_rate", lake.uri("validated/fx_rates/"), manifests), compute)


def fx_rate_available(lake: Lake, feed: Feed, version: PartitionVersion) -> Verdict:
    """Billing lines with no rate for their currency (or for USD) on or before the billing date."""
    first_rate = first_rate_dates(lake)
    usd = first_rate.get("USD")
    lacking, sample = 0, []
    columns = ["billing_document", "billing_item", "billing_date", "currency"]
    for batch in batches(lake, version, "validated", columns):
        for row in batch.to_pylist():
            own = first_rate.get(row["currency"])
            when = row["billing_date"]
            if own is None or usd is None or when is None or own > when or usd > when:
                lacking += 1
                if len(sample) < SAMPLE_ROWS:
                    sample.append({k: str(v) for k, v in row.items()})
    return Verdict(passed=lacking == 0, metadata={"lines_without_rate": lacking, "sample": sample})


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    measure: Callable[[Lake, Feed, PartitionVersion], Verdict]
    blocking: bool = False


FEED_CHECKS: dict[str, tuple[str, Callable[[Lake, Feed, PartitionVersion], Verdict]]] = {
    "fx_rate_available": ("Billing lines with no exchange rate on or before their billing date (they stay in the "
                          "warehouse with a null USD value).", fx_rate_available),
}


def measures(feed: Feed) -> list[Measure]:
    """Every check of a validated partition of `feed`: the common ones, its references, its own."""
    out = [
        Measure("quarantine_by_rule", f"Rows quarantined per pandera rule, with a sample: WARN up to "
                                      f"{feed.quarantine_warn_pct}% of the delivery, ERROR above.", quarantine_by_rule),
        Measure("row_conservation", "Rows in each delivery = rows validated + rows quarantined; nothing lost.",
                row_conservation, blocking=True),
        Measure("no_pii_in_clear", "No value of the validated dataset looks like an email address or a phone "
                                   "number.", no_pii_in_clear),
        Measure("schema_drift", "Columns the contract does not name: kept in raw, left out of validated.",
                schema_drift),
    ]
    for ref in feed.references:
        target = FEEDS[ref.target_feed]
        out.append(Measure(ref.check_name, f"{feed.name}.{ref.column} values not in the latest {target.name} "
                                           f"({ref.target_column}): a warning, never a row rejection.",
                           references(ref)))
    for name in feed.checks:
        description, measure = FEED_CHECKS[name]
        out.append(Measure(name, description, measure))
    return out


def rule_pattern(rule: str) -> str:
    """A regex that finds `rule` among `;`-joined reasons."""
    return f"(^|;){re.escape(rule)}(;|$)"
