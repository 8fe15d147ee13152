"""Fabricated reporting tables for the dashboard tests (no tests here; the other
`test_dashboards_*` modules import `fabricate_tables`, and `write_reporting_tables` puts them in a
DuckDB warehouse).

Realistic shapes, deterministic values: 17 brands in two markets (FERTILITY with 5 brands,
ENDOCRINOLOGY with 12, more than a chart may show, so its share chart folds some into
"Other"), 26 weeks, 8 territories in 3 regions with one rep each, 6 months of calls,
5 feeds with daily/weekly deliveries, a few rejected and duplicate ones, patient starts of the
own brands per territory, and omnichannel touches per territory. Shares and percentages are
fractions from 0 to 1, as in the warehouse.
"""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa

LAST_WEEK = dt.date(2026, 11, 13)  # a Friday
N_WEEKS = 26

BRANDS = [  # code, name, market, own, base weekly TRx
    ("GNF", "Gonafer", "FERTILITY", True, 4200),
    ("OVS", "Ovistim", "FERTILITY", True, 2600),
    ("FLT", "Follitrope", "FERTILITY", False, 5100),
    ("MNP", "Menopurix", "FERTILITY", False, 1900),
    ("CTX", "Cetrolix", "FERTILITY", False, 800),
    ("SMT", "Somatrel", "ENDOCRINOLOGY", True, 3300),
    ("THV", "Thyrovance", "ENDOCRINOLOGY", True, 12500),
    ("GNT", "Genotrim", "ENDOCRINOLOGY", False, 6100),
    ("NDT", "Norditrop", "ENDOCRINOLOGY", False, 5400),
    ("OMS", "Omnisome", "ENDOCRINOLOGY", False, 2100),
    ("HMX", "Humatrix", "ENDOCRINOLOGY", False, 1500),
    ("ZMC", "Zomactin", "ENDOCRINOLOGY", False, 700),
    ("LVT", "Levothera", "ENDOCRINOLOGY", False, 9800),
    ("EUT", "Euthyrin", "ENDOCRINOLOGY", False, 4300),
    ("CYT", "Cytomelin", "ENDOCRINOLOGY", False, 950),
    ("TRP", "Tiroxal", "ENDOCRINOLOGY", False, 620),
    ("ARM", "Armouric", "ENDOCRINOLOGY", False, 410),
]

TERRITORIES = [  # id, name, district, region, rep id, rep name
    ("T101", "Boston North", "New England", "Northeast", "R01", "Avery Clark"),
    ("T102", "Hartford", "New England", "Northeast", "R02", "Jordan Patel"),
    ("T103", "Manhattan East", "Metro NY", "Northeast", "R03", "Sam Rivera"),
    ("T201", "Atlanta", "Georgia", "Southeast", "R04", "Morgan Lee"),
    ("T202", "Miami", "Florida", "Southeast", "R05", "Casey Nguyen"),
    ("T203", "Tampa Bay", "Florida", "Southeast", "R06", "Riley Brooks"),
    ("T301", "San Francisco Bay", "Northern California", "West", "R07", "Taylor Kim"),
    ("T302", "Los Angeles Westside", "Southern California", "West", "R08", "Drew Santos"),
]

FEEDS = [  # feed, cadence days, rows per delivery
    ("iqvia_xponent_weekly", 7, 180_000),
    ("iqvia_nbrx_weekly", 7, 42_000),
    ("sap_billing_daily", 1, 6_500),
    ("veeva_crm_calls", 1, 2_300),
    ("fx_rates_daily", 1, 32),
]


def weeks() -> list[dt.date]:
    return [LAST_WEEK - dt.timedelta(weeks=i) for i in range(N_WEEKS - 1, -1, -1)]


