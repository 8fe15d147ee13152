"""The dashboard assets through Dagster: the data-quality status from real check runs, the Tableau and
QuickSight branches against their servers (the REST stub and moto).

The warehouse is a DuckDB file holding fabricated reporting tables (the dbt models are not run here:
`test_end_to_end` does that); the checks are the real ingestion checks, run by real ingestion runs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import boto3
import dagster as dg
import pytest

from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib import quality
from fe_platform.settings import load_settings
from fe_platform_tests.tableau_server_stub import TableauServerStub
from fe_platform_tests.test_checks import run_checks
from fe_platform_tests.test_dashboards_fixtures import write_reporting_tables
from fe_platform_tests.test_ingestion import CLEAN, delimited, iqvia_rows, land

TERRITORY = dg.AssetKey(["dashboards", "territory-performance"])
BRAND = dg.AssetKey(["dashboards", "brand-performance"])
INDEX = dg.AssetKey(["dashboards", "index"])
FX_ERROR = "validated_fx_rates:quarantine_by_rule"
RX_QUARANTINE = "validated_iqvia_rx:quarantine_by_rule"


def platform_for(env: dict):
    settings = load_settings(env)
    write_reporting_tables(settings)
    return settings, lake_from_settings(settings), build_definitions(settings)


@pytest.fixture
def platform(tmp_path):
    settings, lake, defs = platform_for({"FE_HOME": str(tmp_path / "home")})
    with dg.instance_for_test() as instance:
        yield settings, lake, defs, instance


def ingest(defs, instance, feed: str, partition: str) -> dict:
    result = defs.resolve_job_def(f"ingest_{feed}_job").execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialize(defs, instance, *keys: dg.AssetKey) -> dg.ExecuteInProcessResult:
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=list(keys), raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dg.AssetMaterialization:
    [event] = [m for m in result.asset_materializations_for_node("dashboards") if m.asset_key == key]
    return event


def page_status(settings, slug: str) -> tuple[str, list[tuple[str, str]]]:
    """The level on a dashboard page's badge, and the (check, level) rows its data-quality section names."""
    text = (settings.dashboards_dir / f"{slug}.html").read_text()
    level = re.search(r'<span class="badge \w+" data-level="(\w+)">', text.split("</header>")[0]).group(1)
    section = text.split('id="data-quality"')[1]
    return level, re.findall(r'data-check="([^"]+)" data-level="(\w+)"', section)


def fx_body(date: str, **rates: float) -> str:
    return json.dumps({"base": "EUR", "date": date, "rates": rates})


