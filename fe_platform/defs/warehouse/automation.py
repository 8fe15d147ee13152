"""Declarative automation of the warehouse and the dashboards.

Dagster's `eager()` only looks at the latest time partition and waits while any upstream
partition is missing; the lake tables have a partition per day since 2024, most of them
never delivered, so eager would wait forever and skip backfilled weeks. These conditions
say what the platform means: refresh what a new upstream materialization touched, wait for
the blocking checks of what is loaded, and ask again for what failed until it succeeds.
"""

import dagster as dg

_updated = (dg.AutomationCondition.newly_updated() & ~dg.AutomationCondition.executed_with_root_target()) \
    | dg.AutomationCondition.will_be_requested()
_idle = ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
# The last run that targeted it failed (or was killed, once the sweep marked it failed): ask again.
_failed = dg.AutomationCondition.execution_failed()

# An unpartitioned table or dashboard: build it while it was never built (also when it is new in the code),
# again whenever anything upstream updates, and again after a failure.
ON_UPSTREAM_CHANGE = (
    (dg.AutomationCondition.any_deps_updated().since_last_handled() | dg.AutomationCondition.missing() | _failed)
    & _idle
).with_label("on_upstream_change")


def on_partition_change(partitioned_upstream: dg.AssetKey) -> dg.AutomationCondition:
    """A partitioned table: load exactly the partitions whose `partitioned_upstream` partition updated, or
    that never loaded while it exists, or whose last load failed; never one whose upstream blocking checks
    did not pass."""
    upstream = dg.AssetSelection.assets(partitioned_upstream)
    return (
        (dg.AutomationCondition.any_deps_match(_updated).allow(upstream).since_last_handled()
         | (dg.AutomationCondition.missing() & ~dg.AutomationCondition.any_deps_missing().allow(upstream))
         | _failed)
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & _idle
    ).with_label("on_partition_change")


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates these conditions under the daemon (Dagster's default sensor for them starts stopped, so a
    fresh `make dev` would ingest and never refresh)."""
    return dg.AutomationConditionSensorDefinition(
        "platform_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Refreshes the warehouse tables and dashboards that automation conditions say are stale.")
