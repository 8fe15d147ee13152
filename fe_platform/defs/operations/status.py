"""`fe-platform status`: per feed its last delivery, rows, quarantine rate, freshness lag and failing checks;
per dashboard its last refresh and data-quality status. For people who would rather not open the UI.

`platform_status` gathers it as plain data (what `--json` prints); `format_status` writes it for a person.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from fe_platform.defs.ingestion.assets import validated_key
from fe_platform.defs.operations.alerts import evaluation, freshness
from fe_platform.defs.operations.freshness import freshness_policy, is_late
from fe_platform.lib.alerts.content import scrub
from fe_platform.lib.delivery_log import read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.settings import Settings


def failing_checks(instance: dg.DagsterInstance, graph, key: dg.AssetKey, partition: str | None) -> list[dict]:
    """The checks of an asset whose latest evaluation (of the partition, when given) did not pass."""
    if not graph.has(key):
        return []
    check_keys = sorted(graph.get(key).check_keys, key=str)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=partition) if partition else None)
    out = []
    for check_key in check_keys:
        record = latest.get(check_key)
        if record is not None and record.status == AssetCheckExecutionRecordStatus.FAILED and record.evaluation:
            out.append({"check": check_key.name, "severity": record.evaluation.severity.value,
                        "partition": record.partition})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def feed_status(ev, feed, records, fresh) -> dict:
    last = records[-1] if records else None
    loaded = [r for r in records if r.outcome == "loaded"]
    latest = loaded[-1] if loaded else None
    lag = (ev.now - fresh.last_materialized).total_seconds() / 3600 if fresh and fresh.last_materialized else None
    return {
        "feed": feed.name,
        "team": feed.owner_team,
        "last_delivery": None if last is None else {
            "file": last.landing_key.rsplit("/", 1)[-1], "partition": last.partition, "outcome": last.outcome,
            "at": _iso(last.ingested_at), "reason": scrub(last.reason) if last.reason else None},
        "last_loaded": None if latest is None else {
            "file": latest.landing_key.rsplit("/", 1)[-1], "partition": latest.partition,
            "at": _iso(latest.ingested_at), "rows_in": latest.rows_in, "rows_valid": latest.rows_valid,
            "rows_quarantined": latest.rows_quarantined,
            "quarantine_pct": round(100 * latest.rows_quarantined / latest.rows_in, 2) if latest.rows_in else 0.0,
            "threshold_pct": feed.quarantine_warn_pct},
        "deliveries": {o: sum(r.outcome == o for r in records) for o in ("loaded", "rejected", "duplicate")},
        "freshness": {"last_materialized": _iso(fresh.last_materialized) if fresh else None,
                      "lag_hours": round(lag, 1) if lag is not None else None,
                      "late": bool(fresh and fresh.late)},
        "failing_checks": failing_checks(ev.instance, ev.graph, validated_key(feed),
                                         latest.partition if latest else None),
    }


def dashboard_statuses(settings: Settings, now: datetime) -> list[dict]:
    """What each dashboard wrote when it last refreshed (`<slug>.status.json`), and whether that is late."""
    policy = freshness_policy("downstream", settings)
    out = []
    for path in sorted(Path(settings.dashboards_dir).glob("*.status.json")):
        try:
            status = json.loads(path.read_text())
            refreshed = datetime.fromisoformat(status["refreshed_at"])
        except (ValueError, KeyError, TypeError):
            out.append({"slug": path.name.removesuffix(".status.json"), "error": "unreadable status file"})
            continue
        out.append({"slug": status.get("slug"), "title": status.get("title"), "team": status.get("owner_team"),
                    "refreshed_at": refreshed.isoformat(), "quality_status": status.get("quality_status"),
                    "hours_since_refresh": round((now - refreshed).total_seconds() / 3600, 1),
                    "late": is_late(policy, refreshed, now)})
    return out


def platform_status(instance: dg.DagsterInstance, defs, lake: Lake, settings: Settings,
                    now: datetime | None = None) -> dict:
    ev = evaluation(instance, defs, lake, settings, now or datetime.now(UTC))
    fresh = {f.watched.feed: f for f in freshness(ev) if f.watched.feed}
    log = read_delivery_log(lake)
    return {
        "generated_at": ev.now.isoformat(),
        "feeds": [feed_status(ev, feed, [r for r in log if r.feed == feed.name], fresh.get(feed.name))
                  for feed in FEEDS.values()],
        "dashboards": dashboard_statuses(settings, ev.now),
        "outbox": str(settings.home / "outbox"),
    }


def format_status(status: dict) -> str:
    """The status as a person reads it on a terminal."""
    at = datetime.fromisoformat(status["generated_at"])
    lines = [f"Feeds (as of {at:%Y-%m-%d %H:%M} UTC)",
             f"  {'feed':15} {'last delivery':34} {'outcome':9} {'rows':>8} {'quarantined':>15} {'lag h':>7}  "
             f"failing checks"]
    for f in status["feeds"]:
        last, loaded, fresh = f["last_delivery"], f["last_loaded"], f["freshness"]
        rows = f"{loaded['rows_in']:,}" if loaded else "-"
        quarantined = (f"{loaded['rows_quarantined']:,} ({loaded['quarantine_pct']:.1f}%)" if loaded else "-")
        lag = "-" if fresh["lag_hours"] is None else f"{fresh['lag_hours']:.1f}" + (" LATE" if fresh["late"] else "")
        checks = ", ".join(f"{c['check']} ({c['severity']})" for c in f["failing_checks"]) or "none"
        lines.append(f"  {f['feed']:15} {(last['file'] if last else 'none yet'):34} "
                     f"{(last['outcome'] if last else '-'):9} {rows:>8} {quarantined:>15} {lag:>7}  {checks}")
    lines.append("Dashboards")
    if not status["dashboards"]:
        lines.append("  none refreshed yet")
    for d in status["dashboards"]:
        if "error" in d:
            lines.append(f"  {d['slug']:28} {d['error']}")
            continue
        refreshed = datetime.fromisoformat(d["refreshed_at"])
        lines.append(f"  {d['slug']:28} refreshed {refreshed:%Y-%m-%d %H:%M} UTC "
                     f"({d['hours_since_refresh']:.1f} h ago{', LATE' if d['late'] else ''}), "
                     f"data quality: {d['quality_status']}")
    lines.append(f"Alerts outbox: {status['outbox']}")
    return "\n".join(lines)
