"""Alerts from real Dagster runs: ingestion of small deliveries with defects, then the alert sources,
the ledger and the channels, as the daemon's sensor and `fe-platform run` evaluate them."""

import csv
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from fe_platform.defs import ingestion, operations
from fe_platform.defs.operations.alerts import evaluate_alerts, send_digests
from fe_platform.defs.resources import lake_from_settings, platform_resources
from fe_platform.lib.alerts.outbox import read_outbox
from fe_platform.lib.identifiers import sfdc_suffix
from fe_platform.sample_data.generator import generate
from fe_platform.settings import load_settings
from fe_platform_tests.alert_servers import SMTP_PASSWORD, SMTP_USER, WebhookServer, start_smtp
from fe_platform_tests.conftest import free_port
from fe_platform_tests.test_ingestion import delimited, land
from fe_platform_tests.test_rules import CLEAN

PARTITION = "2026-11-20"
UI = "http://dagster.fe.example:3000"


class Platform:
    def __init__(self, env: dict, instance):
        self.settings = load_settings(env)
        self.lake = lake_from_settings(self.settings)
        self.defs = dg.Definitions.merge(ingestion.build_defs(self.settings), operations.build_defs(self.settings),
                                         dg.Definitions(resources=platform_resources(self.settings)))
        self.instance = instance

    def ingest(self, feed: str, partition: str = PARTITION, key: str | None = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(f"ingest_{feed}_job").execute_in_process(
            instance=self.instance, partition_key=partition, raise_on_error=False,
            run_config={"ops": {f"ingest_{feed}": {"config": {"landing_keys": [key]}}}} if key else None)

    def evaluate(self, now: datetime | None = None, digest: bool = False):
        return evaluate_alerts(self.instance, self.defs, self.lake, self.settings, now=now, digest=digest)

    @property
    def outbox(self) -> list[dict]:
        return [alert for _, alert in read_outbox(self.settings.home / "outbox")]


@pytest.fixture
def make_platform(tmp_path):
    with dg.instance_for_test() as instance:
        yield lambda **env: Platform({"FE_HOME": str(tmp_path / "home"), "FE_DAGSTER_URL": UI, **env}, instance)


@pytest.fixture
def no_waiting(monkeypatch):
    """Back-off without the wait: the pauses are recorded instead."""
    pauses: list[float] = []
    monkeypatch.setattr("fe_platform.lib.alerts.channels.pause", pauses.append)
    return pauses


def account_id(i: int) -> str:
    base = f"001Dn{i:010d}"
    return base + sfdc_suffix(base)


def account_rows(n: int, first: int = 0, **changes) -> list[dict]:
    return [{**CLEAN["sfdc_account"], "account_id": account_id(i), "npi": None, **changes}
            for i in range(first, first + n)]


def kinds(alerts) -> list[tuple[str, str, str | None]]:
    return sorted((a.kind, a.team, a.check) for a in alerts)


# --- check_failed: email over SMTP, and no PII ----------------------------------------------------

def pii_values(data: bytes) -> set[str]:
    rows = csv.DictReader(io.StringIO(data.decode("utf-8")))
    columns = ("email", "phone", "address_line1", "first_name", "last_name")
    return {row[c].strip() for row in rows for c in columns if row.get(c) and len(row[c].strip()) > 3}


def test_error_check_on_a_sample_account_file_is_emailed_to_its_owners_without_pii(make_platform, tmp_path,
                                                                                    monkeypatch):
    smtp, controller = start_smtp(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))  # the client trusts the throwaway certificate
    try:
        p = make_platform(FE_SMTP_HOST="127.0.0.1", FE_SMTP_PORT=str(smtp.port), FE_SMTP_USER=SMTP_USER,
                          FE_SMTP_PASSWORD=SMTP_PASSWORD, FE_SMTP_FROM="fe-platform@fe-pharma.example",
                          FE_ALERTS_CRM_OPERATIONS_EMAIL="owners")
        # The sample generator's account files: one undecodable, one with a defect of every kind (and PII).
        manifest = generate(p.lake, date(2026, 11, 13), weeks=1, hcps=40, seed=3, defect_rate=0.3)
        accounts = [f for f in manifest["files"] if f["feed"] == "sfdc_account"]
        assert sorted(f["expected"] for f in accounts) == ["loaded", "rejected"]
        for f in accounts:
            p.ingest("sfdc_account", f["partition"], f["key"])
        loaded = next(f for f in accounts if f["expected"] == "loaded")
        record = [r for r in p.lake.list("deliveries/sfdc_account/") if "_loaded" in r.key]
        assert record

        alerts = p.evaluate()
    finally:
        controller.stop()

    assert ("check_failed", "crm-operations", "quarantine_by_rule") in kinds(alerts)
    assert ("delivery_rejected", "crm-operations", "SFDC_ACCOUNT_20261107.csv") in [
        (a.kind, a.team, a.check.split("@")[0]) for a in alerts if a.kind == "delivery_rejected"]
    assert all(a.team == "crm-operations" for a in alerts)
    assert len(smtp.messages) == len(alerts)
    assert all(m.tls and m.login == SMTP_USER and m.recipients == ["crm-ops@fe-pharma.example"]
               for m in smtp.messages)

    quarantine = next(m for m in smtp.messages if "quarantine_by_rule" in m.message["Subject"])
    body = quarantine.message.get_content()
    from fe_platform.lib.delivery_log import read_delivery_log

    delivery = [r for r in read_delivery_log(p.lake, "sfdc_account") if r.outcome == "loaded"][-1]
    assert f"rows_quarantined: {delivery.rows_quarantined}" in body
    assert f"SFDC_ACCOUNT_20261113.csv ({delivery.rows_in} rows)" in body
    assert "severity ERROR" in body and "threshold_pct: 5" in body and "by_rule: " in body
    assert all(rule in body for rule in ("email_format", "state_allowed", "npi_check_digit"))
    assert f"{UI}/assets/validated_sfdc_account?view=checks&partition=2026-11-13" in body

    pii = pii_values(p.lake.read_bytes(loaded["key"]))
    assert len(pii) > 100
    everything = "\n".join(m.message.as_string() for m in smtp.messages)
    leaked = sorted(v for v in pii if v in everything)
    assert leaked == []


