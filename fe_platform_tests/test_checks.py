"""The asset checks of validated partitions pass on good data and fail on bad, run as Dagster checks."""

import json

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib.zones import current_version
from fe_platform.settings import load_settings
from fe_platform_tests.test_ingestion import CLEAN, delimited, iqvia_rows, land

PARTITION = "2026-11-20"
CHECKS = ["quarantine_by_rule", "row_conservation", "no_pii_in_clear", "schema_drift", "ndc11_in_product_master",
          "npi_in_sfdc_account"]


@pytest.fixture
def platform(tmp_path):
    settings = load_settings({"FE_HOME": str(tmp_path)})
    lake = lake_from_settings(settings)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        yield settings, lake, defs, instance


def ingest(defs, instance, feed: str, partition: str = PARTITION):
    result = defs.resolve_job_def(f"ingest_{feed}_job").execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def run_checks(defs, instance, feed: str, partition: str = PARTITION):
    """Only the checks, as `Execute checks` in the UI does: the partition's files stay as they are."""
    keys = [dg.AssetCheckKey(dg.AssetKey(f"validated_{feed}"), name) for name in CHECKS
            if name not in ("ndc11_in_product_master", "npi_in_sfdc_account") or feed == "iqvia_rx"]
    job = defs.resolve_job_def(f"ingest_{feed}_job").get_subset(asset_selection=set(),
                                                                asset_check_selection=set(keys))
    result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_clean_delivery_passes_and_defects_warn_or_error_by_threshold(platform):
    settings, lake, defs, instance = platform
    land(lake, "product_master", "PRODUCT_MASTER_20261120.csv", delimited("product_master", [CLEAN["product_master"]]))
    land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", [CLEAN["sfdc_account"]]))
    ingest(defs, instance, "product_master")
    ingest(defs, instance, "sfdc_account")

    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(40)))
    clean = ingest(defs, instance, "iqvia_rx")
    assert {name: e.passed for name, e in clean.items()} == {
        "quarantine_by_rule": True, "row_conservation": True, "no_pii_in_clear": True, "schema_drift": True,
        "ndc11_in_product_master": True, "npi_in_sfdc_account": False}  # the clean NPI is no CRM account's
    assert clean["npi_in_sfdc_account"].severity == dg.AssetCheckSeverity.WARN

    one_bad = iqvia_rows(40, week_ending="2026-11-13") + [dict(CLEAN["iqvia_rx"], week_ending="2026-11-13",
                                                                ndc11="99999999999", payer_type="UNKNOWN")]
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt", delimited("iqvia_rx", one_bad))
    warned = ingest(defs, instance, "iqvia_rx", "2026-11-13")
    assert not warned["quarantine_by_rule"].passed
    assert warned["quarantine_by_rule"].severity == dg.AssetCheckSeverity.WARN  # 1 of 41 rows: under 5%
    assert warned["quarantine_by_rule"].metadata["by_rule"].value == {"payer_type_allowed": 1}

    many_bad = iqvia_rows(10, week_ending="2026-11-06") + iqvia_rows(2, week_ending="2026-11-06", nrx="x")
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261106.txt", delimited("iqvia_rx", many_bad))
    errored = ingest(defs, instance, "iqvia_rx", "2026-11-06")
    assert errored["quarantine_by_rule"].severity == dg.AssetCheckSeverity.ERROR  # 2 of 12 rows: over 5%
    samples = json.loads(json.dumps(errored["quarantine_by_rule"].metadata["samples"].value))
    assert [s["_source_row"] for s in samples["nrx_type"]] == [11, 12]


def test_rerun_checks_catch_lost_rows_pii_and_report_drift(platform):
    settings, lake, defs, instance = platform
    header = [*delimited("sfdc_account", []).strip().split(","), "favourite_colour"]
    land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv",
         delimited("sfdc_account", [CLEAN["sfdc_account"]], header=header))
    first = ingest(defs, instance, "sfdc_account")
    assert not first["schema_drift"].passed
    assert first["schema_drift"].metadata["unexpected_columns"].value == ["favourite_colour"]
    assert first["row_conservation"].passed and first["no_pii_in_clear"].passed

    # Someone writes rows past the platform: one lost, one with an email address in clear.
    key = current_version(lake, "sfdc_account", PARTITION).keys("validated")[0]
    table = lake.read_parquet(key)
    tampered = table.set_column(table.column_names.index("city"), "city", pa.array(["ana@clinic.example"]))
    path = settings.home / "tampered.parquet"
    pq.write_table(pa.concat_tables([tampered, tampered]), path)
    lake.put_file(path, key)
    again = run_checks(defs, instance, "sfdc_account")
    assert not again["row_conservation"].passed
    assert again["row_conservation"].metadata["rows_validated"].value == 2
    assert not again["no_pii_in_clear"].passed
    assert again["no_pii_in_clear"].metadata["columns_with_matches"].value == {"city": 2}


def test_a_partition_without_an_accepted_delivery_fails_its_checks(platform):
    _, lake, defs, instance = platform
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", b"")
    result = run_checks(defs, instance, "iqvia_rx")
    assert result and not any(e.passed for e in result.values())


def test_a_partition_whose_blocking_check_failed_is_not_loaded_while_the_others_are(platform):
    """Automation waits on `row_conservation` across runs, and so does the load itself when a run's range
    spans a blocked partition (issue 9)."""
    from fe_platform.lib.zones import PartitionVersion, manifest_key
    from fe_platform.runner.execution import Runner

    settings, lake, defs, instance = platform
    for day in ("2026-11-19", "2026-11-20"):
        land(lake, "sfdc_territory", f"SFDC_TERRITORY_{day.replace('-', '')}.csv",
             delimited("sfdc_territory", [dict(CLEAN["sfdc_territory"], territory_name=f"Boston {day}")]))
        assert ingest(defs, instance, "sfdc_territory", day)["row_conservation"].passed
    # Something outside the platform breaks the 20th: its manifest now promises a row its files do not hold.
    version = current_version(lake, "sfdc_territory", "2026-11-20")
    broken = PartitionVersion(**{**version.__dict__, "parts": tuple(
        type(p)(**{**p.__dict__, "rows_in": p.rows_in + 1}) for p in version.parts)})
    lake.put_bytes(broken.to_json().encode(), manifest_key("sfdc_territory", "2026-11-20"))
    keys = [dg.AssetCheckKey(dg.AssetKey("validated_sfdc_territory"), "row_conservation")]
    job = defs.resolve_job_def("ingest_sfdc_territory_job").get_subset(asset_selection=set(),
                                                                       asset_check_selection=set(keys))
    checked = job.execute_in_process(instance=instance, partition_key="2026-11-20", raise_on_error=False)
    assert [e.passed for e in checked.get_asset_check_evaluations()] == [False]

    lake_table = dg.AssetKey(["warehouse", "lake", "sfdc_territory"])
    requested = dg.evaluate_automation_conditions(defs=defs, instance=instance).get_requested_partitions(lake_table)
    assert set(requested) == {"2026-11-19"}

    # A run whose range spans both partitions (a backfill) loads only the one whose checks passed.
    runner = Runner(settings, defs, instance, echo=lambda _: None)
    runner.execute(defs.resolve_implicit_global_asset_job_def(), "load", {
        "dagster/asset_partition_range_start": "2026-11-19", "dagster/asset_partition_range_end": "2026-11-20"},
        asset_selection=[lake_table])
    assert runner.summary.ok, runner.summary.failed_runs
    with defs.resources["warehouse"].connect() as wh:
        assert {str(d) for d in wh.partition_counts("sfdc_territory")} == {"2026-11-19"}
