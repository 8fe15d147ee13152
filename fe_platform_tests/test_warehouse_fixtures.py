"""A small fabricated lake for the warehouse tests, and the dbt scenario every target runs.

The data is tiny and hand-made so the expected figures can be computed here independently of dbt:
two IQVIA deliveries (the second restates a week), two SAP deliveries (the second restates a line),
EUR/USD/GBP/JPY billing with FX rates on two dates (JPY has none), two CRM account snapshots (one
HCP moves territory, one leaves, one opted out of PDRP), a call that changes status, prescribers with
no NPI or no CRM match, and a delivery log with a rejected and a duplicate file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.identifiers import npi_check_digit, sfdc_suffix
from fe_platform.lib.warehouse import DELIVERIES_SCHEMA, LAKE_SCHEMA, Warehouse, create_table_sql, quote_ident
from fe_platform.settings import environ_set

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = PROJECT_ROOT / "dbt_project"

W1, W2, W3, W4 = date(2026, 10, 30), date(2026, 11, 6), date(2026, 11, 13), date(2026, 11, 20)
RX_OLD, RX_NEW = W3, W4  # IQVIA delivery data dates
SNAP_1, SNAP_2 = date(2026, 11, 6), date(2026, 11, 13)
BILL_1, BILL_2 = date(2026, 11, 16), date(2026, 11, 17)
CALL_1, CALL_2 = date(2026, 11, 18), date(2026, 11, 19)
FX_1, FX_2 = date(2026, 11, 13), date(2026, 11, 16)
MASTER = date(2026, 11, 2)
DISP_1, DISP_2 = date(2026, 11, 16), date(2026, 11, 17)  # sp_dispense pulls (daily)
EVT_1, EVT_2 = date(2026, 11, 16), date(2026, 11, 17)  # hcp_event pulls (daily)
ENG_1, ENG_2 = date(2026, 11, 16), date(2026, 11, 17)  # hcp_engagement stream days (append)


def npi(seed: int) -> str:
    first9 = f"1{seed:08d}"
    return first9 + str(npi_check_digit(first9))


def sfdc(prefix: str, n: int) -> str:
    id15 = f"{prefix}{n:012d}"
    return id15 + sfdc_suffix(id15)


N1, N2, N3, N4, N5 = (npi(i) for i in (11, 22, 33, 44, 55))
A1, A2, A3, A4 = (sfdc("001", i) for i in (1, 2, 3, 4))
C1, C2, C3, C4 = (sfdc("00U", i) for i in (1, 2, 3, 4))
NDC_FERTA_1, NDC_FERTA_2, NDC_COMPB, NDC_ENDOX, NDC_UNKNOWN = (
    "00000000011", "00000000022", "00000000033", "00000000044", "00000000099")
PRESCRIBERS = {"101": N1, "102": N2, "103": N3, "104": None, "105": N5}  # 104: no NPI; 105: no CRM match


def ts(day: date, hour: int = 6) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# The validated columns of the three feeds of shared/spec/sources.md, as coordination.md gives them. The
# registry declares them after the lead's merge; until then the fixtures use these (and a test holds the
# two to each other once the registry has them).
_KIND = {"string": pa.string(), "int": pa.int64(), "decimal": pa.float64(), "money": pa.decimal128(18, 2),
         "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"), "bool": pa.bool_()}
_LINEAGE = [("_source_file", pa.string()), ("_source_row", pa.int64()), ("_data_date", pa.date32()),
            ("_ingested_at", pa.timestamp("us", tz="UTC"))]
PULLED_FEED_COLUMNS = {
    "sp_dispense": [("dispense_id", "int"), ("pharmacy_ncpdp", "string"), ("patient_token", "string"),
                    ("prescriber_npi", "string"), ("ndc11", "string"), ("dispense_date", "date"),
                    ("fill_type", "string"), ("quantity", "decimal"), ("days_supply", "int"),
                    ("payer_type", "string"), ("copay_usd", "money"), ("status", "string"),
                    ("updated_at", "timestamp")],
    "hcp_event": [("attendance_id", "string"), ("event_id", "string"), ("event_type", "string"),
                  ("event_date", "date"), ("brand_code", "string"), ("npi", "string"), ("role", "string"),
                  ("attended", "bool"), ("meal_value_usd", "money"), ("updated_at", "timestamp")],
    "hcp_engagement": [("event_id", "string"), ("occurred_at", "timestamp"), ("channel", "string"),
                       ("action", "string"), ("npi", "string"), ("account_id", "string"),
                       ("brand_code", "string"), ("content_id", "string")],
}
PULLED_FEED_SCHEMAS = {feed: pa.schema([(n, _KIND[k]) for n, k in cols] + _LINEAGE)
                       for feed, cols in PULLED_FEED_COLUMNS.items()}


def validated_schema(feed: str) -> pa.Schema:
    return FEEDS[feed].validated_schema() if feed in FEEDS else PULLED_FEED_SCHEMAS[feed]


def validated_table(feed: str, day: date, rows: list[dict], file_name: str) -> pa.Table:
    rows = [dict(row, _source_file=f"landing/{feed}/{file_name}", _source_row=i, _data_date=day,
                 _ingested_at=ts(day + timedelta(days=1))) for i, row in enumerate(rows, start=1)]
    return pa.Table.from_pylist(rows, schema=validated_schema(feed))


def rx_rows(delivery: date) -> list[dict]:
    """IQVIA rows: the old delivery has weeks W1-W3, the new one W2-W4 (W2 and W3 restated)."""
    weeks = [W1, W2, W3] if delivery == RX_OLD else [W2, W3, W4]
    bump = 0 if delivery == RX_OLD else 5  # a restated week carries other values
    rows = []
    for k, (prescriber, prescriber_npi) in enumerate(PRESCRIBERS.items()):
        for ndc in (NDC_FERTA_1, NDC_COMPB):
            for j, week in enumerate(weeks):
                trx = 10 + k + 2 * j + (bump if week != W4 else 0) + (3 if ndc == NDC_COMPB else 0)
                nrx = trx // 2
                rows.append(dict(prescriber_id=prescriber, npi=prescriber_npi, ndc11=ndc, week_ending=week,
                                 payer_type="COMMERCIAL", channel="RETAIL", nrx=nrx, trx=trx, nbrx=nrx // 2,
                                 nqty=float(nrx * 30), tqty=float(trx * 30)))
    rows.append(dict(prescriber_id="102", npi=N2, ndc11=NDC_ENDOX, week_ending=W3, payer_type="MEDICARE",
                     channel="MAIL", nrx=1, trx=4 + bump, nbrx=1, nqty=30.0, tqty=120.0))
    if delivery == RX_OLD:
        rows.append(dict(prescriber_id="101", npi=N1, ndc11=NDC_UNKNOWN, week_ending=W3, payer_type="CASH",
                         channel="SPECIALTY", nrx=1, trx=2, nbrx=0, nqty=1.0, tqty=2.0))
    return rows


def billing_rows(delivery: date) -> list[dict]:
    def line(doc, item, btype, bdate, mat, qty, value, cur, sold_to="0000100001"):
        return dict(billing_document=doc, billing_item=item, billing_type=btype, billing_date=bdate,
                    sales_org="US01", sold_to=sold_to, ship_to=sold_to, material=mat, quantity=qty,
                    sales_unit="EA", net_value=Decimal(value), currency=cur)
    if delivery == BILL_1:
        return [
            line("9000000001", "000010", "F2", BILL_1, "100001", 10.0, "1000.00", "EUR"),
            line("9000000001", "000020", "F2", BILL_1, "100004", 5.0, "500.00", "USD"),
            line("9000000002", "000010", "F2", date(2026, 11, 14), "100002", 8.0, "850.00", "GBP", "0000100002"),
            line("9000000003", "000010", "F2", BILL_1, "100001", 1.0, "10000.00", "JPY"),
            line("9000000004", "000010", "F2", BILL_1, "UNKNOWN-1", 1.0, "100.00", "EUR"),
        ]
    return [
        line("9000000001", "000010", "F2", BILL_1, "100001", 12.0, "1200.00", "EUR"),  # restated line
        line("9000000005", "000010", "G2", BILL_2, "100001", -2.0, "-200.00", "EUR"),
    ]


def account_rows(snapshot: date) -> list[dict]:
    def acct(account_id, account_npi, first, last, specialty, territory, pdrp=False):
        return dict(account_id=account_id, npi=account_npi, first_name=first, last_name=last,
                    specialty=specialty, email_hash="h" * 64, phone_hash=None, city="Boston", state="MA",
                    zip="02115", territory_id=territory, pdrp_opt_out=pdrp, is_active=True,
                    last_modified=ts(snapshot - timedelta(days=1)))
    rows = [
        acct(A1, N1, "Ada", "Ames", "REI", "T001"),
        acct(A2, N2, "Ben", "Bell", "OBGYN", "T001" if snapshot == SNAP_1 else "T002"),
        acct(A3, N3, "Cy", "Cole", "ENDO", "T002", pdrp=True),
    ]
    if snapshot == SNAP_1:
        rows.append(acct(A4, N4, "Di", "Dunn", "PCP", "T001"))  # gone from the latest snapshot
    return rows


def call_rows(delivery: date) -> list[dict]:
    def call(call_id, account, rep, territory, when, channel, products, status, modified):
        return dict(call_id=call_id, account_id=account, rep_id=rep, territory_id=territory,
                    call_datetime=when, call_channel=channel, call_type="DETAIL", products_detailed=products,
                    call_status=status, last_modified=modified)
    if delivery == CALL_1:
        return [
            call(C1, A1, "R1", "T001", ts(date(2026, 11, 17), 10), "IN_PERSON", "FERTA;COMPB", "PLANNED",
                 ts(date(2026, 11, 17), 9)),
            call(C2, A2, "R1", "T001", ts(date(2026, 11, 10), 10), "VIRTUAL", "FERTA", "SUBMITTED",
                 ts(date(2026, 11, 10), 12)),
            call(C3, A3, "R2", "T002", ts(date(2026, 11, 12), 10), "PHONE", "ENDOX", "SUBMITTED",
                 ts(date(2026, 11, 12), 12)),
        ]
    return [
        call(C1, A1, "R1", "T001", ts(date(2026, 11, 17), 10), "IN_PERSON", "FERTA;COMPB", "SUBMITTED",
             ts(date(2026, 11, 18), 8)),
        # An older version of C2 delivered late: the latest last_modified still wins.
        call(C2, A2, "R1", "T001", ts(date(2026, 11, 10), 10), "VIRTUAL", "FERTA", "CANCELLED",
             ts(date(2026, 11, 9), 12)),
        call(C4, A2, "R2", "T002", ts(date(2026, 11, 18), 15), "EMAIL", None, "SUBMITTED",
             ts(date(2026, 11, 18), 16)),
    ]


def product_rows() -> list[dict]:
    def prod(ndc, material, brand, name, molecule, market, maker, own):
        return dict(ndc11=ndc, sap_material=material, brand_code=brand, brand_name=name, molecule=molecule,
                    market=market, manufacturer=maker, is_own_brand=own, units_per_pack=1)
    return [
        prod(NDC_FERTA_1, "100001", "FERTA", "Fertara", "follitropin alfa", "FERTILITY", "FE Pharma", True),
        prod(NDC_FERTA_2, "100002", "FERTA", "Fertara", "follitropin alfa", "FERTILITY", "FE Pharma", True),
        prod(NDC_COMPB, None, "COMPB", "Compet", "menotropins", "FERTILITY", "Rival Inc", False),
        prod(NDC_ENDOX, "100004", "ENDOX", "Endoxa", "somatropin", "ENDOCRINOLOGY", "FE Pharma", True),
    ]


def territory_rows() -> list[dict]:
    def terr(tid, name, rep, rep_name):
        return dict(territory_id=tid, territory_name=name, district_id="D1", district_name="Northeast",
                    region_id="R-EAST", region_name="East", rep_id=rep, rep_name=rep_name)
    return [terr("T001", "Boston", "R1", "Rep One"), terr("T002", "Hartford", "R2", "Rep Two"),
            terr("T003", "Albany", None, None)]


def fx_rows(day: date) -> list[dict]:
    rates = {"USD": 1.05, "GBP": 0.85} if day == FX_1 else {"USD": 1.10, "GBP": 0.90}
    return [dict(rate_date=day, base_currency="EUR", quote_currency=c, rate=r) for c, r in rates.items()]


# The three pulled and streamed feeds (shared/spec/sources.md) -----------------------------------------

PATIENTS = [f"{i:032x}" for i in range(1, 5)]  # de-identified patient tokens
NPI_UNKNOWN = npi(99)  # an NPI no CRM account and no IQVIA prescriber has
E1, E2, E3, E4, E5, E6 = (f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 7))


def dispense_rows(day: date) -> list[dict]:
    """Day 1: five first fills and refills. Day 2: dispense 3 REVERSED (later updated_at), a new fill
    for its patient, a refill. Day 15 Nov (a late re-pull): an older version of dispense 1 that loses."""
    def fill(dispense_id, patient, prescriber, ndc, when, fill_type, days, status, updated):
        return dict(dispense_id=dispense_id, pharmacy_ncpdp="1234567", patient_token=PATIENTS[patient],
                    prescriber_npi=prescriber, ndc11=ndc, dispense_date=when, fill_type=fill_type, quantity=1.0,
                    days_supply=days, payer_type="COMMERCIAL", copay_usd=Decimal("25.00"), status=status,
                    updated_at=updated)
    if day == DISP_1:
        return [
            fill(1, 0, N1, NDC_FERTA_1, date(2026, 11, 10), "NEW", 30, "DISPENSED", ts(DISP_1, 8)),
            fill(2, 0, N1, NDC_FERTA_1, date(2026, 11, 14), "REFILL", 30, "DISPENSED", ts(DISP_1, 8)),
            fill(3, 1, N2, NDC_FERTA_1, date(2026, 11, 12), "NEW", 28, "DISPENSED", ts(DISP_1, 9)),
            fill(4, 2, N3, NDC_ENDOX, date(2026, 11, 15), "NEW", 90, "DISPENSED", ts(DISP_1, 10)),
            fill(5, 3, N5, NDC_FERTA_1, date(2026, 11, 16), "NEW", 30, "DISPENSED", ts(DISP_1, 11)),
        ]
    if day == DISP_2:
        return [
            fill(3, 1, N2, NDC_FERTA_1, date(2026, 11, 12), "NEW", 28, "REVERSED", ts(DISP_2, 9)),
            fill(6, 1, N2, NDC_FERTA_1, date(2026, 11, 17), "NEW", 28, "DISPENSED", ts(DISP_2, 10)),
            fill(7, 0, N1, NDC_FERTA_1, date(2026, 11, 17), "REFILL", 30, "DISPENSED", ts(DISP_2, 11)),
        ]
    return [fill(1, 0, N1, NDC_FERTA_1, date(2026, 11, 10), "NEW", 30, "REVERSED", ts(day, 8))]


def attendance_rows(day: date) -> list[dict]:
    """Day 1: a speaker program and a webinar. Day 2: attendance 3 now attended (later updated_at), an
    event of the year before, and an older version of attendance 2 that loses."""
    def seat(n, event, event_type, when, brand, who, role, attended, meal, updated):
        return dict(attendance_id=f"AT-{n:010d}", event_id=f"EV-{event:08d}", event_type=event_type,
                    event_date=when, brand_code=brand, npi=who, role=role, attended=attended,
                    meal_value_usd=Decimal(meal), updated_at=updated)
    if day == EVT_1:
        return [
            seat(1, 1, "SPEAKER_PROGRAM", date(2026, 11, 12), "FERTA", N1, "SPEAKER", True, "120.00", ts(EVT_1, 7)),
            seat(2, 1, "SPEAKER_PROGRAM", date(2026, 11, 12), "FERTA", N3, "ATTENDEE", True, "45.50", ts(EVT_1, 7)),
            seat(3, 2, "WEBINAR", date(2026, 11, 14), "ENDOX", N5, "ATTENDEE", False, "0.00", ts(EVT_1, 8)),
        ]
    return [
        seat(3, 2, "WEBINAR", date(2026, 11, 14), "ENDOX", N5, "ATTENDEE", True, "0.00", ts(EVT_2, 8)),
        seat(4, 3, "ROUNDTABLE", date(2025, 12, 30), "FERTA", N1, "ATTENDEE", True, "60.00", ts(EVT_2, 9)),
        seat(2, 1, "SPEAKER_PROGRAM", date(2026, 11, 12), "FERTA", N3, "ATTENDEE", True, "99.00",
             ts(EVT_1 - timedelta(days=1), 7)),
    ]


def engagement_files(day: date) -> dict[str, list[dict]]:
    """Stream files of a day (append mode: a partition holds several), with redelivered events: E2 twice on
    day 1 (two files), E1 again on day 2. E2 and E6 name only an account; E4 an NPI nobody knows."""
    def event(event_id, at, channel, action, who=None, account=None, brand="FERTA"):
        return dict(event_id=event_id, occurred_at=at, channel=channel, action=action, npi=who,
                    account_id=account, brand_code=brand, content_id="fertara-launch_01")
    e1 = event(E1, ts(ENG_1, 9), "EMAIL", "OPENED", who=N1)
    e2 = event(E2, ts(ENG_1, 10), "PORTAL", "VISITED", account=A2)
    if day == ENG_1:
        return {
            "HCP_ENGAGEMENT_20261116_101500_shardId-000000000000_1.jsonl.gz": [
                e1, e2, event(E3, ts(ENG_1, 10), "EMAIL", "SENT", who=N3)],
            "HCP_ENGAGEMENT_20261116_110000_shardId-000000000000_2.jsonl.gz": [
                e2, event(E4, ts(ENG_1, 11), "WEBINAR", "VISITED", who=NPI_UNKNOWN, brand="ENDOX")],
        }
    return {
        "HCP_ENGAGEMENT_20261117_090000_shardId-000000000000_3.jsonl.gz": [
            e1, event(E5, ts(ENG_2, 8), "EMAIL", "OPENED", who=N1), event(E6, ts(ENG_2, 8), "PORTAL", "VISITED",
                                                                             account=A3)],
    }


def engagement_partition(day: date) -> pa.Table:
    return pa.concat_tables([validated_table("hcp_engagement", day, rows, name)
                             for name, rows in engagement_files(day).items()])


def partitions() -> list[tuple[str, date, pa.Table]]:
    """Every validated partition of the fabricated lake: (feed, data date, Arrow table)."""
    out = [("product_master", MASTER, validated_table("product_master", MASTER, product_rows(),
                                                 "PRODUCT_MASTER_20261102.csv")),
           ("sfdc_territory", MASTER, validated_table("sfdc_territory", MASTER, territory_rows(),
                                                 "SFDC_TERRITORY_20261102.csv"))]
    for d in (SNAP_1, SNAP_2):
        out.append(("sfdc_account", d, validated_table("sfdc_account", d, account_rows(d),
                                                  f"SFDC_ACCOUNT_{d:%Y%m%d}.csv")))
    for d in (FX_1, FX_2):
        out.append(("fx_rates", d, validated_table("fx_rates", d, fx_rows(d), f"FX_RATES_{d:%Y%m%d}.json")))
    for d in (CALL_1, CALL_2):
        out.append(("sfdc_call", d, validated_table("sfdc_call", d, call_rows(d), f"SFDC_CALL_{d:%Y%m%d}.csv")))
    for d in (BILL_1, BILL_2):
        out.append(("sap_billing", d, validated_table("sap_billing", d, billing_rows(d),
                                                      f"SAP_BILLING_{d:%Y%m%d}.csv")))
    for d in (RX_OLD, RX_NEW):
        out.append(("iqvia_rx", d, validated_table("iqvia_rx", d, rx_rows(d), f"RXDYN_WEEKLY_{d:%Y%m%d}.txt")))
    for d in (DISP_1, DISP_2):
        out.append(("sp_dispense", d, dispense_partition(d)))
    for d in (EVT_1, EVT_2):
        out.append(("hcp_event", d, validated_table("hcp_event", d, attendance_rows(d), f"HCP_EVENT_{d:%Y%m%d}.jsonl")))
    for d in (ENG_1, ENG_2):
        out.append(("hcp_engagement", d, engagement_partition(d)))
    return out


def dispense_partition(day: date) -> pa.Table:
    return validated_table("sp_dispense", day, dispense_rows(day), f"SP_DISPENSE_{day:%Y%m%d}.csv.gz")


def partition(feed: str, day: date) -> pa.Table:
    return next(t for f, d, t in partitions() if f == feed and d == day)


def deliveries() -> pa.Table:
    rows = []
    for feed, day, table in partitions():
        key = table.column("_source_file")[0].as_py()
        rows.append(dict(feed=feed, landing_key=key, partition=day, sha256=hashlib.sha256(key.encode()).hexdigest(),
                         outcome="loaded", rows_in=table.num_rows + (1 if feed == "iqvia_rx" else 0),
                         rows_valid=table.num_rows, rows_quarantined=1 if feed == "iqvia_rx" else 0,
                         reason=None, ingested_at=ts(day + timedelta(days=1))))
    rows.append(dict(feed="iqvia_rx", landing_key="landing/iqvia_rx/RXDYN_WEEKLY_20261120.txt.gz", partition=RX_NEW,
                     sha256="0" * 64, outcome="rejected", rows_in=0, rows_valid=0, rows_quarantined=0,
                     reason="not gzip", ingested_at=ts(RX_NEW + timedelta(days=1), 7)))
    rows.append(dict(feed="sap_billing", landing_key="landing/sap_billing/SAP_BILLING_20261116.xlsx",
                     partition=BILL_1, sha256="1" * 64, outcome="duplicate", rows_in=0, rows_valid=0,
                     rows_quarantined=0, reason="same bytes as an earlier delivery",
                     ingested_at=ts(BILL_1 + timedelta(days=2))))
    return pa.Table.from_pylist(rows, schema=DELIVERIES_SCHEMA)


# Expected figures, computed from the fixtures alone -------------------------------------------------

def expected_rx(deliveries_loaded: list[date]) -> dict[tuple, dict]:
    """Latest delivery wins per key over the given deliveries."""
    out: dict[tuple, dict] = {}
    for day in sorted(deliveries_loaded):
        for row in rx_rows(day):
            out[(row["prescriber_id"], row["ndc11"], row["week_ending"], row["payer_type"], row["channel"])] = row
    return out


def expected_billing() -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for day in (BILL_1, BILL_2):
        for row in billing_rows(day):
            out[(row["billing_document"], row["billing_item"])] = row
    return out


def expected_dispenses(pulls: list[date]) -> dict[int, dict]:
    """Latest updated_at wins per dispense over the given pulls."""
    out: dict[int, dict] = {}
    for row in sorted((r for day in pulls for r in dispense_rows(day)), key=lambda r: r["updated_at"]):
        out[row["dispense_id"]] = row
    return out


def territory_of(hcp_npi: str, day: date) -> str | None:
    """The CRM territory of an NPI on a day: the latest snapshot up to the day (the first one before it)."""
    snapshots = [(snap, row["territory_id"]) for snap in (SNAP_1, SNAP_2) for row in account_rows(snap)
                 if row["npi"] == hcp_npi]
    if not snapshots:
        return None
    return max((s for s in snapshots if s[0] <= day), default=snapshots[0])[1]


def friday_ending(day: date) -> date:
    return day + timedelta(days=(4 - day.weekday()) % 7)


def expected_patient_starts(pulls: list[date]) -> dict[tuple, tuple]:
    """(brand, territory, week_ending) -> (new_patients, refills, reversed_fills, days_supply_dispensed)."""
    brand_of = {p["ndc11"]: p["brand_code"] for p in product_rows()}
    fills = sorted(expected_dispenses(pulls).values(), key=lambda r: (r["dispense_date"], r["dispense_id"]))
    started: set[tuple] = set()
    out: dict[tuple, list[int]] = {}
    for fill in fills:
        brand = brand_of[fill["ndc11"]]
        key = (brand, territory_of(fill["prescriber_npi"], fill["dispense_date"]), friday_ending(fill["dispense_date"]))
        figures = out.setdefault(key, [0, 0, 0, 0])
        if fill["status"] == "REVERSED":
            figures[2] += 1
            continue
        if (fill["patient_token"], brand) not in started:
            started.add((fill["patient_token"], brand))
            figures[0] += 1
        figures[1] += fill["fill_type"] == "REFILL"
        figures[3] += fill["days_supply"]
    return {k: tuple(v) for k, v in out.items()}


# Loading and dbt -------------------------------------------------------------------------------------

def load_partition(wh: Warehouse, feed: str, day: date, table: pa.Table) -> None:
    """`wh.load_partition`, and for a feed the registry does not declare yet the same replace by hand."""
    if feed in FEEDS:
        wh.load_partition(feed, day.isoformat(), table)
        return
    ensure_pulled_feed_tables(wh)
    placeholder = "?" if wh.dialect == "duckdb" else "%s"
    wh._replace(feed, table, f"{quote_ident('_data_date')} = {placeholder}", [day])


def ensure_pulled_feed_tables(wh: Warehouse) -> None:
    for feed, schema in PULLED_FEED_SCHEMAS.items():
        if feed not in FEEDS:
            wh.run_sql(f"create schema if not exists {quote_ident(LAKE_SCHEMA)}")
            wh.run_sql(create_table_sql(LAKE_SCHEMA, feed, schema, wh.dialect))


def load_all(wh: Warehouse, skip: set[tuple[str, date]] = frozenset()) -> None:
    wh.ensure_all_sources()
    ensure_pulled_feed_tables(wh)
    for feed, day, table in partitions():
        if (feed, day) not in skip:
            load_partition(wh, feed, day, table)
    wh.load_deliveries(deliveries())


@dataclass
class DbtRun:
    """What a dbt invocation left behind: its result, every log line, how long it took."""

    result: Any
    log: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def stdout(self) -> str:
        return "\n".join(self.log)

    def count(self, resource_type: str) -> int:
        return sum(1 for r in self.result.result if r.node.resource_type == resource_type)

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.result.result:
            out[str(r.status)] = out.get(str(r.status), 0) + 1
        return out


class Dbt:
    """dbt in-process for one target: the project is parsed once and the manifest reused, so each
    invocation (even with other --vars, which are rendered at compile time) skips parsing."""

    def __init__(self, target: str, env: dict[str, str]):
        self.target = target
        self.env = {**env, "FE_WAREHOUSE": target, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        self.manifest = None
        # Artifacts go to a folder of this instance's own: tests never race on dbt_project/target.
        self.target_path = tempfile.mkdtemp(prefix=f"fe-dbt-{target}-")

    def __call__(self, *args: str) -> DbtRun:
        from dbt.cli.main import dbtRunner

        run = DbtRun(result=None)

        def collect(event) -> None:
            run.log.append(event.info.msg)

        cli = [*args, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
               "--target", self.target, "--target-path", self.target_path, "--log-level-file", "none"]
        started = time.monotonic()
        with environ_set(self.env):
            if self.manifest is None:
                parsed = dbtRunner().invoke(["parse", *cli[len(args):]])
                if not parsed.success:
                    raise AssertionError(f"dbt parse failed: {parsed.exception}")
                self.manifest = parsed.result
            run.result = dbtRunner(manifest=self.manifest, callbacks=[collect]).invoke(cli)
        run.elapsed = time.monotonic() - started
        if not run.result.success:
            raise AssertionError(f"dbt {' '.join(args)} failed: {run.result.exception}\n" + run.stdout[-12000:])
        return run


    def close(self) -> None:
        shutil.rmtree(self.target_path, ignore_errors=True)


def run_dbt(target: str, env: dict[str, str], *args: str) -> DbtRun:
    """One dbt invocation on the project for `target` (parses; use `Dbt` for several)."""
    dbt = Dbt(target, env)
    try:
        return dbt(*args)
    finally:
        dbt.close()


INCREMENTAL_FACTS = ("fct_rx_weekly", "fct_billing_line", "fct_dispense", "fct_hcp_engagement")


def delivery_dates(**dates_by_feed: list[date]) -> str:
    """The --vars the platform passes: the delivery partitions each feed's facts (re)process."""
    return json.dumps({"delivery_dates": {feed: [d.isoformat() for d in days] for feed, days in dates_by_feed.items()}})


