"""The incremental facts' windows: a lake load that commits while a dbt build runs is taken by the next
build, so no delivery falls between two windows (and the facts keep equal to a full rebuild)."""

from datetime import date

import dagster as dg
import duckdb

from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.runner import dagster_instance, run_platform
from fe_platform.runner.execution import Runner
from fe_platform.sample_data.generator import generate
from fe_platform.settings import load_settings
from fe_platform_tests.test_ingestion import CLEAN, delimited, land

BILLING = dg.AssetKey(["marts", "fct_billing_line"])
LAKE_SAP = dg.AssetKey(["warehouse", "lake", "sap_billing"])


def billed(settings, document: str) -> int:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute("select count(*) from marts.fct_billing_line where billing_document = ?",
                           [document]).fetchone()[0]


def test_a_load_during_a_build_is_taken_by_the_next_build(tmp_path, monkeypatch):
    settings = load_settings({"FE_HOME": str(tmp_path / "home")})
    lake = lake_from_settings(settings)
    generate(lake, date(2026, 11, 13), weeks=1, hcps=40, seed=3, defect_rate=0)
    assert run_platform(settings, lambda _: None).ok
    instance, defs = dagster_instance(settings), build_definitions(settings)
    runner = Runner(settings, defs, instance, echo=lambda _: None)

    line = dict(CLEAN["sap_billing"], billing_document="9777777777", billing_date="2026-11-14", currency="EUR")
    land(lake, "sap_billing", "SAP_BILLING_20261114.csv", delimited("sap_billing", [line]))
    runner.ingest()
    job = defs.resolve_implicit_global_asset_job_def()
    range_tags = {"dagster/asset_partition_range_start": "2026-11-14",
                  "dagster/asset_partition_range_end": "2026-11-14"}

    # The fact's build computes its window, then the SAP day is loaded while dbt runs.
    from fe_platform.defs.warehouse import project

    prepared = project.DbtRun.target_path

    def load_meanwhile(self):
        runner.execute(job, "load", range_tags, asset_selection=[LAKE_SAP])
        return prepared(self)

    monkeypatch.setattr(project.DbtRun, "target_path", load_meanwhile)
    runner.execute(job, "build", {}, asset_selection=[BILLING])
    monkeypatch.undo()
    assert runner.summary.ok, runner.summary.failed_runs
    assert billed(settings, "9777777777") == 0  # loaded after the window was taken

    assert run_platform(settings, lambda _: None).ok  # the next refresh takes it
    assert billed(settings, "9777777777") == 1
