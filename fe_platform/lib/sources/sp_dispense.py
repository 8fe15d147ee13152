"""Pull one day of specialty-pharmacy dispenses from the hub's PostgreSQL into landing.

Day D is every row of the `dispense` table whose `updated_at` lies in [D 00:00, D+1 00:00) UTC:
new dispenses, late corrections and reversals alike. The rows stream through a server-side cursor
in batches (memory stays flat however many rows the day has) into a gzipped CSV (comma, header,
UTF-8) written locally, then published as `landing/sp_dispense/SP_DISPENSE_<YYYYMMDD>.csv.gz` in
one atomic put. The server renders every value as text (dates `YYYY-MM-DD`, timestamps ISO-8601
UTC with `Z`) and rows come in (updated_at, dispense_id) order, so pulling an unchanged day again
gives the same bytes and publishes nothing.

A connection that fails (the server down, the connection lost mid-pull) is retried with
exponential back-off, the whole pull from scratch, `attempts` tries in all; a refusal (wrong
password, no such database or table, no permission) fails at once. Every failure raises
`PullError`, whose message names the database as `postgresql://user@host:port/db` and never
carries the password, and nothing is written to landing. A day without rows writes no file (an
empty delivery would only be rejected).
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import BinaryIO, TypeVar

import psycopg
from psycopg import sql

from fe_platform.lib.lake import Lake
from fe_platform.lib.sources.landing import PullError, backoff_wait, local_file, publish_file, scrub

R = TypeVar("R")
FEED = "sp_dispense"
COLUMNS = ("dispense_id", "pharmacy_ncpdp", "patient_token", "prescriber_npi", "ndc11", "dispense_date",
           "fill_type", "quantity", "days_supply", "payer_type", "copay_usd", "status", "updated_at")
DATE_COLUMNS = frozenset({"dispense_date"})
TIMESTAMP_COLUMNS = frozenset({"updated_at"})
GZIP_LEVEL = 6
APPLICATION_NAME = "fe_platform sp_dispense puller"
# Connection failures that retrying cannot cure: the server refused who we are or what we asked for.
REFUSALS = ("password authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied")


@dataclass(frozen=True)
class PullResult:
    key: str | None  # None when the day had no rows: nothing was written
    rows: int
    changed: bool  # the landing file is new, or its bytes differ from the file it replaced


def landing_key(day: date) -> str:
    return f"landing/{FEED}/SP_DISPENSE_{day:%Y%m%d}.csv.gz"


def day_window(day: date) -> tuple[datetime, datetime]:
    """[D 00:00, D+1 00:00) in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def describe_source(conninfo: Mapping) -> str:
    """`postgresql://user@host:port/db`: where the rows come from, without the password."""
    return (f"postgresql://{conninfo.get('user', '')}@{conninfo.get('host', '')}:{conninfo.get('port', 5432)}"
            f"/{conninfo.get('dbname', '')}")


def _table(table: str) -> sql.Identifier:
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"table must be `name` or `schema.name`, got {table!r}")
    return sql.Identifier(*parts)


def _as_text(column: str) -> sql.Composable:
    c = sql.Identifier(column)
    if column in DATE_COLUMNS:
        return sql.SQL("to_char({c}, 'YYYY-MM-DD')").format(c=c)
    if column in TIMESTAMP_COLUMNS:
        # Whole seconds as 2026-11-20T13:45:12Z, microseconds only where the value has them.
        return sql.SQL("to_char({c} at time zone 'UTC', case when date_trunc('second', {c}) = {c} "
                       "then 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"' else 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"' end)"
                       ).format(c=c)
    return sql.SQL("{c}::text").format(c=c)


def day_query(table: str = "dispense") -> sql.Composed:
    """The rows of one day (parameters: window start, window end), every value rendered as text."""
    return sql.SQL("select {columns} from {table} where {updated} >= %s and {updated} < %s "
                   "order by {updated}, {key}").format(
        columns=sql.SQL(", ").join(sql.SQL("{} as {}").format(_as_text(c), sql.Identifier(c)) for c in COLUMNS),
        table=_table(table), updated=sql.Identifier("updated_at"), key=sql.Identifier("dispense_id"))