def test_an_upstream_error_check_makes_the_page_and_the_index_say_error_and_name_it(platform):
    settings, lake, defs, instance = platform
    # FX rates of 20 Nov: two of three rates out of range, over the feed's threshold: ERROR.
    land(lake, "fx_rates", "FX_RATES_20261120.json", fx_body("2026-11-20", USD=1.05, GBP=-1, JPY=0))
    fx = ingest(defs, instance, "fx_rates", "2026-11-20")
    assert fx["quarantine_by_rule"].severity == dg.AssetCheckSeverity.ERROR
    # IQVIA week of 13 Nov: 1 bad row of 41, under the threshold: WARN.
    rows = iqvia_rows(40, week_ending="2026-11-13") + [dict(CLEAN["iqvia_rx"], week_ending="2026-11-13",
                                                            payer_type="UNKNOWN")]
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt", delimited("iqvia_rx", rows))
    assert ingest(defs, instance, "iqvia_rx", "2026-11-13")["quarantine_by_rule"].severity == dg.AssetCheckSeverity.WARN

    result = materialize(defs, instance, TERRITORY, INDEX)
    level, named = page_status(settings, "territory-performance")
    assert level == "ERROR"
    assert named[0] == (FX_ERROR, "ERROR")  # errors first
    assert (RX_QUARANTINE, "WARN") in named
    assert all(lvl == "WARN" for _, lvl in named[1:])
    assert "validated_fx_rates:row_conservation" not in dict(named)  # it passed
    page = (settings.dashboards_dir / "territory-performance.html").read_text()
    assert "1 of 1 partition: 20 Nov 2026" in page

    status = json.loads((settings.dashboards_dir / "territory-performance.status.json").read_text())
    assert status["quality"]["level"] == "ERROR" and status["quality_status"].startswith("ERROR: 1 check failing")
    metadata = materialization(result, TERRITORY).metadata
    assert metadata["failing_checks"].value[0] == FX_ERROR and metadata["upstream_checks"].value > 40

    index = (settings.dashboards_dir / "index.html").read_text()
    row = index.split('data-slug="territory-performance"')[1].split("</tr>")[0]
    assert 'data-level="ERROR"' in row and f"<code>{FX_ERROR}</code> ERROR" in row
    listed = index.split('id="failing-checks"')[1]
    assert re.findall(r'data-check="([^"]+)" data-level="ERROR"', listed) == [FX_ERROR]
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", index)  # times in words, not ISO

    # A corrected delivery of the IQVIA week: its latest evaluation passes, so that check is no longer named.
    clean = iqvia_rows(41, week_ending="2026-11-13")
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt.gz", gzip.compress(delimited("iqvia_rx", clean).encode()))
    assert ingest(defs, instance, "iqvia_rx", "2026-11-13")["quarantine_by_rule"].passed
    materialize(defs, instance, TERRITORY)
    level, named = page_status(settings, "territory-performance")
    assert level == "ERROR" and RX_QUARANTINE not in dict(named) and named[0] == (FX_ERROR, "ERROR")


def test_a_check_whose_run_failed_counts_as_error_until_it_runs_again(platform, monkeypatch):
    settings, lake, defs, instance = platform
    land(lake, "fx_rates", "FX_RATES_20261119.json", fx_body("2026-11-19", USD=1.05, GBP=0.86))
    assert all(e.passed for e in ingest(defs, instance, "fx_rates", "2026-11-19").values())
    materialize(defs, instance, BRAND)
    assert page_status(settings, "brand-performance") == ("OK", [])

    def broken(*args, **kwargs):
        raise OSError("lake unreachable")

    monkeypatch.setattr(quality, "measures", broken)
    assert run_checks(defs, instance, "fx_rates", "2026-11-19") == {}  # the run failed: no result
    materialize(defs, instance, BRAND)
    level, named = page_status(settings, "brand-performance")
    assert level == "ERROR" and ("validated_fx_rates:row_conservation", "ERROR") in named
    assert "did not complete" in (settings.dashboards_dir / "brand-performance.html").read_text()

    monkeypatch.undo()
    assert all(e.passed for e in run_checks(defs, instance, "fx_rates", "2026-11-19").values())
    materialize(defs, instance, BRAND)
    assert page_status(settings, "brand-performance") == ("OK", [])


def test_a_dashboard_that_fails_leaves_the_others_refreshed_and_is_named(platform, monkeypatch):
    from fe_platform.lib.dashboards import extract

    settings, _, defs, instance = platform
    write = extract.write_extract

    def full_disk_for_brand(dashboard, *args, **kwargs):
        if dashboard.slug == "brand-performance":
            raise extract.ExtractError("Brand Performance: no space left on device")
        return write(dashboard, *args, **kwargs)

    monkeypatch.setattr(extract, "write_extract", full_disk_for_brand)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[BRAND, TERRITORY], raise_on_error=False)
    assert not result.success
    assert [m.asset_key for m in result.asset_materializations_for_node("dashboards")] == [TERRITORY]
    assert "Brand Performance (ExtractError: Brand Performance: no space left on device)" in \
        result.failure_data_for_node("dashboards").error.to_string()
    assert (settings.dashboards_dir / "territory-performance.html").exists()
    assert not (settings.dashboards_dir / "brand-performance.html").exists()

    # a page that cannot be written: the other dashboard's page is written (page by page, after the failure)
    from fe_platform.lib.dashboards import preview

    monkeypatch.undo()
    write_page = preview._write_page

    def unwritable_territory(dashboard, *args):
        if dashboard.slug == "territory-performance":
            raise PermissionError("dashboards/territory-performance.html: read-only")
        return write_page(dashboard, *args)

    monkeypatch.setattr(preview, "_write_page", unwritable_territory)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[BRAND, TERRITORY], raise_on_error=False)
    assert [m.asset_key for m in result.asset_materializations_for_node("dashboards")] == [BRAND]
    assert "Territory Performance (PermissionError" in result.failure_data_for_node("dashboards").error.to_string()


