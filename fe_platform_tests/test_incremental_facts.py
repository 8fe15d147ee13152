"""Every incremental fact equals a full rebuild from the lake, after any sequence of deliveries.

Two warehouses per target (DuckDB; PostgreSQL on a throwaway cluster) receive the same deliveries, step
by step. After each step one runs the incremental facts for the delivered partitions (`delivery_dates`,
as the platform passes them; no var at all in the last step), the other rebuilds them with
`--full-refresh`, and every column of every row of fct_rx_weekly, fct_billing_line, fct_dispense and
fct_hcp_engagement must be the same. The steps: a first build, a new week that restates older weeks,
corrections that withdraw rows (a partition replaced under a new file name), re-runs of older partitions
after newer ones, a backfill of two older partitions at once and out of order, a CRM account that matches
a prescriber IQVIA alone knew (no fact row may lose its dim_hcp row), and a run without delivery_dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from fe_platform.lib.warehouse import DuckDBWarehouse, PostgresWarehouse
from fe_platform_tests import postgres_cluster
from fe_platform_tests.test_warehouse_fixtures import (
    BILL_1,
    BILL_2,
    DISP_1,
    DISP_2,
    E1,
    E5,
    ENG_1,
    ENG_2,
    INCREMENTAL_FACTS,
    N5,
    NDC_FERTA_1,
    PRESCRIBERS,
    RX_NEW,
    RX_OLD,
    SNAP_2,
    W2,
    W4,
    Dbt,
    account_rows,
    billing_rows,
    delivery_dates,
    dispense_rows,
    engagement_files,
    load_all,
    load_partition,
    partition,
    rx_rows,
    sfdc,
    ts,
    validated_table,
)

W0, W5 = date(2026, 10, 23), date(2026, 11, 27)
RX_W1, RX_W2, RX_NEXT = date(2026, 10, 30), date(2026, 11, 6), W5  # late backfills, and the week after RX_NEW
BILL_0, DISP_0, ENG_0 = date(2026, 11, 13), date(2026, 11, 15), date(2026, 11, 15)
SNAP_3 = date(2026, 11, 20)
A5 = sfdc("001", 5)  # a CRM account for the NPI of prescriber 105, whom IQVIA alone knew so far
SELECT = [f"+{fact}" for fact in INCREMENTAL_FACTS]
# The facts' relationships to dim_hcp, as dbt tests them.
HCP_RELATIONSHIPS = [f"relationships_{fact}_hcp_key__hcp_key__ref_dim_hcp_"
                     for fact in ("fct_rx_weekly", "fct_dispense", "fct_hcp_engagement")]


# The deliveries of the steps -------------------------------------------------------------------------

def rx_backfill(day: date, weeks: list[date], base: int) -> pa.Table:
    rows = [dict(prescriber_id=p, npi=n, ndc11=NDC_FERTA_1, week_ending=w, payer_type="COMMERCIAL",
                 channel="RETAIL", nrx=1, trx=base + k, nbrx=0, nqty=30.0, tqty=float(30 * (base + k)))
            for k, (p, n) in enumerate(PRESCRIBERS.items()) for w in weeks]
    return validated_table("iqvia_rx", day, rows, f"RXDYN_WEEKLY_{day:%Y%m%d}.txt")


def rx_corrected() -> pa.Table:
    """RX_NEW again under a new name: 101's week W4 and 102's restated W2 are withdrawn, 103's W4 changes."""
    rows = []
    for row in rx_rows(RX_NEW):
        if (row["prescriber_id"], row["week_ending"]) in {("101", W4), ("102", W2)}:
            continue
        if (row["prescriber_id"], row["week_ending"]) == ("103", W4):
            row = dict(row, trx=row["trx"] + 100)
        rows.append(row)
    return validated_table("iqvia_rx", RX_NEW, rows, "RXDYN_WEEKLY_20261120_CORRECTED.txt")


def billing_corrected() -> pa.Table:
    """BILL_2 again without its credit memo (gone) and without the restated line (BILL_1's comes back)."""
    rows = [dict(billing_rows(BILL_2)[1], billing_document="9000000006", net_value=Decimal("-100.00"))]
    return validated_table("sap_billing", BILL_2, rows, "SAP_BILLING_20261117_CORRECTED.csv")


