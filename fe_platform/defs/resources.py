"""The platform's resources, built once from the settings: the lake, the warehouse, ingestion's own.

Assets name what they touch in their signatures (`lake: dg.ResourceParam[Lake]`); nothing connects or
lists anything when the definitions load. They are plain objects rather than configurable resources, so
no secret they hold (the PII key, a warehouse password) is shown as configuration in the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fe_platform.lib.catalog import GlueCatalog
from fe_platform.lib.lake import Lake, lake_at
from fe_platform.lib.warehouse_target import WarehouseTarget
from fe_platform.settings import Settings


@dataclass(frozen=True)
class Ingestion:
    """What ingestion needs beyond the lake: the PII key, its scratch folder, batch bounds, and the Glue
    catalog its partitions are registered in (aws mode)."""

    pii_key: str = field(repr=False)
    work_dir: Path
    max_deliveries: int
    max_bytes: int
    catalog: GlueCatalog | None = None

    def scratch(self) -> Path:
        """This process's scratch folder: named by its pid, so a sweep knows when its owner is gone."""
        folder = self.work_dir / f"pid-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def lake_from_settings(s: Settings) -> Lake:
    return lake_at(s.lake_root, s.aws_region, s.s3_endpoint_url, s.kms_key_id)


def warehouse_from_settings(s: Settings) -> WarehouseTarget:
    redshift = None
    if s.redshift:
        rs = s.redshift
        redshift = {"host": rs.host, "port": rs.port, "database": rs.database, "user": rs.user,
                    "password": rs.password, "iam_role_arn": rs.iam_role_arn}
    return WarehouseTarget(s.warehouse_target, s.duckdb_path, s.postgres.conninfo() if s.postgres else None,
                           redshift, s.lake_root)


def ingestion_from_settings(s: Settings) -> Ingestion:
    catalog = GlueCatalog(s.glue_database, s.lake_root, s.aws_region) if s.glue_database else None
    return Ingestion(s.pii_hmac_key, s.work_dir, s.batch_max_deliveries, s.batch_max_bytes, catalog)


def platform_resources(s: Settings) -> dict:
    return {"lake": lake_from_settings(s), "warehouse": warehouse_from_settings(s),
            "ingestion": ingestion_from_settings(s)}
