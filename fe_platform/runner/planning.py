"""Planning refreshes over the asset graph: pure functions, no instance, no I/O.

Automation says which assets (and partitions) are stale; they go in dependency order into as few runs as
a Dagster run allows: one run holds assets of one partitioning (plus unpartitioned ones downstream of
nothing in another stage), over one partition range, however scattered its partitions are. A one-shot
`fe-platform run` wants the whole chain now and runs the plan in order; the daemon's `platform_refresh`
sensor starts the runs that depend on nothing planned or in progress and keeps the rest for a later tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dagster as dg

Requested = Mapping[dg.AssetKey, set[str | None]]  # asset -> partition keys (None: unpartitioned)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def range_tags(partitions: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The tags of a run over the partitions from the first to the last of `partitions` (sorted)."""
    return {RANGE_START: partitions[0], RANGE_END: partitions[-1]} if partitions else {}


@dataclass(frozen=True)
class PlannedRun:
    assets: tuple[dg.AssetKey, ...]
    partitions: tuple[str, ...]  # the partition keys requested; empty for an unpartitioned run

    @property
    def label(self) -> str:
        names = ", ".join(k.to_user_string() for k in self.assets[:3])
        more = f" +{len(self.assets) - 3}" if len(self.assets) > 3 else ""
        span = f" [{self.partitions[0]}..{self.partitions[-1]}]" if self.partitions else ""
        return f"{names}{more}{span}"

    @property
    def tags(self) -> dict[str, str]:
        return range_tags(self.partitions)


def with_downstream(graph, requested: Requested) -> dict[dg.AssetKey, set]:
    """What is requested plus everything downstream of it that automation would request on later ticks.

    Automation requests across a change of partitioning one tick at a time (a partitioned lake table
    this tick, the unpartitioned models over it the next); a one-shot run wants the whole chain now.
    """
    out = {k: set(v) for k, v in requested.items()}
    frontier = list(requested)
    while frontier:
        key = frontier.pop()
        for child in graph.get(key).child_keys:
            node = graph.get(child)
            if node.automation_condition is None:
                continue
            same = node.partitions_def is not None and node.partitions_def == graph.get(key).partitions_def
            partitions = out[key] if same else ({None} if node.partitions_def is None else set())
            if not partitions or partitions <= out.get(child, set()):
                continue
            out.setdefault(child, set()).update(partitions)
            frontier.append(child)
    return out


def ancestry(graph) -> Callable[[dg.AssetKey], set[dg.AssetKey]]:
    """`ancestors(key)`: every asset upstream of `key`, remembered."""
    upstream: dict[dg.AssetKey, set] = {}

    def ancestors(key):
        if key not in upstream:
            upstream[key] = set()
            for parent in graph.get(key).parent_keys:
                upstream[key] |= {parent} | ancestors(parent)
        return upstream[key]

    return ancestors


def plan_runs(graph, requested: Requested) -> list[PlannedRun]:
    """Requested assets in dependency order, cut into runs of one partitioning each."""
    ancestors = ancestry(graph)

    def kind(key):
        partitions = graph.get(key).partitions_def
        return "" if partitions is None else str(partitions)

    out = []
    remaining = set(requested)
    while remaining:
        # Partitioned loads first, so that what is unpartitioned downstream runs together, in one run.
        ready = sorted((k for k in remaining if not (ancestors(k) & remaining)), key=lambda k: (not kind(k), kind(k)))
        group_kind = kind(ready[0])
        stage = {k for k in ready if kind(k) == group_kind}
        grew = True
        while grew:
            more = {k for k in remaining - stage if kind(k) == group_kind and ancestors(k) & remaining <= stage}
            grew = bool(more)
            stage |= more
        partitions = tuple(sorted({p for k in stage for p in requested[k] if p is not None}))
        out.append(PlannedRun(tuple(sorted(stage, key=str)), partitions))
        remaining -= stage
    return out


def runs_to_start(graph, requested: Requested, busy: set[dg.AssetKey]) -> tuple[list[PlannedRun], Requested]:
    """Of the planned runs, those that can start now, and what waits (asset -> partitions).

    A run waits while an asset it builds, or one upstream of them, is in an earlier run of the plan or in
    a run in progress (`busy`): started together, the queue would run them side by side, out of order.
    Nothing requested is dropped: what waits is planned again, with what is requested then."""
    ancestors = ancestry(graph)
    start, waiting = [], {}
    held = set(busy)
    for run in plan_runs(graph, requested):
        needs = set(run.assets).union(*(ancestors(k) for k in run.assets))
        if needs & held:
            for key in run.assets:
                waiting.setdefault(key, set()).update(requested[key])
        else:
            start.append(run)
        held |= set(run.assets)
    return start, waiting
