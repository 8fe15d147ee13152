"""The local Dagster instance's event log: Dagster's one-file SQLite log, with its connections kept open.

Dagster's SQLite storage creates an engine, opens a connection, commits with an fsync and closes it for every
event, and closing the last connection of a WAL database checkpoints it. A `fe-platform run` of the demo writes
about 7,500 events (a materialization and its checks per delivery), and that bookkeeping was most of its time
(`benchmarks/latency.py`). Here each process keeps a pool of open connections (one per thread) and commits in
WAL mode with `synchronous=NORMAL`: a committed event survives a crash of any process; only a power loss can
lose the last few commits, and it cannot corrupt the file. `dagster.yaml` names this class; AWS uses PostgreSQL.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    _engine: db.Engine | None = None
    _engine_pid: int | None = None

    def __init__(self, base_dir, inst_data=None):
        self._tables: set[str] = set()
        self._asset_key_columns: set[str] = set()
        super().__init__(base_dir, inst_data)

    def _pooled_engine(self) -> db.Engine:
        if self._engine is None or self._engine_pid != os.getpid():  # a forked process opens its own
            engine = db.create_engine(self._conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous=NORMAL"))
            self._engine, self._engine_pid = engine, os.getpid()
        return self._engine

    @contextmanager
    def _connect(self):
        with self._pooled_engine().connect() as conn, conn.begin():
            yield conn

    # Dagster asks whether a table or column exists for every check or materialization event, by reflection on a
    # new connection; what exists stays (only `dagster instance migrate` adds to the schema), so a yes is kept.
    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables:
            with self._pooled_engine().connect() as conn:
                if db.inspect(conn).has_table(table_name):
                    self._tables.add(table_name)
        return table_name in self._tables

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        if column_name not in self._asset_key_columns and super()._has_asset_key_col_on_connection(conn, column_name):
            self._asset_key_columns.add(column_name)
        return column_name in self._asset_key_columns

    def dispose(self):
        super().dispose()
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
            self._engine = None