def run_scenario(target: str, env: dict[str, str], connect: Callable[[], Warehouse]) -> dict:
    """The life of the warehouse the tests then inspect; returns snapshots taken along the way.

    1. everything but the newest IQVIA, SAP, dispense, event and engagement deliveries is loaded, and
       `dbt build` builds it all;
    2. the newest deliveries arrive: their partitions are loaded and the incremental facts process
       those partitions only (as Dagster asks, with delivery_dates);
    3. the older IQVIA partition is re-run (reloaded and rebuilt) after the newer one: nothing moves;
    4. a last `dbt build` (incremental facts without vars: nothing newer) runs every test.
    """
    newest = {("iqvia_rx", RX_NEW), ("sap_billing", BILL_2), ("sp_dispense", DISP_2), ("hcp_event", EVT_2),
              ("hcp_engagement", ENG_2)}
    dbt = Dbt(target, env)
    snap: dict = {"timings": {}}
    with connect() as wh:
        load_all(wh, skip=newest)
    snap["timings"]["build_initial"] = dbt("build", "--full-refresh").elapsed
    with connect() as wh:
        snap["rx_after_old"] = _fact_rows(wh)
        for feed, day in sorted(newest):
            load_partition(wh, feed, day, partition(feed, day))
    dbt("run", "--select", *INCREMENTAL_FACTS, "--vars", delivery_dates(
        iqvia_rx=[RX_NEW], sap_billing=[BILL_2], sp_dispense=[DISP_2], hcp_engagement=[ENG_2]))
    with connect() as wh:
        snap["rx_after_new"] = _fact_rows(wh)
        wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD))
        snap["rx_lake_counts"] = wh.partition_counts("iqvia_rx")
    dbt("run", "--select", *INCREMENTAL_FACTS, "--vars", delivery_dates(iqvia_rx=[RX_OLD]))
    with connect() as wh:
        snap["rx_after_rerun"] = _fact_rows(wh)
    snap["final_build"] = dbt("build")
    snap["timings"]["build_final"] = snap["final_build"].elapsed
    dbt.close()
    return snap


def _fact_rows(wh: Warehouse) -> list[tuple]:
    return sorted(wh.query(
        'select prescriber_id, ndc11, week_ending, payer_type, channel, trx, nrx, delivery_date '
        'from "marts"."fct_rx_weekly"'), key=repr)


# A check of the fixtures themselves, so a broken builder fails here and not deep inside dbt ------

def test_fixture_partitions_match_validated_schemas():
    for feed, day, table in partitions():
        assert table.schema.equals(validated_schema(feed)), feed
        assert set(table.column("_data_date").to_pylist()) == {day}
    assert deliveries().schema.equals(DELIVERIES_SCHEMA)
    assert len(expected_rx([RX_OLD, RX_NEW])) > len(rx_rows(RX_NEW))


@pytest.mark.parametrize("feed", sorted(PULLED_FEED_SCHEMAS))
def test_pulled_feed_schemas_are_the_registrys(feed):
    """The fixtures' schemas of the three pulled feeds are the registry's."""
    assert PULLED_FEED_SCHEMAS[feed].equals(FEEDS[feed].validated_schema())
