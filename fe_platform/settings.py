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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
    batch_max_deliveries: int = 100
    batch_max_bytes: int = 1 << 30
    glue_database: str | None = None  # aws: validated partitions and the delivery log are registered there
    # pulled and streamed feeds (sources.md)
    sp_dispense: SpDispenseSource | None = None
    events_api: EventsApi | None = None
    engagement_stream: EngagementStream | None = None
    secret_ids: tuple[tuple[str, str], ...] = ()  # (setting, Secrets Manager id it was read from)
    alerts: AlertSettings = field(default_factory=lambda: load_alert_settings({}))

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    @property
    def work_dir(self) -> Path:
        """Scratch space of runs (validation's temporary files), cleaned of what no live run owns."""
        return self.home / "work"

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
            "ingestion_batch": {"max_deliveries": self.batch_max_deliveries, "max_bytes": self.batch_max_bytes},
            "sources": _sources_public(self),
            "alerts": self.alerts.public(),
        }
        if self.mode == "aws":
            out["aws"] = {"region": self.aws_region, "s3_endpoint_url": self.s3_endpoint_url,
                          "kms_key_id": self.kms_key_id, "glue_database": self.glue_database}
            out["secrets_from_secrets_manager"] = dict(self.secret_ids)  # ids, never values
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


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


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


