"""QuickSight publishing against moto's QuickSight server (data sources, data sets, ingestions), and the settings.

moto keeps data sources whole but data sets only by id and name, and has no UpdateDataSet: what the
publisher sends is read from the requests it made (botocore's event hooks), and the update branch
is driven by a client that answers "exists" as QuickSight does.
"""

from __future__ import annotations

import datetime as dt
import logging

import boto3
import pytest
from botocore.exceptions import ClientError

from fe_platform.defs.warehouse.project import prepare_manifest
from fe_platform.lib.dashboards.quicksight import (
    QuickSightPublishError,
    WarehouseConnection,
    data_set_spec,
    ensure_data_source,
    input_type,
    publish_data_sets,
)
from fe_platform.lib.dashboards.reporting import load_reporting_tables
from fe_platform.settings import SettingsError, load_settings

ACCOUNT = "210987654321"
PASSWORD = "warehouse-password-never-logged"
CONNECTION = WarehouseConnection("postgres", "warehouse.internal", 5432, "fe", "quicksight_reader", PASSWORD)


@pytest.fixture
def qs(moto_endpoint, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("quicksight", region_name="eu-west-1", endpoint_url=moto_endpoint)
    client.sent = []  # (operation, params) of every call, as botocore is about to send it
    client.meta.events.register("provide-client-params.quicksight.*",
                                lambda params, model, **_: client.sent.append((model.name, params)))
    return client


@pytest.fixture(scope="module")
def reporting():
    return load_reporting_tables(prepare_manifest())


def test_input_types_follow_the_reporting_contract():
    assert [input_type(t) for t in ("varchar", "bigint", "double precision", "numeric(18,2)", "date",
                                    "timestamp with time zone", "boolean")] == [
        "STRING", "INTEGER", "DECIMAL", "DECIMAL", "DATETIME", "DATETIME", "BOOLEAN"]
    with pytest.raises(ValueError, match="interval"):
        input_type("interval")


def test_data_source_over_the_warehouse_is_created_then_updated(qs, caplog):
    caplog.set_level(logging.DEBUG, logger="fe_platform")  # (botocore itself logs request bodies at DEBUG)
    arn = ensure_data_source(qs, ACCOUNT, "fe-platform-warehouse", "FE warehouse", CONNECTION)
    described = qs.describe_data_source(AwsAccountId=ACCOUNT, DataSourceId="fe-platform-warehouse")["DataSource"]
    assert described["Arn"] == arn and described["Type"] == "POSTGRESQL"
    assert described["DataSourceParameters"] == {
        "PostgreSqlParameters": {"Host": "warehouse.internal", "Port": 5432, "Database": "fe"}}
    moved = WarehouseConnection("postgres", "warehouse2.internal", 5433, "fe", "quicksight_reader", PASSWORD)
    assert ensure_data_source(qs, ACCOUNT, "fe-platform-warehouse", "FE warehouse", moved) == arn
    described = qs.describe_data_source(AwsAccountId=ACCOUNT, DataSourceId="fe-platform-warehouse")["DataSource"]
    assert described["DataSourceParameters"]["PostgreSqlParameters"]["Host"] == "warehouse2.internal"
    assert [op for op, _ in qs.sent] == ["DescribeDataSource", "CreateDataSource", "DescribeDataSource",
                                         "DescribeDataSource", "UpdateDataSource", "DescribeDataSource"]
    sent = dict(qs.sent)
    assert sent["CreateDataSource"]["Credentials"] == {
        "CredentialPair": {"Username": "quicksight_reader", "Password": PASSWORD}}
    assert PASSWORD not in caplog.text and PASSWORD not in repr(CONNECTION)


def test_a_warehouse_quicksight_cannot_reach_is_refused(qs):
    with pytest.raises(QuickSightPublishError, match="duckdb"):
        ensure_data_source(qs, ACCOUNT, "x", "x", WarehouseConnection("duckdb", "", 0, "", "", ""))


def test_reporting_tables_become_spice_data_sets_with_an_ingestion_each(qs, reporting):
    specs = [data_set_spec("fe-field-activity", "FE Field Activity", reporting[t])
             for t in ("rpt_field_activity", "rpt_territory_weekly")]
    source = "arn:aws:quicksight:eu-west-1:210987654321:datasource/fe-platform-warehouse"
    out = publish_data_sets(qs, ACCOUNT, source, specs, principals=["arn:aws:quicksight:eu-west-1:210987654321:group"
                                                                   "/default/fe-analysts"],
                            now=dt.datetime(2026, 12, 1, 21, 14, tzinfo=dt.UTC))
    assert list(out) == ["fe-field-activity-rpt_field_activity", "fe-field-activity-rpt_territory_weekly"]
    assert all(v["ingestion_status"] == "INITIALIZED" and v["ingestion_id"].startswith("fe-20261201T211400-")
               for v in out.values())
    assert [op for op, _ in qs.sent] == ["CreateDataSet", "CreateIngestion"] * 2
    create = qs.sent[2][1]
    table = create["PhysicalTableMap"]["reporting"]["RelationalTable"]
    assert (create["ImportMode"], table["DataSourceArn"], table["Schema"], table["Name"]) == (
        "SPICE", source, "reporting", "rpt_territory_weekly")
    columns = dict((c["Name"], c["Type"]) for c in table["InputColumns"])
    assert list(columns) == list(reporting["rpt_territory_weekly"].columns)
    assert (columns["territory_name"], columns["week_ending"], columns["own_trx"], columns["reach_pct"]) == (
        "STRING", "DATETIME", "INTEGER", "DECIMAL")
    assert create["Permissions"][0]["Principal"].endswith("/fe-analysts")
    ingestion = qs.sent[3][1]
    assert ingestion["DataSetId"] == "fe-field-activity-rpt_territory_weekly"
    assert ingestion["IngestionType"] == "FULL_REFRESH"


class ExistingDataSets:
    """A client whose data sets exist already, as QuickSight answers the second publish."""

    def __init__(self, fail_ingestion: bool = False):
        self.calls = []
        self.fail_ingestion = fail_ingestion

    def _error(self, code: str, op: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "from the service"}}, op)

    def create_data_set(self, **params):
        self.calls.append(("CreateDataSet", params))
        raise self._error("ResourceExistsException", "CreateDataSet")

    def update_data_set(self, **params):
        self.calls.append(("UpdateDataSet", params))
        return {"Arn": f"arn:aws:quicksight:eu-west-1:{ACCOUNT}:dataset/{params['DataSetId']}"}

    def create_ingestion(self, **params):
        self.calls.append(("CreateIngestion", params))
        if self.fail_ingestion:
            raise self._error("LimitExceededException", "CreateIngestion")
        return {"IngestionId": params["IngestionId"], "IngestionStatus": "QUEUED"}