# --- chat by webhook: retried, and a dead one fails nothing --------------------------------------

def quarantine_heavy(p, name: str = "SFDC_ACCOUNT_20261120.csv", bad_state: str = "XX", first: int = 0) -> str:
    rows = account_rows(8, first) + account_rows(2, first + 100, state=bad_state)  # 20%: over the 5% threshold
    return land(p.lake, "sfdc_account", name, delimited("sfdc_account", rows))


def test_webhook_receives_the_alert_and_a_500_is_retried(make_platform, no_waiting):
    hook = WebhookServer(statuses=[500]).start()
    try:
        p = make_platform(FE_ALERTS_CRM_OPERATIONS_WEBHOOK=hook.url)
        p.ingest("sfdc_account", key=quarantine_heavy(p))
        [alert] = p.evaluate()
    finally:
        hook.stop()
    assert (alert.kind, alert.check, alert.team) == ("check_failed", "quarantine_by_rule", "crm-operations")
    assert [status for _, _, status in hook.requests] == [500, 200] and no_waiting == [1.0]
    text = hook.requests[-1][1]["text"]
    assert "quarantine_by_rule" in text and "state_allowed 2" in text and "rows_quarantined: 2" in text
    assert p.outbox == []  # the team has a webhook: nothing falls back to the outbox


def test_a_dead_webhook_fails_neither_the_run_nor_the_sensor_and_the_alert_is_logged(make_platform, no_waiting,
                                                                                      caplog):
    dead = f"http://127.0.0.1:{free_port()}/hooks/T1/B1/secret-path"
    p = make_platform(FE_ALERTS_CRM_OPERATIONS_WEBHOOK=dead)
    run = p.ingest("sfdc_account", key=quarantine_heavy(p))
    assert run.success
    sensor = p.defs.resolve_sensor_def("operations_alerts")
    context = dg.build_sensor_context(instance=p.instance, definitions=p.defs, resources={"lake": p.lake})
    with caplog.at_level(logging.ERROR, "fe_platform.alerts"):
        result = sensor(context)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "1 alert(s) sent"
    assert no_waiting == [1.0, 2.0]
    [logged] = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert "check failed: quarantine_by_rule on validated_sfdc_account [2026-11-20]" in logged
    assert "rows_quarantined: 2" in logged and "secret-path" not in caplog.text


