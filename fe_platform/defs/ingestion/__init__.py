"""Ingestion: landing -> raw -> validated for every feed of the registry."""

from __future__ import annotations

import dagster as dg

from fe_platform.defs.ingestion.assets import build_ingestion_assets
from fe_platform.defs.ingestion.pullers import build_puller_defs
from fe_platform.defs.ingestion.sensors import build_ingestion_jobs_and_sensors
from fe_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    jobs, sensors = build_ingestion_jobs_and_sensors()
    return dg.Definitions.merge(
        dg.Definitions(assets=build_ingestion_assets(settings), jobs=jobs, sensors=sensors),
        build_puller_defs(settings),
    )
