"""Warehouse assets: the `lake` source tables, then the dbt models.

`warehouse/lake/<feed>` loads validated partitions into the warehouse (DuckDB and PostgreSQL stream the
partition version's Parquet parts in, Redshift COPYs its S3 folder), each partition replaced in one
transaction with the version it now holds. The dbt models are assets whose upstreams are those tables,
so lineage runs unbroken from landing to reporting; dbt tests are their asset checks. A refresh is one
`dbt build` of everything stale: the incremental facts (those whose dbt config names a `delivery_feed`)
are told, in FE_DBT_DELIVERY_DATES, which delivery partitions of their feed were loaded since they were last
built.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from fe_platform.defs.ingestion.assets import DELIVERY_LOG, validated_key
from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.partitions import partitions_for
from fe_platform.defs.warehouse.automation import ON_UPSTREAM_CHANGE, on_partition_change
from fe_platform.defs.warehouse.project import DbtRun, dbt_project, delivery_facts, load_manifest
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.warehouse_target import WarehouseTarget
from fe_platform.lib.zones import current_version
from fe_platform.settings import Settings

DATA_ENGINEERING = ["team:data-engineering", "data-engineering@fe-pharma.example"]
COMMERCIAL_ANALYTICS = ["team:commercial-analytics", "commercial-analytics@fe-pharma.example"]
LAYER_GROUPS = {"staging": "warehouse_staging", "intermediate": "warehouse_staging",
                "marts": "warehouse_marts", "reporting": "warehouse_reporting"}


def lake_table_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", "lake", name])


def blocked_partitions(instance: dg.DagsterInstance, feed: Feed, partitions: list[str]) -> dict[str, list[str]]:
    """Partitions whose latest result of a blocking check of `validated_<feed>` is not a pass -> those checks."""
    from fe_platform.lib.quality import measures

    keys = [dg.AssetCheckKey(validated_key(feed), m.name) for m in measures(feed) if m.blocking]
    blocked: dict[str, list[str]] = {}
    for info in instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=partitions):
        if info.latest_execution_status != AssetCheckExecutionRecordStatus.SUCCEEDED:
            blocked.setdefault(info.partition_key, []).append(info.check_key.name)
    return blocked


def stale_partitions(instance: dg.DagsterInstance, feed: Feed, partitions: list[str]) -> list[str]:
    """The partitions whose validated version was materialized after the table last loaded them."""
    latest = instance.event_log_storage.get_latest_storage_id_by_partition
    validated = latest(validated_key(feed), DagsterEventType.ASSET_MATERIALIZATION, set(partitions))
    loaded = latest(lake_table_key(feed.name), DagsterEventType.ASSET_MATERIALIZATION, set(partitions))
    return [p for p in partitions if p in validated and loaded.get(p, -1) < validated[p]]


def lake_table_asset(feed: Feed, settings: Settings) -> dg.AssetsDefinition:
    key = lake_table_key(feed.name)

    @dg.asset(
        key=key,
        deps=[validated_key(feed)],
        partitions_def=partitions_for(feed),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=on_partition_change(validated_key(feed)),
        group_name="warehouse_lake",
        owners=DATA_ENGINEERING,
        kinds={settings.warehouse_target},
        freshness_policy=freshness_policy("downstream", settings),
        output_required=False,
        description=f"`lake.{feed.name}` in the warehouse: every validated partition of {feed.name}; a partition "
                    f"load replaces that partition's rows in one transaction. A partition whose blocking checks "
                    f"did not pass is not loaded.",
    )
    def _load(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake],
              warehouse: dg.ResourceParam[WarehouseTarget]):
        partitions = context.partition_keys
        # A run over a range loads what is stale in it; a run of one partition loads it whatever its state.
        todo = partitions if len(partitions) == 1 else stale_partitions(context.instance, feed, partitions)
        blocked = blocked_partitions(context.instance, feed, todo)
        with warehouse.connect() as wh:
            for partition in todo:
                version = current_version(lake, feed.name, partition)
                if version is None:
                    continue  # no accepted delivery for this date
                if partition in blocked:
                    context.log.warning(f"{feed.name} {partition} not loaded: blocking check(s) "
                                        f"{', '.join(blocked[partition])} did not pass")
                    continue
                if wh.dialect == "redshift":
                    source = lake.uri(version.folder("validated"))
                else:
                    source = _parts_reader(lake, feed, version.keys("validated"))
                rows = wh.load_partition(feed.name, partition, source, version.version)
                yield dg.AssetMaterialization(key, partition=partition, metadata={
                    "dagster/row_count": rows, "version": version.version,
                    "landing_keys": [p.landing_key for p in version.parts]})
        context.log.info(f"lake.{feed.name}: {len(todo)} of {len(partitions)} partitions stale")

    return _load


def _parts_reader(lake: Lake, feed: Feed, keys: list[str]):
    """The rows of a version's Parquet parts as one stream of record batches."""
    import pyarrow as pa

    schema = feed.validated_schema()

    def batches():
        for key in keys:
            yield from lake.parquet_file(key).iter_batches(batch_size=65_536)

    return pa.RecordBatchReader.from_batches(schema, batches())


