"""Operations: freshness policies, alerts, the daily digest, metrics and the status report.

The entry points (`from fe_platform.defs.operations import ...`) are imported lazily: the ingestion
assets import `freshness` from this package, and the alert sources look at those assets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

    from fe_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """The sensors `operations_alerts` and `operations_metrics`, the schedule `operations_daily_digest`."""
    from fe_platform.defs.operations.sensors import build_operations_defs

    return build_operations_defs(settings)
