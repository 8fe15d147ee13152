"""The alert channels as plain senders against real servers: SMTP (STARTTLS, AUTH LOGIN), an HTTP webhook,
SNS and CloudWatch on the moto server; the outbox, routing, the ledger and what an alert may show."""

import json
import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from fe_platform.lib.alerts import content
from fe_platform.lib.alerts.channels import SmtpServer, Transports, deliver
from fe_platform.lib.alerts.ledger import Ledger, MemoryStore
from fe_platform.lib.alerts.metrics import NAMESPACE, delivery_datums, put_metrics
from fe_platform.lib.alerts.model import Alert, Finding
from fe_platform.lib.alerts.outbox import outbox_summary, read_outbox, write_outbox
from fe_platform.lib.alerts.routing import OUTBOX, Routing, TeamChannels, recipients, route
from fe_platform_tests.alert_servers import SMTP_PASSWORD, SMTP_USER, WebhookServer, start_smtp
from fe_platform_tests.conftest import free_port

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
OWNERS = ("team:crm-operations", "crm-ops@fe-pharma.example")


def finding(**changes) -> Finding:
    fields = dict(kind="check_failed", subject="[FE Platform] check failed: quarantine_by_rule on validated_x",
                  text="The check quarantine_by_rule failed.\nNumbers:\n  rows_quarantined: 3",
                  owners=OWNERS, asset="validated_sfdc_account", partition="2026-11-20", check="quarantine_by_rule",
                  link="http://127.0.0.1:3000/assets/validated_sfdc_account?view=checks", created_at=AT)
    return Finding(**{**fields, **changes})


def alert(**changes) -> Alert:
    return route(finding(**changes), "data-platform")[0]


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def smtp(tmp_path):
    server, controller = start_smtp(tmp_path / "tls")
    yield server
    controller.stop()


@pytest.fixture
def webhook():
    server = WebhookServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


# --- email by SMTP ---------------------------------------------------------------------------------

def test_smtp_sends_over_starttls_with_login_to_the_owners(smtp, tmp_path):
    transports = Transports(tmp_path / "outbox", email="smtp", smtp=SmtpServer(
        smtp.host, smtp.port, "fe-platform@fe-pharma.example", SMTP_USER, SMTP_PASSWORD,
        ssl_context=smtp.client_context()))
    sent = deliver(alert(), TeamChannels(email=("owners", "oncall@fe-pharma.example")), transports)
    assert [(s.channel, s.via, s.ok) for s in sent] == [("email", "smtp", True)]
    [received] = smtp.messages
    assert received.tls and received.login == SMTP_USER and smtp.logins == [("LOGIN", True)]
    assert received.recipients == ["crm-ops@fe-pharma.example", "oncall@fe-pharma.example"]
    assert received.message["Subject"] == alert().subject
    assert received.message["X-FE-Alert-Kind"] == "check_failed"
    body = received.message.get_content()
    assert "rows_quarantined: 3" in body and alert().link in body
    assert not (tmp_path / "outbox").exists()


def test_a_refused_login_is_not_retried_and_logs_the_alert_without_the_password(smtp, tmp_path, caplog):
    sleeps = Sleeps()
    transports = Transports(tmp_path / "outbox", email="smtp", sleep=sleeps, smtp=SmtpServer(
        smtp.host, smtp.port, "fe-platform@fe-pharma.example", SMTP_USER, "wrong-password-123",
        ssl_context=smtp.client_context()))
    with caplog.at_level(logging.ERROR, "fe_platform.alerts"):
        [sent] = deliver(alert(), TeamChannels(email=("owners",)), transports)
    assert not sent.ok and sent.attempts == 1 and sleeps == [] and smtp.messages == []
    assert "SMTP login refused (535)" in caplog.text and alert().text.replace("\n", "\\n") in caplog.text
    assert "wrong-password-123" not in caplog.text and SMTP_PASSWORD not in caplog.text


# --- chat by webhook -------------------------------------------------------------------------------

def test_webhook_is_posted_and_a_500_is_retried_with_backoff(webhook, tmp_path):
    webhook.statuses = [500, 503]
    sleeps = Sleeps()
    transports = Transports(tmp_path / "outbox", sleep=sleeps, backoff_seconds=0.5)
    [sent] = deliver(alert(), TeamChannels(webhook=webhook.url), transports)
    assert sent.ok and sent.attempts == 3 and sleeps == [0.5, 1.0]
    assert [status for _, _, status in webhook.requests] == [500, 503, 200]
    path, body, _ = webhook.requests[-1]
    assert path == "/hooks/T0001/B0001/xoxb-secret-token"
    assert body["text"].startswith(f"*{alert().subject}*") and alert().link in body["text"]
    assert body["alert"]["check"] == "quarantine_by_rule" and body["alert"]["severity"] == "error"


