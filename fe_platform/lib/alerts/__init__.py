"""Alerts of the operations contract (`shared/spec/operations.md`), as plain Python: the alert, routing by
owners, the channels (SMTP or SES email, webhook, SNS, outbox files), the record of what was told, and the
CloudWatch metrics. No Dagster and no settings here: the callers pass plain values."""

from fe_platform.lib.alerts.model import KINDS, Alert, Finding

__all__ = ["KINDS", "Alert", "Finding"]
