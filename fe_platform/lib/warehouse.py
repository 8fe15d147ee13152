"""Warehouse loaders: put validated partitions and the delivery log into the `lake` schema.

Plain Python, no Dagster. One class per warehouse, one interface:

    with DuckDBWarehouse(path) as wh:            # or PostgresWarehouse(conninfo)
        wh.load_partition("iqvia_rx", "2026-11-20", arrow_table_or_parquet_uri)
        wh.load_deliveries(delivery_log_table)

`lake.<feed>` holds every validated partition of the feed; loading a partition replaces the rows
whose `_data_date` is the partition, in one transaction, so a re-run adds nothing. Every SQL
identifier is quoted and every value bound; Redshift's COPY takes the S3 path and IAM role as
literals, so those are validated strictly instead.

DuckDB keeps real tables loaded from Arrow rather than views over Parquet globs: the same code then
serves a local lake and an S3 lake (pyarrow reads both), the warehouse file stays self-contained and
consistent while the lake is being rewritten, and a partition swap is one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fe_platform.lib.delivery_log import delivery_log_schema
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.locks import file_lock

LAKE_SCHEMA = "lake"
DELIVERIES_TABLE = "deliveries"
VERSIONS_TABLE = "partition_versions"  # which version of each validated partition `lake.<feed>` holds
COPY_BATCH_ROWS = 50_000

# The delivery log as the warehouse holds it: the columns data-quality reporting reads, from the records of
# the lake's `deliveries/` zone (written with the log's own schema, where `partition` is text).
DELIVERIES_SCHEMA = pa.schema([
    pa.field("feed", pa.string()),
    pa.field("landing_key", pa.string()),
    pa.field("partition", pa.date32()),
    pa.field("sha256", pa.string()),
    pa.field("outcome", pa.string()),
    pa.field("rows_in", pa.int64()),
    pa.field("rows_valid", pa.int64()),
    pa.field("rows_quarantined", pa.int64()),
    pa.field("reason", pa.string()),
    pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
])

ArrowSource = pa.Table | pa.RecordBatchReader | str | Path


class WarehouseError(ValueError):
    """A load was refused: unknown feed, wrong columns, rows of another partition, unsafe literal."""


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (ANSI: embedded quotes doubled)."""
    if not name or "\x00" in name:
        raise WarehouseError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def sql_type(arrow_type: pa.DataType, dialect: str) -> str:
    """The column type a validated Arrow type is stored as in `dialect` (duckdb, postgres, redshift)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "varchar(65535)" if dialect == "redshift" else "varchar"
    if pa.types.is_int64(arrow_type):
        return "bigint"
    if pa.types.is_int32(arrow_type) or pa.types.is_int16(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision}, {arrow_type.scale})"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone" if arrow_type.tz else "timestamp"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    raise WarehouseError(f"no {dialect} type for Arrow type {arrow_type}")


def create_table_sql(schema: str, table: str, arrow_schema: pa.Schema, dialect: str) -> str:
    columns = ", ".join(f"{quote_ident(f.name)} {sql_type(f.type, dialect)}" for f in arrow_schema)
    return f"create table if not exists {qualified(schema, table)} ({columns})"


def source_schema(feed_name: str) -> pa.Schema:
    """The Arrow schema of `lake.<feed_name>` (the validated dataset, or the delivery log)."""
    if feed_name == DELIVERIES_TABLE:
        return DELIVERIES_SCHEMA
    if feed_name not in FEEDS:
        raise WarehouseError(f"unknown feed {feed_name!r}; known: {', '.join(sorted(FEEDS))}")
    return FEEDS[feed_name].validated_schema()


def parse_partition(partition: str | date) -> date:
    if isinstance(partition, date):
        return partition
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", partition or ""):
        raise WarehouseError(f"partition must be YYYY-MM-DD, got {partition!r}")
    return date.fromisoformat(partition)


def read_arrow(source: ArrowSource) -> pa.Table:
    """An Arrow table from a table, a local Parquet path or a URI pyarrow can read (s3://...)."""
    if isinstance(source, pa.Table):
        return source
    return pq.read_table(str(source))


def conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """`table` with exactly `schema`'s columns, in order and cast; a missing column is an error."""
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise WarehouseError(f"{what}: missing columns {missing}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WarehouseError(f"{what}: columns do not cast to the validated schema: {exc}") from exc


class ConformedRows:
    """The partition's rows conformed to the feed's schema, a batch at a time (`reader` streams through);
    every row must carry that `_data_date`. A refusal met while the warehouse reads is kept in `refusal`,
    since the warehouse reports it wrapped in its own error."""

    def __init__(self, reader_of):
        self.refusal: WarehouseError | None = None
        self.reader = reader_of(self)


def partition_rows(feed_name: str, partition: str | date, source: ArrowSource) -> ConformedRows:
    day = parse_partition(partition)
    schema = source_schema(feed_name)
    what = f"{feed_name} {day}"
    if isinstance(source, pa.RecordBatchReader):
        batches = iter(source)
    else:
        batches = iter(read_arrow(source).to_batches())

    def conformed(rows: ConformedRows):
        for batch in batches:
            try:
                batch = conform(pa.Table.from_batches([batch]), schema, what)
                data_dates = set(batch.column("_data_date").unique().to_pylist())
                if data_dates - {day}:
                    raise WarehouseError(f"{what}: rows of other data dates {sorted(data_dates - {day})}")
            except WarehouseError as exc:
                rows.refusal = exc
                raise
            yield from batch.to_batches()

    return ConformedRows(lambda rows: pa.RecordBatchReader.from_batches(schema, conformed(rows)))


class Warehouse:
    """What the platform needs from a warehouse; subclasses hold the connection and the dialect."""

    dialect: str

    def run_sql(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_source(self, feed_name: str) -> None:
        """Create schema `lake` and table `lake.<feed_name>` from the feed's Arrow schema if missing."""
        self.run_sql(f"create schema if not exists {quote_ident(LAKE_SCHEMA)}")
        self.run_sql(create_table_sql(LAKE_SCHEMA, feed_name, source_schema(feed_name), self.dialect))

    def ensure_all_sources(self) -> None:
        for name in [*FEEDS, DELIVERIES_TABLE]:
            self.ensure_source(name)
        self.run_sql(f"create table if not exists {qualified(LAKE_SCHEMA, VERSIONS_TABLE)} "
                     f"(feed varchar(64), partition_date date, version varchar(64))")

    def load_partition(self, feed_name: str, partition: str | date, source: ArrowSource,
                       version: str | None = None) -> int:
        """Replace partition `partition` of `lake.<feed_name>` by `source`'s rows, and note that it now holds
        `version` of the validated partition, in one transaction; the row count."""
        rows = partition_rows(feed_name, partition, source)
        self.ensure_all_sources()
        day = parse_partition(partition)
        try:
            return self._replace(feed_name, rows.reader, f"{quote_ident('_data_date')} = {self.placeholder}", [day],
                                 self._version_statements(feed_name, day, version))
        except Exception:
            if rows.refusal:  # the warehouse reports it wrapped in its own error
                raise rows.refusal from None
            raise

    def _replace(self, table_name: str, rows: pa.Table | pa.RecordBatchReader, where: str, params: list,
                 then: Sequence[tuple[str, list]] = ()) -> int:
        """Delete the rows `where` says, insert `rows`, run `then`, in one transaction; the rows inserted."""
        raise NotImplementedError

    def loaded_versions(self, feed_name: str) -> dict[str, str]:
        """Partition (YYYY-MM-DD) -> the validated version `lake.<feed_name>` holds."""
        self.ensure_all_sources()
        rows = self.query(f"select partition_date, version from {qualified(LAKE_SCHEMA, VERSIONS_TABLE)} "
                          f"where feed = {self.placeholder}", [feed_name])
        return {d.isoformat(): v for d, v in rows}

    def _version_statements(self, feed_name: str, day: date, version: str | None) -> list[tuple[str, list]]:
        if version is None:
            return []
        table, p = qualified(LAKE_SCHEMA, VERSIONS_TABLE), self.placeholder
        return [(f"delete from {table} where feed = {p} and partition_date = {p}", [feed_name, day]),
                (f"insert into {table} (feed, partition_date, version) values ({p}, {p}, {p})",
                 [feed_name, day, version])]

    def load_deliveries(self, source: ArrowSource) -> int:
        """Replace `lake.deliveries` by the whole delivery log (it is small and append-only)."""
        rows = conform(read_arrow(source), DELIVERIES_SCHEMA, "delivery log")
        self.ensure_source(DELIVERIES_TABLE)
        return self._replace(DELIVERIES_TABLE, rows, "true", [])

    def read_table(self, schema: str, table: str) -> pa.Table:
        """A whole table as Arrow (the reporting tables the dashboards read are small)."""
        columns, rows = self._select_all(f"select * from {qualified(schema, table)}")
        return pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows]) if rows else \
            pa.table({c: pa.array([], pa.null()) for c in columns})

    def _select_all(self, sql: str) -> tuple[list[str], list[tuple]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            return [d[0] for d in cursor.description], cursor.fetchall()
        finally:
            cursor.close()

    def partition_counts(self, feed_name: str) -> dict[date, int]:
        rows = self.query(
            f"select {quote_ident('_data_date')}, count(*) from {qualified(LAKE_SCHEMA, feed_name)} "
            f"group by 1 order by 1")
        return {d: n for d, n in rows}


class DuckDBWarehouse(Warehouse):
    """An embedded DuckDB file; `lake.<feed>` are tables loaded from Arrow."""

    dialect = "duckdb"
    placeholder = "?"

    def __init__(self, path: str | Path, read_only: bool = False, wait_seconds: float = 600):
        import duckdb

        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = ExitStack()
        self._lock.enter_context(duckdb_lock(self.path, wait_seconds))
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except BaseException:
            self._lock.close()
            raise

    def run_sql(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.connection.execute(sql, params or [])

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.connection.execute(sql, params or []).fetchall()

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self._lock.close()

    def read_table(self, schema: str, table: str) -> pa.Table:
        return self.connection.sql(f"select * from {qualified(schema, table)}").to_arrow_table()

    def _replace(self, table_name: str, rows: pa.Table | pa.RecordBatchReader, where: str, params: list,
                 then: Sequence[tuple[str, list]] = ()) -> int:
        target = qualified(LAKE_SCHEMA, table_name)
        columns = ", ".join(quote_ident(n) for n in rows.schema.names)
        view = "_fe_incoming"
        self.connection.register(view, rows)
        try:
            self.connection.execute("begin transaction")
            try:
                self.connection.execute(f"delete from {target} where {where}", params)
                inserted = self.connection.execute(
                    f"insert into {target} ({columns}) select {columns} from {quote_ident(view)}").fetchone()[0]
                for sql, values in then:
                    self.connection.execute(sql, values)
                self.connection.execute("commit")
            except Exception:
                self.connection.execute("rollback")
                raise
        finally:
            self.connection.unregister(view)
        return inserted


def _arrow_rows(rows: pa.Table | pa.RecordBatchReader, batch_rows: int) -> Iterable[tuple]:
    """Rows as Python tuples, one record batch at a time (bounded memory)."""
    batches = rows if isinstance(rows, pa.RecordBatchReader) else rows.to_batches(max_chunksize=batch_rows)
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            part = batch.slice(start, batch_rows)
            yield from zip(*(column.to_pylist() for column in part.columns), strict=True)


class PostgresWarehouse(Warehouse):
    """A PostgreSQL server (psycopg 3); partitions are streamed in with COPY FROM STDIN."""

    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, conninfo: str | dict, batch_rows: int = COPY_BATCH_ROWS):
        import psycopg

        self.batch_rows = batch_rows
        if isinstance(conninfo, dict):
            self.connection = psycopg.connect(**conninfo, autocommit=True)
        else:
            self.connection = psycopg.connect(conninfo, autocommit=True)

    def run_sql(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.connection.cursor() as cur:
            cur.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def close(self) -> None:
        self.connection.close()

    def _replace(self, table_name: str, rows: pa.Table | pa.RecordBatchReader, where: str, params: list,
                 then: Sequence[tuple[str, list]] = ()) -> int:
        target = qualified(LAKE_SCHEMA, table_name)
        columns = ", ".join(quote_ident(n) for n in rows.schema.names)
        inserted = 0
        with self.connection.transaction(), self.connection.cursor() as cur:
            # Two loads of one table serialize, so neither sees the other's rows half-replaced.
            cur.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"{LAKE_SCHEMA}.{table_name}"])
            cur.execute(f"delete from {target} where {where}", params)
            with cur.copy(f"copy {target} ({columns}) from stdin") as copy:
                for row in _arrow_rows(rows, self.batch_rows):
                    copy.write_row(row)
                    inserted += 1
            for sql, values in then:
                cur.execute(sql, values)
        return inserted


_IAM_ROLE = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*()=/-]*)?")


