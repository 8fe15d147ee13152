"""Settings: one module reads the environment; a bad setting fails at load, naming itself."""

import json
import subprocess
import sys

import pytest

from fe_platform.settings import LOCAL_PII_KEY, SettingsError, load_settings


def test_local_default_keeps_everything_under_one_home(tmp_path):
    s = load_settings({"FE_HOME": str(tmp_path)})
    assert (s.mode, s.warehouse_target) == ("local", "duckdb")
    assert s.lake_root == str(tmp_path / "lake")
    assert s.duckdb_path == tmp_path / "warehouse.duckdb"
    assert s.dagster_home == tmp_path / "dagster"
    assert s.dashboards_dir == tmp_path / "dashboards"
    assert s.tableau is None


@pytest.mark.parametrize("env,named", [
    ({"FE_MODE": "cloud"}, "FE_MODE"),
    ({"FE_WAREHOUSE": "oracle"}, "FE_WAREHOUSE"),
    ({"FE_MODE": "aws"}, "FE_S3_BUCKET"),
    ({"FE_MODE": "aws", "FE_S3_BUCKET": "b", "AWS_REGION": "eu-west-1", "FE_WAREHOUSE": "duckdb"}, "FE_PII_HMAC_KEY"),
    ({"FE_MODE": "aws", "FE_S3_BUCKET": "b", "AWS_REGION": "eu-west-1", "FE_WAREHOUSE": "duckdb",
      "FE_PII_HMAC_KEY": LOCAL_PII_KEY}, "FE_PII_HMAC_KEY"),
    ({"FE_MODE": "aws", "FE_S3_BUCKET": "b", "AWS_REGION": "eu-west-1", "FE_PII_HMAC_KEY": "x" * 32},
     "FE_REDSHIFT_HOST"),
    ({"FE_WAREHOUSE": "postgres", "FE_POSTGRES_HOST": "h", "FE_POSTGRES_DATABASE": "d", "FE_POSTGRES_USER": "u",
      "FE_POSTGRES_PORT": "99999"}, "FE_POSTGRES_PORT"),
    ({"FE_TABLEAU_SERVER_URL": "https://tableau.example"}, "FE_TABLEAU_PROJECT"),
    ({"FE_FRESHNESS_DAILY_CRON": "8am"}, "FE_FRESHNESS_DAILY_CRON"),
    ({"FE_BATCH_MAX_DELIVERIES": "0"}, "FE_BATCH_MAX_DELIVERIES"),
    # the public demo key is refused as soon as data leaves the local home
    ({"FE_WAREHOUSE": "postgres", "FE_POSTGRES_HOST": "h", "FE_POSTGRES_DATABASE": "d", "FE_POSTGRES_USER": "u"},
     "FE_PII_HMAC_KEY"),
    ({"FE_TABLEAU_SERVER_URL": "https://tableau.example", "FE_TABLEAU_PROJECT": "FE", "FE_TABLEAU_TOKEN_NAME": "n",
      "FE_TABLEAU_TOKEN_SECRET": "t"}, "FE_PII_HMAC_KEY"),
    ({"FE_LAKE_ROOT": "/srv/shared/lake"}, "FE_PII_HMAC_KEY"),
    ({"FE_DUCKDB_PATH": "/srv/shared/warehouse.duckdb"}, "FE_PII_HMAC_KEY"),
])
def test_invalid_settings_fail_naming_the_setting(tmp_path, env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings({"FE_HOME": str(tmp_path), **env})


def test_aws_mode_resolves_the_s3_lake_and_redshift():
    s = load_settings({"FE_MODE": "aws", "FE_S3_BUCKET": "fe-lake", "FE_S3_PREFIX": "/prod/", "AWS_REGION": "us-east-1",
                       "FE_KMS_KEY_ID": "alias/fe", "FE_PII_HMAC_KEY": "s3cr3t-s3cr3t-s3cr3t",
                       "FE_REDSHIFT_HOST": "rs.example", "FE_REDSHIFT_DATABASE": "fe", "FE_REDSHIFT_USER": "etl",
                       "FE_REDSHIFT_PASSWORD": "pw-not-shown", "FE_REDSHIFT_IAM_ROLE_ARN": "arn:aws:iam::1:role/r"})
    assert s.lake_root == "s3://fe-lake/prod" and s.lake_is_s3
    assert s.warehouse_target == "redshift" and s.redshift.port == 5439
    assert "pw-not-shown" not in repr(s) and "s3cr3t" not in repr(s)


def test_info_prints_resolved_settings_without_secrets(tmp_path):
    env = {"FE_HOME": str(tmp_path), "FE_PII_HMAC_KEY": "local-secret-value-123", "PATH": "/usr/bin:/bin",
           "FE_TABLEAU_SERVER_URL": "https://tableau.example", "FE_TABLEAU_PROJECT": "FE",
           "FE_TABLEAU_TOKEN_NAME": "etl", "FE_TABLEAU_TOKEN_SECRET": "token-secret-value"}
    out = subprocess.run([sys.executable, "-m", "fe_platform.cli", "info"], env=env, capture_output=True, text=True,
                         check=True).stdout
    info = json.loads(out)
    assert info["mode"] == "local" and info["warehouse"]["target"] == "duckdb"
    assert info["lake_root"] == str(tmp_path / "lake") and info["dagster_home"] == str(tmp_path / "dagster")
    assert info["dashboards_published_to"] == "https://tableau.example"
    assert "local-secret-value-123" not in out and "token-secret-value" not in out


def test_invalid_settings_exit_with_a_message(tmp_path):
    run = subprocess.run([sys.executable, "-m", "fe_platform.cli", "info"], capture_output=True, text=True,
                         env={"FE_HOME": str(tmp_path), "FE_MODE": "gcp", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2 and "FE_MODE" in run.stderr