# --- Pulled and streamed feeds (shared/spec/sources.md) ---------------------------------------------
# Each source is configured when its first setting is present and is None otherwise (its schedule or
# sensor then stays stopped). Secrets are repr=False and never in `public()`.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class SpDispenseSource:
    """The specialty-pharmacy hub's PostgreSQL, read with a read-only user."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    table: str = "dispense"
    sslmode: str = "prefer"

    def conninfo(self) -> dict:
        return {"host": self.host, "port": self.port, "dbname": self.database, "user": self.user,
                "password": self.password, "sslmode": self.sslmode}

    def public(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database} (table {self.table})"


@dataclass(frozen=True)
class EventsApi:
    """The internal events REST API (attendances), called with a bearer token."""

    url: str = field(repr=False)  # shown redacted: it may carry userinfo or a key in its query
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"EventsApi(url={_redacted(self.url)!r})"


@dataclass(frozen=True)
class EngagementStream:
    """The HCP engagement Kinesis stream and how its consumer buffers landing files."""

    stream: str
    region: str | None = None
    endpoint_url: str | None = None
    buffer_bytes: int = 5 << 20
    buffer_seconds: float = 60.0
    tick_seconds: float = 40.0  # one sensor tick's reading; under Dagster's 60 s sensor timeout


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _sp_dispense(env: Mapping[str, str], mode: str) -> SpDispenseSource | None:
    if not env.get("FE_SP_DISPENSE_HOST", "").strip():
        return None
    table = env.get("FE_SP_DISPENSE_TABLE", "").strip() or "dispense"
    if not all(part.strip() for part in table.split(".")) or table.count(".") > 1:
        raise SettingsError(f"FE_SP_DISPENSE_TABLE must be `table` or `schema.table`, got {table!r}")
    return SpDispenseSource(
        host=_require(env, "FE_SP_DISPENSE_HOST"),
        port=_port(env, "FE_SP_DISPENSE_PORT", 5432),
        database=_require(env, "FE_SP_DISPENSE_DATABASE"),
        user=_require(env, "FE_SP_DISPENSE_USER"),
        password=_require(env, "FE_SP_DISPENSE_PASSWORD"),
        table=table,
        sslmode=_choice(env, "FE_SP_DISPENSE_SSLMODE", SSL_MODES, "prefer" if mode == "local" else "require"),
    )


def _events_api(env: Mapping[str, str]) -> EventsApi | None:
    url = env.get("FE_EVENTS_API_URL", "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"FE_EVENTS_API_URL must be an http(s) URL, got {_redacted(url)!r}")
    return EventsApi(url=url, token=_require(env, "FE_EVENTS_API_TOKEN"))


def _engagement_stream(env: Mapping[str, str]) -> EngagementStream | None:
    stream = env.get("FE_KINESIS_STREAM", "").strip()
    if not stream:
        return None
    return EngagementStream(
        stream=stream,
        region=env.get("AWS_REGION", "").strip() or None,
        endpoint_url=env.get("FE_KINESIS_ENDPOINT_URL", "").strip() or None,
        buffer_bytes=int(_number(env, "FE_ENGAGEMENT_BUFFER_BYTES", 5 << 20, 1 << 10, 128 << 20)),
        buffer_seconds=_number(env, "FE_ENGAGEMENT_BUFFER_SECONDS", 60.0, 1, 900),
        tick_seconds=_number(env, "FE_ENGAGEMENT_TICK_SECONDS", 40.0, 1, 55),
    )


def _sources_public(s: Settings) -> dict:
    stream = s.engagement_stream
    return {
        "sp_dispense": s.sp_dispense.public() if s.sp_dispense else None,
        "events_api_url": _redacted(s.events_api.url) if s.events_api else None,
        "kinesis_stream": None if stream is None else {
            "stream": stream.stream, "endpoint_url": stream.endpoint_url, "buffer_bytes": stream.buffer_bytes,
            "buffer_seconds": stream.buffer_seconds, "tick_seconds": stream.tick_seconds},
    }


# --- secrets from AWS Secrets Manager ----------------------------------------------------------------
# In aws mode a secret setting is given by naming its secret: `FE_PII_HMAC_KEY_SECRET_ID=<name or ARN>`
# (`<id>#<key>` for one key of a JSON secret) stands for `FE_PII_HMAC_KEY`, read when the settings load.
# Any `FE_<SETTING>_SECRET_ID` works, so a new secret setting needs no change here.
SECRET_ID_SUFFIX = "_SECRET_ID"


def _secret_ids(env: Mapping[str, str]) -> dict[str, str]:
    return {name.removesuffix(SECRET_ID_SUFFIX): value.strip() for name, value in env.items()
            if name.startswith("FE_") and name.endswith(SECRET_ID_SUFFIX) and value.strip()}


def _with_secrets(env: Mapping[str, str], mode: str) -> tuple[Mapping[str, str], dict[str, str]]:
    """`env` with every `<SETTING>_SECRET_ID` replaced by the secret's value under `<SETTING>`."""
    ids = _secret_ids(env)
    if not ids:
        return env, {}
    first = sorted(ids)[0]
    if mode != "aws":
        raise SettingsError(f"{first}{SECRET_ID_SUFFIX} names a Secrets Manager secret, which needs FE_MODE=aws")
    for setting in sorted(ids):
        if env.get(setting, "").strip():
            raise SettingsError(f"{setting} and {setting}{SECRET_ID_SUFFIX} are both set; set only one")
    from fe_platform.lib.secrets import SecretUnavailable, read_secrets

    endpoint = (env.get("AWS_ENDPOINT_URL_SECRETS_MANAGER", "").strip()
                or env.get("AWS_ENDPOINT_URL", "").strip() or None)
    try:
        values = read_secrets(ids, region=_require(env, "AWS_REGION"), endpoint_url=endpoint)
    except SecretUnavailable as exc:
        raise SettingsError(str(exc)) from None
    return {**env, **values}, ids


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Resolve the settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    mode = _choice(env, "FE_MODE", MODES, "local")
    env, secret_ids = _with_secrets(env, mode)
    home = Path(env.get("FE_HOME", "").strip() or PROJECT_ROOT / ".fe_platform").resolve()
    dagster_home = Path(env.get("DAGSTER_HOME", "").strip() or home / "dagster").resolve()
    default_target = "duckdb" if mode == "local" else "redshift"
    target = _choice(env, "FE_WAREHOUSE", WAREHOUSE_TARGETS, default_target)
    duckdb_path = Path(env.get("FE_DUCKDB_PATH", "").strip() or home / "warehouse.duckdb").resolve()

    tableau = _tableau(env)
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

    postgres = _postgres(env) if target == "postgres" else None
    redshift = _redshift(env) if target == "redshift" else None
    outside = [what for what, configured in (
        ("a PostgreSQL or Redshift warehouse", target != "duckdb"),
        ("Tableau", tableau is not None),
        ("a lake outside the home", mode == "local" and not Path(lake_root).is_relative_to(home)),
        ("a DuckDB file outside the home", target == "duckdb" and not duckdb_path.is_relative_to(home)),
    ) if configured]
    if pii_key == LOCAL_PII_KEY and outside:
        # The demo key is public: the hashes it makes are reversible by anyone for known emails and phones.
        raise SettingsError(f"FE_PII_HMAC_KEY must be a secret of your own when data leaves the local home "
                            f"({' and '.join(outside)} configured); the demo key is public")

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
        postgres=postgres,
        redshift=redshift,
        tableau=tableau,
        quicksight=_quicksight(env, target),
        freshness_weekly_cron=_cron(env, "FE_FRESHNESS_WEEKLY_CRON", "0 12 * * 2"),
        freshness_daily_cron=_cron(env, "FE_FRESHNESS_DAILY_CRON", "0 8 * * *"),
        batch_max_deliveries=_positive(env, "FE_BATCH_MAX_DELIVERIES", 100),
        batch_max_bytes=_positive(env, "FE_BATCH_MAX_BYTES", 1 << 30),
        glue_database=(env.get("FE_GLUE_DATABASE", "").strip() or None) if mode == "aws" else None,
        sp_dispense=_sp_dispense(env, mode),
        events_api=_events_api(env),
        engagement_stream=_engagement_stream(env),
        secret_ids=tuple(sorted(secret_ids.items())),
        alerts=load_alert_settings(env),
    )


