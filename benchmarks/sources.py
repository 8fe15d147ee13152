"""Sources benchmark: the Kinesis consumer and the PostgreSQL puller, each against a bare client loop.

- Stream: `--records` engagement events (about 300 bytes each) in a `--shards`-shard stream on a moto
  server (its own process, over HTTP). The consumer (`EngagementConsumer.consume(until_caught_up=True)`,
  polling at Kinesis' limit of 5 calls a second per shard) lands them as files with checkpoints; the
  baseline is a bare boto3 loop, GetRecords per shard from TRIM_HORIZON until empty, writing the same
  records gzipped (same level) to a file per shard. Target: consumer <= 1.3 x bare.
- Database: a `dispense` table of `--rows` and `--large-rows` rows of one day on a throwaway PostgreSQL
  cluster. `pull_sp_dispense` of that day against a bare psycopg `COPY (<the same select>) TO STDOUT`
  written gzipped (same level: the landing file is gzipped, so both pay for it; the plain COPY, not
  compressed, is printed for scale). Targets: pull <= 1.5 x COPY at `--rows`; the pull's peak RSS at
  `--large-rows` within 1.2 x of that at `--rows`.

Every measurement runs in a fresh process, `--repeats` times, each right after its baseline; the ratio
is the median of the pair ratios (the machine's speed drifts between runs). Asserts nothing.

    python benchmarks/sources.py [--records 200000] [--shards 4] [--rows 1000000] [--large-rows 5000000]
                                 [--repeats 3] [--only stream|database]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

DAY = date(2026, 11, 20)
STREAM = "engagement-bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


# --- children: one measurement each -----------------------------------------------------------------
def child(mode: str, config: dict) -> None:
    # Imports are no part of the work measured: load every module either side uses first.
    import boto3  # noqa: F401
    import psycopg  # noqa: F401

    from fe_platform.lib.lake import LocalLake  # noqa: F401
    from fe_platform.lib.sources import hcp_engagement, sp_dispense  # noqa: F401

    started = time.perf_counter()
    count = {"stream-bare": stream_bare, "stream-consumer": stream_consumer, "db-copy": db_copy,
             "db-copy-plain": db_copy_plain, "db-pull": db_pull}[mode](config)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"count": count, "seconds": seconds, "peak_rss_mb": peak_mb}))


def _kinesis(config: dict):
    from fe_platform.lib.sources.hcp_engagement import kinesis_client

    return kinesis_client("us-east-1", config["endpoint"])


def stream_bare(config: dict) -> int:
    from fe_platform.lib.sources.hcp_engagement import GZIP_LEVEL

    client, out, n = _kinesis(config), Path(config["out"]), 0
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        with gzip.open(out / f"{shard['ShardId']}.jsonl.gz", "wb", compresslevel=GZIP_LEVEL) as f:
            while iterator:
                answer = client.get_records(ShardIterator=iterator, Limit=10_000)
                f.write(b"".join(r["Data"] + b"\n" for r in answer["Records"]))
                n += len(answer["Records"])
                if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = answer.get("NextShardIterator")
    return n


def stream_consumer(config: dict) -> int:
    from fe_platform.lib.lake import LocalLake
    from fe_platform.lib.sources.hcp_engagement import EngagementConsumer

    consumer = EngagementConsumer(LocalLake(config["out"]), _kinesis(config), STREAM, poll_interval=0.2,
                                  min_call_interval=0.2)
    return consumer.consume(until_caught_up=True).records


def _conninfo(config: dict) -> dict:
    return config["conninfo"]


def db_copy(config: dict) -> int:
    """COPY of the puller's own select, written gzipped as the landing file is."""
    import psycopg
    from psycopg import sql

    from fe_platform.lib.sources.sp_dispense import GZIP_LEVEL, day_query, day_window

    query = sql.SQL("copy ({}) to stdout with (format csv, header)").format(day_query(config["table"]))
    rows = 0
    with psycopg.connect(**_conninfo(config)) as conn, conn.cursor() as cursor, \
            gzip.open(Path(config["out"]) / "copy.csv.gz", "wb", compresslevel=GZIP_LEVEL) as out:
        with cursor.copy(query, day_window(DAY)) as copy:
            for block in copy:
                out.write(block)
                rows += bytes(block).count(b"\n")
    return rows - 1


def db_copy_plain(config: dict) -> int:
    """The same COPY, not compressed: the bare transfer, for scale."""
    import psycopg
    from psycopg import sql

    from fe_platform.lib.sources.sp_dispense import day_query, day_window

    query = sql.SQL("copy ({}) to stdout with (format csv, header)").format(day_query(config["table"]))
    rows = 0
    with psycopg.connect(**_conninfo(config)) as conn, conn.cursor() as cursor, \
            open(Path(config["out"]) / "copy.csv", "wb") as out:
        with cursor.copy(query, day_window(DAY)) as copy:
            for block in copy:
                out.write(block)
                rows += bytes(block).count(b"\n")
    return rows - 1


def db_pull(config: dict) -> int:
    from fe_platform.lib.lake import LocalLake
    from fe_platform.lib.sources.sp_dispense import pull_sp_dispense

    return pull_sp_dispense(LocalLake(config["out"]), _conninfo(config), DAY, table=config["table"]).rows


