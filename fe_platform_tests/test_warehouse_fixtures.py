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
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.identifiers import npi_check_digit, sfdc_suffix
from fe_platform.lib.warehouse import DELIVERIES_SCHEMA, Warehouse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = PROJECT_ROOT / "dbt_project"

W1, W2, W3, W4 = date(2026, 10, 30), date(2026, 11, 6), date(2026, 11, 13), date(2026, 11, 20)
RX_OLD, RX_NEW = W3, W4  # IQVIA delivery data dates
SNAP_1, SNAP_2 = date(2026, 11, 6), date(2026, 11, 13)
BILL_1, BILL_2 = date(2026, 11, 16), date(2026, 11, 17)
CALL_1, CALL_2 = date(2026, 11, 18), date(2026, 11, 19)
FX_1, FX_2 = date(2026, 11, 13), date(2026, 11, 16)
MASTER = date(2026, 11, 2)


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


def _validated(feed: str, day: date, rows: list[dict], file_name: str) -> pa.Table:
    for i, row in enumerate(rows, start=1):
        row.update(_source_file=f"landing/{feed}/{file_name}", _source_row=i, _data_date=day,
                   _ingested_at=ts(day + timedelta(days=1)))
    return pa.Table.from_pylist(rows, schema=FEEDS[feed].validated_schema())


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


def partitions() -> list[tuple[str, date, pa.Table]]:
    """Every validated partition of the fabricated lake: (feed, data date, Arrow table)."""
    out = [("product_master", MASTER, _validated("product_master", MASTER, product_rows(),
                                                 "PRODUCT_MASTER_20261102.csv")),
           ("sfdc_territory", MASTER, _validated("sfdc_territory", MASTER, territory_rows(),
                                                 "SFDC_TERRITORY_20261102.csv"))]
    for d in (SNAP_1, SNAP_2):
        out.append(("sfdc_account", d, _validated("sfdc_account", d, account_rows(d),
                                                  f"SFDC_ACCOUNT_{d:%Y%m%d}.csv")))
    for d in (FX_1, FX_2):
        out.append(("fx_rates", d, _validated("fx_rates", d, fx_rows(d), f"FX_RATES_{d:%Y%m%d}.json")))
    for d in (CALL_1, CALL_2):
        out.append(("sfdc_call", d, _validated("sfdc_call", d, call_rows(d), f"SFDC_CALL_{d:%Y%m%d}.csv")))
    for d in (BILL_1, BILL_2):
        out.append(("sap_billing", d, _validated("sap_billing", d, billing_rows(d), f"SAP_BILLING_{d:%Y%m%d}.csv")))
    for d in (RX_OLD, RX_NEW):
        out.append(("iqvia_rx", d, _validated("iqvia_rx", d, rx_rows(d), f"RXDYN_WEEKLY_{d:%Y%m%d}.txt")))
    return out


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


# Loading and dbt -------------------------------------------------------------------------------------

def load_all(wh: Warehouse, skip: set[tuple[str, date]] = frozenset()) -> None:
    wh.ensure_all_sources()
    for feed, day, table in partitions():
        if (feed, day) not in skip:
            wh.load_partition(feed, day.isoformat(), table)
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


@contextmanager
def environment(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
        with environment(self.env):
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


def window(day: date) -> str:
    return json.dumps({"min_date": day.isoformat(), "max_date": day.isoformat()})


def run_scenario(target: str, env: dict[str, str], connect: Callable[[], Warehouse]) -> dict:
    """The life of the warehouse the tests then inspect; returns snapshots taken along the way.

    1. everything but the newest IQVIA and SAP deliveries is loaded, and `dbt build` builds it all;
    2. the newest deliveries arrive: their partitions are loaded and the incremental facts run for
       that window only (as Dagster does);
    3. the older IQVIA partition is re-run (reloaded and rebuilt) after the newer one: nothing moves;
    4. a last `dbt build` (incremental facts without vars: nothing newer) runs every test.
    """
    facts = "fct_rx_weekly fct_billing_line"
    dbt = Dbt(target, env)
    snap: dict = {"timings": {}}
    with connect() as wh:
        load_all(wh, skip={("iqvia_rx", RX_NEW), ("sap_billing", BILL_2)})
    snap["timings"]["build_initial"] = dbt("build", "--full-refresh").elapsed
    with connect() as wh:
        snap["rx_after_old"] = _fact_rows(wh)
        wh.load_partition("iqvia_rx", RX_NEW.isoformat(), partition("iqvia_rx", RX_NEW))
        wh.load_partition("sap_billing", BILL_2.isoformat(), partition("sap_billing", BILL_2))
    dbt("run", "--select", facts, "--vars", window(RX_NEW))
    dbt("run", "--select", facts, "--vars", window(BILL_2))
    with connect() as wh:
        snap["rx_after_new"] = _fact_rows(wh)
        wh.load_partition("iqvia_rx", RX_OLD.isoformat(), partition("iqvia_rx", RX_OLD))
        snap["rx_lake_counts"] = wh.partition_counts("iqvia_rx")
    dbt("run", "--select", facts, "--vars", window(RX_OLD))
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
        assert table.schema.equals(FEEDS[feed].validated_schema()), feed
        assert set(table.column("_data_date").to_pylist()) == {day}
    assert deliveries().schema.equals(DELIVERIES_SCHEMA)
    assert len(expected_rx([RX_OLD, RX_NEW])) > len(rx_rows(RX_NEW))