def checked_iam_role(arn: str) -> str:
    """An IAM role ARN safe to inline in COPY (it cannot be bound)."""
    if not _IAM_ROLE.fullmatch(arn or ""):
        raise WarehouseError(f"not an IAM role ARN: {arn!r}")
    return arn


def checked_s3_uri(uri: str) -> str:
    """An S3 URI safe to inline in COPY: bucket rules, a conservative key alphabet, no quotes."""
    if not _S3_URI.fullmatch(uri or "") or "//" in uri[5:]:
        raise WarehouseError(f"not a safe S3 URI: {uri!r}")
    return uri


def sql_literal(value: str) -> str:
    """A single-quoted literal (quotes doubled); only for values validated by the checks above."""
    return "'" + value.replace("'", "''") + "'"


def duckdb_lock(path: Path, wait_seconds: float = 600) -> AbstractContextManager:
    """One writer of a DuckDB file at a time across processes: the others wait (DuckDB itself would fail
    them at once)."""
    path = Path(path)
    return file_lock(path.with_name(path.name + ".lock"), f"the DuckDB warehouse {path}", wait_seconds)


def redshift_stage_sql(stage: str, parquet_schema: pa.Schema) -> str:
    """A temporary table with exactly the Parquet files' columns, in their order and of their types:
    Redshift's COPY from Parquet matches columns by position and count, and does not convert types."""
    columns = ", ".join(f"{quote_ident(f.name)} {sql_type(f.type, 'redshift')}" for f in parquet_schema)
    return f"create temp table {quote_ident(stage)} ({columns})"


