"""`fe-platform run`: planning (pure, over the asset graph), execution (runs in-process) and the report."""

from __future__ import annotations

import json
from pathlib import Path

from fe_platform.runner.execution import PlatformBusy, dagster_instance, load_cursor, run_platform
from fe_platform.runner.report import Echo, RunSummary
from fe_platform.runner.report import print_summary as _print_summary
from fe_platform.settings import Settings

__all__ = ["PlatformBusy", "RunSummary", "dagster_instance", "load_cursor", "print_summary", "run_platform"]

SUMMARY_LAYERS = ("lake", "staging", "intermediate", "marts", "reporting")


def _keep(cache: Path, value) -> None:
    """Write a summary's cache whole: a reader never finds half of it."""
    temporary = cache.with_suffix(".tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(cache)


def delivery_totals(lake, cache: Path) -> dict[str, list]:
    """Per delivery-log file: feed, outcome, rows in, validated and quarantined. A record is a file of its own
    that never changes, so each is read once: what earlier summaries read is kept in `cache` (a run with
    nothing new then reads no Parquet at all)."""
    from fe_platform.lib.delivery_log import LogIndex, read_records

    known = json.loads(cache.read_text()) if cache.exists() else {}
    entries = LogIndex.of(lake).entries
    new = [e for e in entries if e.object_key not in known]
    if new:
        for r in read_records(lake, new):
            known[r.object_key] = [r.feed, r.outcome, r.rows_in, r.rows_valid, r.rows_quarantined]
        _keep(cache, known)
    return {e.object_key: known[e.object_key] for e in entries}


def lake_lines(settings: Settings, lake) -> list[str]:
    """Deliveries and rows per feed, all time, from the delivery log."""
    from fe_platform.lib.feeds import FEEDS

    totals = delivery_totals(lake, settings.home / "delivery_totals.json").values()
    lines = [f"  lake: {settings.lake_root}",
             f"  {'feed':15} {'loaded':>7} {'rejected':>8} {'duplicate':>9} {'rows in':>10} {'validated':>10} "
             f"{'quarantined':>11}"]
    for feed in FEEDS:
        records = [t for t in totals if t[0] == feed]
        loaded = [t for t in records if t[1] == "loaded"]
        count = {o: sum(t[1] == o for t in records) for o in ("loaded", "rejected", "duplicate")}
        lines.append(f"  {feed:15} {count['loaded']:>7} {count['rejected']:>8} {count['duplicate']:>9} "
                     f"{sum(t[2] for t in loaded):>10,} {sum(t[3] for t in loaded):>10,} "
                     f"{sum(t[4] for t in loaded):>11,}")
    return lines


def warehouse_lines(settings: Settings, target) -> list[str]:
    """Rows per warehouse layer (its tables: counting a view would run its query), and per reporting table. A
    DuckDB file that did not change since the last summary is not opened again: its lines are kept in the home."""
    cache, state = settings.home / "warehouse_lines.json", _file_state(settings)
    try:
        kept = json.loads(cache.read_text()) if state else {}
    except (OSError, ValueError):  # none yet, or unreadable: counted again
        kept = {}
    if state and kept.get("file") == state:
        return kept["lines"]
    lines = _count_warehouse(settings, target)
    if state and state == _file_state(settings) and "not readable" not in lines[0]:
        _keep(cache, {"file": state, "lines": lines})
    return lines


def _file_state(settings: Settings) -> list | None:
    """A DuckDB warehouse file's size and modification time (and its write-ahead log's), or None."""
    if settings.warehouse_target != "duckdb" or not settings.duckdb_path.exists():
        return None
    wal = settings.duckdb_path.with_name(settings.duckdb_path.name + ".wal")
    return [str(settings.duckdb_path)] + [[p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else None
                                          for p in (settings.duckdb_path, wal)]


def _count_warehouse(settings: Settings, target) -> list[str]:
    from fe_platform.lib.warehouse import qualified

    try:
        with target.connect() as warehouse:
            relations = warehouse.query(
                "select table_schema, table_name, table_type from information_schema.tables "
                "where table_schema in ('lake', 'staging', 'intermediate', 'marts', 'reporting') order by 1, 2")
            rows = {(schema, name): warehouse.query(f"select count(*) from {qualified(schema, name)}")[0][0]
                    for schema, name, kind in relations if kind != "VIEW"}
    except Exception as exc:  # the summary must not hide the run's own outcome
        return [f"  warehouse: not readable ({exc})"]
    lines = [f"  warehouse ({settings.warehouse_target}, {settings.warehouse_location()}): rows per layer"]
    for layer in SUMMARY_LAYERS:
        tables = [n for (schema, _), n in rows.items() if schema == layer]
        views = sum(1 for schema, _, kind in relations if schema == layer and kind == "VIEW")
        held = ([f"{sum(tables):>10,} rows in {len(tables)} tables"] if tables else []) + \
            ([f"{views} views" if tables else f"{views:>10} views"] if views else [])
        if held:
            lines.append(f"    {layer:13} {' and '.join(held)}")
    lines += [f"      {name:26} {n:>8,}" for (schema, name), n in rows.items() if schema == "reporting"]
    return lines


def print_summary(settings: Settings, summary: RunSummary, echo: Echo = print) -> None:
    from fe_platform.defs.resources import lake_from_settings, warehouse_from_settings

    index = settings.dashboards_dir / "index.html"
    _print_summary(summary, lake_lines(settings, lake_from_settings(settings)),
                   warehouse_lines(settings, warehouse_from_settings(settings)), echo,
                   index if index.exists() else None)
