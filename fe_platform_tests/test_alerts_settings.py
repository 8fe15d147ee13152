"""Alert settings: each team's channels, SMTP, the UI's URL; bad values name their setting; secrets unseen.
And the operations definitions beside the platform's own."""

import json
import subprocess
import sys

import dagster as dg
import pytest

from fe_platform.defs.operations.alerts import routing_from, summary_lines, transports_from, watched_assets
from fe_platform.settings import SettingsError, load_settings

WEBHOOK = "https://hooks.slack.example/services/T000/B000/very-secret-token"


def test_teams_channels_smtp_and_links_resolve(tmp_path):
    s = load_settings({"FE_HOME": str(tmp_path), "FE_ALERTS_CRM_OPERATIONS_EMAIL": "owners, oncall@fe-pharma.example",
                       "FE_ALERTS_CRM_OPERATIONS_WEBHOOK": WEBHOOK,
                       "FE_ALERTS_F_E_SALES_OPERATIONS_SNS_TOPIC": "arn:aws:sns:us-east-1:123456789012:fe-sales",
                       "FE_ALERTS_PLATFORM_TEAM": "data-engineering", "FE_SMTP_HOST": "smtp.fe-pharma.example",
                       "FE_SMTP_USER": "alerts", "FE_SMTP_PASSWORD": "smtp-pw-secret",
                       "FE_SMTP_FROM": "fe-platform@fe-pharma.example", "FE_DAGSTER_URL": "https://dagster.fe.example/"})
    a = s.alerts
    assert (a.email_transport, a.smtp.host, a.smtp.port, a.smtp.starttls) == ("smtp", "smtp.fe-pharma.example", 587,
                                                                              True)
    assert a.dagster_url == "https://dagster.fe.example" and a.digest_cron == "0 7 * * *"
    routing = routing_from(s)
    assert routing.channels("crm-operations").email == ("owners", "oncall@fe-pharma.example")
    assert routing.channels("crm-operations").webhook == WEBHOOK
    assert routing.channels("F&E Sales Operations").sns_topic == "arn:aws:sns:us-east-1:123456789012:fe-sales"
    assert routing.channels("finance-data") == routing.channels("data-engineering")  # the platform team's
    transports = transports_from(s)
    assert transports.outbox == tmp_path / "outbox" and transports.smtp.password == "smtp-pw-secret"
    assert "smtp-pw-secret" not in repr(s) and "very-secret-token" not in repr(s)


def test_local_default_writes_email_to_the_outbox(tmp_path):
    s = load_settings({"FE_HOME": str(tmp_path)})
    assert (s.alerts.email_transport, s.alerts.smtp, s.alerts.platform_team) == ("outbox", None, "data-platform")
    assert s.alerts.dagster_url == "http://127.0.0.1:3000"
    assert routing_from(s).channels("crm-operations").email == ("owners",)


