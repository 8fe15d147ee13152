"""The contract's metrics to CloudWatch, in aws mode: per delivery, per run, and each feed's freshness lag.

Locally the delivery log holds the same figures and `fe-platform status` prints them. What was sent is
remembered in the ledger (cursors in the Dagster instance), so a delivery or a run is sent once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.events import DagsterEventType

from fe_platform.defs.ingestion.sensors import FEED_TAG
from fe_platform.defs.operations.alerts import (
    evaluation,
    feed_asset_keys,
    finished_runs,
    freshness,
)
from fe_platform.lib.alerts.metrics import delivery_datums, freshness_datum, put_metrics, run_datums
from fe_platform.lib.delivery_log import read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.settings import Settings

# CloudWatch takes data points up to two weeks old (13 days here, to be safe). A delivery record may be
# written a little after the time it is stamped with, so the cursor looks back an hour and remembers what it
# sent in that hour.
MAX_AGE = timedelta(days=13)
OVERLAP = timedelta(hours=1)


def _record_id(record) -> str:
    return f"{record.landing_key}@{record.sha256[:12]}:{record.outcome}"


def delivery_metric_datums(lake: Lake, cursor: str | None, now: datetime) -> tuple[list[dict], str]:
    """Data points of the deliveries recorded since the cursor, and the cursor after them."""
    sent = json.loads(cursor) if cursor else {"since": (now - MAX_AGE).isoformat(), "ids": {}}
    since = datetime.fromisoformat(sent["since"])
    recent: dict[str, str] = sent["ids"]  # record id -> its ingested_at, for the last OVERLAP
    datums: list[dict] = []
    newest = since
    for r in read_delivery_log(lake):
        if (r.ingested_at <= since - OVERLAP or r.ingested_at < now - MAX_AGE or _record_id(r) in recent
                or r.outcome == "duplicate"):
            continue
        asset = feed_asset_keys(r.feed)[1].to_user_string() if r.feed in FEEDS else r.feed
        datums += delivery_datums(r.feed, asset, r.ingested_at, r.rows_in, r.rows_valid, r.rows_quarantined,
                                  r.outcome == "rejected", getattr(r, "seconds", None), getattr(r, "bytes", None))
        recent[_record_id(r)] = r.ingested_at.isoformat()
        newest = max(newest, r.ingested_at)
    keep = {i: at for i, at in recent.items() if datetime.fromisoformat(at) > newest - OVERLAP}
    return datums, json.dumps({"since": newest.isoformat(), "ids": keep})


def metric_datums(instance: dg.DagsterInstance, defs, lake: Lake, settings: Settings, now: datetime | None = None
                  ) -> tuple[list[dict], dict[str, str]]:
    """The data points not sent yet, and the cursors to keep once they are."""
    ev = evaluation(instance, defs, lake, settings, now)
    datums, delivery_cursor = delivery_metric_datums(lake, ev.ledger.cursor("metrics_deliveries"), ev.now)
    cursors = {"metrics_deliveries": delivery_cursor}

    run_cursor = int(ev.ledger.cursor("metrics_runs") or 0)
    for storage_id, run_id, event_type, _ in finished_runs(instance, run_cursor):
        record = instance.get_run_record_by_id(run_id)
        if record is not None and record.start_time and record.end_time:
            run = record.dagster_run
            feed = run.tags.get(FEED_TAG)
            asset = feed_asset_keys(feed)[1].to_user_string() if feed in FEEDS else run.job_name
            datums += run_datums(feed or "all", asset, datetime.fromtimestamp(record.end_time, UTC),
                                 record.end_time - record.start_time, event_type != DagsterEventType.RUN_SUCCESS)
        run_cursor = storage_id
    cursors["metrics_runs"] = str(run_cursor)

    for f in freshness(ev):
        if f.watched.feed and f.last_materialized:
            lag = (ev.now - f.last_materialized).total_seconds() / 3600
            datums.append(freshness_datum(f.watched.feed, f.watched.key.to_user_string(), ev.now, round(lag, 3)))
    return datums, cursors


def publish_metrics(instance: dg.DagsterInstance, defs, lake: Lake, settings: Settings, now: datetime | None = None,
                    endpoint_url: str | None = None) -> int:
    """Send what is new to CloudWatch (aws mode only); returns the number of data points sent."""
    if settings.mode != "aws":
        return 0
    datums, cursors = metric_datums(instance, defs, lake, settings, now)
    sent = put_metrics(datums, settings.aws_region, endpoint_url)
    ledger = evaluation(instance, defs, lake, settings, now).ledger
    for name, value in cursors.items():
        ledger.set_cursor(name, value)
    return sent
