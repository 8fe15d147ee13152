"""Warehouse benchmark: one new weekly delivery on 13 and 52 weeks of history, incremental run vs full rebuild.

For each history size, `weeks + 1` weeks of every feed are generated (defect_rate 0) into a temporary lake and
ingested through the platform's ingestion; the last week (the newest IQVIA delivery and the other feeds' files
of that week) is "the new delivery". For each target (DuckDB, a throwaway PostgreSQL 15):

1. the history's validated partitions are loaded into the warehouse and `dbt build` builds everything;
2. the new week's partitions are loaded (timed), then, timed separately, the incremental facts are run for the
   new week's partitions (`dbt run --select fct_rx_weekly fct_billing_line --vars {delivery_dates: ...}`) and
   rebuilt from scratch (`... --full-refresh`).

The incremental run and the full rebuild are then repeated (`--repeat`, the figures are medians): re-running the
window is idempotent and leaves the tables as the full rebuild does. Each run is timed as the whole in-process
dbt invocation (compile, the two models in parallel threads, the on-run-end hook) and as each model's own
execution time. Dimensions are those of the history build in both runs. Prints figures, asserts nothing.

    python benchmarks/warehouse.py [--hcps 600] [--history 13 52] [--targets duckdb postgres] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
END_FRIDAY = date(2026, 11, 20)  # the new week's IQVIA data date
PII_KEY = "benchmark-key-0123456789"
FACTS = ("fct_rx_weekly", "fct_billing_line")
FACT_FEEDS = ("iqvia_rx", "sap_billing")  # the feeds the facts follow (their config meta delivery_feed)


def log(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Prepared:
    """A generated and ingested lake: which validated partitions are history and which are the new week."""

    weeks: int
    lake: object
    history: list[tuple[str, str]] = field(default_factory=list)  # (feed, partition)
    new: list[tuple[str, str]] = field(default_factory=list)
    deliveries: pa.Table | None = None  # the whole delivery log, conformed to the warehouse schema
    iqvia_rows: Counter = field(default_factory=Counter)  # "history" / "new"

    @property
    def cutoff(self) -> date:
        return END_FRIDAY - timedelta(days=7)

    def window(self) -> str:
        """The new week's partitions of the facts' feeds, as the platform passes them."""
        dates: dict[str, list[str]] = {}
        for feed, partition in self.new:
            if feed in FACT_FEEDS:
                dates.setdefault(feed, []).append(partition)
        return json.dumps({"delivery_dates": dates})

    def deliveries_until(self, last: date | None) -> pa.Table:
        if last is None:
            return self.deliveries
        return self.deliveries.filter(pc.less_equal(self.deliveries["partition"], pa.scalar(last, pa.date32())))


def prepare(root: Path, weeks: int, hcps: int, seed: int) -> Prepared:
    """Generate `weeks + 1` weeks into a lake under `root` and ingest them (history first, then the new week)."""
    from fe_platform.lib.delivery_log import LogIndex, delivery_log_table
    from fe_platform.lib.feeds import FEEDS
    from fe_platform.lib.ingestion import ingest_delivery
    from fe_platform.lib.lake import LocalLake
    from fe_platform.lib.planning import plan_landing
    from fe_platform.lib.warehouse import DELIVERIES_SCHEMA
    from fe_platform.sample_data.generator import generate

    lake = LocalLake(root)
    prep = Prepared(weeks, lake)
    started = time.perf_counter()
    manifest = generate(lake, END_FRIDAY, weeks=weeks + 1, hcps=hcps, seed=seed, defect_rate=0)
    generated = time.perf_counter() - started

    indexes = {feed.name: LogIndex.of(lake, feed.name) for feed in FEEDS.values()}
    runs = [(feed.name, obj, obj.key, feed.match(obj.key.rsplit("/", 1)[-1]).isoformat())
            for feed in FEEDS.values() for obj in plan_landing(lake, feed, indexes[feed.name], END_FRIDAY).new]
    # Reference feeds first, as the platform runs them. SAP validation reads every fx partition validated so
    # far, so fx and SAP go day by day together (same files, half the reads of all fx first, then all SAP).
    rank = {name: i for i, name in enumerate(FEEDS)}
    group = {**rank, "sap_billing": rank["fx_rates"]}
    runs.sort(key=lambda r: (group[r[0]], r[3], rank[r[0]]))
    seconds = Counter()
    quarantined = 0
    work = root / "work"
    work.mkdir(exist_ok=True)
    for phase in ("history", "new"):
        started = time.perf_counter()
        for feed, obj, key, part in runs:
            if (date.fromisoformat(part) <= prep.cutoff) != (phase == "history"):
                continue
            record = ingest_delivery(lake, FEEDS[feed], obj, PII_KEY, work, indexes[feed])
            if record.outcome != "loaded":
                raise RuntimeError(f"{key}: {record.outcome}: {record.reason}")
            getattr(prep, phase).append((feed, part))
            quarantined += record.rows_quarantined
            if feed == "iqvia_rx":
                prep.iqvia_rows[phase] += record.rows_valid
        seconds[phase] = time.perf_counter() - started
    prep.deliveries = delivery_log_table(lake).select(DELIVERIES_SCHEMA.names).cast(DELIVERIES_SCHEMA)
    log(f"lake {weeks:>2} weeks of history: generated {weeks + 1} weeks ({len(manifest['files'])} files) in "
        f"{generated:.1f} s; ingested the history ({len(prep.history)} files) in {seconds['history']:.1f} s and "
        f"the new week ({len(prep.new)} files) in {seconds['new']:.1f} s; {quarantined} rows quarantined")
    log(f"    lake.iqvia_rx: history {prep.iqvia_rows['history']:,} rows in {weeks} deliveries, new delivery "
        f"{prep.iqvia_rows['new']:,} rows (its 13 weeks, 12 of them restated)")
    return prep


def load(wh, prep: Prepared, parts: list[tuple[str, str]], deliveries_until: date | None) -> tuple[float, int]:
    """Load validated partitions and the delivery log into the warehouse: (seconds, rows)."""
    from fe_platform.lib.zones import read_partition

    started = time.perf_counter()
    wh.ensure_all_sources()
    rows = 0
    for feed, part in parts:
        rows += wh.load_partition(feed, part, read_partition(prep.lake, "validated", feed, part))
    wh.load_deliveries(prep.deliveries_until(deliveries_until))
    return time.perf_counter() - started, rows


@dataclass
class Timing:
    wall: float  # the dbt invocation
    models: dict[str, float]  # each fact's own execution time (dbt runs the two in parallel threads)


class Dbt:
    """dbt in-process for one target, as `fe_platform_tests.test_warehouse_fixtures.Dbt` runs it: the project
    is parsed once (untimed) and the manifest reused, so a timed invocation pays no parsing."""

    def __init__(self, target: str, env: dict[str, str], target_path: Path):
        self.env = {**env, "FE_WAREHOUSE": target, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        self.options = ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT), "--target", target,
                        "--target-path", str(target_path), "--log-level-file", "none", "--quiet"]
        self.manifest = self.invoke("parse").result

    def invoke(self, *args: str, manifest=None):
        from dbt.cli.main import dbtRunner

        from fe_platform_tests.test_warehouse_fixtures import environment

        with environment(self.env):
            result = dbtRunner(manifest=manifest).invoke([*args, *self.options])
        if not result.success:
            raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception or result.result}")
        return result

    def __call__(self, *args: str) -> Timing:
        started = time.perf_counter()
        result = self.invoke(*args, manifest=self.manifest)
        wall = time.perf_counter() - started
        return Timing(wall, {r.node.name: r.execution_time for r in result.result if r.node.name in FACTS})


def median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in timings),
                  {m: statistics.median(t.models[m] for t in timings) for m in FACTS})


def count(wh, table: str) -> int:
    return wh.query(f'select count(*) from "marts"."{table}"')[0][0]


def bench(target: str, prep: Prepared, env: dict[str, str], connect, repeat: int) -> dict:
    """History build, new week load, incremental vs full rebuild of the facts on one warehouse."""
    with tempfile.TemporaryDirectory(prefix=f"fe-bench-dbt-{target}-") as target_path:
        dbt = Dbt(target, env, Path(target_path))
        with connect() as wh:
            load_history, rows_history = load(wh, prep, prep.history, prep.cutoff)
        build = dbt("build").wall
        with connect() as wh:
            load_new, rows_new = load(wh, prep, prep.new, None)
        incremental, full, rows = [], [], {}
        for i in range(repeat):
            incremental.append(dbt("run", "--select", *FACTS, "--vars", prep.window()))
            if i == 0:
                with connect() as wh:
                    rows["incremental"] = (count(wh, "fct_rx_weekly"), count(wh, "fct_billing_line"))
            full.append(dbt("run", "--select", *FACTS, "--full-refresh"))
            if i == 0:
                with connect() as wh:
                    rows["full"] = (count(wh, "fct_rx_weekly"), count(wh, "fct_billing_line"))
    log(f"{target:<8} {prep.weeks:>2} weeks: loaded the history ({rows_history:,} rows) in {load_history:.1f} s, "
        f"dbt build {build:.1f} s, loaded the new week ({rows_new:,} rows); "
        f"incremental runs {' '.join(f'{t.wall:.2f}' for t in incremental)} s, "
        f"full rebuilds {' '.join(f'{t.wall:.2f}' for t in full)} s")
    return {"load_new": load_new, "incremental": median(incremental),
            "full": median(full), "rows": rows}


def postgres_bench(prep: Prepared, repeat: int) -> dict:
    from fe_platform.lib.warehouse import PostgresWarehouse
    from fe_platform_tests.postgres_cluster import PostgresCluster, available

    if not available():
        raise RuntimeError("PostgreSQL 15 binaries are required (FE_PG_BIN, default /usr/lib/postgresql/15/bin)")
    with PostgresCluster() as pg:  # a fresh cluster per history size
        return bench("postgres", prep, pg.env(), lambda: PostgresWarehouse(pg.conninfo()), repeat)


def duckdb_bench(prep: Prepared, repeat: int, folder: Path) -> dict:
    from fe_platform.lib.warehouse import DuckDBWarehouse

    path = folder / f"warehouse-{prep.weeks}.duckdb"
    return bench("duckdb", prep, {"FE_DUCKDB_PATH": str(path)}, lambda: DuckDBWarehouse(path), repeat)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def figures(t: Timing) -> list[float]:
    return [t.wall, *(t.models[m] for m in FACTS)]


def report(results: dict, history: list[int], preps: dict[int, Prepared]) -> None:
    log("")
    log("seconds; dbt = the whole dbt invocation, rx / billing = the fct_rx_weekly / fct_billing_line model alone")
    log(f"{'':<29}{'incremental run':<24}{'full rebuild':<24}{'full / incremental':<24}")
    log(f"{'target':<9}{'history':<9}{'load new':>9}  " + f"{'dbt':>7}{'rx':>7}{'billing':>8}  " * 2
        + f"{'dbt':>7}{'rx':>7}{'billing':>8}  fct_rx_weekly rows")
    for (target, weeks), r in results.items():
        inc, full = figures(r["incremental"]), figures(r["full"])
        rx_inc, rx_full = r["rows"]["incremental"][0], r["rows"]["full"][0]
        rows = f"{rx_inc:,}" + ("" if rx_inc == rx_full else f" (after the full rebuild: {rx_full:,})")
        log(f"{target:<9}{f'{weeks} weeks':<9}{r['load_new']:>9.2f}  "
            + "".join(f"{v:>{w}.2f}" for v, w in zip(inc, (7, 7, 8), strict=True)) + "  "
            + "".join(f"{v:>{w}.2f}" for v, w in zip(full, (7, 7, 8), strict=True)) + "  "
            + "".join(f"{ratio(f, i):>{w}}" for f, i, w in zip(full, inc, (7, 7, 8), strict=True)) + f"  {rows}")
    if len(history) < 2:
        return
    small, large = history[0], history[-1]
    log("")
    log(f"from {small} to {large} weeks of history (x = {large}-week figure / {small}-week figure): IQVIA rows in "
        f"the lake x{ratio(preps[large].iqvia_rows['history'], preps[small].iqvia_rows['history'])}, "
        f"in the new delivery x{ratio(preps[large].iqvia_rows['new'], preps[small].iqvia_rows['new'])}")
    for target in dict.fromkeys(t for t, _ in results):
        if (target, small) not in results or (target, large) not in results:
            continue
        a, b = results[(target, small)], results[(target, large)]
        parts = []
        for kind in ("incremental", "full"):
            x = [ratio(nb, na) for na, nb in zip(figures(a[kind]), figures(b[kind]), strict=True)]
            parts.append(f"{'incremental' if kind == 'incremental' else 'full rebuild'} x{x[0]} "
                         f"(rx x{x[1]}, billing x{x[2]})")
        rx = ratio(b["rows"]["incremental"][0], a["rows"]["incremental"][0])
        log(f"  {target:<9}{parts[0]};  {parts[1]};  fct_rx_weekly rows x{rx}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hcps", type=int, default=600)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--history", type=int, nargs="+", default=[13, 52], help="weeks of history before the new one")
    p.add_argument("--targets", nargs="+", default=["duckdb", "postgres"], choices=["duckdb", "postgres"])
    p.add_argument("--repeat", type=int, default=3, help="incremental and full runs per case (median reported)")
    args = p.parse_args()
    started = time.perf_counter()
    log(f"Warehouse benchmark: {args.hcps} HCPs (seed {args.seed}, defect_rate 0), new week ending "
        f"{END_FRIDAY} on {' and '.join(map(str, args.history))} weeks of history; targets {', '.join(args.targets)};"
        f" dbt in-process, median of {args.repeat} runs per figure")
    results, preps = {}, {}
    with tempfile.TemporaryDirectory(prefix="fe-bench-warehouse-") as tmp:
        for weeks in args.history:
            prep = preps[weeks] = prepare(Path(tmp) / f"lake-{weeks}", weeks, args.hcps, args.seed)
            for target in args.targets:
                if target == "duckdb":
                    results[(target, weeks)] = duckdb_bench(prep, args.repeat, Path(tmp))
                else:
                    results[(target, weeks)] = postgres_bench(prep, args.repeat)
    report(results, args.history, preps)
    log(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
