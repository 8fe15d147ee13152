"""The code location: each domain's Definitions, merged. Nothing else lives here."""

from __future__ import annotations

import gc
import warnings

import dagster as dg

from fe_platform.defs import dashboards, ingestion, operations, warehouse
from fe_platform.defs.resources import platform_resources
from fe_platform.settings import Settings, settings

# Partitioned asset checks (preview) and backfill policies on assets (beta) are Dagster features the
# platform relies on knowingly; saying so once here keeps every load's output readable.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(s: Settings) -> dg.Definitions:
    return dg.Definitions.merge(
        # Every run is one process: an ingestion run is one step and a refresh one `dbt build`, so a process
        # per step (the multiprocess default) would only load the definitions again.
        core := dg.Definitions.merge(
            dg.Definitions(resources=platform_resources(s), executor=dg.in_process_executor),
            ingestion.build_defs(s),
            warehouse.build_defs(s),
        ),
        dashboards.build_defs(s, upstream=core),
        operations.build_defs(s),
    )


defs = build_definitions(settings())
# The definitions (dbt's manifest among them: some 400,000 objects) live as long as the process: the collector
# need not walk them again, in each full collection of a run nor in the one at exit (most of a second).
gc.freeze()
