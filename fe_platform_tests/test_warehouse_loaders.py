"""The warehouse loaders: DuckDB and PostgreSQL against real engines, Redshift and grants as generated SQL."""

from __future__ import annotations

import re
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    RedshiftWarehouse,
    WarehouseError,
    checked_iam_role,
    checked_s3_uri,
    create_table_sql,
    redshift_deliveries_load_sql,
    redshift_partition_load_sql,
    sql_type,
)
from fe_platform_tests import postgres_cluster
from fe_platform_tests.test_warehouse_fixtures import RX_NEW, RX_OLD, deliveries, partition, run_dbt

ROLE = "arn:aws:iam::123456789012:role/fe-platform-redshift-copy"
RX_URI = "s3://fe-lake/prod/validated/iqvia_rx/2026-11-20/"


# DuckDB ----------------------------------------------------------------------------------------------

def test_duckdb_partition_replace_is_idempotent(tmp_path):
    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:
        assert wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD)) == 32
        assert wh.load_partition("iqvia_rx", RX_NEW.isoformat(), partition("iqvia_rx", RX_NEW)) == 31
        wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD))
        assert wh.partition_counts("iqvia_rx") == {RX_OLD: 32, RX_NEW: 31}
        cols = [r[0] for r in wh.query("select column_name from information_schema.columns where "
                                       "table_schema = 'lake' and table_name = 'iqvia_rx' order by ordinal_position")]
        assert cols == FEEDS["iqvia_rx"].validated_schema().names


def test_duckdb_loads_from_parquet_and_replaces_the_delivery_log(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(partition("sap_billing", date(2026, 11, 16)), path)
    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:
        assert wh.load_partition("sap_billing", "2026-11-16", path) == 5
        assert wh.query('select sum(net_value) from "lake"."sap_billing"')[0][0] == pytest.approx(12450)
        wh.load_deliveries(deliveries())
        wh.load_deliveries(deliveries())
        assert wh.query('select count(*) from "lake"."deliveries"')[0][0] == deliveries().num_rows


def test_load_refuses_rows_of_another_partition_and_unknown_feeds(tmp_path):
    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:
        with pytest.raises(WarehouseError, match="other data dates"):
            wh.load_partition("iqvia_rx", "2026-11-27", partition("iqvia_rx", RX_NEW))
        with pytest.raises(WarehouseError, match="unknown feed"):
            wh.load_partition("iqvia_rx; drop table x", "2026-11-20", partition("iqvia_rx", RX_NEW))
        with pytest.raises(WarehouseError, match="missing columns"):
            wh.load_partition("iqvia_rx", "2026-11-20", partition("iqvia_rx", RX_NEW).drop(["trx"]))
        with pytest.raises(WarehouseError, match="YYYY-MM-DD"):
            wh.load_partition("iqvia_rx", "2026-11-20' or 1=1", partition("iqvia_rx", RX_NEW))


def test_type_mapping_covers_every_validated_column():
    for feed in FEEDS.values():
        for dialect in ("duckdb", "postgres", "redshift"):
            create_table_sql("lake", feed.name, feed.validated_schema(), dialect)
    assert sql_type(pa.decimal128(18, 2), "postgres") == "numeric(18, 2)"
    assert sql_type(pa.string(), "redshift") == "varchar(65535)"
    assert sql_type(pa.timestamp("us", tz="UTC"), "postgres") == "timestamp with time zone"
    assert create_table_sql("lake", 'we"ird', pa.schema([("a b", pa.int64())]), "postgres") == \
        'create table if not exists "lake"."we""ird" ("a b" bigint)'


# PostgreSQL ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    assert postgres_cluster.available(), "PostgreSQL 15 is required: .ci/run installs postgresql-15"
    with postgres_cluster.PostgresCluster() as cluster:
        yield cluster


@pytest.mark.postgres
def test_postgres_copy_replaces_a_partition_in_one_transaction(pg):
    with PostgresWarehouse(pg.conninfo(), batch_rows=7) as wh:
        wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD))
        wh.load_partition("iqvia_rx", RX_NEW.isoformat(), partition("iqvia_rx", RX_NEW))
        wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD))
        assert wh.partition_counts("iqvia_rx") == {RX_OLD: 32, RX_NEW: 31}
        # A failing load leaves the previous partition in place.
        bad = partition("iqvia_rx", RX_OLD).set_column(
            6, "nrx", pa.array([None] * 31 + ["x"], pa.string()))
        with pytest.raises(WarehouseError):
            wh.load_partition("iqvia_rx", RX_OLD.isoformat(), bad)
        assert wh.partition_counts("iqvia_rx") == {RX_OLD: 32, RX_NEW: 31}
        wh.load_partition("sap_billing", "2026-11-16", partition("sap_billing", date(2026, 11, 16)))
        types = dict(wh.query("select column_name, data_type from information_schema.columns "
                              "where table_schema = 'lake' and table_name = 'sap_billing'"))
        assert types["net_value"] == "numeric" and types["_ingested_at"] == "timestamp with time zone"
        assert wh.query('select sum(net_value) from "lake"."sap_billing"')[0][0] == 12450


# Redshift (generated SQL; no server here) ------------------------------------------------------------

