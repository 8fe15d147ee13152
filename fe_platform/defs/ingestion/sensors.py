"""One sensor per feed: new landing files become ingestion runs, one per delivery.

The cursor is the last landing key seen, and a tick lists only the keys after it
(`StartAfter` on S3), never the whole prefix. Files are named by data date, so new
deliveries sort after old ones; a late file with an older date sorts before the cursor
and is picked up by `fe-platform run` (which compares the folder with the delivery log)
or by a backfill of its partition. Run keys are the landing keys, so a repeated tick
starts nothing twice. A file whose name gives no partition is rejected here, since no
run could be filed under it.
"""


from dataclasses import dataclass, field

import dagster as dg

from fe_platform.defs.ingestion.assets import LANDING_KEY_TAG, raw_key, validated_key
from fe_platform.defs.partitions import partitions_for
from fe_platform.lib.feeds import FEEDS, Feed
from fe_platform.lib.ingestion import DeliveryRecord, landing_files, read_delivery_log, reject_unpartitionable
from fe_platform.lib.lake import Lake, lake_from_settings
from fe_platform.settings import Settings

FEED_TAG = "fe_platform/feed"  # on every ingestion run; dagster.yaml runs one at a time per feed


@dataclass
class LandingPlan:
    """What to do with the landing files of one feed."""

    runs: list[tuple[str, str]] = field(default_factory=list)  # (landing key, partition)
    rejected: list[DeliveryRecord] = field(default_factory=list)
    last_key: str | None = None  # the last key that became a run: the sensor's next cursor


def plan_landing(lake: Lake, feed: Feed, start_after: str | None = None, skip_known: bool = False) -> LandingPlan:
    """The runs new landing files need. `skip_known` leaves out files the delivery log already has."""
    partitions = partitions_for(feed)
    known = {r.landing_key for r in read_delivery_log(lake, feed.name)} if skip_known else set()
    plan = LandingPlan()
    for key in landing_files(lake, feed, start_after=start_after):
        if key in known:
            continue
        data_date = feed.match(key.rsplit("/", 1)[-1])
        if data_date is None:
            plan.rejected.append(reject_unpartitionable(
                lake, key, f"the file name does not match the {feed.name} pattern {feed.file_pattern!r}"))
        elif not partitions.has_partition_key(data_date.isoformat()):
            plan.rejected.append(reject_unpartitionable(
                lake, key, f"data date {data_date} is not a {feed.partitioning} partition of {feed.name} "
                           f"(a future date, before {partitions.start:%Y-%m-%d}, or not a Friday for a weekly feed)"))
        else:
            plan.runs.append((key, data_date.isoformat()))
            # Only a key that became a run moves the cursor: a rejected key (a typo'd far-future date, say)
            # must not hide the real deliveries that sort before it.
            plan.last_key = key
    return plan


def ingestion_job(feed: Feed):
    return dg.define_asset_job(
        f"ingest_{feed.name}_job",
        tags={FEED_TAG: feed.name},
        selection=dg.AssetSelection.assets(raw_key(feed), validated_key(feed)),
        description=f"Ingest one {feed.name} delivery: raw copy, validation, quarantine, checks.",
    )


def run_request(key: str, partition: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=key, partition_key=partition, tags={LANDING_KEY_TAG: key})


def landing_sensor(feed: Feed, job, settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name=f"{feed.name}_landing_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Starts an ingestion run for every new file in landing/{feed.name}/.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        plan = plan_landing(lake_from_settings(settings), feed, start_after=context.cursor)
        for record in plan.rejected:
            context.log.warning(f"rejected {record.landing_key}: {record.reason}")
        return dg.SensorResult(run_requests=[run_request(k, p) for k, p in plan.runs],
                               cursor=plan.last_key or context.cursor)

    return _sensor


def build_ingestion_jobs_and_sensors(settings: Settings) -> tuple[list, list]:
    jobs, sensors = [], []
    for feed in FEEDS.values():
        job = ingestion_job(feed)
        jobs.append(job)
        sensors.append(landing_sensor(feed, job, settings))
    return jobs, sensors
