"""The latest results of the asset checks upstream of a dashboard, read from the Dagster instance.

The walk goes through the asset graph from the dashboard back to the landing feeds, and takes
every check of every asset on the way: ingestion checks of `validated_<feed>` (partitioned),
dbt tests of the warehouse models (unpartitioned). What counts and how the results add up is
`fe_platform.lib.dashboards.check_status` (the rule is written there): here, per check and
partition, the latest completed evaluation, or "did not complete" when the latest run failed
before the check reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from fe_platform.lib.dashboards.check_status import ERROR, CheckResult, QualityStatus, summarize

COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
HISTORY_PAGE = 1000


def upstream_check_keys(asset_graph, asset_keys: Iterable[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """Every asset check of `asset_keys` and of every asset upstream of them, through the lineage."""
    assets = set()
    for key in asset_keys:
        assets |= asset_graph.get_ancestor_asset_keys(key, include_self=True)
    return sorted(asset_graph.get_check_keys_for_assets(assets), key=lambda k: k.to_user_string())


def _from_record(record: AssetCheckExecutionRecord) -> CheckResult:
    evaluation = record.evaluation
    return CheckResult(
        check=record.key.to_user_string(),
        partition=record.partition,
        passed=bool(evaluation.passed),
        severity=evaluation.severity.value,
        evaluated_at=datetime.fromtimestamp(record.event.timestamp, UTC),
    )


def _latest_completed(storage, key: dg.AssetCheckKey, partitions: set[str | None]
                      ) -> dict[str | None, AssetCheckExecutionRecord]:
    """The latest completed evaluation of each of `partitions`, newest first through the check's history,
    stopping as soon as every partition is found (a partition never completed is simply not found)."""
    found: dict[str | None, AssetCheckExecutionRecord] = {}
    cursor = None
    while partitions - found.keys():
        page = storage.get_asset_check_execution_history(key, limit=HISTORY_PAGE, cursor=cursor, status=COMPLETED)
        for record in page:
            if record.partition in partitions and record.partition not in found:
                found[record.partition] = record
        if len(page) < HISTORY_PAGE:
            break
        cursor = page[-1].id
    return found


def latest_check_results(instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]) -> list[CheckResult]:
    """Per check and partition, the latest result (see the module's docstring)."""
    if not check_keys:
        return []
    storage = instance.event_log_storage
    latest = storage.get_asset_check_partition_info(list(check_keys))
    planned_run_ids = {i.latest_planned_run_id for i in latest
                       if i.latest_execution_status == AssetCheckExecutionRecordStatus.PLANNED}
    runs = {r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=list(planned_run_ids)))} \
        if planned_run_ids else {}

    results = []
    wanted: dict[dg.AssetCheckKey, set[str | None]] = {}  # partitions whose latest completed result must be read
    for info in latest:
        name = info.check_key.to_user_string()
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED:
            results.append(CheckResult(check=name, partition=info.partition_key, passed=True))
            continue
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.PLANNED:
            run = runs.get(info.latest_planned_run_id)
            if run is not None and run.dagster_run.status == dg.DagsterRunStatus.FAILURE:
                ended = datetime.fromtimestamp(run.end_time, UTC) if run.end_time else None
                results.append(CheckResult(check=name, partition=info.partition_key, passed=False, severity=ERROR,
                                           evaluated_at=ended, completed=False))
                continue
            # still running, or skipped (e.g. dagster-dbt reports a partitioned fact's tests unpartitioned):
            # the partition's previous completed result, if it has one, stands
        wanted.setdefault(info.check_key, set()).add(info.partition_key)
    for key, partitions in wanted.items():
        results.extend(_from_record(r) for r in _latest_completed(storage, key, partitions).values())
    return results


class UpstreamResults:
    """The latest results of every check upstream of any dashboard, read once per run and shared by the run's
    dashboards (their checks overlap almost whole; nothing upstream of them changes while they run)."""

    def __init__(self, check_keys: Iterable[dg.AssetCheckKey]):
        self.check_keys = sorted(set(check_keys), key=lambda k: k.to_user_string())
        self._run_id: str | None = None
        self._results: list[CheckResult] = []

    def quality_status(self, instance: dg.DagsterInstance, run_id: str,
                       check_keys: Sequence[dg.AssetCheckKey]) -> QualityStatus:
        if run_id != self._run_id:
            self._results, self._run_id = latest_check_results(instance, self.check_keys), run_id
        names = {k.to_user_string() for k in check_keys}
        return summarize([r for r in self._results if r.check in names])
