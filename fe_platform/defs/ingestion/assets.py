"""Raw and validated assets, generated for every feed of the registry.

Per feed: `landing_<feed>` (files as the source delivered them, outside the platform's
control), and one step that materializes `raw_<feed>` (the bronze copy) and
`validated_<feed>` (silver) for a partition. A run started by the sensor carries the
landing key it is for; a run without one (a backfill, a re-run from the UI) takes every
landing file of the partition that is not ingested yet, and otherwise rebuilds the
partition from its latest accepted delivery in raw.
"""


from datetime import UTC, datetime

import dagster as dg

from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.partitions import partitions_for
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.ingestion import (
    ingest_landing_file,
    landing_files,
    revalidate_partition,
    zone_key,
)
from fe_platform.lib.lake import lake_from_settings
from fe_platform.settings import Settings

LANDING_KEY_TAG = "fe_platform/landing_key"


def owners(feed: Feed) -> list[str]:
    return [f"team:{feed.owner_team}", feed.owner_email]


def landing_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(f"landing_{feed.name}")


def raw_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{feed.name}")


def validated_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(f"validated_{feed.name}")


def landing_spec(feed: Feed) -> dg.AssetSpec:
    return dg.AssetSpec(
        landing_key(feed),
        description=f"{feed.title}: files as {feed.source} delivers them to `landing/{feed.name}/` "
                    f"(pattern `{feed.file_pattern}`).",
        group_name="landing",
        owners=owners(feed),
        kinds={"file"},
        metadata={"source_system": feed.source, "file_pattern": feed.file_pattern},
    )


def table_schema(feed: Feed) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in feed.validated_schema()])


def _files_for_partition(lake, feed: Feed, partition: str) -> list[str]:
    return [k for k in landing_files(lake, feed)
            if (d := feed.match(k.rsplit("/", 1)[-1])) is not None and d.isoformat() == partition]


def ingestion_assets(feed: Feed, settings: Settings) -> dg.AssetsDefinition:
    partitions = partitions_for(feed)
    freshness = freshness_policy(feed.freshness, settings)

    @dg.multi_asset(
        name=f"ingest_{feed.name}",
        specs=[
            dg.AssetSpec(
                raw_key(feed), deps=[landing_key(feed)], group_name="raw", owners=owners(feed),
                description=f"{feed.title}: byte-for-byte copies of accepted deliveries (bronze).",
                partitions_def=partitions, skippable=True, freshness_policy=freshness,
                kinds={"file"},
            ),
            dg.AssetSpec(
                validated_key(feed), deps=[raw_key(feed)], group_name="validated", owners=owners(feed),
                description=f"{feed.title}, validated (silver). {feed.description}",
                partitions_def=partitions, skippable=True, freshness_policy=freshness,
                kinds={"parquet", "pandera"},
                metadata={"dagster/column_schema": table_schema(feed)},
            ),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        can_subset=False,
    )
    def _ingest(context: dg.AssetExecutionContext):
        lake = lake_from_settings(settings)
        partition = context.partition_key
        started = datetime.now(UTC)
        tagged = context.run.tags.get(LANDING_KEY_TAG)
        keys = [tagged] if tagged else _files_for_partition(lake, feed, partition)
        new = []
        for key in keys:
            record = ingest_landing_file(lake, key, settings.pii_hmac_key)
            if record.outcome == "rejected":
                context.log.error(f"rejected {key}: {record.reason}")
            elif record.outcome == "duplicate":
                context.log.warning(f"duplicate delivery {key}: {record.reason}")
            elif record.ingested_at >= started:  # loaded now, not found already ingested
                new.append(record)
        if new:
            record = new[-1]
        else:
            record = revalidate_partition(lake, feed, partition, settings.pii_hmac_key)
            if record is None:
                context.log.warning(f"{feed.name} {partition}: no accepted delivery; nothing materialized")
                return
            context.log.info(f"rebuilt {feed.name} {partition} from {record.raw_key}")
        yield dg.MaterializeResult(asset_key=raw_key(feed), metadata={
            "landing_key": record.landing_key, "raw_key": record.raw_key, "sha256": record.sha256,
            "uri": lake.uri(record.raw_key),
        })
        yield dg.MaterializeResult(asset_key=validated_key(feed), metadata={
            "landing_key": record.landing_key,
            "uri": lake.uri(zone_key("validated", feed.name, partition)),
            "dagster/row_count": record.rows_valid,
            "rows_in": record.rows_in,
            "rows_valid": record.rows_valid,
            "rows_quarantined": record.rows_quarantined,
            "quarantine_by_rule": record.rules,
            "schema_drift_columns": record.drift_columns or "[]",
            "dagster/column_schema": table_schema(feed),
        })

    return _ingest


def build_ingestion_assets(settings: Settings) -> list:
    out: list = []
    for feed in FEEDS.values():
        out += [landing_spec(feed), ingestion_assets(feed, settings)]
    return out
