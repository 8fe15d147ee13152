"""Dashboards declared as data.

A dashboard is a name, an owner, the reporting tables it reads and a list of charts. A chart
says which table it reads, how to filter and roll the rows up, and how to draw them; the
renderer (`preview.py`) and the extract writer (`extract.py`) are generic over these
declarations, so adding a dashboard is adding a `Dashboard(...)` to `DASHBOARDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CHART_KINDS = ("line", "bar", "stacked_bar", "table")
NUMBER_FORMATS = ("int", "pct", "usd", "float")
AGGREGATIONS = ("sum", "mean", "max", "min", "last")


@dataclass(frozen=True)
class Chart:
    """One chart (or table) of a dashboard.

    The rows of `table` go through, in order:
      1. `filter`: keep rows whose column equals the value (or is in the list/tuple of values);
      2. `latest_periods`: keep the latest N distinct values of `time_column` (weeks or months);
      3. roll-up: group by `x` (one column, or several for a table) and `series`, and aggregate
         each measure of `y` with `agg` (one function for all, or a mapping measure -> function);
      4. `max_series`: keep the top series by total of the first measure, the rest become "Other";
      5. tables only: sort by `sort_by` (column names, "-column" for descending; default: the
         first measure, descending), keep `limit` rows.

    `kind`: "line" (x over time, one line per series or per measure), "bar" (horizontal bars
    when x is a category, sorted; vertical when x is a date), "stacked_bar" (stacks are the
    series, or the measures when there is no series), "table".
    `fmt`: "int" | "pct" (fractions 0-1) | "usd" | "float"; a tuple gives one format per measure.
    `value_labels`: per x/series column, how to show its values (e.g. True -> "Own brands").
    """

    title: str
    table: str
    kind: str
    x: str | tuple[str, ...]
    y: tuple[str, ...]
    series: str | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)
    latest_periods: int | None = None
    time_column: str = "week_ending"
    agg: str | Mapping[str, str] = "sum"
    fmt: str | tuple[str, ...] = "int"
    max_series: int = 10
    value_labels: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)
    measure_labels: Mapping[str, str] = field(default_factory=dict)
    sort_by: tuple[str, ...] | None = None
    limit: int | None = None
    x_label: str | None = None
    y_label: str | None = None
    description: str = ""

    def __post_init__(self):
        if self.kind not in CHART_KINDS:
            raise ValueError(f"chart {self.title!r}: kind must be one of {CHART_KINDS}, got {self.kind!r}")
        if isinstance(self.y, str):
            object.__setattr__(self, "y", (self.y,))
        if not self.y:
            raise ValueError(f"chart {self.title!r}: y needs at least one measure")
        fmts = (self.fmt,) if isinstance(self.fmt, str) else tuple(self.fmt)
        if any(f not in NUMBER_FORMATS for f in fmts) or (len(fmts) not in (1, len(self.y))):
            raise ValueError(f"chart {self.title!r}: fmt must be one of {NUMBER_FORMATS} or one per measure")
        aggs = [self.agg] if isinstance(self.agg, str) else list(self.agg.values())
        if any(a not in AGGREGATIONS for a in aggs):
            raise ValueError(f"chart {self.title!r}: agg must be one of {AGGREGATIONS}")
        if self.kind != "table" and not isinstance(self.x, str):
            raise ValueError(f"chart {self.title!r}: only a table may have several x columns")

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (self.x,) if isinstance(self.x, str) else tuple(self.x)

    def fmt_for(self, measure: str) -> str:
        if isinstance(self.fmt, str):
            return self.fmt
        return self.fmt[self.y.index(measure)]

    def agg_for(self, measure: str) -> str:
        if isinstance(self.agg, str):
            return self.agg
        return self.agg.get(measure, "sum")

    def label_for(self, column: str) -> str:
        if column in self.measure_labels:
            return self.measure_labels[column]
        return COLUMN_LABELS.get(column, column.replace("_", " ").capitalize())

    def columns(self) -> set[str]:
        """Every column of `table` this chart reads."""
        cols = set(self.dimensions) | set(self.y) | set(self.filter)
        if self.series:
            cols.add(self.series)
        if self.latest_periods:
            cols.add(self.time_column)
        if self.sort_by:
            cols |= {c.lstrip("-") for c in self.sort_by}
        return cols


@dataclass(frozen=True)
class Dashboard:
    name: str
    slug: str
    title: str
    owner_team: str
    owner_email: str
    description: str
    tables: tuple[str, ...]
    charts: tuple[Chart, ...]

    @property
    def datasource_name(self) -> str:
        """The name of the dashboard's data source on Tableau (and of its `.hyper` file)."""
        return f"FE {self.title}"

    def validate(self, known: Mapping[str, Any]) -> list[str]:
        """Problems with this declaration against the reporting contract (empty when fine).

        `known`: reporting table -> its columns, or the `ReportingTable`s that
        `reporting.reporting_tables` reads from the dbt manifest.
        """
        problems = []
        for table in self.tables:
            if table not in known:
                problems.append(f"{self.name}: reporting table {table} is not built by the dbt project")
        for chart in self.charts:
            if chart.table not in self.tables:
                problems.append(f"{self.name}/{chart.title}: reads {chart.table}, not among the dashboard's tables")
                continue
            if chart.table not in known:
                continue
            missing = chart.columns() - set(_columns(known[chart.table]))
            if missing:
                problems.append(f"{self.name}/{chart.title}: unknown columns {sorted(missing)} in {chart.table}")
        return problems


