"""Dashboards: Hyper extracts, Tableau publishing, previews, the index page."""

from __future__ import annotations

import dagster as dg

from fe_platform.defs.dashboards.assets import build_dashboard_assets
from fe_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_dashboard_assets(settings))
