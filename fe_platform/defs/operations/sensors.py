"""The operations sensors and the digest schedule, run by the Dagster daemon.

- `operations_alerts` (every minute): evaluates every alert source and tells what fails anew;
- `operations_metrics` (every five minutes, aws mode): sends the contract's metrics to CloudWatch;
- `operations_daily_digest` (FE_ALERTS_DIGEST_CRON, 07:00 UTC by default): a run that sends each team the
  digest of the day before.
No `from __future__ import annotations` here: Dagster reads the op's type hints at definition time.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from fe_platform.defs.operations.alerts import evaluate_alerts, send_digests
from fe_platform.defs.operations.metrics import publish_metrics
from fe_platform.lib.lake import Lake
from fe_platform.settings import Settings


def _definitions(context: dg.OpExecutionContext, settings: Settings):
    """The code location's definitions (for the assets' owners); a run executed in-process has none set."""
    try:
        return context.repository_def
    except Exception:
        from fe_platform.definitions import build_definitions

        return build_definitions(settings)


class DigestConfig(dg.Config):
    day: str | None = None  # YYYY-MM-DD; default: yesterday in UTC


def build_operations_defs(settings: Settings) -> dg.Definitions:
    @dg.sensor(name="operations_alerts", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Tells asset owners of failed ERROR checks, failed runs, rejected deliveries, late feeds "
                           "and dashboards, and failed sensor or schedule ticks, once per failure.")
    def operations_alerts(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]):
        alerts = evaluate_alerts(context.instance, context.repository_def, lake, settings,
                                 digest=False)
        for alert in alerts:
            context.log.info(f"told {alert.team}: {alert.subject}")
        return dg.SkipReason(f"{len(alerts)} alert(s) sent" if alerts else "nothing new to tell")

    @dg.sensor(name="operations_metrics", minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.RUNNING if settings.mode == "aws"
               else dg.DefaultSensorStatus.STOPPED,
               description="Sends delivery, run and freshness metrics to CloudWatch (namespace FE/Platform).")
    def operations_metrics(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]):
        sent = publish_metrics(context.instance, context.repository_def, lake, settings)
        return dg.SkipReason(f"{sent} data point(s) sent to CloudWatch")

    @dg.op(name="send_daily_digest", description="Sends each team the digest of a day: deliveries, quarantine by "
                                                 "rule, WARN checks, late feeds.")
    def send_daily_digest(context: dg.OpExecutionContext, config: DigestConfig, lake: dg.ResourceParam[Lake]) -> int:
        try:
            day = date.fromisoformat(config.day) if config.day else datetime.now(UTC).date() - timedelta(days=1)
        except ValueError:
            raise dg.Failure(description=f"config day must be YYYY-MM-DD, got {config.day!r}") from None
        alerts = send_digests(context.instance, _definitions(context, settings), lake, settings, day)
        for alert in alerts:
            context.log.info(f"digest of {day} sent to {alert.team}")
        return len(alerts)

    @dg.job(name="operations_daily_digest_job", description="Send each team the daily digest of a day.")
    def operations_daily_digest_job():
        send_daily_digest()

    def run_config(context: dg.ScheduleEvaluationContext) -> dict:
        day = context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)
        return {"ops": {"send_daily_digest": {"config": {"day": day.isoformat()}}}}

    digest_schedule = dg.ScheduleDefinition(
        name="operations_daily_digest", job=operations_daily_digest_job, cron_schedule=settings.alerts.digest_cron,
        execution_timezone="UTC", run_config_fn=run_config, default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day: each team's digest of the day before.")

    return dg.Definitions(jobs=[operations_daily_digest_job], schedules=[digest_schedule],
                          sensors=[operations_alerts, operations_metrics])
