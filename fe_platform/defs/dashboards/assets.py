"""Dashboard assets, generated from the declarations in `fe_platform/lib/dashboards/declarations.py`.

Each dashboard reads its reporting tables from the warehouse, writes its Hyper extract into the
lake's `dashboards/` zone, renders a preview a person can open without Tableau, and, where they
are configured, publishes the extract to Tableau (and asks for a refresh) and the reporting
tables to QuickSight as data sets (and starts their SPICE ingestion). Its data-quality status is
the worst latest result of every asset check upstream of it. `dashboards/index` is the page that
links them all with their freshness, status and failing checks.

The reporting tables and their columns come from the dbt manifest, and their asset keys from
dagster-dbt's own lookup over the warehouse's dbt assets, so lineage follows the dbt translator.
A declared dashboard whose tables the dbt project does not build (yet) is left out, with a warning.
"""

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from fe_platform.defs.dashboards.check_status import UpstreamResults, upstream_check_keys
from fe_platform.defs.operations.freshness import freshness_policy
from fe_platform.defs.warehouse.automation import ON_UPSTREAM_CHANGE
from fe_platform.lib.dashboards.declarations import DASHBOARDS, Dashboard
from fe_platform.lib.dashboards.reporting import ReportingTable
from fe_platform.lib.lake import Lake
from fe_platform.lib.warehouse_target import WarehouseTarget
from fe_platform.settings import Settings

log = logging.getLogger(__name__)


def dashboard_key(dashboard: Dashboard) -> dg.AssetKey:
    return dg.AssetKey(["dashboards", dashboard.slug])


def extract_key(dashboard: Dashboard) -> str:
    return f"dashboards/{dashboard.slug}.hyper"


def _status_path(settings: Settings, dashboard: Dashboard) -> Path:
    return settings.dashboards_dir / f"{dashboard.slug}.status.json"


def reporting_asset_key(dbt_assets: Sequence[dg.AssetsDefinition], table: str) -> dg.AssetKey:
    """The asset key of a reporting model, by dagster-dbt's lookup over the `@dbt_assets` that builds it."""
    for assets_def in dbt_assets:
        key = get_asset_key_for_model([assets_def], table)  # the lookup takes one definition at a time
        if key in assets_def.keys:
            return key
    raise KeyError(f"no dbt assets build the model {table}")


def buildable(dashboards: Sequence[Dashboard], reporting: Mapping[str, ReportingTable]
              ) -> tuple[list[Dashboard], dict[str, list[str]]]:
    """The dashboards whose declarations hold against the reporting contract, and the problems of the others."""
    ok, left_out = [], {}
    for d in dashboards:
        problems = d.validate(reporting)
        if problems:
            left_out[d.slug] = problems
            log.warning("dashboard %s left out: %s", d.title, "; ".join(problems))
        else:
            ok.append(d)
    return ok, left_out