def billing_backfill() -> pa.Table:
    rows = [dict(r, billing_document="9000000009", billing_date=BILL_0) for r in billing_rows(BILL_1)[:1]]
    rows += [dict(r, net_value=r["net_value"] * 2) for r in billing_rows(BILL_1)[1:2]]  # BILL_1's stays newer
    return validated_table("sap_billing", BILL_0, rows, "SAP_BILLING_20261113.csv")


def dispense_corrected() -> pa.Table:
    """DISP_2 again without dispense 3's reversal (DISP_1's DISPENSED is back) and without dispense 7 (gone)."""
    rows = [r for r in dispense_rows(DISP_2) if r["dispense_id"] not in (3, 7)]
    return validated_table("sp_dispense", DISP_2, rows, "SP_DISPENSE_20261117_CORRECTED.csv.gz")


def engagement_corrected() -> pa.Table:
    """ENG_2's stream file again without E5 (gone); E1's redelivery stays."""
    name, rows = next(iter(engagement_files(ENG_2).items()))
    return validated_table("hcp_engagement", ENG_2, [r for r in rows if r["event_id"] != E5],
                           name.replace("_3.jsonl", "_4.jsonl"))


def engagement_backfill() -> pa.Table:
    """A file of the day before holding E1 too: now the first file that delivered it."""
    first = engagement_files(ENG_1)
    e1 = next(r for rows in first.values() for r in rows if r["event_id"] == E1)
    return validated_table("hcp_engagement", ENG_0, [e1],
                           "HCP_ENGAGEMENT_20261115_235900_shardId-000000000000_0.jsonl.gz")


def crm_match() -> pa.Table:
    rows = account_rows(SNAP_2) + [dict(account_rows(SNAP_2)[0], account_id=A5, npi=N5, first_name="Eve",
                                        last_name="Egan", territory_id="T003", last_modified=ts(SNAP_3, 1))]
    return validated_table("sfdc_account", SNAP_3, rows, "SFDC_ACCOUNT_20261120.csv")


@dataclass
class Step:
    name: str
    deliveries: list[tuple[str, date, pa.Table]] = field(default_factory=list)
    dates: dict[str, list[date]] | None = None  # None: run without the delivery_dates var


STEPS = [
    Step("first build", []),
    Step("new week restating older weeks",
         [(feed, day, partition(feed, day))
          for feed, day in (("iqvia_rx", RX_NEW), ("sap_billing", BILL_2), ("sp_dispense", DISP_2),
                            ("hcp_engagement", ENG_2))],
         dict(iqvia_rx=[RX_NEW], sap_billing=[BILL_2], sp_dispense=[DISP_2], hcp_engagement=[ENG_2])),
    Step("corrections withdraw rows",
         [("iqvia_rx", RX_NEW, rx_corrected()), ("sap_billing", BILL_2, billing_corrected()),
          ("sp_dispense", DISP_2, dispense_corrected()), ("hcp_engagement", ENG_2, engagement_corrected())],
         dict(iqvia_rx=[RX_NEW], sap_billing=[BILL_2], sp_dispense=[DISP_2], hcp_engagement=[ENG_2])),
    Step("older partitions re-run after newer ones",
         [(feed, day, partition(feed, day))
          for feed, day in (("iqvia_rx", RX_OLD), ("sap_billing", BILL_1), ("sp_dispense", DISP_1),
                            ("hcp_engagement", ENG_1))],
         dict(iqvia_rx=[RX_OLD], sap_billing=[BILL_1], sp_dispense=[DISP_1], hcp_engagement=[ENG_1])),
    Step("backfill of older partitions, out of order",
         [("iqvia_rx", RX_W2, rx_backfill(RX_W2, [W0, date(2026, 10, 30), W2], 1)),
          ("iqvia_rx", RX_W1, rx_backfill(RX_W1, [W0, date(2026, 10, 30)], 50)),
          ("sap_billing", BILL_0, billing_backfill()),
          ("sp_dispense", DISP_0, validated_table("sp_dispense", DISP_0, dispense_rows(DISP_0),
                                                  "SP_DISPENSE_20261115.csv.gz")),
          ("hcp_engagement", ENG_0, engagement_backfill())],
         dict(iqvia_rx=[RX_W2, RX_W1], sap_billing=[BILL_0], sp_dispense=[DISP_0], hcp_engagement=[ENG_0])),
    Step("a CRM account matches a prescriber IQVIA alone knew", [("sfdc_account", SNAP_3, crm_match())],
         dict(sfdc_account=[SNAP_3])),
    Step("a new week, no delivery_dates var",
         [("iqvia_rx", RX_NEXT, rx_backfill(RX_NEXT, [date(2026, 11, 13), W4, W5], 7))], None),
]


