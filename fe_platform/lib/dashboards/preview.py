"""Previews a person can look at without Tableau.

`render_preview` writes one self-contained HTML page per dashboard (`<slug>.html`: the charts
as inline base64 PNGs, each followed by the values it plots in an HTML table, and the table charts
as HTML tables; no scripts, no external resources) and one PNG per picture (`<slug>/chart-<n>.png`,
n counting every chart of the dashboard). `render_index` writes
`index.html` linking every dashboard with its last refresh and data-quality status.
The renderer knows chart kinds, not dashboards: everything specific is in the declarations.
"""

from __future__ import annotations

import base64
import ctypes
import datetime as dt
import hashlib
import html
import io
import math
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402 (matplotlib's own dependency)

from .check_status import ERROR, OK, WARN, FailingCheck, QualityStatus, merge  # noqa: E402
from .data import chart_frame, period, series_order  # noqa: E402
from .declarations import Chart, Dashboard  # noqa: E402
from .times import day, span, when  # noqa: E402

NO_DATA = "No data yet"
PALETTE = ["#1f5fa8", "#e07b00", "#2a9d55", "#c8323c", "#7b4fb0", "#8c5a3c", "#d6589f", "#5b6770",
           "#a8a21c", "#17a2b8"]
OTHER_COLOR = "#b8bec4"
FIG_SIZE = (11.5, 4.6)
DPI = 100


# ---------------------------------------------------------------- number formats

def fmt_value(value, fmt: str) -> str:
    """A value as people read it: thousands separators, percents, dollars; "–" for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        return fmt_date(value)
    if isinstance(value, str | bool | np.bool_):
        return str(value)
    v = float(value)
    if fmt == "pct":
        return f"{v:.1%}"
    if fmt == "usd":
        return f"-${abs(v):,.0f}" if v < 0 else f"${v:,.0f}"
    if fmt == "float":
        return f"{v:,.1f}"
    return f"{v:,.0f}"


def fmt_date(value) -> str:
    """A date as "13 Nov 2026", a moment as "Fri 20 Nov, 14:03 UTC" (naive times are UTC)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None or ts.hour or ts.minute:
        return when(ts)
    return day(ts)


def _axis_formatter(fmt: str) -> FuncFormatter:
    def compact(v: float, prefix: str = "") -> str:
        a = abs(v)
        sign = "-" if v < 0 else ""
        if a >= 1e9:
            return f"{sign}{prefix}{a / 1e9:,.1f}B"
        if a >= 1e6:
            return f"{sign}{prefix}{a / 1e6:,.1f}M"
        if a >= 1e4 and prefix:
            return f"{sign}{prefix}{a / 1e3:,.0f}K"
        return f"{sign}{prefix}{a:,.0f}"

    def f(v, _pos=None):
        if fmt == "pct":
            return f"{v:.0%}" if round(v * 100, 6) == round(v * 100) else f"{v:.1%}"
        if fmt == "usd":
            return compact(v, "$")
        if fmt == "float":
            return f"{v:,.1f}" if abs(v) < 10 and v != round(v) else f"{v:,.0f}"
        return compact(v)

    return FuncFormatter(f)


def _is_time(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


# ---------------------------------------------------------------- charts

def _colors(names: list[str]) -> dict[str, str]:
    """Colors by name in alphabetical order, so a brand keeps its color across the charts of a page."""
    out, i = {}, 0
    for n in sorted(names, key=str):
        if n == "Other":
            out[n] = OTHER_COLOR
        else:
            out[n] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _wide(df: pd.DataFrame, chart: Chart) -> tuple[pd.DataFrame, str]:
    """x as index, one column per series (first measure) or per measure; and the value format."""
    x = chart.dimensions[0]
    if chart.series:
        order = series_order(df, chart)
        wide = df.pivot(index=x, columns=chart.series, values=chart.y[0]).reindex(columns=order)
        wide.columns = [str(c) for c in wide.columns]
        return wide, chart.fmt_for(chart.y[0])
    wide = df.set_index(x)[list(chart.y)]
    wide.columns = [chart.label_for(m) for m in chart.y]
    return wide, chart.fmt_for(chart.y[0])


def _legend(ax, n: int, reverse: bool = False) -> None:
    if n > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9, reverse=reverse)


def _value_locator(axis, fmt: str) -> None:
    integer = fmt == "int"
    axis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10], integer=integer,
                                       min_n_ticks=1 if integer else 3))