def dashboard_deps(dashboard: Dashboard, dbt_assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    return [reporting_asset_key(dbt_assets, t) for t in dashboard.tables]


def dashboard_asset(dashboard: Dashboard, settings: Settings, reporting: Mapping[str, ReportingTable],
                    deps: Sequence[dg.AssetKey], check_keys: Sequence[dg.AssetCheckKey],
                    upstream: UpstreamResults) -> dg.AssetsDefinition:
    """`check_keys`: the checks upstream of the dashboard (the lineage is fixed with the code)."""

    @dg.asset(
        key=dashboard_key(dashboard),
        deps=deps,
        group_name="dashboards",
        owners=[f"team:{dashboard.owner_team}", dashboard.owner_email],
        description=f"{dashboard.title}: {dashboard.description}",
        automation_condition=ON_UPSTREAM_CHANGE,
        freshness_policy=freshness_policy("downstream", settings),
        kinds={"tableau", "hyper"} | ({"quicksight"} if settings.quicksight else set()),
        metadata={"reporting_tables": list(dashboard.tables), "charts": [c.title for c in dashboard.charts]},
    )
    def _dashboard(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake],
                   warehouse: dg.ResourceParam[WarehouseTarget]) -> dg.MaterializeResult:
        from fe_platform.lib.dashboards.extract import write_extract
        from fe_platform.lib.dashboards.preview import render_preview

        quality = upstream.quality_status(context.instance, context.run.run_id, check_keys)
        with warehouse.connect() as wh:
            tables = {name: wh.read_table(reporting[name].schema, name) for name in dashboard.tables}
        refreshed_at = datetime.now(UTC)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, f"{dashboard.slug}.hyper")
            rows = write_extract(dashboard, tables, local)
            lake.put_file(local, extract_key(dashboard))
            published = {}
            if settings.tableau:
                from fe_platform.lib.dashboards.tableau import publish_extracts

                published = publish_extracts(settings.tableau, {dashboard.datasource_name: local})
        quicksight = {}
        if settings.quicksight:
            from fe_platform.defs.dashboards.quicksight import publish_dashboard_data_sets

            quicksight = publish_dashboard_data_sets(settings, dashboard, [reporting[t] for t in dashboard.tables])
        preview = render_preview(dashboard, tables, settings.dashboards_dir, refreshed_at, quality)
        _status_path(settings, dashboard).write_text(json.dumps({
            "slug": dashboard.slug, "title": dashboard.title, "refreshed_at": refreshed_at.isoformat(),
            "quality_status": quality.headline, "quality": quality.to_json(),
            "owner_team": dashboard.owner_team, "description": dashboard.description,
        }))
        context.log.info(f"{dashboard.title}: data quality {quality.headline} over {len(check_keys)} upstream "
                         f"checks; preview {preview}, extract {lake.uri(extract_key(dashboard))}")
        return dg.MaterializeResult(metadata={
            "preview": dg.MetadataValue.path(str(preview)),
            "preview_url": dg.MetadataValue.url(preview.as_uri()),
            "extract": lake.uri(extract_key(dashboard)),
            "rows_by_table": rows,
            "data_quality": quality.headline,
            "failing_checks": [f.check for f in quality.failing],
            "upstream_checks": len(check_keys),
            "tableau_refresh_jobs": {k: v or "already queued" for k, v in published.items()},
            "quicksight_ingestions": quicksight,
        })

    return _dashboard


def index_asset(settings: Settings, dashboards: Sequence[Dashboard], left_out: Mapping[str, list[str]]
                ) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["dashboards", "index"]),
        deps=[dashboard_key(d) for d in dashboards],
        group_name="dashboards",
        owners=["team:commercial-analytics", "commercial-analytics@fe-pharma.example"],
        description="The page that links every dashboard preview with its last refresh, data-quality status and "
                    "the checks that did not pass.",
        automation_condition=ON_UPSTREAM_CHANGE,
        freshness_policy=freshness_policy("downstream", settings),
        kinds={"html"},
    )
    def _index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from fe_platform.lib.dashboards.preview import render_index

        statuses = []
        for d in dashboards:
            path = _status_path(settings, d)
            statuses.append(json.loads(path.read_text()) if path.exists()
                            else {"slug": d.slug, "title": d.title, "owner_team": d.owner_team,
                                  "description": d.description})
        page = render_index(statuses, settings.dashboards_dir)
        return dg.MaterializeResult(metadata={"index": dg.MetadataValue.path(str(page)),
                                              "index_url": dg.MetadataValue.url(page.as_uri()),
                                              "dashboards_left_out": dict(left_out)})

    return _index


def build_dashboard_assets(settings: Settings, reporting: Mapping[str, ReportingTable],
                           dbt_assets: Sequence[dg.AssetsDefinition], upstream_graph) -> list[dg.AssetsDefinition]:
    """`upstream_graph`: the asset graph of everything the dashboards sit on (ingestion, warehouse)."""
    dashboards, left_out = buildable(DASHBOARDS, reporting)
    deps = {d.slug: dashboard_deps(d, dbt_assets) for d in dashboards}
    check_keys = {d.slug: upstream_check_keys(upstream_graph, deps[d.slug]) for d in dashboards}
    upstream = UpstreamResults(k for keys in check_keys.values() for k in keys)
    return [*(dashboard_asset(d, settings, reporting, deps[d.slug], check_keys[d.slug], upstream) for d in dashboards),
            index_asset(settings, dashboards, left_out)]
