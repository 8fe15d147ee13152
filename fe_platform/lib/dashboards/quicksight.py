"""Publish reporting tables to Amazon QuickSight as data sets over the warehouse, and refresh them.

Plain boto3. A data set is one reporting table read through a QuickSight data source (the
warehouse), imported into SPICE; publishing creates it, or updates it when it exists, then starts
a full-refresh ingestion. The data source is either given (an ARN made outside the platform) or
kept by `ensure_data_source` over the warehouse's own connection. The warehouse password goes to
QuickSight in the request and nowhere else: never into a log line or an exception message.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .reporting import ReportingTable

log = logging.getLogger(__name__)

DATA_SET_ACTIONS = (
    "quicksight:DescribeDataSet", "quicksight:DescribeDataSetPermissions", "quicksight:PassDataSet",
    "quicksight:DescribeIngestion", "quicksight:ListIngestions",
)
DATA_SOURCE_ACTIONS = ("quicksight:DescribeDataSource", "quicksight:DescribeDataSourcePermissions",
                       "quicksight:PassDataSource")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class QuickSightPublishError(RuntimeError):
    """Publishing to QuickSight failed; the message says which data set or source and why (never a password)."""


@dataclass(frozen=True)
class WarehouseConnection:
    """How QuickSight reaches the warehouse: `kind` is "postgres" or "redshift"."""

    kind: str
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class DataSetSpec:
    """One reporting table as a QuickSight data set."""

    data_set_id: str
    name: str
    schema: str
    table: str
    columns: Sequence[tuple[str, str]]  # (column, QuickSight input type)


def client(region: str, endpoint_url: str | None = None):
    return boto3.client("quicksight", region_name=region, endpoint_url=endpoint_url,
                        config=Config(retries={"mode": "standard", "max_attempts": 5}))


def safe_id(*parts: str) -> str:
    """A QuickSight resource id from words: letters, digits, '-' and '_' only."""
    return _ID_UNSAFE.sub("-", "-".join(parts)).strip("-")[:512]


def input_type(data_type: str) -> str:
    """The QuickSight input column type for a warehouse column type of the reporting contract."""
    t = data_type.lower().strip()
    if t.startswith(("varchar", "text", "char", "string", "character")):
        return "STRING"
    if t in ("bigint", "integer", "int", "smallint", "int8", "int4", "int2"):
        return "INTEGER"
    if t.startswith(("double", "float", "real", "numeric", "decimal")):
        return "DECIMAL"
    if t.startswith(("date", "timestamp")):
        return "DATETIME"
    if t in ("boolean", "bool"):
        return "BOOLEAN"
    raise ValueError(f"no QuickSight type for warehouse type {data_type!r}")


def _error(err: Exception) -> str:
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        return f"{e.get('Code', 'error')}: {e.get('Message', '')}".strip()
    return type(err).__name__


def _code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def _permissions(principals: Iterable[str], actions: Sequence[str]) -> list[dict]:
    return [{"Principal": p, "Actions": list(actions)} for p in principals]


def ensure_data_source(qs, account_id: str, data_source_id: str, name: str, connection: WarehouseConnection,
                       principals: Sequence[str] = ()) -> str:
    """Create the warehouse data source, or update it to `connection`; return its ARN."""
    if connection.kind not in ("postgres", "redshift"):
        raise QuickSightPublishError(f"QuickSight cannot reach a {connection.kind} warehouse")
    kind, key = ("POSTGRESQL", "PostgreSqlParameters") if connection.kind == "postgres" \
        else ("REDSHIFT", "RedshiftParameters")
    params = {key: {"Host": connection.host, "Port": connection.port, "Database": connection.database}}
    credentials = {"CredentialPair": {"Username": connection.user, "Password": connection.password}}
    where = f"QuickSight data source {data_source_id!r} (account {account_id})"
    try:
        try:
            qs.describe_data_source(AwsAccountId=account_id, DataSourceId=data_source_id)
        except ClientError as err:
            if _code(err) != "ResourceNotFoundException":
                raise
            extra = {"Permissions": _permissions(principals, DATA_SOURCE_ACTIONS)} if principals else {}
            created = qs.create_data_source(AwsAccountId=account_id, DataSourceId=data_source_id, Name=name,
                                            Type=kind, DataSourceParameters=params, Credentials=credentials,
                                            **extra)
            log.info("created %s over %s:%s/%s", where, connection.host, connection.port, connection.database)
            return created["Arn"]
        updated = qs.update_data_source(AwsAccountId=account_id, DataSourceId=data_source_id, Name=name,
                                        DataSourceParameters=params, Credentials=credentials)
        return updated["Arn"]
    except (ClientError, BotoCoreError) as err:
        raise QuickSightPublishError(f"{where}: {_error(err)}") from None


def _data_set_request(account_id: str, data_source_arn: str, spec: DataSetSpec) -> dict:
    return {
        "AwsAccountId": account_id,
        "DataSetId": spec.data_set_id,
        "Name": spec.name,
        "ImportMode": "SPICE",
        "PhysicalTableMap": {
            "reporting": {"RelationalTable": {
                "DataSourceArn": data_source_arn, "Schema": spec.schema, "Name": spec.table,
                "InputColumns": [{"Name": c, "Type": t} for c, t in spec.columns],
            }},
        },
    }


def publish_data_sets(qs, account_id: str, data_source_arn: str, specs: Sequence[DataSetSpec],
                      principals: Sequence[str] = (), now: datetime | None = None) -> dict[str, dict]:
    """Create or update each data set, then start a full-refresh SPICE ingestion of each.

    Returns data set id -> {"arn", "ingestion_id", "ingestion_status"}. Raises
    `QuickSightPublishError` naming the data set.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    out: dict[str, dict] = {}
    for spec in specs:
        request = _data_set_request(account_id, data_source_arn, spec)
        where = f"QuickSight data set {spec.data_set_id!r} ({spec.schema}.{spec.table})"
        try:
            try:
                extra = {"Permissions": _permissions(principals, DATA_SET_ACTIONS)} if principals else {}
                arn = qs.create_data_set(**request, **extra)["Arn"]
            except ClientError as err:
                if _code(err) != "ResourceExistsException":
                    raise
                arn = qs.update_data_set(**request)["Arn"]
            ingestion_id = f"fe-{stamp}-{uuid.uuid4().hex[:8]}"
            ingestion = qs.create_ingestion(AwsAccountId=account_id, DataSetId=spec.data_set_id,
                                            IngestionId=ingestion_id, IngestionType="FULL_REFRESH")
        except (ClientError, BotoCoreError) as err:
            raise QuickSightPublishError(f"{where}: {_error(err)}") from None
        out[spec.data_set_id] = {"arn": arn, "ingestion_id": ingestion.get("IngestionId", ingestion_id),
                                 "ingestion_status": ingestion.get("IngestionStatus", "")}
        log.info("published %s, SPICE ingestion %s %s", where, ingestion_id, out[spec.data_set_id]["ingestion_status"])
    return out


def data_set_spec(prefix: str, title: str, table: ReportingTable) -> DataSetSpec:
    """A reporting table as a data set: id `<prefix>-<table>`, its columns typed as the contract declares them."""
    return DataSetSpec(data_set_id=safe_id(prefix, table.name), name=f"{title}: {table.name}", schema=table.schema,
                       table=table.name, columns=[(c, input_type(table.data_types.get(c, ""))) for c in table.columns])
