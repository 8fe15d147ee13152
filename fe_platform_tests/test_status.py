"""`fe-platform status`: the state of every feed and dashboard without the UI, from real ingestion runs."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from fe_platform import cli
from fe_platform.defs import ingestion
from fe_platform.defs.operations.status import format_status, platform_status
from fe_platform.defs.resources import lake_from_settings, platform_resources
from fe_platform.runner import dagster_instance
from fe_platform.settings import load_settings
from fe_platform_tests.test_alerts_platform import PARTITION, account_rows
from fe_platform_tests.test_ingestion import delimited, land


def write_dashboard_status(settings, slug: str, refreshed_at: datetime, quality: str) -> None:
    settings.dashboards_dir.mkdir(parents=True, exist_ok=True)
    (settings.dashboards_dir / f"{slug}.status.json").write_text(json.dumps({
        "slug": slug, "title": "Brand performance", "refreshed_at": refreshed_at.isoformat(),
        "quality_status": quality, "owner_team": "commercial-analytics", "description": "x"}))


def setup_platform(settings, instance):
    lake = lake_from_settings(settings)
    defs = dg.Definitions.merge(ingestion.build_defs(settings), dg.Definitions(resources=platform_resources(settings)))
    rows = account_rows(8) + account_rows(2, 100, state="XX")
    land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", rows))
    land(lake, "product_master", "PRODUCT_MASTER_20261120.csv", "ndc11;brand\n1;2\n")  # rejected whole
    for feed in ("sfdc_account", "product_master"):
        defs.resolve_job_def(f"ingest_{feed}_job").execute_in_process(instance=instance, partition_key=PARTITION,
                                                                      raise_on_error=False)
    return lake, defs


def test_status_reports_deliveries_quarantine_freshness_checks_and_dashboards(tmp_path):
    settings = load_settings({"FE_HOME": str(tmp_path)})
    now = datetime.now(UTC)
    write_dashboard_status(settings, "brand-performance", now - timedelta(hours=2), "WARN: 1 file rejected")
    with dg.instance_for_test() as instance:
        lake, defs = setup_platform(settings, instance)
        status = platform_status(instance, defs, lake, settings, now=now + timedelta(minutes=1))
        later = platform_status(instance, defs, lake, settings, now=now + timedelta(days=3))

    feeds = {f["feed"]: f for f in status["feeds"]}
    accounts = feeds["sfdc_account"]
    assert accounts["team"] == "crm-operations"
    assert accounts["last_delivery"]["file"] == "SFDC_ACCOUNT_20261120.csv"
    assert {k: accounts["last_loaded"][k] for k in ("rows_in", "rows_valid", "rows_quarantined",
                                                     "quarantine_pct", "threshold_pct")} == {
        "rows_in": 10, "rows_valid": 8, "rows_quarantined": 2, "quarantine_pct": 20.0, "threshold_pct": 5.0}
    assert accounts["failing_checks"] == [  # no territory delivered yet: the reference check warns
        {"check": "quarantine_by_rule", "severity": "ERROR", "partition": PARTITION},
        {"check": "territory_id_in_sfdc_territory", "severity": "WARN", "partition": PARTITION}]
    assert accounts["freshness"]["lag_hours"] < 1 and not accounts["freshness"]["late"]
    products = feeds["product_master"]
    assert products["last_delivery"]["outcome"] == "rejected" and products["last_loaded"] is None
    assert "missing required column(s)" in products["last_delivery"]["reason"]
    assert products["deliveries"] == {"loaded": 0, "rejected": 1, "duplicate": 0}
    assert feeds["iqvia_rx"]["last_delivery"] is None and feeds["iqvia_rx"]["freshness"]["lag_hours"] is None
    [dashboard] = status["dashboards"]
    assert (dashboard["slug"], dashboard["quality_status"], dashboard["late"]) == (
        "brand-performance", "WARN: 1 file rejected", False)

    late = {f["feed"]: f for f in later["feeds"]}["sfdc_account"]["freshness"]
    assert late["late"] and late["lag_hours"] > 70
    assert later["dashboards"][0]["late"]

    text = format_status(status)
    assert "sfdc_account    SFDC_ACCOUNT_20261120.csv" in text and "2 (20.0%)" in text
    assert "quarantine_by_rule (ERROR)" in text and "product_master  PRODUCT_MASTER_20261120.csv" in text
    assert "brand-performance" in text and "data quality: WARN: 1 file rejected" in text
    assert "LATE" in format_status(later)


def test_status_command_prints_text_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = load_settings()
    setup_platform(settings, dagster_instance(settings))

    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    accounts = next(f for f in status["feeds"] if f["feed"] == "sfdc_account")
    assert accounts["failing_checks"][0]["check"] == "quarantine_by_rule"
    assert status["outbox"] == str(tmp_path / "outbox")

    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Feeds (as of ") and "quarantine_by_rule (ERROR)" in out and "none refreshed yet" in out
