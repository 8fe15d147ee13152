"""The daemon's `platform_refresh` sensor: the automation conditions, planned as `fe-platform run` plans them.

Dagster's own automation sensor starts a run per unbroken partition range: weekday deliveries over three
weeks are three lake loads per feed, each a process that loads the definitions. Here the loads of a tick
are one run per partitioning, and what depends on them waits for a later tick instead of running beside them.
"""

import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib.zones import committed_partitions
from fe_platform.runner import dagster_instance
from fe_platform.runner.execution import Runner
from fe_platform.runner.planning import RANGE_END, RANGE_START
from fe_platform.sample_data.generator import generate
from fe_platform.settings import load_settings

SAP_LAKE = dg.AssetKey(["warehouse", "lake", "sap_billing"])
FACT = dg.AssetKey(["marts", "fct_billing_line"])


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Three weeks of every feed, ingested, nothing loaded into the warehouse yet."""
    settings = load_settings({"FE_HOME": str(tmp_path_factory.mktemp("home"))})
    generate(lake_from_settings(settings), date(2026, 11, 20), weeks=3, hcps=60, seed=3, defect_rate=0.0)
    defs = build_definitions(settings)
    instance = dagster_instance(settings)
    runner = Runner(settings, defs, instance, echo=lambda _: None)
    runner.ingest()
    assert runner.summary.ok, runner.summary.failed_runs
    return settings, defs, instance


def tick(defs, instance, cursor=None) -> dg.SensorResult:
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def("platform_refresh")
    return sensor(dg.build_sensor_context(instance=instance, repository_def=repository, cursor=cursor,
                                          resources={"lake": defs.resources["lake"]}))


def test_scattered_partitions_load_in_one_run_and_what_follows_waits(ingested):
    settings, defs, instance = ingested
    sap_days = committed_partitions(lake_from_settings(settings), "sap_billing")
    graph = defs.resolve_asset_graph()
    assert len(graph.get(SAP_LAKE).partitions_def.subset_with_partition_keys(sap_days)
               .get_partition_key_ranges(graph.get(SAP_LAKE).partitions_def)) >= 3  # weekends break the range

    first = tick(defs, instance)
    loads = [r for r in first.run_requests if SAP_LAKE in r.asset_selection]
    assert len(loads) == 1
    assert (loads[0].tags[RANGE_START], loads[0].tags[RANGE_END]) == (sap_days[0], sap_days[-1])
    # one run per partitioning for all lake tables, and nothing downstream of them started beside them
    assert len(first.run_requests) <= 2
    assert all(key.path[:2] == ["warehouse", "lake"] for r in first.run_requests for key in r.asset_selection)

    job = defs.resolve_implicit_global_asset_job_def()
    for request in first.run_requests:
        assert job.execute_in_process(instance=instance, asset_selection=request.asset_selection,
                                      tags=request.tags, raise_on_error=False).success
    loaded = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=SAP_LAKE), limit=1000).records
    assert sorted({r.partition_key for r in loaded}) == sap_days

    second = tick(defs, instance, first.cursor)
    [refresh] = second.run_requests  # what waited, now that nothing upstream of it is planned or running
    assert FACT in refresh.asset_selection and dg.AssetKey(["dashboards", "index"]) in refresh.asset_selection
    assert RANGE_START not in refresh.tags


@pytest.mark.parametrize("running", ["refresh", "ingestion"])
def test_a_run_in_progress_holds_back_what_depends_on_it(ingested, running):
    _, defs, instance = ingested
    if running == "refresh":  # a run that names its assets
        run = instance.create_run_for_job(defs.resolve_implicit_global_asset_job_def(), asset_selection={SAP_LAKE},
                                          status=dg.DagsterRunStatus.STARTED)
    else:  # an ingestion run of the feed: its job names them
        run = instance.create_run_for_job(defs.resolve_job_def("ingest_sap_billing_job"),
                                          status=dg.DagsterRunStatus.STARTED)
    try:
        result = tick(defs, instance)
        assert not any(FACT in r.asset_selection for r in result.run_requests)
        assert "marts/fct_billing_line" in result.cursor
    finally:
        instance.report_run_failed(run)


def test_what_waits_for_an_asset_the_code_no_longer_has_is_let_go(ingested):
    _, defs, instance = ingested
    result = tick(defs, instance, '{"waiting": {"marts/fct_retired": [null]}}')
    assert "fct_retired" not in (result.cursor or "")


def ingestion_ran(defs, instance, feed: str, status: dg.DagsterRunStatus) -> None:
    instance.create_run_for_job(defs.resolve_job_def(f"ingest_{feed}_job"), tags={"fe_platform/feed": feed},
                                status=status)


def test_what_follows_a_feed_waits_for_its_landed_deliveries_unless_they_are_stuck(ingested):
    """On a backlog (a fresh home), the warehouse is not built once per feed that the sensors reach: what follows
    a feed with landed deliveries not ingested yet waits for them. Deliveries that wait for a fix hold nothing
    back: those of a feed whose last ingestion run failed, and those of a feed whose sensor waits for such a
    reference feed (SAP billing waits for the FX rates)."""
    from fe_platform.defs.warehouse.automation import BACKLOG_HOLD_AT_MOST, busy_assets

    settings, defs, instance = ingested
    lake = lake_from_settings(settings)

    def sap_held() -> bool:
        return dg.AssetKey("validated_sap_billing") in busy_assets(instance, defs.get_repository_def(), lake)[0]

    latest = sorted(o.key for o in lake.list("landing/sap_billing/"))[-1]
    landed = "landing/sap_billing/SAP_BILLING_20261121.csv"
    assert not sap_held()
    lake.put_bytes(lake.read_bytes(latest).replace(b"\n9", b"\n8", 1), landed)
    fx = sorted(o.key for o in lake.list("landing/fx_rates/"))[-1]
    fx_bytes, fx_stat = lake.read_bytes(fx), Path(settings.lake_root, fx).stat()
    try:
        held = tick(defs, instance)
        assert sap_held() and not any(FACT in r.asset_selection for r in held.run_requests)
        assert "marts/fct_billing_line" in held.cursor
        # a backlog holds back the whole warehouse, not only what follows SAP
        busy, began = busy_assets(instance, defs.get_repository_def(), lake)
        assert dg.AssetKey("validated_iqvia_rx") in busy
        # for a quarter of an hour: a steady stream of deliveries must not hold the warehouse back for ever
        busy, _ = busy_assets(instance, defs.get_repository_def(), lake, began - BACKLOG_HOLD_AT_MOST)
        assert dg.AssetKey("validated_sap_billing") in busy and dg.AssetKey("validated_iqvia_rx") not in busy

        ingestion_ran(defs, instance, "sap_billing", dg.DagsterRunStatus.FAILURE)
        assert not sap_held()
        ingestion_ran(defs, instance, "sap_billing", dg.DagsterRunStatus.SUCCESS)  # fixed: the file is next
        assert sap_held()

        lake.put_bytes(fx_bytes + b"\n", fx)  # a correction of the FX rates, whose ingestion then fails
        ingestion_ran(defs, instance, "fx_rates", dg.DagsterRunStatus.FAILURE)
        assert not sap_held()
        ingestion_ran(defs, instance, "fx_rates", dg.DagsterRunStatus.SUCCESS)  # a retry: the FX file is next
        assert sap_held()
    finally:
        lake.delete([landed])
        lake.put_bytes(fx_bytes, fx)
        os.utime(Path(settings.lake_root, fx), ns=(fx_stat.st_atime_ns, fx_stat.st_mtime_ns))  # the file as logged


def test_an_ingestion_run_not_started_yet_holds_back_the_warehouse_and_one_in_progress_what_follows_it(ingested):
    from fe_platform.defs.warehouse.automation import busy_assets

    settings, defs, instance = ingested
    lake, repository = lake_from_settings(settings), defs.get_repository_def()
    run = instance.create_run_for_job(defs.resolve_job_def("ingest_sfdc_call_job"),
                                      tags={"fe_platform/feed": "sfdc_call"})  # not started: as queued
    try:
        assert dg.AssetKey("validated_iqvia_rx") in busy_assets(instance, repository, lake)[0]
        instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_START.value,
                                                      job_name=run.job_name), run.run_id)  # dequeued: it runs
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        busy, _ = busy_assets(instance, repository, lake)
        assert dg.AssetKey("validated_sfdc_call") in busy and dg.AssetKey("validated_iqvia_rx") not in busy
    finally:
        instance.report_run_failed(instance.get_run_by_id(run.run_id))


def test_a_tick_evaluates_again_only_after_a_new_event_or_a_minute(ingested, monkeypatch):
    """The sensor ticks every 5 s: a quiet platform must not pay an evaluation per tick."""
    from fe_platform.defs.warehouse import automation

    _, defs, instance = ingested
    evaluations = []

    def nothing_stale(repository, instance, cursor):
        evaluations.append(cursor)
        return {}, cursor

    monkeypatch.setattr(automation, "evaluate", nothing_stale)
    skipped = [tick(defs, instance).skip_message for _ in range(3)]
    assert len(evaluations) == 1 and skipped[0] == "nothing is stale" and "no event since" in skipped[2]

    instance.report_runless_asset_event(dg.AssetMaterialization("an_asset_outside_the_platform"))
    tick(defs, instance)
    tick(defs, instance)
    assert len(evaluations) == 2  # the new event is seen, once

    monkeypatch.setattr(automation, "QUIET_FOR_AT_MOST", 0)  # a minute later: evaluated, event or not
    tick(defs, instance)
    assert len(evaluations) == 3
