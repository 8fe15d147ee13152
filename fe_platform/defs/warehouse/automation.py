"""Declarative automation of the warehouse and the dashboards.

Dagster's `eager()` only looks at the latest time partition and waits while any upstream
partition is missing; the lake tables have a partition per day since 2024, most of them
never delivered, so eager would wait forever and skip backfilled weeks. These conditions
say what the platform means: refresh what a new upstream materialization touched, wait for
the blocking checks of what is loaded, and ask again for what failed until it succeeds.
"""

import base64
import json
import time
import zlib

import dagster as dg
from dagster_shared.serdes import deserialize_value, serialize_value

from fe_platform.lib.lake import Lake

_updated = (dg.AutomationCondition.newly_updated() & ~dg.AutomationCondition.executed_with_root_target()) \
    | dg.AutomationCondition.will_be_requested()
_idle = ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
# The last run that targeted it failed (or was killed, once the sweep marked it failed): ask again.
_failed = dg.AutomationCondition.execution_failed()

# An unpartitioned table or dashboard: build it while it was never built (also when it is new in the code),
# again whenever anything upstream updates, and again after a failure.
ON_UPSTREAM_CHANGE = (
    (dg.AutomationCondition.any_deps_updated().since_last_handled() | dg.AutomationCondition.missing() | _failed)
    & _idle
).with_label("on_upstream_change")


def on_partition_change(partitioned_upstream: dg.AssetKey) -> dg.AutomationCondition:
    """A partitioned table: load exactly the partitions whose `partitioned_upstream` partition updated, or
    that never loaded while it exists, or whose last load failed; never one whose upstream blocking checks
    did not pass."""
    upstream = dg.AssetSelection.assets(partitioned_upstream)
    return (
        (dg.AutomationCondition.any_deps_match(_updated).allow(upstream).since_last_handled()
         | (dg.AutomationCondition.missing() & ~dg.AutomationCondition.any_deps_missing().allow(upstream))
         | _failed)
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & _idle
    ).with_label("on_partition_change")


def evaluate(defs, instance: dg.DagsterInstance, cursor=None):
    """What the conditions request now, as {asset: partitions (None: unpartitioned)}, and the next cursor.
    `defs`: the Definitions, or (in a sensor) the code location's repository."""
    if isinstance(defs, dg.RepositoryDefinition):
        defs = [*set(defs.assets_defs_by_key.values()), *set(defs.asset_checks_defs_by_key.values())]
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {r.key: set(result.get_requested_partitions(r.key)) for r in result.results
                 if isinstance(r.key, dg.AssetKey) and result.get_num_requested(r.key)}
    return requested, result.cursor


def _encode(cursor) -> str:
    # The cursor holds every condition's partition subsets (about 0.5 MB for this project): 20 times
    # smaller compressed, and a sensor keeps its cursor with every tick that requested something.
    return base64.b64encode(zlib.compress(serialize_value(cursor).encode())).decode()


def _decode(text: str):
    return deserialize_value(zlib.decompress(base64.b64decode(text)).decode())


WAITING_TO_START = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)
BACKLOG_HOLD_AT_MOST = 15 * 60  # seconds a backlog holds the whole warehouse back (a steady stream never drains)


def busy_assets(instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, lake,
                backlog_began: float | None = None) -> tuple[set[dg.AssetKey], float | None]:
    """The assets of every run queued or in progress (a refresh names them, an ingestion run its job does), and,
    while ingestion has a backlog (a feed's landed deliveries its sensor is to take, or an ingestion run not
    started yet), every feed's ingestion assets: on a backlog the warehouse is loaded and built once the queue
    has drained, beside the last ingestion runs, instead of once per feed in the slots the backlog waits for.
    Not for longer than BACKLOG_HOLD_AT_MOST after it began (`backlog_began`, from the previous tick): then
    only what follows each busy feed waits. Returns the busy assets and when the backlog began (None: none)."""
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, RunsFilter

    from fe_platform.defs.ingestion.sensors import FEED_TAG, ingestion_job_name, landed_states
    from fe_platform.lib.feeds import FEEDS

    def ingestion_assets(feeds) -> set[dg.AssetKey]:
        jobs = [ingestion_job_name(feed) for feed in feeds]
        return {key for job in jobs if repository.has_job(job)
                for key in repository.get_job(job).asset_layer.selected_asset_keys}

    busy, backlog = set(), False
    for record in instance.get_run_records(RunsFilter(statuses=list(NOT_FINISHED_STATUSES))):
        run = record.dagster_run
        if run.asset_selection:
            busy |= run.asset_selection
        elif repository.has_job(run.job_name):
            busy |= repository.get_job(run.job_name).asset_layer.selected_asset_keys
        backlog |= run.status in WAITING_TO_START and FEED_TAG in run.tags
    waiting = [FEEDS[name] for name, state in landed_states(instance, lake).items() if state == "waiting"]
    busy |= ingestion_assets(waiting)
    if not (backlog or waiting):
        return busy, None
    began = backlog_began or time.time()
    if time.time() - began < BACKLOG_HOLD_AT_MOST:
        busy |= ingestion_assets(FEEDS.values())
    return busy, began