# Running the steps on two warehouses -----------------------------------------------------------------

@dataclass
class Warehouses:
    target: str
    incremental: Dbt
    rebuilt: Dbt
    connect_incremental: object
    connect_rebuilt: object
    facts: dict[str, dict[str, tuple[list, list]]] = field(default_factory=dict)  # step -> fact -> (inc, full)
    hcp_keys_105: dict[str, set] = field(default_factory=dict)  # step -> prescriber 105's hcp_keys in the fact
    relationships_after_match: str = ""

    def rows(self, connect, fact: str) -> list[dict]:
        with connect() as wh:
            return sorted(wh.read_table("marts", fact).to_pylist(), key=repr)

    def run(self, step: Step) -> None:
        for connect in (self.connect_incremental, self.connect_rebuilt):
            with connect() as wh:
                for feed, day, table in step.deliveries:
                    load_partition(wh, feed, day, table)
        args = ["run", "--select", *SELECT]
        if step.dates is not None:
            args += ["--vars", delivery_dates(**step.dates)]
        self.incremental(*args)
        self.rebuilt("run", "--select", *SELECT, "--full-refresh")
        self.facts[step.name] = {
            fact: (self.rows(self.connect_incremental, fact), self.rows(self.connect_rebuilt, fact))
            for fact in INCREMENTAL_FACTS}
        with self.connect_incremental() as wh:
            self.hcp_keys_105[step.name] = {r[0] for r in wh.query(
                'select distinct hcp_key from "marts"."fct_rx_weekly" where prescriber_id = \'105\'')}

    def run_all(self) -> Warehouses:
        for connect in (self.connect_incremental, self.connect_rebuilt):
            with connect() as wh:
                load_all(wh, skip={("iqvia_rx", RX_NEW), ("sap_billing", BILL_2), ("sp_dispense", DISP_2),
                                   ("hcp_engagement", ENG_2)})
        for step in STEPS:
            self.run(step)
            if step.name.startswith("a CRM account"):
                # The facts' relationships to dim_hcp, as dbt tests them (an orphan fails the run).
                try:
                    self.incremental("test", "--select", *HCP_RELATIONSHIPS)
                    self.relationships_after_match = "pass"
                except AssertionError as failure:
                    self.relationships_after_match = str(failure)[-3000:]
        self.incremental.close()
        self.rebuilt.close()
        return self


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouses(request, tmp_path_factory) -> Warehouses:
    if request.param == "duckdb":
        root = Path(tmp_path_factory.mktemp("incremental"))
        inc, full = root / "incremental.duckdb", root / "rebuilt.duckdb"
        yield Warehouses("duckdb", Dbt("duckdb", {"FE_DUCKDB_PATH": str(inc)}),
                         Dbt("duckdb", {"FE_DUCKDB_PATH": str(full)}),
                         lambda: DuckDBWarehouse(inc), lambda: DuckDBWarehouse(full)).run_all()
        return
    assert postgres_cluster.available(), "PostgreSQL 15 is required: .ci/run installs postgresql-15"
    with postgres_cluster.PostgresCluster() as pg:
        pg.superuser_sql(f'create database "fe_rebuilt" owner "{pg.user}"')
        rebuilt = {**pg.conninfo(), "dbname": "fe_rebuilt"}
        yield Warehouses("postgres", Dbt("postgres", pg.env()),
                         Dbt("postgres", {**pg.env(), "FE_POSTGRES_DATABASE": "fe_rebuilt"}),
                         lambda: PostgresWarehouse(pg.conninfo()), lambda: PostgresWarehouse(rebuilt)).run_all()


