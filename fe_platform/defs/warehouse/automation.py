"""Declarative automation of the warehouse and the dashboards.

Dagster's `eager()` only looks at the latest time partition and waits while any upstream
partition is missing; the lake tables have a partition per day since 2024, most of them
never delivered, so eager would wait forever and skip backfilled weeks. These conditions
say what the platform means: refresh what a new upstream materialization touched.
"""

import dagster as dg

_updated = (dg.AutomationCondition.newly_updated() & ~dg.AutomationCondition.executed_with_root_target()) \
    | dg.AutomationCondition.will_be_requested()
_idle = ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()

# An unpartitioned table or dashboard: build it when it is missing (also when it is new in the code),
# then again whenever anything upstream updates.
# (`since_last_handled` resets on a condition's first evaluation, so "missing when first seen" stands outside.)
ON_UPSTREAM_CHANGE = (
    ((dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
     | (dg.AutomationCondition.missing() & dg.AutomationCondition.initial_evaluation()))
    & _idle
).with_label("on_upstream_change")


def on_partition_change(partitioned_upstream: dg.AssetKey) -> dg.AutomationCondition:
    """A partitioned table: refresh exactly the partitions whose `partitioned_upstream` partition updated."""
    return (
        dg.AutomationCondition.any_deps_match(_updated).allow(dg.AssetSelection.assets(partitioned_upstream))
        .since_last_handled() & _idle
    ).with_label("on_partition_change")
