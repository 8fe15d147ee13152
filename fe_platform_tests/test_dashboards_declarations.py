"""Dashboards are declarations: they read only known reporting tables and real columns."""

from __future__ import annotations

import pytest

from fe_platform.lib.dashboards import DASHBOARDS, REPORTING_TABLES, Chart, Dashboard, chart_frame

try:
    from fe_platform_tests.test_dashboards_fixtures import fabricate_tables
except ImportError:  # tests run without the package on sys.path
    from test_dashboards_fixtures import fabricate_tables


def test_the_five_dashboards_of_the_contract():
    assert [d.title for d in DASHBOARDS] == [
        "Brand Performance", "Market Share", "Territory Performance", "Field Activity", "Data Quality"]
    assert len({d.slug for d in DASHBOARDS}) == len({d.name for d in DASHBOARDS}) == 5
    assert {t for d in DASHBOARDS for t in d.tables} == set(REPORTING_TABLES)
    assert DASHBOARDS[3].tables == ("rpt_field_activity", "rpt_territory_weekly")
    for d in DASHBOARDS:
        assert d.owner_team and "@" in d.owner_email and d.charts


def test_declarations_reference_known_tables_and_columns():
    for d in DASHBOARDS:
        assert d.validate() == []


def test_declared_columns_exist_in_the_fabricated_tables():
    tables = fabricate_tables()
    assert {n: tuple(t.column_names) for n, t in tables.items()} == REPORTING_TABLES
    for d in DASHBOARDS:
        for chart in d.charts:
            assert chart.columns() <= set(tables[chart.table].column_names), (d.name, chart.title)


def test_validate_names_the_problem():
    bad = Dashboard("x", "x", "X", "team", "t@example.com", "", ("rpt_brand_weekly", "rpt_nope"),
                    (Chart("c", "rpt_brand_weekly", "line", x="week_ending", y=("trx", "bogus")),))
    problems = bad.validate()
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

    from fe_platform.lib.dashboards import render_preview, write_extract

    sixth = Dashboard(
        "nbrx_focus", "nbrx-focus", "NBRx Focus", "F&E Brand Team", "brand@example.com", "NBRx by market.",
        ("rpt_brand_weekly",),
        (Chart("NBRx by market", "rpt_brand_weekly", "stacked_bar", x="week_ending", y=("nbrx",),
               series="market", latest_periods=8),),
    )
    assert sixth.validate() == []
    tables = fabricate_tables()
    assert write_extract(sixth, tables, tmp_path / "x.hyper") == {"rpt_brand_weekly": 442}
    page = render_preview(sixth, tables, tmp_path, dt.datetime(2026, 11, 23, tzinfo=dt.UTC), "OK")
    assert (tmp_path / "nbrx-focus" / "chart-1.png").exists() and "FERTILITY" in page.read_text()