SECRET = "pat-secret-for-the-dashboard-test"


def test_tableau_branch_publishes_the_extract_and_asks_for_a_refresh(tmp_path):
    with TableauServerStub(token_name="fe-publisher", token_secret=SECRET, site="fe") as stub:
        settings, lake, defs = platform_for({
            "FE_HOME": str(tmp_path / "home"), "FE_TABLEAU_SERVER_URL": stub.url, "FE_TABLEAU_SITE": "fe",
            "FE_TABLEAU_PROJECT": "F&E Dashboards", "FE_TABLEAU_TOKEN_NAME": "fe-publisher",
            "FE_TABLEAU_TOKEN_SECRET": SECRET, "FE_PII_HMAC_KEY": "a-test-secret-of-enough-length"})
        with dg.instance_for_test() as instance:
            result = materialize(defs, instance, BRAND)
        calls = stub.calls()
    name = "FE Brand Performance"
    assert list(stub.published) == [name]
    assert stub.sha256(name) == hashlib.sha256(lake.read_bytes("dashboards/brand-performance.hyper")).hexdigest()
    assert stub.refreshed == [stub.datasources[name]]
    assert calls[0] == "POST /auth/signin" and calls[-1] == "POST /auth/signout"
    metadata = materialization(result, BRAND).metadata
    assert metadata["tableau_refresh_jobs"].value == {name: stub.jobs[0]}
    logs = "".join(str(e.message) for e in result.all_events)
    assert SECRET not in logs


ACCOUNT = "123456789012"


def test_quicksight_branch_publishes_data_sets_and_starts_their_ingestion(tmp_path, moto_endpoint, monkeypatch):
    from moto.quicksight.models import quicksight_backends  # the moto server runs in this process

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    qs = boto3.client("quicksight", region_name="us-east-1", endpoint_url=moto_endpoint)
    source = qs.create_data_source(
        AwsAccountId=ACCOUNT, DataSourceId="fe-warehouse-made-by-ops", Name="FE warehouse", Type="REDSHIFT",
        DataSourceParameters={"RedshiftParameters": {"Host": "redshift.internal", "Port": 5439, "Database": "fe"}})
    settings, _, defs = platform_for({
        "FE_HOME": str(tmp_path / "home"), "FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT, "FE_QUICKSIGHT_REGION": "us-east-1",
        "FE_QUICKSIGHT_ENDPOINT_URL": moto_endpoint, "FE_QUICKSIGHT_DATA_SOURCE_ARN": source["Arn"]})
    field = dg.AssetKey(["dashboards", "field-activity"])
    with dg.instance_for_test() as instance:
        result = materialize(defs, instance, field)
    ingestions = materialization(result, field).metadata[
        "quicksight_ingestions"].value
    assert sorted(ingestions) == ["fe-field-activity-rpt_field_activity", "fe-field-activity-rpt_territory_weekly"]
    for data_set_id, ingestion in ingestions.items():
        assert ingestion["arn"].endswith(f":data-set/{data_set_id}")
        assert ingestion["ingestion_status"] == "INITIALIZED" and ingestion["ingestion_id"].startswith("fe-")
    data_sets = quicksight_backends[ACCOUNT]["us-east-1"].data_sets
    assert data_sets["fe-field-activity-rpt_territory_weekly"].name == "FE Field Activity: rpt_territory_weekly"