def test_an_unreachable_webhook_never_raises_and_logs_the_whole_alert_without_the_url(tmp_path, caplog):
    url = f"http://127.0.0.1:{free_port()}/hooks/T0001/B0001/xoxb-secret-token"
    sleeps = Sleeps()
    with caplog.at_level(logging.ERROR, "fe_platform.alerts"):
        [sent] = deliver(alert(), TeamChannels(webhook=url), Transports(tmp_path / "outbox", sleep=sleeps))
    assert not sent.ok and sent.attempts == 3 and sleeps == [1.0, 2.0]
    assert "webhook ConnectionError" in caplog.text
    logged = json.loads(caplog.records[-1].getMessage().split("; the alert: ", 1)[1])
    assert logged == alert().as_dict()
    assert "xoxb-secret-token" not in caplog.text and "/hooks/" not in caplog.text


def test_a_4xx_from_the_webhook_is_not_retried(webhook, tmp_path):
    webhook.statuses = [404]
    [sent] = deliver(alert(), TeamChannels(webhook=webhook.url), Transports(tmp_path / "outbox", sleep=Sleeps()))
    assert not sent.ok and sent.attempts == 1 and sent.error == "webhook answered HTTP 404"


# --- SNS and CloudWatch on moto --------------------------------------------------------------------

def test_sns_alert_reaches_a_subscribed_queue(aws, tmp_path):
    sns = boto3.client("sns", endpoint_url=aws, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws, region_name="us-east-1")
    topic = sns.create_topic(Name="fe-alerts-crm-operations")["TopicArn"]
    queue = sqs.create_queue(QueueName="crm-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    transports = Transports(tmp_path / "outbox", aws_region="us-east-1", aws_endpoint_url=aws)
    [sent] = deliver(alert(), TeamChannels(sns_topic=topic), transports)
    assert sent.ok and sent.via == "sns"
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic and envelope["Subject"] == alert().subject
    assert envelope["Message"] == alert().body
    assert envelope["MessageAttributes"]["kind"]["Value"] == "check_failed"
    assert envelope["MessageAttributes"]["team"]["Value"] == "crm-operations"


def test_an_sns_topic_that_does_not_exist_is_logged_not_raised(aws, tmp_path, caplog):
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    transports = Transports(tmp_path / "outbox", aws_region="us-east-1", aws_endpoint_url=aws, sleep=Sleeps())
    with caplog.at_level(logging.ERROR, "fe_platform.alerts"):
        [sent] = deliver(alert(), TeamChannels(sns_topic=missing), transports)
    assert not sent.ok and sent.error.startswith("SNS ") and alert().subject in caplog.text


def test_email_through_ses(aws, tmp_path):
    ses = boto3.client("ses", endpoint_url=aws, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress="fe-platform@fe-pharma.example")
    before = ses.get_send_quota()["SentLast24Hours"]
    transports = Transports(tmp_path / "outbox", email="ses", email_from="fe-platform@fe-pharma.example",
                            aws_region="us-east-1", aws_endpoint_url=aws)
    [sent] = deliver(alert(), TeamChannels(email=("owners",)), transports)
    assert (sent.channel, sent.via, sent.ok) == ("email", "ses", True)
    assert ses.get_send_quota()["SentLast24Hours"] == before + 1


def test_delivery_metrics_land_in_cloudwatch(aws):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    # a feed of its own: the moto server (and so CloudWatch) is shared by the session's tests
    datums = delivery_datums("metrics_test_feed", "validated_metrics_test_feed", at, 120, 110, 10, False, 1.5, 20480)
    assert put_metrics(datums, "us-east-1", aws) == 6
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")
    dims = [{"Name": "feed", "Value": "metrics_test_feed"}, {"Name": "asset", "Value": "validated_metrics_test_feed"}]
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
             if m["Dimensions"] == dims}
    assert {"rows_in", "rows_valid", "rows_quarantined", "rejected", "seconds", "bytes"} <= names
    stats = cloudwatch.get_metric_statistics(Namespace=NAMESPACE, MetricName="rows_quarantined", Dimensions=dims,
                                             StartTime=at - timedelta(minutes=1), EndTime=at + timedelta(minutes=1),
                                             Period=60, Statistics=["Sum"])
    assert [p["Sum"] for p in stats["Datapoints"]] == [10.0]


