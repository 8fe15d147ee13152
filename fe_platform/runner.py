"""`fe-platform run`: one shot, no daemon.

It plans every new landing file with the sensors' own code (`plan_landing`), runs each
delivery's ingestion job in-process against the Dagster instance (so the UI shows the
runs), then asks the assets' declarative automation conditions what is now stale and
materializes that, until nothing more is requested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_shared.serdes import deserialize_value, serialize_value

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import DeliveryRecord, read_delivery_log
from fe_platform.lib.lake import lake_from_settings
from fe_platform.settings import PROJECT_ROOT, Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunSummary:
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed_runs


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under the platform's Dagster home, with the project's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _record(summary: RunSummary, result: dg.ExecuteInProcessResult, label: str) -> None:
    summary.runs += 1
    if not result.success:
        summary.failed_runs.append(label)
    for event in result.get_asset_materialization_events():
        summary.materialized.append(event.asset_key.to_user_string())
    for event in result.get_asset_check_evaluations():
        name = f"{event.asset_key.to_user_string()}:{event.check_name}"
        if event.passed:
            summary.checks_passed += 1
        else:
            summary.checks_failed.append(f"{name} ({event.severity.value})")


def ingest_new_deliveries(defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance,
                          summary: RunSummary, echo: Callable[[str], None]) -> None:
    from fe_platform.defs.ingestion.assets import LANDING_KEY_TAG
    from fe_platform.defs.ingestion.sensors import plan_landing

    lake = lake_from_settings(settings)
    for feed in FEEDS.values():
        plan = plan_landing(lake, feed, skip_known=True)
        summary.deliveries += plan.rejected
        for record in plan.rejected:
            echo(f"  {feed.name:15} {record.landing_key.rsplit('/', 1)[-1]:34} rejected: {record.reason}")
        job = defs.resolve_job_def(f"ingest_{feed.name}_job")
        for key, partition in plan.runs:
            result = job.execute_in_process(instance=instance, partition_key=partition,
                                            tags={LANDING_KEY_TAG: key}, run_config=QUIET,
                                            raise_on_error=False)
            _record(summary, result, f"ingest {key}")
            records = [r for r in read_delivery_log(lake, feed.name, partition=partition) if r.landing_key == key]
            if records:
                r = records[-1]
                summary.deliveries.append(r)
                detail = (f"{r.rows_in} rows, {r.rows_valid} valid, {r.rows_quarantined} quarantined"
                          if r.outcome == "loaded" else r.reason)
                echo(f"  {feed.name:15} {key.rsplit('/', 1)[-1]:34} {r.outcome}: {detail}")
            if not result.success:
                echo(f"  {feed.name:15} {key.rsplit('/', 1)[-1]:34} RUN FAILED")


# --- bringing stale downstream assets up to date ---------------------------------------------------

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
MAX_ROUNDS = 4  # evaluations until automation requests nothing more


def _cursor_path(settings: Settings) -> Path:
    return settings.home / "automation_cursor.json"


def load_cursor(settings: Settings):
    path = _cursor_path(settings)
    return deserialize_value(path.read_text()) if path.exists() else None


def save_cursor(settings: Settings, cursor) -> None:
    _cursor_path(settings).write_text(serialize_value(cursor))


def stages(graph, requested: dict[dg.AssetKey, set]) -> list[tuple[list[dg.AssetKey], list[str]]]:
    """Requested assets in dependency order, cut into runs of one partitioning each.

    Returns (keys, partition keys) per run; partition keys are empty for unpartitioned runs.
    """
    upstream: dict[dg.AssetKey, set] = {}

    def ancestors(key):
        if key not in upstream:
            upstream[key] = set()
            for parent in graph.get(key).parent_keys:
                upstream[key] |= {parent} | ancestors(parent)
        return upstream[key]

    def kind(key):
        partitions = graph.get(key).partitions_def
        return "" if partitions is None else str(partitions)

    done: set = set()
    out = []
    remaining = set(requested)
    while remaining:
        ready = sorted((k for k in remaining if not (ancestors(k) & remaining)), key=lambda k: (kind(k), str(k)))
        group_kind = kind(ready[0])
        stage = {k for k in ready if kind(k) == group_kind}
        grew = True
        while grew:
            more = {k for k in remaining - stage
                    if kind(k) == group_kind and ancestors(k) & remaining <= stage}
            grew = bool(more)
            stage |= more
        partitions = sorted({p for k in stage for p in requested[k] if p is not None})
        out.append((sorted(stage, key=str), partitions))
        done |= stage
        remaining -= stage
    return out


def with_downstream(graph, requested: dict[dg.AssetKey, set]) -> dict[dg.AssetKey, set]:
    """What is requested plus everything downstream of it that automation would request on later ticks.

    Automation requests across a change of partitioning one tick at a time (a partitioned lake table
    this tick, the unpartitioned views over it the next); a one-shot run wants the whole chain now, in
    order, so that a fact never runs before the views and dimensions it reads.
    """
    out = {k: set(v) for k, v in requested.items()}
    frontier = list(requested)
    while frontier:
        key = frontier.pop()
        for child in graph.get(key).child_keys:
            node = graph.get(child)
            if node.automation_condition is None:
                continue
            same = node.partitions_def is not None and node.partitions_def == graph.get(key).partitions_def
            partitions = out[key] if same else ({None} if node.partitions_def is None else set())
            if not partitions or partitions <= out.get(child, set()):
                continue
            out.setdefault(child, set()).update(partitions)
            frontier.append(child)
    return out


def never_built(graph, instance: dg.DagsterInstance) -> list[dg.AssetKey]:
    """Unpartitioned automated assets that have no materialization at all."""
    return [k for k in graph.get_all_asset_keys()
            if graph.get(k).automation_condition is not None and graph.get(k).partitions_def is None
            and instance.get_latest_materialization_event(k) is None]


def refresh_downstream(defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance,
                       summary: RunSummary, echo: Callable[[str], None], cursor=None) -> object:
    """Ask the automation conditions what is stale; materialize it and what follows, in order; repeat."""
    graph = defs.resolve_asset_graph()
    job = defs.resolve_implicit_global_asset_job_def()
    for round_number in range(MAX_ROUNDS):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        requested = {k: set(result.get_requested_partitions(k)) for k in graph.get_all_asset_keys()
                     if result.get_num_requested(k)}
        if round_number == 0:
            # Stale includes never built: a table or dashboard whose last attempt failed, say.
            requested.update({k: {None} for k in never_built(graph, instance) if k not in requested})
        if not requested:
            break
        for keys, partitions in stages(graph, with_downstream(graph, requested)):
            tags = {RANGE_START: partitions[0], RANGE_END: partitions[-1]} if partitions else {}
            names = ", ".join(k.to_user_string() for k in keys[:3]) + (f" +{len(keys) - 3}" if len(keys) > 3 else "")
            span = f" [{partitions[0]}..{partitions[-1]}]" if partitions else ""
            echo(f"  refreshing {names}{span}")
            run = job.execute_in_process(instance=instance, asset_selection=keys, tags=tags, run_config=QUIET,
                                         raise_on_error=False)
            _record(summary, run, f"refresh {names}{span}")
            if not run.success:
                echo(f"  RUN FAILED: {names}{span}")
    return cursor


def run_platform(settings: Settings, echo: Callable[[str], None] = print) -> RunSummary:
    """Ingest what landed, then refresh what is stale. Dagster's and dbt's own output goes to a log file."""
    from fe_platform.definitions import build_definitions

    instance = dagster_instance(settings)
    defs = build_definitions(settings)
    summary = RunSummary()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    summary.log_path = logs / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    with open(summary.log_path, "w") as log, redirect_stdout(log), redirect_stderr(log):
        cursor = load_cursor(settings)
        if cursor is None:
            # The first evaluation sets the baseline that "an upstream asset updated" is measured against.
            cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
        echo("Ingesting new deliveries from landing/ ...")
        ingest_new_deliveries(defs, settings, instance, summary, echo)
        echo("Bringing stale warehouse tables and dashboards up to date ...")
        cursor = refresh_downstream(defs, settings, instance, summary, echo, cursor)
        save_cursor(settings, cursor)
    return summary


SUMMARY_LAYERS = ("lake", "staging", "intermediate", "marts", "reporting")


def warehouse_lines(settings: Settings) -> list[str]:
    """Rows per warehouse layer, and per reporting table."""
    from fe_platform.lib.warehouse import qualified, warehouse_from_settings

    try:
        with warehouse_from_settings(settings) as warehouse:
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


def print_summary(settings: Settings, summary: RunSummary, echo: Callable[[str], None] = print) -> None:
    lake = lake_from_settings(settings)
    log = read_delivery_log(lake)
    echo("")
    echo("Summary")
    echo(f"  lake: {settings.lake_root}")
    echo(f"  {'feed':15} {'loaded':>7} {'rejected':>8} {'duplicate':>9} {'rows in':>10} {'validated':>10} "
         f"{'quarantined':>11}")
    for feed in FEEDS:
        records = [r for r in log if r.feed == feed]
        loaded = [r for r in records if r.outcome == "loaded"]
        count = {o: sum(r.outcome == o for r in records) for o in ("loaded", "rejected", "duplicate")}
        echo(f"  {feed:15} {count['loaded']:>7} {count['rejected']:>8} {count['duplicate']:>9} "
             f"{sum(r.rows_in for r in loaded):>10,} {sum(r.rows_valid for r in loaded):>10,} "
             f"{sum(r.rows_quarantined for r in loaded):>11,}")
    for line in warehouse_lines(settings):
        echo(line)
    index = settings.dashboards_dir / "index.html"
    if index.exists():
        echo(f"  dashboards: {index}  (open it in a browser; extracts under {lake.uri('dashboards/')})")
    echo(f"  runs this time: {summary.runs} ({len(summary.failed_runs)} failed), "
         f"assets materialized: {len(summary.materialized)}")
    echo(f"  checks this time: {summary.checks_passed} passed, {len(summary.checks_failed)} did not pass")
    for name in sorted(set(summary.checks_failed))[:15]:
        echo(f"    - {name}")
    if len(set(summary.checks_failed)) > 15:
        echo(f"    ... and {len(set(summary.checks_failed)) - 15} more (see the Dagster UI: make dev)")
    for label in summary.failed_runs:
        echo(f"  FAILED: {label}")
    if summary.log_path:
        echo(f"  Dagster and dbt output of this run: {summary.log_path}")
