"""Partitions of the feeds: IQVIA by week-ending Friday, every other feed by day.

`end_offset=1` makes the current week's (day's) partition exist as soon as its data date is
reached: a delivery is named after the day its data ends, and arrives after it. The start dates are
planning's (`lib/planning.py`), which refuses a data date no partition holds before any run.
"""

from __future__ import annotations

import dagster as dg

from fe_platform.lib.feeds import Feed
from fe_platform.lib.planning import DAILY_START, WEEKLY_START

weekly_friday = dg.WeeklyPartitionsDefinition(start_date=WEEKLY_START.isoformat(), day_offset=5, end_offset=1)
daily = dg.DailyPartitionsDefinition(start_date=DAILY_START.isoformat(), end_offset=1)


def partitions_for(feed: Feed) -> dg.TimeWindowPartitionsDefinition:
    return weekly_friday if feed.partitioning == "weekly" else daily
