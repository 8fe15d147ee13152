"""Asset checks on every validated partition: rules, row conservation, PII, drift, references."""


import json

import dagster as dg

from fe_platform.defs.ingestion.assets import validated_key
from fe_platform.defs.partitions import partitions_for
from fe_platform.lib import quality
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.lake import lake_from_settings
from fe_platform.settings import Settings

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR


def _no_delivery(partition: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=ERROR,
                               description=f"no accepted delivery for partition {partition}")


def feed_checks(feed: Feed, settings: Settings) -> list[dg.AssetChecksDefinition]:
    asset = validated_key(feed)
    partitions = partitions_for(feed)

    def lake_and_record(context):
        lake = lake_from_settings(settings)
        return lake, quality.latest_loaded(lake, feed, context.partition_key)

    @dg.asset_check(asset=asset, name="quarantine_by_rule", partitions_def=partitions,
                    description=f"Rows quarantined per pandera rule, with a sample: WARN up to "
                                f"{feed.quarantine_warn_pct}% of the delivery, ERROR above.")
    def quarantine_by_rule(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake, record = lake_and_record(context)
        if record is None:
            return _no_delivery(context.partition_key)
        quarantine = quality.read_zone(lake, "quarantine", feed, context.partition_key)
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

    @dg.asset_check(asset=asset, name="row_conservation", partitions_def=partitions, blocking=True,
                    description="Rows in the delivery = rows validated + rows quarantined; nothing lost.")
    def row_conservation(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake, record = lake_and_record(context)
        if record is None:
            return _no_delivery(context.partition_key)
        valid = quality.parquet_rows(lake, "validated", feed, context.partition_key)
        bad = quality.parquet_rows(lake, "quarantine", feed, context.partition_key)
        return dg.AssetCheckResult(
            passed=record.rows_in == valid + bad,
            metadata={"rows_in": record.rows_in, "rows_validated": valid, "rows_quarantined": bad,
                      "landing_key": record.landing_key},
        )

    @dg.asset_check(asset=asset, name="no_pii_in_clear", partitions_def=partitions,
                    description="No value of the validated dataset looks like an email address or a phone number.")
    def no_pii_in_clear(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake, record = lake_and_record(context)
        if record is None:
            return _no_delivery(context.partition_key)
        found = quality.pii_matches(quality.read_zone(lake, "validated", feed, context.partition_key))
        return dg.AssetCheckResult(passed=not found, metadata={"columns_with_matches": found})

    @dg.asset_check(asset=asset, name="schema_drift", partitions_def=partitions,
                    description="Columns the contract does not name: kept in raw, left out of validated.")
    def schema_drift(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        _, record = lake_and_record(context)
        if record is None:
            return _no_delivery(context.partition_key)
        extra = json.loads(record.drift_columns) if record.drift_columns else []
        return dg.AssetCheckResult(passed=not extra, severity=WARN, metadata={"unexpected_columns": extra})

    checks = [quarantine_by_rule, row_conservation, no_pii_in_clear, schema_drift]
    checks += [reference_check(feed, ref, settings) for ref in quality.REFERENCES if ref.feed == feed.name]
    if feed.name == "sap_billing":
        checks.append(fx_rate_check(feed, settings))
    return checks


def reference_check(feed: Feed, ref: quality.Reference, settings: Settings) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=validated_key(feed), name=ref.check_name, partitions_def=partitions_for(feed),
                    description=f"{feed.name}.{ref.column} values not in the latest {ref.target_feed} "
                                f"({ref.target_column}): a warning, never a row rejection.")
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake = lake_from_settings(settings)
        if quality.latest_loaded(lake, feed, context.partition_key) is None:
            return _no_delivery(context.partition_key)
        values = quality.read_zone(lake, "validated", feed, context.partition_key, [ref.column])[ref.column]
        count, sample, target_partition = quality.unmatched(lake, ref, values.combine_chunks())
        return dg.AssetCheckResult(passed=count == 0, severity=WARN, metadata={
            "unmatched_rows": count, "sample": sample, "reference_partition": target_partition or "none"})

    return _check


def fx_rate_check(feed: Feed, settings: Settings) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=validated_key(feed), name="fx_rate_available", partitions_def=partitions_for(feed),
                    description="Billing lines with no exchange rate on or before their billing date "
                                "(they stay in the warehouse with a null USD value).")
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake = lake_from_settings(settings)
        if quality.latest_loaded(lake, feed, context.partition_key) is None:
            return _no_delivery(context.partition_key)
        billing = quality.read_zone(lake, "validated", feed, context.partition_key)
        count, sample = quality.lines_without_fx_rate(lake, billing)
        return dg.AssetCheckResult(passed=count == 0, severity=WARN,
                                   metadata={"lines_without_rate": count, "sample": dg.MetadataValue.json(sample)})

    return _check


def build_ingestion_checks(settings: Settings) -> list:
    return [check for feed in FEEDS.values() for check in feed_checks(feed, settings)]
