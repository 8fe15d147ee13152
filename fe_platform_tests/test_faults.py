"""Fault injection (issue 10): a locked warehouse, kill -9 of `fe-platform run` during ingestion and during dbt, two
runs at once, an error in the middle of a batch, leftovers of killed writes, a lake that cannot be written, a crash
inside a partition commit on S3. After each fault the next runs must leave the platform as a run without the fault
would have, and the console must say what went wrong. Each test's docstring names the fault it guards against.

Runs are what these tests cost (a refresh is a whole dbt build and every dashboard), so the faults are staged in
two scenarios, each a module fixture that records what happened, and each test checks one fault's outcome:
- `killed_then_two_at_once`: the first run of a small sample is killed in the middle of an ingestion batch, then
  three runs start at once: one works (held inside its refresh by the warehouse's lock), one stops, one waits.
  The home it ends in is checked against the generator's manifest and the lake, and is where the others start.
- `locked_then_killed_in_dbt`: a correction of an IQVIA week; a run while another process holds the DuckDB
  file, then a run killed while dbt builds `fct_rx_weekly`, then a run that completes.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from argparse import Namespace
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fe_platform.cli import cmd_run
from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib import zones
from fe_platform.lib.delivery_log import read_delivery_log
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.lake import TEMP_PREFIX
from fe_platform.lib.warehouse import duckdb_lock
from fe_platform.lib.zones import committed_partitions, current_version, read_partition
from fe_platform.runner import dagster_instance, run_platform
from fe_platform.runner.execution import RUNNER_TAG, Runner
from fe_platform.sample_data.generator import FILE_FEEDS, generate
from fe_platform.settings import load_settings
from fe_platform_tests.test_end_to_end import latest_delivery_totals, restated_delivery
from fe_platform_tests.test_ingestion import KEY, delimited, iqvia_rows, land
from fe_platform_tests.test_rules import CLEAN

END = date(2026, 11, 13)
FE_PLATFORM = Path(sys.executable).parent / "fe-platform"
LAYERS = ("lake", "staging", "intermediate", "marts", "reporting")
# A correction of the sample's one accepted IQVIA week, delivered under a new name (the same partition).
CORRECTION = "landing/iqvia_rx/RXDYN_WEEKLY_20261113.txt.gz"
NEW_WEEK = "landing/iqvia_rx/RXDYN_WEEKLY_20261120.txt"


def swept(runs: list[str]) -> str:
    return f"Marked {len(runs)} run(s) of a killed `fe-platform run` failed"


# --- helpers ---------------------------------------------------------------------------------------------------

def settings_for(home: Path):
    return load_settings({"FE_HOME": str(home)})


def sample(settings) -> dict:
    """A small sample of the file feeds (the pulled feeds add nothing a fault here needs); its manifest."""
    return generate(lake_from_settings(settings), END, weeks=1, hcps=40, seed=5, defect_rate=0.02, feeds=FILE_FEEDS)


def copy_home(source: Path, home: Path):
    shutil.copytree(source, home, symlinks=True)
    return settings_for(home)


def sql(settings, query: str):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(query).fetchall()


def warehouse_counts(settings) -> dict[str, int]:
    """Rows of every relation of the warehouse's layers."""
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        names = con.execute("select table_schema, table_name from information_schema.tables "
                            f"where table_schema in {LAYERS} order by 1, 2").fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in names}


def materialized(settings) -> dict[str, object]:
    """Per asset: its materialized partitions, or whether it was ever materialized."""
    instance = dagster_instance(settings)
    graph = build_definitions(settings).resolve_asset_graph()
    out: dict[str, object] = {}
    for key in graph.materializable_asset_keys:
        if graph.get(key).is_partitioned:
            out[key.to_user_string()] = frozenset(instance.get_materialized_partitions(key))
        else:
            out[key.to_user_string()] = bool(instance.fetch_materializations(key, limit=1).records)
    return out


