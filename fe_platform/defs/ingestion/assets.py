"""Raw and validated assets, generated for every feed of the registry, with the checks of each partition.

Per feed: `landing_<feed>` (files as the source delivered them, outside the platform's control), and one
step that materializes `raw_<feed>` (the bronze copy) and `validated_<feed>` (silver) for the partitions
of its run. A run started by the sensor (or `fe-platform run`) carries its batch of landing keys in its
config and may span several partitions: each delivery's partition is materialized with its own metadata
and checks, as a materialization event of that partition. A run without keys (a backfill of a date
range, a re-run from the UI) takes every landing file of its partitions that the delivery log does not
hold, and otherwise rebuilds each partition from raw. Every delivery's outcome is also an observation of
`landing_<feed>`, so rejected and duplicate files show in the UI and in the run's events.

The checks of `validated_<feed>` run in the same step, on the partition version just committed, and are
reported per partition; `row_conservation` is blocking, and automation waits on it before the partition
is loaded into the warehouse.
"""

from collections import Counter

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.partitions import partitions_for
from fe_platform.defs.resources import Ingestion
from fe_platform.lib import quality
from fe_platform.lib.delivery_log import DeliveryRecord, LogIndex, record_delivery
from fe_platform.lib.feeds import ARROW_TYPES, FEEDS, Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.planning import landing_entries
from fe_platform.lib.zones import PartitionVersion, current_version
from fe_platform.settings import Settings

SEVERITY = {"WARN": dg.AssetCheckSeverity.WARN, "ERROR": dg.AssetCheckSeverity.ERROR}


def owners(feed: Feed) -> list[str]:
    return [f"team:{feed.owner_team}", feed.owner_email]


def landing_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(f"landing_{feed.name}")


DELIVERY_LOG = dg.AssetKey("delivery_log")


def delivery_log_spec(settings: Settings) -> dg.AssetSpec:
    """The `deliveries/` zone: written by every ingestion run and by the landing sensors' rejections, each of which
    reports it updated, so data-quality reporting follows rejected and duplicate files too."""
    return dg.AssetSpec(
        DELIVERY_LOG, group_name="landing", owners=["team:data-engineering", "data-engineering@fe-pharma.example"],
        description="The delivery log: one record per delivery and outcome (loaded, rejected, duplicate), in the "
                    "lake's `deliveries/` zone.",
        kinds={"parquet"}, freshness_policy=freshness_policy("downstream", settings))


def delivery_log_updated(records: list[DeliveryRecord]) -> dg.AssetMaterialization:
    outcomes = Counter(record.outcome for record in records)
    return dg.AssetMaterialization(DELIVERY_LOG, metadata={"records": len(records), **outcomes})


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
    return dg.TableSchema(columns=[dg.TableColumn(name, ARROW_TYPES[kind]) for name, kind in feed.validated_columns()])


class Deliveries(dg.Config):
    """The landing keys a run ingests, in order (a sensor's batch); none: its partitions' new files."""

    landing_keys: list[str] = []


def delivery_observation(feed: Feed, record: DeliveryRecord) -> dg.AssetObservation:
    """A delivery's outcome, as an event of its landing asset (counts and reasons only: no cell values)."""
    metadata = {"landing_key": record.landing_key, "outcome": record.outcome, "partition": record.partition or "",
                "rows_in": record.rows_in, "rows_valid": record.rows_valid,
                "rows_quarantined": record.rows_quarantined, "bytes": record.bytes,
                "seconds": round(record.seconds, 3)}
    if record.reason:
        metadata["reason"] = record.reason
    return dg.AssetObservation(landing_key(feed), metadata=metadata)


def version_metadata(lake: Lake, feed: Feed, version: PartitionVersion) -> dict:
    return {
        "landing_keys": [p.landing_key for p in version.parts],
        "version": version.version,
        "uri": lake.uri(version.folder("validated")),
        "dagster/row_count": version.rows_valid,
        "rows_in": version.rows_in,
        "rows_valid": version.rows_valid,
        "rows_quarantined": version.rows_quarantined,
        "quarantine_by_rule": version.rule_counts,
        "schema_drift_columns": version.drift_columns,
        "dagster/column_schema": table_schema(feed),
    }


def _target(context: dg.AssetExecutionContext, key: dg.AssetKey, partition: str
            ) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The materialization a partition's checks vouch for (its latest one)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(storage_id=records[0].storage_id,
                                                         run_id=records[0].run_id, timestamp=records[0].timestamp)


def check_evaluations(context: dg.AssetExecutionContext, lake: Lake, feed: Feed, partition: str,
                      version: PartitionVersion | None, selected: set[str]):
    """Every selected check of one partition, as evaluations of that partition."""
    key = validated_key(feed)
    target = _target(context, key, partition)
    for measure in quality.measures(feed):
        if measure.name not in selected:
            continue
        if version is None:
            verdict = quality.Verdict(False, "ERROR", {"problem": f"no accepted delivery for {partition}"})
        else:
            verdict = measure.measure(lake, feed, version)
        yield dg.AssetCheckEvaluation(
            asset_key=key, check_name=measure.name, passed=verdict.passed, partition=partition,
            severity=SEVERITY[verdict.severity], metadata=verdict.metadata, blocking=measure.blocking,
            target_materialization_data=target, description=measure.description)


