"""The pullers of shared/spec/sources.md (and fx_rates) as Dagster assets, with their schedules and sensor.

- `landing_sp_dispense` and `landing_hcp_event`: daily-partitioned assets; materializing a day pulls it
  (so a backfill from the UI pulls past days); schedules pull the day before, sp_dispense at 02:00 UTC,
  hcp_event at 02:30 UTC. The asset check `source_count_matches` compares the rows the database holds
  for a day now with the rows landed for it; it runs with each pull, and again a day later (02:15 UTC)
  since late commits show only after the pull.
- `landing_hcp_engagement`: written by the sensor `hcp_engagement_consumer`, which reads the Kinesis
  stream for a bounded time per tick and reports a materialization for each day it landed files of.
- `landing_fx_rates`: the fx_rates puller in the same shape (defs/ingestion/fx_pull.py).

Each ends at landing files; the feeds' landing sensors and ingestion assets take it from there. A
source that is not configured keeps its schedule or sensor stopped, and its asset fails clearly.
No `from __future__ import annotations` here: Dagster reads the type hints at definition time.
"""

from datetime import UTC, date, timedelta

import dagster as dg

from fe_platform.defs.ingestion.assets import owners
from fe_platform.defs.ingestion.fx_pull import fx_rates_puller
from fe_platform.defs.partitions import daily
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.lib.sources.landing import PullError
from fe_platform.settings import Settings

# Feeds whose `landing_<feed>` asset is defined here rather than as an external spec of landing files.
PULLED_FEEDS = ("fx_rates", "sp_dispense", "hcp_event", "hcp_engagement")
SP_DISPENSE_CRON = "0 2 * * *"
SP_DISPENSE_RECHECK_CRON = "15 2 * * *"
HCP_EVENT_CRON = "30 2 * * *"
CONSUMER_INTERVAL_SECONDS = 30


def _describe(name: str) -> tuple[str, str, list[str]]:
    """Title, source system and owners of a pulled feed."""
    feed = FEEDS[name]
    return feed.title, feed.source, owners(feed)


def _status(configured: bool):
    return dg.DefaultScheduleStatus.RUNNING if configured else dg.DefaultScheduleStatus.STOPPED


def _day_before(context: dg.ScheduleEvaluationContext, days: int = 1) -> date:
    return context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=days)