def redshift_copy_sql(stage: str, parquet_schema: pa.Schema, s3_uri: str, iam_role: str) -> str:
    columns = ", ".join(quote_ident(n) for n in parquet_schema.names)
    return (f"copy {quote_ident(stage)} ({columns}) from {sql_literal(checked_s3_uri(s3_uri))} "
            f"iam_role {sql_literal(checked_iam_role(iam_role))} format as parquet")


def redshift_partition_load_sql(feed_name: str, partition: str | date, s3_uri: str,
                                iam_role: str) -> list[tuple[str, tuple]]:
    """The statements (with bound parameters) that replace one partition of `lake.<feed>` in Redshift.

    COPY lands the validated Parquet (written with the feed's validated schema) in a temporary table of
    the same columns first, so the delete and the insert happen in one transaction and the table never
    shows the partition missing or doubled; rows of another data date are not inserted.
    """
    day = parse_partition(partition)
    schema = source_schema(feed_name)
    target = qualified(LAKE_SCHEMA, feed_name)
    stage = f"stage_{feed_name}"
    columns = ", ".join(quote_ident(n) for n in schema.names)
    return [
        (redshift_stage_sql(stage, schema), ()),
        (redshift_copy_sql(stage, schema, s3_uri, iam_role), ()),
        (f"delete from {target} where {quote_ident('_data_date')} = %s", (day,)),
        (f"insert into {target} ({columns}) select {columns} from {quote_ident(stage)} "
         f"where {quote_ident('_data_date')} = %s", (day,)),
        (f"drop table {quote_ident(stage)}", ()),
    ]