# --- the parent: set up, run pairs, print ---------------------------------------------------------
def measure(mode: str, config: dict) -> dict:
    out = Path(config["out"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    # The configuration (a password among it) goes by environment, not on a command line others can read.
    done = subprocess.run([sys.executable, __file__, "--child", mode], check=True, capture_output=True, text=True,
                          env={**os.environ, **CREDENTIALS, "FE_BENCH_CONFIG": json.dumps(config)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def pairs(base_mode: str, our_mode: str, config: dict, repeats: int) -> tuple[dict, dict, float, list[float]]:
    runs = [(measure(base_mode, config), measure(our_mode, config)) for _ in range(repeats)]
    assert all(b["count"] == o["count"] for b, o in runs), runs
    ratios = sorted(o["seconds"] / b["seconds"] for b, o in runs)

    def summary(rs: list[dict]) -> dict:
        return {"seconds": statistics.median(r["seconds"] for r in rs), "best": min(r["seconds"] for r in rs),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs), "count": rs[0]["count"]}

    return summary([b for b, _ in runs]), summary([o for _, o in runs]), statistics.median(ratios), ratios


def engagement_event(rng: random.Random) -> bytes:
    channel = rng.choice(("EMAIL", "PORTAL", "WEBINAR"))
    return json.dumps({
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "occurred_at": f"2026-11-20T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        "channel": channel, "action": {"EMAIL": "OPENED", "PORTAL": "VISITED", "WEBINAR": "VISITED"}[channel],
        "npi": f"1{rng.randint(0, 999_999_999):09d}", "account_id": f"001{rng.getrandbits(60):015x}"[:18],
        "brand_code": rng.choice(("FOLLIVA", "MENOFEM", "LUTEVA", "SOMAFE")),
        "content_id": f"EM-FOLLIVA-202611-{rng.choice('ABC')}"}, separators=(",", ":")).encode()


def bench_stream(args, tmp: Path) -> None:
    import socket

    from fe_platform.sample_data.pulled_feeds import put_engagement_records

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        config = {"endpoint": f"http://127.0.0.1:{port}", "out": str(tmp / "stream")}
        os.environ.update(CREDENTIALS)
        client = None
        for _ in range(100):
            try:
                client = _kinesis(config)
                client.create_stream(StreamName=STREAM, ShardCount=args.shards)
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        rng = random.Random(7)
        records = [engagement_event(rng) for _ in range(args.records)]
        started = time.perf_counter()
        put_engagement_records(client, STREAM, records)
        mb = sum(map(len, records)) / 1e6
        print(f"stream: {args.records:,} records ({mb:,.0f} MB) in {args.shards} shards, put in "
              f"{time.perf_counter() - started:.1f} s")
        base, ours, ratio, ratios = pairs("stream-bare", "stream-consumer", config, args.repeats)
        print(f"  consumer {ours['seconds']:6.2f} s ({ours['count'] / ours['seconds']:,.0f} records/s; best "
              f"{ours['best']:.2f} s), bare get_records + gzip {base['seconds']:6.2f} s (best {base['best']:.2f} s), "
              f"ratio {ratio:.2f} (pairs {ratios[0]:.2f}-{ratios[-1]:.2f}; target <= 1.3)")
    finally:
        server.terminate()
        server.wait(timeout=10)


FILL = """insert into {table} select g, lpad((g % 9000000 + 1000000)::text, 7, '0'), md5(g::text), '1234567893',
    '555662000' || lpad((g % 90 + 10)::text, 2, '0'), date '2026-11-20' - (g % 3), case when g % 5 = 0 then 'NEW'
    else 'REFILL' end, (g % 10 + 1)::numeric, 30, (array['COMMERCIAL','MEDICARE','MEDICAID','CASH','OTHER'])[g % 5 + 1],
    round((g % 15000) / 100.0, 2), case when g % 50 = 0 then 'REVERSED' else 'DISPENSED' end,
    timestamptz '2026-11-20 00:00:00+00' + (g % 86400) * interval '1 second' + (g % 7) * interval '1 millisecond'
    from generate_series(1, {rows}) g"""


def bench_database(args, tmp: Path) -> None:
    import psycopg

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fe_platform.sample_data.pulled_feeds import DISPENSE_TABLE
    from fe_platform_tests.postgres_cluster import PostgresCluster, available

    if not available():
        print("database: skipped, PostgreSQL 15 is not installed")
        return
    with PostgresCluster() as pg:
        results = {}
        for rows in (args.rows, args.large_rows):
            table = f"dispense_{rows}"
            started = time.perf_counter()
            with psycopg.connect(**pg.conninfo()) as conn:
                conn.execute(DISPENSE_TABLE.format(table=table))
                conn.execute(FILL.format(table=table, rows=rows))
                conn.execute(f"create index on {table} (updated_at)")
                conn.execute(f"analyze {table}")
            print(f"database: {rows:,} rows of one day in {table}, filled in {time.perf_counter() - started:.1f} s")
            config = {"conninfo": pg.conninfo(), "table": table, "out": str(tmp / "db")}
            plain = measure("db-copy-plain", config)
            base, ours, ratio, ratios = pairs("db-copy", "db-pull", config, args.repeats)
            results[rows] = ours
            print(f"  pull {ours['seconds']:6.2f} s ({rows / ours['seconds']:,.0f} rows/s; best {ours['best']:.2f} s;"
                  f" peak RSS {ours['peak_rss_mb']:,.0f} MB), COPY + gzip {base['seconds']:6.2f} s (best "
                  f"{base['best']:.2f} s; peak RSS {base['peak_rss_mb']:,.0f} MB), ratio {ratio:.2f} (pairs "
                  f"{ratios[0]:.2f}-{ratios[-1]:.2f}; target <= 1.5); plain COPY, not compressed, "
                  f"{plain['seconds']:.2f} s")
        small, large = results[args.rows], results[args.large_rows]
        print(f"  pull peak RSS {args.large_rows:,} / {args.rows:,} rows: "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (target <= 1.2)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--large-rows", type=int, default=5_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("stream", "database"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "stream"):
            bench_stream(args, Path(tmp))
        if args.only in (None, "database"):
            bench_database(args, Path(tmp))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(os.environ["FE_BENCH_CONFIG"]))
    else:
        main()
