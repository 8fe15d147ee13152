"""Ingestion runs side by side, as the daemon's run queue lets them go: one feed's runs in order, a feed after the
feeds it reads (its reference data), different feeds at once up to a number of slots.

Each run goes in a forked child of `fe-platform run`: the child starts with the definitions already built (a
new process would spend seconds building them again) and makes its run in-process against the same instance.
What it ingested comes back over a pipe, delivery by delivery, and then the run's outcome. A child that dies
before it reports leaves its run marked failed, so the next `fe-platform run` asks for its deliveries again.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import dagster as dg

from fe_platform.lib.feeds import Feed
from fe_platform.runner.report import Delivery, RunOutcome

JOIN_SECONDS = 60  # for the children still at work when `fe-platform run` is stopped: their runs end themselves


@dataclass(frozen=True, eq=False)
class IngestionRun:
    feed: Feed
    label: str
    run_id: str
    make: Callable[[Callable[[Delivery], None]], RunOutcome]  # in the child: makes the run, tells each delivery


def run_slots(instance: dg.DagsterInstance) -> int:
    """How many runs go at once: the instance's run queue limit, at most one per core (one machine does them
    all); one for an in-memory instance, which a forked process cannot write to, or where processes cannot fork."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    if instance.is_ephemeral or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = os.cpu_count() or 1
    coordinator = instance.run_coordinator
    limit = coordinator.get_run_queue_config().max_concurrent_runs \
        if isinstance(coordinator, QueuedRunCoordinator) else cores
    return max(1, min(cores, limit if limit >= 0 else cores))


def waits_for(run: IngestionRun, before: list[IngestionRun]) -> bool:
    """Whether `run` must wait for one of `before` (earlier in the plan, or at work): the same feed's, or its
    reference data's."""
    return any(other.feed.name == run.feed.name or other.feed.name in run.feed.reference_feeds for other in before)


class _Child:
    """One run in a forked process, and the pipe it reports on."""

    def __init__(self, context, run: IngestionRun):
        self.run, self.outcome = run, None
        self.pipe, child_end = context.Pipe(duplex=False)
        sys.stdout.flush()  # what is buffered would otherwise be written twice, once by each process
        sys.stderr.flush()
        self.process = context.Process(target=self._make, args=(child_end,), name=f"fe-platform {run.label}")
        self.process.start()
        child_end.close()

    def _make(self, pipe: Connection) -> None:
        try:
            outcome = self.run.make(lambda delivery: pipe.send(("delivery", delivery)))
        except Exception as exc:  # noqa: BLE001 (reported as the run's failure, like any other)
            outcome = RunOutcome(False, reason=f"{type(exc).__name__}: {exc}")
        pipe.send(("outcome", outcome))
        pipe.close()

    def lost(self, instance: dg.DagsterInstance) -> RunOutcome:
        """The outcome of a child that died before it reported: its run, if unfinished, is marked failed."""
        why = f"its process ended (exit code {self.process.exitcode}) before the run did"
        run = instance.get_run_by_id(self.run.run_id)
        if run is not None and not run.is_finished:
            instance.report_run_failed(run, why)
        return RunOutcome(False, reason=why)


def run_side_by_side(runs: list[IngestionRun], slots: int, instance: dg.DagsterInstance,
                     on_delivery: Callable[[Delivery], None],
                     on_outcome: Callable[[IngestionRun, RunOutcome], None]) -> None:
    """Make `runs` (in plan order) in forked children, at most `slots` at once."""
    context = multiprocessing.get_context("fork")
    pending: list[IngestionRun] = list(runs)
    working: dict[Connection, _Child] = {}
    ended = True  # a run ended (or none started yet): what waited may start
    try:
        while pending or working:
            for run in list(pending) if ended else []:
                before = [child.run for child in working.values()] + pending[:pending.index(run)]
                if len(working) < slots and not waits_for(run, before):
                    pending.remove(run)
                    child = _Child(context, run)
                    working[child.pipe] = child
            ended = False
            for pipe in wait(list(working)):
                child = working[pipe]
                try:
                    kind, payload = pipe.recv()
                except (EOFError, OSError):  # the child is gone, after its outcome or without one (or mid-message)
                    del working[pipe]
                    pipe.close()
                    child.process.join()
                    on_outcome(child.run, child.outcome or child.lost(instance))
                    ended = True
                    continue
                if kind == "delivery":
                    on_delivery(payload)
                else:
                    child.outcome = payload
    finally:
        for child in working.values():
            child.process.join(JOIN_SECONDS)
            if child.process.is_alive():
                child.process.terminate()
