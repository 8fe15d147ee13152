"""Freshness policies: when each kind of data must have landed, from the settings."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from fe_platform.settings import Settings


def freshness_policy(kind: str, settings: Settings) -> dg.FreshnessPolicy:
    """`weekly_tuesday`: IQVIA's week ending Friday by Tuesday noon; `daily`: SAP and CRM by 08:00 UTC."""
    if kind == "weekly_tuesday":
        # Fresh when materialized between the Friday the week ends and the Tuesday deadline.
        return dg.FreshnessPolicy.cron(deadline_cron=settings.freshness_weekly_cron,
                                       lower_bound_delta=timedelta(days=4))
    if kind == "daily":
        return dg.FreshnessPolicy.cron(deadline_cron=settings.freshness_daily_cron,
                                       lower_bound_delta=timedelta(hours=24))
    if kind == "downstream":
        # Warehouse and dashboards: a day behind the feeds at most, warned after half a day.
        return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=12))
    raise ValueError(f"unknown freshness kind {kind!r}")