# --- sp_dispense ---------------------------------------------------------------------------------
def sp_dispense_puller(settings: Settings) -> tuple[list, list, list, list]:
    source = settings.sp_dispense
    title, system, owner_list = _describe("sp_dispense")

    def require_source():
        if source is None:
            raise dg.Failure(description="the sp_dispense source is not configured (FE_SP_DISPENSE_HOST and the "
                                         "other FE_SP_DISPENSE_* settings)")
        return source

    @dg.asset(key="landing_sp_dispense", partitions_def=daily, group_name="landing", owners=owner_list,
              kinds={"postgres", "csv"}, metadata={"source_system": system},
              description=f"{title}: each day's rows of the hub's `dispense` table (updated_at in the day, UTC) "
                          "as `landing/sp_dispense/SP_DISPENSE_<YYYYMMDD>.csv.gz`. Materializing a day pulls it "
                          "again and replaces its file.")
    def landing_sp_dispense(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]) -> dg.MaterializeResult:
        from fe_platform.lib.sources import sp_dispense  # (psycopg is imported where a pull runs)

        src = require_source()
        day = date.fromisoformat(context.partition_key)
        try:
            result = sp_dispense.pull_sp_dispense(
                lake, src.conninfo(), day, table=src.table,
                progress=lambda rows: context.log.debug(f"sp_dispense {day}: {rows:,} rows so far"))
        except PullError as exc:
            raise dg.Failure(description=str(exc)) from None
        if result.key is None:
            context.log.warning(f"sp_dispense {day}: the source holds no rows for the day; no file written")
        else:
            context.log.info(f"sp_dispense {day}: {result.rows:,} rows at {result.key}"
                             + ("" if result.changed else " (unchanged: nothing written)"))
        return dg.MaterializeResult(metadata={"landing_key": result.key or "", "rows": result.rows,
                                              "dagster/row_count": result.rows, "changed": result.changed,
                                              "source": src.public()})

    @dg.asset_check(asset=landing_sp_dispense, name="source_count_matches", partitions_def=daily,
                    description="The rows the source holds for the day now equal the rows landed for it; when "
                                "they differ (late commits, corrections), a re-pull of the day is due.")
    def source_count_matches(context: dg.AssetCheckExecutionContext, lake: dg.ResourceParam[Lake]
                             ) -> dg.AssetCheckResult:
        from fe_platform.lib.sources import sp_dispense

        src = require_source()
        day = date.fromisoformat(context.partition_key)
        try:
            with sp_dispense.connect(src.conninfo()) as conn:
                now = sp_dispense.source_count(conn, day, src.table)
        except PullError as exc:
            raise dg.Failure(description=str(exc)) from None
        landed = sp_dispense.landed_rows(lake, day) or 0
        return dg.AssetCheckResult(
            passed=now == landed,
            description=None if now == landed else
            f"the source holds {now:,} rows for {day}, {landed:,} were landed: re-pull {day}",
            metadata={"source_rows": now, "landed_rows": landed, "difference": now - landed})

    pull_job = dg.define_asset_job("landing_sp_dispense_job", selection=dg.AssetSelection.assets(landing_sp_dispense),
                                   description="Pull one day of sp_dispense into landing, then check its count.")

    @dg.schedule(name="landing_sp_dispense_daily", job=pull_job, cron_schedule=SP_DISPENSE_CRON,
                 execution_timezone="UTC", default_status=_status(source is not None),
                 description="Daily at 02:00 UTC: pull the day before (its source_count_matches check runs with it).")
    def landing_sp_dispense_daily(context: dg.ScheduleEvaluationContext):
        day = _day_before(context).isoformat()
        return dg.RunRequest(run_key=f"sp_dispense-{day}", partition_key=day)

    @dg.schedule(name="recheck_sp_dispense_daily", job=pull_job, cron_schedule=SP_DISPENSE_RECHECK_CRON,
                 execution_timezone="UTC", default_status=_status(source is not None),
                 description="Daily at 02:15 UTC: source_count_matches again for two days before, whose late "
                             "commits only show after its pull.")
    def recheck_sp_dispense_daily(context: dg.ScheduleEvaluationContext):
        day = _day_before(context, 2).isoformat()
        # the check alone, as `Execute checks` in the UI: nothing is pulled
        return dg.RunRequest(run_key=f"sp_dispense-recheck-{day}", partition_key=day, asset_selection=[],
                             asset_check_keys=[source_count_matches.check_key])

    return [landing_sp_dispense], [source_count_matches], [pull_job], [landing_sp_dispense_daily,
                                                                       recheck_sp_dispense_daily]


# --- hcp_event -----------------------------------------------------------------------------------
def hcp_event_puller(settings: Settings) -> tuple[list, list, list]:
    api = settings.events_api
    title, system, owner_list = _describe("hcp_event")

    @dg.asset(key="landing_hcp_event", partitions_def=daily, group_name="landing", owners=owner_list,
              kinds={"api", "json"}, metadata={"source_system": system},
              description=f"{title}: every page of the day's attendances from FE_EVENTS_API_URL "
                          "(/v1/attendances, updated in the day, UTC) as `landing/hcp_event/HCP_EVENT_<YYYYMMDD>"
                          ".jsonl`, one item a line as received. Materializing a day pulls it again.")
    def landing_hcp_event(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]) -> dg.MaterializeResult:
        if api is None:
            raise dg.Failure(description="the events API is not configured (FE_EVENTS_API_URL, FE_EVENTS_API_TOKEN)")
        from fe_platform.lib.sources import hcp_event

        day = date.fromisoformat(context.partition_key)
        try:
            result = hcp_event.pull_hcp_event(lake, api.url, api.token, day)
        except PullError as exc:
            raise dg.Failure(description=str(exc)) from None
        if result.key is None:
            context.log.warning(f"hcp_event {day}: the API has no attendances for the day; no file written")
        return dg.MaterializeResult(metadata={"landing_key": result.key or "", "rows": result.rows,
                                              "dagster/row_count": result.rows, "pages": result.pages,
                                              "changed": result.changed})

    job = dg.define_asset_job("landing_hcp_event_job", selection=[landing_hcp_event],
                              description="Pull one day of hcp_event attendances into landing.")

    @dg.schedule(name="landing_hcp_event_daily", job=job, cron_schedule=HCP_EVENT_CRON, execution_timezone="UTC",
                 default_status=_status(api is not None),
                 description="Daily at 02:30 UTC: pull the attendances updated the day before.")
    def landing_hcp_event_daily(context: dg.ScheduleEvaluationContext):
        day = _day_before(context).isoformat()
        return dg.RunRequest(run_key=f"hcp_event-{day}", partition_key=day)

    return [landing_hcp_event], [job], [landing_hcp_event_daily]


