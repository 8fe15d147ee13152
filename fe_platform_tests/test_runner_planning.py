"""The runner's planning over an asset graph: pure functions, tested on a small graph without an instance."""

import dagster as dg

from fe_platform.runner.planning import PlannedRun, plan_runs, with_downstream

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
