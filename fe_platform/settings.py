"""The platform's settings: the only module that reads the environment.

Two modes. `local` (the default) keeps everything under one home folder: the lake
folder, the DuckDB warehouse, the Dagster instance and the dashboards. `aws` puts the
lake in S3 (SSE-KMS when a key is given), the warehouse in Redshift and publishes
dashboards to Tableau Server or Tableau Cloud. A missing or invalid setting raises
`SettingsError` naming the setting, at load time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODES = ("local", "aws")
WAREHOUSE_TARGETS = ("duckdb", "postgres", "redshift")
# The key that hashes PII in local mode only, so the demo runs without secrets; aws mode refuses it.
LOCAL_PII_KEY = "fe-platform-local-demo-key-not-for-production"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)

    def conninfo(self) -> dict:
        return {"host": self.host, "port": self.port, "dbname": self.database,
                "user": self.user, "password": self.password}


@dataclass(frozen=True)
class RedshiftSettings:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    iam_role_arn: str


@dataclass(frozen=True)
class TableauSettings:
    server_url: str
    site: str
    project: str
    token_name: str
    token_secret: str = field(repr=False)


# ---------------------------------------------------------------- QuickSight (dashboards)

@dataclass(frozen=True)
class QuickSightSettings:
    """Where dashboards publish their reporting tables as QuickSight data sets (SPICE).

    The data sets read the warehouse through `data_source_arn` when given (a data source made
    outside the platform), else through a data source the platform keeps over the warehouse's
    own connection (PostgreSQL or Redshift; QuickSight cannot reach a DuckDB file).
    """

    account_id: str
    region: str
    data_source_arn: str | None = None
    endpoint_url: str | None = None  # a QuickSight-compatible endpoint (the tests point it at moto)
    principal_arns: tuple[str, ...] = ()  # users or groups granted the data sets

    def public(self) -> dict:
        return {"account_id": self.account_id, "region": self.region, "data_source_arn": self.data_source_arn,
                "endpoint_url": self.endpoint_url, "principal_arns": list(self.principal_arns)}


def _quicksight(env: Mapping[str, str], warehouse_target: str) -> QuickSightSettings | None:
    account = env.get("FE_QUICKSIGHT_ACCOUNT_ID", "").strip()
    if not account:
        return None
    if not (account.isdigit() and len(account) == 12):
        raise SettingsError(f"FE_QUICKSIGHT_ACCOUNT_ID must be a 12-digit AWS account id, got {account!r}")
    region = env.get("FE_QUICKSIGHT_REGION", "").strip() or env.get("AWS_REGION", "").strip()
    if not region:
        raise SettingsError("FE_QUICKSIGHT_REGION (or AWS_REGION) is required when FE_QUICKSIGHT_ACCOUNT_ID is set")
    arn = env.get("FE_QUICKSIGHT_DATA_SOURCE_ARN", "").strip() or None
    if arn and (not arn.startswith("arn:") or ":datasource/" not in arn):
        raise SettingsError(f"FE_QUICKSIGHT_DATA_SOURCE_ARN must be a QuickSight data source ARN, got {arn!r}")
    if arn is None and warehouse_target == "duckdb":
        raise SettingsError("FE_QUICKSIGHT_ACCOUNT_ID needs FE_QUICKSIGHT_DATA_SOURCE_ARN or a warehouse QuickSight "
                            "can reach (FE_WAREHOUSE=postgres or redshift), not the DuckDB file")
    principals = tuple(p.strip() for p in env.get("FE_QUICKSIGHT_PRINCIPAL_ARNS", "").split(",") if p.strip())
    bad = [p for p in principals if not p.startswith("arn:")]
    if bad:
        raise SettingsError(f"FE_QUICKSIGHT_PRINCIPAL_ARNS must be ARNs separated by commas, got {bad[0]!r}")
    return QuickSightSettings(account_id=account, region=region, data_source_arn=arn,
                              endpoint_url=env.get("FE_QUICKSIGHT_ENDPOINT_URL", "").strip() or None,
                              principal_arns=principals)


# ---------------------------------------------------------------- all settings

@dataclass(frozen=True)
class Settings:
    mode: str
    home: Path
    lake_root: str  # a folder in local mode, s3://bucket/prefix in aws mode
    warehouse_target: str
    duckdb_path: Path
    dagster_home: Path
    dashboards_dir: Path  # where extracts and previews are written locally
    pii_hmac_key: str = field(repr=False)
    fx_api_url: str | None = None
    aws_region: str | None = None
    s3_endpoint_url: str | None = None
    kms_key_id: str | None = None
    postgres: PostgresSettings | None = None
    redshift: RedshiftSettings | None = None
    tableau: TableauSettings | None = None
    quicksight: QuickSightSettings | None = None
    freshness_weekly_cron: str = "0 12 * * 2"
    freshness_daily_cron: str = "0 8 * * *"

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    def public(self) -> dict:
        """The resolved settings without secrets, as `fe-platform info` prints them."""
        out = {
            "mode": self.mode,
            "home": str(self.home),
            "lake_root": self.lake_root,
            "warehouse": {"target": self.warehouse_target, "location": self.warehouse_location()},
            "dagster_home": str(self.dagster_home),
            "dashboards": str(self.dashboards_dir),
            "dashboards_published_to": self.tableau.server_url if self.tableau else None,
            "quicksight": self.quicksight.public() if self.quicksight else None,
            "fx_api_url": _redacted(self.fx_api_url),
        }
        if self.mode == "aws":
            out["aws"] = {"region": self.aws_region, "s3_endpoint_url": self.s3_endpoint_url,
                          "kms_key_id": self.kms_key_id}
        return out

    def warehouse_location(self) -> str:
        if self.warehouse_target == "duckdb":
            return str(self.duckdb_path)
        if self.warehouse_target == "postgres":
            pg = self.postgres
            return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
        rs = self.redshift
        return f"redshift://{rs.user}@{rs.host}:{rs.port}/{rs.database}"

    def to_json(self) -> str:
        return json.dumps(self.public(), indent=2)


def _redacted(url: str | None) -> str | None:
    from fe_platform.lib.fx_api import redact_url  # the URL may carry an API key in its query

    return redact_url(url) if url else None


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default)).strip()
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name} must be a TCP port number, got {raw!r}")
    return int(raw)


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if len(value.split()) != 5:
        raise SettingsError(f"{name} must be a five-field cron expression, got {value!r}")
    return value


def _postgres(env: Mapping[str, str]) -> PostgresSettings:
    return PostgresSettings(
        host=_require(env, "FE_POSTGRES_HOST"),
        port=_port(env, "FE_POSTGRES_PORT", 5432),
        database=_require(env, "FE_POSTGRES_DATABASE"),
        user=_require(env, "FE_POSTGRES_USER"),
        password=env.get("FE_POSTGRES_PASSWORD", ""),
    )


def _redshift(env: Mapping[str, str]) -> RedshiftSettings:
    return RedshiftSettings(
        host=_require(env, "FE_REDSHIFT_HOST"),
        port=_port(env, "FE_REDSHIFT_PORT", 5439),
        database=_require(env, "FE_REDSHIFT_DATABASE"),
        user=_require(env, "FE_REDSHIFT_USER"),
        password=_require(env, "FE_REDSHIFT_PASSWORD"),
        iam_role_arn=_require(env, "FE_REDSHIFT_IAM_ROLE_ARN"),
    )


def _tableau(env: Mapping[str, str]) -> TableauSettings | None:
    if not env.get("FE_TABLEAU_SERVER_URL", "").strip():
        return None
    return TableauSettings(
        server_url=_require(env, "FE_TABLEAU_SERVER_URL").rstrip("/"),
        site=env.get("FE_TABLEAU_SITE", "").strip(),
        project=_require(env, "FE_TABLEAU_PROJECT"),
        token_name=_require(env, "FE_TABLEAU_TOKEN_NAME"),
        token_secret=_require(env, "FE_TABLEAU_TOKEN_SECRET"),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Resolve the settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    mode = _choice(env, "FE_MODE", MODES, "local")
    home = Path(env.get("FE_HOME", "").strip() or PROJECT_ROOT / ".fe_platform").resolve()
    dagster_home = Path(env.get("DAGSTER_HOME", "").strip() or home / "dagster").resolve()
    default_target = "duckdb" if mode == "local" else "redshift"
    target = _choice(env, "FE_WAREHOUSE", WAREHOUSE_TARGETS, default_target)
    duckdb_path = Path(env.get("FE_DUCKDB_PATH", "").strip() or home / "warehouse.duckdb").resolve()

    if mode == "local":
        lake_root = str(Path(env.get("FE_LAKE_ROOT", "").strip() or home / "lake").resolve())
        if lake_root.startswith("s3:"):
            raise SettingsError("FE_LAKE_ROOT must be a folder in local mode; use FE_MODE=aws for S3")
        pii_key = env.get("FE_PII_HMAC_KEY", "").strip() or LOCAL_PII_KEY
        region = endpoint = kms = None
    else:
        bucket = _require(env, "FE_S3_BUCKET")
        prefix = env.get("FE_S3_PREFIX", "").strip().strip("/")
        lake_root = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        region = _require(env, "AWS_REGION")
        endpoint = env.get("FE_S3_ENDPOINT_URL", "").strip() or None
        kms = env.get("FE_KMS_KEY_ID", "").strip() or None
        pii_key = _require(env, "FE_PII_HMAC_KEY")
        if pii_key == LOCAL_PII_KEY:
            raise SettingsError("FE_PII_HMAC_KEY must be a secret of your own in aws mode, not the demo key")
        if len(pii_key) < 16:
            raise SettingsError("FE_PII_HMAC_KEY must be at least 16 characters")

    return Settings(
        mode=mode,
        home=home,
        lake_root=lake_root,
        warehouse_target=target,
        duckdb_path=duckdb_path,
        dagster_home=dagster_home,
        dashboards_dir=home / "dashboards",
        pii_hmac_key=pii_key,
        fx_api_url=env.get("FE_FX_API_URL", "").strip() or None,
        aws_region=region,
        s3_endpoint_url=endpoint,
        kms_key_id=kms,
        postgres=_postgres(env) if target == "postgres" else None,
        redshift=_redshift(env) if target == "redshift" else None,
        tableau=_tableau(env),
        quicksight=_quicksight(env, target),
        freshness_weekly_cron=_cron(env, "FE_FRESHNESS_WEEKLY_CRON", "0 12 * * 2"),
        freshness_daily_cron=_cron(env, "FE_FRESHNESS_DAILY_CRON", "0 8 * * *"),
    )


@cache
def settings() -> Settings:
    """The process's settings, resolved once."""
    return load_settings()

