"""Alert sources, evaluated by the daemon's sensor and by `fe-platform run` alike.

Each source turns what the Dagster instance and the delivery log hold into observations: a dedupe key
(kind, asset, partition, check), failing or not, and the finding to tell when it fails anew. The ledger
(in the instance's key-value store) keeps which failures are open, so a failure is told once until it
recovered and failed again, whichever process looks.

- check_failed: asset check evaluations of finished runs, in order (a cursor over run status events);
  an ERROR failure opens, anything else (a pass, a WARN) recovers. WARN failures go to the digest only.
- run_failed: runs that failed or were canceled; a later successful run of the same job (and asset
  selection) and partition recovers.
- delivery_rejected: rejected records of the delivery log, each told once.
- feed_late: validated feeds and dashboards whose freshness policy is missed at `now`.
- sensor_failed: sensors and schedules whose latest tick failed.
- digest: once a day per team (see digest_observations).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.scheduler.instigation import TickStatus
from dagster._utils.schedules import get_latest_completed_cron_tick  # the cron arithmetic Dagster itself uses

from fe_platform.defs.ingestion.assets import landing_key, validated_key
from fe_platform.defs.operations.freshness import expectation, is_late
from fe_platform.lib.alerts import content
from fe_platform.lib.alerts.channels import SmtpServer, Transports, deliver
from fe_platform.lib.alerts.ledger import Ledger
from fe_platform.lib.alerts.model import Alert, Finding, dedupe_key
from fe_platform.lib.alerts.routing import Routing, TeamChannels, owner_emails, owner_teams, route
from fe_platform.lib.delivery_log import DeliveryRecord, read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.settings import Settings

FINISHED = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)
PARTITION_TAG = "dagster/partition"
PAGE = 500


# --- wiring: the ledger's store, routing and transports from the settings ---------------------------

class InstanceStore:
    """The ledger's key-value store: the Dagster instance's own (its run storage: SQLite, or PostgreSQL)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.storage = instance.daemon_cursor_storage

    def get(self, keys: set[str]) -> dict[str, str]:
        return dict(self.storage.get_cursor_values(set(keys)))

    def put(self, key: str, value: str) -> None:
        self.storage.set_cursor_values({key: value})  # one key a call: the storage upserts a batch badly


def routing_from(settings: Settings) -> Routing:
    a = settings.alerts
    return Routing(a.platform_team, {team: TeamChannels(c.email, c.webhook, c.sns_topic)
                                     for team, c in a.teams.items()})


def transports_from(settings: Settings) -> Transports:
    a = settings.alerts
    smtp = None
    if a.smtp:
        smtp = SmtpServer(a.smtp.host, a.smtp.port, a.email_from, a.smtp.user, a.smtp.password, a.smtp.starttls)
    return Transports(outbox=settings.home / "outbox", email=a.email_transport, smtp=smtp, email_from=a.email_from,
                      aws_region=a.aws_region or settings.aws_region)


# --- what the definitions say ------------------------------------------------------------------------

def asset_graph(defs):
    """The asset graph of a `dg.Definitions` (tests, the runner) or a repository (inside a sensor)."""
    return defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs.asset_graph


def _job_def(defs, name: str):
    try:
        return defs.resolve_job_def(name) if isinstance(defs, dg.Definitions) else defs.get_job(name)
    except Exception:  # a job of another code location, or one no longer defined
        return None


def job_asset_keys(defs, job_name: str) -> list[dg.AssetKey]:
    job = _job_def(defs, job_name)
    return sorted(job.asset_layer.selected_asset_keys, key=str) if job is not None else []


def owners_of(graph, keys) -> tuple[str, ...]:
    owners: list[str] = []
    for key in keys:
        if graph.has(key):
            owners += [o for o in graph.get(key).owners if o not in owners]
    return tuple(owners)


@dataclass(frozen=True)
class Watched:
    """An asset whose freshness is watched: a feed's validated dataset, or a dashboard."""

    key: dg.AssetKey
    what: str  # "The feed" / "The dashboard"
    feed: str | None


DASHBOARDS_GROUP = "dashboards"  # the group of the dashboards domain's assets