@pytest.mark.parametrize("env,named", [
    ({"FE_ALERTS_CRM_OPERATIONS_EMAIL": "crm-ops at fe-pharma"}, "FE_ALERTS_CRM_OPERATIONS_EMAIL"),
    ({"FE_ALERTS_CRM_OPERATIONS_WEBHOOK": "ftp://hooks.example/x"}, "FE_ALERTS_CRM_OPERATIONS_WEBHOOK"),
    ({"FE_ALERTS_CRM_OPERATIONS_SNS_TOPIC": "crm-topic"}, "FE_ALERTS_CRM_OPERATIONS_SNS_TOPIC"),
    ({"FE_ALERTS_CRM_OPERATIONS_PAGER": "123"}, "FE_ALERTS_CRM_OPERATIONS_PAGER"),
    ({"FE_ALERTS_PLATFORM_TEAM": "!!"}, "FE_ALERTS_PLATFORM_TEAM"),
    ({"FE_ALERTS_EMAIL_TRANSPORT": "pigeon"}, "FE_ALERTS_EMAIL_TRANSPORT"),
    ({"FE_ALERTS_EMAIL_TRANSPORT": "smtp"}, "FE_SMTP_HOST"),
    ({"FE_ALERTS_EMAIL_TRANSPORT": "ses"}, "AWS_REGION"),
    ({"FE_SMTP_HOST": "smtp.example", "FE_SMTP_PORT": "smtp"}, "FE_SMTP_PORT"),
    ({"FE_SMTP_HOST": "smtp.example", "FE_SMTP_USER": "alerts"}, "FE_SMTP_PASSWORD"),
    ({"FE_SMTP_HOST": "smtp.example", "FE_SMTP_STARTTLS": "maybe"}, "FE_SMTP_STARTTLS"),
    ({"FE_SMTP_FROM": "nobody"}, "FE_SMTP_FROM"),
    ({"FE_DAGSTER_URL": "dagster:3000"}, "FE_DAGSTER_URL"),
    ({"FE_ALERTS_DIGEST_CRON": "daily"}, "FE_ALERTS_DIGEST_CRON"),
])
def test_invalid_alert_settings_fail_naming_the_setting(tmp_path, env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings({"FE_HOME": str(tmp_path), **env})


def test_a_bad_webhook_url_is_not_repeated_in_the_error(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings({"FE_HOME": str(tmp_path), "FE_ALERTS_CRM_OPERATIONS_WEBHOOK": "hooks.example/secret-123"})
    assert "secret-123" not in str(error.value)


def test_info_shows_channels_but_no_secret(tmp_path):
    env = {"FE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "FE_ALERTS_CRM_OPERATIONS_WEBHOOK": WEBHOOK,
           "FE_ALERTS_CRM_OPERATIONS_EMAIL": "owners", "FE_SMTP_HOST": "smtp.fe-pharma.example",
           "FE_SMTP_USER": "alerts", "FE_SMTP_PASSWORD": "smtp-pw-secret"}
    out = subprocess.run([sys.executable, "-m", "fe_platform.cli", "info"], env=env, capture_output=True, text=True,
                         check=True).stdout
    alerts = json.loads(out)["alerts"]
    assert alerts["teams"]["CRM_OPERATIONS"] == {"email": ["owners"], "webhook": "(set, not shown)",
                                                 "sns_topic": None}
    assert alerts["email"]["smtp"] == {"host": "smtp.fe-pharma.example", "port": 587, "user": "alerts",
                                       "starttls": True}
    assert "very-secret-token" not in out and "smtp-pw-secret" not in out and "hooks.slack" not in out


def test_operations_definitions_merge_with_the_platforms_and_watch_feeds_and_dashboards(tmp_path):
    from fe_platform.definitions import build_definitions

    settings = load_settings({"FE_HOME": str(tmp_path)})
    defs = build_definitions(settings)  # operations are part of the platform's definitions
    assert defs.resolve_sensor_def("operations_alerts").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("operations_metrics").default_status == dg.DefaultSensorStatus.STOPPED
    assert defs.resolve_schedule_def("operations_daily_digest").cron_schedule == "0 7 * * *"
    watched = {w.key.to_user_string() for w in watched_assets(defs.resolve_asset_graph())}
    assert {"validated_iqvia_rx", "validated_sfdc_account", "dashboards/brand-performance"} <= watched
    assert not any(k.startswith(("raw_", "landing_", "marts/")) for k in watched)
    assert summary_lines(settings, []) == ["  alerts this run: 0", f"  alerts: none in the outbox ({tmp_path}/outbox)"]


def test_every_teams_webhook_in_one_setting_as_the_aws_secret_holds_them(tmp_path):
    hooks = {"crm-operations": "https://hooks.example/crm-secret", "finance-data": "https://hooks.example/fin"}
    alerts = load_settings({"FE_HOME": str(tmp_path), "FE_ALERT_WEBHOOKS": json.dumps(hooks),
                            "FE_ALERTS_CRM_OPERATIONS_EMAIL": "crm@fe-pharma.example"}).alerts
    assert alerts.teams["CRM_OPERATIONS"].webhook == hooks["crm-operations"]
    assert alerts.teams["CRM_OPERATIONS"].email == ("crm@fe-pharma.example",)
    assert alerts.teams["FINANCE_DATA"].webhook == hooks["finance-data"]
    with pytest.raises(SettingsError, match="FE_ALERT_WEBHOOKS") as refused:
        load_settings({"FE_HOME": str(tmp_path), "FE_ALERT_WEBHOOKS": '["https://hooks.example/leak"]'})
    assert "leak" not in str(refused.value)
