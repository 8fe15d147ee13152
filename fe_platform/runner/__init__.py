"""`fe-platform run`: planning (pure, over the asset graph), execution (runs in-process) and the report."""

from __future__ import annotations

from fe_platform.runner.execution import PlatformBusy, dagster_instance, load_cursor, run_platform
from fe_platform.runner.report import Echo, RunSummary
from fe_platform.runner.report import print_summary as _print_summary
from fe_platform.settings import Settings

__all__ = ["PlatformBusy", "RunSummary", "dagster_instance", "load_cursor", "print_summary", "run_platform"]

SUMMARY_LAYERS = ("lake", "staging", "intermediate", "marts", "reporting")


def lake_lines(settings: Settings, lake) -> list[str]:
    """Deliveries and rows per feed, all time, from the delivery log."""
    from fe_platform.lib.delivery_log import read_delivery_log
    from fe_platform.lib.feeds import FEEDS

    log = read_delivery_log(lake)
    lines = [f"  lake: {settings.lake_root}",
             f"  {'feed':15} {'loaded':>7} {'rejected':>8} {'duplicate':>9} {'rows in':>10} {'validated':>10} "
             f"{'quarantined':>11}"]
    for feed in FEEDS:
        records = [r for r in log if r.feed == feed]
        loaded = [r for r in records if r.outcome == "loaded"]
        count = {o: sum(r.outcome == o for r in records) for o in ("loaded", "rejected", "duplicate")}
        lines.append(f"  {feed:15} {count['loaded']:>7} {count['rejected']:>8} {count['duplicate']:>9} "
                     f"{sum(r.rows_in for r in loaded):>10,} {sum(r.rows_valid for r in loaded):>10,} "
                     f"{sum(r.rows_quarantined for r in loaded):>11,}")
    return lines


def warehouse_lines(settings: Settings, target) -> list[str]:
    """Rows per warehouse layer, and per reporting table."""
    from fe_platform.lib.warehouse import qualified

    try:
        with target.connect() as warehouse:
            tables = warehouse.query(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('lake', 'staging', 'intermediate', 'marts', 'reporting') order by 1, 2")
            rows = {(schema, name): warehouse.query(f"select count(*) from {qualified(schema, name)}")[0][0]
                    for schema, name in tables}
    except Exception as exc:  # the summary must not hide the run's own outcome
        return [f"  warehouse: not readable ({exc})"]
    lines = [f"  warehouse ({settings.warehouse_target}, {settings.warehouse_location()}): rows per layer"]
    for layer in SUMMARY_LAYERS:
        mine = {name: n for (schema, name), n in rows.items() if schema == layer}
        if mine:
            lines.append(f"    {layer:13} {sum(mine.values()):>10,} rows in {len(mine)} relations")
    lines += [f"      {name:26} {n:>8,}" for (schema, name), n in rows.items() if schema == "reporting"]
    return lines


def print_summary(settings: Settings, summary: RunSummary, echo: Echo = print) -> None:
    from fe_platform.defs.resources import lake_from_settings, warehouse_from_settings

    index = settings.dashboards_dir / "index.html"
    _print_summary(summary, lake_lines(settings, lake_from_settings(settings)),
                   warehouse_lines(settings, warehouse_from_settings(settings)), echo,
                   index if index.exists() else None)