def event_log_state(instance: dg.DagsterInstance) -> int | None:
    """The event log's last record: two evaluations from one cursor over the same event log ask for the same
    (a wipe writes an event too). Not always: a run deleted in the UI takes its events away and writes none, and
    the next events may take their ids again; hence the time limits of those who rely on it. None where the
    storage cannot say (an event log sharded per run)."""
    try:
        return instance.event_log_storage.get_maximum_record_id()
    except NotImplementedError:
        return None


QUIET_FOR_AT_MOST = 60  # seconds a tick may skip its evaluation on the strength of an earlier one


class QuietTicks:
    """The last evaluation that asked for nothing, in this process: its home, sensor cursor and event log
    state. A tick that finds all three the same skips: it would evaluate the same conditions over the same
    events. Only for up to `QUIET_FOR_AT_MOST` (then it evaluates anyway). A quiet tick costs a query, not
    a second of evaluation, and the sensor can tick often enough to start a refresh seconds after the runs it
    waited for."""

    def __init__(self):
        self.last: tuple | None = None
        self.since = 0.0

    @staticmethod
    def state(context: dg.SensorEvaluationContext) -> tuple | None:
        log = event_log_state(context.instance)
        return None if log is None else (context.instance.root_directory, context.cursor, log)

    def still(self, state: tuple | None) -> bool:
        return state is not None and state == self.last and time.monotonic() - self.since < QUIET_FOR_AT_MOST

    def remember(self, state: tuple | None) -> None:
        self.last, self.since = state, time.monotonic()


def refresh_sensor() -> dg.SensorDefinition:
    quiet = QuietTicks()

    @dg.sensor(name="platform_refresh", minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING,
               asset_selection=dg.AssetSelection.all(),
               description="Evaluates the automation conditions and starts what they ask for, planned as "
                           "`fe-platform run` plans it: one run per stage, over the range of its partitions.")
    def platform_refresh(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]):
        from fe_platform.runner.planning import runs_to_start

        seen = quiet.state(context)  # before evaluating: an event written meanwhile is new to the next tick
        if quiet.still(seen):
            return dg.SkipReason("nothing is stale: no event since the last evaluation")
        state = json.loads(context.cursor) if context.cursor else {}
        cursor = _decode(state["automation"]) if "automation" in state else None
        graph = context.repository_def.asset_graph
        waiting = {key: set(v) for k, v in state.get("waiting", {}).items()
                   if graph.has(key := dg.AssetKey.from_user_string(k))}  # (an asset the code no longer has)
        requested, cursor = evaluate(context.repository_def, context.instance, cursor)
        if not requested and not waiting:
            # Not keeping this evaluation's cursor is safe: the next one starts where this one started and
            # sees the same events. It keeps a quiet platform's ticks small.
            quiet.remember(seen)
            return dg.SkipReason("nothing is stale")
        for key, partitions in waiting.items():
            requested.setdefault(key, set()).update(partitions)
        busy, backlog_began = busy_assets(context.instance, context.repository_def, lake, state.get("backlog_began"))
        start, waiting = runs_to_start(graph, requested, busy)
        for run in start:
            context.log.info(f"refresh {run.label}")
        if waiting:
            context.log.info(f"waiting for what is upstream: {', '.join(k.to_user_string() for k in waiting)}")
        state = {"automation": _encode(cursor), "backlog_began": backlog_began,
                 "waiting": {k.to_user_string(): sorted(v, key=str) for k, v in waiting.items()}}
        return dg.SensorResult(run_requests=[dg.RunRequest(asset_selection=list(run.assets), tags=run.tags)
                                             for run in start], cursor=json.dumps(state))

    return platform_refresh


def automation_sensors() -> list[dg.SensorDefinition]:
    """`platform_refresh`, and Dagster's own evaluator of the same conditions, stopped. Without the second,
    Dagster would add a default one (stopped too) with no word of why."""
    return [refresh_sensor(), dg.AutomationConditionSensorDefinition(
        "dagster_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.STOPPED,
        description="Keep stopped: `platform_refresh` evaluates the same automation conditions and plans their "
                    "runs. This one would start a run per unbroken partition range (a run per week of weekday "
                    "deliveries) and, running beside it, load every partition twice.")]
