"""Warehouse assets: the `lake` source tables, then the dbt models.

`warehouse/lake/<feed>` loads validated partitions into the warehouse (DuckDB from Arrow,
PostgreSQL with COPY, Redshift with COPY from S3). The dbt models are assets whose
upstreams are those tables, so lineage runs unbroken from landing to reporting; dbt tests
are their asset checks. The incremental facts are partitioned like their feeds and run as
one dbt invocation per backfill, with the partition window passed as `--vars`.
"""

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from fe_platform.defs.ingestion.assets import validated_key
from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.partitions import partitions_for
from fe_platform.defs.warehouse.automation import ON_UPSTREAM_CHANGE, on_partition_change
from fe_platform.defs.warehouse.project import dbt_env, dbt_project, prepare_manifest
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.ingestion import delivery_log_table, zone_key
from fe_platform.lib.lake import lake_from_settings
from fe_platform.lib.warehouse import DELIVERIES_SCHEMA, warehouse_from_settings
from fe_platform.settings import Settings

DATA_ENGINEERING = ["team:data-engineering", "data-engineering@fe-pharma.example"]
COMMERCIAL_ANALYTICS = ["team:commercial-analytics", "commercial-analytics@fe-pharma.example"]
# The incremental facts: the model, the feed whose partitions it follows.
PARTITIONED_FACTS = {"fct_rx_weekly": "iqvia_rx", "fct_billing_line": "sap_billing"}
LAYER_GROUPS = {"staging": "warehouse_staging", "intermediate": "warehouse_staging",
                "marts": "warehouse_marts", "reporting": "warehouse_reporting"}


def lake_table_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", "lake", name])


def lake_table_asset(feed: Feed, settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=lake_table_key(feed.name),
        deps=[validated_key(feed)],
        partitions_def=partitions_for(feed),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=on_partition_change(validated_key(feed)),
        group_name="warehouse_lake",
        owners=DATA_ENGINEERING,
        kinds={settings.warehouse_target},
        description=f"`lake.{feed.name}` in the warehouse: every validated partition of {feed.name}; a partition "
                    f"load replaces that partition's rows in one transaction.",
    )
    def _load(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake = lake_from_settings(settings)
        loaded: dict[str, int] = {}
        with warehouse_from_settings(settings) as warehouse:
            warehouse.ensure_source(feed.name)
            for partition in context.partition_keys:
                key = zone_key("validated", feed.name, partition)
                if not lake.exists(key):
                    continue  # no accepted delivery for this date
                source = None if settings.warehouse_target == "redshift" else lake.read_parquet(key)
                loaded[partition] = warehouse.load_partition(feed.name, partition, source)
        context.log.info(f"loaded {len(loaded)} of {len(context.partition_keys)} partitions into lake.{feed.name}")
        return dg.MaterializeResult(metadata={"partitions_loaded": len(loaded),
                                              "dagster/row_count": sum(loaded.values()),
                                              "rows_by_partition": loaded})

    return _load


def deliveries_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=lake_table_key("deliveries"),
        deps=[validated_key(f) for f in FEEDS.values()],
        automation_condition=ON_UPSTREAM_CHANGE,
        group_name="warehouse_lake",
        owners=DATA_ENGINEERING,
        kinds={settings.warehouse_target},
        description="`lake.deliveries`: the delivery log (loaded, rejected, duplicate) for data-quality reporting.",
    )
    def _load(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        log = delivery_log_table(lake_from_settings(settings))
        table = log.select(DELIVERIES_SCHEMA.names).cast(DELIVERIES_SCHEMA)
        with warehouse_from_settings(settings) as warehouse:
            rows = warehouse.load_deliveries(None if settings.warehouse_target == "redshift" else table)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _load


class PlatformDbtTranslator(DagsterDbtTranslator):
    """Groups by layer, owners, automation and freshness for every dbt model."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id)
        if node["resource_type"] != "model":
            return spec
        layer = node["fqn"][1] if len(node["fqn"]) > 2 else "marts"
        feed = PARTITIONED_FACTS.get(node["name"])
        extra_deps = []
        if feed:
            # The fact's partition follows its feed's: depend on that partition of the lake table directly.
            extra_deps = [dg.AssetDep(lake_table_key(feed), partition_mapping=dg.IdentityPartitionMapping())]
        return spec.replace_attributes(
            group_name=LAYER_GROUPS.get(layer, "warehouse_marts"),
            owners=DATA_ENGINEERING if layer in ("staging", "intermediate") else COMMERCIAL_ANALYTICS,
            automation_condition=on_partition_change(lake_table_key(feed)) if feed else ON_UPSTREAM_CHANGE,
            deps=[*spec.deps, *extra_deps],
            freshness_policy=self._freshness,
        ).merge_attributes(kinds={self._target})

    def __init__(self, settings: Settings):
        super().__init__()
        self._target = settings.warehouse_target
        self._freshness = freshness_policy("downstream", settings)


def _window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    window = context.partition_time_window
    return {"min_date": window.start.date().isoformat(),
            "max_date": (window.end - timedelta(days=1)).date().isoformat()}


def _ensure_sources(settings: Settings) -> None:
    with warehouse_from_settings(settings) as warehouse:
        warehouse.ensure_all_sources()


def dbt_model_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    manifest = prepare_manifest()
    project = dbt_project(settings)
    translator = PlatformDbtTranslator(settings)

    def invoke(context, dbt: DbtCliResource, args: list[str]):
        os.environ.update(dbt_env(settings))  # profiles.yml reads the connection from the environment
        _ensure_sources(settings)
        yield from dbt.cli(args, context=context).stream()

    @dbt_assets(manifest=manifest, project=project, dagster_dbt_translator=translator, name="warehouse_models",
                exclude=" ".join(PARTITIONED_FACTS))
    def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from invoke(context, dbt, ["build"])

    facts = []
    for model, feed in PARTITIONED_FACTS.items():
        @dbt_assets(manifest=manifest, project=project, dagster_dbt_translator=translator, select=model,
                    name=f"warehouse_{model}", partitions_def=partitions_for(FEEDS[feed]),
                    backfill_policy=dg.BackfillPolicy.single_run())
        def fact(context: dg.AssetExecutionContext, dbt: DbtCliResource):
            yield from invoke(context, dbt, ["build", "--vars", json.dumps(_window_vars(context))])

        facts.append(fact)
    return [warehouse_models, *facts]


def build_warehouse_assets(settings: Settings) -> list:
    return [*(lake_table_asset(f, settings) for f in FEEDS.values()), deliveries_asset(settings),
            *dbt_model_assets(settings)]
