"""The fx_rates puller, in the shape of the pullers of sources.md: `landing_fx_rates` for a day is a pull
of that day (so a backfill from the UI pulls past days), on a daily schedule. It only lands the file;
the fx_rates landing sensor ingests it like any delivery. No `from __future__ import annotations` here:
Dagster reads the type hints at definition time.
"""

from datetime import UTC, date

import dagster as dg

from fe_platform.defs.ingestion.assets import landing_key, owners
from fe_platform.defs.partitions import partitions_for
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.fx_api import FxApiError, pull_fx_rates, redact_url
from fe_platform.lib.lake import Lake
from fe_platform.settings import Settings

FX_PULL_CRON = "0 6 * * *"  # 06:00 UTC daily


def fx_rates_puller(settings: Settings) -> tuple[dg.AssetsDefinition, dg.JobDefinition, dg.ScheduleDefinition]:
    """`landing_fx_rates` (daily partitions), its job and its 06:00 UTC schedule for the tick's own day."""
    feed = FEEDS["fx_rates"]
    partitions = partitions_for(feed)

    @dg.asset(key=landing_key(feed), partitions_def=partitions, group_name="landing", owners=owners(feed),
              kinds={"api", "json"}, metadata={"source_system": feed.source, "file_pattern": feed.file_pattern},
              description=f"{feed.title}: each day's body from FE_FX_API_URL, exactly as the API sent it, "
                          f"in `landing/{feed.name}/`. Materializing a day pulls it.")
    def landing_fx_rates(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]) -> dg.MaterializeResult:
        if not settings.fx_api_url:
            raise dg.Failure(description="FE_FX_API_URL is not set")
        day = date.fromisoformat(context.partition_key)
        try:
            key = pull_fx_rates(lake, settings.fx_api_url, day)
        except FxApiError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(f"fx_rates for {day.isoformat()} landed at {key}")
        return dg.MaterializeResult(metadata={"landing_key": key, "source": redact_url(settings.fx_api_url)})

    job = dg.define_asset_job("landing_fx_rates_job", selection=[landing_fx_rates],
                              description="Pull one day's fx_rates from the API into landing.")

    @dg.schedule(name="landing_fx_rates_daily", job=job, cron_schedule=FX_PULL_CRON, execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING if settings.fx_api_url
                 else dg.DefaultScheduleStatus.STOPPED,
                 description="Daily at 06:00 UTC: pull the day's fx_rates into landing.")
    def landing_fx_rates_daily(context: dg.ScheduleEvaluationContext):
        # The tick's own date, so a late or caught-up tick still pulls the day it stands for.
        day = context.scheduled_execution_time.astimezone(UTC).date()
        return dg.RunRequest(run_key=f"fx_rates-{day.isoformat()}", partition_key=day.isoformat())

    return landing_fx_rates, job, landing_fx_rates_daily