def test_an_existing_data_set_is_updated_then_refreshed(reporting):
    client = ExistingDataSets()
    spec = data_set_spec("fe-brand-performance", "FE Brand Performance", reporting["rpt_brand_weekly"])
    out = publish_data_sets(client, ACCOUNT, "arn:source", [spec])
    assert [op for op, _ in client.calls] == ["CreateDataSet", "UpdateDataSet", "CreateIngestion"]
    assert client.calls[1][1]["PhysicalTableMap"] == client.calls[0][1]["PhysicalTableMap"]
    assert out["fe-brand-performance-rpt_brand_weekly"]["ingestion_status"] == "QUEUED"


def test_a_refused_ingestion_names_the_data_set(reporting):
    spec = data_set_spec("fe-brand-performance", "FE Brand Performance", reporting["rpt_brand_weekly"])
    with pytest.raises(QuickSightPublishError, match="fe-brand-performance-rpt_brand_weekly.*LimitExceeded"):
        publish_data_sets(ExistingDataSets(fail_ingestion=True), ACCOUNT, "arn:source", [spec])


def test_quicksight_settings(tmp_path):
    base = {"FE_HOME": str(tmp_path)}
    assert load_settings(base).quicksight is None
    pg = {**base, "FE_WAREHOUSE": "postgres", "FE_POSTGRES_HOST": "db", "FE_POSTGRES_DATABASE": "fe",
          "FE_POSTGRES_USER": "fe", "FE_POSTGRES_PASSWORD": PASSWORD,
          "FE_PII_HMAC_KEY": "a-test-secret-of-enough-length"}
    qs = load_settings({**pg, "FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT, "AWS_REGION": "eu-west-1",
                        "FE_QUICKSIGHT_PRINCIPAL_ARNS": "arn:a, arn:b"}).quicksight
    assert (qs.account_id, qs.region, qs.data_source_arn, qs.principal_arns) == (ACCOUNT, "eu-west-1", None,
                                                                                ("arn:a", "arn:b"))
    arn = f"arn:aws:quicksight:eu-west-1:{ACCOUNT}:datasource/ops-made"
    on_duckdb = load_settings({**base, "FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT, "FE_QUICKSIGHT_REGION": "eu-west-1",
                               "FE_QUICKSIGHT_DATA_SOURCE_ARN": arn})
    assert on_duckdb.quicksight.data_source_arn == arn and on_duckdb.public()["quicksight"]["region"] == "eu-west-1"
    for env, setting in [
        ({"FE_QUICKSIGHT_ACCOUNT_ID": "12345"}, "FE_QUICKSIGHT_ACCOUNT_ID"),
        ({"FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT}, "FE_QUICKSIGHT_REGION"),
        ({"FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT, "AWS_REGION": "eu-west-1"}, "DuckDB"),
        ({"FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT, "AWS_REGION": "eu-west-1", "FE_QUICKSIGHT_DATA_SOURCE_ARN": "x"},
         "FE_QUICKSIGHT_DATA_SOURCE_ARN"),
    ]:
        with pytest.raises(SettingsError, match=setting):
            load_settings({**base, **env})
    assert PASSWORD not in load_settings({**pg, "FE_QUICKSIGHT_ACCOUNT_ID": ACCOUNT,
                                          "AWS_REGION": "eu-west-1"}).to_json()