def watched_assets(graph) -> list[Watched]:
    out = [Watched(validated_key(f), f"The feed {f.name}:", f.name) for f in FEEDS.values()]
    out += [Watched(k, "The dashboard", None) for k in sorted(graph.get_all_asset_keys(), key=str)
            if graph.get(k).group_name == DASHBOARDS_GROUP]
    return [w for w in out if graph.has(w.key) and graph.get(w.key).freshness_policy is not None]


def feed_asset_keys(feed_name: str) -> tuple[dg.AssetKey, dg.AssetKey]:
    return landing_key(FEEDS[feed_name]), validated_key(FEEDS[feed_name])


# --- observations and the ledger ---------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    key: str
    failing: bool
    finding: Callable[[], Finding] | None = None  # built only when it is told


def settle(observations: list[Observation], ledger: Ledger, now: datetime) -> list[Finding]:
    """Findings to tell: the observations that fail anew, in order; recoveries reopen their keys."""
    ledger.load(o.key for o in observations)
    told = []
    for o in observations:
        if not o.failing:
            ledger.recover(o.key)
        elif ledger.fail(o.key, now):
            told.append(o.finding())
    return told


@dataclass
class Evaluation:
    instance: dg.DagsterInstance
    defs: object  # dg.Definitions or a RepositoryDefinition
    graph: object
    lake: Lake
    settings: Settings
    now: datetime
    ledger: Ledger
    links: content.Links


def evaluation(instance, defs, lake: Lake, settings: Settings, now: datetime | None = None) -> Evaluation:
    return Evaluation(instance, defs, asset_graph(defs), lake, settings, now or datetime.now(UTC),
                      Ledger(InstanceStore(instance)), content.Links(settings.alerts.dagster_url))


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


# --- finished runs: their check evaluations and their outcome ---------------------------------------

