"""What to ingest: the landing entries the delivery log does not hold yet, cut into bounded batches.

Planning only reads (a listing of landing, a listing of the log); the sensor and `fe-platform run` both
plan with it and then act on the plan, so both ways in share one record of what was ingested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from fe_platform.lib.delivery_log import LogIndex
from fe_platform.lib.feeds import Feed
from fe_platform.lib.lake import Lake, LakeObject

DAILY_START = date(2024, 1, 1)
WEEKLY_START = date(2024, 1, 5)  # the first Friday


def partition_problem(feed: Feed, data_date: date, today: date) -> str | None:
    """Why a data date is no partition of the feed, or None: partitions run from the start date to today
    (IQVIA's are the week-ending Fridays). Tomorrow is not refused (see `plan_landing`)."""
    start = WEEKLY_START if feed.partitioning == "weekly" else DAILY_START
    if feed.partitioning == "weekly" and data_date.weekday() != 4:
        return f"data date {data_date} is not a Friday, and {feed.name} is partitioned by week-ending Friday"
    if data_date < start:
        return f"data date {data_date} is before the first partition of {feed.name} ({start})"
    if data_date > today + timedelta(days=1):
        return f"data date {data_date} is in the future"
    return None


def landing_entries(lake: Lake, feed: Feed) -> list[LakeObject]:
    """What lies directly in the feed's landing folder, in key order."""
    return [o for o in lake.list(feed.landing_prefix) if o.key.count("/") == 2]


@dataclass
class LandingPlan:
    feed: Feed
    new: list[LakeObject] = field(default_factory=list)  # deliveries to ingest, in key order
    to_reject: list[tuple[LakeObject, str]] = field(default_factory=list)  # entries no run can take, and why


def plan_landing(lake: Lake, feed: Feed, index: LogIndex, today: date) -> LandingPlan:
    """The landing entries of `feed` that `index` does not hold as they are now."""
    plan = LandingPlan(feed)
    for obj in landing_entries(lake, feed):
        if index.knows(feed.name, obj):
            continue
        data_date = feed.match(obj.key.rsplit("/", 1)[-1])
        if not obj.regular:
            plan.to_reject.append((obj, "not a regular file (a symbolic link or a special file): only files are "
                                        "accepted, nothing was read"))
        elif data_date is None:
            plan.to_reject.append((obj, f"the file name does not match the {feed.name} pattern "
                                        f"{feed.file_pattern!r}"))
        elif problem := partition_problem(feed, data_date, today):
            plan.to_reject.append((obj, problem))
        elif data_date > today:
            continue  # named after tomorrow (UTC): a source ahead of UTC; its partition opens tomorrow
        else:
            plan.new.append(obj)
    return plan


@dataclass(frozen=True)
class Batch:
    """Deliveries of one feed that one ingestion run takes, in order."""

    feed: Feed
    deliveries: tuple[LakeObject, ...]

    @property
    def partitions(self) -> list[str]:
        return sorted({self.feed.match(o.key.rsplit("/", 1)[-1]).isoformat() for o in self.deliveries})

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.deliveries)


def batches(plan: LandingPlan, max_deliveries: int, max_bytes: int) -> list[Batch]:
    """The plan's deliveries in runs of at most `max_deliveries` files and `max_bytes` (a larger file goes
    alone), in key order."""
    out: list[Batch] = []
    current: list[LakeObject] = []
    size = 0
    for obj in plan.new:
        if current and (len(current) >= max_deliveries or size + obj.size > max_bytes):
            out.append(Batch(plan.feed, tuple(current)))
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        out.append(Batch(plan.feed, tuple(current)))
    return out


def utc_today() -> date:
    return datetime.now(UTC).date()
