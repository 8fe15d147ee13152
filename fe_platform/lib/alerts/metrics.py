"""Metrics of the contract to CloudWatch: namespace `FE/Platform`, dimensions feed and asset.

Per delivery: rows_in, rows_valid, rows_quarantined, rejected (0/1), seconds, bytes. Per run: run_seconds
and run_failed (0/1, the outcome). Per feed: freshness_lag_hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

NAMESPACE = "FE/Platform"
BATCH = 500  # datums per PutMetricData call (the API takes up to 1,000)


def datum(name: str, value: float, unit: str, feed: str, asset: str, at: datetime) -> dict:
    return {"MetricName": name, "Value": float(value), "Unit": unit, "Timestamp": at,
            "Dimensions": [{"Name": "feed", "Value": feed}, {"Name": "asset", "Value": asset}]}


def delivery_datums(feed: str, asset: str, at: datetime, rows_in: int, rows_valid: int, rows_quarantined: int,
                    rejected: bool, seconds: float | None = None, size: int | None = None) -> list[dict]:
    out = [datum("rows_in", rows_in, "Count", feed, asset, at),
           datum("rows_valid", rows_valid, "Count", feed, asset, at),
           datum("rows_quarantined", rows_quarantined, "Count", feed, asset, at),
           datum("rejected", 1 if rejected else 0, "Count", feed, asset, at)]
    if seconds is not None:
        out.append(datum("seconds", seconds, "Seconds", feed, asset, at))
    if size is not None:
        out.append(datum("bytes", size, "Bytes", feed, asset, at))
    return out


def run_datums(feed: str, asset: str, at: datetime, seconds: float, failed: bool) -> list[dict]:
    return [datum("run_seconds", seconds, "Seconds", feed, asset, at),
            datum("run_failed", 1 if failed else 0, "Count", feed, asset, at)]


def freshness_datum(feed: str, asset: str, at: datetime, lag_hours: float) -> dict:
    return datum("freshness_lag_hours", lag_hours, "None", feed, asset, at)


def put_metrics(datums: Iterable[dict], region: str | None, endpoint_url: str | None = None) -> int:
    """Send the datums in batches; returns how many were sent. Raises what boto3 raises."""
    import boto3

    items = list(datums)
    if not items:
        return 0
    client = boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url)
    for start in range(0, len(items), BATCH):
        client.put_metric_data(Namespace=NAMESPACE, MetricData=items[start:start + BATCH])
    return len(items)