def finished_runs(instance: dg.DagsterInstance, after_storage_id: int = 0, after: datetime | None = None,
                  before: datetime | None = None) -> list[tuple[int, str, DagsterEventType, float]]:
    """(storage id, run id, status event, timestamp) of runs that finished, oldest first."""
    out = []
    for event_type in FINISHED:
        cursor = after_storage_id
        while True:
            result = instance.fetch_run_status_changes(
                dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=cursor or None,
                                                after_timestamp=after.timestamp() if after else None,
                                                before_timestamp=before.timestamp() if before else None),
                limit=PAGE, ascending=True)
            out += [(r.storage_id, r.run_id, event_type, r.timestamp) for r in result.records]
            if len(result.records) < PAGE:
                break
            cursor = result.records[-1].storage_id
    return sorted(out)


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, object]]:
    """(timestamp, AssetCheckEvaluation) of a run, in order."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [(r.timestamp, r.event_log_entry.dagster_event.event_specific_data) for r in records]


def _innermost(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    return (error.cls_name or "error") if error is not None else "error"


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, the kind of error) of the run's failed steps; never the error's message (it may quote data)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records
    out = []
    for r in records:
        event = r.event_log_entry.dagster_event
        out.append((event.step_key or "?", _innermost(event.event_specific_data.error)))
    return out


def _delivery_of(lake: Lake, asset: dg.AssetKey, partition: str | None) -> DeliveryRecord | None:
    """The latest accepted delivery of a validated feed's partition, for an alert's numbers."""
    name = asset.to_user_string()
    feed = name.removeprefix("validated_")
    if not name.startswith("validated_") or feed not in FEEDS or not partition:
        return None
    loaded = [r for r in read_delivery_log(lake, feed, partition=partition) if r.outcome == "loaded"]
    return loaded[-1] if loaded else None


def _check_finding(ev: Evaluation, evaluation, run_id: str, at: datetime) -> Finding:
    key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
    try:
        description = ev.graph.get_check_spec(key).description
    except Exception:  # a check no longer defined: its name says enough
        description = None
    record = _delivery_of(ev.lake, evaluation.asset_key, evaluation.partition)
    return content.check_failed(
        asset=evaluation.asset_key.to_user_string(), asset_path=evaluation.asset_key.path,
        owners=owners_of(ev.graph, [evaluation.asset_key]), check=evaluation.check_name,
        partition=evaluation.partition, severity=evaluation.severity.value,
        metadata={k: v.value for k, v in evaluation.metadata.items()}, description=description,
        delivery=record.landing_key.rsplit("/", 1)[-1] if record else None,
        rows_in=record.rows_in if record else None, run_id=run_id, links=ev.links, at=at)


def check_observation(ev: Evaluation, evaluation, run_id: str, timestamp: float) -> Observation:
    key = dedupe_key("check_failed", evaluation.asset_key.to_user_string(), evaluation.partition,
                     evaluation.check_name)
    failing = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    return Observation(key, failing, lambda: _check_finding(ev, evaluation, run_id, _utc(timestamp)))


def run_identity(run: dg.DagsterRun) -> str:
    """A job, with its asset selection when the run chose one: what a later success of the same recovers."""
    if not run.asset_selection:
        return run.job_name
    selection = ",".join(sorted(k.to_user_string() for k in run.asset_selection))
    return f"{run.job_name}:{hashlib.sha256(selection.encode()).hexdigest()[:8]}"


def run_observation(ev: Evaluation, run: dg.DagsterRun, event_type: DagsterEventType, timestamp: float
                    ) -> Observation:
    partition = run.tags.get(PARTITION_TAG)
    identity = run_identity(run)
    failing = event_type != DagsterEventType.RUN_SUCCESS

    def finding() -> Finding:
        keys = sorted(run.asset_selection, key=str) if run.asset_selection else job_asset_keys(ev.defs, run.job_name)
        status = "failed" if event_type == DagsterEventType.RUN_FAILURE else "canceled"
        return content.run_failed(job=run.job_name, identity=identity, run_id=run.run_id, status=status,
                                  partition=partition, assets=[k.to_user_string() for k in keys],
                                  owners=owners_of(ev.graph, keys), failed_steps=failed_steps(ev.instance, run.run_id),
                                  links=ev.links, at=_utc(timestamp))

    return Observation(dedupe_key("run_failed", identity, partition, None), failing, finding)


def run_observations(ev: Evaluation) -> tuple[list[Observation], int]:
    """Observations of every run finished since the ledger's cursor, and the cursor after them."""
    cursor = int(ev.ledger.cursor("runs") or 0)
    out = []
    for storage_id, run_id, event_type, timestamp in finished_runs(ev.instance, cursor):
        run = ev.instance.get_run_by_id(run_id)
        if run is not None:
            out += [check_observation(ev, e, run_id, t) for t, e in check_evaluations(ev.instance, run_id)]
            out.append(run_observation(ev, run, event_type, timestamp))
        cursor = storage_id
    return out, cursor


# --- rejected deliveries -----------------------------------------------------------------------------

def rejection_observations(ev: Evaluation) -> list[Observation]:
    # Listing rejected/ is one call; the delivery log is read only when that listing changed.
    listing = "\n".join(o.key for o in ev.lake.list("rejected/"))
    fingerprint = hashlib.sha256(listing.encode()).hexdigest()
    if ev.ledger.cursor("rejected") == fingerprint:
        return []
    ev.ledger.set_cursor("rejected", fingerprint)
    out = []
    for record in read_delivery_log(ev.lake):
        if record.outcome != "rejected" or record.feed not in FEEDS:
            continue
        landing, _ = feed_asset_keys(record.feed)
        file_name = record.landing_key.rsplit("/", 1)[-1]
        key = dedupe_key("delivery_rejected", landing.to_user_string(), record.partition,
                         f"{file_name}@{record.sha256[:12]}")

        def finding(record=record, landing=landing, file_name=file_name) -> Finding:
            return content.delivery_rejected(
                feed=record.feed, asset=landing.to_user_string(), asset_path=landing.path,
                owners=owners_of(ev.graph, [landing]), file_name=file_name, landing_key=record.landing_key,
                sha256=record.sha256, partition=record.partition, reason=record.reason, links=ev.links,
                at=record.ingested_at)

        out.append(Observation(key, True, finding))
    return out


# --- freshness ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Freshness:
    watched: Watched
    last_materialized: datetime | None
    late: bool
    expectation: str


