"""Planning a one-shot refresh over the asset graph: pure functions, no instance, no I/O.

Automation says which assets (and partitions) are stale; a one-shot run wants the whole chain now, in
dependency order, in as few runs as a Dagster run allows: one run holds assets of one partitioning
(plus unpartitioned ones downstream of nothing in another stage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

Requested = Mapping[dg.AssetKey, set[str | None]]  # asset -> partition keys (None: unpartitioned)


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


def plan_runs(graph, requested: Requested) -> list[PlannedRun]:
    """Requested assets in dependency order, cut into runs of one partitioning each."""
    upstream: dict[dg.AssetKey, set] = {}

    def ancestors(key):
        if key not in upstream:
            upstream[key] = set()
            for parent in graph.get(key).parent_keys:
                upstream[key] |= {parent} | ancestors(parent)
        return upstream[key]

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