def _columns(table: Any) -> Iterable[str]:
    return table.columns if hasattr(table, "columns") else table  # a ReportingTable, or the columns


COLUMN_LABELS = {
    "trx": "TRx", "nrx": "NRx", "nbrx": "NBRx", "market_trx": "Market TRx", "trx_share": "TRx share",
    "trx_4wk": "TRx (4 wk)", "trx_growth_4wk": "TRx growth (4 wk)", "week_ending": "Week ending",
    "brand_name": "Brand", "brand_code": "Brand code", "market": "Market", "is_own_brand": "Own brand",
    "territory_name": "Territory", "territory_id": "Territory ID", "district_name": "District",
    "region_name": "Region", "own_trx": "Own-brand TRx", "own_nbrx": "Own-brand NBRx",
    "net_sales_usd": "Net sales (USD)", "submitted_calls": "Submitted calls", "hcps_reached": "HCPs reached",
    "hcps_with_own_trx_13wk": "HCPs with own TRx (13 wk)", "reach_pct": "Reach",
    "rep_name": "Rep", "rep_id": "Rep ID", "month_start": "Month", "calls_total": "Calls",
    "calls_in_person": "In person", "calls_virtual": "Virtual", "calls_phone": "Phone",
    "calls_email": "Email", "call_frequency": "Calls per reached HCP", "feed": "Feed",
    "partition_date": "Partition", "landing_key": "Delivery", "outcome": "Outcome",
    "rows_in": "Rows in", "rows_valid": "Rows valid", "rows_quarantined": "Rows quarantined",
    "quarantine_pct": "Quarantined", "rejected_files": "Rejected files", "ingested_at": "Ingested at",
    "freshness_lag_hours": "Freshness lag (h)",
    "new_patients": "New patients", "refills": "Refills", "reversed_fills": "Reversed fills",
    "days_supply_dispensed": "Days' supply dispensed", "event_attendances": "Event attendances",
    "email_opens": "Email opens", "portal_visits": "Portal visits", "hcps_engaged": "HCPs engaged",
    "touches": "Touches", "touches_per_engaged_hcp": "Touches per engaged HCP",
}

OWN = {"is_own_brand": True}
OWN_VS_COMPETITORS = {"is_own_brand": {True: "Own brands", False: "Competitors"}}
OWN_OR_COMPETITOR = {"is_own_brand": {True: "Own", False: "Competitor"}}

