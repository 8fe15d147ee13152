"""Dashboards: Hyper extracts, Tableau and QuickSight publishing, previews, the index page."""

import dagster as dg
from dagster_dbt.asset_utils import DAGSTER_DBT_MANIFEST_METADATA_KEY

from fe_platform.defs.dashboards.assets import build_dashboard_assets
from fe_platform.defs.warehouse.project import load_manifest
from fe_platform.lib.dashboards.reporting import reporting_tables
from fe_platform.settings import Settings


def _is_dbt_assets(assets_def) -> bool:
    return isinstance(assets_def, dg.AssetsDefinition) and any(
        DAGSTER_DBT_MANIFEST_METADATA_KEY in (metadata or {}) for metadata in assets_def.metadata_by_key.values())


def build_defs(settings: Settings, upstream: dg.Definitions | None = None) -> dg.Definitions:
    """`upstream`: the Definitions the dashboards sit on (ingestion and warehouse, merged). Its `@dbt_assets`
    name the reporting tables' asset keys (dagster-dbt's lookup), and its asset graph gives every check upstream
    of each dashboard. Built here from the same code when not given."""
    if upstream is None:
        from fe_platform.defs import ingestion, warehouse
        from fe_platform.defs.resources import platform_resources

        upstream = dg.Definitions.merge(ingestion.build_defs(settings), warehouse.build_defs(settings),
                                        dg.Definitions(resources=platform_resources(settings)))
    dbt_assets = [a for a in upstream.assets or [] if _is_dbt_assets(a)]
    reporting = reporting_tables(load_manifest())
    return dg.Definitions(assets=build_dashboard_assets(settings, reporting, dbt_assets,
                                                        upstream.resolve_asset_graph()))
