"""Secrets in aws mode come from Secrets Manager (a moto server over HTTP): the settings name the secrets,
the platform reads them at load, and neither `fe-platform info`, an error nor a log shows a value."""

import json
import logging
import subprocess
import sys
import uuid

import boto3
import pytest

from fe_platform.settings import SettingsError, load_settings

PII_KEY = "pii-key-" + "k" * 40
WAREHOUSE_PASSWORD = "Warehouse-Pa55word-not-to-be-shown"


@pytest.fixture
def secrets(moto_endpoint, monkeypatch):
    """Two secrets as the stack creates them: a plain one and a JSON one; their ARNs."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    pii = client.create_secret(Name=f"fe/test/pii-hmac-key-{suffix}", SecretString=PII_KEY)["ARN"]
    warehouse = client.create_secret(Name=f"fe/test/warehouse-{suffix}", SecretString=json.dumps(
        {"username": "fe_admin", "password": WAREHOUSE_PASSWORD}))["ARN"]
    return {"pii": pii, "warehouse": warehouse}


def aws_settings_env(moto_endpoint, secrets, tmp_path) -> dict[str, str]:
    return {
        "FE_MODE": "aws", "FE_HOME": str(tmp_path), "AWS_REGION": "us-east-1", "FE_S3_BUCKET": "fe-lake",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint,
        "FE_PII_HMAC_KEY_SECRET_ID": secrets["pii"],
        "FE_REDSHIFT_HOST": "rs.internal", "FE_REDSHIFT_DATABASE": "fe", "FE_REDSHIFT_USER": "fe_admin",
        "FE_REDSHIFT_IAM_ROLE_ARN": "arn:aws:iam::123456789012:role/warehouse-load",
        "FE_REDSHIFT_PASSWORD_SECRET_ID": secrets["warehouse"] + "#password",
    }


def test_aws_mode_reads_named_secrets_at_load(moto_endpoint, secrets, tmp_path):
    s = load_settings(aws_settings_env(moto_endpoint, secrets, tmp_path))
    assert s.pii_hmac_key == PII_KEY
    assert s.redshift.password == WAREHOUSE_PASSWORD
    assert dict(s.secret_ids) == {"FE_PII_HMAC_KEY": secrets["pii"],
                                  "FE_REDSHIFT_PASSWORD": secrets["warehouse"] + "#password"}
    shown = repr(s) + s.to_json()
    assert PII_KEY not in shown and WAREHOUSE_PASSWORD not in shown
    assert json.loads(s.to_json())["secrets_from_secrets_manager"]["FE_PII_HMAC_KEY"] == secrets["pii"]


@pytest.mark.parametrize("change,named", [
    ({"FE_PII_HMAC_KEY_SECRET_ID": "fe/test/no-such-secret"}, "fe/test/no-such-secret"),
    ({"FE_REDSHIFT_PASSWORD_SECRET_ID": "{warehouse}#no_such_key"}, "no_such_key"),
])
def test_a_missing_secret_stops_the_load_naming_it_not_a_value(moto_endpoint, secrets, tmp_path, change, named):
    env = aws_settings_env(moto_endpoint, secrets, tmp_path)
    env.update({k: v.format(warehouse=secrets["warehouse"]) for k, v in change.items()})
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    message = str(raised.value)
    assert named in message and next(iter(change)).removesuffix("_SECRET_ID") in message
    assert PII_KEY not in message and WAREHOUSE_PASSWORD not in message


def test_a_secret_setting_given_twice_or_outside_aws_mode_is_refused(moto_endpoint, secrets, tmp_path):
    env = aws_settings_env(moto_endpoint, secrets, tmp_path)
    with pytest.raises(SettingsError, match="FE_PII_HMAC_KEY and FE_PII_HMAC_KEY_SECRET_ID are both set"):
        load_settings({**env, "FE_PII_HMAC_KEY": "x" * 32})
    with pytest.raises(SettingsError, match="needs FE_MODE=aws"):
        load_settings({"FE_HOME": str(tmp_path), "FE_PII_HMAC_KEY_SECRET_ID": secrets["pii"]})


def test_no_secret_value_reaches_a_log_even_at_debug(moto_endpoint, secrets, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        load_settings(aws_settings_env(moto_endpoint, secrets, tmp_path))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GetSecretValue" in logged or "secretsmanager" in logged.lower()  # botocore did log the calls
    assert PII_KEY not in logged and WAREHOUSE_PASSWORD not in logged


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return subprocess.run([sys.executable, "-m", "fe_platform.cli", "info"], env={**base, **env},
                          capture_output=True, text=True)


def test_info_names_the_secrets_and_shows_no_value(moto_endpoint, secrets, tmp_path):
    done = run_cli(aws_settings_env(moto_endpoint, secrets, tmp_path))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["secrets_from_secrets_manager"] == {"FE_PII_HMAC_KEY": secrets["pii"],
                                                    "FE_REDSHIFT_PASSWORD": secrets["warehouse"] + "#password"}
    everything = done.stdout + done.stderr
    assert PII_KEY not in everything and WAREHOUSE_PASSWORD not in everything


def test_info_with_a_missing_secret_exits_naming_it(moto_endpoint, secrets, tmp_path):
    env = {**aws_settings_env(moto_endpoint, secrets, tmp_path), "FE_PII_HMAC_KEY_SECRET_ID": "fe/test/deleted"}
    done = run_cli(env)
    assert done.returncode == 2
    assert "FE_PII_HMAC_KEY" in done.stderr and "fe/test/deleted" in done.stderr
    assert WAREHOUSE_PASSWORD not in done.stderr + done.stdout
