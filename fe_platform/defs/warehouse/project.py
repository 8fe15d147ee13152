"""The dbt project as Dagster sees it: its manifest, prepared ahead, and the CLI resource."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from functools import cache, cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from fe_platform.settings import PROJECT_ROOT, Settings, environ_set

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"


DELIVERY_DATES_ENV = "FE_DBT_DELIVERY_DATES"  # {"<feed>": ["YYYY-MM-DD", ...]}: see delivery_window.sql


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt's profiles.yml reads, from the platform's settings."""
    env = {"FE_WAREHOUSE": settings.warehouse_target, "FE_DUCKDB_PATH": str(settings.duckdb_path),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           # A run builds a subset of the models: run the tests whose other parents are upstream of it
           # (already built), not those that reach into models a later run builds.
           "DBT_INDIRECT_SELECTION": "buildable"}
    if settings.postgres:
        pg = settings.postgres
        env.update(FE_POSTGRES_HOST=pg.host, FE_POSTGRES_PORT=str(pg.port), FE_POSTGRES_DATABASE=pg.database,
                   FE_POSTGRES_USER=pg.user, FE_POSTGRES_PASSWORD=pg.password)
    if settings.redshift:
        rs = settings.redshift
        env.update(FE_REDSHIFT_HOST=rs.host, FE_REDSHIFT_PORT=str(rs.port), FE_REDSHIFT_DATABASE=rs.database,
                   FE_REDSHIFT_USER=rs.user, FE_REDSHIFT_PASSWORD=rs.password)
    return env


def _manifest_is_stale() -> bool:
    if not MANIFEST.exists():
        return True
    built = MANIFEST.stat().st_mtime
    sources = [p for folder in ("models", "macros", "tests") for p in (DBT_PROJECT_DIR / folder).rglob("*")]
    sources += [DBT_PROJECT_DIR / "dbt_project.yml"]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def prepare_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than the project (the install does it ahead)."""
    if _manifest_is_stale():
        subprocess.run(
            [str(DBT_EXECUTABLE), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target", "duckdb"],
            check=True, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
    return MANIFEST


def dbt_project(settings: Settings) -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings.warehouse_target)


class PlatformDbtCli(DbtCliResource):
    """Two things dagster-dbt does before every invocation, each costing seconds, that the platform needs not:
    - it runs `dbt --version` (a process that imports dbt) to learn the executable's version; the executable is
      this environment's own, so it is the installed dbt-core's;
    - it opens a dbt adapter in this process (dbt's imports, the project and profile loaded again) for the row
      counts and column metadata an asset may ask for; the platform asks for neither."""

    @cached_property
    def _cli_version(self):
        from packaging.version import Version

        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_resource(settings: Settings) -> DbtCliResource:
    return PlatformDbtCli(project_dir=dbt_project(settings), dbt_executable=str(DBT_EXECUTABLE),
                          target=settings.warehouse_target)


@cache
def load_manifest() -> dict:
    """The prepared manifest, parsed once per process (the dbt assets, the facts and the dashboards read it).
    orjson, which dagster-dbt depends on, parses it several times faster than json."""
    import orjson

    return orjson.loads(prepare_manifest().read_bytes())


def delivery_facts(manifest: dict) -> dict[str, str]:
    """The incremental facts and the feed whose deliveries each follows, from the models' dbt config
    (`meta: {fe_platform: {delivery_feed: <feed>}}`)."""
    nodes = manifest["nodes"].values()
    return {node["name"]: feed for node in nodes if node["resource_type"] == "model"
            and (feed := node["config"].get("meta", {}).get("fe_platform", {}).get("delivery_feed"))}


class DbtRun:
    """Where a run's dbt writes: one target folder per home, kept between runs, so dbt's partial parsing
    (seeded from the manifest prepared at install) stays warm; and the environment its profile reads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.folder = settings.home / "dbt-target"

    def environment(self, delivery_dates: dict[str, list[str]] | None = None):
        """The environment profiles.yml reads the connection from, for the dbt process started meanwhile
        (dagster-dbt hands dbt this process's environment), and the process's own again afterwards; with the
        partitions each feed's incremental facts process (`delivery_window.sql`). They travel in the
        environment rather than in `--vars`: dbt parses the whole project again whenever its --vars change,
        which they do at every run, and reads this variable only when it compiles the facts."""
        env = dbt_env(self.settings)
        env[DELIVERY_DATES_ENV] = json.dumps(delivery_dates, sort_keys=True) if delivery_dates else ""
        return environ_set(env)

    def target_path(self) -> Path:
        state = self.folder / "partial_parse.msgpack"
        prepared = MANIFEST.parent / "partial_parse.msgpack"
        if prepared.exists() and (not state.exists() or state.stat().st_mtime < prepared.stat().st_mtime):
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(prepared, state)
        return self.folder