def brand_weekly(rng: np.random.Generator) -> pa.Table:
    rows = []
    ws = weeks()
    trx_by_brand = {}
    for code, _name, _market, own, base in BRANDS:
        trend = 1 + (0.006 if own else -0.002) * np.arange(N_WEEKS)
        trx_by_brand[code] = np.round(base * trend * rng.normal(1, 0.04, N_WEEKS)).astype(int)
    for code, name, market, own, _ in BRANDS:
        trx = trx_by_brand[code]
        market_trx = sum(trx_by_brand[c] for c, _, m, _, _ in BRANDS if m == market)
        for i, week in enumerate(ws):
            nrx = int(trx[i] * 0.31)
            trx_4wk = int(trx[i - 3: i + 1].sum()) if i >= 3 else None  # as the warehouse: 4 full weeks
            prior = int(trx[i - 7: i - 3].sum()) if i >= 7 else None
            rows.append({
                "brand_code": code, "brand_name": name, "market": market, "is_own_brand": own,
                "week_ending": week, "trx": int(trx[i]), "nrx": nrx, "nbrx": int(nrx * 0.42),
                "market_trx": int(market_trx[i]), "trx_share": float(trx[i] / market_trx[i]),
                "trx_4wk": trx_4wk, "trx_growth_4wk": (trx_4wk / prior - 1) if prior else None,
            })
    schema = pa.schema([
        ("brand_code", pa.string()), ("brand_name", pa.string()), ("market", pa.string()),
        ("is_own_brand", pa.bool_()), ("week_ending", pa.date32()), ("trx", pa.int64()), ("nrx", pa.int64()),
        ("nbrx", pa.int64()), ("market_trx", pa.int64()), ("trx_share", pa.float64()), ("trx_4wk", pa.int64()),
        ("trx_growth_4wk", pa.float64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def territory_weekly(rng: np.random.Generator) -> pa.Table:
    rows = []
    for t_i, (tid, tname, district, region, _rep, _rn) in enumerate(TERRITORIES):
        size = 1.0 + 0.35 * t_i
        universe = int(120 * size)
        for week in weeks():
            own_trx = int(round(900 * size * rng.normal(1, 0.06)))
            reached = int(universe * rng.uniform(0.35, 0.7))
            rows.append({
                "territory_id": tid, "territory_name": tname, "district_name": district, "region_name": region,
                "week_ending": week, "own_trx": own_trx, "own_nbrx": int(own_trx * 0.12),
                "net_sales_usd": decimal.Decimal(f"{own_trx * rng.uniform(310, 330):.2f}"),
                "submitted_calls": int(reached * 1.6), "hcps_reached": reached,
                "hcps_with_own_trx_13wk": universe, "reach_pct": reached / universe,
            })
    schema = pa.schema([
        ("territory_id", pa.string()), ("territory_name", pa.string()), ("district_name", pa.string()),
        ("region_name", pa.string()), ("week_ending", pa.date32()), ("own_trx", pa.int64()),
        ("own_nbrx", pa.int64()), ("net_sales_usd", pa.decimal128(18, 2)), ("submitted_calls", pa.int64()),
        ("hcps_reached", pa.int64()), ("hcps_with_own_trx_13wk", pa.int64()), ("reach_pct", pa.float64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def field_activity(rng: np.random.Generator) -> pa.Table:
    rows = []
    months = [dt.date(2026, m, 1) for m in range(6, 12)]
    for tid, tname, _district, region, rep_id, rep_name in TERRITORIES:
        for month in months:
            in_person, virtual = int(rng.integers(120, 260)), int(rng.integers(20, 90))
            phone, email = int(rng.integers(10, 50)), int(rng.integers(30, 120))
            total = in_person + virtual + phone + email
            reached = int(total / rng.uniform(1.8, 3.2))
            rows.append({
                "territory_id": tid, "territory_name": tname, "region_name": region, "rep_id": rep_id,
                "rep_name": rep_name, "month_start": month, "calls_total": total, "calls_in_person": in_person,
                "calls_virtual": virtual, "calls_phone": phone, "calls_email": email, "hcps_reached": reached,
                "call_frequency": total / reached,
            })
    schema = pa.schema([
        ("territory_id", pa.string()), ("territory_name", pa.string()), ("region_name", pa.string()),
        ("rep_id", pa.string()), ("rep_name", pa.string()), ("month_start", pa.date32()),
        ("calls_total", pa.int64()), ("calls_in_person", pa.int64()), ("calls_virtual", pa.int64()),
        ("calls_phone", pa.int64()), ("calls_email", pa.int64()), ("hcps_reached", pa.int64()),
        ("call_frequency", pa.float64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def data_quality(rng: np.random.Generator) -> pa.Table:
    rows = []
    last = dt.date(2026, 11, 20)
    rejected_at = {("sap_billing_daily", last - dt.timedelta(days=2)),
                   ("veeva_crm_calls", last - dt.timedelta(days=1)),
                   ("iqvia_xponent_weekly", last - dt.timedelta(days=21))}
    for feed, cadence, size in FEEDS:
        for back in range(0, 28, cadence):
            day = last - dt.timedelta(days=back)
            lag = float(rng.uniform(4, 30) if cadence == 1 else rng.uniform(48, 96))
            ingested = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(hours=lag)
            key = f"{feed}/{day:%Y-%m-%d}/{feed}_{day:%Y%m%d}.csv"
            rows_in = int(size * rng.normal(1, 0.03))
            if (feed, day) in rejected_at:  # a rejected or duplicate file reads no rows: no quarantined share
                rows.append(dict(feed=feed, partition_date=day, landing_key=key, outcome="rejected",
                                 rows_in=0, rows_valid=0, rows_quarantined=0, quarantine_pct=None,
                                 rejected_files=1, ingested_at=ingested, freshness_lag_hours=lag))
                # the corrected re-delivery
                key = key.replace(".csv", "_v2.csv")
                ingested += dt.timedelta(hours=6)
                lag += 6
            quarantined = int(rows_in * rng.uniform(0, 0.012))
            rows.append(dict(feed=feed, partition_date=day, landing_key=key, outcome="loaded", rows_in=rows_in,
                             rows_valid=rows_in - quarantined, rows_quarantined=quarantined,
                             quarantine_pct=quarantined / rows_in, rejected_files=0, ingested_at=ingested,
                             freshness_lag_hours=lag))
            if feed == "sap_billing_daily" and back == 5:
                rows.append(dict(feed=feed, partition_date=day, landing_key=key, outcome="duplicate",
                                 rows_in=0, rows_valid=0, rows_quarantined=0, quarantine_pct=None,
                                 rejected_files=0, ingested_at=ingested + dt.timedelta(hours=2),
                                 freshness_lag_hours=lag + 2))
    schema = pa.schema([
        ("feed", pa.string()), ("partition_date", pa.date32()), ("landing_key", pa.string()),
        ("outcome", pa.string()), ("rows_in", pa.int64()), ("rows_valid", pa.int64()),
        ("rows_quarantined", pa.int64()), ("quarantine_pct", pa.float64()), ("rejected_files", pa.int64()),
        ("ingested_at", pa.timestamp("us", tz="UTC")), ("freshness_lag_hours", pa.float64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def patient_starts_weekly(rng: np.random.Generator) -> pa.Table:
    """Own brands x territory x week: new patients (first dispensed fill), refills, reversals, days' supply."""
    rows = []
    own = [(code, name, base) for code, name, _market, is_own, base in BRANDS if is_own]
    for t_i, (tid, tname, _district, region, _rep, _rn) in enumerate(TERRITORIES):
        size = 1.0 + 0.35 * t_i
        for code, name, base in own:
            for week in weeks():
                new = int(rng.poisson(base / 900 * size))
                refills = int(rng.poisson(base / 160 * size))
                reversed_fills = int(rng.binomial(new + refills, 0.03))
                rows.append({
                    "brand_code": code, "brand_name": name, "territory_id": tid, "territory_name": tname,
                    "region_name": region, "week_ending": week, "new_patients": new, "refills": refills,
                    "reversed_fills": reversed_fills,
                    "days_supply_dispensed": int((new + refills - reversed_fills) * 30),
                })
    schema = pa.schema([
        ("brand_code", pa.string()), ("brand_name", pa.string()), ("territory_id", pa.string()),
        ("territory_name", pa.string()), ("region_name", pa.string()), ("week_ending", pa.date32()),
        ("new_patients", pa.int64()), ("refills", pa.int64()), ("reversed_fills", pa.int64()),
        ("days_supply_dispensed", pa.int64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def engagement_weekly(rng: np.random.Generator) -> pa.Table:
    """Territory x week: touches per channel, distinct HCPs engaged, touches per engaged HCP."""
    rows = []
    for t_i, (tid, tname, _district, region, _rep, _rn) in enumerate(TERRITORIES):
        size = 1.0 + 0.35 * t_i
        for week in weeks():
            calls = int(rng.poisson(55 * size))
            events = int(rng.poisson(6 * size))
            emails = int(rng.poisson(120 * size))
            portal = int(rng.poisson(40 * size))
            touches = calls + events + emails + portal
            engaged = max(1, int(touches / rng.uniform(2.2, 3.4)))
            rows.append({
                "territory_id": tid, "territory_name": tname, "region_name": region, "week_ending": week,
                "submitted_calls": calls, "event_attendances": events, "email_opens": emails,
                "portal_visits": portal, "hcps_engaged": engaged, "touches": touches,
                "touches_per_engaged_hcp": touches / engaged,
            })
    schema = pa.schema([
        ("territory_id", pa.string()), ("territory_name", pa.string()), ("region_name", pa.string()),
        ("week_ending", pa.date32()), ("submitted_calls", pa.int64()), ("event_attendances", pa.int64()),
        ("email_opens", pa.int64()), ("portal_visits", pa.int64()), ("hcps_engaged", pa.int64()),
        ("touches", pa.int64()), ("touches_per_engaged_hcp", pa.float64()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def fabricate_tables(seed: int = 7) -> dict[str, pa.Table]:
    """Every reporting table a dashboard reads, as the warehouse would hand them to the dashboards asset."""
    rng = np.random.default_rng(seed)
    return {
        "rpt_brand_weekly": brand_weekly(rng),
        "rpt_territory_weekly": territory_weekly(rng),
        "rpt_field_activity": field_activity(rng),
        "rpt_data_quality": data_quality(rng),
        "rpt_patient_starts_weekly": patient_starts_weekly(rng),
        "rpt_engagement_weekly": engagement_weekly(rng),
    }


def write_reporting_tables(settings) -> dict[str, pa.Table]:
    """The fabricated tables into the `reporting` schema of the settings' DuckDB file: a demo-sized warehouse."""
    import duckdb

    tables = fabricate_tables()
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema if not exists reporting")
        for name, table in tables.items():
            con.register("rows", table)
            con.execute(f'create or replace table reporting."{name}" as select * from rows')
            con.unregister("rows")
    return tables


def empty_tables() -> dict[str, pa.Table]:
    return {name: t.schema.empty_table() for name, t in fabricate_tables().items()}
