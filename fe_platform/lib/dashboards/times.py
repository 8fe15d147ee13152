"""Times and dates as people say them: `Tue 1 Dec, 21:14 UTC`, `13 Nov 2026`, never raw ISO."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def _as_datetime(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a time: {value!r}")
    return value


def when(value, now: dt.datetime | None = None) -> str:
    """A moment in words, in UTC: "Tue 1 Dec, 21:14 UTC"; the year is added outside the current one.

    `value` is a datetime or an ISO string (as stored in status files); a naive one is taken as UTC.
    """
    moment = _as_datetime(value)
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    year = "" if moment.year == now.year else f" {moment.year}"
    return f"{moment:%a} {moment.day} {moment:%b}{year}, {moment:%H:%M} UTC"


def day(value) -> str:
    """A calendar date in words: "13 Nov 2026"."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    ts = pd.Timestamp(value)
    return f"{ts.day} {ts:%b %Y}"


def span(first, last) -> str:
    """Two dates in words: "21 Aug to 13 Nov 2026" (the year once when they share it)."""
    a, b = pd.Timestamp(first), pd.Timestamp(last)
    if a == b:
        return day(a)
    if a.year == b.year:
        return f"{a.day} {a:%b} to {day(b)}"
    return f"{day(a)} to {day(b)}"
