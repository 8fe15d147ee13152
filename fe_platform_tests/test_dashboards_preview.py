"""Previews: a self-contained HTML page and PNGs per dashboard, carrying the real data."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow.compute as pc
import pytest

from fe_platform.lib.dashboards import DASHBOARDS, dashboard, quality_status, render_index, render_preview
from fe_platform.lib.dashboards.preview import fmt_value

try:
    from fe_platform_tests.test_dashboards_fixtures import LAST_WEEK, empty_tables, fabricate_tables
except ImportError:
    from test_dashboards_fixtures import LAST_WEEK, empty_tables, fabricate_tables

REFRESHED = dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tables():
    return fabricate_tables()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tables):
    out = tmp_path_factory.mktemp("site")
    pages = {d.slug: render_preview(d, tables, out, REFRESHED, "OK") for d in DASHBOARDS}
    return out, pages


def test_every_dashboard_has_a_page_and_a_png_per_chart(site):
    out, pages = site
    for d in DASHBOARDS:
        page = pages[d.slug]
        assert page == out / f"{d.slug}.html"
        text = page.read_text()
        assert d.title in text and d.owner_email in text and "2026-11-23 06:30 UTC" in text
        pngs = sorted((out / d.slug).glob("chart-*.png"))
        assert len(pngs) == len(d.charts)
        assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5_000 for p in pngs)
        for chart in d.charts:
            assert chart.title.replace("&", "&amp;") in text


def test_pages_are_self_contained(site):
    _, pages = site
    for page in pages.values():
        text = page.read_text()
        assert "<script" not in text
        assert not re.search(r"(src|href)=\"(https?:)?//", text)
        assert "http://" not in text and "https://" not in text
        assert text.count('src="data:image/png;base64,') >= 1


def test_brand_page_carries_the_latest_own_brand_trx(site, tables):
    _, pages = site
    text = pages["brand-performance"].read_text()
    brand = tables["rpt_brand_weekly"].to_pandas()
    latest = brand[(brand["week_ending"] == LAST_WEEK) & brand["is_own_brand"]]
    assert len(latest) == 4
    for _, row in latest.iterrows():
        assert row["brand_name"] in text
        assert f"{row['trx']:,}" in text  # e.g. 14,083 in the latest-week table and the chart's data
        assert f"{row['nbrx']:,}" in text
    # competitors are not on the own-brand page
    assert "Follitrope" not in text


def test_market_share_page_shows_shares_as_percent_and_folds_other(site, tables):
    _, pages = site
    text = pages["market-share"].read_text()
    brand = tables["rpt_brand_weekly"].to_pandas()
    row = brand[(brand["week_ending"] == LAST_WEEK) & (brand["brand_name"] == "Thyrovance")].iloc[0]
    assert fmt_value(row["trx_share"], "pct") in text  # e.g. 29.7%
    assert ">Other<" in text and "Own brands" in text and "Competitors" in text


def test_territory_region_rollup_is_sorted_and_sums_13_weeks(site, tables):
    _, pages = site
    text = pages["territory-performance"].read_text()
    terr = tables["rpt_territory_weekly"].to_pandas()
    weeks = sorted(terr["week_ending"].unique())[-13:]
    recent = terr[terr["week_ending"].isin(weeks)]
    by_region = recent.groupby("region_name")["own_trx"].sum().sort_values(ascending=False)
    section = text.split('id="chart-1"')[1].split("</section>")[0]
    positions = [section.index(f">{region}<") for region in by_region.index]
    assert positions == sorted(positions)
    for value in by_region:
        assert f"{value:,}" in section
    sales = float(recent["net_sales_usd"].map(float).sum())
    assert fmt_value(sales, "usd") == f"${sales:,.0f}"
    assert "Week ending: 2026-08-21 to 2026-11-13" in text


def test_data_quality_page_lists_rejected_deliveries(site, tables):
    _, pages = site
    text = pages["data-quality"].read_text()
    dq = tables["rpt_data_quality"]
    rejected = pc.filter(dq, pc.equal(dq["outcome"], "rejected"))
    assert rejected.num_rows == 3
    for key in rejected["landing_key"].to_pylist():
        assert key in text
    assert "veeva_crm_calls" in text and "Rejected files" in text


def test_empty_tables_say_no_data_yet(tmp_path):
    for d in DASHBOARDS:
        page = render_preview(d, empty_tables(), tmp_path, REFRESHED, None)
        text = page.read_text()
        assert text.count("No data yet") == len(d.charts)
        assert len(list((tmp_path / d.slug).glob("*.png"))) == len(d.charts)


def test_quality_status(tables):
    assert quality_status(tables["rpt_data_quality"]) == "WARN: 2 files rejected"
    assert quality_status(empty_tables()["rpt_data_quality"]) == "No data yet"
    clean = tables["rpt_data_quality"].filter(pc.equal(tables["rpt_data_quality"]["outcome"], "loaded"))
    assert quality_status(clean) == "OK"


def test_index_links_all_dashboards_with_refresh_and_status(tmp_path):
    status = [dict(slug=d.slug, title=d.title, refreshed_at=REFRESHED, owner_team=d.owner_team,
                   quality_status="WARN: 2 files rejected" if d.name == "data_quality" else "OK")
              for d in DASHBOARDS]
    status[2]["refreshed_at"] = None
    index = render_index(status, tmp_path)
    text = index.read_text()
    assert index == tmp_path / "index.html"
    for d in DASHBOARDS:
        assert f'href="{d.slug}.html"' in text and d.title in text
    assert text.count("2026-11-23 06:30 UTC") == 4 and "never" in text
    assert 'class="badge warn">WARN: 2 files rejected<' in text
    assert text.count('class="badge ok">OK<') == 4
    assert "<script" not in text


def test_one_dashboard_lookup():
    assert dashboard("data-quality") is dashboard("data_quality")