def write_csv_gz(out: BinaryIO, batches: Iterable[Sequence[Sequence]]) -> int:
    """Write the landing file's bytes: the header and every row (None and "" both as an empty field),
    CSV with CRLF line ends, gzipped with no name or time in the gzip header. Returns the rows written."""
    rows = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=GZIP_LEVEL) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for batch in batches:
            writer.writerows(batch)
            rows += len(batch)
    return rows


def _is_refusal(exc: psycopg.Error) -> bool:
    return not isinstance(exc, psycopg.OperationalError) or any(r in str(exc) for r in REFUSALS)


def _problem(exc: psycopg.Error, password: str) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return scrub(" ".join(lines[:2]) or type(exc).__name__, [password])


def _open(conninfo: Mapping, connect_timeout: float) -> psycopg.Connection:
    conn = psycopg.connect(**conninfo, connect_timeout=max(1, round(connect_timeout)),
                           application_name=APPLICATION_NAME)
    conn.read_only = True
    return conn


def _retrying(conninfo: Mapping, work: Callable[[], R], attempts: int, backoff: float,
              sleep: Callable[[float], None]) -> R:
    """`work()`, tried again after a connection failure; PullError when it keeps failing or is refused."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    password = str(conninfo.get("password") or "")
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except psycopg.Error as exc:
            problem = _problem(exc, password)
            if _is_refusal(exc):
                raise PullError(FEED, describe_source(conninfo), problem + " (not retried)") from None
            if attempt == attempts:
                raise PullError(FEED, describe_source(conninfo),
                                f"{problem}, after {attempts} attempt{'s' * (attempts > 1)}") from None
        sleep(backoff_wait(attempt, backoff))
    raise AssertionError("unreachable")


def connect(conninfo: Mapping, *, connect_timeout: float = 10.0, attempts: int = 4, backoff: float = 1.0,
            sleep: Callable[[float], None] = time.sleep) -> psycopg.Connection:
    """A read-only connection to the source, with the pull's retries."""
    return _retrying(conninfo, lambda: _open(conninfo, connect_timeout), attempts, backoff, sleep)


def source_count(conn: psycopg.Connection, day: date, table: str = "dispense") -> int:
    """The rows the source holds for `day` now (what a pull of `day` would land)."""
    query = sql.SQL("select count(*) from {table} where {updated} >= %s and {updated} < %s").format(
        table=_table(table), updated=sql.Identifier("updated_at"))
    return conn.execute(query, day_window(day)).fetchone()[0]


def landed_rows(lake: Lake, day: date) -> int | None:
    """The data rows of the landing file of `day`, or None when there is none."""
    key = landing_key(day)
    if not lake.exists(key):
        return None
    with lake.open(key) as raw, gzip.GzipFile(fileobj=raw) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        return sum(1 for _ in csv.reader(text)) - 1


def pull_sp_dispense(lake: Lake, conninfo: Mapping, day: date, *, table: str = "dispense",
                     batch_rows: int = 10_000, attempts: int = 4, backoff: float = 1.0,
                     connect_timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                     progress: Callable[[int], None] | None = None) -> PullResult:
    """Pull `day` into its landing file (see the module's docstring). `progress(rows)` after each batch."""
    query = day_query(table)
    key = landing_key(day)

    with local_file(key) as path:
        def pull() -> int:
            with _open(conninfo, connect_timeout) as conn, conn.cursor(name="sp_dispense_pull") as cursor, \
                    open(path, "wb") as out:
                cursor.itersize = batch_rows
                # A cursor is planned for its first rows by default; the whole day is read, so plan for all
                # of them (the plan COPY of the same query gets).
                conn.execute("set local cursor_tuple_fraction = 1.0")
                cursor.execute(query, day_window(day))
                return write_csv_gz(out, _batches(cursor, batch_rows, progress))

        rows = _retrying(conninfo, pull, attempts, backoff, sleep)
        if rows == 0:
            return PullResult(None, 0, False)
        return PullResult(key, rows, publish_file(lake, path, key))


def _batches(cursor: psycopg.Cursor, size: int, progress: Callable[[int], None] | None):
    done = 0
    while batch := cursor.fetchmany(size):
        yield batch
        done += len(batch)
        if progress:
            progress(done)
