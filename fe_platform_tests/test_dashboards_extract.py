"""Hyper extracts: one per dashboard, one table per reporting table, the right Tableau types."""

from __future__ import annotations

import decimal
import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tableauhyperapi import Connection, SqlType, TableName

from fe_platform.lib.dashboards import DASHBOARDS, ExtractError, dashboard, hyper_type, write_extract
from fe_platform.lib.dashboards.extract import hyper_process

try:
    from fe_platform_tests.test_dashboards_fixtures import empty_tables, fabricate_tables
except ImportError:
    from test_dashboards_fixtures import empty_tables, fabricate_tables


@pytest.fixture(scope="module")
def hyper():
    with hyper_process() as process:
        yield process


@pytest.fixture(scope="module")
def extracts(tmp_path_factory, hyper):
    out = tmp_path_factory.mktemp("extracts")
    tables = fabricate_tables()
    counts = {d.name: write_extract(d, tables, out / f"{d.slug}.hyper", hyper=hyper) for d in DASHBOARDS}
    return out, tables, counts


def _types(conn, table: str) -> dict[str, SqlType]:
    definition = conn.catalog.get_table_definition(TableName("Extract", table))
    return {c.name.unescaped: c.type for c in definition.columns}


def test_type_mapping():
    assert hyper_type(pa.date32())[0] == SqlType.date()
    assert hyper_type(pa.timestamp("us", tz="UTC"))[0] == SqlType.timestamp_tz()
    assert hyper_type(pa.timestamp("ns"))[0] == SqlType.timestamp()
    assert hyper_type(pa.decimal128(18, 2))[0] == SqlType.numeric(18, 2)
    assert hyper_type(pa.decimal128(38, 6))[0] == SqlType.double()
    assert hyper_type(pa.int32())[0] == SqlType.big_int()
    assert hyper_type(pa.bool_())[0] == SqlType.bool()
    assert hyper_type(pa.float32())[0] == SqlType.double()
    assert hyper_type(pa.large_string())[0] == SqlType.text()
    assert hyper_type(pa.dictionary(pa.int8(), pa.string()))[0] == SqlType.text()


def test_every_dashboard_gets_an_extract_with_its_tables(extracts, hyper):
    out, tables, counts = extracts
    for d in DASHBOARDS:
        assert counts[d.name] == {t: tables[t].num_rows for t in d.tables}
        with Connection(hyper.endpoint, str(out / f"{d.slug}.hyper")) as conn:
            assert {n.name.unescaped for n in conn.catalog.get_table_names("Extract")} == set(d.tables)
            for t in d.tables:
                assert conn.execute_scalar_query(f'SELECT COUNT(*) FROM "Extract"."{t}"') == tables[t].num_rows
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{d.slug}.hyper" for d in DASHBOARDS)  # no temp files


def test_extract_totals_and_types_match(extracts, hyper):
    out, tables, _ = extracts
    with Connection(hyper.endpoint, str(out / "brand-performance.hyper")) as conn:
        brand = tables["rpt_brand_weekly"]
        assert conn.execute_scalar_query('SELECT SUM(trx) FROM "Extract"."rpt_brand_weekly"') == \
            pc.sum(brand["trx"]).as_py()
        own = conn.execute_scalar_query(
            'SELECT SUM(trx) FROM "Extract"."rpt_brand_weekly" WHERE is_own_brand')
        assert own == pc.sum(pc.filter(brand["trx"], brand["is_own_brand"])).as_py()
        nulls = conn.execute_scalar_query(
            'SELECT COUNT(*) FROM "Extract"."rpt_brand_weekly" WHERE trx_growth_4wk IS NULL')
        assert nulls == brand["trx_growth_4wk"].null_count > 0
        types = _types(conn, "rpt_brand_weekly")
        assert types["week_ending"] == SqlType.date()
        assert types["trx"] == SqlType.big_int()
        assert types["is_own_brand"] == SqlType.bool()
        assert types["trx_share"] == SqlType.double()
        assert types["brand_name"] == SqlType.text()
    with Connection(hyper.endpoint, str(out / "territory-performance.hyper")) as conn:
        total = conn.execute_scalar_query('SELECT SUM(net_sales_usd) FROM "Extract"."rpt_territory_weekly"')
        expected = sum(tables["rpt_territory_weekly"]["net_sales_usd"].to_pylist(), decimal.Decimal(0))
        assert decimal.Decimal(str(total)) == expected
        assert _types(conn, "rpt_territory_weekly")["net_sales_usd"] == SqlType.numeric(18, 2)
    with Connection(hyper.endpoint, str(out / "data-quality.hyper")) as conn:
        types = _types(conn, "rpt_data_quality")
        assert types["ingested_at"] == SqlType.timestamp_tz()
        assert types["partition_date"] == SqlType.date()
        rejected = conn.execute_scalar_query(
            "SELECT SUM(rejected_files) FROM \"Extract\".\"rpt_data_quality\" WHERE outcome = 'rejected'")
        assert rejected == 3
        first = conn.execute_scalar_query('SELECT MIN(ingested_at) FROM "Extract"."rpt_data_quality"')
        assert first.to_datetime() == min(tables["rpt_data_quality"]["ingested_at"].to_pylist())


def test_empty_tables_give_an_empty_extract(tmp_path, hyper):
    counts = write_extract(dashboard("field_activity"), empty_tables(), tmp_path / "f.hyper", hyper=hyper)
    assert counts == {"rpt_field_activity": 0, "rpt_territory_weekly": 0}
    with Connection(hyper.endpoint, str(tmp_path / "f.hyper")) as conn:
        assert _types(conn, "rpt_field_activity")["month_start"] == SqlType.date()


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(ExtractError, match="rpt_data_quality"):
        write_extract(dashboard("data_quality"), {}, tmp_path / "x.hyper")


def test_rewrite_replaces_atomically_and_leaves_no_litter(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    d = dashboard("market_share")
    path = tmp_path / "out" / "m.hyper"
    write_extract(d, fabricate_tables(), path)  # own Hyper process
    first = path.stat().st_ino
    write_extract(d, fabricate_tables(seed=8), path)
    assert path.stat().st_ino != first  # a new file renamed into place
    assert os.listdir(work) == []  # no hyperd.log in the cwd
    assert [p.name for p in path.parent.iterdir()] == ["m.hyper"]


def test_row_inserter_fallback_when_parquet_is_refused(tmp_path, monkeypatch, hyper):
    from fe_platform.lib.dashboards import extract

    monkeypatch.setattr(extract, "escape_string_literal", lambda s: "'/nonexistent/refused.parquet'")
    tables = fabricate_tables()
    counts = write_extract(dashboard("territory_performance"), tables, tmp_path / "t.hyper", hyper=hyper)
    assert counts == {"rpt_territory_weekly": tables["rpt_territory_weekly"].num_rows}
    with Connection(hyper.endpoint, str(tmp_path / "t.hyper")) as conn:
        total = conn.execute_scalar_query('SELECT SUM(net_sales_usd) FROM "Extract"."rpt_territory_weekly"')
    assert decimal.Decimal(str(total)) == sum(tables["rpt_territory_weekly"]["net_sales_usd"].to_pylist(),
                                              decimal.Decimal(0))