@cache
def settings() -> Settings:
    """The process's settings, resolved once."""
    return load_settings()



# --- alerts, digest and metrics (issue 13) ---------------------------------------------------------
#
# Every asset's owners name a team (`team:<name>`) and an email. A team's channels are three settings,
# <TEAM> being the team name in capitals, every run of other characters as one `_` (crm-operations ->
# CRM_OPERATIONS, "sales-operations" -> SALES_OPERATIONS):
#   FE_ALERTS_<TEAM>_EMAIL      addresses, comma-separated; `owners` stands for the asset's owner emails
#   FE_ALERTS_<TEAM>_WEBHOOK    a Slack/Teams incoming-webhook URL (a secret), or `outbox`
#   FE_ALERTS_<TEAM>_SNS_TOPIC  an SNS topic ARN, or `outbox`
# A team with none of them is told through the platform team's channels; with none of those either,
# alerts are emailed to the asset's owners. Email goes out by FE_ALERTS_EMAIL_TRANSPORT: `outbox` (files
# under $FE_HOME/outbox/email/, the default without FE_SMTP_HOST), `smtp` or `ses`.

ALERT_CHANNEL_SUFFIXES = ("_EMAIL", "_WEBHOOK", "_SNS_TOPIC")
ALERT_SETTINGS = ("FE_ALERTS_PLATFORM_TEAM", "FE_ALERTS_EMAIL_TRANSPORT", "FE_ALERTS_DIGEST_CRON")
EMAIL_TRANSPORTS = ("outbox", "smtp", "ses")
OUTBOX = "outbox"
OWNERS = "owners"
_TEAM = r"[A-Za-z0-9][\w&. -]{0,80}"
_ADDRESS = r"[^@\s,]+@[^@\s,]+\.[^@\s,]+"


@dataclass(frozen=True)
class TeamChannelSettings:
    email: tuple[str, ...] = ()  # addresses, or OWNERS
    webhook: str | None = field(default=None, repr=False)  # a URL (secret) or OUTBOX
    sns_topic: str | None = None  # an ARN or OUTBOX

    def public(self) -> dict:
        webhook = None if self.webhook is None else OUTBOX if self.webhook == OUTBOX else "(set, not shown)"
        return {"email": list(self.email), "webhook": webhook, "sns_topic": self.sns_topic}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    starttls: bool = True


@dataclass(frozen=True)
class AlertSettings:
    platform_team: str
    teams: dict[str, TeamChannelSettings]  # by <TEAM> as in the setting's name: CRM_OPERATIONS
    email_transport: str
    email_from: str
    smtp: SmtpSettings | None
    dagster_url: str
    digest_cron: str
    aws_region: str | None

    def public(self) -> dict:
        smtp = self.smtp
        return {
            "platform_team": self.platform_team,
            "teams": {team: channels.public() for team, channels in sorted(self.teams.items())},
            "email": {"transport": self.email_transport, "from": self.email_from,
                      "smtp": None if smtp is None else {"host": smtp.host, "port": smtp.port, "user": smtp.user,
                                                         "starttls": smtp.starttls}},
            "dagster_url": self.dagster_url,
            "digest_cron": self.digest_cron,
        }


def _team_channels(env: Mapping[str, str], name: str, suffix: str, channels: TeamChannelSettings
                   ) -> TeamChannelSettings:
    import re
    from dataclasses import replace

    value = env[name].strip()
    if suffix == "_EMAIL":
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v != OWNERS and not re.fullmatch(_ADDRESS, v)]
        if not items or bad:
            raise SettingsError(f"{name} must be email addresses separated by commas, or `{OWNERS}`"
                                + (f"; {bad[0]!r} is not an address" if bad else ""))
        return replace(channels, email=items)
    if suffix == "_WEBHOOK":
        if value != OUTBOX and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            # the value is a secret: the message does not repeat it
            raise SettingsError(f"{name} must be an http(s) incoming-webhook URL or `{OUTBOX}`")
        return replace(channels, webhook=value)
    if value != OUTBOX and not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}", value):
        raise SettingsError(f"{name} must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) or `{OUTBOX}`, "
                            f"got {value!r}")
    return replace(channels, sns_topic=value)


