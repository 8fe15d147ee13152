"""The whole Definitions load, and the asset graph is what review last saw.

The snapshot lists every asset's key, group, owners, upstream keys, automation and
freshness; a change to the graph changes the snapshot file, so it shows in review.
Rewrite it on purpose with `UPDATE_SNAPSHOTS=1 make test`.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from fe_platform.definitions import build_definitions
from fe_platform.lib.feeds import FEEDS
from fe_platform.settings import load_settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    settings = load_settings({"FE_HOME": str(tmp_path_factory.mktemp("home"))})
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    return defs.resolve_asset_graph()


def describe(graph) -> dict:
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "automation": str(node.automation_condition.get_label() or node.automation_condition.name)
            if node.automation_condition else None,
            "freshness": type(node.freshness_policy).__name__ if node.freshness_policy else None,
            "checks": sorted(c.name for c in graph.get_check_keys_for_assets({key})),
        }
    return out


def test_asset_graph_matches_the_reviewed_snapshot(graph):
    current = describe(graph)
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_has_an_owner_and_a_group(graph):
    for key, node in describe(graph).items():
        assert node["owners"], f"{key} has no owner"
        assert node["group"] and node["group"] != "default", f"{key} has no group"


def test_every_feed_has_landing_raw_validated_with_checks_and_freshness(graph):
    assets = describe(graph)
    for feed in FEEDS:
        assert assets[f"raw_{feed}"]["deps"] == [f"landing_{feed}"]
        assert assets[f"validated_{feed}"]["deps"] == [f"raw_{feed}"]
        assert assets[f"validated_{feed}"]["group"] == "validated"
        assert assets[f"raw_{feed}"]["group"] == "raw"
        assert {"quarantine_by_rule", "row_conservation", "no_pii_in_clear", "schema_drift"} <= set(
            assets[f"validated_{feed}"]["checks"])
        assert assets[f"validated_{feed}"]["freshness"] == "CronFreshnessPolicy"
        expected_partitions = "WeeklyPartitionsDefinition" if feed == "iqvia_rx" else "DailyPartitionsDefinition"
        assert assets[f"validated_{feed}"]["partitions"] == expected_partitions


def test_every_asset_the_platform_builds_has_a_freshness_policy(graph):
    missing = [key for key, node in describe(graph).items()
               if not key.startswith("landing_") and node["freshness"] is None]
    assert missing == []


def test_the_daemon_evaluates_automation_without_anyone_starting_a_sensor(tmp_path):
    """`platform_refresh` runs by itself (a fresh `make dev` would otherwise ingest and never refresh) and
    Dagster's own evaluator of the same conditions stays stopped, so that nothing is loaded twice."""
    defs = build_definitions(load_settings({"FE_HOME": str(tmp_path)}))
    repository = defs.get_repository_def()
    assert repository.get_sensor_def("platform_refresh").default_status == dg.DefaultSensorStatus.RUNNING
    dagsters = [s for s in repository.sensor_defs if isinstance(s, dg.AutomationConditionSensorDefinition)]
    assert [(s.name, s.default_status) for s in dagsters] == [("dagster_automation", dg.DefaultSensorStatus.STOPPED)]
    graph = defs.resolve_asset_graph()
    automated = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None}
    assert automated <= dagsters[0].asset_selection.resolve(graph)  # else Dagster adds a default sensor


def test_the_dbt_resource_knows_its_version_without_starting_dbt(tmp_path, monkeypatch):
    import importlib.metadata

    from fe_platform.defs.warehouse.project import dbt_resource

    def no_process(*args, **kwargs):
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr("dagster_dbt.core.resource.check_output", no_process)
    dbt = dbt_resource(load_settings({"FE_HOME": str(tmp_path)}))
    assert str(dbt._cli_version) == importlib.metadata.version("dbt-core")


def test_a_dbt_invocation_opens_no_dbt_adapter_in_this_process(tmp_path):
    from fe_platform.defs.warehouse.project import dbt_resource, load_manifest

    dbt = dbt_resource(load_settings({"FE_HOME": str(tmp_path)}))
    invocation = dbt.cli(["ls", "--select", "stg_sap__billing_lines"], manifest=load_manifest(),
                         target_path=tmp_path / "target")
    assert invocation.wait().is_successful()
    assert invocation.adapter is None
