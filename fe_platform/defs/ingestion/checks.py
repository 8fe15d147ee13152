"""Asset checks on every validated partition: rules, row conservation, PII, drift, references."""

import json
from collections.abc import Callable

import dagster as dg

from fe_platform.defs.ingestion.assets import validated_key
from fe_platform.defs.partitions import partitions_for
from fe_platform.lib import quality
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.ingestion import DeliveryRecord
from fe_platform.lib.lake import Lake, lake_from_settings
from fe_platform.settings import Settings

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR
CheckBody = Callable[[Lake, DeliveryRecord, str], dg.AssetCheckResult]


def partition_check(feed: Feed, settings: Settings, name: str, description: str, blocking: bool = False):
    """Turn `body(lake, record, partition)` into a partitioned check of `validated_<feed>`.

    The body runs only where the partition has an accepted delivery (`record`, from the delivery
    log); a partition without one fails the check, since there is nothing to vouch for.
    """
    def decorate(body: CheckBody) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=validated_key(feed), name=name, partitions_def=partitions_for(feed),
                        description=description, blocking=blocking)
        def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            lake = lake_from_settings(settings)
            record = quality.latest_loaded(lake, feed, context.partition_key)
            if record is None:
                return dg.AssetCheckResult(passed=False, severity=ERROR,
                                           description=f"no accepted delivery for partition {context.partition_key}")
            return body(lake, record, context.partition_key)

        return _check

    return decorate


def feed_checks(feed: Feed, settings: Settings) -> list[dg.AssetChecksDefinition]:
    @partition_check(feed, settings, "quarantine_by_rule",
                     f"Rows quarantined per pandera rule, with a sample: WARN up to {feed.quarantine_warn_pct}% "
                     f"of the delivery, ERROR above.")
    def quarantine_by_rule(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        quarantine = quality.read_zone(lake, "quarantine", feed, partition)
        counts: dict[str, int] = {}
        for joined in quarantine["_reject_reasons"].to_pylist():
            for rule in joined.split(";"):
                counts[rule] = counts.get(rule, 0) + 1
        pct = 100.0 * quarantine.num_rows / record.rows_in if record.rows_in else 0.0
        samples = {rule: quality.sample_rules(quarantine, rule, quality.sample_columns(feed))
                   for rule in sorted(counts)}
        return dg.AssetCheckResult(
            passed=quarantine.num_rows == 0,
            severity=ERROR if pct > feed.quarantine_warn_pct else WARN,
            metadata={"rows_quarantined": quarantine.num_rows, "quarantine_pct": round(pct, 3),
                      "threshold_pct": feed.quarantine_warn_pct,
                      "by_rule": dict(sorted(counts.items())),
                      "samples": dg.MetadataValue.json(samples)},
        )

    @partition_check(feed, settings, "row_conservation",
                     "Rows in the delivery = rows validated + rows quarantined; nothing lost.", blocking=True)
    def row_conservation(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        valid = quality.parquet_rows(lake, "validated", feed, partition)
        bad = quality.parquet_rows(lake, "quarantine", feed, partition)
        return dg.AssetCheckResult(
            passed=record.rows_in == valid + bad,
            metadata={"rows_in": record.rows_in, "rows_validated": valid, "rows_quarantined": bad,
                      "landing_key": record.landing_key},
        )

    @partition_check(feed, settings, "no_pii_in_clear",
                     "No value of the validated dataset looks like an email address or a phone number.")
    def no_pii_in_clear(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        found = quality.pii_matches(quality.read_zone(lake, "validated", feed, partition))
        return dg.AssetCheckResult(passed=not found, metadata={"columns_with_matches": found})

    @partition_check(feed, settings, "schema_drift",
                     "Columns the contract does not name: kept in raw, left out of validated.")
    def schema_drift(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        extra = json.loads(record.drift_columns) if record.drift_columns else []
        return dg.AssetCheckResult(passed=not extra, severity=WARN, metadata={"unexpected_columns": extra})

    checks = [quarantine_by_rule, row_conservation, no_pii_in_clear, schema_drift]
    checks += [reference_check(feed, ref, settings) for ref in quality.REFERENCES if ref.feed == feed.name]
    if feed.name == "sap_billing":
        checks.append(fx_rate_check(feed, settings))
    return checks


def reference_check(feed: Feed, ref: quality.Reference, settings: Settings) -> dg.AssetChecksDefinition:
    @partition_check(feed, settings, ref.check_name,
                     f"{feed.name}.{ref.column} values not in the latest {ref.target_feed} ({ref.target_column}): "
                     f"a warning, never a row rejection.")
    def _check(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        values = quality.read_zone(lake, "validated", feed, partition, [ref.column])[ref.column]
        count, sample, target_partition = quality.unmatched(lake, ref, values.combine_chunks())
        return dg.AssetCheckResult(passed=count == 0, severity=WARN, metadata={
            "unmatched_rows": count, "sample": sample, "reference_partition": target_partition or "none"})

    return _check


def fx_rate_check(feed: Feed, settings: Settings) -> dg.AssetChecksDefinition:
    @partition_check(feed, settings, "fx_rate_available",
                     "Billing lines with no exchange rate on or before their billing date (they stay in the "
                     "warehouse with a null USD value).")
    def _check(lake: Lake, record: DeliveryRecord, partition: str) -> dg.AssetCheckResult:
        billing = quality.read_zone(lake, "validated", feed, partition)
        count, sample = quality.lines_without_fx_rate(lake, billing)
        return dg.AssetCheckResult(passed=count == 0, severity=WARN,
                                   metadata={"lines_without_rate": count, "sample": dg.MetadataValue.json(sample)})

    return _check


def build_ingestion_checks(settings: Settings) -> list:
    return [check for feed in FEEDS.values() for check in feed_checks(feed, settings)]
