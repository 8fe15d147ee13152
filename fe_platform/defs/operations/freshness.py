"""Freshness policies: when each kind of data must have landed, from the settings."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

import dagster as dg

from fe_platform.settings import Settings


def freshness_policy(kind: str, settings: Settings) -> dg.FreshnessPolicy:
    """`weekly_tuesday`: IQVIA's week ending Friday by Tuesday noon; `daily`: SAP and CRM by 08:00 UTC."""
    if kind == "weekly_tuesday":
        # Fresh when materialized between the Friday the week ends and the Tuesday deadline.
        return _cron_policy(settings.freshness_weekly_cron, timedelta(days=4))
    if kind == "daily":
        return _cron_policy(settings.freshness_daily_cron, timedelta(hours=24))
    if kind == "downstream":
        # Warehouse and dashboards: a day behind the feeds at most, warned after half a day.
        return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=12))
    raise ValueError(f"unknown freshness kind {kind!r}")


@cache
def _cron_policy(deadline_cron: str, lower_bound: timedelta) -> dg.FreshnessPolicy:
    """One policy object per deadline: building one checks its cron, which costs more than it looks when every
    asset of every feed asks (policies are immutable)."""
    return dg.FreshnessPolicy.cron(deadline_cron=deadline_cron, lower_bound_delta=lower_bound)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def is_late(policy: dg.FreshnessPolicy, last_materialized: datetime, now: datetime) -> bool:
    """Whether an asset last materialized at `last_materialized` misses `policy` at `now`.

    Dagster's own evaluation, with the clock passed in: a cron policy wants a materialization in the window
    that ends at the latest deadline tick (at or before now) and starts `lower_bound_delta` before it; a
    time-window policy wants one within `fail_window` of now.
    """
    from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy
    from dagster._utils.schedules import get_latest_completed_cron_tick

    if isinstance(policy, CronFreshnessPolicy):
        tick = get_latest_completed_cron_tick(policy.deadline_cron, now, policy.timezone)
        return last_materialized < tick - policy.lower_bound_delta
    if isinstance(policy, TimeWindowFreshnessPolicy):
        return now - last_materialized >= policy.fail_window.to_timedelta()
    raise ValueError(f"unknown freshness policy {type(policy).__name__}")


def expectation(policy: dg.FreshnessPolicy) -> str:
    """The policy in words, for an alert."""
    from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy

    if isinstance(policy, CronFreshnessPolicy):
        return (f"new data by each deadline of the cron `{policy.deadline_cron}` ({policy.timezone}), "
                f"at most {_hours(policy.lower_bound_delta)} before it")
    if isinstance(policy, TimeWindowFreshnessPolicy):
        return f"updated at least every {_hours(policy.fail_window.to_timedelta())}"
    return type(policy).__name__