# The invariant, and proof that each step did what it says --------------------------------------------

@pytest.mark.parametrize("step", [s.name for s in STEPS])
@pytest.mark.parametrize("fact", INCREMENTAL_FACTS)
def test_incremental_fact_equals_a_full_rebuild(warehouses, step, fact):
    incremental, rebuilt = warehouses.facts[step][fact]
    assert rebuilt, f"{fact} is empty after {step!r}"
    missing = [r for r in rebuilt if r not in incremental]
    extra = [r for r in incremental if r not in rebuilt]
    assert not missing and not extra, (f"after {step!r}: {len(extra)} rows only incremental, e.g. {extra[:2]}; "
                                      f"{len(missing)} rows only rebuilt, e.g. {missing[:2]}")


def column(warehouses, step: str, fact: str, name: str, where) -> list:
    """Values of one column of the incremental fact after a step, for the rows `where` accepts."""
    return sorted(r[name] for r in warehouses.facts[step][fact][0] if where(r))


def test_corrections_withdrew_their_rows(warehouses):
    step = "corrections withdraw rows"
    assert column(warehouses, step, "fct_rx_weekly", "trx",
                  lambda r: r["prescriber_id"] == "101" and r["week_ending"] == W4) == []  # only RX_NEW held it
    assert column(warehouses, step, "fct_rx_weekly", "delivery_date",
                  lambda r: r["prescriber_id"] == "102" and r["week_ending"] == W2) == [RX_OLD, RX_OLD]
    assert column(warehouses, step, "fct_billing_line", "billing_document",
                  lambda r: r["billing_document"] == "9000000005") == []
    assert column(warehouses, step, "fct_dispense", "status", lambda r: r["dispense_id"] in (3, 7)) == ["DISPENSED"]
    assert column(warehouses, step, "fct_hcp_engagement", "event_id", lambda r: r["event_id"] == E5) == []


def test_backfill_keeps_newer_deliveries_and_adds_its_own_keys(warehouses):
    step = "backfill of older partitions, out of order"
    w0 = column(warehouses, step, "fct_rx_weekly", "delivery_date", lambda r: r["week_ending"] == W0)
    assert w0 and set(w0) == {RX_W2}  # W0 held by both backfills: the later partition wins
    assert RX_W1 not in column(warehouses, step, "fct_rx_weekly", "delivery_date", lambda r: True)
    assert column(warehouses, step, "fct_dispense", "status", lambda r: r["dispense_id"] == 1) == ["DISPENSED"]
    assert column(warehouses, step, "fct_hcp_engagement", "delivery_date", lambda r: r["event_id"] == E1) == [ENG_0]


def test_matching_an_iqvia_prescriber_to_crm_later_orphans_no_fact_row(warehouses):
    """Prescriber 105 was IQVIA's alone; a CRM account with its NPI arrives. The rows fct_rx_weekly wrote
    before keep their hcp_key, and dim_hcp still has that key: the relationships tests pass."""
    before, after = warehouses.hcp_keys_105["backfill of older partitions, out of order"], \
        warehouses.hcp_keys_105["a CRM account matches a prescriber IQVIA alone knew"]
    assert before and before == after
    with warehouses.connect_incremental() as wh:
        matched = wh.query('select hcp_key, hcp_source, account_id from "marts"."dim_hcp" '
                           f"where npi = '{N5}'")
    assert [(k, s, a) for k, s, a in matched] == [(next(iter(before)), "CRM", A5)]
    assert warehouses.relationships_after_match == "pass", warehouses.relationships_after_match


def test_without_delivery_dates_a_run_takes_the_newer_partitions(warehouses):
    step = "a new week, no delivery_dates var"
    assert set(column(warehouses, step, "fct_rx_weekly", "delivery_date", lambda r: r["week_ending"] == W5)) == \
        {RX_NEXT}