# --- dedupe --------------------------------------------------------------------------------------

def test_a_failure_is_told_once_until_it_recovers_and_fails_again(make_platform):
    p = make_platform()
    key = quarantine_heavy(p)
    p.ingest("sfdc_account", key=key)
    assert kinds(p.evaluate()) == [("check_failed", "crm-operations", "quarantine_by_rule")]
    assert p.evaluate() == []
    p.ingest("sfdc_account")  # the same failure evaluated again by a re-run of the partition's checks
    assert p.evaluate() == []

    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", account_rows(10)))
    p.ingest("sfdc_account", key=key)  # a corrected delivery: the check passes
    assert p.evaluate() == []
    quarantine_heavy(p, bad_state="ZZ", first=50)
    p.ingest("sfdc_account", key=key)
    again = p.evaluate()
    assert kinds(again) == [("check_failed", "crm-operations", "quarantine_by_rule")]
    assert len([a for a in p.outbox if a["kind"] == "check_failed"]) == 2
    # The state lives in the Dagster instance: a fresh process (a new Platform) tells nothing new.
    assert make_platform().evaluate() == []


def test_a_rejected_delivery_is_told_once_to_the_feeds_owners(make_platform):
    p = make_platform()
    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", "account_id;npi\n001;1\n")  # wrong delimiter
    assert p.ingest("sfdc_account").success
    [alert] = p.evaluate()
    assert (alert.kind, alert.severity, alert.team, alert.asset, alert.partition) == (
        "delivery_rejected", "warn", "crm-operations", "landing_sfdc_account", PARTITION)
    assert "missing required column(s)" in alert.text and "wrong delimiter" in alert.text
    assert alert.link == f"{UI}/assets/landing_sfdc_account"
    assert p.evaluate() == []


def test_a_failed_run_is_told_to_the_owners_of_what_it_ran(make_platform):
    p = make_platform()  # no FE_FX_API_URL: the FX pull fails
    result = p.defs.resolve_job_def("landing_fx_rates_job").execute_in_process(
        instance=p.instance, partition_key=PARTITION, raise_on_error=False)
    assert not result.success
    [alert] = p.evaluate()
    assert (alert.kind, alert.team) == ("run_failed", "finance-data")
    assert "Failed step: landing_fx_rates (Failure)" in alert.text
    assert alert.link == f"{UI}/runs/{result.run_id}"
    assert p.evaluate() == []


# --- freshness ------------------------------------------------------------------------------------

def test_a_late_feed_is_told_once_when_time_passes_its_deadline(make_platform):
    p = make_platform()
    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", account_rows(3)))
    p.ingest("sfdc_account")
    now = datetime.now(UTC)
    assert p.evaluate(now=now + timedelta(hours=1)) == []  # the daily 08:00 deadline has not passed twice
    late = p.evaluate(now=now + timedelta(days=2, hours=1))
    assert kinds(late) == [("feed_late", "crm-operations", None)]
    assert late[0].asset == "validated_sfdc_account"
    assert "0 8 * * *" in late[0].text and "hours ago" in late[0].text
    assert p.evaluate(now=now + timedelta(days=2, hours=2)) == []
    assert p.evaluate(now=now + timedelta(days=3)) == []


# --- the daily digest -----------------------------------------------------------------------------

