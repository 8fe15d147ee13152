"""The dbt project end to end, on DuckDB and on a real PostgreSQL cluster.

One scenario per target (module-scoped): load the fabricated lake with the warehouse loaders, `dbt
build`, load newer deliveries and run the incremental facts for their window, re-run an older
partition, build again. The tests then only read the warehouse.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from fe_platform.lib.warehouse import DuckDBWarehouse, PostgresWarehouse
from fe_platform_tests import postgres_cluster
from fe_platform_tests.test_warehouse_fixtures import (
    A2,
    A4,
    C1,
    C2,
    DISP_1,
    DISP_2,
    E1,
    E2,
    E4,
    ENG_1,
    ENG_2,
    N1,
    N2,
    N3,
    N5,
    NDC_COMPB,
    NDC_ENDOX,
    NDC_FERTA_1,
    NDC_UNKNOWN,
    NPI_UNKNOWN,
    RX_NEW,
    RX_OLD,
    SNAP_2,
    W2,
    W3,
    W4,
    engagement_files,
    expected_billing,
    expected_dispenses,
    expected_patient_starts,
    expected_rx,
    run_scenario,
)

OWN_NDCS = {NDC_FERTA_1, NDC_ENDOX}
HCP_COLUMNS = {"npi", "prescriber_id", "hcp_key", "hcp_id", "account_id", "first_name", "last_name"}


class Built:
    def __init__(self, target: str, connect, snap: dict, cluster=None):
        self.target, self.connect, self.snap, self.cluster = target, connect, snap, cluster

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as wh:
            return wh.query(sql, params)

    def scalar(self, sql: str, params=None):
        return self.query(sql, params)[0][0]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory) -> Built:
    if request.param == "duckdb":
        path = Path(tmp_path_factory.mktemp("duckdb")) / "warehouse.duckdb"
        env = {"FE_DUCKDB_PATH": str(path)}

        def connect():
            return DuckDBWarehouse(path)

        yield Built("duckdb", connect, run_scenario("duckdb", env, connect))
        return
    assert postgres_cluster.available(), "PostgreSQL 15 is required: .ci/run installs postgresql-15"
    with postgres_cluster.PostgresCluster() as pg:

        def connect():
            return PostgresWarehouse(pg.conninfo())

        yield Built("postgres", connect, run_scenario("postgres", pg.env(), connect), pg)


# Facts -----------------------------------------------------------------------------------------------

def test_build_passes_with_unit_tests(built):
    final = built.snap["final_build"]
    assert final.count("unit_test") == 16
    assert final.count("model") == 37
    assert set(final.statuses()) <= {"pass", "success", "warn"}, final.statuses()


def test_rx_fact_equals_validated_rows_with_latest_delivery_winning(built):
    expected = expected_rx([RX_OLD, RX_NEW])
    rows = built.query('select prescriber_id, ndc11, week_ending, payer_type, channel, trx, nrx, nbrx, '
                       'delivery_date from "marts"."fct_rx_weekly"')
    assert len(rows) == len(expected)
    got = {r[:5]: r for r in rows}
    for key, row in expected.items():
        assert got[key][5:8] == (row["trx"], row["nrx"], row["nbrx"]), key
    by_week = defaultdict(int)
    for row in expected.values():
        by_week[row["week_ending"]] += row["trx"]
    db_by_week = dict(built.query('select week_ending, sum(trx) from "marts"."fct_rx_weekly" group by 1'))
    assert {k: int(v) for k, v in db_by_week.items()} == dict(by_week)


def test_restated_week_replaces_its_earlier_values(built):
    key = ("101", NDC_FERTA_1, W2, "COMMERCIAL", "RETAIL")
    old_value, new_value = expected_rx([RX_OLD])[key]["trx"], expected_rx([RX_OLD, RX_NEW])[key]["trx"]
    assert old_value != new_value

    def trx_w2(rows):
        return [r[5] for r in rows if r[:5] == key]

    assert trx_w2(built.snap["rx_after_old"]) == [old_value]
    assert trx_w2(built.snap["rx_after_new"]) == [new_value]  # replaced, not added
    w2_rows = [r for r in built.snap["rx_after_new"] if r[2] == W2]
    assert w2_rows and {r[7] for r in w2_rows} == {RX_NEW}


def test_rerunning_an_older_partition_changes_nothing(built):
    assert built.snap["rx_after_rerun"] == built.snap["rx_after_new"]
    assert built.snap["rx_lake_counts"] == {RX_OLD: 32, RX_NEW: 31}  # reload replaced, did not append
    final = sorted(built.query(
        'select prescriber_id, ndc11, week_ending, payer_type, channel, trx, nrx, delivery_date '
        'from "marts"."fct_rx_weekly"'), key=repr)
    assert final == built.snap["rx_after_new"]


def test_billing_fact_latest_delivery_and_currency_conversion(built):
    expected = expected_billing()
    rows = {(r[0], r[1]): r[2:] for r in built.query(
        'select billing_document, billing_item, net_value, net_value_usd, product_key, currency '
        'from "marts"."fct_billing_line"')}
    assert len(rows) == len(expected)
    assert sum(Decimal(r[0]) for r in rows.values()) == sum(r["net_value"] for r in expected.values())
    assert Decimal(rows[("9000000001", "000010")][0]) == Decimal("1200.00")  # restated line
    assert Decimal(rows[("9000000001", "000010")][1]) == Decimal("1320.00")  # 1200 EUR * 1.10
    assert Decimal(rows[("9000000002", "000010")][1]) == Decimal("1050.00")  # 850 GBP / 0.85 * 1.05
    assert Decimal(rows[("9000000001", "000020")][1]) == Decimal("500.00")  # USD stays
    assert rows[("9000000003", "000010")][1] is None  # JPY: no usable rate, kept with null
    assert rows[("9000000004", "000010")][2] is None  # unknown material: product_key null
    assert rows[("9000000005", "000010")][0] == Decimal("-200.00")  # a credit memo of the newer delivery


def test_latest_last_modified_wins_for_calls(built):
    status = dict(built.query('select call_id, call_status from "marts"."fct_call"'))
    assert status[C1] == "SUBMITTED"
    assert status[C2] == "SUBMITTED"  # a later delivery of an older version does not win
    products = built.query(f'select brand_code from "marts"."fct_call_product" where call_id = \'{C1}\'')
    assert sorted(p[0] for p in products) == ["COMPB", "FERTA"]


def test_dispense_latest_updated_at_wins(built):
    expected = expected_dispenses([DISP_1, DISP_2])
    rows = dict(built.query('select dispense_id, status from "marts"."fct_dispense"'))
    assert rows == {k: r["status"] for k, r in expected.items()}
    assert rows[3] == "REVERSED"  # the reversal pulled the next day replaced DISPENSED


def test_engagement_keeps_each_event_once(built):
    delivered = [e for day in (ENG_1, ENG_2) for rows in engagement_files(day).values() for e in rows]
    rows = built.query('select event_id, hcp_id, hcp_key, source_file from "marts"."fct_hcp_engagement"')
    assert len(delivered) > len(rows) == len({e["event_id"] for e in delivered})
    by_event = {r[0]: r for r in rows}
    assert by_event[E1][3].endswith("_1.jsonl.gz")  # the first file that delivered it
    assert by_event[E2][1] == f"NPI:{N2}" and by_event[E2][2] is not None  # by account A2's NPI
    assert by_event[E4][2] is None  # nobody knows that NPI


def test_event_attendance_latest_updated_at_wins(built):
    rows = {r[0]: r[1:] for r in built.query(
        'select attendance_id, attended, meal_value_usd, npi from "marts"."fct_event_attendance"')}
    assert rows["AT-0000000003"][0] is True  # updated the next day
    assert Decimal(rows["AT-0000000002"][1]) == Decimal("45.50")  # an older version pulled later loses
    assert rows["AT-0000000003"][2] == N5


# Dimensions and integrity ----------------------------------------------------------------------------

def test_dim_hcp_scd2_and_unmatched_prescribers(built):
    versions = built.query('select territory_id, valid_from, valid_to, is_current, version_number '
                           f'from "marts"."dim_hcp" where account_id = \'{A2}\' order by version_number')
    assert [(v[0], v[3]) for v in versions] == [("T001", False), ("T002", True)]
    assert versions[0][2] == versions[1][1] == SNAP_2
    assert built.scalar(f'select is_active from "marts"."dim_hcp" where account_id = \'{A4}\'') is False
    unmatched = dict(built.query(
        'select prescriber_id, territory_id from "marts"."dim_hcp" where prescriber_id in (\'104\', \'105\')'))
    assert unmatched == {"104": None, "105": None}


def test_referential_integrity(built):
    orphans = {
        "rx.hcp_key": 'select count(*) from "marts"."fct_rx_weekly" f left join "marts"."dim_hcp" d '
                      'on d.hcp_key = f.hcp_key where d.hcp_key is null',
        "rx.product_key": 'select count(*) from "marts"."fct_rx_weekly" f left join "marts"."dim_product" d '
                          'on d.product_key = f.product_key '
                          f'where d.product_key is null and f.ndc11 <> \'{NDC_UNKNOWN}\'',
        "rx.week": 'select count(*) from "marts"."fct_rx_weekly" f left join "marts"."dim_date" d '
                   'on d.date_day = f.week_ending where d.date_day is null',
        "billing.customer": 'select count(*) from "marts"."fct_billing_line" f left join "marts"."dim_customer" d '
                            'on d.customer_key = f.customer_key where d.customer_key is null',
        "billing.date": 'select count(*) from "marts"."fct_billing_line" f left join "marts"."dim_date" d '
                        'on d.date_day = f.billing_date where d.date_day is null',
        "call.hcp": 'select count(*) from "marts"."fct_call" f left join "marts"."dim_hcp" d '
                    'on d.hcp_key = f.hcp_key where d.hcp_key is null',
        "call.territory": 'select count(*) from "marts"."fct_call" f left join "marts"."dim_territory" d '
                          'on d.territory_key = f.territory_key where d.territory_key is null',
    }
    for fact in ("fct_dispense", "fct_event_attendance", "fct_hcp_engagement"):
        orphans[f"{fact}.hcp"] = (f'select count(*) from "marts"."{fact}" f left join "marts"."dim_hcp" d '
                                  'on d.hcp_key = f.hcp_key where f.hcp_key is not null and d.hcp_key is null')
    assert {name: built.scalar(sql) for name, sql in orphans.items()} == dict.fromkeys(orphans, 0)


# Reporting -------------------------------------------------------------------------------------------

REPORTING = {"rpt_brand_weekly", "rpt_territory_weekly", "rpt_field_activity", "rpt_data_quality",
             "rpt_patient_starts_weekly", "rpt_engagement_weekly", "rpt_transfers_of_value"}
COMPLIANCE_ONLY = {"rpt_transfers_of_value"}  # per HCP, never granted to field_ops (see the access tests)
PRESCRIPTION_COLUMNS = {"trx", "nrx", "nbrx", "own_trx", "own_nbrx", "new_patients", "refills"}


def test_no_reporting_table_lists_prescribers(built):
    """PDRP: no rep-facing reporting table has an HCP-identifying column; the compliance report that lists
    HCPs has no prescription column."""
    columns = built.query("select table_name, column_name from information_schema.columns "
                          "where table_schema = 'reporting'")
    assert {t for t, _ in columns} == REPORTING
    assert not [c for c in columns if c[1] in HCP_COLUMNS and c[0] not in COMPLIANCE_ONLY]
    assert not [c for c in columns if c[1] in PRESCRIPTION_COLUMNS and c[0] in COMPLIANCE_ONLY]


def test_no_reporting_percentage_exceeds_one(built):
    for table, column in [("rpt_brand_weekly", "trx_share"), ("rpt_territory_weekly", "reach_pct"),
                          ("rpt_data_quality", "quarantine_pct")]:
        low, high = built.query(f'select min({column}), max({column}) from "reporting"."{table}"')[0]
        assert 0 <= float(low) <= float(high) <= 1, (table, column, low, high)
    assert built.scalar('select max(reach_pct) from "reporting"."rpt_territory_weekly"') > 0


def test_patient_starts_first_fill_per_patient_and_brand(built):
    rows = built.query('select brand_code, territory_id, week_ending, new_patients, refills, reversed_fills, '
                       'days_supply_dispensed from "reporting"."rpt_patient_starts_weekly"')
    assert {r[:3]: tuple(int(v) for v in r[3:]) for r in rows} == expected_patient_starts([DISP_1, DISP_2])


def test_engagement_counts_every_channel_per_territory(built):
    rows = {(r[0], r[1]): r[2:] for r in built.query(
        'select territory_id, week_ending, submitted_calls, event_attendances, email_opens, portal_visits, '
        'hcps_engaged, touches, touches_per_engaged_hcp from "reporting"."rpt_engagement_weekly"')}
    # Week of 11-20: T001 has C1 (A1) and N1's two opened emails; T002 has C4 (A2), A2's portal visit (N2
    # moved to T002 on 11-13) and A3's portal visit (N3). E3 was only sent; E4's NPI is unknown.
    assert rows[("T001", W4)] == (1, 0, 2, 0, 1, 3, 3.0)
    assert rows[("T002", W4)] == (1, 0, 0, 2, 2, 3, 1.5)
    # Week of 11-13: T001 has C2 (A2, the call's territory) and N1 at the speaker program; T002 has C3 (A3) and
    # N3 at the same program. N5's webinar counts nowhere: no territory.
    assert rows[("T001", W3)] == (1, 1, 0, 0, 2, 2, 1.0)
    assert rows[("T002", W3)] == (1, 1, 0, 0, 1, 2, 2.0)


def test_transfers_of_value_per_hcp_and_year(built):
    rows = {(r[0], r[1]): r[2:] for r in built.query(
        'select npi, year, meal_value_usd, attendances, last_name, hcp_key from "reporting"."rpt_transfers_of_value"')}
    assert {k: (Decimal(v[0]), v[1]) for k, v in rows.items()} == {
        (N1, 2026): (Decimal("120.00"), 1), (N1, 2025): (Decimal("60.00"), 1),
        (N3, 2026): (Decimal("45.50"), 1), (N5, 2026): (Decimal("0.00"), 1)}
    assert rows[(N3, 2026)][2] == "Cole"  # PDRP opt-outs are reported: this is no rep-facing table
    assert rows[(N5, 2026)][2] is None and rows[(N5, 2026)][3] is not None  # known to IQVIA only
    assert NPI_UNKNOWN not in {k[0] for k in rows}


def test_brand_share_and_territory_totals(built):
    shares = built.query('select market, week_ending, sum(trx_share) from "reporting"."rpt_brand_weekly" '
                         'where market_trx > 0 group by 1, 2')
    assert shares and all(abs(float(s) - 1.0) < 1e-9 for _, _, s in shares)
    expected = expected_rx([RX_OLD, RX_NEW])
    own_in_territories = sum(r["trx"] for r in expected.values()
                             if r["ndc11"] in OWN_NDCS and r["prescriber_id"] in {"101", "102", "103"})
    assert int(built.scalar('select sum(own_trx) from "reporting"."rpt_territory_weekly"')) == own_in_territories
    competitor = built.scalar('select sum(trx) from "reporting"."rpt_brand_weekly" where brand_code = \'COMPB\'')
    assert int(competitor) == sum(r["trx"] for r in expected.values() if r["ndc11"] == NDC_COMPB)
    national_own_usd = built.scalar(
        'select sum(b.net_value_usd) from "marts"."fct_billing_line" b join "marts"."dim_product" p '
        'on p.product_key = b.product_key where p.is_own_brand')
    allocated = built.scalar('select sum(net_sales_usd) from "reporting"."rpt_territory_weekly"')
    assert 0 < Decimal(allocated) <= Decimal(national_own_usd) + Decimal("0.05")
    calls = built.query('select territory_id, week_ending, submitted_calls, hcps_reached '
                        'from "reporting"."rpt_territory_weekly" where submitted_calls > 0')
    assert sum(c[2] for c in calls) == built.scalar(
        'select count(*) from "marts"."fct_call" where call_status = \'SUBMITTED\'')
    activity = built.scalar('select sum(calls_total) from "reporting"."rpt_field_activity"')
    assert activity == sum(c[2] for c in calls)


def test_data_quality_report(built):
    rows = built.query('select feed, partition_date, outcome, rejected_files, quarantine_pct, freshness_lag_hours '
                       'from "reporting"."rpt_data_quality" where feed = \'iqvia_rx\'')
    assert {r[2] for r in rows} == {"loaded", "rejected"}
    assert all(r[3] == 1 for r in rows if r[1] == W4)
    loaded_old = next(r for r in rows if r[1] == RX_OLD and r[2] == "loaded")
    assert loaded_old[3] == 0
    assert abs(float(loaded_old[4]) - 1 / 33) < 1e-9  # a fraction, not a percent
    assert abs(float(loaded_old[5]) - 30.0) < 1e-9  # ingested the next day at 06:00 UTC


# Access ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("built", ["duckdb"], indirect=True)
def test_duckdb_says_it_has_no_grants(built):
    assert "DuckDB is a single-user file: no roles or grants" in built.snap["final_build"].stdout


READABLE = {
    "analyst": {"reporting", "transfers_of_value", "marts"},
    "field_ops": {"reporting"},
    "data_engineer": {"reporting", "transfers_of_value", "marts", "intermediate", "staging", "lake"},
}
PROBES = {
    "reporting": '"reporting"."rpt_brand_weekly"',
    "transfers_of_value": '"reporting"."rpt_transfers_of_value"',
    "marts": '"marts"."fct_rx_weekly"',
    "intermediate": '"intermediate"."int_accounts_history"',
    "staging": '"staging"."stg_iqvia__rx"',
    "lake": '"lake"."iqvia_rx"',
}


@pytest.mark.parametrize("built", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.parametrize("role", sorted(READABLE))
def test_postgres_roles_read_only_their_schemas(built, role):
    import psycopg

    login, password = f"{role}_login", f"pw-{role}-test"
    built.cluster.superuser_sql(
        f"do $$ begin if not exists (select 1 from pg_roles where rolname = '{login}') then "
        f"create role \"{login}\" login password '{password}'; grant \"{role}\" to \"{login}\"; end if; end $$")
    readable = set()
    with psycopg.connect(**built.cluster.conninfo(login, password), autocommit=True) as conn:
        for schema, table in PROBES.items():
            try:
                conn.execute(f"select count(*) from {table}").fetchone()
                readable.add(schema)
            except psycopg.errors.InsufficientPrivilege:
                pass
    assert readable == READABLE[role]
