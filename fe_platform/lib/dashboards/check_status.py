"""A dashboard's data-quality status: the worst latest result of every asset check upstream of it.

Plain Python: the results come in as `CheckResult`s (the Dagster side reads them from the
instance); this module decides what they add up to and how to name them.

Which results count: for every check upstream, the latest result of each partition it was
evaluated on (a check of an unpartitioned asset has one). A partition's result is its latest
completed evaluation; an evaluation still running does not replace it, and one whose run failed
before the check reported counts as ERROR ("did not complete"). So a partition re-delivered and
re-checked clean stops failing, and an old partition that still fails keeps the dashboards WARN
or ERROR, since the reporting tables read every partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OK, WARN, ERROR, UNKNOWN = "OK", "WARN", "ERROR", "UNKNOWN"
_RANK = {OK: 0, WARN: 1, ERROR: 2}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class CheckResult:
    """The latest result of one check on one partition (None: the check's asset is unpartitioned)."""

    check: str  # "<asset>:<check name>", as Dagster names it: "validated_fx_rates:quarantine_by_rule"
    partition: str | None
    passed: bool
    severity: str = ERROR  # WARN or ERROR; what a failure means
    evaluated_at: dt.datetime | None = None
    completed: bool = True  # False: the run failed before the check reported

    @property
    def level(self) -> str:
        if not self.completed:
            return ERROR
        return OK if self.passed else self.severity


@dataclass(frozen=True)
class FailingCheck:
    """One check that did not pass, over all the partitions it was evaluated on."""

    check: str
    level: str  # WARN or ERROR: the worst of its failing partitions
    failed_partitions: tuple[str, ...]  # latest first; empty for an unpartitioned check
    partitions_evaluated: int
    last_failed_at: dt.datetime | None
    not_completed: int = 0  # how many of the failures are runs that did not complete
    error_partitions: tuple[str, ...] = ()  # those of failed_partitions that failed at ERROR, latest first

    @property
    def asset(self) -> str:
        return self.check.rsplit(":", 1)[0]

    @property
    def name(self) -> str:
        return self.check.rsplit(":", 1)[1]

    def to_json(self) -> dict:
        return {"check": self.check, "level": self.level, "failed_partitions": list(self.failed_partitions),
                "partitions_evaluated": self.partitions_evaluated,
                "last_failed_at": self.last_failed_at.isoformat() if self.last_failed_at else None,
                "not_completed": self.not_completed, "error_partitions": list(self.error_partitions)}

    @classmethod
    def from_json(cls, data: Mapping) -> FailingCheck:
        at = data.get("last_failed_at")
        return cls(check=data["check"], level=data["level"], failed_partitions=tuple(data["failed_partitions"]),
                   partitions_evaluated=int(data["partitions_evaluated"]),
                   last_failed_at=dt.datetime.fromisoformat(at) if at else None,
                   not_completed=int(data.get("not_completed", 0)),
                   error_partitions=tuple(data.get("error_partitions", ())))


@dataclass(frozen=True)
class QualityStatus:
    level: str  # OK, WARN, ERROR, or UNKNOWN when no upstream check has a result yet
    checks: int  # distinct checks with a result
    results: int  # results counted (check x partition)
    failing: tuple[FailingCheck, ...] = field(default_factory=tuple)  # ERROR first, then WARN, by name

    @property
    def headline(self) -> str:
        """One line for a badge: "OK", "ERROR: 1 check failing, 3 warning", "No checks run yet"."""
        if self.level == UNKNOWN:
            return "No checks run yet"
        if self.level == OK:
            return OK
        errors = sum(1 for f in self.failing if f.level == ERROR)
        warnings = len(self.failing) - errors
        parts = []
        if errors:
            parts.append(f"{errors} check{'s' if errors != 1 else ''} failing")
        if warnings:
            parts.append(f"{warnings} warning")
        return f"{self.level}: " + ", ".join(parts)

    def to_json(self) -> dict:
        return {"level": self.level, "headline": self.headline, "checks": self.checks, "results": self.results,
                "failing": [f.to_json() for f in self.failing]}

    @classmethod
    def from_json(cls, data: Mapping) -> QualityStatus:
        return cls(level=data["level"], checks=int(data["checks"]), results=int(data["results"]),
                   failing=tuple(FailingCheck.from_json(f) for f in data.get("failing", ())))


def worst(levels: Iterable[str]) -> str:
    """The worst of OK, WARN and ERROR (OK for none)."""
    return max(levels, key=_RANK.__getitem__, default=OK)


def _latest_first(partitions: Iterable[str]) -> tuple[str, ...]:
    # Partition keys are dates (YYYY-MM-DD) or other sortable keys: latest sorts last.
    return tuple(sorted(partitions, reverse=True))


def summarize(results: Iterable[CheckResult]) -> QualityStatus:
    """The status of a set of latest results: worst level, and every check that did not pass."""
    by_check: dict[str, list[CheckResult]] = {}
    count = 0
    for r in results:
        by_check.setdefault(r.check, []).append(r)
        count += 1
    if not count:
        return QualityStatus(level=UNKNOWN, checks=0, results=0)
    failing = []
    for check, rs in by_check.items():
        bad = [r for r in rs if r.level != OK]
        if not bad:
            continue
        times = [r.evaluated_at for r in bad if r.evaluated_at is not None]
        failing.append(FailingCheck(
            check=check,
            level=worst(r.level for r in bad),
            failed_partitions=_latest_first(r.partition for r in bad if r.partition is not None),
            partitions_evaluated=len(rs),
            last_failed_at=max(times) if times else None,
            not_completed=sum(1 for r in bad if not r.completed),
            error_partitions=_latest_first(r.partition for r in bad if r.partition is not None and r.level == ERROR),
        ))
    failing.sort(key=lambda f: (-_RANK[f.level], f.check))
    return QualityStatus(level=worst(f.level for f in failing), checks=len(by_check), results=count,
                         failing=tuple(failing))


def merge(statuses: Mapping[str, QualityStatus]) -> list[tuple[FailingCheck, list[str]]]:
    """The failing checks of several dashboards (title -> status), each once, with the dashboards it affects.

    Where dashboards saw a check differently (refreshed at different times), the worse, then the
    later, view of it is kept.
    """
    seen: dict[str, tuple[FailingCheck, list[str]]] = {}
    for title, status in statuses.items():
        for f in status.failing:
            kept, titles = seen.get(f.check, (f, []))
            if (_RANK[f.level], f.last_failed_at or _EPOCH) > (_RANK[kept.level], kept.last_failed_at or _EPOCH):
                kept = f
            seen[f.check] = (kept, [*titles, title])
    return sorted(seen.values(), key=lambda item: (-_RANK[item[0].level], item[0].check))
