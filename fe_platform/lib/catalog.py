"""The lake in the AWS Glue Data Catalog, so Athena (or Redshift Spectrum) can query it.

One table per feed over its validated Parquet, partitioned by `partition` (the partition's date);
each committed partition is registered with the folder it was written to. The delivery log is the
table `deliveries`, partitioned by `feed`. Every function is idempotent: registering again updates.

    glue = boto3.client("glue", region_name=...)
    ensure_database(glue, "fe_platform_prod")
    register_feed_table(glue, "fe_platform_prod", "iqvia_rx", feed.validated_schema(), "s3://b/lake/validated/iqvia_rx/")
    register_partition(glue, "fe_platform_prod", "iqvia_rx", "2026-11-20",
                       "s3://b/lake/validated/iqvia_rx/2026-11-20/v3/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

PARTITION_KEY = "partition"
DELIVERIES_TABLE = "deliveries"
DELIVERIES_PARTITION_KEY = "feed"

PARQUET_FORMAT = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "Parameters": {"serialization.format": "1"},
    },
}


def glue_type(arrow_type: pa.DataType) -> str:
    """The Hive/Glue type Athena reads an Arrow column as."""
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_int64(arrow_type):
        return "bigint"
    if pa.types.is_int32(arrow_type):
        return "int"
    if pa.types.is_float64(arrow_type):
        return "double"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_date32(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    raise ValueError(f"no Glue type for Arrow type {arrow_type}")


def glue_columns(schema: pa.Schema) -> list[dict]:
    return [{"Name": f.name, "Type": glue_type(f.type)} for f in schema]


def folder(location: str) -> str:
    """S3 locations of tables and partitions are folders: one trailing slash."""
    if not location.startswith("s3://"):
        raise ValueError(f"a Glue location must be an s3:// URI, got {location!r}")
    return location.rstrip("/") + "/"


def ensure_database(glue, database: str, description: str = "fe_platform lake: validated feeds") -> None:
    try:
        glue.get_database(Name=database)
    except glue.exceptions.EntityNotFoundException:
        try:
            glue.create_database(DatabaseInput={"Name": database, "Description": description})
        except glue.exceptions.AlreadyExistsException:
            pass  # created meanwhile by another run


def _table_input(name: str, columns: list[dict], partition_keys: list[dict], location: str,
                 description: str) -> dict:
    return {
        "Name": name,
        "Description": description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "PartitionKeys": partition_keys,
        "StorageDescriptor": {"Columns": columns, "Location": folder(location), **PARQUET_FORMAT},
    }


def _upsert_table(glue, database: str, table_input: dict) -> None:
    try:
        glue.create_table(DatabaseName=database, TableInput=table_input)
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table_input)


def register_feed_table(glue, database: str, feed: str, schema: pa.Schema, location: str,
                        description: str = "") -> None:
    """The feed's table: the validated schema's columns, Parquet, partitioned by `partition` (a date)."""
    _upsert_table(glue, database, _table_input(
        feed, glue_columns(schema), [{"Name": PARTITION_KEY, "Type": "date"}], location,
        description or f"{feed}, validated"))


def register_deliveries_table(glue, database: str, schema: pa.Schema, location: str) -> None:
    """The delivery log (`deliveries/<feed>/...parquet`): one partition per feed. The feed is the partition
    key, so it is not also a column (Athena refuses a key that is both)."""
    columns = [c for c in glue_columns(schema) if c["Name"] != DELIVERIES_PARTITION_KEY]
    _upsert_table(glue, database, _table_input(
        DELIVERIES_TABLE, columns, [{"Name": DELIVERIES_PARTITION_KEY, "Type": "string"}],
        location, "the delivery log: one record per landing file and outcome"))


def register_partition(glue, database: str, table: str, value: str, location: str) -> None:
    """Register (or point elsewhere) the table's partition `value` at the folder `location`."""
    from botocore.exceptions import ClientError

    described = glue.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]
    partition_input = {
        "Values": [value],
        "StorageDescriptor": {"Columns": described["Columns"], "Location": folder(location), **PARQUET_FORMAT},
    }
    try:
        glue.create_partition(DatabaseName=database, TableName=table, PartitionInput=partition_input)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "AlreadyExistsException":
            raise
        glue.update_partition(DatabaseName=database, TableName=table, PartitionValueList=[value],
                              PartitionInput=partition_input)


def register_deliveries_partition(glue, database: str, feed: str, location: str) -> None:
    register_partition(glue, database, DELIVERIES_TABLE, feed, location)


class GlueCatalog:
    """The platform's Glue database: each feed's table is registered once per process, then each committed
    partition is pointed at its version's folder."""

    def __init__(self, database: str, lake_root: str, region: str | None, endpoint_url: str | None = None):
        self.database, self.lake_root = database, lake_root.rstrip("/")
        self.region, self.endpoint_url = region, endpoint_url
        self._registered: set[str] = set()

    def __repr__(self) -> str:
        return f"GlueCatalog({self.database})"

    @property
    def glue(self):
        import boto3

        if not hasattr(self, "_glue"):
            self._glue = boto3.client("glue", region_name=self.region, endpoint_url=self.endpoint_url)
        return self._glue

    def _ensure(self, table: str, register) -> None:
        if table not in self._registered:
            ensure_database(self.glue, self.database)
            register()
            self._registered.add(table)

    def register_validated(self, feed: str, schema: pa.Schema, partition: str, location: str) -> None:
        self._ensure(feed, lambda: register_feed_table(self.glue, self.database, feed, schema,
                                                       f"{self.lake_root}/validated/{feed}/"))
        register_partition(self.glue, self.database, feed, partition, location)

    def register_deliveries(self, feed: str, schema: pa.Schema) -> None:
        self._ensure(DELIVERIES_TABLE, lambda: register_deliveries_table(self.glue, self.database, schema,
                                                                         f"{self.lake_root}/deliveries/"))
        register_deliveries_partition(self.glue, self.database, feed, f"{self.lake_root}/deliveries/{feed}/")