def freshness(ev: Evaluation) -> list[Freshness]:
    out = []
    for w in watched_assets(ev.graph):
        policy = ev.graph.get(w.key).freshness_policy
        event = ev.instance.get_latest_materialization_event(w.key)
        last = _utc(event.timestamp) if event else None
        # Never materialized: nothing is known yet (Dagster says UNKNOWN); no alert until a first delivery.
        out.append(Freshness(w, last, last is not None and is_late(policy, last, ev.now), expectation(policy)))
    return out


def freshness_observations(ev: Evaluation) -> list[Observation]:
    out = []
    for f in freshness(ev):
        if f.last_materialized is None:
            continue

        def finding(f=f) -> Finding:
            return content.feed_late(asset=f.watched.key.to_user_string(), asset_path=f.watched.key.path,
                                     owners=owners_of(ev.graph, [f.watched.key]), what=f.watched.what,
                                     expectation=f.expectation, last_materialized=f.last_materialized, now=ev.now,
                                     links=ev.links)

        out.append(Observation(dedupe_key("feed_late", f.watched.key.to_user_string(), None, None), f.late, finding))
    return out


# --- sensor and schedule ticks -----------------------------------------------------------------------

def instigator_owners(ev: Evaluation, kind: str, name: str) -> tuple[str, ...]:
    """The owners of what a sensor or schedule starts; none (the platform team) when that is no asset job."""
    defs = ev.defs
    try:
        if isinstance(defs, dg.Definitions):
            target = defs.resolve_sensor_def(name) if kind == "sensor" else defs.resolve_schedule_def(name)
        else:
            target = defs.get_sensor_def(name) if kind == "sensor" else defs.get_schedule_def(name)
        job_name = target.job_name
    except Exception:  # not of this code location, or a sensor without a single job
        return ()
    return owners_of(ev.graph, job_asset_keys(defs, job_name)) if job_name else ()


def tick_observations(ev: Evaluation) -> list[Observation]:
    out = []
    for state in ev.instance.all_instigator_state():
        ticks = ev.instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        if not ticks or ticks[0].status == TickStatus.STARTED:
            continue
        tick = ticks[0]
        kind = state.instigator_type.value.lower()
        name = state.instigator_name
        location = state.origin.repository_origin.code_location_origin.location_name

        def finding(tick=tick, kind=kind, name=name, location=location) -> Finding:
            return content.tick_failed(kind=kind, name=name, location=location,
                                       owners=instigator_owners(ev, kind, name),
                                       error=_innermost(tick.error) if tick.error else None,
                                       at=_utc(tick.timestamp), links=ev.links)

        out.append(Observation(dedupe_key("sensor_failed", f"{kind}:{name}", None, None),
                               tick.status == TickStatus.FAILURE, finding))
    return out


# --- the daily digest --------------------------------------------------------------------------------

def digest_day(settings: Settings, now: datetime) -> date:
    """The day the latest digest tick (at or before `now`) reports on: the day before the tick."""
    tick = get_latest_completed_cron_tick(settings.alerts.digest_cron, now, "UTC")
    return (tick - timedelta(days=1)).date()


def team_assets(graph) -> dict[str, list[dg.AssetKey]]:
    teams: dict[str, list[dg.AssetKey]] = {}
    for key in sorted(graph.get_all_asset_keys(), key=str):
        for team in owner_teams(graph.get(key).owners):
            teams.setdefault(team, []).append(key)
    return teams


