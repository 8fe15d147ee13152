"""A dashboard's data source as one Tableau Hyper extract.

One `.hyper` file per dashboard, one table per reporting table it reads, in schema `Extract`
(where Tableau looks for extract tables). Rows go in through Parquet: the Arrow table is
written to a temporary Parquet file and Hyper reads it with `external(...)`, which is much
faster than row-by-row inserts; if Hyper refuses the Parquet file the rows go through the
`Inserter`. The file is written next to its destination and renamed into place, so a reader
never sees a half-written extract.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tableauhyperapi import (
    Connection,
    CreateMode,
    HyperException,
    HyperProcess,
    Inserter,
    SqlType,
    TableDefinition,
    TableName,
    Telemetry,
    escape_string_literal,
)

from .declarations import Dashboard

log = logging.getLogger(__name__)

EXTRACT_SCHEMA = "Extract"


class ExtractError(RuntimeError):
    """An extract could not be written; the message names the dashboard and table."""


def hyper_type(arrow_type: pa.DataType) -> tuple[SqlType, pa.DataType]:
    """The Hyper column type for an Arrow type, and the Arrow type to cast to before loading.

    The one place where Arrow types map to Tableau types: dates -> DATE, timestamps with a time
    zone -> TIMESTAMP_TZ (UTC), without -> TIMESTAMP, decimals that fit -> NUMERIC(18, scale)
    (money: NUMERIC(18,2)), wider decimals and floats -> DOUBLE, integers -> BIG_INT,
    booleans -> BOOL, strings and anything else -> TEXT.
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        return hyper_type(t.value_type)
    if pa.types.is_boolean(t):
        return SqlType.bool(), pa.bool_()
    if pa.types.is_integer(t):
        return SqlType.big_int(), pa.int64()
    if pa.types.is_floating(t):
        return SqlType.double(), pa.float64()
    if pa.types.is_decimal(t):
        if t.precision <= 18 and t.scale <= 18:
            return SqlType.numeric(18, t.scale), pa.decimal128(18, t.scale)
        return SqlType.double(), pa.float64()
    if pa.types.is_date(t):
        return SqlType.date(), pa.date32()
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            return SqlType.timestamp_tz(), pa.timestamp("us", tz="UTC")
        return SqlType.timestamp(), pa.timestamp("us")
    if pa.types.is_null(t):
        return SqlType.text(), pa.string()
    return SqlType.text(), pa.string()


def _conform(table: pa.Table) -> tuple[pa.Table, list[TableDefinition.Column]]:
    """`table` cast to the loadable Arrow types, and the matching Hyper columns."""
    arrays, fields, columns = [], [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        sql_type, arrow_type = hyper_type(f.type)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_decimal(f.type) and pa.types.is_floating(arrow_type):
            col = pc.cast(col, arrow_type, safe=False)
        elif not col.type.equals(arrow_type):
            col = col.cast(arrow_type)
        arrays.append(col)
        fields.append(pa.field(f.name, arrow_type))
        columns.append(TableDefinition.Column(f.name, sql_type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), columns


@contextlib.contextmanager
def hyper_process() -> Iterator[HyperProcess]:
    """A Hyper process with telemetry off and its log in a temporary folder (not the cwd)."""
    with tempfile.TemporaryDirectory(prefix="fe-hyper-log-") as log_dir:
        with HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU,
                          parameters={"log_dir": log_dir}) as hyper:
            yield hyper


def _python_value(v):
    if isinstance(v, decimal.Decimal | dt.date | dt.datetime | bool | int | float | str) or v is None:
        return v
    return str(v)


def _load_table(conn: Connection, table_def: TableDefinition, data: pa.Table, work_dir: Path) -> int:
    name = table_def.table_name
    if data.num_rows == 0:
        return 0
    parquet = work_dir / f"{name.name.unescaped}.parquet"
    pq.write_table(data, parquet)
    cols = ", ".join(str(c.name) for c in table_def.columns)
    try:
        return conn.execute_command(
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM external({escape_string_literal(str(parquet))})"
        )
    except HyperException as err:  # a Parquet feature this Hyper cannot read: insert row by row
        log.warning("Hyper could not read %s as Parquet (%s); using the row inserter", parquet.name, err)
        conn.execute_command(f"DELETE FROM {name}")
        with Inserter(conn, table_def) as inserter:
            for row in data.to_pylist():
                inserter.add_row([_python_value(row[c.name.unescaped]) for c in table_def.columns])
            inserter.execute()
        return data.num_rows


def write_extract(dashboard: Dashboard, tables: Mapping[str, pa.Table], path: Path,
                  *, hyper: HyperProcess | None = None) -> dict[str, int]:
    """Write `dashboard`'s extract to `path` (a `.hyper` file) and return the rows per table.

    `tables` maps each reporting table the dashboard reads to its rows; extra tables are
    ignored, a missing one raises `ExtractError`. Pass `hyper` to reuse one Hyper process for
    several extracts (starting one takes about half a second).
    """
    missing = [t for t in dashboard.tables if t not in tables]
    if missing:
        raise ExtractError(f"{dashboard.name}: no data for {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        if hyper is None:
            hyper = stack.enter_context(hyper_process())
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fe-extract-")))
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".hyper", dir=path.parent)
        os.close(fd)
        os.unlink(tmp_name)  # Hyper must create the file itself
        tmp = Path(tmp_name)
        try:
            with Connection(hyper.endpoint, str(tmp), CreateMode.CREATE_AND_REPLACE) as conn:
                conn.catalog.create_schema(EXTRACT_SCHEMA)
                for table_name in dashboard.tables:
                    data, columns = _conform(tables[table_name])
                    table_def = TableDefinition(TableName(EXTRACT_SCHEMA, table_name), columns)
                    conn.catalog.create_table(table_def)
                    try:
                        counts[table_name] = _load_table(conn, table_def, data, work_dir)
                    except HyperException as err:
                        raise ExtractError(f"{dashboard.name}: could not load {table_name}: {err}") from err
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("wrote extract %s: %s", path, counts)
    return counts
