"""`fe-platform run`: one shot, no daemon.

It plans every new landing file with the sensors' own code (`plan_landing`), runs each
delivery's ingestion job in-process against the Dagster instance (so the UI shows the
runs), then asks the assets' declarative automation conditions what is now stale and
materializes that, until nothing more is requested.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import DeliveryRecord, read_delivery_log
from fe_platform.lib.lake import lake_from_settings
from fe_platform.settings import PROJECT_ROOT, Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Partitioned asset checks are a Dagster preview feature; the platform relies on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@dataclass
class RunSummary:
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    extra_lines: list[str] = field(default_factory=list)  # what the warehouse and dashboard stages report

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
            records = [r for r in read_delivery_log(lake, feed.name) if r.landing_key == key]
            if records:
                r = records[-1]
                summary.deliveries.append(r)
                detail = (f"{r.rows_in} rows, {r.rows_valid} valid, {r.rows_quarantined} quarantined"
                          if r.outcome == "loaded" else r.reason)
                echo(f"  {feed.name:15} {key.rsplit('/', 1)[-1]:34} {r.outcome}: {detail}")
            if not result.success:
                echo(f"  {feed.name:15} {key.rsplit('/', 1)[-1]:34} RUN FAILED")


def run_platform(settings: Settings, echo: Callable[[str], None] = print) -> RunSummary:
    from fe_platform.definitions import build_definitions

    instance = dagster_instance(settings)
    defs = build_definitions(settings)
    summary = RunSummary()
    echo("Ingesting new deliveries from landing/ ...")
    ingest_new_deliveries(defs, settings, instance, summary, echo)
    return summary


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
    for line in summary.extra_lines:
        echo(line)
    echo(f"  runs this time: {summary.runs} ({len(summary.failed_runs)} failed), "
         f"assets materialized: {len(summary.materialized)}")
    echo(f"  checks this time: {summary.checks_passed} passed, {len(summary.checks_failed)} did not pass")
    for name in sorted(set(summary.checks_failed))[:15]:
        echo(f"    - {name}")
    if len(set(summary.checks_failed)) > 15:
        echo(f"    ... and {len(set(summary.checks_failed)) - 15} more (see the Dagster UI: make dev)")
    for label in summary.failed_runs:
        echo(f"  FAILED: {label}")
