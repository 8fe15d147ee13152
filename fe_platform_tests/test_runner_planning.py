"""The runner's planning over an asset graph: pure functions, tested on a small graph without an instance."""

import dagster as dg

from fe_platform.runner.planning import RANGE_END, RANGE_START, PlannedRun, plan_runs, runs_to_start, with_downstream

DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01")
WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2026-11-06", day_offset=5)
EAGER = dg.AutomationCondition.eager()


def asset(name: str, deps=(), partitions=None, automated=True):
    return dg.AssetSpec(name, deps=list(deps), partitions_def=partitions,
                        automation_condition=EAGER if automated else None)


def graph():
    specs = [
        asset("validated_sap", partitions=DAILY, automated=False),
        asset("validated_rx", partitions=WEEKLY, automated=False),
        asset("lake_sap", ["validated_sap"], DAILY),
        asset("lake_rx", ["validated_rx"], WEEKLY),
        asset("stg_sap", ["lake_sap"]),
        asset("stg_rx", ["lake_rx"]),
        asset("fct", ["stg_sap", "stg_rx"]),
        asset("rpt", ["fct"]),
        asset("dashboard", ["rpt"]),
        asset("notes", ["rpt"], automated=False),  # nothing automates it: a one-shot run leaves it alone
    ]
    return dg.Definitions(assets=specs).resolve_asset_graph()


def key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def test_what_follows_a_requested_partition_is_requested_too():
    out = with_downstream(graph(), {key("lake_sap"): {"2026-11-02", "2026-11-03"}})
    assert out[key("lake_sap")] == {"2026-11-02", "2026-11-03"}
    assert {k: v for k, v in out.items() if k != key("lake_sap")} == {
        key("stg_sap"): {None}, key("fct"): {None}, key("rpt"): {None}, key("dashboard"): {None}}


def test_loads_run_before_one_run_of_everything_unpartitioned_downstream():
    requested = with_downstream(graph(), {key("lake_sap"): {"2026-11-03", "2026-11-02"}, key("lake_rx"): {"2026-11-06"},
                                          key("stg_rx"): {None}})
    runs = plan_runs(graph(), requested)
    assert runs[-1] == PlannedRun(tuple(key(n) for n in ("dashboard", "fct", "rpt", "stg_rx", "stg_sap")), ())
    loads = {run.assets: run.partitions for run in runs[:-1]}
    assert loads == {(key("lake_sap"),): ("2026-11-02", "2026-11-03"), (key("lake_rx"),): ("2026-11-06",)}
    assert runs[0].label in ("lake_sap [2026-11-02..2026-11-03]", "lake_rx [2026-11-06..2026-11-06]")


def test_nothing_requested_plans_nothing():
    assert plan_runs(graph(), with_downstream(graph(), {})) == []


def test_scattered_partitions_are_one_run_over_their_range():
    """Weekday deliveries over three weeks: one load, not a run per unbroken range as Dagster's automation plans."""
    days = {"2026-11-02", "2026-11-03", "2026-11-09", "2026-11-10", "2026-11-16"}
    [run] = plan_runs(graph(), {key("lake_sap"): days})
    assert run.partitions == tuple(sorted(days))
    assert run.tags == {RANGE_START: "2026-11-02", RANGE_END: "2026-11-16"}


def test_a_run_starts_only_when_nothing_upstream_is_planned_before_it_or_in_progress():
    requested = {key("lake_sap"): {"2026-11-02"}, key("lake_rx"): {"2026-11-06"}, key("stg_rx"): {None},
                 key("rpt"): {None}}
    start, waiting = runs_to_start(graph(), requested, busy=set())
    # stg_rx needs lake_rx (planned in this tick), rpt needs both: they wait; the loads start side by side
    assert sorted(run.assets for run in start) == [(key("lake_rx"),), (key("lake_sap"),)]
    assert waiting == {key("stg_rx"): {None}, key("rpt"): {None}}

    start, waiting = runs_to_start(graph(), waiting, busy={key("lake_sap")})
    assert start == [] and waiting == {key("stg_rx"): {None}, key("rpt"): {None}}  # lake_sap still loading

    start, waiting = runs_to_start(graph(), waiting, busy=set())
    assert [run.assets for run in start] == [(key("rpt"), key("stg_rx"))] and waiting == {}


def test_a_request_for_an_asset_in_progress_waits_for_it():
    start, waiting = runs_to_start(graph(), {key("stg_sap"): {None}}, busy={key("stg_sap")})
    assert start == [] and waiting == {key("stg_sap"): {None}}