BRAND_PERFORMANCE = Dashboard(
    name="brand_performance",
    slug="brand-performance",
    title="Brand Performance",
    owner_team="commercial-analytics",
    owner_email="commercial-analytics@fe-pharma.example",
    description="TRx, NRx and NBRx trends per own brand, and rolling 4-week TRx growth.",
    tables=("rpt_brand_weekly",),
    charts=(
        Chart("Own brands: latest week", "rpt_brand_weekly", "table", x=("brand_name", "market"),
              y=("trx", "nrx", "nbrx", "trx_share", "trx_growth_4wk"), filter=OWN, latest_periods=1,
              fmt=("int", "int", "int", "pct", "pct"), agg={"trx_share": "mean", "trx_growth_4wk": "mean"}),
        Chart("TRx per own brand", "rpt_brand_weekly", "line", x="week_ending", y=("trx",),
              series="brand_name", filter=OWN, y_label="TRx per week"),
        Chart("NRx per own brand", "rpt_brand_weekly", "line", x="week_ending", y=("nrx",),
              series="brand_name", filter=OWN, y_label="NRx per week"),
        Chart("NBRx per own brand", "rpt_brand_weekly", "line", x="week_ending", y=("nbrx",),
              series="brand_name", filter=OWN, y_label="NBRx per week"),
        Chart("Rolling 4-week TRx growth per own brand", "rpt_brand_weekly", "line", x="week_ending",
              y=("trx_growth_4wk",), series="brand_name", filter=OWN, agg="mean", fmt="pct",
              y_label="TRx growth vs prior 4 weeks"),
    ),
)

MARKET_SHARE = Dashboard(
    name="market_share",
    slug="market-share",
    title="Market Share",
    owner_team="commercial-analytics",
    owner_email="commercial-analytics@fe-pharma.example",
    description="TRx share of market by brand over time, own brands against competitors, per market.",
    tables=("rpt_brand_weekly",),
    charts=(
        Chart("TRx share by brand, latest week", "rpt_brand_weekly", "table",
              x=("market", "brand_name", "is_own_brand"), y=("trx", "market_trx", "trx_share"),
              latest_periods=1, fmt=("int", "int", "pct"), agg={"trx_share": "mean", "market_trx": "max"},
              value_labels=OWN_OR_COMPETITOR,
              sort_by=("market", "-trx_share")),
        *(
            chart
            for market, label in (("FERTILITY", "Fertility"), ("ENDOCRINOLOGY", "Endocrinology"))
            for chart in (
                Chart(f"{label}: TRx share of market by brand", "rpt_brand_weekly", "line",
                      x="week_ending", y=("trx_share",), series="brand_name", filter={"market": market},
                      fmt="pct", y_label="Share of market TRx"),
                Chart(f"{label}: own brands vs competitors", "rpt_brand_weekly", "stacked_bar",
                      x="week_ending", y=("trx_share",), series="is_own_brand", filter={"market": market},
                      fmt="pct", value_labels=OWN_VS_COMPETITORS, y_label="Share of market TRx"),
            )
        ),
    ),
)

TERRITORY_PERFORMANCE = Dashboard(
    name="territory_performance",
    slug="territory-performance",
    title="Territory Performance",
    owner_team="sales-operations",
    owner_email="sales-ops@fe-pharma.example",
    description="Own-brand TRx and net sales (USD) by territory with a region roll-up, latest 13 weeks.",
    tables=("rpt_territory_weekly",),
    charts=(
        Chart("Region roll-up, latest 13 weeks", "rpt_territory_weekly", "table", x="region_name",
              y=("own_trx", "own_nbrx", "net_sales_usd"), latest_periods=13, fmt=("int", "int", "usd")),
        Chart("Own-brand TRx by territory, latest 13 weeks", "rpt_territory_weekly", "bar",
              x="territory_name", y=("own_trx",), latest_periods=13, x_label="Own-brand TRx"),
        Chart("Net sales (USD) by territory, latest 13 weeks", "rpt_territory_weekly", "bar",
              x="territory_name", y=("net_sales_usd",), latest_periods=13, fmt="usd",
              x_label="Net sales (USD)"),
        Chart("Own-brand TRx per week by region", "rpt_territory_weekly", "line", x="week_ending",
              y=("own_trx",), series="region_name", latest_periods=13, y_label="Own-brand TRx per week"),
        Chart("Territories, latest 13 weeks", "rpt_territory_weekly", "table",
              x=("region_name", "district_name", "territory_name"), y=("own_trx", "own_nbrx", "net_sales_usd"),
              latest_periods=13, fmt=("int", "int", "usd"), sort_by=("region_name", "-own_trx")),
    ),
)