def _date_axis(ax, values: pd.Series, monthly: bool = False) -> None:
    """Readable date ticks: every week or two as "13 Nov" over a few months, months beyond; a monthly series
    (its dates are months' first days) is labelled by month whatever its span."""
    days = (values.max() - values.min()).days if len(values) else 0
    if monthly:
        ax.xaxis.set_major_locator(mdates.MonthLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
        ax.xaxis.set_minor_locator(mdates.MonthLocator())
        return
    if days <= 62:
        ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=values.min().weekday()))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    elif days <= 130:
        ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=values.min().weekday(), interval=2))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    else:
        ax.xaxis.set_major_locator(mdates.MonthLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.xaxis.set_minor_locator(mdates.WeekdayLocator(byweekday=values.min().weekday()) if days <= 400
                               else mdates.MonthLocator())


def _monthly(column: str) -> bool:
    return column.startswith("month")


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)


def _draw_line(ax, df: pd.DataFrame, chart: Chart) -> None:
    wide, fmt = _wide(df, chart)
    colors = _colors(list(wide.columns))
    for name in wide.columns:
        s = wide[name].dropna()  # a weekly series among daily ones still draws as a line
        ax.plot(s.index, s.to_numpy(), label=str(name), color=colors[name], linewidth=1.8,
                marker="o" if len(s) <= 16 else None, markersize=3.5)
    _value_locator(ax.yaxis, fmt)
    ax.yaxis.set_major_formatter(_axis_formatter(fmt))
    if _is_time(df[chart.dimensions[0]]):
        _date_axis(ax, df[chart.dimensions[0]], _monthly(chart.dimensions[0]))
    if fmt == "pct" and (wide.min(axis=None) or 0) < 0:
        ax.axhline(0, color="#6b7280", linewidth=0.8)
    ax.set_xlabel(chart.x_label or chart.label_for(chart.dimensions[0]))
    ax.set_ylabel(chart.y_label or chart.label_for(chart.y[0]))
    _legend(ax, len(wide.columns))


def _draw_bars(ax, df: pd.DataFrame, chart: Chart, stacked: bool) -> None:
    wide, fmt = _wide(df, chart)
    x_col = chart.dimensions[0]
    colors = _colors(list(wide.columns))
    names = list(wide.columns)
    wide = wide.fillna(0)
    if _is_time(df[x_col]):
        # vertical bars over time
        xs = mdates.date2num(pd.to_datetime(wide.index).to_pydatetime())
        step = np.min(np.diff(xs)) if len(xs) > 1 else 7.0
        width = step * 0.8
        bottom = np.zeros(len(wide))
        for i, name in enumerate(names):
            if stacked:
                ax.bar(xs, wide[name], width, bottom=bottom, label=str(name), color=colors[name])
                bottom = bottom + wide[name].to_numpy()
            else:
                w = width / len(names)
                ax.bar(xs - width / 2 + w * (i + 0.5), wide[name], w, label=str(name), color=colors[name])
        ax.xaxis_date()
        if stacked and fmt == "pct" and 0.99 <= bottom.max() <= 1.001:
            ax.set_ylim(0, 1)  # shares of a whole: the axis ends at 100%
        _date_axis(ax, df[x_col], _monthly(x_col))
        _value_locator(ax.yaxis, fmt)
        ax.yaxis.set_major_formatter(_axis_formatter(fmt))
        ax.set_xlabel(chart.x_label or chart.label_for(x_col))
        ax.set_ylabel(chart.y_label or chart.label_for(chart.y[0]))
    else:
        # horizontal bars, largest at the top, labels readable however long
        wide.index = [str(i) for i in wide.index]
        wide = wide.loc[wide.sum(axis=1).sort_values(ascending=True).index]
        ys = np.arange(len(wide))
        left = np.zeros(len(wide))
        height = 0.75
        for i, name in enumerate(names):
            if stacked or len(names) == 1:
                bars = ax.barh(ys, wide[name], height, left=left, label=str(name), color=colors[name])
                left = left + wide[name].to_numpy()
            else:
                h = height / len(names)
                bars = ax.barh(ys - height / 2 + h * (i + 0.5), wide[name], h, label=str(name),
                               color=colors[name])
                ax.bar_label(bars, labels=[fmt_value(v, fmt) for v in wide[name]], padding=3, fontsize=9)
        if stacked or len(names) == 1:
            ax.bar_label(bars, labels=[fmt_value(v, fmt) for v in left], padding=3, fontsize=9)
        ax.set_yticks(ys, wide.index)
        ax.xaxis.set_major_formatter(_axis_formatter(fmt))
        _value_locator(ax.xaxis, fmt)
        ax.set_xlim(0, max(float(left.max()) if len(left) else 0, float(wide.max(axis=None) or 0)) * 1.15 or 1)
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", color="#e3e6ea", linewidth=0.8)
        ax.set_xlabel(chart.x_label or chart.label_for(chart.y[0]))
        ax.set_ylabel(chart.y_label or chart.label_for(x_col))
    _legend(ax, len(names), reverse=stacked)


