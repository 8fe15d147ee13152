"""Operations: freshness policies, alerts, the daily digest, metrics and the status report.

Entry points for the rest of the platform:
- `build_defs(settings)`: the sensors `operations_alerts` and `operations_metrics`, the schedule
  `operations_daily_digest` and its job;
- `evaluate_alerts(instance, defs, lake, settings, now=None)`: tell what failed anew (after a one-shot run);
- `publish_metrics(instance, defs, lake, settings, now=None)`: CloudWatch metrics, in aws mode;
- `summary_lines(settings, alerts)`: a run summary's lines on alerts and the outbox.
They are imported lazily: the ingestion assets import `freshness` from this package, and the alert
sources import the ingestion assets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

    from fe_platform.settings import Settings

_LAZY = {"evaluate_alerts": "alerts", "send_digests": "alerts", "summary_lines": "alerts",
         "publish_metrics": "metrics", "platform_status": "status", "format_status": "status"}


def build_defs(settings: Settings) -> dg.Definitions:
    from fe_platform.defs.operations.sensors import build_operations_defs

    return build_operations_defs(settings)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"fe_platform.defs.operations.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
