"""Dashboards: declarations as data, Hyper extracts, previews, data-quality status, Tableau and QuickSight.

    from fe_platform.lib.dashboards import DASHBOARDS, write_extract, render_preview, render_index
    from fe_platform.lib.dashboards.tableau import publish_extracts  # only when Tableau is configured
    from fe_platform.lib.dashboards.quicksight import publish_data_sets  # only when QuickSight is configured
"""

from .check_status import CheckResult, FailingCheck, QualityStatus, summarize
from .data import chart_frame
from .declarations import DASHBOARDS, Chart, Dashboard, dashboard
from .extract import ExtractError, hyper_type, write_extract
from .preview import render_index, render_preview
from .reporting import ReportingTable, load_reporting_tables, reporting_tables

__all__ = [
    "DASHBOARDS", "CheckResult", "Chart", "Dashboard", "ExtractError", "FailingCheck", "QualityStatus",
    "ReportingTable", "chart_frame", "dashboard", "hyper_type", "load_reporting_tables", "render_index",
    "render_preview", "reporting_tables", "summarize", "write_extract",
]
