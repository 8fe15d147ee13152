"""`fe-platform run`: one shot, no daemon, against the same Dagster instance the UI shows.

It takes the home's writer lock, marks the runs of a killed earlier `fe-platform run` failed (so their
work is asked for again) and removes what killed writes left behind; then it plans every feed's new
deliveries with the sensors' own code and runs each batch (different feeds' side by side, each in a process
forked from this one), and asks the assets' automation conditions what is now stale and materializes that
in-process, until nothing more is requested.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import socket
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from fe_platform.lib.locks import file_lock
from fe_platform.runner.planning import plan_runs, with_downstream
from fe_platform.runner.report import Delivery, Echo, Progress, RunOutcome, RunSummary, delivery_from_event
from fe_platform.settings import PROJECT_ROOT, Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RUNNER_TAG = "fe_platform/runner"  # host:pid of the `fe-platform run` that executes the run
MAX_ROUNDS = 4  # evaluations until automation requests nothing more
DAEMON_FRESH = timedelta(minutes=2)
LEFTOVER_AGE = timedelta(minutes=15)
QUIET_FOR_AT_MOST = timedelta(hours=1)  # how long a run with nothing new may skip the evaluation (QuietMark)


DASHBOARD_RENDERER = "fe_platform.lib.dashboards.preview"


def import_meanwhile(module: str) -> None:
    """Import `module` on a thread of its own. Before a run's dashboards, its dbt build works for seconds in a
    process of its own while this one waits; the dashboards' renderer (matplotlib) takes a second to import."""
    threading.Thread(target=importlib.import_module, args=(module,), name=f"import {module}", daemon=True).start()


class PlatformBusy(RuntimeError):
    """Another writer works on this home."""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under the platform's Dagster home, with the project's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def home_lock(settings: Settings, wait_seconds: float = 0):
    return file_lock(settings.home / "run.lock", f"the platform home {settings.home}", wait_seconds)


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def daemon_heartbeat_age(instance: dg.DagsterInstance) -> timedelta | None:
    beats = instance.get_daemon_heartbeats()
    if not beats:
        return None
    latest = max(b.timestamp for b in beats.values())
    return datetime.now(UTC) - datetime.fromtimestamp(latest, UTC)


