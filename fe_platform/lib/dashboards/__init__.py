"""Dashboards: declarations as data, Hyper extracts, previews and Tableau publishing.

    from fe_platform.lib.dashboards import DASHBOARDS, write_extract, render_preview, render_index
    from fe_platform.lib.dashboards.tableau import publish_extracts  # only when Tableau is configured
"""

from .data import chart_frame, quality_status
from .declarations import DASHBOARDS, REPORTING_TABLES, Chart, Dashboard, dashboard
from .extract import ExtractError, hyper_type, write_extract
from .preview import render_index, render_preview

__all__ = [
    "DASHBOARDS", "REPORTING_TABLES", "Chart", "Dashboard", "ExtractError", "chart_frame", "dashboard",
    "hyper_type", "quality_status", "render_index", "render_preview", "write_extract",
]
