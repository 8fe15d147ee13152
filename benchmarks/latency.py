"""Run-model benchmark: what the platform costs around the work, each figure beside its bare work, same run.

1. `demo`: `fe-platform run` on a fresh home holding the demo's sample feeds (dashboards included), against
   the bare work on a copy of the same landing files: library ingestion of every file, the lake tables
   loaded, and one full `dbt build` (target <= 1.5x).
2. `small delivery`: one new SAP file through `fe-platform run` until the dashboards are refreshed, against
   `dbt build --select source:lake.sap_billing+` on a copy of the warehouse (target <= 2x).
3. `nothing new`: `fe-platform run` with nothing landed, against loading the definitions (target <= 1.5x).
4. `definitions`: `import fe_platform.definitions`, against `import dagster_dbt` (target <= 1.2x).
5. `daemon` (with --daemon): the Dagster daemon alone ingesting and refreshing a fresh home, against
   `fe-platform run` on the same files (target <= 2x).
Every command runs as a fresh process, timed whole. Process start-up figures are the median of --repeats.
Asserts nothing: the figures go in the README's performance section.

    python benchmarks/latency.py [--weeks 13] [--hcps 2000] [--repeats 5] [--daemon]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
END = date(2026, 11, 20)


def timed(argv: list[str], env: dict, cwd: Path = ROOT) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a run reported failed checks or runs; the time still counts
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def home_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FE_", "DAGSTER_"))}
    return {**env, "FE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def median_of(repeats: int, argv: list[str], env: dict) -> float:
    return statistics.median(timed(argv, env) for _ in range(repeats))


BARE = '''
import json, sys, tempfile
from pathlib import Path
from fe_platform.lib.delivery_log import LogIndex, delivery_log_table
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_delivery
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.planning import landing_entries
from fe_platform.lib.warehouse import DELIVERIES_SCHEMA, DuckDBWarehouse
from fe_platform.lib.zones import committed_partitions, read_partition

lake, duckdb_path = LocalLake(sys.argv[1]), sys.argv[2]
with tempfile.TemporaryDirectory() as work:
    for feed in FEEDS.values():  # reference feeds first, as the platform runs them
        index = LogIndex.of(lake, feed.name)
        for obj in landing_entries(lake, feed):
            ingest_delivery(lake, feed, obj, "bench-key-0123456789", Path(work), index)
with DuckDBWarehouse(duckdb_path) as wh:
    wh.ensure_all_sources()
    for feed in FEEDS:
        for partition in committed_partitions(lake, feed):
            wh.load_partition(feed, partition, read_partition(lake, "validated", feed, partition))
    wh.load_deliveries(delivery_log_table(lake).select(DELIVERIES_SCHEMA.names).cast(DELIVERIES_SCHEMA))
'''


def dbt(args: list[str], target_path: Path) -> list[str]:
    return [str(BIN / "dbt"), *args, "--project-dir", str(ROOT / "dbt_project"), "--profiles-dir",
            str(ROOT / "dbt_project"), "--target-path", str(target_path)]


def generate(home: Path, weeks: int, hcps: int) -> None:
    subprocess.run([str(BIN / "fe-platform"), "generate", "--weeks", str(weeks), "--hcps", str(hcps),
                    "--end-friday", END.isoformat()], env=home_env(home), check=True, capture_output=True)


def daemon_until_done(home: Path, timeout: float = 3600) -> float:
    """`dagster-daemon run` on a home with only landing files, until every delivery is logged, no run is
    queued or in progress, and the dashboard index was built after every other asset's last materialization."""
    import dagster as dg

    env = home_env(home)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    landing = sum(1 for p in (home / "lake" / "landing").rglob("*") if p.is_file())
    started = time.perf_counter()
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        while time.perf_counter() - started < timeout:
            time.sleep(1)  # the resolution of the figure
            logged = sum(1 for p in (home / "lake" / "deliveries").rglob("*.parquet")) \
                if (home / "lake" / "deliveries").exists() else 0
            if logged < landing:
                continue
            with dg.DagsterInstance.get() as instance:
                busy = instance.get_run_records(dg.RunsFilter(statuses=[
                    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]),
                    limit=1)
                latest = instance.get_latest_materialization_events(instance.all_asset_keys())
            index = latest.get(dg.AssetKey(["dashboards", "index"]))
            # done: nothing is running, and the index was built after every table (the dashboards go last)
            if index and not busy and all(event.timestamp <= index.timestamp for key, event in latest.items()
                                          if event and key.path[0] != "dashboards"):
                return time.perf_counter() - started
        raise TimeoutError("the daemon did not finish")
    finally:
        daemon.terminate()
        daemon.wait(30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weeks", type=int, default=13)
    p.add_argument("--hcps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--daemon", action="store_true", help="also the daemon figure (minutes more)")
    args = p.parse_args()
    py = str(BIN / "python")
    # as `make install` does: the platform's modules byte-compiled like the installed packages they are compared with
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "fe_platform")], check=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        platform, bare = tmp / "platform", tmp / "bare"
        generate(platform, args.weeks, args.hcps)
        shutil.copytree(platform / "lake" / "landing", bare / "lake" / "landing")

        # 4 and 3 first, on a quiet home
        load = median_of(args.repeats, [py, "-c", "import fe_platform.definitions"], home_env(platform))
        dagster_dbt = median_of(args.repeats, [py, "-c", "import dagster_dbt"], home_env(platform))
        results.append(("definitions load", load, "import dagster_dbt", dagster_dbt, 1.2))

        # 1: the demo
        demo = timed([str(BIN / "fe-platform"), "run"], home_env(platform))
        started = time.perf_counter()
        subprocess.run([py, "-c", BARE, str(bare / "lake"), str(bare / "warehouse.duckdb")], check=True,
                       env=home_env(bare))
        env = {**home_env(bare), "FE_WAREHOUSE": "duckdb", "FE_DUCKDB_PATH": str(bare / "warehouse.duckdb")}
        subprocess.run(dbt(["build", "--quiet"], bare / "target"), env=env, cwd=ROOT, capture_output=True)
        bare_demo = time.perf_counter() - started
        results.append(("`make demo` (fe-platform run, dashboards included)", demo,
                         "library ingestion + lake loads + one full dbt build", bare_demo, 1.5))

        # 3: nothing new
        idle = median_of(args.repeats, [str(BIN / "fe-platform"), "run"], home_env(platform))
        results.append(("fe-platform run, nothing new", idle, "definitions load", load, 1.5))

        # 2: one small SAP delivery
        source = sorted((platform / "lake" / "landing" / "sap_billing").glob("SAP_BILLING_*.csv"))[-1]
        new = source.with_name(f"SAP_BILLING_{END:%Y%m%d}.csv")
        if new.exists():
            new = source.with_name("SAP_BILLING_20261121.csv")
        text = source.read_text().replace("\n9", "\n8", 1)  # other bytes: a new delivery, not a duplicate
        shutil.copyfile(platform / "warehouse.duckdb", tmp / "copy.duckdb")
        new.write_text(text)
        small = timed([str(BIN / "fe-platform"), "run"], home_env(platform))
        env = {**home_env(platform), "FE_WAREHOUSE": "duckdb", "FE_DUCKDB_PATH": str(tmp / "copy.duckdb")}
        started = time.perf_counter()
        subprocess.run(dbt(["build", "--quiet", "--select", "source:lake.sap_billing+"], tmp / "target-small"),
                       env=env, cwd=ROOT, capture_output=True)
        results.append(("one new SAP delivery to refreshed dashboards", small,
                        "dbt build --select source:lake.sap_billing+", time.perf_counter() - started, 2.0))

        if args.daemon:
            daemon_home = tmp / "daemon"
            shutil.copytree(bare / "lake" / "landing", daemon_home / "lake" / "landing")
            results.append(("the daemon alone, fresh home", daemon_until_done(daemon_home),
                            "fe-platform run, same files", demo, 2.0))

    print(f"{'what':55} {'platform':>9} {'bare work':>45} {'ratio':>6} {'target':>6}")
    for what, ours, bare_what, theirs, target in results:
        print(f"{what:55} {ours:8.1f}s {bare_what:>36} {theirs:7.1f}s {ours / theirs:6.2f} {target:6.1f}")
    print(json.dumps([{"what": w, "platform_s": round(o, 2), "bare": b, "bare_s": round(t, 2),
                       "ratio": round(o / t, 2), "target": g} for w, o, b, t, g in results]))


if __name__ == "__main__":
    main()
