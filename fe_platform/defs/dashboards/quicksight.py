"""A dashboard's reporting tables as QuickSight data sets, from the platform's settings."""

from __future__ import annotations

from collections.abc import Sequence

from fe_platform.lib.dashboards.declarations import Dashboard
from fe_platform.lib.dashboards.quicksight import (
    WarehouseConnection,
    client,
    data_set_spec,
    ensure_data_source,
    publish_data_sets,
    safe_id,
)
from fe_platform.lib.dashboards.reporting import ReportingTable
from fe_platform.settings import Settings

WAREHOUSE_DATA_SOURCE_ID = "fe-platform-warehouse"


def warehouse_connection(settings: Settings) -> WarehouseConnection:
    wh = settings.postgres or settings.redshift
    if wh is None:
        raise ValueError("QuickSight needs FE_QUICKSIGHT_DATA_SOURCE_ARN or a PostgreSQL or Redshift warehouse")
    return WarehouseConnection(kind=settings.warehouse_target, host=wh.host, port=wh.port, database=wh.database,
                               user=wh.user, password=wh.password)


def publish_dashboard_data_sets(settings: Settings, dashboard: Dashboard, tables: Sequence[ReportingTable]) -> dict:
    """Create or update the dashboard's data sets and start their SPICE ingestion; data set id -> ingestion."""
    qs_settings = settings.quicksight
    qs = client(qs_settings.region, qs_settings.endpoint_url)
    source_arn = qs_settings.data_source_arn or ensure_data_source(
        qs, qs_settings.account_id, WAREHOUSE_DATA_SOURCE_ID, "FE warehouse", warehouse_connection(settings),
        qs_settings.principal_arns)
    specs = [data_set_spec(safe_id("fe", dashboard.slug), f"FE {dashboard.title}", t) for t in tables]
    return publish_data_sets(qs, qs_settings.account_id, source_arn, specs, qs_settings.principal_arns)