def sweep_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished runs of an earlier `fe-platform run` on this host: holding the home's lock,
    no other one is alive, so they were killed. Automation then asks for their work again."""
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, RunsFilter

    host, me = socket.gethostname(), runner_id()
    swept = []
    for record in instance.get_run_records(RunsFilter(statuses=list(NOT_FINISHED_STATUSES))):
        owner = record.dagster_run.tags.get(RUNNER_TAG, "")
        if owner.startswith(f"{host}:") and owner != me:
            instance.report_run_failed(record.dagster_run, f"its process ({owner}) is gone: marked failed by "
                                                           f"the next `fe-platform run`")
            swept.append(record.dagster_run.run_id)
    return swept


def sweep_leftovers(settings: Settings, lake) -> int:
    """Remove temporary files of killed writes in a local lake, and work folders of dead processes."""
    from fe_platform.lib.lake import LocalLake

    removed = 0
    if isinstance(lake, LocalLake):
        # (a writer outside the home's lock, `generate` or `pull-fx`, may be writing a younger one right now)
        for path in lake.leftovers(older_than=datetime.now(UTC) - LEFTOVER_AGE):
            path.unlink(missing_ok=True)
            removed += 1
    work = settings.work_dir
    for folder in work.glob("pid-*") if work.exists() else []:
        pid = folder.name.removeprefix("pid-")
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


class Runner:
    def __init__(self, settings: Settings, defs: dg.Definitions, instance: dg.DagsterInstance, echo: Echo):
        self.settings, self.defs, self.instance = settings, defs, instance
        self.summary = RunSummary()
        self.progress = Progress(echo)
        self.runner_id = runner_id()  # the runs it forks carry it too: this process owns them and the home

    def execute(self, job: dg.JobDefinition, label: str, tags: dict, on_event=None, run_config=QUIET,
                asset_selection=None) -> RunOutcome:
        from dagster._core.utils import make_new_run_id

        outcome = self.make_run(job, make_new_run_id(), tags, on_event, run_config, asset_selection)
        self.record(outcome, label)
        return outcome

    def make_run(self, job: dg.JobDefinition, run_id: str, tags: dict, on_event=None, run_config=QUIET,
                 asset_selection=None) -> RunOutcome:
        if on_event:
            self.instance.add_event_listener(run_id, on_event)
        result = job.execute_in_process(instance=self.instance, run_id=run_id, raise_on_error=False,
                                        tags={**tags, RUNNER_TAG: self.runner_id}, run_config=run_config,
                                        asset_selection=asset_selection)
        return RunOutcome.of(result)

    def record(self, outcome: RunOutcome, label: str) -> None:
        self.summary.add_run(outcome, label)
        if not outcome.success:
            self.progress.line(f"  RUN FAILED: {label}: {outcome.reason}")

    def ingest(self) -> None:
        """Every feed's new deliveries, in batches: one run per batch, different feeds' runs side by side."""
        from dagster._core.utils import make_new_run_id

        from fe_platform.defs.ingestion.sensors import ingestion_job_name, plan_ingestion, run_request
        from fe_platform.lib.feeds import FEEDS
        from fe_platform.runner.side_by_side import IngestionRun, run_side_by_side, run_slots

        resources = self.defs.resources
        lake, ingestion = resources["lake"], resources["ingestion"]
        plans = {feed: plan_ingestion(lake, feed, ingestion) for feed in FEEDS.values()}
        runs = []
        for feed, (batches, rejected) in plans.items():
            for record in rejected:
                self.progress.line(f"  {feed.name:15} {record.landing_key.rsplit('/', 1)[-1]:34} rejected: "
                                   f"{record.reason}")
            if rejected:  # written before any run: said as the sensor says it, so reporting follows
                from fe_platform.defs.ingestion.assets import delivery_log_updated

                self.instance.report_runless_asset_event(delivery_log_updated(rejected))
            job = self.defs.resolve_job_def(ingestion_job_name(feed))
            for batch in batches:
                request, run_id = run_request(batch), make_new_run_id()

                def make(tell, job=job, request=request, run_id=run_id) -> RunOutcome:
                    def on_event(event):
                        if delivery := delivery_from_event(event):
                            tell(delivery)

                    return self.make_run(job, run_id, dict(request.tags), on_event,
                                         run_config={**QUIET, **request.run_config})

                runs.append(IngestionRun(feed, f"ingest {feed.name} ({len(batch.deliveries)} deliveries)", run_id,
                                         make))
        total = sum(len(b.deliveries) for batches, _ in plans.values() for b in batches)

        def delivered(delivery: Delivery) -> None:
            self.summary.deliveries.append(delivery)
            self.progress.line(f"  {len(self.summary.deliveries):>4}/{total} {delivery.line}")
            self.progress.status(f"  ingesting: {len(self.summary.deliveries)}/{total} deliveries")

        slots = run_slots(self.instance)
        if slots > 1 and len(runs) > 1:
            run_side_by_side(runs, slots, self.instance, delivered,
                             lambda run, outcome: self.record(outcome, run.label))
            return
        for run in runs:
            self.record(run.make(delivered), run.label)

    def tell_owners(self) -> None:
        """The alerts the daemon's sensor would send, and the metrics (aws), for what this run did. Telling
        must never fail the run: an alert that cannot be sent is logged whole by its channel."""
        from fe_platform.defs import operations

        lake = self.defs.resources["lake"]
        try:
            alerts = operations.evaluate_alerts(self.instance, self.defs, lake, self.settings)
            operations.publish_metrics(self.instance, self.defs, lake, self.settings)
        except Exception as exc:  # noqa: BLE001 (a source of alerts that fails is reported, never raised)
            self.progress.line(f"  alerts: not evaluated ({type(exc).__name__}: {exc})")
            return
        self.summary.extra_lines += operations.summary_lines(self.settings, alerts)

    def refresh(self) -> None:
        """Ask automation what is stale; materialize it and what follows, in order; repeat. The conditions' cursor
        is the home's. An evaluation that would see what the last one asking for nothing saw is not made
        (`QuietMark`): then the cursor is neither read nor written."""
        from fe_platform.defs.warehouse.automation import evaluate

        graph = self.defs.resolve_asset_graph()
        job = self.defs.resolve_implicit_global_asset_job_def()
        quiet = QuietMark(self.settings)
        cursor = None  # the home's, read when an evaluation needs it
        failed: set[dg.AssetKey] = set()  # asked for again by the next `fe-platform run`, not by this one
        for _ in range(MAX_ROUNDS):
            seen = quiet.state(self.instance)  # before evaluating: what is written meanwhile is new next time
            if quiet.holds(seen):
                break
            if cursor is None:
                cursor = load_cursor(self.settings)
            requested, cursor = evaluate(self.defs, self.instance, cursor)
            if not requested:
                quiet.remember(seen)
                break
            requested = {k: v for k, v in requested.items() if k not in failed}
            if not requested:
                break
            for run in plan_runs(graph, with_downstream(graph, requested)):
                built, total = 0, len(run.assets)

                def on_event(event, total=total):
                    nonlocal built
                    dagster_event = event.dagster_event
                    if dagster_event and dagster_event.event_type_value == "ASSET_MATERIALIZATION":
                        built += 1
                        name = dagster_event.asset_key.to_user_string()
                        self.progress.status(f"  refreshing: {name} ({built} of {total} assets)")

                self.progress.line(f"  refreshing {run.label}")
                if any(key.path[0] == "dashboards" for key in run.assets):
                    import_meanwhile(DASHBOARD_RENDERER)
                done = self.execute(job, f"refresh {run.label}", run.tags, on_event,
                                    asset_selection=list(run.assets))
                if not done.success:
                    failed.update(run.assets)
        if cursor is not None:
            save_cursor(self.settings, cursor)


class QuietMark:
    """The event log state and code version seen by the last evaluation that asked for nothing, kept in the home:
    the next `fe-platform run` that finds both the same asks for nothing without evaluating (half a second of a
    run with nothing new). Anything materialized, checked, run or wiped since, or other code, and it evaluates;
    and at least once an hour (a run deleted in the UI writes no event)."""

    def __init__(self, settings: Settings):
        from fe_platform.code import code_version

        self.path = settings.home / "automation_quiet.txt"
        # the code and the settings (they choose feeds and dashboards) stay as they are for the whole run
        self.code = f"{code_version()} {hashlib.sha256(settings.to_json().encode()).hexdigest()}"

    def state(self, instance: dg.DagsterInstance) -> str | None:
        from fe_platform.defs.warehouse.automation import event_log_state

        log = event_log_state(instance)
        return None if log is None else f"{log} {self.code}"

    def holds(self, state: str | None) -> bool:
        try:
            return state is not None and self.path.read_text() == state and \
                time.time() - self.path.stat().st_mtime < QUIET_FOR_AT_MOST.total_seconds()
        except OSError:  # none yet
            return False

    def remember(self, state: str | None) -> None:
        if state is not None:
            self.path.write_text(state)


def _cursor_path(settings: Settings) -> Path:
    return settings.home / "automation_cursor.json"


def load_cursor(settings: Settings):
    from dagster_shared.serdes import deserialize_value

    path = _cursor_path(settings)
    return deserialize_value(path.read_text()) if path.exists() else None


def save_cursor(settings: Settings, cursor) -> None:
    from dagster_shared.serdes import serialize_value

    _cursor_path(settings).write_text(serialize_value(cursor))


def run_platform(settings: Settings, echo: Echo = print, wait_seconds: float = 0) -> RunSummary:
    """Ingest what landed, then refresh what is stale. Dagster's and dbt's own output goes to a log file.

    Raises `PlatformBusy` when another `fe-platform run` (after `wait_seconds`) or the Dagster daemon
    works on this home."""
    from fe_platform import definitions
    from fe_platform.lib.locks import LockBusy

    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        lock = home_lock(settings, wait_seconds)
        lock.__enter__()
    except LockBusy as exc:
        raise PlatformBusy(f"{exc}: wait for it, or pass --wait SECONDS") from None
    try:
        instance = dagster_instance(settings)
        age = daemon_heartbeat_age(instance)
        if age is not None and age < DAEMON_FRESH:
            raise PlatformBusy(f"the Dagster daemon (`make dev`) is running on {settings.dagster_home}: it ingests "
                               f"and refreshes by itself; stop it before `fe-platform run`")
        # importing the code location built its definitions from the process's settings: the same, mostly
        defs = definitions.defs if settings == definitions.settings() else definitions.build_definitions(settings)
        runner = Runner(settings, defs, instance, echo)
        runner.summary.log_path = logs / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
        with open(runner.summary.log_path, "w") as log, redirect_stdout(log), redirect_stderr(log):
            swept = sweep_dead_runs(instance)
            if swept:
                echo(f"Marked {len(swept)} run(s) of a killed `fe-platform run` failed; their work is redone.")
            sweep_leftovers(settings, defs.resources["lake"])
            if not _cursor_path(settings).exists():
                # The first evaluation sets the baseline that "an upstream asset updated" is measured against.
                save_cursor(settings, dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor)
            echo("Ingesting new deliveries from landing/ ...")
            runner.ingest()
            echo("Bringing stale warehouse tables and dashboards up to date ...")
            runner.refresh()
            runner.tell_owners()
        return runner.summary
    finally:
        lock.__exit__(None, None, None)
