"""Previews: a self-contained HTML page and PNGs per dashboard, carrying the real data."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow.compute as pc
import pytest

from fe_platform.lib.dashboards import (
    DASHBOARDS,
    CheckResult,
    QualityStatus,
    dashboard,
    render_index,
    render_preview,
    summarize,
)
from fe_platform.lib.dashboards.preview import fmt_value

try:
    from fe_platform_tests.test_dashboards_fixtures import LAST_WEEK, empty_tables, fabricate_tables
except ImportError:
    from test_dashboards_fixtures import LAST_WEEK, empty_tables, fabricate_tables

REFRESHED = dt.datetime(2026, 11, 23, 6, 30, 12, 345678, tzinfo=dt.UTC)
REFRESHED_WORDS = re.compile(r"Mon 23 Nov( 2026)?, 06:30 UTC")  # the year only outside the current one
PNG = b"\x89PNG\r\n\x1a\n"
ALL_PASS = QualityStatus("OK", checks=40, results=400)
FAILING = summarize([
    CheckResult("validated_fx_rates:quarantine_by_rule", "2026-11-03", passed=False, severity="ERROR",
                evaluated_at=dt.datetime(2026, 11, 3, 7, 1, 2, 3, tzinfo=dt.UTC)),
    CheckResult("validated_fx_rates:quarantine_by_rule", "2026-11-04", passed=True),
    CheckResult("validated_iqvia_rx:npi_in_sfdc_account", "2026-11-13", passed=False, severity="WARN",
                evaluated_at=dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)),
    CheckResult("validated_iqvia_rx:npi_in_sfdc_account", "2026-11-06", passed=False, severity="WARN",
                evaluated_at=dt.datetime(2026, 11, 9, 9, 0, tzinfo=dt.UTC)),
    CheckResult("marts/fct_rx_weekly:not_null_fct_rx_weekly_hcp_key", None, passed=True),
])


@pytest.fixture(scope="module")
def tables():
    return fabricate_tables()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tables):
    out = tmp_path_factory.mktemp("site")
    pages = {d.slug: render_preview(d, tables, out, REFRESHED, ALL_PASS) for d in DASHBOARDS}
    return out, pages


def pictured(dashboard) -> list:
    return [c for c in dashboard.charts if c.kind != "table"]


def test_every_dashboard_has_a_page_and_a_png_per_pictured_chart(site):
    out, pages = site
    for d in DASHBOARDS:
        page = pages[d.slug]
        assert page == out / f"{d.slug}.html"
        text = page.read_text()
        assert d.title in text and d.owner_email in text and REFRESHED_WORDS.search(text)
        assert "2026-11-23" not in text and "06:30:12" not in text  # no raw ISO time
        assert 'data-level="OK"' in text and "All 40 upstream checks passed" in text
        # a picture per chart but the table charts, which the page shows as HTML tables
        pngs = sorted((out / d.slug).glob("chart-*.png"))
        assert [p.name for p in pngs] == sorted(f"chart-{n}.png" for n, c in enumerate(d.charts, start=1)
                                                if c.kind != "table")
        assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5_000 for p in pngs)
        for chart in d.charts:
            assert chart.title.replace("&", "&amp;") in text
        assert text.count('<img src="data:image/png;base64,') == len(pngs)
        assert text.count('<table class="data">') == len(d.charts)  # each chart's values


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
    assert "Week ending: 21 Aug to 13 Nov 2026" in text


def test_data_quality_page_lists_rejected_deliveries(site, tables):
    _, pages = site
    text = pages["data-quality"].read_text()
    dq = tables["rpt_data_quality"]
    rejected = pc.filter(dq, pc.equal(dq["outcome"], "rejected"))
    assert rejected.num_rows == 3
    for key in rejected["landing_key"].to_pylist():
        assert key in text
    assert "veeva_crm_calls" in text and "Rejected files" in text


def test_empty_tables_say_no_data_yet(site, tmp_path):
    import shutil

    out, _ = site
    for d in DASHBOARDS:
        shutil.copytree(out / d.slug, tmp_path / d.slug)  # the pictures drawn when the tables had rows
        page = render_preview(d, empty_tables(), tmp_path, REFRESHED, None)
        text = page.read_text()
        assert text.count("No data yet") == len(d.charts) and "<img" not in text
        assert list((tmp_path / d.slug).glob("*.png")) == []  # no picture left that the page does not show


def test_data_quality_page_times_are_in_words(site):
    _, pages = site
    text = pages["data-quality"].read_text()
    assert "+00:00" not in text and not re.search(r"\d{4}-\d\d-\d\dT?\s?\d\d:\d\d", text)
    assert re.search(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (Oct|Nov)( 2026)?, \d\d:\d\d UTC", text)


def test_a_failing_status_names_its_checks_on_the_page(tmp_path, tables):
    page = render_preview(dashboard("brand-performance"), tables, tmp_path, REFRESHED, FAILING).read_text()
    header = page.split("</header>")[0]
    assert 'class="badge fail" data-level="ERROR">ERROR: 1 check failing, 1 warning<' in header
    section = page.split('id="data-quality"')[1]
    rows = re.findall(r'data-check="([^"]+)" data-level="(\w+)"', section)
    assert rows == [("validated_fx_rates:quarantine_by_rule", "ERROR"),
                    ("validated_iqvia_rx:npi_in_sfdc_account", "WARN")]
    assert "1 of 2 partitions: 3 Nov 2026" in section
    assert "2 of 2 partitions: 13 Nov 2026, 6 Nov 2026" in section
    assert re.search(r"Tue 3 Nov( 2026)?, 07:01 UTC", section)
    assert "fct_rx_weekly" not in section  # a passing check is not named


def test_index_links_all_dashboards_with_refresh_status_and_failing_checks(tmp_path):
    status = [dict(slug=d.slug, title=d.title, refreshed_at=REFRESHED.isoformat(), owner_team=d.owner_team,
                   quality=(FAILING if d.slug in ("brand-performance", "market-share") else ALL_PASS).to_json())
              for d in DASHBOARDS]
    status[2]["refreshed_at"] = None
    index = render_index(status, tmp_path)
    text = index.read_text()
    assert index == tmp_path / "index.html"
    for d in DASHBOARDS:
        assert f'href="{d.slug}.html"' in text and d.title in text
    assert len(REFRESHED_WORDS.findall(text)) == len(DASHBOARDS) - 1 and "never" in text
    assert REFRESHED.isoformat() not in text
    assert text.count('data-level="ERROR">ERROR: 1 check failing, 1 warning<') == 2
    assert text.count('class="badge ok" data-level="OK">OK<') == len(DASHBOARDS) - 2
    row = text.split('data-slug="brand-performance"')[1].split("</tr>")[0]
    assert "<code>validated_fx_rates:quarantine_by_rule</code> ERROR" in row
    failing = text.split('id="failing-checks"')[1]
    assert re.findall(r'data-check="([^"]+)"', failing) == [
        "validated_fx_rates:quarantine_by_rule", "validated_iqvia_rx:npi_in_sfdc_account"]
    assert "Brand Performance, Market Share" in failing
    assert "<script" not in text


def test_index_of_a_dashboard_not_built_or_not_checked_yet(tmp_path):
    text = render_index([{"slug": "x", "title": "X"},
                         {"slug": "y", "title": "Y", "refreshed_at": REFRESHED.isoformat(), "quality_status": "OK"}],
                        tmp_path).read_text()
    assert "not built yet" in text and "never" in text and "failing-checks" not in text
    assert ">not checked yet<" in text  # a status file from before the checks made the status


def test_one_dashboard_lookup():
    assert dashboard("data-quality") is dashboard("data_quality")


def test_a_check_failing_everywhere_is_said_so_briefly(tmp_path):
    everywhere = summarize([CheckResult("validated_sfdc_call:quarantine_by_rule", f"2026-11-{d:02d}", passed=False,
                                        severity="WARN") for d in range(2, 28)])
    status = [dict(slug=d.slug, title=d.title, quality=everywhere.to_json()) for d in DASHBOARDS]
    text = render_index(status, tmp_path).read_text().split('id="failing-checks"')[1]
    assert "all 26 partitions, the latest 27 Nov 2026" in text
    assert f">all {len(DASHBOARDS)}<" in text


def test_an_error_check_that_warns_elsewhere_says_which_partitions_are_which(tmp_path):
    """quarantine_by_rule is ERROR above a feed's threshold and WARN below it: the index must not call all of
    its failing partitions ERROR (the demo's sp_dispense: 3 at ERROR, 39 at WARN)."""
    results = [CheckResult("validated_sp_dispense:quarantine_by_rule", f"2026-11-{d:02d}", passed=False,
                           severity="ERROR" if d in (4, 11) else "WARN") for d in range(2, 14)]
    results.append(CheckResult("validated_sp_dispense:quarantine_by_rule", "2026-11-14", passed=True))
    mixed = summarize(results)
    assert mixed.failing[0].level == "ERROR" and mixed.failing[0].error_partitions == ("2026-11-11", "2026-11-04")
    status = [dict(slug=d.slug, title=d.title, quality=mixed.to_json()) for d in DASHBOARDS]
    text = render_index(status, tmp_path).read_text().split('id="failing-checks"')[1]
    assert "12 of 13 partitions: ERROR in 2 (11 Nov 2026, 4 Nov 2026), WARN in 10 (13 Nov 2026," in text


def test_a_category_the_data_does_not_know_reads_not_known():
    import pyarrow as pa

    from fe_platform.lib.dashboards import DASHBOARDS, chart_frame

    chart = next(c for d in DASHBOARDS if d.slug == "patient-starts" for c in d.charts
                 if c.kind == "stacked_bar" and "territory_name" in c.dimensions)
    rows = pa.Table.from_pylist([
        {"brand_code": "FOL", "brand_name": "Folliva", "territory_id": t, "territory_name": n, "region_name": "East",
         "week_ending": __import__("datetime").date(2026, 11, 20), "new_patients": 3, "refills": 1,
         "reversed_fills": 0, "days_supply_dispensed": 90} for t, n in (("T1", "Boston"), (None, None))])
    frame = chart_frame(chart, rows)
    assert sorted(frame["territory_name"]) == ["(not known)", "Boston"]


def test_a_monthly_chart_is_labelled_by_month(tables):
    from fe_platform.lib.dashboards import chart_frame
    from fe_platform.lib.dashboards.preview import _figure

    chart = next(c for d in DASHBOARDS for c in d.charts if c.x == "month_start" and c.kind != "table")
    frame = chart_frame(chart, tables[chart.table])
    months = sorted(frame["month_start"].unique())[-4:]  # four months: a span that weekly ticks would label
    fig = _figure(chart, frame[frame["month_start"].isin(months)])
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[A-Z][a-z]{2} \d{4}", label) for label in labels), labels



def test_a_refresh_draws_again_only_the_charts_whose_values_changed(tmp_path, tables, monkeypatch):
    import os

    from fe_platform.lib.dashboards import preview

    brand = dashboard("brand-performance")
    journal, draw = tmp_path / "drawn", preview._figure

    def drawing(chart, df, note=""):  # in the forked processes that draw: they tell it in a file
        with open(journal, "a") as f:
            f.write(f"{os.getpid()} {chart.title}\n")
        return draw(chart, df, note)

    def drawn() -> list[str]:
        lines = journal.read_text().splitlines() if journal.exists() else []
        journal.unlink(missing_ok=True)
        return sorted(line.split(" ", 1)[1] for line in lines)

    monkeypatch.setattr(preview, "_figure", drawing)
    render_preview(brand, tables, tmp_path, REFRESHED, ALL_PASS)
    drawers = {line.split(" ", 1)[0] for line in journal.read_text().splitlines()}
    if os.cpu_count() > 1:  # drawn side by side, in forked processes
        assert str(os.getpid()) not in drawers and len(drawers) > 1
    assert drawn() == sorted(c.title for c in pictured(brand))
    first = {p.name: p.read_bytes() for p in (tmp_path / brand.slug).glob("chart-*.png")}

    # the same values, a new status: the page says the status, the pictures are the ones drawn before
    page = render_preview(brand, tables, tmp_path, REFRESHED + dt.timedelta(days=1), FAILING).read_text()
    assert drawn() == [] and 'data-level="ERROR"' in page
    assert {p.name: p.read_bytes() for p in (tmp_path / brand.slug).glob("chart-*.png")} == first

    # one measure's values change: the charts that show it are drawn again, and only they
    changed = brand.charts[0].table
    table = tables[changed]
    measure = brand.charts[0].y[0]
    doubled = {**tables, changed: table.set_column(table.column_names.index(measure), measure,
                                                   pc.multiply(table[measure], 2))}
    render_preview(brand, doubled, tmp_path, REFRESHED, ALL_PASS)
    showing = {n: c.title for n, c in enumerate(brand.charts, start=1)
               if c.table == changed and measure in c.y and c.kind != "table"}
    assert drawn() == sorted(showing.values()) and 0 < len(showing) < len(pictured(brand))
    after = {p.name: p.read_bytes() for p in (tmp_path / brand.slug).glob("chart-*.png")}
    assert [name for name in sorted(first) if after[name] != first[name]] == sorted(f"chart-{n}.png" for n in showing)


def test_a_drawing_process_ends_with_the_process_that_forked_it():
    """Guards against a killed run's drawing processes living on: forked, they hold the run's locks (the home's,
    the warehouse's) through the files they inherited, and every later run would find the home busy."""
    import multiprocessing
    import os
    import signal
    import time
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from fe_platform.lib.dashboards import preview

    read, write = os.pipe()
    run = os.fork()
    if run == 0:  # the run's process: it starts a drawing process, says which, and waits to be killed
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                                   initializer=preview._die_with_parent)
        os.write(write, str(pool.submit(os.getpid).result()).encode())
        time.sleep(120)
        os._exit(0)
    os.close(write)
    drawing = int(os.read(read, 64))
    os.close(read)
    os.kill(run, signal.SIGKILL)
    os.waitpid(run, 0)

    def alive() -> bool:
        stat = Path(f"/proc/{drawing}/stat")
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    deadline = time.monotonic() + 30
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        os.kill(drawing, signal.SIGKILL)
        pytest.fail("the drawing process outlived the run that forked it")
