"""`fe-platform`: info, generate, run, demo, pull-fx, status."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from fe_platform.settings import Settings, SettingsError, load_settings


def last_friday(today: date | None = None) -> date:
    today = today or date.today()
    return today - timedelta(days=(today.weekday() - 4) % 7)


def _progress(stage: str, done: int, total: int) -> None:
    """A line that counts up on a terminal; one line per finished stage in a log."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  {stage:<24} {done:>6}/{total:<6}" + ("\n" if done >= total else ""))
    elif done >= total:
        sys.stderr.write(f"  {stage:<24} {total:>6} files\n")
    sys.stderr.flush()


def cmd_info(settings: Settings, _args) -> int:
    print(settings.to_json())
    return 0


def cmd_generate(settings: Settings, args) -> int:
    from fe_platform.defs.resources import lake_from_settings
    from fe_platform.sample_data.generator import generate, write_large_iqvia

    if getattr(args, "large_iqvia", None):  # `demo` shares this command without the option
        out = Path(args.out or settings.home / "bench")
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        path = write_large_iqvia(out / f"RXDYN_WEEKLY_{args.end_friday:%Y%m%d}.txt", args.large_iqvia,
                                 args.end_friday, seed=args.seed)
        print(f"wrote {args.large_iqvia:,} rows to {path} in {time.perf_counter() - started:.1f} s")
        return 0
    started = time.perf_counter()
    manifest = generate(lake_from_settings(settings), args.end_friday, weeks=args.weeks, hcps=args.hcps,
                        seed=args.seed, defect_rate=args.defect_rate, progress=_progress)
    manifest_path = settings.home / "sample_manifest.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    files = manifest["files"]
    print(f"wrote {len(files)} landing files ({sum(f.get('rows') or 0 for f in files):,} rows) under "
          f"{settings.lake_root}/landing in {time.perf_counter() - started:.1f} s; manifest: {manifest_path}")
    return 0


def cmd_run(settings: Settings, args) -> int:
    from fe_platform.runner import PlatformBusy, print_summary, run_platform

    console = sys.stdout  # the runner sends Dagster's and dbt's own output to a log file

    def echo(line: str) -> None:
        print(line, file=console, flush=True)

    try:
        summary = run_platform(settings, echo, wait_seconds=getattr(args, "wait", 0) or 0)
    except PlatformBusy as exc:
        print(f"fe-platform: {exc}", file=sys.stderr)
        return 3
    print_summary(settings, summary, echo)
    return 0 if summary.ok else 1


def cmd_demo(settings: Settings, args) -> int:
    from fe_platform.defs.resources import lake_from_settings
    from fe_platform.lib.feeds import FEEDS
    from fe_platform.lib.planning import landing_entries

    lake = lake_from_settings(settings)
    if not any(landing_entries(lake, feed) for feed in FEEDS.values()):
        print(f"Generating {args.weeks} weeks of sample feeds for {args.hcps:,} HCPs ...")
        cmd_generate(settings, args)
    else:
        print(f"Landing already holds deliveries under {settings.lake_root}; running on them.")
    return cmd_run(settings, args)


def cmd_pull_fx(settings: Settings, args) -> int:
    from datetime import UTC, datetime

    from fe_platform.defs.resources import lake_from_settings
    from fe_platform.lib.fx_api import FxApiError, pull_fx_rates

    if not settings.fx_api_url:
        print("fe-platform: FE_FX_API_URL is not set", file=sys.stderr)
        return 1
    try:
        key = pull_fx_rates(lake_from_settings(settings), settings.fx_api_url,
                            args.date or datetime.now(UTC).date())
    except FxApiError as exc:
        print(f"fe-platform: {exc}", file=sys.stderr)
        return 1
    print(key)
    return 0


def cmd_sql(settings: Settings, args) -> int:
    import duckdb

    from fe_platform.defs.resources import lake_from_settings
    from fe_platform.lib.lake_sql import query_lake

    try:
        columns, rows = query_lake(lake_from_settings(settings), args.query)
    except duckdb.Error as exc:
        print(f"fe-platform: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=1))
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
    return 0


def cmd_status(settings: Settings, args) -> int:
    """Per feed and dashboard: the latest delivery or refresh, quarantine, freshness, failing checks."""
    from fe_platform.definitions import build_definitions
    from fe_platform.defs.operations.status import format_status, platform_status
    from fe_platform.defs.resources import lake_from_settings
    from fe_platform.runner import dagster_instance

    status = platform_status(dagster_instance(settings), build_definitions(settings), lake_from_settings(settings),
                             settings)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fe-platform", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the resolved settings as JSON (no secrets)")
    for name, help_text in (("generate", "write synthetic deliveries of every feed into landing/"),
                            ("demo", "generate sample feeds if landing is empty, then run everything")):
        g = sub.add_parser(name, help=help_text)
        g.add_argument("--weeks", type=int, default=13)
        g.add_argument("--hcps", type=int, default=2000)
        g.add_argument("--seed", type=int, default=7)
        g.add_argument("--end-friday", type=date.fromisoformat, default=last_friday(),
                       help="the last week-ending Friday (default: the latest Friday up to today)")
        g.add_argument("--defect-rate", type=float, default=0.01,
                       help="share of rows given a defect the contract names (0 for none)")
        if name == "generate":
            g.add_argument("--large-iqvia", type=int, metavar="ROWS",
                           help="instead, write one clean IQVIA file of ROWS rows (for benchmarks)")
            g.add_argument("--out", help="folder for --large-iqvia (default: FE_HOME/bench)")
    run = sub.add_parser("run", help="ingest every new delivery, then bring stale downstream assets up to date")
    run.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                     help="when another `fe-platform run` works on this home, wait up to SECONDS for it")
    sql = sub.add_parser("sql", help="answer SQL over the lake with DuckDB, with the table names of the Glue "
                                     "catalog (one per feed, quarantine_<feed>, deliveries)")
    sql.add_argument("query")
    sql.add_argument("--json", action="store_true", help="rows as JSON objects")
    status = sub.add_parser("status", help="per feed its last delivery, quarantine, freshness and failing checks; "
                                           "per dashboard its last refresh and data quality")
    status.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
    fx = sub.add_parser("pull-fx", help="pull one day's exchange rates from FE_FX_API_URL into landing/fx_rates/")
    fx.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: today in UTC)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"fe-platform: invalid settings: {exc}", file=sys.stderr)
        return 2
    handler = {"info": cmd_info, "generate": cmd_generate, "run": cmd_run, "demo": cmd_demo,
               "pull-fx": cmd_pull_fx, "sql": cmd_sql, "status": cmd_status}[args.command]
    return handler(settings, args)


def entry() -> None:
    """The `fe-platform` command: `main`, then exit without tearing the interpreter down. A run holds
    Dagster's definitions and dbt's manifest, some 400,000 objects whose one-by-one release took a second
    after the run had finished; every file is closed by then and the exit handlers still run."""
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
