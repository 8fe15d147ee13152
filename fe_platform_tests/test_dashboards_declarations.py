"""Dashboards are declarations: they read only known reporting tables and real columns."""

from __future__ import annotations

import pytest

from fe_platform.defs.warehouse.project import prepare_manifest
from fe_platform.lib.dashboards import DASHBOARDS, Chart, Dashboard, chart_frame, load_reporting_tables

try:
    from fe_platform_tests.test_dashboards_fixtures import fabricate_tables
except ImportError:  # tests run without the package on sys.path
    from test_dashboards_fixtures import fabricate_tables


# The reporting tables of the second round, as shared/spec/warehouse.md and the dbt work of issue 12 define
# them. Until the dbt project builds them, the fixtures are held to these columns instead of the manifest's.
NEW_TABLES = {
    "rpt_patient_starts_weekly": (
        "brand_code", "brand_name", "territory_id", "territory_name", "region_name", "week_ending", "new_patients",
        "refills", "reversed_fills", "days_supply_dispensed"),
    "rpt_engagement_weekly": (
        "territory_id", "territory_name", "region_name", "week_ending", "submitted_calls", "event_attendances",
        "email_opens", "portal_visits", "hcps_engaged", "touches", "touches_per_engaged_hcp"),
}


@pytest.fixture(scope="module")
def manifest_tables():
    return load_reporting_tables(prepare_manifest())


def test_the_seven_dashboards_of_the_contract():
    assert [d.title for d in DASHBOARDS] == [
        "Brand Performance", "Market Share", "Territory Performance", "Field Activity", "Patient Starts",
        "Omnichannel Engagement", "Data Quality"]
    assert len({d.slug for d in DASHBOARDS}) == len({d.name for d in DASHBOARDS}) == 7
    assert DASHBOARDS[3].tables == ("rpt_field_activity", "rpt_territory_weekly")
    assert dict((d.title, d.tables) for d in DASHBOARDS[4:6]) == {
        "Patient Starts": ("rpt_patient_starts_weekly",), "Omnichannel Engagement": ("rpt_engagement_weekly",)}
    for d in DASHBOARDS:
        assert d.owner_team and "@" in d.owner_email and d.charts


def test_the_manifest_gives_reporting_tables_with_typed_columns(manifest_tables):
    brand = manifest_tables["rpt_brand_weekly"]
    assert brand.schema == "reporting"
    assert brand.columns[:2] == ("brand_code", "brand_name") and "trx_share" in brand.columns
    assert brand.data_types["week_ending"] == "date" and brand.data_types["trx"] == "bigint"
    assert not any(name.startswith(("stg_", "int_", "dim_", "fct_")) for name in manifest_tables)


def test_declarations_hold_against_the_dbt_manifest(manifest_tables):
    for d in DASHBOARDS:
        assert d.validate(manifest_tables) == [], d.slug


@pytest.mark.parametrize("slug", ["patient-starts", "omnichannel-engagement"])
def test_new_dashboards_hold_against_the_dbt_manifest_once_it_builds_their_tables(slug, manifest_tables):
    d = next(d for d in DASHBOARDS if d.slug == slug)
    assert d.validate(manifest_tables) == []
    for t in d.tables:
        assert manifest_tables[t].columns == NEW_TABLES[t]


def test_fabricated_tables_have_the_contract_columns(manifest_tables):
    tables = fabricate_tables()
    assert set(tables) == {t for d in DASHBOARDS for t in d.tables}
    for name, table in tables.items():
        expected = manifest_tables[name].columns if name in manifest_tables else NEW_TABLES[name]
        assert tuple(table.column_names) == expected, name
    for d in DASHBOARDS:
        for chart in d.charts:
            assert chart.columns() <= set(tables[chart.table].column_names), (d.name, chart.title)


def test_fabricated_shares_and_percentages_are_fractions():
    tables = fabricate_tables()
    for name, column in [("rpt_brand_weekly", "trx_share"), ("rpt_territory_weekly", "reach_pct"),
                         ("rpt_data_quality", "quarantine_pct")]:
        values = [v for v in tables[name][column].to_pylist() if v is not None]
        assert values and 0 <= min(values) and max(values) <= 1, (name, column)


def test_validate_names_the_problem(manifest_tables):
    bad = Dashboard("x", "x", "X", "team", "t@example.com", "", ("rpt_brand_weekly", "rpt_nope"),
                    (Chart("c", "rpt_brand_weekly", "line", x="week_ending", y=("trx", "bogus")),))
    problems = bad.validate(manifest_tables)
    assert any("rpt_nope" in p for p in problems)
    assert any("bogus" in p for p in problems)


def test_chart_rejects_unknown_kind_or_format():
    with pytest.raises(ValueError, match="kind"):
        Chart("c", "rpt_brand_weekly", "pie", x="week_ending", y=("trx",))
    with pytest.raises(ValueError, match="fmt"):
        Chart("c", "rpt_brand_weekly", "line", x="week_ending", y=("trx",), fmt="eur")


def test_chart_frame_filters_rolls_up_and_caps_series():
    tables = fabricate_tables()
    brand = tables["rpt_brand_weekly"]
    own = Chart("t", "rpt_brand_weekly", "line", x="week_ending", y=("trx",), series="brand_name",
                filter={"is_own_brand": True})
    df = chart_frame(own, brand)
    assert set(df["brand_name"]) == {"Gonafer", "Ovistim", "Somatrel", "Thyrovance"}

    endo = Chart("t", "rpt_brand_weekly", "line", x="week_ending", y=("trx_share",), series="brand_name",
                 filter={"market": "ENDOCRINOLOGY"}, fmt="pct")
    df = chart_frame(endo, brand)
    assert df["brand_name"].nunique() == 10 and "Other" in set(df["brand_name"])
    # shares of a market still add up to 100% every week after folding into "Other"
    assert df.groupby("week_ending")["trx_share"].sum().round(9).eq(1).all()

    region = Chart("r", "rpt_territory_weekly", "table", x="region_name", y=("own_trx",), latest_periods=13)
    df = chart_frame(region, tables["rpt_territory_weekly"])
    assert list(df["own_trx"]) == sorted(df["own_trx"], reverse=True)
    terr = tables["rpt_territory_weekly"].to_pandas()
    latest13 = sorted(terr["week_ending"].unique())[-13:]
    assert df["own_trx"].sum() == terr[terr["week_ending"].isin(latest13)]["own_trx"].sum()


def test_a_sixth_dashboard_is_a_declaration_only(tmp_path):
    import datetime as dt

    from fe_platform.lib.dashboards import QualityStatus, render_preview, write_extract

    sixth = Dashboard(
        "nbrx_focus", "nbrx-focus", "NBRx Focus", "F&E Brand Team", "brand@example.com", "NBRx by market.",
        ("rpt_brand_weekly",),
        (Chart("NBRx by market", "rpt_brand_weekly", "stacked_bar", x="week_ending", y=("nbrx",),
               series="market", latest_periods=8),),
    )
    assert sixth.validate({"rpt_brand_weekly": fabricate_tables()["rpt_brand_weekly"].column_names}) == []
    tables = fabricate_tables()
    assert write_extract(sixth, tables, tmp_path / "x.hyper") == {"rpt_brand_weekly": 442}
    page = render_preview(sixth, tables, tmp_path, dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
                          QualityStatus("OK", checks=3, results=3))
    assert (tmp_path / "nbrx-focus" / "chart-1.png").exists() and "FERTILITY" in page.read_text()