def ingestion_assets(feed: Feed, settings: Settings) -> dg.AssetsDefinition:
    partitions = partitions_for(feed)
    freshness = freshness_policy(feed.freshness, settings)
    raw, validated = raw_key(feed), validated_key(feed)

    @dg.multi_asset(
        name=f"ingest_{feed.name}",
        specs=[
            dg.AssetSpec(
                raw, deps=[landing_key(feed)], group_name="raw", owners=owners(feed),
                description=f"{feed.title}: byte-for-byte copies of accepted deliveries (bronze).",
                partitions_def=partitions, skippable=True, freshness_policy=freshness, kinds={"file"},
            ),
            dg.AssetSpec(
                validated, deps=[raw], group_name="validated", owners=owners(feed),
                description=f"{feed.title}, validated (silver). {feed.description}",
                partitions_def=partitions, skippable=True, freshness_policy=freshness,
                kinds={"parquet", "pandera"}, metadata={"dagster/column_schema": table_schema(feed)},
            ),
        ],
        check_specs=[dg.AssetCheckSpec(m.name, asset=validated, description=m.description, blocking=m.blocking,
                                       partitions_def=partitions) for m in quality.measures(feed)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Subsetting only lets the UI run the checks alone; raw and validated are one step.
        can_subset=True,
    )
    def _ingest(context: dg.AssetExecutionContext, config: Deliveries, lake: dg.ResourceParam[Lake],
                ingestion: dg.ResourceParam[Ingestion]):
        assets = set(context.selected_asset_keys)
        if assets and assets != {raw, validated}:
            raise dg.Failure(f"{raw.to_user_string()} and {validated.to_user_string()} materialize together")
        partition_keys = context.partition_keys
        checks = {k.name for k in context.selected_asset_check_keys}
        if not assets:  # the checks alone, on what is committed
            for partition in partition_keys:
                yield from check_evaluations(context, lake, feed, partition,
                                             current_version(lake, feed.name, partition), checks)
            return

        index = LogIndex.of(lake, feed.name)
        entries = {o.key: o for o in landing_entries(lake, feed)}
        if config.landing_keys:
            missing = [k for k in config.landing_keys if k not in entries]
            if missing:
                context.log.warning(f"no longer in landing, skipped: {', '.join(missing)}")
            todo = [entries[k] for k in config.landing_keys if k in entries and not index.knows(feed.name, entries[k])]
        else:
            todo = [o for o in entries.values() if not index.knows(feed.name, o)
                    and (d := feed.match(o.key.rsplit("/", 1)[-1])) and d.isoformat() in partition_keys]

        from fe_platform.lib.ingestion import ingest_delivery, revalidate_partition

        touched: dict[str, list[DeliveryRecord]] = {}
        outcomes: list[DeliveryRecord] = []
        for obj in todo:
            record = ingest_delivery(lake, feed, obj, ingestion.pii_key, ingestion.scratch(), index, log_loaded=False)
            yield delivery_observation(feed, record)
            outcomes.append(record)
            if record.outcome == "rejected":
                context.log.error(f"rejected {record.landing_key}: {record.reason}")
            elif record.outcome == "duplicate":
                context.log.warning(f"duplicate delivery {record.landing_key}: {record.reason}")
            else:
                touched.setdefault(record.partition, []).append(record)
        if not config.landing_keys:  # a backfill or re-run: what has nothing new is rebuilt from raw
            for partition in partition_keys:
                if partition not in touched and revalidate_partition(
                        lake, feed, partition, ingestion.pii_key, ingestion.scratch()):
                    context.log.info(f"rebuilt {feed.name} {partition} from raw")
                    touched[partition] = []

        for partition in sorted(touched):
            version = current_version(lake, feed.name, partition)
            if ingestion.catalog:  # Athena reads the version just committed
                ingestion.catalog.register_validated(feed.name, feed.validated_schema(), partition,
                                                     lake.uri(version.folder("validated")))
            yield dg.AssetMaterialization(raw, partition=partition, metadata={
                "raw_keys": [p.raw_key for p in version.parts], "sha256": [p.sha256 for p in version.parts],
                "uri": lake.uri(f"raw/{feed.name}/{partition}/")})
            yield dg.AssetMaterialization(validated, partition=partition,
                                          metadata=version_metadata(lake, feed, version))
            yield from check_evaluations(context, lake, feed, partition, version, checks)
            # Logged only now: a run that dies before its partition's events leaves these deliveries new, so
            # the next run ingests them again, instead of them being known with their partition never loaded.
            for record in touched[partition]:
                record_delivery(lake, record)
        if outcomes:
            yield delivery_log_updated(outcomes)
        if ingestion.catalog and todo:
            from fe_platform.lib.delivery_log import delivery_log_schema

            ingestion.catalog.register_deliveries(feed.name, delivery_log_schema())
        if not touched:
            context.log.info(f"{feed.name}: nothing new to materialize for {partition_keys[0]}"
                             f"{'..' + partition_keys[-1] if len(partition_keys) > 1 else ''}")

    return _ingest


def build_ingestion_assets(settings: Settings) -> list:
    """Per feed its raw and validated assets, and the landing files as an external asset unless a puller of
    the platform writes them (`pullers.py` defines those landing assets)."""
    from fe_platform.defs.ingestion.pullers import PULLED_FEEDS

    out: list = [delivery_log_spec(settings)]
    for feed in FEEDS.values():
        out += [] if feed.name in PULLED_FEEDS else [landing_spec(feed)]
        out.append(ingestion_assets(feed, settings))
    return out