FIELD_ACTIVITY = Dashboard(
    name="field_activity",
    slug="field-activity",
    title="Field Activity",
    owner_team="sales-operations",
    owner_email="sales-ops@fe-pharma.example",
    description="Calls by channel, reach and call frequency by territory and rep.",
    tables=("rpt_field_activity", "rpt_territory_weekly"),
    charts=(
        Chart("Calls by channel per month", "rpt_field_activity", "stacked_bar", x="month_start",
              y=("calls_in_person", "calls_virtual", "calls_phone", "calls_email"), time_column="month_start",
              y_label="Calls"),
        Chart("Reach by territory, latest 13 weeks (HCPs reached / HCPs with own-brand TRx in 13 weeks)",
              "rpt_territory_weekly", "bar", x="territory_name", y=("reach_pct",), agg="mean", fmt="pct",
              latest_periods=13, x_label="Average weekly reach"),
        Chart("Reach per week by region", "rpt_territory_weekly", "line", x="week_ending", y=("reach_pct",),
              series="region_name", agg="mean", fmt="pct", latest_periods=13, y_label="Average reach"),
        Chart("Calls by territory, latest month", "rpt_field_activity", "bar", x="territory_name",
              y=("calls_total",), latest_periods=1, time_column="month_start", x_label="Calls"),
        Chart("Call frequency by rep, latest month (calls per reached HCP)", "rpt_field_activity", "bar",
              x="rep_name", y=("call_frequency",), agg="mean", fmt="float", latest_periods=1,
              time_column="month_start", x_label="Calls per reached HCP"),
        Chart("Reps, latest month", "rpt_field_activity", "table",
              x=("region_name", "territory_name", "rep_name"),
              y=("calls_total", "calls_in_person", "calls_virtual", "hcps_reached", "call_frequency"),
              latest_periods=1, time_column="month_start", fmt=("int", "int", "int", "int", "float"),
              agg={"call_frequency": "mean"}, sort_by=("region_name", "-calls_total")),
    ),
)

DATA_QUALITY = Dashboard(
    name="data_quality",
    slug="data-quality",
    title="Data Quality",
    owner_team="data-engineering",
    owner_email="data-engineering@fe-pharma.example",
    description="Rows validated and quarantined per feed and delivery, rejected files, freshness.",
    tables=("rpt_data_quality",),
    charts=(
        Chart("Rows valid and quarantined per feed", "rpt_data_quality", "stacked_bar", x="feed",
              y=("rows_valid", "rows_quarantined"), time_column="partition_date", x_label="Rows"),
        Chart("Rows quarantined per feed", "rpt_data_quality", "bar", x="feed", y=("rows_quarantined",),
              time_column="partition_date", x_label="Rows quarantined"),
        Chart("Rejected files per feed", "rpt_data_quality", "bar", x="feed", y=("rejected_files",),
              time_column="partition_date", x_label="Rejected files"),
        Chart("Freshness lag per feed (hours from partition to ingestion)", "rpt_data_quality", "line",
              x="partition_date", y=("freshness_lag_hours",), series="feed", agg="max",
              time_column="partition_date", fmt="float", y_label="Hours"),
        Chart("Deliveries", "rpt_data_quality", "table",
              x=("feed", "partition_date", "landing_key", "outcome"),
              y=("rows_in", "rows_valid", "rows_quarantined", "quarantine_pct", "rejected_files",
                 "freshness_lag_hours"),
              fmt=("int", "int", "int", "pct", "int", "float"),
              agg={"quarantine_pct": "mean", "freshness_lag_hours": "max"},
              sort_by=("-rejected_files", "-partition_date", "feed"), time_column="partition_date",
              limit=60, description="Rejected deliveries first, then the latest."),
    ),
)

