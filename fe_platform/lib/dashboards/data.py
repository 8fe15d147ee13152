"""The rows a chart shows: a declaration (`Chart`) applied to a reporting table."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .declarations import Chart

OTHER = "Other"
UNKNOWN = "(not known)"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def to_frame(table: pa.Table, columns: set[str] | None = None) -> pd.DataFrame:
    """A pandas frame of `table`: decimals as floats, dates and timestamps as datetime64."""
    if columns is not None:
        table = table.select([c for c in table.column_names if c in columns])
    arrays = []
    for col in table.columns:
        if pa.types.is_decimal(col.type):
            col = pc.cast(col, pa.float64(), safe=False)
        arrays.append(col)
    table = pa.Table.from_arrays(arrays, names=table.column_names)
    return table.to_pandas(date_as_object=False)


def _filter(df: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    for col, value in conditions.items():
        if isinstance(value, list | tuple | set | frozenset):
            df = df[df[col].isin(list(value))]
        elif value is None:
            df = df[df[col].isna()]
        else:
            df = df[df[col] == value]
    return df


def _aggregate(df: pd.DataFrame, chart: Chart, keys: list[str]) -> pd.DataFrame:
    aggs = {m: chart.agg_for(m) for m in chart.y}
    if not keys:
        return df[list(chart.y)].agg(aggs).to_frame().T
    # sum of an all-null group stays null (min_count=1) rather than becoming 0
    grouped = df.groupby(keys, dropna=False, sort=True)
    parts = {}
    for m, a in aggs.items():
        parts[m] = grouped[m].sum(min_count=1) if a == "sum" else grouped[m].agg(a)
    return pd.DataFrame(parts).reset_index()


def chart_frame(chart: Chart, table: pa.Table) -> pd.DataFrame:
    """The rows `chart` draws: filtered, limited to the latest periods, rolled up, series capped.

    Columns: the chart's x column(s), its series column (as text labels) when it has one, and
    its measures. Tables come back sorted and limited; charts sorted by x.
    """
    df = to_frame(table, chart.columns())
    df = _filter(df, chart.filter)
    if chart.latest_periods and len(df):
        periods = sorted(df[chart.time_column].dropna().unique())[-chart.latest_periods:]
        df = df[df[chart.time_column].isin(periods)]
    keys = list(chart.dimensions) + ([chart.series] if chart.series else [])
    df = _aggregate(df, chart, keys) if len(df) else df[keys + list(chart.y)].copy()

    for col, labels in chart.value_labels.items():
        if col in keys:
            df[col] = df[col].map(lambda v, labels=labels: labels.get(v, v))
    for col in chart.dimensions:  # a text category the data does not know (a territory not placed) says so
        if col != chart.time_column and not pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = df[col].map(lambda v: UNKNOWN if _missing(v) else v)
    if chart.series:
        df[chart.series] = df[chart.series].map(lambda v: "(none)" if _missing(v) else str(v))
        if df[chart.series].nunique() > chart.max_series:
            totals = df.groupby(chart.series)[chart.y[0]].sum().abs().sort_values(ascending=False)
            keep = set(totals.index[: chart.max_series - 1])
            df[chart.series] = df[chart.series].where(df[chart.series].isin(keep), OTHER)
            df = _aggregate(df, chart, keys)

    if chart.kind == "table":
        order = chart.sort_by or (f"-{chart.y[0]}",)
        by = [c.lstrip("-") for c in order]
        ascending = [not c.startswith("-") for c in order]
        df = df.sort_values(by, ascending=ascending, na_position="last", kind="stable")
        if chart.limit:
            df = df.head(chart.limit)
    else:
        df = df.sort_values(keys, kind="stable")
    return df.reset_index(drop=True)


def period(chart: Chart, table: pa.Table) -> tuple | None:
    """The first and last `time_column` values the chart covers (after its filter), or None."""
    if chart.time_column not in table.column_names:
        return None
    df = to_frame(table, {chart.time_column} | set(chart.filter))
    df = _filter(df, chart.filter)
    values = sorted(df[chart.time_column].dropna().unique())
    if chart.latest_periods:
        values = values[-chart.latest_periods:]
    return (values[0], values[-1]) if values else None


def series_order(df: pd.DataFrame, chart: Chart) -> list[str]:
    """Series names, largest total of the first measure first, "Other" last."""
    if not chart.series or df.empty:
        return []
    totals = df.groupby(chart.series)[chart.y[0]].sum().sort_values(ascending=False)
    names = [s for s in totals.index if s != OTHER]
    return names + ([OTHER] if OTHER in totals.index else [])
