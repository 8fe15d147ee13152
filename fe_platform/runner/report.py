"""What `fe-platform run` tells people: progress while it works, and a summary from the runs' events."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

Echo = Callable[[str], None]
ANSI_COLOR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Delivery:
    feed: str
    landing_key: str
    outcome: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    reason: str | None = None

    @property
    def line(self) -> str:
        detail = (f"{self.rows_in:,} rows, {self.rows_valid:,} valid, {self.rows_quarantined:,} quarantined"
                  if self.outcome == "loaded" else self.reason)
        return f"{self.feed:15} {self.landing_key.rsplit('/', 1)[-1]:34} {self.outcome}: {detail}"


def delivery_from_event(event: dg.EventLogEntry) -> Delivery | None:
    """A delivery's outcome, from the observation of its landing asset."""
    dagster_event = event.dagster_event
    if dagster_event is None or dagster_event.event_type_value != "ASSET_OBSERVATION":
        return None
    observation = dagster_event.event_specific_data.asset_observation
    meta = {k: v.value for k, v in observation.metadata.items()}
    if "outcome" not in meta:
        return None
    return Delivery(observation.asset_key.path[-1].removeprefix("landing_"), meta["landing_key"], meta["outcome"],
                    meta.get("rows_in", 0), meta.get("rows_valid", 0), meta.get("rows_quarantined", 0),
                    meta.get("reason"))


@dataclass
class RunOutcome:
    """What a finished run did, from its events. Plain data: a run made in a forked process sends it back."""

    success: bool
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)  # "<asset>:<check> (<severity>)"
    reason: str | None = None  # why it failed

    @classmethod
    def of(cls, result: dg.ExecuteInProcessResult) -> RunOutcome:
        evaluations = result.get_asset_check_evaluations()
        return cls(result.success, [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()],
                   sum(e.passed for e in evaluations),
                   [f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value})"
                    for e in evaluations if not e.passed],
                   None if result.success else failure_reason(result))


@dataclass
class RunSummary:
    deliveries: list[Delivery] = field(default_factory=list)
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)  # "<what>: <why>"
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    log_path: Path | None = None
    extra_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_runs

    def add_run(self, outcome: RunOutcome, label: str) -> None:
        self.runs += 1
        self.materialized += outcome.materialized
        self.checks_passed += outcome.checks_passed
        self.checks_failed += outcome.checks_failed
        if not outcome.success:
            self.failed_runs.append(f"{label}: {outcome.reason}")


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The first line of the first step's error: what a person needs to act on (a locked warehouse, a
    read-only lake), without the traceback."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause and "dagster._core.errors" in (error.cls_name or "") + error.message:
                error = error.cause
            lines = [line.strip() for line in error.message.splitlines() if line.strip()]
            if "Errors parsed from dbt logs:" in lines:  # dbt's own words (an error, a failed test), not the command
                parsed = [ANSI_COLOR.sub("", line) for line in lines[lines.index("Errors parsed from dbt logs:") + 1:]]
                lines = [line for line in parsed
                         if ("Error" in line or " FAIL " in line) and not line.startswith("Failure in")] or lines
            text = lines[0] if lines else error.cls_name
            kind, sep, rest = text.partition(": ")
            return f"{kind.rsplit('.', 1)[-1]}: {rest}" if sep and " " not in kind else text
    return "the run failed (see the log file)"


class Progress:
    """A status line that updates in place on a terminal; elsewhere one line per finished step."""

    def __init__(self, echo: Echo, stream=None):
        self.echo = echo
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._width = 0

    def status(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + text.ljust(self._width)[:160])
            self.stream.flush()
            self._width = min(len(text), 160)

    def line(self, text: str) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.echo(text)


def print_summary(summary: RunSummary, lake_lines: list[str], warehouse_lines: list[str], echo: Echo,
                  index: Path | None) -> None:
    echo("")
    echo("Summary")
    for line in lake_lines + warehouse_lines:
        echo(line)
    if index is not None:
        echo(f"  dashboards: {index}  (open it in a browser)")
    for line in summary.extra_lines:
        echo(line)
    echo(f"  runs this time: {summary.runs} ({len(summary.failed_runs)} failed), "
         f"assets materialized: {len(summary.materialized)}")
    echo(f"  checks this time: {summary.checks_passed} passed, {len(summary.checks_failed)} did not pass")
    failed = sorted(set(summary.checks_failed))
    for name in failed[:15]:
        echo(f"    - {name}")
    if len(failed) > 15:
        echo(f"    ... and {len(failed) - 15} more (see the Dagster UI: make dev)")
    for label in summary.failed_runs:
        echo(f"  FAILED: {label}")
    if summary.log_path:
        echo(f"  Dagster and dbt output of this run: {summary.log_path}")