def redshift_deliveries_load_sql(s3_uri: str, iam_role: str) -> list[tuple[str, tuple]]:
    """Replace `lake.deliveries` by the delivery log's Parquet records under the lake's `deliveries/` prefix.

    The records are COPYed as written (every column of the log, `partition` as text) into a temporary
    table; `lake.deliveries` takes its columns from there, cast where its type differs."""
    log = delivery_log_schema()
    missing = [n for n in DELIVERIES_SCHEMA.names if n not in log.names]
    if missing:
        raise WarehouseError(f"the delivery log has no columns {missing}")
    target = qualified(LAKE_SCHEMA, DELIVERIES_TABLE)
    stage = "stage_deliveries"
    selected = []
    for f in DELIVERIES_SCHEMA:
        column = quote_ident(f.name)
        same = log.field(f.name).type == f.type
        selected.append(column if same else f"cast({column} as {sql_type(f.type, 'redshift')})")
    columns = ", ".join(quote_ident(n) for n in DELIVERIES_SCHEMA.names)
    return [
        (redshift_stage_sql(stage, log), ()),
        (redshift_copy_sql(stage, log, s3_uri, iam_role), ()),
        (f"delete from {target}", ()),  # not TRUNCATE: in Redshift that commits the transaction
        (f"insert into {target} ({columns}) select {', '.join(selected)} from {quote_ident(stage)}", ()),
        (f"drop table {quote_ident(stage)}", ()),
    ]


