"""Ingestion: landing -> raw -> validated for every feed of the registry."""

from __future__ import annotations

import dagster as dg

from fe_platform.defs.ingestion.assets import build_ingestion_assets
from fe_platform.defs.ingestion.fx_pull import build_fx_pull_defs
from fe_platform.defs.ingestion.sensors import build_ingestion_jobs_and_sensors
from fe_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    jobs, sensors = build_ingestion_jobs_and_sensors()
    fx_jobs, fx_schedules = build_fx_pull_defs(settings)
    return dg.Definitions(
        assets=build_ingestion_assets(settings),
        jobs=jobs + fx_jobs,
        schedules=fx_schedules,
        sensors=sensors,
    )
