"""Dashboards: Hyper extracts, Tableau and QuickSight publishing, previews, the index page."""

from collections.abc import Sequence

import dagster as dg

from fe_platform.defs.dashboards.assets import build_dashboard_assets
from fe_platform.defs.warehouse.project import prepare_manifest
from fe_platform.lib.dashboards.reporting import load_reporting_tables
from fe_platform.settings import Settings


def build_defs(settings: Settings, dbt_assets: Sequence[dg.AssetsDefinition] | None = None) -> dg.Definitions:
    """`dbt_assets`: the warehouse's `@dbt_assets` definitions, whose translator names the reporting tables'
    asset keys (built here from the same code when not given)."""
    if dbt_assets is None:
        from fe_platform.defs.warehouse.assets import dbt_model_assets

        dbt_assets = dbt_model_assets(settings)
    reporting = load_reporting_tables(prepare_manifest())
    return dg.Definitions(assets=build_dashboard_assets(settings, reporting, dbt_assets))