# --- the outbox ------------------------------------------------------------------------------------

def test_outbox_files_hold_the_contracts_fields(tmp_path):
    transports = Transports(tmp_path / "outbox")
    sent = deliver(alert(), TeamChannels(email=("owners",), webhook=OUTBOX, sns_topic=OUTBOX), transports)
    assert [(s.channel, s.via, s.ok) for s in sent] == [("email", "outbox", True), ("chat", "outbox", True),
                                                         ("sns", "outbox", True)]
    for channel in ("email", "chat", "sns"):
        [path] = (tmp_path / "outbox" / channel).iterdir()
        body = json.loads(path.read_text())
        assert set(body) == {"kind", "severity", "team", "to", "asset", "partition", "check", "subject", "text",
                             "link", "created_at"}
        assert (body["kind"], body["severity"], body["team"], body["to"]) == (
            "check_failed", "error", "crm-operations", ["crm-ops@fe-pharma.example"])
        assert not path.name.startswith(".tmp-")
    write_outbox(tmp_path / "outbox", "email", alert(kind="delivery_rejected", check="F.csv@abc"))
    lines = outbox_summary(tmp_path / "outbox")
    assert lines[0] == f"  alerts: 4 messages to 1 teams in the outbox {tmp_path / 'outbox'}"
    assert lines[1].split() == ["crm-operations", "4:", "3", "check_failed,", "1", "delivery_rejected", "(chat",
                                "1,", "email", "2,", "sns", "1)"]
    assert len(read_outbox(tmp_path / "outbox")) == 4


# --- routing, the ledger, what an alert shows ------------------------------------------------------

def test_routing_falls_back_to_the_platform_team_and_expands_owners():
    routing = Routing("data-platform", {"DATA_PLATFORM": TeamChannels(email=("platform@fe-pharma.example",)),
                                        "FINANCE_DATA": TeamChannels(webhook="https://hooks.example/x")})
    assert routing.channels("finance-data").webhook == "https://hooks.example/x"
    assert routing.channels("crm-operations").email == ("platform@fe-pharma.example",)
    assert Routing("data-platform").channels("crm-operations").email == ("owners",)
    assert recipients(TeamChannels(email=("owners", "x@fe-pharma.example")), alert()) == [
        "crm-ops@fe-pharma.example", "x@fe-pharma.example"]
    two = route(finding(owners=("team:a", "team:b", "a@x.example")), "data-platform")
    assert [(a.team, a.to) for a in two] == [("a", ("a@x.example",)), ("b", ("a@x.example",))]
    assert [a.team for a in route(finding(owners=()), "data-platform")] == ["data-platform"]


def test_ledger_tells_a_failure_once_until_it_recovers():
    store = MemoryStore()
    ledger = Ledger(store)
    key = finding().dedupe_key
    assert ledger.fail(key, AT) and not ledger.fail(key, AT)
    assert not Ledger(store).fail(key, AT)  # another process sees it open
    Ledger(store).recover(key)
    assert Ledger(store).fail(key, AT)
    ledger.set_cursor("runs", "42")
    assert Ledger(store).cursor("runs") == "42"


def test_only_numbers_and_named_counts_of_a_checks_metadata_are_shown():
    metadata = {"rows_quarantined": 3, "quarantine_pct": 25.0, "threshold_pct": 5.0, "passed": True,
                "by_rule": {"email_format": 2, "state_allowed": 1},
                "samples": {"state_allowed": [{"first_name": "Ana", "city": "Boston"}]},
                "landing_key": "landing/sfdc_account/SFDC_ACCOUNT_20261120.csv",
                "sample": ["ana.ruiz@clinic.example"], "counts_by_value": {"ana.ruiz@clinic.example": 1},
                "dagster_dbt/failed_row_count": 7}
    assert content.safe_numbers(metadata) == ["by_rule: email_format 2, state_allowed 1",
                                              "dagster_dbt/failed_row_count: 7", "quarantine_pct: 25",
                                              "rows_quarantined: 3", "threshold_pct: 5"]
    assert content.scrub("bad header 'ana.ruiz@clinic.example' or (617) 555-0100") == (
        "bad header '[email]' or [number]")
