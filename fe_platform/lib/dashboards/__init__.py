"""Dashboards: declarations as data, Hyper extracts, previews, data-quality status, Tableau and QuickSight.

    from fe_platform.lib.dashboards import DASHBOARDS, write_extract, render_preview, render_index
    from fe_platform.lib.dashboards.tableau import publish_extracts  # only when Tableau is configured
    from fe_platform.lib.dashboards.quicksight import publish_data_sets  # only when QuickSight is configured
"""

# The modules load on first use: drawing pulls in matplotlib and pandas, extracts the Hyper API, and loading
# the Dagster definitions needs none of them.
_WHERE = {
    "CheckResult": "check_status",
    "FailingCheck": "check_status",
    "QualityStatus": "check_status",
    "summarize": "check_status",
    "chart_frame": "data",
    "DASHBOARDS": "declarations",
    "Chart": "declarations",
    "Dashboard": "declarations",
    "dashboard": "declarations",
    "ExtractError": "extract",
    "hyper_type": "extract",
    "write_extract": "extract",
    "render_index": "preview",
    "render_preview": "preview",
    "render_previews": "preview",
    "ReportingTable": "reporting",
    "load_reporting_tables": "reporting",
    "reporting_tables": "reporting",
}

__all__ = [
    "DASHBOARDS", "CheckResult", "Chart", "Dashboard", "ExtractError", "FailingCheck", "QualityStatus",
    "ReportingTable", "chart_frame", "dashboard", "hyper_type", "load_reporting_tables", "render_index",
    "render_preview", "render_previews", "reporting_tables", "summarize", "write_extract",
]


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