class RedshiftWarehouse(Warehouse):
    """Amazon Redshift through `redshift_connector`: partitions are COPYed from the S3 lake.

    `conn_factory` returns a new DB-API connection (e.g. `lambda: redshift_connector.connect(...)`);
    `lake_root` is `s3://bucket/prefix`. Sources are S3 URIs, not Arrow tables: Redshift reads S3.
    """

    dialect = "redshift"
    placeholder = "%s"

    def __init__(self, conn_factory: Callable[[], Any], iam_role: str, lake_root: str):
        self.iam_role = checked_iam_role(iam_role)
        self.lake_root = checked_s3_uri(lake_root.rstrip("/"))
        self.connection = conn_factory()

    def run_sql(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.run_transaction([(sql, tuple(params or ()))])

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        cur = self.connection.cursor()
        try:
            cur.execute(sql, tuple(params or ()) or None)
            rows = cur.fetchall()
            self.connection.commit()
            return [tuple(r) for r in rows]
        finally:
            cur.close()

    def close(self) -> None:
        self.connection.close()

    def run_transaction(self, statements: Sequence[tuple[str, tuple]]) -> None:
        """Run the statements in one transaction: all of them, or none on error."""
        cur = self.connection.cursor()
        try:
            for sql, params in statements:
                cur.execute(sql, params or None)
            self.connection.commit()
        except Exception:
            self.connection.rollback()
            raise
        finally:
            cur.close()

    def load_partition(self, feed_name: str, partition: str | date, source: ArrowSource | None = None,
                       version: str | None = None) -> int:
        """`source` is the S3 folder of the partition version's validated parts (COPY reads every file in it)."""
        uri = checked_s3_uri(str(source))
        self.ensure_all_sources()
        day = parse_partition(partition)
        statements = redshift_partition_load_sql(feed_name, partition, uri, self.iam_role)
        statements += [(sql, tuple(values)) for sql, values in self._version_statements(feed_name, day, version)]
        self.run_transaction(statements)
        table = qualified(LAKE_SCHEMA, feed_name)
        return self.query(f"select count(*) from {table} where {quote_ident('_data_date')} = %s",
                          [parse_partition(partition)])[0][0]

    def load_deliveries(self, source: ArrowSource | None = None) -> int:
        uri = str(source) if source is not None else checked_s3_uri(f"{self.lake_root}/deliveries/")
        self.ensure_source(DELIVERIES_TABLE)
        self.run_transaction(redshift_deliveries_load_sql(uri, self.iam_role))
        return self.query(f"select count(*) from {qualified(LAKE_SCHEMA, DELIVERIES_TABLE)}")[0][0]