def test_the_digest_lists_the_days_deliveries_and_warn_checks_of_the_teams_assets_only(make_platform):
    p = make_platform()
    one_bad_account = account_rows(40) + account_rows(1, 200, specialty="DENTIST")  # 1 of 41: WARN
    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", one_bad_account))
    one_bad_product = [{**CLEAN["product_master"], "ndc11": f"{12345678000 + i}"} for i in range(40)]
    one_bad_product.append({**CLEAN["product_master"], "ndc11": "12345679999", "units_per_pack": "0"})
    land(p.lake, "product_master", "PRODUCT_MASTER_20261120.csv", delimited("product_master", one_bad_product))
    p.ingest("sfdc_account")
    p.ingest("product_master")
    from fe_platform.lib.delivery_log import read_delivery_log

    # the day the deliveries were ingested (not the wall clock's after the fact: a test may cross midnight)
    today = read_delivery_log(p.lake, "sfdc_account")[0].ingested_at.date()

    digests = {a.team: a for a in send_digests(p.instance, p.defs, p.lake, p.settings, today)}
    assert set(digests) == {"crm-operations", "brand-operations"}
    crm = digests["crm-operations"].text
    assert "sfdc_account SFDC_ACCOUNT_20261120.csv [2026-11-20]: 41 rows, 40 valid, 1 quarantined (2.4%)" in crm
    assert "Quarantine by rule: specialty_allowed 1" in crm
    assert "quarantine_by_rule on validated_sfdc_account [2026-11-20]" in crm
    assert "PRODUCT_MASTER" not in crm and "units_per_pack" not in crm and "product_master" not in crm
    brands = digests["brand-operations"].text
    assert "PRODUCT_MASTER_20261120.csv [2026-11-20]: 41 rows, 40 valid, 1 quarantined" in brands
    assert "units_per_pack_range 1" in brands and "quarantine_by_rule on validated_product_master" in brands
    assert "sfdc_account" not in brands and "SFDC" not in brands
    assert digests["crm-operations"].to == ("crm-ops@fe-pharma.example",)
    assert all(a["kind"] == "digest" for a in p.outbox) and len(p.outbox) == 2
    assert send_digests(p.instance, p.defs, p.lake, p.settings, today) == []  # once per team and day
    assert send_digests(p.instance, p.defs, p.lake, p.settings, today - timedelta(days=1)) == []  # nothing then
    # WARN checks alone never raise an alert of their own.
    assert [a.kind for a in p.evaluate()] == []


def test_the_digest_schedule_runs_the_digest_job(make_platform):
    p = make_platform()
    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", account_rows(3)))
    p.ingest("sfdc_account")
    from fe_platform.lib.delivery_log import read_delivery_log

    today = read_delivery_log(p.lake, "sfdc_account")[0].ingested_at.date()
    schedule = p.defs.resolve_schedule_def("operations_daily_digest")
    tick = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC).replace(hour=7)
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    run = p.defs.resolve_job_def("operations_daily_digest_job").execute_in_process(
        instance=p.instance, run_config=request.run_config)
    assert run.success and run.output_for_node("send_daily_digest") == 1
    [digest] = p.outbox
    assert digest["team"] == "crm-operations" and digest["partition"] == today.isoformat()


def test_fe_platform_run_settles_a_days_digest_once_and_then_reads_nothing_for_it(make_platform, monkeypatch):
    p = make_platform()
    land(p.lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", account_rows(3)))
    p.ingest("sfdc_account")
    from fe_platform.lib.delivery_log import read_delivery_log

    today = read_delivery_log(p.lake, "sfdc_account")[0].ingested_at.date()
    after_tick = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC).replace(hour=9)
    assert "digest" in [a.kind for a in p.evaluate(now=after_tick, digest=True)]
    # The day is over: later runs (every `fe-platform run`) do not read the delivery log for it again.
    monkeypatch.setattr("fe_platform.defs.operations.alerts.digest_findings",
                        lambda *_: pytest.fail("the settled day's digest was computed again"))
    assert "digest" not in [a.kind for a in p.evaluate(now=after_tick + timedelta(hours=3), digest=True)]


def test_outbox_holds_json_files_a_person_can_read(make_platform):
    p = make_platform()
    p.ingest("sfdc_account", key=quarantine_heavy(p))
    p.evaluate()
    [path] = (p.settings.home / "outbox" / "email").iterdir()
    body = json.loads(path.read_text())
    assert body["to"] == ["crm-ops@fe-pharma.example"] and body["team"] == "crm-operations"
    assert body["link"] == f"{UI}/assets/validated_sfdc_account?view=checks&partition={PARTITION}"


# --- metrics to CloudWatch (aws mode, moto) -------------------------------------------------------

