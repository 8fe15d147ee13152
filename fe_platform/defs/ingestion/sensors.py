"""One sensor per feed: new deliveries in landing become ingestion runs, one per bounded batch.

A tick plans with the delivery log (`lib/planning.py`): a landing file the log holds with the same
fingerprint (size and ETag or mtime) is not new, whoever ingested it (`fe-platform run` or an earlier
run); the same name with other bytes is. The feed's new deliveries go into runs of at most
FE_BATCH_MAX_DELIVERIES files and FE_BATCH_MAX_BYTES, each spanning the partitions of its files; the
instance runs one run per feed at a time (in order) and feeds side by side. While a run of the feed is
queued or in progress the tick starts nothing: that run's deliveries are not in the log yet, and a run
that fails leaves its deliveries out of the log, so the next tick asks for them again. A landing entry no
run can take (a name that gives no partition, a symbolic link) is rejected by the tick itself.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, RunsFilter

from fe_platform.defs.ingestion.assets import delivery_log_updated, raw_key, validated_key
from fe_platform.defs.resources import Ingestion
from fe_platform.lib.delivery_log import DeliveryRecord, LogIndex
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.planning import Batch, batches, plan_landing, utc_today
from fe_platform.runner.planning import range_tags

FEED_TAG = "fe_platform/feed"  # on every ingestion run; dagster.yaml runs one at a time per feed


def ingestion_job_name(feed: Feed) -> str:
    return f"ingest_{feed.name}_job"


def ingestion_job(feed: Feed):
    return dg.define_asset_job(
        ingestion_job_name(feed),
        tags={FEED_TAG: feed.name},
        selection=dg.AssetSelection.assets(raw_key(feed), validated_key(feed)),
        description=f"Ingest a batch of {feed.name} deliveries: raw copies, validation, quarantine, checks.",
    )


def run_request(batch: Batch) -> dg.RunRequest:
    # No run key: Dagster would never start a run again under the key of one that failed, and a failed batch
    # must be asked for again. The sensor asks for nothing while the feed has a run queued or running.
    return dg.RunRequest(
        job_name=ingestion_job_name(batch.feed),
        run_config={"ops": {f"ingest_{batch.feed.name}": {"config": {
            "landing_keys": [o.key for o in batch.deliveries]}}}},
        tags={FEED_TAG: batch.feed.name, **range_tags(batch.partitions)},
    )


def plan_ingestion(lake: Lake, feed: Feed, ingestion: Ingestion) -> tuple[list[Batch], list[DeliveryRecord]]:
    """The feed's new deliveries in batches, after rejecting what no run can take (the one write here)."""
    plan = plan_landing(lake, feed, LogIndex.of(lake, feed.name), utc_today())
    rejected = []
    if plan.to_reject:
        from fe_platform.lib.ingestion import reject  # the validation engine's imports: only when needed

        rejected = [reject(lake, feed, obj, problem) for obj, problem in plan.to_reject]
    return batches(plan, ingestion.max_deliveries, ingestion.max_bytes), rejected


def feed_is_busy(instance: dg.DagsterInstance, feed: Feed) -> bool:
    return bool(instance.get_run_records(RunsFilter(tags={FEED_TAG: feed.name}, statuses=list(NOT_FINISHED_STATUSES)),
                                         limit=1))


HOLD_AT_MOST = timedelta(hours=1)  # deliveries landed longer ago and still not ingested hold back nothing


def landed_states(instance: dg.DagsterInstance, lake: Lake) -> dict[str, str]:
    """Per feed, what its landed deliveries that the log does not hold yet are to the refresh: "none";
    "waiting", for a run its sensor is about to start; or "stuck" until someone acts: the feed's latest
    ingestion run failed, a reference feed it waits for is stuck, or they all landed more than HOLD_AT_MOST
    ago (a sensor turned off). A listing that fails says "none": the sensor's own tick reports it. Each feed
    is listed once, after its reference feeds (the registry's order)."""
    states: dict[str, str] = {}
    for feed in FEEDS.values():
        try:
            new = plan_landing(lake, feed, LogIndex.of(lake, feed.name), utc_today()).new
        except Exception:  # noqa: BLE001
            new = []
        latest = instance.get_run_records(RunsFilter(tags={FEED_TAG: feed.name}), limit=1) if new else []
        if not new:
            states[feed.name] = "none"
        elif (latest and latest[0].dagster_run.status == dg.DagsterRunStatus.FAILURE) \
                or max(obj.modified for obj in new) < datetime.now(UTC) - HOLD_AT_MOST \
                or any(states[name] == "stuck" and not feed_is_busy(instance, FEEDS[name])
                       for name in feed.reference_feeds):  # its sensor waits for deliveries that wait for a fix
            states[feed.name] = "stuck"
        else:
            states[feed.name] = "waiting"
    return states


def reference_feeds_pending(instance: dg.DagsterInstance, lake: Lake, feed: Feed) -> list[str]:
    """The feeds whose data `feed`'s rules look up or its checks refer to, that have deliveries not ingested yet."""
    pending = []
    for name in feed.reference_feeds:
        reference = FEEDS[name]
        if feed_is_busy(instance, reference) or plan_landing(lake, reference, LogIndex.of(lake, name), utc_today()).new:
            pending.append(name)
    return pending


def landing_sensor(feed: Feed, job) -> dg.SensorDefinition:
    @dg.sensor(name=f"{feed.name}_landing_sensor", job=job, minimum_interval_seconds=10,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Starts ingestion runs for the new deliveries in landing/{feed.name}/.")
    def _sensor(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake],
                ingestion: dg.ResourceParam[Ingestion]):
        if feed_is_busy(context.instance, feed):
            return dg.SkipReason(f"a {feed.name} run is queued or in progress; its deliveries are not logged yet")
        if waiting := reference_feeds_pending(context.instance, lake, feed):
            # Its rules look these up as of the data date: validating first would quarantine what they add.
            return dg.SkipReason(f"waiting for the reference data of {', '.join(waiting)} to be ingested")
        runs, rejected = plan_ingestion(lake, feed, ingestion)
        for record in rejected:
            context.log.warning(f"rejected {record.landing_key}: {record.reason}")
        if not runs and not rejected:
            return dg.SkipReason("no new deliveries")
        return dg.SensorResult(run_requests=[run_request(b) for b in runs],
                               asset_events=[delivery_log_updated(rejected)] if rejected else [])

    return _sensor


def build_ingestion_jobs_and_sensors() -> tuple[list, list]:
    jobs, sensors = [], []
    for feed in FEEDS.values():
        job = ingestion_job(feed)
        jobs.append(job)
        sensors.append(landing_sensor(feed, job))
    return jobs, sensors
