"""The code location: each domain's Definitions, merged. Nothing else lives here."""

from __future__ import annotations

import dagster as dg

from fe_platform.defs import ingestion, warehouse
from fe_platform.settings import Settings, settings


def build_definitions(s: Settings) -> dg.Definitions:
    return dg.Definitions.merge(
        ingestion.build_defs(s),
        warehouse.build_defs(s),
    )


defs = build_definitions(settings())