def test_a_deliverys_metrics_reach_cloudwatch_once(aws_env, moto_endpoint, monkeypatch):
    import boto3

    from fe_platform.defs.operations.metrics import publish_metrics
    from fe_platform.lib.alerts.metrics import NAMESPACE
    from fe_platform.lib.delivery_log import read_delivery_log

    with dg.instance_for_test() as instance:
        p = Platform(aws_env, instance)
        assert p.lake.root.startswith("s3://")
        quarantine_heavy(p)
        assert p.ingest("sfdc_account").success
        sent = publish_metrics(instance, p.defs, p.lake, p.settings, endpoint_url=moto_endpoint)
        again = publish_metrics(instance, p.defs, p.lake, p.settings, endpoint_url=moto_endpoint)
        [record] = read_delivery_log(p.lake, "sfdc_account")

    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1")
    dims = [{"Name": "feed", "Value": "sfdc_account"}, {"Name": "asset", "Value": "validated_sfdc_account"}]
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
             if m["Dimensions"] == dims}
    assert {"rows_in", "rows_valid", "rows_quarantined", "rejected", "run_seconds", "run_failed",
            "freshness_lag_hours"} <= names
    assert ("seconds" in names, "bytes" in names) == (hasattr(record, "seconds"), hasattr(record, "bytes"))

    def total(metric: str) -> float:
        stats = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=metric, Dimensions=dims, Period=60, Statistics=["Sum"],
            StartTime=record.ingested_at - timedelta(minutes=10), EndTime=datetime.now(UTC) + timedelta(minutes=10))
        return sum(p["Sum"] for p in stats["Datapoints"])

    assert (total("rows_in"), total("rows_quarantined"), total("rejected"), total("run_failed")) == (10, 2, 0, 0)
    assert total("run_seconds") > 0
    assert sent >= 7 and again == 1  # the second time only the feed's freshness lag is new


def test_metrics_stay_local_in_local_mode(make_platform):
    from fe_platform.defs.operations.metrics import publish_metrics

    p = make_platform()
    assert publish_metrics(p.instance, p.defs, p.lake, p.settings) == 0


# --- under the daemon: the sensor loop runs the alert sensor, and a failed tick is told -----------

def test_the_daemons_sensor_loop_tells_a_failed_sensor_tick_once(tmp_path, monkeypatch):
    import logging as log
    from pathlib import Path

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    monkeypatch.setenv("FE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FE_DAGSTER_URL", UI)
    location = Path(__file__).parent / "locations" / "operations_location.py"
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(location), attribute="defs"),
                                         location_name="fe_platform")
    start = datetime.now(UTC)
    with dg.instance_for_test() as instance, create_test_daemon_workspace_context(
            InProcessWorkspaceLoadTarget([origin]), instance) as workspace:
        for minutes in (0, 2, 4):  # three ticks of every sensor, two minutes apart
            with freeze_time(start + timedelta(minutes=minutes)):
                list(execute_sensor_iteration(workspace, log.getLogger("sensors"), None, None))
        states = {s.instigator_name: s for s in instance.all_instigator_state()}
        alert_ticks = instance.get_ticks(states["operations_alerts"].instigator_origin_id,
                                         states["operations_alerts"].selector_id)
        broken_ticks = instance.get_ticks(states["broken_landing_sensor"].instigator_origin_id,
                                          states["broken_landing_sensor"].selector_id)

    assert [t.status for t in broken_ticks] == [TickStatus.FAILURE] * 3
    assert all(t.status == TickStatus.SKIPPED for t in alert_ticks) and len(alert_ticks) == 3
    assert "1 alert(s) sent" in [t.skip_reason for t in alert_ticks]
    told = [a for _, a in read_outbox(tmp_path / "home" / "outbox")]
    assert [(a["kind"], a["team"], a["asset"]) for a in told] == [
        ("sensor_failed", "crm-operations", "sensor:broken_landing_sensor")]
    assert "(PermissionError)" in told[0]["text"] and "refused" not in told[0]["text"]
    assert told[0]["link"] == f"{UI}/locations/fe_platform/sensors/broken_landing_sensor"