def _webhooks_by_team(env: Mapping[str, str]) -> dict[str, str]:
    """`FE_ALERT_WEBHOOKS`: every team's webhook in one setting, `{"<team>": "https://..."}` (one secret in AWS)."""
    raw = env.get("FE_ALERT_WEBHOOKS", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        # the value holds secrets: the message does not repeat it
        raise SettingsError('FE_ALERT_WEBHOOKS must be JSON naming a webhook URL per team: {"<team>": "https://..."}')
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def load_alert_settings(env: Mapping[str, str]) -> AlertSettings:
    """Teams' channels, the email transport, SMTP, the Dagster UI's URL for links, the digest's time."""
    import re

    platform_team = env.get("FE_ALERTS_PLATFORM_TEAM", "").strip() or "data-platform"
    if not re.fullmatch(_TEAM, platform_team):
        raise SettingsError(f"FE_ALERTS_PLATFORM_TEAM must be a team name as assets' owners name it (like "
                            f"data-platform), got {platform_team!r}")
    teams: dict[str, TeamChannelSettings] = {}
    for name in sorted(env):
        if not name.startswith("FE_ALERTS_") or name in ALERT_SETTINGS or not env[name].strip():
            continue
        suffix = next((s for s in ALERT_CHANNEL_SUFFIXES if name.endswith(s)), None)
        team_part = name[len("FE_ALERTS_"):-len(suffix)] if suffix else ""
        if suffix is None or not re.fullmatch(r"[A-Z0-9]+(_[A-Z0-9]+)*", team_part):
            raise SettingsError(f"{name} is not an alert setting: a team's channel is FE_ALERTS_<TEAM>_EMAIL, "
                                f"_WEBHOOK or _SNS_TOPIC (<TEAM> like CRM_OPERATIONS)")
        teams[team_part] = _team_channels(env, name, suffix, teams.get(team_part, TeamChannelSettings()))
    for team, url in _webhooks_by_team(env).items():
        part = re.sub(r"[^A-Z0-9]+", "_", team.upper()).strip("_")
        label = f"FE_ALERT_WEBHOOKS[{team}]"
        teams[part] = _team_channels({label: url}, label, "_WEBHOOK", teams.get(part, TeamChannelSettings()))

    host = env.get("FE_SMTP_HOST", "").strip()
    transport = _choice(env, "FE_ALERTS_EMAIL_TRANSPORT", EMAIL_TRANSPORTS, "smtp" if host else "outbox")
    smtp = None
    if transport == "smtp":
        user = env.get("FE_SMTP_USER", "").strip() or None
        password = env.get("FE_SMTP_PASSWORD", "") or None
        if user and not password:
            raise SettingsError("FE_SMTP_PASSWORD is required when FE_SMTP_USER is set")
        smtp = SmtpSettings(host=_require(env, "FE_SMTP_HOST"), port=_port(env, "FE_SMTP_PORT", 587), user=user,
                            password=password, starttls=_bool(env, "FE_SMTP_STARTTLS", True))
    region = env.get("AWS_REGION", "").strip() or None
    if transport == "ses" and not region:
        raise SettingsError("AWS_REGION is required when FE_ALERTS_EMAIL_TRANSPORT is ses")
    sender = env.get("FE_SMTP_FROM", "").strip() or "fe-platform@localhost"
    if not re.fullmatch(r"[^@\s,]+@[^@\s,]+", sender):
        raise SettingsError(f"FE_SMTP_FROM must be an email address, got {sender!r}")
    dagster_url = (env.get("FE_DAGSTER_URL", "").strip() or "http://127.0.0.1:3000").rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", dagster_url):
        raise SettingsError(f"FE_DAGSTER_URL must be the http(s) URL of the Dagster UI, got {dagster_url!r}")
    return AlertSettings(
        platform_team=platform_team,
        teams=teams,
        email_transport=transport,
        email_from=sender,
        smtp=smtp,
        dagster_url=dagster_url,
        digest_cron=_cron(env, "FE_ALERTS_DIGEST_CRON", "0 7 * * *"),
        aws_region=region,
    )


@contextmanager
def environ_set(values: Mapping[str, str]) -> Iterator[None]:
    """The process environment with `values` set while the block runs, as it was again afterwards."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
