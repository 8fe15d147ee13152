"""Where the warehouse is: built once from the settings when the definitions load, connected per use (the
loaders in `warehouse.py`, and their pyarrow and database drivers, are imported only then)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fe_platform.lib.warehouse import Warehouse


class WarehouseTarget:
    """Where the warehouse is, and how to connect to it: built once from the settings, connected per use."""

    def __init__(self, target: str, duckdb_path: Path | None = None, postgres: dict | None = None,
                 redshift: dict | None = None, lake_root: str | None = None):
        self.target = target
        self.duckdb_path = Path(duckdb_path) if duckdb_path else None
        self._postgres = postgres  # psycopg conninfo (holds the password: never shown)
        self._redshift = redshift  # host, port, database, user, password, iam_role_arn
        self.lake_root = lake_root

    def __repr__(self) -> str:
        return f"WarehouseTarget({self.target})"

    def connect(self) -> Warehouse:
        from fe_platform.lib import warehouse

        if self.target == "duckdb":
            return warehouse.DuckDBWarehouse(self.duckdb_path)
        if self.target == "postgres":
            return warehouse.PostgresWarehouse(self._postgres)
        import redshift_connector

        rs = dict(self._redshift)
        role = rs.pop("iam_role_arn")
        return warehouse.RedshiftWarehouse(lambda: redshift_connector.connect(**rs), role, self.lake_root)

    def writer_lock(self) -> AbstractContextManager:
        """Held while a process other than ours (dbt) writes: DuckDB has one writer at a time."""
        if self.target == "duckdb":
            from fe_platform.lib.warehouse import duckdb_lock

            return duckdb_lock(self.duckdb_path)
        return nullcontext()