def home_env(home: Path) -> dict[str, str]:
    """The environment of a `fe-platform` process on `home`: nothing of another home (an in-process run leaves
    FE_DUCKDB_PATH and DAGSTER_HOME in this process's environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FE_", "DAGSTER_"))}
    return {**env, "FE_HOME": str(home)}


def start_run(home: Path, *args: str) -> subprocess.Popen:
    """`fe-platform run` in a process group of its own (the run and the dbt it starts)."""
    return subprocess.Popen([str(FE_PLATFORM), "run", *args], env=home_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill(process: subprocess.Popen) -> str:
    """kill -9 of the run and what it started; what it had printed."""
    os.killpg(process.pid, signal.SIGKILL)
    return process.communicate()[0]


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    if not reached(condition, process, timeout):
        if process.poll() is None:
            pytest.fail(f"no {what} after {timeout} s")
        out, err = process.communicate()
        pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{out}\n{err[-3000:]}")


def reached(condition, process: subprocess.Popen, timeout: float = 300) -> bool:
    """Whether `condition` came true while the process ran (and within `timeout`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def outcome(process: subprocess.Popen, timeout: float) -> tuple[int | None, str, str]:
    """Exit code, stdout and stderr; no exit code when it still runs after `timeout`."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", f"still running after {timeout} s"
    return process.returncode, out, err


def console_run(settings) -> tuple[int, str]:
    """`fe-platform run` in this process: its exit code and what it printed on the console."""
    console = io.StringIO()
    with redirect_stdout(console):
        code = cmd_run(settings, Namespace(wait=0))
    return code, console.getvalue()


def unfinished_runs(settings, pid: int) -> list[str]:
    """Dagster runs of the `fe-platform run` with this pid that are not finished."""
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, RunsFilter

    owner = f"{socket.gethostname()}:{pid}"
    records = dagster_instance(settings).get_run_records(RunsFilter(statuses=list(NOT_FINISHED_STATUSES)))
    return [r.dagster_run.run_id for r in records if r.dagster_run.tags.get(RUNNER_TAG) == owner]


def run_statuses(settings, run_ids: list[str]) -> set[str]:
    instance = dagster_instance(settings)
    return {instance.get_run_by_id(r).status.value for r in run_ids}


def committed(settings, feed: str) -> int:
    return len(committed_partitions(lake_from_settings(settings), feed))


def dbt_log_size(home: Path) -> int:
    log = home / "dbt-target" / "dbt.log"
    return log.stat().st_size if log.exists() else 0


def dbt_started(home: Path, model: str, after: int) -> bool:
    """dbt (of this run: the log past `after`) began building `model`."""
    log = home / "dbt-target" / "dbt.log"
    if not log.exists():
        return False
    with open(log, "rb") as f:
        f.seek(after)
        return f"Began running node model.fe_platform.{model}".encode() in f.read()


def has_open(pid: int, path: Path) -> bool:
    """The process has `path` open (a run waiting for the home's lock keeps its lock file open)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def holds_home(pid: int, home: Path) -> bool:
    """The run holds its home's lock (the lock file names it), or works without it: it has reached its refresh,
    where it waits for the warehouse's lock."""
    try:
        if f"pid {pid} " in (home / "run.lock").read_text():
            return True
    except OSError:
        pass
    return has_open(pid, home / "warehouse.duckdb.lock")


def assert_each_delivery_recorded_once(lake) -> int:
    recorded = Counter(r.landing_key for r in read_delivery_log(lake))
    assert {k for k, n in recorded.items() if n > 1} == set()
    assert set(recorded) == {o.key for o in lake.list("landing/")}
    return len(recorded)


def assert_every_committed_partition_readable(lake) -> None:
    for feed in FILE_FEEDS:
        for partition in committed_partitions(lake, feed):
            version = current_version(lake, feed, partition)
            assert read_partition(lake, "validated", feed, partition).num_rows == version.rows_valid
            assert read_partition(lake, "quarantine", feed, partition).num_rows == version.rows_quarantined


def assert_warehouse_holds_every_validated_partition(settings) -> None:
    """`lake.<feed>` holds every committed partition, in its current version, row for row."""
    lake = lake_from_settings(settings)
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        for feed in FILE_FEEDS:
            loaded = dict(con.execute(f'select "_data_date"::varchar, count(*) from lake."{feed}" group by 1')
                          .fetchall())
            versions = dict(con.execute("select partition_date::varchar, version from lake.partition_versions "
                                        "where feed = ?", [feed]).fetchall())
            for partition in committed_partitions(lake, feed):
                version = current_version(lake, feed, partition)
                if version.rows_valid:  # (a partition with no valid row has no rows in the table either way)
                    assert (loaded.get(partition), versions.get(partition)) == (version.rows_valid, version.version), \
                        f"lake.{feed} {partition}"


def assert_facts_follow_the_lake(settings) -> None:
    """The fact as a full rebuild from the lake gives it, and the reporting table that sums it."""
    expected = latest_delivery_totals(lake_from_settings(settings))
    assert sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0] == expected
    reported = sql(settings, "select sum(trx) from reporting.rpt_brand_weekly")[0][0]
    unknown = sql(settings, "select coalesce(sum(trx), 0) from marts.fct_rx_weekly f left join marts.dim_product p "
                            "using (product_key) where p.product_key is null")[0][0]
    assert reported + unknown == expected


# --- scenarios -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def own_environment():
    """A run in this process sets DAGSTER_HOME and dbt's connection variables in `os.environ`: none of it outlives
    these tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class KilledThenTwoAtOnce:
    settings: object
    manifest: dict  # the generator's: every file's expected outcome
    killed_pid: int
    left_started: list[str]  # the killed run's Dagster runs, as the kill left them
    logged_at_kill: int
    working: tuple[int, str, str]  # exit code, stdout, stderr
    working_pid: int
    stopped: tuple[int, str, str]
    waited_at_the_lock: bool
    waiting: tuple[int, str, str]
    counts: dict[str, int]  # rows of every warehouse relation at the end
    materialized: dict[str, object]


@pytest.fixture(scope="module")
def killed_then_two_at_once(tmp_path_factory) -> KilledThenTwoAtOnce:
    home = tmp_path_factory.mktemp("killed") / "home"
    settings = settings_for(home)
    manifest = sample(settings)
    killed = start_run(home)  # killed once fx_rates, a batch of 7 deliveries, has committed 2 partitions
    wait_for(lambda: committed(settings, "fx_rates") >= 2, killed, "two fx_rates partitions committed")
    kill(killed)
    left_started = unfinished_runs(settings, killed.pid)
    logged_at_kill = len(read_delivery_log(lake_from_settings(settings)))

    runs: list[subprocess.Popen] = []
    try:
        with duckdb_lock(settings.duckdb_path):  # the working run waits here once it has ingested
            working = start_run(home)
            runs.append(working)
            wait_for(lambda: holds_home(working.pid, home), working, "the working run at work")
            second, waiting = start_run(home), start_run(home, "--wait", "600")
            runs += [second, waiting]
            stopped = outcome(second, timeout=120)
            waited = reached(lambda: has_open(waiting.pid, home / "run.lock"), waiting, timeout=120) \
                and working.poll() is None
        done, waited_out = outcome(working, timeout=600), outcome(waiting, timeout=600)
    finally:
        for run in runs:
            if run.poll() is None:
                kill(run)
    return KilledThenTwoAtOnce(settings, manifest, killed.pid, left_started, logged_at_kill, done, working.pid,
                               stopped, waited, waited_out, warehouse_counts(settings), materialized(settings))


@dataclass
class LockedThenKilledInDbt:
    settings: object
    fact_before: int
    holder_pid: int
    locked: tuple[int, str]  # exit code, console
    killed_pid: int
    killed_out: str
    left_started: list[str]
    loaded_by_killed: set[str]  # versions of iqvia_rx 2026-11-13 the killed run loaded
    last: list[str]  # what the completing run printed
    last_ok: bool


HOLD_DUCKDB = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('holding', flush=True); sys.stdin.read()"


@pytest.fixture(scope="module")
def locked_then_killed_in_dbt(killed_then_two_at_once, tmp_path_factory) -> LockedThenKilledInDbt:
    settings = copy_home(killed_then_two_at_once.settings.home, tmp_path_factory.mktemp("locked") / "home")
    home, lake = settings.home, lake_from_settings(settings)
    fact_before = sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0]
    lake.put_bytes(gzip.compress(restated_delivery(lake)), CORRECTION)

    holder = subprocess.Popen([sys.executable, "-c", HOLD_DUCKDB, str(settings.duckdb_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        locked = console_run(settings)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)

    dbt_log = dbt_log_size(home)
    killed = start_run(home)
    try:
        # (a run that never gets there, as when nothing asks again for the failed load, is not killed: the tests
        # below then find it left nothing to sweep)
        reached(lambda: dbt_started(home, "fct_rx_weekly", dbt_log), killed)
    finally:
        killed_out = kill(killed) if killed.poll() is None else killed.communicate()[0]
    left_started = unfinished_runs(settings, killed.pid)
    instance = dagster_instance(settings)
    loads = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["warehouse", "lake", "iqvia_rx"]), asset_partitions=["2026-11-13"]), limit=10).records
    loaded_by_killed = {r.asset_materialization.metadata["version"].value for r in loads
                        if instance.get_run_by_id(r.run_id).tags.get(RUNNER_TAG, "").endswith(f":{killed.pid}")}

    last: list[str] = []
    summary = run_platform(settings, last.append)
    return LockedThenKilledInDbt(settings, fact_before, holder.pid, locked, killed.pid, killed_out, left_started,
                                 loaded_by_killed, last, summary.ok)


# --- 1. a failed refresh is retried ----------------------------------------------------------------------------

def test_a_refresh_that_failed_on_a_locked_warehouse_says_why_and_is_done_by_the_next_run(locked_then_killed_in_dbt):
    """Guards against a failed refresh never being retried, and against a console that says only "RUN FAILED":
    a correction of an IQVIA week is ingested while another process holds the DuckDB file, so loading it fails.
    That run prints the reason (DuckDB's lock error, naming the holder's pid) and exits 1; the next run loads the
    partition's new version (automation's `execution_failed()` asks for it again: the failed request had
    "handled" the update, so without it no later run loads the correction), and the facts and marts are then
    what a full rebuild from the lake gives."""
    s = locked_then_killed_in_dbt
    code, out = s.locked
    assert code == 1
    failed = [line for line in out.splitlines() if "RUN FAILED" in line]
    assert failed and all("Could not set lock on file" in line for line in failed), out
    assert f"PID {s.holder_pid}" in failed[0]
    assert "Traceback" not in out

    lake = lake_from_settings(s.settings)
    version = current_version(lake, "iqvia_rx", "2026-11-13")
    assert version.parts[0].landing_key == CORRECTION
    assert s.loaded_by_killed == {version.version}  # the next run loaded it (before it was killed in dbt)
    assert s.last_ok
    assert_warehouse_holds_every_validated_partition(s.settings)
    assert_facts_follow_the_lake(s.settings)
    assert sql(s.settings, "select sum(trx) from marts.fct_rx_weekly")[0][0] > s.fact_before


# --- 2. a killed run does not block its assets -----------------------------------------------------------------

def test_a_run_killed_in_dbt_is_marked_failed_and_its_refresh_redone(locked_then_killed_in_dbt,
                                                                     killed_then_two_at_once):
    """Guards against a killed run blocking its assets forever: `fe-platform run` is killed (SIGKILL, with its
    dbt) while dbt builds `fct_rx_weekly`, which leaves its Dagster run STARTED, so automation would wait on it
    forever. The next run marks it failed, says so, and redoes the refresh: the same assets and partitions are
    materialized as before the correction, and every warehouse table has the same rows (a correction of the
    same keys: only the delivery log has one delivery more)."""
    s, before = locked_then_killed_in_dbt, killed_then_two_at_once
    assert s.left_started, "the kill did not fall inside a refresh run:\n" + s.killed_out
    assert s.last_ok
    assert materialized(s.settings) == before.materialized
    expected = dict(before.counts)
    for table in ("lake.deliveries", "staging.stg_platform__deliveries", "marts.fct_delivery",
                  "reporting.rpt_data_quality"):
        expected[table] += 1
    assert warehouse_counts(s.settings) == expected
    assert_facts_follow_the_lake(s.settings)
    assert run_statuses(s.settings, s.left_started) == {"FAILURE"}
    assert unfinished_runs(s.settings, s.killed_pid) == []
    assert any(swept(s.left_started) in line for line in s.last)


def test_a_run_killed_during_ingestion_loses_no_delivery(killed_then_two_at_once):
    """Guards against a kill in the middle of an ingestion batch losing deliveries or leaving their partitions out
    of Dagster and the warehouse: the first run is killed once 2 of the 7 fx_rates deliveries of its batch are
    committed. The next run marks the killed run failed and ingests what was not logged; the home then holds what
    the generator's manifest expects (one record per landing file, with its outcome), every committed partition
    readable in both zones, materialized in Dagster and loaded into the warehouse row for row, every table and
    dashboard built, and the facts as a full rebuild from the lake gives them."""
    s = killed_then_two_at_once
    assert s.left_started, "the kill did not fall inside an ingestion run"
    lake = lake_from_settings(s.settings)
    assert s.logged_at_kill < len(s.manifest["files"])
    code, out, err = s.working
    assert code == 0, out + err[-3000:]

    assert_each_delivery_recorded_once(lake)
    assert {r.landing_key: r.outcome for r in read_delivery_log(lake)} == {
        f["key"]: f["expected"] for f in s.manifest["files"]}
    assert_every_committed_partition_readable(lake)
    for feed in FILE_FEEDS:
        partitions = frozenset(committed_partitions(lake, feed))
        for asset in (f"raw_{feed}", f"validated_{feed}", f"warehouse/lake/{feed}"):
            assert s.materialized[asset] == partitions, asset
    unpartitioned = {k: v for k, v in s.materialized.items() if isinstance(v, bool)}
    assert unpartitioned and all(unpartitioned.values()), [k for k, v in unpartitioned.items() if not v]
    assert_warehouse_holds_every_validated_partition(s.settings)
    assert_facts_follow_the_lake(s.settings)
    assert run_statuses(s.settings, s.left_started) == {"FAILURE"}
    assert swept(s.left_started) in out  # the runs it made side by side


def test_a_batch_that_fails_midway_is_logged_only_as_far_as_dagster_knows(tmp_path, monkeypatch):
    """Guards against deliveries logged as ingested whose partitions Dagster never saw: a batch of two IQVIA
    weeks fails at the second (an error here, a kill does the same) after the first week's partition was
    committed. If the first delivery were logged before its partition's materialization, the next run would
    skip it and the week would never be loaded into the warehouse; it must be ingested again and materialized."""
    settings = settings_for(tmp_path / "home")
    lake = lake_from_settings(settings)
    for week in ("20261113", "20261120"):
        rows = iqvia_rows(3, week_ending=f"{week[:4]}-{week[4:6]}-{week[6:]}")
        land(lake, "iqvia_rx", f"RXDYN_WEEKLY_{week}.txt", delimited("iqvia_rx", rows))
    defs, instance = build_definitions(settings), dagster_instance(settings)

    from fe_platform.lib import ingestion

    validate = ingestion.validate_delivery
    calls = []

    def fails_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return validate(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ingestion, "validate_delivery", fails_at_the_second)
        first = Runner(settings, defs, instance, echo=lambda _: None)
        first.ingest()
    assert first.summary.failed_runs and "No space left on device" in first.summary.failed_runs[0]
    assert committed(settings, "iqvia_rx") == 1

    second = Runner(settings, defs, instance, echo=lambda _: None)
    second.ingest()
    assert second.summary.ok
    validated = dg.AssetKey("validated_iqvia_rx")
    assert instance.get_materialized_partitions(validated) == {"2026-11-13", "2026-11-20"}
    assert_each_delivery_recorded_once(lake)


# --- 3. two runs at once ---------------------------------------------------------------------------------------

def test_a_second_run_stops_at_once_and_a_waiting_one_finds_nothing_to_do(killed_then_two_at_once):
    """Guards against two `fe-platform run` on one home both ingesting (deliveries logged twice, facts over
    counted): while one run works, a second stops at once with exit code 3 and a message naming the holder, and a
    third with `--wait` waits at the lock until the first is done and then finds nothing to do. Every landing
    file has one delivery-log record, and `lake.deliveries` and `fct_delivery` count each delivery once."""
    s = killed_then_two_at_once
    code, out, err = s.stopped
    assert code == 3, out + err[-3000:]
    assert f"the platform home {s.settings.home} is in use by pid {s.working_pid} (" in err
    assert "--wait" in err and "Ingesting" not in out
    assert s.waited_at_the_lock
    code, out, err = s.waiting
    assert code == 0, out + err[-3000:]
    assert "runs this time: 0 (0 failed)" in out

    deliveries = assert_each_delivery_recorded_once(lake_from_settings(s.settings))
    assert sql(s.settings, "select count(*) from lake.deliveries")[0][0] == deliveries
    assert sql(s.settings, "select count(*) from marts.fct_delivery")[0][0] == deliveries


# --- 4. leftovers ----------------------------------------------------------------------------------------------

def test_the_next_run_removes_what_killed_writes_left_and_keeps_a_live_runs_work(killed_then_two_at_once, tmp_path):
    """Guards against leftovers of killed writes piling up: temporary files in raw/ and validated/ and the work
    folder of a dead process are removed by the next run; the work folder of a live process is kept."""
    settings = copy_home(killed_then_two_at_once.settings.home, tmp_path / "home")
    lake_root = Path(settings.lake_root)
    version = current_version(lake_from_settings(settings), "iqvia_rx", "2026-11-13")
    temp_files = [lake_root / "raw" / "iqvia_rx" / "2026-11-13" / f"{TEMP_PREFIX}a1b2c3",
                  lake_root / version.folder("validated") / f"{TEMP_PREFIX}d4e5f6"]
    for path in temp_files:
        path.write_bytes(b"PAR1 half a part")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "300"])
    try:
        folders = {pid: settings.work_dir / f"pid-{pid}" for pid in (dead.pid, live.pid)}
        for folder in folders.values():
            folder.mkdir(parents=True)
            (folder / "chunk-0.parquet").write_bytes(b"x" * 1024)
        summary = run_platform(settings, lambda _: None)
        assert summary.ok and summary.runs == 0
        assert [p for p in temp_files if p.exists()] == []
        assert not folders[dead.pid].exists()
        assert (folders[live.pid] / "chunk-0.parquet").exists()
    finally:
        live.kill()
        live.wait()


# --- 5. errors people can read ---------------------------------------------------------------------------------

def make_unwritable(lake_root: Path) -> str:
    """Make the lake's raw zone refuse writes; the error a write now meets. Permissions stop nothing for root (as
    these tests may run), so there the zone becomes a file where its folder must be."""
    raw = lake_root / "raw"
    for folder, _, _ in os.walk(raw):
        os.chmod(folder, 0o555)
    try:
        (raw / "probe").write_bytes(b"")
    except PermissionError:
        return "Permission denied"
    (raw / "probe").unlink()
    for folder, _, _ in os.walk(raw):
        os.chmod(folder, 0o755)
    raw.rename(lake_root / "raw-moved-away")
    raw.write_bytes(b"not a folder")
    return "Not a directory"


def test_a_lake_that_cannot_be_written_is_named_on_the_console(killed_then_two_at_once, tmp_path):
    """Guards against a run that fails on the lake printing only "RUN FAILED": the console line of the failed run
    carries the reason (the operating system's error and the path), without a traceback, and the delivery stays
    unlogged, so the next run takes it."""
    settings = copy_home(killed_then_two_at_once.settings.home, tmp_path / "home")
    lake = lake_from_settings(settings)
    lake.put_bytes(restated_delivery(lake), NEW_WEEK)
    reason = make_unwritable(Path(settings.lake_root))
    try:
        code, out = console_run(settings)
    finally:
        for folder, _, _ in os.walk(Path(settings.lake_root) / "raw"):
            os.chmod(folder, 0o755)
    assert code == 1
    failed = [line for line in out.splitlines() if "RUN FAILED" in line]
    assert len(failed) == 1 and "ingest iqvia_rx" in failed[0], out
    assert reason in failed[0] and str(Path(settings.lake_root) / "raw") in failed[0]
    assert any(line.strip().startswith("FAILED: ingest iqvia_rx") and reason in line for line in out.splitlines())
    assert "Traceback" not in out
    assert read_delivery_log(lake, "iqvia_rx", partition="2026-11-20") == []


def dbt_failure(error_messages: list[str]) -> str:
    """dagster-dbt's error for a failed `dbt build` (its own wording), with the error lines dbt logged."""
    return ("The dbt CLI process with command\n\n`dbt build --select fqn:*`\n\n"
            "failed with exit code `1`. Check the stdout in the Dagster compute logs for the full information about "
            "the error, or view the dbt debug log: /home/dbt-target/dbt.log." + "\n\n".join(
                ["", "Errors parsed from dbt logs:", *error_messages]))


@pytest.mark.parametrize(("logged", "reason"), [
    (["43 of 133 FAIL 3 accepted_values_fct_delivery_feed  [\x1b[31mFAIL 3\x1b[0m in 0.13s]",
      "\x1b[31mFailure in test accepted_values_fct_delivery_feed (models/marts/_facts.yml)\x1b[0m",
      "  Got 3 results, configured to fail if != 0"],
     "43 of 133 FAIL 3 accepted_values_fct_delivery_feed  [FAIL 3 in 0.13s]"),
    (["12 of 40 ERROR creating sql table model marts.fct_call  [\x1b[31mERROR\x1b[0m in 0.05s]",
      "\x1b[31mFailure in model fct_call (models/marts/fct_call.sql)\x1b[0m",
      "  Runtime Error in model fct_call (models/marts/fct_call.sql)\n  Binder Error: no column call_id"],
     "Runtime Error in model fct_call (models/marts/fct_call.sql)"),
])
def test_a_failed_dbt_build_is_named_on_the_console(logged, reason):
    """Guards against a refresh whose dbt build fails printing only dagster-dbt's preamble ("The dbt CLI process
    with command"): the console's reason is dbt's own line, the failed test or the model's error, without colors."""
    from dagster_dbt.errors import DagsterDbtCliRuntimeError

    from fe_platform.runner.report import failure_reason

    @dg.op
    def build():
        raise DagsterDbtCliRuntimeError(description=dbt_failure(logged))

    result = dg.GraphDefinition("refresh", node_defs=[build]).to_job().execute_in_process(raise_on_error=False)
    assert failure_reason(result) == reason


# --- 6. the partition commit on S3 -----------------------------------------------------------------------------

def crash_before_the_manifest(patch, lake):
    def killed(lake, version):
        raise KeyboardInterrupt("killed before the manifest was written")

    patch.setattr("fe_platform.lib.ingestion.commit", killed)


def crash_between_the_parts(patch, lake):
    put_file = type(lake).put_file

    def killed(self, path, key):
        if key.startswith("quarantine/"):
            raise KeyboardInterrupt("killed after the validated part, before the quarantine part")
        return put_file(self, path, key)

    patch.setattr(type(lake), "put_file", killed)


def assert_a_crash_on_s3_leaves_the_previous_version_whole(aws_env, monkeypatch, crash) -> None:
    lake = lake_from_settings(load_settings(aws_env))
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    ingest_landing_file(lake, key, KEY)
    before = {z: read_partition(lake, z, "iqvia_rx", "2026-11-20") for z in zones.ZONES}
    rows = iqvia_rows(4, trx="7") + [dict(CLEAN["iqvia_rx"], prescriber_id="9", payer_type="NOPE")]
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))  # a new ETag: a new delivery

    with monkeypatch.context() as patch:
        crash(patch, lake)
        with pytest.raises(KeyboardInterrupt):
            ingest_landing_file(lake, key, KEY)
    assert all(read_partition(lake, z, "iqvia_rx", "2026-11-20").equals(before[z]) for z in zones.ZONES)
    assert [r.outcome for r in read_delivery_log(lake, "iqvia_rx")] == ["loaded"]

    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_valid, record.rows_quarantined) == (4, 1)
    assert read_partition(lake, "validated", "iqvia_rx", "2026-11-20")["trx"].to_pylist() == [7] * 4
    assert read_partition(lake, "quarantine", "iqvia_rx", "2026-11-20").num_rows == 1
    version = current_version(lake, "iqvia_rx", "2026-11-20")
    folders = {o.key.split("/")[3] for z in zones.ZONES for o in lake.list(f"{z}/iqvia_rx/2026-11-20/")
               if o.key.count("/") == 4}
    assert folders == {version.version, version.previous_version}


# (Two tests rather than one parametrized: `aws_env` names its bucket from the first 40 characters of the test.)
def test_s3_crash_before_the_manifest_leaves_the_previous_version_whole(aws_env, monkeypatch):
    """Guards against a reader (or a warehouse load) on S3 seeing a delivery's new validated rows with the old
    quarantine after a crash between writing its parts and its manifest: the previous version stays the
    partition's, whole, in both zones; a re-run commits the new one and removes the crash's leftover version."""
    assert_a_crash_on_s3_leaves_the_previous_version_whole(aws_env, monkeypatch, crash_before_the_manifest)


def test_s3_crash_between_the_parts_leaves_the_previous_version_whole(aws_env, monkeypatch):
    """Guards against a half-written version on S3 (the validated part written, the quarantine part not) being
    read: the previous version stays the partition's, whole, in both zones; a re-run completes the new one."""
    assert_a_crash_on_s3_leaves_the_previous_version_whole(aws_env, monkeypatch, crash_between_the_parts)
