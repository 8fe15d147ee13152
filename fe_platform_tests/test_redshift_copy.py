"""Redshift's `COPY ... FORMAT AS PARQUET` held to the files the platform really writes.

Redshift matches a Parquet file's columns to the COPY's column list by position and count, and does not
convert types. No Redshift runs here, so the files are written by the platform itself (sample feeds through
ingestion: the validated Parquet of every feed of the registry and the delivery log's records) and their
Parquet schema is compared, column by column, with the table each COPY loads into: name, order, and a type
that Redshift loads that Parquet type into (AWS: "COPY from columnar data formats").
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.warehouse import (
    DELIVERIES_SCHEMA,
    DELIVERIES_TABLE,
    LAKE_SCHEMA,
    create_table_sql,
    redshift_deliveries_load_sql,
    redshift_partition_load_sql,
)
from fe_platform.sample_data.generator import generate

ROLE = "arn:aws:iam::123456789012:role/fe-platform-redshift-copy"
KEY = "redshift-copy-test-key-0123456789"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """One validated Parquet part per feed and one delivery-log record, as ingestion wrote them."""
    root = tmp_path_factory.mktemp("lake")
    lake = LocalLake(root)
    generate(lake, date(2026, 11, 20), weeks=1, hcps=20, seed=3, defect_rate=0.0)
    files: dict[str, Path] = {}
    for feed in FEEDS.values():
        for obj in lake.list(feed.landing_prefix):
            if ingest_landing_file(lake, obj.key, KEY).outcome == "loaded":
                break
        parts = [o.key for o in lake.list(f"validated/{feed.name}/") if o.key.endswith(".parquet")]
        assert parts, f"no validated Parquet written for {feed.name}"
        files[feed.name] = root / parts[0]
    records = [o.key for o in lake.list("deliveries/") if o.key.endswith(".parquet")]
    assert records
    files[DELIVERIES_TABLE] = root / records[0]
    return files


def redshift_types(column) -> set[str]:
    """The Redshift column types COPY loads a Parquet column into, from its physical and logical type."""
    logical = column.logical_type.type
    if logical == "STRING":
        return {"varchar(65535)"}
    if logical == "DATE":
        return {"date"}
    if logical == "TIMESTAMP":
        utc = json.loads(column.logical_type.to_json())["isAdjustedToUTC"]
        return {"timestamp with time zone", "timestamptz"} if utc else {"timestamp", "timestamp without time zone"}
    if logical == "DECIMAL":
        return {f"numeric({column.precision}, {column.scale})", f"decimal({column.precision}, {column.scale})"}
    if logical == "NONE":
        return {"INT64": {"bigint"}, "INT32": {"integer"}, "DOUBLE": {"double precision"}, "FLOAT": {"real"},
                "BOOLEAN": {"boolean"}}.get(column.physical_type, set())
    return set()


def ddl_columns(create_sql: str) -> list[tuple[str, str]]:
    """(name, type) of each column of a `create [temp] table` statement."""
    body = create_sql[create_sql.index("(") + 1: create_sql.rindex(")")]
    return re.findall(r'"([^"]+)" ([a-z][a-z ]*(?:\([0-9, ]+\))?)', body)


def quoted_list(sql: str, after: str) -> list[str]:
    """The quoted column names in the parenthesised list that follows `after` in `sql`."""
    start = sql.index("(", sql.index(after))
    return re.findall(r'"([^"]+)"', sql[start: sql.index(")", start)])


def assert_copy_matches_parquet(statements: list[tuple[str, tuple]], parquet: Path) -> None:
    sqls = [s for s, _ in statements]
    create = next(s for s in sqls if s.startswith("create temp table"))
    copy = next(s for s in sqls if s.startswith("copy "))
    stage = re.match(r'create temp table ("[^"]+")', create).group(1)
    assert copy.startswith(f"copy {stage} (")  # COPY loads the table it created, with a column list
    schema = pq.ParquetFile(parquet).schema
    file_columns = [schema.column(i) for i in range(len(schema))]
    stage_columns = ddl_columns(create)
    assert [c.name for c in file_columns] == [n for n, _ in stage_columns] == quoted_list(copy, "copy ")
    for column, (name, sql_type) in zip(file_columns, stage_columns, strict=True):
        assert sql_type in redshift_types(column), (parquet.name, name, column.physical_type,
                                                    str(column.logical_type), sql_type)


@pytest.mark.parametrize("feed", sorted(FEEDS))
def test_partition_copy_loads_the_validated_parquet_column_by_column(written, feed):
    statements = redshift_partition_load_sql(feed, "2026-11-20", f"s3://fe-lake/prod/validated/{feed}/2026-11-20/",
                                             ROLE)
    assert_copy_matches_parquet(statements, written[feed])
    # The insert then moves the stage's columns into `lake.<feed>` by name, into columns of the same types.
    insert = next(s for s, _ in statements if s.startswith("insert into"))
    target = dict(ddl_columns(create_table_sql(LAKE_SCHEMA, feed, FEEDS[feed].validated_schema(), "redshift")))
    stage = dict(ddl_columns(statements[0][0]))
    assert quoted_list(insert, "insert into") == list(target)
    assert all(target[name] == stage[name] for name in target)


def test_delivery_log_copy_loads_the_log_records_column_by_column(written):
    statements = redshift_deliveries_load_sql("s3://fe-lake/prod/deliveries/", ROLE)
    assert_copy_matches_parquet(statements, written[DELIVERIES_TABLE])
    insert = next(s for s, _ in statements if s.startswith("insert into"))
    assert quoted_list(insert, "insert into") == DELIVERIES_SCHEMA.names
    # `partition` is text in the log and a date in the warehouse: the insert casts it.
    assert 'cast("partition" as date)' in insert
    target = dict(ddl_columns(create_table_sql(LAKE_SCHEMA, DELIVERIES_TABLE, DELIVERIES_SCHEMA, "redshift")))
    assert target["partition"] == "date"
