"""The local instance's event log (dagster.yaml): one SQLite file, connections kept open per process, and what
one process writes the others read (the daemon, the webserver and `fe-platform run` share it)."""

import shutil
import subprocess
import sys

import dagster as dg
import sqlalchemy as db

from fe_platform.event_log_storage import PooledSqliteEventLogStorage
from fe_platform.settings import PROJECT_ROOT

KEY = dg.AssetKey(["shared_asset"])

OTHER_PROCESS = """
import sys
import dagster as dg
with dg.DagsterInstance.get() as instance:
    seen = instance.fetch_materializations(dg.AssetKey(["shared_asset"]), limit=100).records
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["shared_asset"]),
                                                                metadata={"by": "the other process"}))
    print(len(seen))
"""


def test_the_project_instance_keeps_connections_open_and_shares_events_across_processes(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        for i in range(30):
            instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata={"i": i}))
        assert storage.has_table("asset_check_executions") and storage.has_asset_key_index_cols()
        assert not storage.has_table("no_such_table")
        engine = storage._pooled_engine()
        # 30 events and their reads through one open connection, not one connection per event
        assert engine.pool.checkedin() == 1 and engine.pool.checkedout() == 0
        with engine.connect() as conn:
            assert conn.execute(db.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"

        other = subprocess.run([sys.executable, "-c", OTHER_PROCESS], capture_output=True, text=True, check=True,
                               env={"DAGSTER_HOME": str(home), "PATH": ""})
        assert other.stdout.split()[-1] == "30"  # it read what this process wrote
        latest = instance.fetch_materializations(KEY, limit=1).records[0]  # and this one reads what it wrote,
        assert latest.asset_materialization.metadata["by"].value == "the other process"  # on an open connection
    assert storage._engine is None  # disposed with the instance
