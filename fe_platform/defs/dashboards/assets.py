"""Dashboard assets, generated from the declarations in `fe_platform/lib/dashboards/declarations.py`.

Each dashboard reads its reporting tables from the warehouse, writes its Hyper extract into the
lake's `dashboards/` zone, renders a preview a person can open without Tableau, and, where a
Tableau server is configured, publishes the extract as a data source and asks for a refresh.
`dashboard_index` is the page that links them all with their freshness and data-quality status.
"""

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.warehouse.automation import ON_UPSTREAM_CHANGE
from fe_platform.lib.dashboards.data import quality_status
from fe_platform.lib.dashboards.declarations import DASHBOARDS, Dashboard
from fe_platform.lib.dashboards.extract import write_extract
from fe_platform.lib.dashboards.preview import render_index, render_preview
from fe_platform.lib.lake import Lake
from fe_platform.lib.warehouse_target import WarehouseTarget
from fe_platform.settings import Settings

QUALITY_TABLE = "rpt_data_quality"


def dashboard_key(dashboard: Dashboard) -> dg.AssetKey:
    return dg.AssetKey(["dashboards", dashboard.slug])


def reporting_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["reporting", table])


def extract_key(dashboard: Dashboard) -> str:
    return f"dashboards/{dashboard.slug}.hyper"


def _status_path(settings: Settings, dashboard: Dashboard) -> Path:
    return settings.dashboards_dir / f"{dashboard.slug}.status.json"


def dashboard_asset(dashboard: Dashboard, settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=dashboard_key(dashboard),
        deps=[reporting_key(t) for t in dashboard.tables],
        group_name="dashboards",
        owners=[f"team:{dashboard.owner_team}", dashboard.owner_email],
        description=f"{dashboard.title}: {dashboard.description}",
        automation_condition=ON_UPSTREAM_CHANGE,
        freshness_policy=freshness_policy("downstream", settings),
        kinds={"tableau", "hyper"},
        metadata={"reporting_tables": list(dashboard.tables), "charts": [c.title for c in dashboard.charts]},
    )
    def _dashboard(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake],
                   warehouse: dg.ResourceParam[WarehouseTarget]) -> dg.MaterializeResult:
        with warehouse.connect() as wh:
            names = sorted({*dashboard.tables, QUALITY_TABLE})
            tables = {name: wh.read_table("reporting", name) for name in names}
        status = quality_status(tables[QUALITY_TABLE])
        refreshed_at = datetime.now(UTC)
        mine = {name: tables[name] for name in dashboard.tables}
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, f"{dashboard.slug}.hyper")
            rows = write_extract(dashboard, mine, local)
            lake.put_file(local, extract_key(dashboard))
            published = {}
            if settings.tableau:
                from fe_platform.lib.dashboards.tableau import publish_extracts

                published = publish_extracts(settings.tableau, {dashboard.datasource_name: local})
        preview = render_preview(dashboard, mine, settings.dashboards_dir, refreshed_at, status)
        _status_path(settings, dashboard).write_text(json.dumps({
            "slug": dashboard.slug, "title": dashboard.title, "refreshed_at": refreshed_at.isoformat(),
            "quality_status": status, "owner_team": dashboard.owner_team, "description": dashboard.description,
        }))
        context.log.info(f"{dashboard.title}: preview {preview}, extract {lake.uri(extract_key(dashboard))}")
        return dg.MaterializeResult(metadata={
            "preview": dg.MetadataValue.path(str(preview)),
            "preview_url": dg.MetadataValue.url(preview.as_uri()),
            "extract": lake.uri(extract_key(dashboard)),
            "rows_by_table": rows,
            "data_quality": status,
            "tableau_refresh_jobs": {k: v or "already queued" for k, v in published.items()},
        })

    return _dashboard


def index_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["dashboards", "index"]),
        deps=[dashboard_key(d) for d in DASHBOARDS],
        group_name="dashboards",
        owners=["team:commercial-analytics", "commercial-analytics@fe-pharma.example"],
        description="The page that links every dashboard preview with its last refresh and data-quality status.",
        automation_condition=ON_UPSTREAM_CHANGE,
        freshness_policy=freshness_policy("downstream", settings),
        kinds={"html"},
    )
    def _index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        statuses = []
        for d in DASHBOARDS:
            path = _status_path(settings, d)
            statuses.append(json.loads(path.read_text()) if path.exists()
                            else {"slug": d.slug, "title": d.title, "owner_team": d.owner_team,
                                  "description": d.description, "quality_status": "not built yet"})
        page = render_index(statuses, settings.dashboards_dir)
        return dg.MaterializeResult(metadata={"index": dg.MetadataValue.path(str(page)),
                                              "index_url": dg.MetadataValue.url(page.as_uri())})

    return _index


def build_dashboard_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    return [*(dashboard_asset(d, settings) for d in DASHBOARDS), index_asset(settings)]
