"""The Glue Data Catalog on the moto server: feed tables from the registry, partitions at their folders, the
delivery log; and the Parquet the platform writes has exactly the columns the catalog declares."""

import uuid

import boto3
import pyarrow as pa
import pytest

from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib import catalog
from fe_platform.lib.delivery_log import delivery_log_schema
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.zones import current_version
from fe_platform.settings import load_settings
from fe_platform_tests.test_ingestion import delimited, iqvia_rows, land

LAKE = "s3://fe-lake-test/lake"


@pytest.fixture
def glue(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def database(glue):
    name = "fe_test_" + uuid.uuid4().hex[:8]
    catalog.ensure_database(glue, name)
    catalog.ensure_database(glue, name)  # a second call finds it
    return name


def columns(glue, database, table) -> dict[str, str]:
    described = glue.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]["Columns"]
    return {c["Name"]: c["Type"] for c in described}


def test_arrow_types_map_to_the_glue_types_athena_reads():
    assert [catalog.glue_type(t) for t in (pa.string(), pa.int64(), pa.float64(), pa.decimal128(18, 2),
                                           pa.date32(), pa.timestamp("us", tz="UTC"), pa.bool_())] == [
        "string", "bigint", "double", "decimal(18,2)", "date", "timestamp", "boolean"]
    with pytest.raises(ValueError, match="no Glue type"):
        catalog.glue_type(pa.list_(pa.string()))


def test_every_feed_is_a_parquet_table_with_its_validated_columns(glue, database):
    for feed in FEEDS.values():
        catalog.register_feed_table(glue, database, feed.name, feed.validated_schema(),
                                    f"{LAKE}/validated/{feed.name}")
    assert set(t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]) == set(FEEDS)
    for feed in FEEDS.values():
        table = glue.get_table(DatabaseName=database, Name=feed.name)["Table"]
        expected = {f.name: catalog.glue_type(f.type) for f in feed.validated_schema()}
        assert columns(glue, database, feed.name) == expected, feed.name
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == feed.validated_schema().names
        assert table["PartitionKeys"] == [{"Name": "partition", "Type": "date"}]
        assert table["StorageDescriptor"]["Location"] == f"{LAKE}/validated/{feed.name}/"
        assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert table["TableType"] == "EXTERNAL_TABLE"
    assert columns(glue, database, "sap_billing")["net_value"] == "decimal(18,2)"  # money keeps its scale
    assert columns(glue, database, "iqvia_rx")["_data_date"] == "date"
    assert columns(glue, database, "iqvia_rx")["_ingested_at"] == "timestamp"


def test_a_partition_is_registered_at_its_folder_and_moves_with_a_new_version(glue, database):
    feed = FEEDS["iqvia_rx"]
    catalog.register_feed_table(glue, database, feed.name, feed.validated_schema(), f"{LAKE}/validated/iqvia_rx/")
    catalog.register_partition(glue, database, "iqvia_rx", "2026-11-20", f"{LAKE}/validated/iqvia_rx/2026-11-20/v1")
    catalog.register_partition(glue, database, "iqvia_rx", "2026-11-20", f"{LAKE}/validated/iqvia_rx/2026-11-20/v2/")
    catalog.register_partition(glue, database, "iqvia_rx", "2026-11-13", f"{LAKE}/validated/iqvia_rx/2026-11-13/v1/")
    partitions = {tuple(p["Values"]): p["StorageDescriptor"]
                  for p in glue.get_partitions(DatabaseName=database, TableName="iqvia_rx")["Partitions"]}
    assert set(partitions) == {("2026-11-20",), ("2026-11-13",)}
    assert partitions[("2026-11-20",)]["Location"] == f"{LAKE}/validated/iqvia_rx/2026-11-20/v2/"
    assert {c["Name"] for c in partitions[("2026-11-20",)]["Columns"]} == set(feed.validated_schema().names)
    with pytest.raises(ValueError, match="s3://"):
        catalog.register_partition(glue, database, "iqvia_rx", "2026-11-27", "/tmp/validated/iqvia_rx")


def test_the_delivery_log_is_a_table_partitioned_by_feed(glue, database):
    catalog.register_deliveries_table(glue, database, delivery_log_schema(), f"{LAKE}/deliveries")
    catalog.register_deliveries_partition(glue, database, "iqvia_rx", f"{LAKE}/deliveries/iqvia_rx")
    catalog.register_deliveries_partition(glue, database, "iqvia_rx", f"{LAKE}/deliveries/iqvia_rx")  # again
    table = glue.get_table(DatabaseName=database, Name="deliveries")["Table"]
    assert table["PartitionKeys"] == [{"Name": "feed", "Type": "string"}]
    assert "feed" not in columns(glue, database, "deliveries")  # a partition key is no column too
    assert columns(glue, database, "deliveries")["rows_in"] == "bigint"
    assert columns(glue, database, "deliveries")["ingested_at"] == "timestamp"
    partition = glue.get_partition(DatabaseName=database, TableName="deliveries", PartitionValues=["iqvia_rx"])
    assert partition["Partition"]["StorageDescriptor"]["Location"] == f"{LAKE}/deliveries/iqvia_rx/"


def test_written_parquet_has_exactly_the_catalog_columns(aws_env, glue, database):
    """A delivery ingested on S3: the schema of its validated Parquet, mapped to Glue types, is the table's."""
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    assert ingest_landing_file(lake, key, settings.pii_hmac_key).outcome == "loaded"
    written = lake.read_parquet(current_version(lake, "iqvia_rx", "2026-11-20").keys("validated")[0]).schema
    feed = FEEDS["iqvia_rx"]
    catalog.register_feed_table(glue, database, feed.name, feed.validated_schema(),
                                lake.uri("validated/iqvia_rx/"))
    assert catalog.glue_columns(written) == glue.get_table(
        DatabaseName=database, Name="iqvia_rx")["Table"]["StorageDescriptor"]["Columns"]


def test_an_ingestion_run_in_aws_mode_registers_its_partition_and_the_delivery_log(aws_env, glue, monkeypatch):
    """Through Dagster: a validated partition materialized on moto S3 is a Glue partition at its version's folder,
    and `fe-platform sql` answers the same table name locally."""
    import dagster as dg

    from fe_platform.definitions import build_definitions

    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", aws_env["FE_S3_ENDPOINT_URL"])
    database = "fe_run_" + uuid.uuid4().hex[:8]
    settings = load_settings({**aws_env, "FE_GLUE_DATABASE": database})
    lake = lake_from_settings(settings)
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_iqvia_rx_job").execute_in_process(
            instance=instance, partition_key="2026-11-20")
    assert result.success
    version = current_version(lake, "iqvia_rx", "2026-11-20")
    partition = glue.get_partition(DatabaseName=database, TableName="iqvia_rx", PartitionValues=["2026-11-20"])
    assert partition["Partition"]["StorageDescriptor"]["Location"] == lake.uri(version.folder("validated"))
    assert columns(glue, database, "iqvia_rx") == {f.name: catalog.glue_type(f.type)
                                                   for f in FEEDS["iqvia_rx"].validated_schema()}
    assert glue.get_partition(DatabaseName=database, TableName="deliveries", PartitionValues=["iqvia_rx"])