def test_redshift_partition_load_sql():
    statements = redshift_partition_load_sql("iqvia_rx", "2026-11-20", RX_URI, ROLE)
    sqls = [s for s, _ in statements]
    columns = ", ".join(f'"{n}"' for n in FEEDS["iqvia_rx"].validated_schema().names)
    assert sqls[1:] == [
        f"copy \"stage_iqvia_rx\" ({columns}) from '{RX_URI}' iam_role '{ROLE}' format as parquet",
        'delete from "lake"."iqvia_rx" where "_data_date" = %s',
        f'insert into "lake"."iqvia_rx" ({columns}) select {columns} from "stage_iqvia_rx" where "_data_date" = %s',
        'drop table "stage_iqvia_rx"',
    ]
    assert sqls[0].startswith('create temp table "stage_iqvia_rx" ("prescriber_id" varchar(65535), ')
    assert [p for _, p in statements][2:4] == [(date(2026, 11, 20),), (date(2026, 11, 20),)]
    deliveries_sql = [s for s, _ in redshift_deliveries_load_sql("s3://fe-lake/prod/deliveries/", ROLE)]
    assert 'delete from "lake"."deliveries"' in deliveries_sql
    assert not any("truncate" in s for s in deliveries_sql)  # TRUNCATE would commit mid-transaction


@pytest.mark.parametrize("uri", [
    "s3://fe-lake/x/' iam_role 'arn:aws:iam::1:role/evil",
    "s3://Fe_Lake/x/", "https://fe-lake/x/", "s3://fe-lake/x//y/", "s3://fe-lake/x/;drop", "",
])
def test_redshift_refuses_unsafe_s3_uris(uri):
    with pytest.raises(WarehouseError):
        checked_s3_uri(uri)
    with pytest.raises(WarehouseError):
        redshift_partition_load_sql("iqvia_rx", "2026-11-20", uri, ROLE)


@pytest.mark.parametrize("role", [
    "arn:aws:iam::123456789012:role/x' format as csv --", "arn:aws:iam::12345:role/x", "role/x", "",
])
def test_redshift_refuses_unsafe_iam_roles(role):
    with pytest.raises(WarehouseError):
        checked_iam_role(role)


def test_redshift_warehouse_runs_the_load_in_one_transaction():
    class Cursor:
        def __init__(self, log):
            self.log = log

        def execute(self, sql, params=None):
            self.log.append((sql, params))

        def fetchall(self):
            return [[31]]

        def close(self):
            pass

    class Connection:
        def __init__(self):
            self.log, self.commits = [], 0

        def cursor(self):
            return Cursor(self.log)

        def commit(self):
            self.commits += 1
            self.log.append(("COMMIT", None))

        def rollback(self):
            self.log.append(("ROLLBACK", None))

        def close(self):
            pass

    conn = Connection()
    with RedshiftWarehouse(lambda: conn, ROLE, "s3://fe-lake/prod") as wh:
        assert wh.load_partition("iqvia_rx", "2026-11-20", RX_URI + "v1/", "v1") == 31
    sqls = [s for s, _ in conn.log]
    copy_at = next(i for i, s in enumerate(sqls) if s.startswith("copy "))
    assert RX_URI + "v1/" in sqls[copy_at]  # the partition version's folder, nothing else under the partition
    assert sqls[copy_at - 1].startswith("create temp table")
    assert sqls[copy_at + 1].startswith("delete from") and sqls[copy_at + 2].startswith("insert into")
    assert '"partition_versions"' in sqls[copy_at + 5] and conn.log[copy_at + 5][1][-1] == "v1"
    assert sqls[copy_at + 6] == "COMMIT"  # temp table, copy, delete, insert, drop, version: one commit


def test_redshift_grant_sql_compiles_with_quoted_identifiers(tmp_path):
    """The grant macro, compiled for Redshift without a server: roles created, identifiers quoted."""
    restricted = "[{'schema': 'reporting', 'table': 'rpt_transfers_of_value', 'readers': ['analyst', 'data_engineer']}]"
    inline = ("{{ grant_statements('redshift', ['analyst'], ['reporting', 'marts', 'staging'], " + restricted
              + ") | join(';\\n') }}")
    out = run_dbt("duckdb", {"FE_DUCKDB_PATH": str(tmp_path / "c.duckdb")}, "compile", "--inline", inline).stdout
    statements = [s.strip() for s in re.findall(r"^(?:create|grant|alter|revoke)[^;\n]*", out, re.M)]
    assert 'create role "field_ops"' in statements and 'create role "data_engineer"' in statements
    assert not any(s.startswith('create role "analyst"') for s in statements)  # exists already
    assert 'grant usage on schema "reporting" to role "field_ops"' in statements
    assert 'grant select on all tables in schema "marts" to role "analyst"' in statements
    assert 'alter default privileges in schema "staging" grant select on tables to role "data_engineer"' \
        in statements
    assert not any('"staging"' in s and '"data_engineer"' not in s for s in statements)
    assert not any('"lake"' in s for s in statements)  # only schemas that exist are granted
    assert not any("field_ops" in s and '"marts"' in s for s in statements)
    # A table narrowed to analyst and data_engineer is taken back from field_ops, after the schema grants.
    assert [s for s in statements if s.startswith("revoke")] == \
        ['revoke select on "reporting"."rpt_transfers_of_value" from role "field_ops"']
    assert statements[-1].startswith("revoke")