# --- hcp_engagement ------------------------------------------------------------------------------
def hcp_engagement_consumer(settings: Settings) -> tuple[dg.AssetSpec, dg.SensorDefinition]:
    stream = settings.engagement_stream
    title, system, owner_list = _describe("hcp_engagement")
    landing = dg.AssetSpec(
        "landing_hcp_engagement", partitions_def=daily, group_name="landing", owners=owner_list,
        kinds={"kinesis", "json"}, metadata={"source_system": system},
        description=f"{title}: the Kinesis stream's records, buffered into `landing/hcp_engagement/HCP_ENGAGEMENT_"
                    "<YYYYMMDD>_<HHMMSS>_<shard>_<n>.jsonl.gz` files by the hcp_engagement_consumer sensor; "
                    "a partition is the files closed that day (UTC).")

    @dg.sensor(name="hcp_engagement_consumer", minimum_interval_seconds=CONSUMER_INTERVAL_SECONDS,
               default_status=dg.DefaultSensorStatus.RUNNING if stream else dg.DefaultSensorStatus.STOPPED,
               description="Reads every shard of FE_KINESIS_STREAM from its checkpoint for a bounded time "
                           "(FE_ENGAGEMENT_TICK_SECONDS) and lands what it read.")
    def consumer_sensor(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]):
        if stream is None:
            return dg.SkipReason("FE_KINESIS_STREAM is not set")
        from fe_platform.lib.sources import hcp_engagement

        consumer = hcp_engagement.EngagementConsumer(
            lake, hcp_engagement.kinesis_client(stream.region, stream.endpoint_url),
            stream.stream, max_bytes=stream.buffer_bytes, max_age=stream.buffer_seconds)
        report = consumer.consume(max_seconds=stream.tick_seconds)
        for shard in report.finished_shards:
            context.log.info(f"shard {shard} is closed and read to its end")
        events = [dg.AssetMaterialization(
            asset_key=landing.key, partition=day.isoformat(),
            metadata={"files": len(files), "records": sum(f.records for f in files),
                      "bytes": sum(f.bytes for f in files), "landing_keys": [f.key for f in files]})
            for day, files in sorted(report.by_day().items())]
        if not events:
            return dg.SkipReason("no new records on the stream")
        return dg.SensorResult(asset_events=events)

    return landing, consumer_sensor


def build_puller_defs(settings: Settings) -> dg.Definitions:
    """Every puller's asset, check, job, schedule and sensor: merge with the ingestion Definitions, whose
    landing specs of PULLED_FEEDS these assets replace."""
    sp_assets, sp_checks, sp_jobs, sp_schedules = sp_dispense_puller(settings)
    event_assets, event_jobs, event_schedules = hcp_event_puller(settings)
    engagement, consumer = hcp_engagement_consumer(settings)
    fx_asset, fx_job, fx_schedule = fx_rates_puller(settings)
    return dg.Definitions(
        assets=[fx_asset, *sp_assets, *event_assets, engagement],
        asset_checks=sp_checks,
        jobs=[fx_job, *sp_jobs, *event_jobs],
        schedules=[fx_schedule, *sp_schedules, *event_schedules],
        sensors=[consumer],
    )
