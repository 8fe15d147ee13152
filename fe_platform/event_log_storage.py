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

    def dispose(self):
        super().dispose()
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
            self._engine = None