def _table_cells(df: pd.DataFrame, chart: Chart) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, formatted rows, and which columns are numeric (right-aligned)."""
    cols = list(chart.dimensions) + ([chart.series] if chart.series else []) + list(chart.y)
    header = [chart.label_for(c) for c in cols]
    numeric = [c in chart.y for c in cols]
    rows = []
    for rec in df[cols].itertuples(index=False):
        rows.append([fmt_value(v, chart.fmt_for(c) if c in chart.y else "int") for c, v in zip(cols, rec,
                                                                                                strict=True)])
    return header, rows, numeric


def _period_note(chart: Chart, table: pa.Table | None) -> str:
    covered = period(chart, table) if table is not None and table.num_rows else None
    if covered is None:
        return ""
    monthly = _monthly(chart.time_column)

    first, last = covered
    label = chart.label_for(chart.time_column)
    if monthly:
        months = [pd.Timestamp(v).strftime("%b %Y") for v in (first, last)]
        return f"{label}: {months[1]}" if first == last else f"{label}: {months[0]} to {months[1]}"
    return f"{label}: {span(first, last)}"


def has_picture(chart: Chart, df: pd.DataFrame) -> bool:
    """A table chart is an HTML table on the page, and a chart without rows says so in words: neither is drawn."""
    return chart.kind != "table" and not df.empty


def _figure(chart: Chart, df: pd.DataFrame, note: str = "") -> Figure:
    height = FIG_SIZE[1]
    if chart.kind in ("bar", "stacked_bar") and not _is_time(df[chart.dimensions[0]]):
        height = max(2.6, 1.0 + 0.34 * df[chart.dimensions[0]].nunique())
    fig = Figure(figsize=(FIG_SIZE[0], height), dpi=DPI, layout="constrained")
    fig.suptitle(chart.title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    ax = fig.add_subplot()
    _style(ax)
    if note:
        ax.set_title(note, loc="left", fontsize=10, color="#52606d")
    if chart.kind == "line":
        _draw_line(ax, df, chart)
    else:
        _draw_bars(ax, df, chart, stacked=chart.kind == "stacked_bar")
    return fig


PR_SET_PDEATHSIG = 1
FINGERPRINT = "fe_platform-fingerprint"  # the PNG text chunk naming what the picture was drawn from


def _png(fig: Figure, fingerprint: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None, FINGERPRINT: fingerprint},
                facecolor="white")
    plt.close(fig)
    return buf.getvalue()


# The code that decides what a picture shows (labels, formats, the renderer) as this process loaded it, and
# matplotlib's version: a new version of either draws every chart again.
RENDERER = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))
                          + matplotlib.__version__.encode()).hexdigest()


def _fingerprint(chart: Chart, df: pd.DataFrame, note: str) -> str:
    """What a chart's picture shows: its declaration, its values and its note, as drawn by this renderer."""
    digest = hashlib.sha256(f"{RENDERER}|{chart!r}|{note}|{list(df.columns)}|{list(df.dtypes)}".encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _drawn_before(path: Path, fingerprint: str) -> bytes | None:
    """The picture at `path`, if it was drawn from what `fingerprint` names."""
    try:
        drawn = path.read_bytes()
        with Image.open(io.BytesIO(drawn)) as image:
            return drawn if image.info.get(FINGERPRINT) == fingerprint else None
    except (OSError, ValueError):  # not there yet, or not a picture we can read
        return None


def _die_with_parent() -> None:
    """A drawing process ends when the process that forked it does: it holds that one's locks (the home's, the
    warehouse's) through the files it inherited, and must not keep them for a run that was killed."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # Linux
    except (OSError, AttributeError):  # elsewhere: it ends when its pool's pipe closes
        pass


def _draw(chart: Chart, df: pd.DataFrame, note: str, fingerprint: str) -> bytes:
    return _png(_figure(chart, df, note), fingerprint)


def _chart_pngs(charts: Sequence[tuple[Chart, pd.DataFrame, str, Path]]) -> list[bytes | None]:
    """Each chart's picture (its rows, period note, and where the picture goes), None for a chart without one.
    One drawn earlier from the same declaration, values and note is kept (a refresh draws only the charts whose
    values changed: drawing is most of a dashboard's refresh). The others are drawn side by side in forked
    processes, one per core: drawing is Python work that holds its core."""
    fingerprints = [_fingerprint(chart, df, note) if has_picture(chart, df) else None
                    for chart, df, note, _ in charts]
    pngs = []
    for (*_, path), fingerprint in zip(charts, fingerprints, strict=True):
        if fingerprint is None:
            path.unlink(missing_ok=True)  # drawn when the chart had rows, or from an earlier declaration
        pngs.append(_drawn_before(path, fingerprint) if fingerprint else None)
    todo = [i for i, png in enumerate(pngs) if png is None and fingerprints[i]]
    jobs = [(*charts[i][:3], fingerprints[i]) for i in todo]
    workers = min(len(todo), os.cpu_count() or 1)
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_die_with_parent) as pool:
            drawn = list(pool.map(_draw, *zip(*jobs, strict=True)))
    else:
        drawn = [_draw(*job) for job in jobs]
    for i, png in zip(todo, drawn, strict=True):
        _write_atomic(charts[i][3], png)
        pngs[i] = png
    return pngs


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;color:#1f2933}
header{background:#17324d;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:24px}
header p{margin:2px 0;font-size:14px;color:#d5dee8}
header a{color:#fff}
main{padding:18px 28px;max-width:1340px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:14px 18px;margin:0 0 18px}
section h2{font-size:17px;margin:0 0 8px}
img{max-width:100%;height:auto;display:block}
table.data{border-collapse:collapse;font-size:13px;margin-top:6px}
table.data th,table.data td{border-bottom:1px solid #e3e6ea;padding:4px 10px;text-align:left;white-space:nowrap}
table.data td.long{white-space:normal;overflow-wrap:anywhere;min-width:260px;max-width:420px}
table.data th{background:#eef1f5}
table.data td.num,table.data th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{max-height:600px;overflow:auto}
.period{color:#52606d;font-size:13px;margin:0 0 6px}
details summary{cursor:pointer;color:#1f5fa8;font-size:13px;margin-top:6px}
.nodata{color:#6b7280;font-size:18px;padding:30px;text-align:center}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-size:13px;font-weight:bold}
.ok{background:#d9f2e3;color:#17643a}.warn{background:#fdecc8;color:#7a4b00}
.fail{background:#f9d7d9;color:#8a1c24}.unknown{background:#e3e6ea;color:#3e4c59}
.muted{color:#6b7280;font-size:13px}
ul.checks{margin:6px 0 0;padding-left:18px;font-size:13px}ul.checks li{margin:2px 0}
.fail-text{color:#8a1c24}.warn-text{color:#7a4b00}
a.badge-link{text-decoration:none}
table.checks td{white-space:normal;vertical-align:top}table.checks td.check{overflow-wrap:anywhere;min-width:240px}
table.checks td.long{min-width:200px}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
"""


_LEVEL_CLASS = {OK: "ok", WARN: "warn", ERROR: "fail"}
MAX_PARTITIONS_NAMED = 5
MAX_CHECKS_ON_INDEX_ROW = 4


def _badge(status: QualityStatus | None, href: str | None = None, missing: str = "not built yet") -> str:
    text = status.headline if status else missing
    css = _LEVEL_CLASS.get(status.level, "unknown") if status else "unknown"
    badge = f'<span class="badge {css}" data-level="{status.level if status else "UNKNOWN"}">{html.escape(text)}</span>'
    return f'<a href="{html.escape(href)}" class="badge-link">{badge}</a>' if href and status and status.failing \
        else badge


def _partitions_text(f: FailingCheck) -> str:
    """Which partitions fail, in words: "3 of 13 partitions: 20 Nov 2026, 13 Nov 2026, 6 Nov 2026"."""
    if not f.failed_partitions:
        return "the latest evaluation" if f.partitions_evaluated <= 1 else f"{f.partitions_evaluated} evaluations"
    n = len(f.failed_partitions)
    plural = "s" if f.partitions_evaluated != 1 else ""
    if 0 < len(f.error_partitions) < n:  # an ERROR check that only warns elsewhere: which is which
        warned = tuple(p for p in f.failed_partitions if p not in set(f.error_partitions))
        return (f"{n} of {f.partitions_evaluated} partition{plural}: ERROR in {len(f.error_partitions)} "
                f"({_listed(f.error_partitions)}), WARN in {len(warned)} ({_listed(warned)})")
    if n == f.partitions_evaluated and n > MAX_PARTITIONS_NAMED:
        return f"all {n} partitions, the latest {_partition_words(f.failed_partitions[0])}"
    return f"{n} of {f.partitions_evaluated} partition{plural}: {_listed(f.failed_partitions)}"


def _listed(partitions: tuple[str, ...]) -> str:
    names = [_partition_words(p) for p in partitions[:MAX_PARTITIONS_NAMED]]
    more = len(partitions) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


def _partition_words(key: str) -> str:
    try:
        return day(dt.date.fromisoformat(key))
    except ValueError:
        return key


def _level_words(f: FailingCheck) -> str:
    if f.not_completed and f.not_completed == len(f.failed_partitions or (1,)):
        return f"{f.level} (did not complete)"
    return f.level


def _checks_table(failing: list[tuple[FailingCheck, list[str]]] | tuple[FailingCheck, ...],
                  with_dashboards: bool = False, dashboards_total: int = 0) -> str:
    head = ["Check", "Result", "Where it did not pass", "Last failed"] + (["Dashboards"] if with_dashboards else [])
    rows = []
    for item in failing:
        f, titles = item if with_dashboards else (item, [])
        cells = [
            f'<td class="check"><code>{html.escape(f.check)}</code></td>',
            f'<td><span class="badge {_LEVEL_CLASS[f.level]}">{html.escape(_level_words(f))}</span></td>',
            f'<td class="long">{html.escape(_partitions_text(f))}</td>',
            f'<td>{html.escape(when(f.last_failed_at) if f.last_failed_at else "–")}</td>',
        ]
        if with_dashboards:
            affected = f"all {len(titles)}" if len(titles) == dashboards_total > 1 else ", ".join(titles)
            cells.append(f'<td class="long">{html.escape(affected)}</td>')
        rows.append(f'<tr data-check="{html.escape(f.check)}" data-level="{f.level}">{"".join(cells)}</tr>')
    th = "".join(f'<th scope="col">{h}</th>' for h in head)
    return f'<table class="data checks"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


RULE = ("The status is the worst latest result of every asset check upstream of the dashboard, through the "
        "lineage back to the landing feeds: for each check, the latest completed evaluation of each partition "
        "(an evaluation still running does not count yet; one whose run failed before the check reported counts "
        "as ERROR).")


def _quality_section(status: QualityStatus | None) -> str:
    if status is None:
        return ""
    if status.level == "UNKNOWN":
        body = '<p>No upstream check has run yet.</p>'
    elif not status.failing:
        body = (f"<p>All {status.checks:,} upstream checks passed on their latest evaluation "
                f"({status.results:,} results).</p>")
    else:
        body = (f"<p>{len(status.failing):,} of {status.checks:,} upstream checks did not pass on their latest "
                f"evaluation ({status.results:,} results counted):</p>" + _checks_table(status.failing))
    return (f'<section id="data-quality" data-level="{status.level}"><h2>Data quality: {_badge(status)}</h2>'
            f'{body}<p class="muted">{html.escape(RULE)}</p></section>')


def _html_table(header: list[str], rows: list[list[str]], numeric: list[bool], caption: str) -> str:
    th = "".join(f'<th scope="col"{" class=num" if n else ""}>{html.escape(h)}</th>'
                 for h, n in zip(header, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if n else (" class=long" if len(v) > 40 else "")}>{html.escape(v)}</td>'
                         for v, n in zip(r, numeric, strict=True)) + "</tr>"
        for r in rows
    )
    return (f'<div class="scroll"><table class="data"><caption class="muted" style="text-align:left">'
            f"{html.escape(caption)}</caption><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>")


def _chart_data_table(df: pd.DataFrame, chart: Chart) -> str:
    """The values a chart plots, as an accessible table (x down, series or measures across)."""
    if chart.kind == "table":
        header, rows, numeric = _table_cells(df, chart)
        return _html_table(header, rows, numeric, f"{len(rows):,} rows")
    wide, fmt = _wide(df, chart)
    x = chart.dimensions[0]
    header = [chart.label_for(x)] + [str(c) for c in wide.columns]
    numeric = [False] + [True] * len(wide.columns)
    rows = [[fmt_value(idx, "int")] + [fmt_value(v, fmt) for v in vals]
            for idx, vals in zip(wide.index, wide.to_numpy().tolist(), strict=True)]
    if _is_time(df[x]):
        rows.reverse()  # latest first
    caption = f"{chart.label_for(chart.y[0])}" if chart.series else "Values"
    return ("<details><summary>Data shown in this chart</summary>"
            + _html_table(header, rows, numeric, caption) + "</details>")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _when(value) -> str:
    return "never" if value is None else when(value)


def render_preview(dashboard: Dashboard, tables: Mapping[str, pa.Table], out_dir: Path,
                   refreshed_at: dt.datetime, quality: QualityStatus | None = None) -> Path:
    """Write `<out_dir>/<slug>.html` and `<out_dir>/<slug>/chart-<n>.png` for each chart drawn as a picture;
    return the HTML path.

    A chart whose rows are empty (or whose table is missing) shows "No data yet".
    """
    return render_previews([(dashboard, tables, quality)], out_dir, refreshed_at)[dashboard.slug]


def render_previews(pages: Sequence[tuple[Dashboard, Mapping[str, pa.Table], QualityStatus | None]], out_dir: Path,
                    refreshed_at: dt.datetime) -> dict[str, Path]:
    """`render_preview` of several dashboards (each with its tables and status), their charts drawn together: a
    refresh that changes a few charts of each dashboard keeps every core drawing."""
    out_dir = Path(out_dir)
    charts: dict[str, list] = {}
    for dashboard, tables, _ in pages:
        charts[dashboard.slug] = []
        for n, chart in enumerate(dashboard.charts, start=1):
            table = tables.get(chart.table)
            frame = chart_frame(chart, table) if table is not None else pd.DataFrame()
            charts[dashboard.slug].append((chart, frame, _period_note(chart, table),
                                           out_dir / dashboard.slug / f"chart-{n}.png"))
    pngs = iter(_chart_pngs([chart for drawn in charts.values() for chart in drawn]))
    return {dashboard.slug: _write_page(dashboard, [(*chart[:3], next(pngs)) for chart in charts[dashboard.slug]],
                                        out_dir, refreshed_at, quality)
            for dashboard, _, quality in pages}


def _write_page(dashboard: Dashboard, charts: list[tuple[Chart, pd.DataFrame, str, bytes | None]], out_dir: Path,
                refreshed_at: dt.datetime, quality: QualityStatus | None) -> Path:
    sections = []
    for n, (chart, df, note, png) in enumerate(charts, start=1):
        title = html.escape(chart.title)
        if df.empty:
            body = f'<div class="nodata">{NO_DATA}</div>'
        elif png is None:  # a table chart
            body = _chart_data_table(df, chart)
        else:
            img = base64.b64encode(png).decode("ascii")
            body = (f'<img src="data:image/png;base64,{img}" alt="{title}">'
                    + _chart_data_table(df, chart))
        # an image chart carries its title in the picture; the heading stays for screen readers
        h2_class = ' class="sr-only"' if (chart.kind != "table" and not df.empty) else ""
        desc = f'<p class="muted">{html.escape(chart.description)}</p>' if chart.description else ""
        if note and h2_class == "":
            desc += f'<p class="period">{html.escape(note)}</p>'
        elif note:
            desc += f'<p class="sr-only">{html.escape(note)}</p>'
        sections.append(f'<section id="chart-{n}" data-chart="{n}" data-kind="{chart.kind}" '
                        f'data-table="{chart.table}"><h2{h2_class}>{title}</h2>{desc}{body}</section>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(dashboard.title)}</title><style>{CSS}</style></head>
<body><header><h1>{html.escape(dashboard.title)}</h1>
<p>{html.escape(dashboard.description)}</p>
<p>Owner: {html.escape(dashboard.owner_team)} &lt;{html.escape(dashboard.owner_email)}&gt; ·
Reads: {html.escape(", ".join(dashboard.tables))}</p>
<p>Last refreshed: {_when(refreshed_at)} · Data quality: {_badge(quality, "#data-quality")} ·
<a href="index.html">All dashboards</a></p></header>
<main>{"".join(sections)}{_quality_section(quality)}</main></body></html>
"""
    path = out_dir / f"{dashboard.slug}.html"
    _write_atomic(path, page.encode("utf-8"))
    return path


def _quality_of(entry: Mapping) -> QualityStatus | None:
    q = entry.get("quality")
    if q is None or isinstance(q, QualityStatus):
        return q
    return QualityStatus.from_json(q)


def _no_status(entry: Mapping) -> str:
    # a status file written before checks made the status: the dashboard's next refresh fills it in
    return "not checked yet" if entry.get("refreshed_at") else "not built yet"


def _index_checks(status: QualityStatus | None, href: str) -> str:
    """The failing checks named under a dashboard's badge on the index (the first few, then a link)."""
    if not status or not status.failing:
        return ""
    shown = status.failing[:MAX_CHECKS_ON_INDEX_ROW]
    items = "".join(f'<li class="{_LEVEL_CLASS[f.level]}-text"><code>{html.escape(f.check)}</code> '
                    f'{html.escape(f.level)}</li>' for f in shown)
    more = len(status.failing) - len(shown)
    tail = f'<li><a href="{href}#data-quality">and {more} more</a></li>' if more else ""
    return f'<ul class="checks">{items}{tail}</ul>'


def render_index(dashboards_status: list[dict], out_dir: Path) -> Path:
    """Write `<out_dir>/index.html` linking every dashboard; return its path.

    Each entry: `slug` and `title` (required), and optionally `refreshed_at` (datetime or ISO
    text), `quality` (a `QualityStatus` or its JSON), `owner_team`, `description`, `href`
    (default `<slug>.html`). The checks that did not pass are named under each dashboard's badge,
    and listed once below the table with the dashboards they affect.
    """
    rows = []
    statuses: dict[str, QualityStatus] = {}
    for d in dashboards_status:
        href = html.escape(d.get("href") or f"{d['slug']}.html")
        quality = _quality_of(d)
        if quality is not None:
            statuses[d["title"]] = quality
        rows.append(
            f'<tr data-slug="{html.escape(d["slug"])}"><td><a href="{href}">{html.escape(d["title"])}</a>'
            f'<div class="muted">{html.escape(d.get("description", ""))}</div></td>'
            f'<td>{html.escape(d.get("owner_team", ""))}</td>'
            f"<td>{html.escape(_when(d.get('refreshed_at')))}</td>"
            f"<td>{_badge(quality, f'{href}#data-quality', _no_status(d))}{_index_checks(quality, href)}</td></tr>"
        )
    if not rows:
        rows.append(f'<tr><td colspan="4" class="nodata">{NO_DATA}</td></tr>')
    failing = merge(statuses)
    checks = ""
    if failing:
        checks = (f'<section id="failing-checks"><h2>Checks that did not pass ({len(failing):,})</h2>'
                  + _checks_table(failing, with_dashboards=True, dashboards_total=len(statuses))
                  + f'<p class="muted">{html.escape(RULE)}</p></section>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>F&amp;E dashboards</title><style>{CSS}
table.index{{border-collapse:collapse;width:100%;background:#fff;font-size:15px}}
table.index th,table.index td{{padding:10px 14px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}}
table.index th{{background:#eef1f5}}</style></head>
<body><header><h1>Fertility &amp; Endocrinology dashboards</h1>
<p>Previews of the dashboards' data sources. The same data is in each dashboard's Hyper extract.</p></header>
<main><table class="index"><thead><tr><th scope="col">Dashboard</th><th scope="col">Owner</th>
<th scope="col">Last refreshed</th><th scope="col">Data quality</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>{checks}</main></body></html>
"""
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    _write_atomic(path, page.encode("utf-8"))
    return path
