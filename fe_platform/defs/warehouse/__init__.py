"""Warehouse: the `lake` source tables and the dbt star schema."""

from __future__ import annotations

import dagster as dg

from fe_platform.defs.warehouse.assets import build_warehouse_assets
from fe_platform.defs.warehouse.automation import automation_sensors
from fe_platform.defs.warehouse.project import dbt_resource
from fe_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_warehouse_assets(settings), sensors=automation_sensors(),
                          resources={"dbt": dbt_resource(settings)})