def deliveries_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=lake_table_key("deliveries"),
        # The log itself (a run that only rejects files updates nothing else), and the feeds it reports on.
        deps=[DELIVERY_LOG, *(validated_key(f) for f in FEEDS.values())],
        automation_condition=ON_UPSTREAM_CHANGE,
        group_name="warehouse_lake",
        owners=DATA_ENGINEERING,
        kinds={settings.warehouse_target},
        freshness_policy=freshness_policy("downstream", settings),
        description="`lake.deliveries`: the delivery log (loaded, rejected, duplicate) for data-quality reporting.",
    )
    def _load(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake],
              warehouse: dg.ResourceParam[WarehouseTarget]) -> dg.MaterializeResult:
        from fe_platform.lib.delivery_log import delivery_log_table
        from fe_platform.lib.warehouse import DELIVERIES_SCHEMA

        with warehouse.connect() as wh:
            if wh.dialect == "redshift":
                rows = wh.load_deliveries(None)
            else:
                table = delivery_log_table(lake).select(DELIVERIES_SCHEMA.names).cast(DELIVERIES_SCHEMA)
                rows = wh.load_deliveries(table)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _load


class PlatformDbtTranslator(DagsterDbtTranslator):
    """Groups by layer, owners, automation and freshness for every dbt model."""

    def __init__(self, settings: Settings):
        super().__init__()
        self._target = settings.warehouse_target
        self._freshness = freshness_policy("downstream", settings)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id)
        if node["resource_type"] != "model":
            return spec
        layer = node["fqn"][1] if len(node["fqn"]) > 2 else "marts"
        return spec.replace_attributes(
            group_name=LAYER_GROUPS.get(layer, "warehouse_marts"),
            owners=DATA_ENGINEERING if layer in ("staging", "intermediate") else COMMERCIAL_ANALYTICS,
            automation_condition=ON_UPSTREAM_CHANGE,
            freshness_policy=self._freshness,
        ).merge_attributes(kinds={self._target})


LOADS_THROUGH = "lake_loads_through"  # on a fact's materialization: the last lake load its build took


def delivery_dates(context: dg.AssetExecutionContext, facts: dict[str, str]
                   ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Per feed of a selected incremental fact, the partitions of `warehouse/lake/<feed>` loaded since the loads
    its last build took (all of them when it never was built): what its incremental run must process; and per
    fact the last load this build takes. A load that commits while the build runs is after that mark, so the
    next build takes it: no load falls between two windows."""
    instance = context.instance
    latest = instance.event_log_storage.get_latest_storage_id_by_partition
    windows: dict[str, list[str]] = {}
    marks: dict[str, int] = {}
    for model, feed in facts.items():
        fact_key = next((k for k in context.selected_asset_keys if k.path[-1] == model), None)
        if fact_key is None:
            continue
        built = instance.fetch_materializations(fact_key, limit=1).records
        since = None
        if built:
            mark = built[0].asset_materialization.metadata.get(LOADS_THROUGH)
            since = mark.value if mark is not None else built[0].storage_id
        loaded = latest(lake_table_key(feed), DagsterEventType.ASSET_MATERIALIZATION, after_cursor=since)
        marks[model] = max([*loaded.values(), since or 0])
        windows[feed] = sorted(set(windows.get(feed, [])) | set(loaded))
    return windows, marks


def marked(context: dg.AssetExecutionContext, event, marks: dict[str, int]):
    """A fact's materialization carries the last lake load its build took."""
    if isinstance(event, dg.Output):
        key = context.asset_key_for_output(event.output_name)
    elif isinstance(event, dg.AssetMaterialization):
        key = event.asset_key
    else:
        return event
    if key.path[-1] not in marks:
        return event
    return event.with_metadata({**(event.metadata or {}), LOADS_THROUGH: marks[key.path[-1]]})


def dbt_model_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    manifest = load_manifest()
    facts = delivery_facts(manifest)
    translator = PlatformDbtTranslator(settings)
    run = DbtRun(settings)

    @dbt_assets(manifest=manifest, project=dbt_project(settings), dagster_dbt_translator=translator,
                name="warehouse_models")
    def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                         warehouse: dg.ResourceParam[WarehouseTarget]):
        windows, marks = delivery_dates(context, facts)
        if windows:
            context.log.info(f"incremental facts process delivery partitions {windows}")
        with warehouse.writer_lock(), run.environment(windows):
            with warehouse.connect() as wh:
                wh.ensure_all_sources()
            for event in dbt.cli(["build"], context=context, target_path=run.target_path()).stream():
                yield marked(context, event, marks)

    return [warehouse_models]


def build_warehouse_assets(settings: Settings) -> list:
    return [*(lake_table_asset(f, settings) for f in FEEDS.values()), deliveries_asset(settings),
            *dbt_model_assets(settings)]