PATIENT_STARTS = Dashboard(
    name="patient_starts",
    slug="patient-starts",
    title="Patient Starts",
    owner_team="patient-services",
    owner_email="patient-services@fe-pharma.example",
    description="New patients by brand and territory (first dispensed fill of the brand), refills and reversals "
                "over time, from specialty pharmacy dispenses.",
    tables=("rpt_patient_starts_weekly",),
    charts=(
        Chart("Brands, latest 13 weeks", "rpt_patient_starts_weekly", "table", x="brand_name",
              y=("new_patients", "refills", "reversed_fills", "days_supply_dispensed"), latest_periods=13),
        Chart("New patients per week by brand", "rpt_patient_starts_weekly", "line", x="week_ending",
              y=("new_patients",), series="brand_name", y_label="New patients per week"),
        Chart("New patients by territory, latest 13 weeks", "rpt_patient_starts_weekly", "stacked_bar",
              x="territory_name", y=("new_patients",), series="brand_name", latest_periods=13,
              x_label="New patients"),
        Chart("Refills per week by brand", "rpt_patient_starts_weekly", "line", x="week_ending",
              y=("refills",), series="brand_name", y_label="Refills per week"),
        Chart("Reversed fills per week by brand", "rpt_patient_starts_weekly", "line", x="week_ending",
              y=("reversed_fills",), series="brand_name", y_label="Reversed fills per week",
              description="Fills dispensed then reversed (claim reversed or not picked up); they count as no start."),
        Chart("Territories, latest 13 weeks", "rpt_patient_starts_weekly", "table",
              x=("region_name", "territory_name", "brand_name"),
              y=("new_patients", "refills", "reversed_fills", "days_supply_dispensed"), latest_periods=13,
              sort_by=("region_name", "territory_name", "-new_patients")),
    ),
)

ENGAGEMENT_CHANNELS = ("submitted_calls", "event_attendances", "email_opens", "portal_visits")

OMNICHANNEL_ENGAGEMENT = Dashboard(
    name="omnichannel_engagement",
    slug="omnichannel-engagement",
    title="Omnichannel Engagement",
    owner_team="sales-operations",
    owner_email="sales-ops@fe-pharma.example",
    description="Touches by channel per territory (calls, events, emails, portal), HCPs engaged by any channel, "
                "and touches per engaged HCP.",
    tables=("rpt_engagement_weekly",),
    charts=(
        Chart("Touches by channel per territory, latest 13 weeks", "rpt_engagement_weekly", "stacked_bar",
              x="territory_name", y=ENGAGEMENT_CHANNELS, latest_periods=13, x_label="Touches"),
        Chart("Touches by channel per week", "rpt_engagement_weekly", "stacked_bar", x="week_ending",
              y=ENGAGEMENT_CHANNELS, y_label="Touches"),
        Chart("HCPs engaged per week by region", "rpt_engagement_weekly", "line", x="week_ending",
              y=("hcps_engaged",), series="region_name", y_label="HCPs engaged (any channel)"),
        Chart("Touches per engaged HCP by territory, average week of the latest 13", "rpt_engagement_weekly",
              "bar", x="territory_name", y=("touches_per_engaged_hcp",), agg="mean", fmt="float",
              latest_periods=13, x_label="Touches per engaged HCP"),
        Chart("Territories, latest week", "rpt_engagement_weekly", "table", x=("region_name", "territory_name"),
              y=(*ENGAGEMENT_CHANNELS, "touches", "hcps_engaged", "touches_per_engaged_hcp"), latest_periods=1,
              fmt=("int",) * 6 + ("float",), agg={"touches_per_engaged_hcp": "mean"},
              sort_by=("region_name", "-touches")),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (
    BRAND_PERFORMANCE, MARKET_SHARE, TERRITORY_PERFORMANCE, FIELD_ACTIVITY, PATIENT_STARTS, OMNICHANNEL_ENGAGEMENT,
    DATA_QUALITY,
)


def dashboard(name_or_slug: str) -> Dashboard:
    for d in DASHBOARDS:
        if name_or_slug in (d.name, d.slug):
            return d
    raise KeyError(f"no dashboard named {name_or_slug!r}")