def digest_findings(ev: Evaluation, day: date) -> list[Finding]:
    """Per team with something to report: the day's deliveries and their quarantine by rule, the WARN
    checks evaluated that day, and what is late now; only of that team's assets."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    deliveries = [r for r in read_delivery_log(ev.lake) if start <= r.ingested_at < end and r.feed in FEEDS]
    warns: dict[tuple, content.DigestCheck] = {}
    for _, run_id, _, _ in finished_runs(ev.instance, after=start, before=end):
        for _, e in check_evaluations(ev.instance, run_id):
            if not e.passed and e.severity == dg.AssetCheckSeverity.WARN:
                asset = e.asset_key.to_user_string()
                warns[(asset, e.check_name, e.partition)] = content.DigestCheck(asset, e.check_name, e.partition,
                                                                                 "WARN")
    late = [f.watched.key for f in freshness(ev) if f.late]
    out = []
    for team, keys in team_assets(ev.graph).items():
        mine = {k.to_user_string() for k in keys}
        team_deliveries = [
            content.DigestDelivery(r.feed, r.landing_key.rsplit("/", 1)[-1], r.partition, r.outcome, r.rows_in,
                                   r.rows_valid, r.rows_quarantined, r.rules if r.outcome == "loaded" else {})
            for r in deliveries if any(k.to_user_string() in mine for k in feed_asset_keys(r.feed))]
        team_warns = [c for (asset, _, _), c in sorted(warns.items(), key=lambda i: str(i[0])) if asset in mine]
        team_late = [k.to_user_string() for k in late if k.to_user_string() in mine]
        if not (team_deliveries or team_warns or team_late):
            continue
        owners = (f"team:{team}", *dict.fromkeys(e for k in keys for e in owner_emails(ev.graph.get(k).owners)))
        out.append(content.digest(team=team, day=day, owners=owners, deliveries=team_deliveries,
                                  warn_checks=team_warns, late=team_late, links=ev.links, at=ev.now))
    return out


def digest_observations(ev: Evaluation, day: date) -> list[Observation]:
    return [Observation(f.dedupe_key, True, lambda f=f: f) for f in digest_findings(ev, day)]


# --- telling -----------------------------------------------------------------------------------------

def tell(findings: list[Finding], settings: Settings, transports: Transports | None = None) -> list[Alert]:
    """Route each finding to its teams and send it through their channels; never raises for a channel."""
    routing = routing_from(settings)
    transports = transports or transports_from(settings)
    alerts = []
    for finding in findings:
        for alert in route(finding, routing.platform_team):
            deliver(alert, routing.channels(alert.team), transports)
            alerts.append(alert)
    return alerts


DIGEST_CURSOR = "digest"  # the last day whose digest was settled: the day is over, so it is settled once


def evaluate_alerts(instance: dg.DagsterInstance, defs, lake: Lake, settings: Settings, now: datetime | None = None,
                    digest: bool = True, transports: Transports | None = None) -> list[Alert]:
    """Look at everything since the last evaluation, tell what fails anew, and return the alerts sent.

    `defs`: the `dg.Definitions` (the runner) or the repository (a sensor's `context.repository_def`).
    `digest`: also send the latest daily digest if no one has yet (the daemon leaves it to its schedule).
    """
    ev = evaluation(instance, defs, lake, settings, now)
    observations, cursor = run_observations(ev)
    observations += rejection_observations(ev) + freshness_observations(ev) + tick_observations(ev)
    day = digest_day(ev.settings, ev.now).isoformat()
    digest = digest and ev.ledger.cursor(DIGEST_CURSOR) != day
    if digest:
        observations += digest_observations(ev, date.fromisoformat(day))
    findings = settle(observations, ev.ledger, ev.now)
    ev.ledger.set_cursor("runs", str(cursor))
    if digest:
        ev.ledger.set_cursor(DIGEST_CURSOR, day)
    return tell(findings, settings, transports)


def send_digests(instance: dg.DagsterInstance, defs, lake: Lake, settings: Settings, day: date,
                 now: datetime | None = None, transports: Transports | None = None) -> list[Alert]:
    """The digest of `day` to every team with something to report, unless it was sent already."""
    ev = evaluation(instance, defs, lake, settings, now)
    return tell(settle(digest_observations(ev, day), ev.ledger, ev.now), settings, transports)


def summary_lines(settings: Settings, alerts: list[Alert]) -> list[str]:
    """For the end of a run's summary: the alerts this run sent, per team, and what the outbox holds."""
    from collections import Counter

    from fe_platform.lib.alerts.outbox import outbox_summary

    teams = Counter(a.team for a in alerts)
    told = ", ".join(f"{team} {n}" for team, n in sorted(teams.items()))
    lines = [f"  alerts this run: {len(alerts)}" + (f" ({told})" if told else "")]
    return lines + outbox_summary(settings.home / "outbox")
