"""Dashboard assets, generated from the declarations in `fe_platform/lib/dashboards/declarations.py`.

Each dashboard reads its reporting tables from the warehouse, writes its Hyper extract into the
lake's `dashboards/` zone, renders a preview a person can open without Tableau, and, where they
are configured, publishes the extract to Tableau (and asks for a refresh) and the reporting
tables to QuickSight as data sets (and starts their SPICE ingestion). Its data-quality status is
the worst latest result of every asset check upstream of it. Each dashboard is an asset of its own;
those a run refreshes are refreshed in one step, their changed charts drawn side by side.
`dashboards/index` is the page that links them all with their freshness, status and failing checks.

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
from typing import Any

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


class DashboardsFailed(RuntimeError):
    """Some selected dashboards could not be refreshed; the others were."""


def dashboards_asset(dashboards: Sequence[Dashboard], settings: Settings, reporting: Mapping[str, ReportingTable],
                     deps: Mapping[str, Sequence[dg.AssetKey]], check_keys: Mapping[str, Sequence[dg.AssetCheckKey]],
                     upstream: UpstreamResults) -> dg.AssetsDefinition:
    """Every dashboard, an asset each (its owner, lineage, freshness), refreshed in one step: the charts that
    changed on any of them are drawn together, one process per core, and one Hyper process writes every
    extract. A dashboard that fails leaves the others refreshed, and fails the step naming it.
    `check_keys`: per dashboard, the checks upstream of it (the lineage is fixed with the code)."""
    specs = [dg.AssetSpec(
        key=dashboard_key(d),
        deps=deps[d.slug],
        group_name="dashboards",
        owners=[f"team:{d.owner_team}", d.owner_email],
        description=f"{d.title}: {d.description}",
        automation_condition=ON_UPSTREAM_CHANGE,
        freshness_policy=freshness_policy("downstream", settings),
        kinds={"tableau", "hyper"} | ({"quicksight"} if settings.quicksight else set()),
        metadata={"reporting_tables": list(d.tables), "charts": [c.title for c in d.charts]},
    ) for d in dashboards]

    @dg.multi_asset(specs=specs, can_subset=True, name="dashboards")
    def _dashboards(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake],
                    warehouse: dg.ResourceParam[WarehouseTarget]):
        from fe_platform.lib.dashboards.extract import hyper_process
        from fe_platform.lib.dashboards.preview import render_previews

        selected = [d for d in dashboards if dashboard_key(d) in context.selected_asset_keys]
        refreshed_at = datetime.now(UTC)
        failed: dict[str, Exception] = {}  # title -> why; one dashboard's failure holds back no other

        def each(dashboards_left, work) -> dict:
            done = {}
            for d in dashboards_left:
                try:
                    done[d.slug] = work(d)
                except Exception as exc:  # noqa: BLE001 (told in the log, and by the step's failure)
                    context.log.error(f"{d.title}: not refreshed: {type(exc).__name__}: {exc}")
                    failed[d.title] = exc
            return done

        with warehouse.connect() as wh:
            tables = each(selected, lambda d: {name: wh.read_table(reporting[name].schema, name) for name in d.tables})
        quality = each([d for d in selected if d.slug in tables], lambda d: upstream.quality_status(
            context.instance, context.run.run_id, check_keys[d.slug]))
        with hyper_process() as hyper:
            published = each([d for d in selected if d.slug in quality],
                             lambda d: publish(d, tables[d.slug], settings, reporting, lake, hyper))
        ready = [d for d in selected if d.slug in published]
        try:  # the charts that changed, of every dashboard at once
            previews = render_previews([(d, tables[d.slug], quality[d.slug]) for d in ready],
                                       settings.dashboards_dir, refreshed_at)
        except Exception:  # noqa: BLE001 (then page by page, to find the one that fails)
            previews = each(ready, lambda d: render_previews([(d, tables[d.slug], quality[d.slug])],
                                                             settings.dashboards_dir, refreshed_at)[d.slug])
        for d in [d for d in ready if d.slug in previews]:
            _status_path(settings, d).write_text(json.dumps({
                "slug": d.slug, "title": d.title, "refreshed_at": refreshed_at.isoformat(),
                "quality_status": quality[d.slug].headline, "quality": quality[d.slug].to_json(),
                "owner_team": d.owner_team, "description": d.description,
            }))
            context.log.info(f"{d.title}: data quality {quality[d.slug].headline} over {len(check_keys[d.slug])} "
                             f"upstream checks; preview {previews[d.slug]}, extract {lake.uri(extract_key(d))}")
            yield dg.MaterializeResult(asset_key=dashboard_key(d), metadata={
                "preview": dg.MetadataValue.path(str(previews[d.slug])),
                "preview_url": dg.MetadataValue.url(previews[d.slug].as_uri()),
                "data_quality": quality[d.slug].headline,
                "failing_checks": [f.check for f in quality[d.slug].failing],
                "upstream_checks": len(check_keys[d.slug]),
                **published[d.slug],
            })
        if failed:
            raise DashboardsFailed("not refreshed: " + "; ".join(f"{title} ({type(exc).__name__}: {exc})"
                                                                 for title, exc in failed.items()))

    return _dashboards


def publish(dashboard: Dashboard, tables: Mapping[str, Any], settings: Settings,
            reporting: Mapping[str, ReportingTable], lake: Lake, hyper) -> dict:
    """Write the dashboard's extract into the lake and publish it where Tableau or QuickSight is configured; the
    materialization's metadata of it."""
    from fe_platform.lib.dashboards.extract import write_extract

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, f"{dashboard.slug}.hyper")
        rows = write_extract(dashboard, tables, local, hyper=hyper)
        lake.put_file(local, extract_key(dashboard))
        refreshes = {}
        if settings.tableau:
            from fe_platform.lib.dashboards.tableau import publish_extracts

            refreshes = publish_extracts(settings.tableau, {dashboard.datasource_name: local})
    ingestions = {}
    if settings.quicksight:
        from fe_platform.defs.dashboards.quicksight import publish_dashboard_data_sets

        ingestions = publish_dashboard_data_sets(settings, dashboard, [reporting[t] for t in dashboard.tables])
    return {"extract": lake.uri(extract_key(dashboard)), "rows_by_table": rows,
            "tableau_refresh_jobs": {k: v or "already queued" for k, v in refreshes.items()},
            "quicksight_ingestions": ingestions}


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
    return [dashboards_asset(dashboards, settings, reporting, deps, check_keys, upstream),
            index_asset(settings, dashboards, left_out)]
