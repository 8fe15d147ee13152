"""Ingestion benchmark: a generated IQVIA file through the platform's ingestion, against bare pyarrow.

Two measurements per size, each a fresh process timed whole (interpreter start and imports included):
- `library`: the file through the platform's ingestion (read, every rule, validated and quarantine Parquet,
  raw copy, partition commit, delivery log), against a bare pyarrow read-CSV-write-Parquet of the same file
  measured right before it: the time ratio;
- `run`: the Dagster ingestion run of the file, its asset checks included (rules per partition, row
  conservation, PII patterns, references), on an ephemeral instance: the peak RSS of the whole run.
Every measurement is repeated `--repeats` times. The machine's speed drifts from minute to minute, so the
time ratio is taken pair by pair and the median pair ratio is reported; times are medians (the best run
beside them), and so is peak RSS. Asserts nothing: the figures go in the README's performance section.

    python benchmarks/ingest.py [--rows 1000000] [--large-rows 5000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

WEEK = date(2026, 11, 20)


def child(mode: str, lake_root: str, key: str) -> None:
    """One measurement in this fresh process; prints JSON with seconds and peak RSS."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from fe_platform.lib.ingestion import ingest_landing_file
    from fe_platform.lib.lake import LocalLake

    lake = LocalLake(lake_root)
    started = time.perf_counter()
    if mode == "pyarrow":
        table = pcsv.read_csv(lake.path(key), parse_options=pcsv.ParseOptions(delimiter="|"))
        pq.write_table(table, Path(lake_root) / "baseline.parquet")
        rows = table.num_rows
    elif mode == "library":
        record = ingest_landing_file(lake, key, "benchmark-key-0123456789")
        assert record.outcome == "loaded", record.reason
        rows = record.rows_in
        if record.rows_quarantined:
            print(f"warning: {record.rows_quarantined} rows quarantined: {record.rule_counts}", file=sys.stderr)
    else:
        rows = dagster_run(Path(lake_root), key)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def dagster_run(lake_root: Path, key: str) -> int:
    """The feed's ingestion job for the file's partition, checks included, on an ephemeral instance."""
    import os

    import dagster as dg

    os.environ.update(FE_HOME=str(lake_root.parent / "home"), FE_LAKE_ROOT=str(lake_root),
                      FE_PII_HMAC_KEY="benchmark-key-0123456789")
    from fe_platform.definitions import build_definitions
    from fe_platform.settings import load_settings

    defs = build_definitions(load_settings())
    result = defs.resolve_job_def("ingest_iqvia_rx_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=WEEK.isoformat(),
        run_config={"ops": {"ingest_iqvia_rx": {"config": {"landing_keys": [key]}}}})
    checks = result.get_asset_check_evaluations()
    assert result.success and len(checks) >= 4, "the run and its checks"
    [materialization] = [m for m in result.get_asset_materialization_events()
                         if m.asset_key.to_user_string() == "validated_iqvia_rx"]
    return materialization.step_materialization_data.materialization.metadata["rows_in"].value


def measure(mode: str, lake_root: Path, key: str) -> dict:
    for zone in ("raw", "validated", "quarantine", "rejected", "deliveries"):  # a first delivery every time
        shutil.rmtree(lake_root / zone, ignore_errors=True)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(lake_root), key],
                         check=True, capture_output=True, text=True).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    return {**measured, "seconds": time.perf_counter() - started}  # the whole process, imports included


def summary(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs]
    return {"seconds": statistics.median(seconds), "best": min(seconds),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs)}


def main() -> None:
    from fe_platform.sample_data.generator import write_large_iqvia

    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--large-rows", type=int, default=5_000_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for rows in (args.rows, args.large_rows):
            lake_root = Path(tmp) / f"lake-{rows}"
            landing = lake_root / "landing" / "iqvia_rx"
            landing.mkdir(parents=True)
            path = write_large_iqvia(landing / f"RXDYN_WEEKLY_{WEEK:%Y%m%d}.txt", rows, WEEK)
            key = f"landing/iqvia_rx/{path.name}"
            size_mb = path.stat().st_size / 1e6
            runs = [(measure("pyarrow", lake_root, key), measure("library", lake_root, key))
                    for _ in range(args.repeats)]
            dagster = summary([measure("run", lake_root, key) for _ in range(args.repeats)])
            base, ours = summary([b for b, _ in runs]), summary([o for _, o in runs])
            ratios = sorted(o["seconds"] / b["seconds"] for b, o in runs)
            results[rows] = (base, ours, statistics.median(ratios), dagster)
            print(f"{rows:>10,} rows ({size_mb:,.0f} MB): platform {ours['seconds']:6.2f} s "
                  f"({rows / ours['seconds']:,.0f} rows/s; best {ours['best']:.2f} s), "
                  f"bare pyarrow {base['seconds']:5.2f} s (best {base['best']:.2f} s), whole processes; "
                  f"ratio {statistics.median(ratios):.2f} (pairs {ratios[0]:.2f}-{ratios[-1]:.2f}); "
                  f"peak RSS platform {ours['peak_rss_mb']:,.0f} MB, pyarrow {base['peak_rss_mb']:,.0f} MB; "
                  f"Dagster run with its checks {dagster['seconds']:.2f} s, peak RSS {dagster['peak_rss_mb']:,.0f} MB")
        small, large = (results[args.rows][3], results[args.large_rows][3])
        print(f"peak RSS of the whole run, checks included, {args.large_rows:,} / {args.rows:,} rows: "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (target <= 1.3)")
        print(f"time ratio to bare pyarrow at {args.rows:,} rows, whole processes: {results[args.rows][2]:.2f} "
              f"(target <= 2.0)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
