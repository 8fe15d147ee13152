"""The dbt project as declared (its parsed manifest): the rules every model must keep, checked for all of them.

- reporting reads only marts, marts never read a source, staging reads one source each;
- every share and percentage column of every reporting table carries the `fraction` test (0 to 1);
- every incremental fact names the feed whose deliveries it follows and uses the `latest_delivery` strategy;
- the sources of the pulled feeds have the validated columns coordination.md gives, in order;
- the dashboards' fabricated reporting tables agree with the reporting contracts (names, types, fractions);
- unit test names fit PostgreSQL's 63-character identifiers (dbt names a relation after the test);
- the delivery_dates var is refused unless it maps feeds to lists of real YYYY-MM-DD dates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from fe_platform_tests.test_dashboards_fixtures import fabricate_tables
from fe_platform_tests.test_warehouse_fixtures import PULLED_FEED_SCHEMAS, Dbt, load_all

SHARE = re.compile(r".*_(pct|share|rate)$")
GROWTH = {"trx_growth_4wk"}  # a fraction too, but a change: it may be negative or above 1
CONTRACT_TYPES = {
    "varchar": {pa.string()}, "bigint": {pa.int64()}, "integer": {pa.int32(), pa.int64()},
    "double precision": {pa.float64()}, "date": {pa.date32()}, "boolean": {pa.bool_()},
    "numeric(18,2)": {pa.decimal128(18, 2)}, "timestamp with time zone": {pa.timestamp("us", tz="UTC")},
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    dbt = Dbt("duckdb", {"FE_DUCKDB_PATH": str(tmp_path_factory.mktemp("parse") / "w.duckdb")})
    dbt("parse")
    yield dbt.manifest
    dbt.close()


def models(manifest, layer: str) -> dict:
    return {n.name: n for n in manifest.nodes.values() if n.resource_type == "model" and n.fqn[1] == layer}


def column_tests(manifest) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for node in manifest.nodes.values():
        if node.resource_type == "test" and getattr(node, "test_metadata", None) and node.column_name:
            model = node.attached_node.split(".")[-1]
            out.setdefault((model, node.column_name), set()).add(node.test_metadata.name)
    return out


def test_layer_rule_reporting_reads_marts_and_marts_never_read_sources(manifest):
    layer_of = {n.unique_id: n.fqn[1] for n in manifest.nodes.values() if n.resource_type == "model"}
    reads = {n.name: {layer_of.get(d, d.split(".")[0]) for d in n.depends_on.nodes}
             for n in manifest.nodes.values() if n.resource_type == "model"}
    for name in models(manifest, "reporting"):
        assert reads[name] == {"marts"}, name
    for name in models(manifest, "marts"):
        assert reads[name] <= {"staging", "intermediate", "marts"}, name
    for name, node in models(manifest, "staging").items():
        assert [d.split(".")[0] for d in node.depends_on.nodes] == ["source"], name


def test_every_reporting_share_and_percentage_is_tested_as_a_fraction(manifest):
    tests = column_tests(manifest)
    shares = [(name, column) for name, node in models(manifest, "reporting").items() for column in node.columns
              if SHARE.fullmatch(column) and column not in GROWTH]
    assert {("rpt_brand_weekly", "trx_share"), ("rpt_territory_weekly", "reach_pct"),
            ("rpt_data_quality", "quarantine_pct")} <= set(shares)
    assert [s for s in shares if "fraction" not in tests.get(s, set())] == []
    fractions = [key for key, names in tests.items() if "fraction" in names]
    assert sorted(fractions) == sorted(shares)  # and nothing else is held to [0, 1]


def test_every_incremental_fact_follows_a_feed_with_the_latest_delivery_strategy(manifest):
    incremental = {n.name: n for n in manifest.nodes.values()
                   if n.resource_type == "model" and n.config.materialized == "incremental"}
    assert set(incremental) == {"fct_rx_weekly", "fct_billing_line", "fct_dispense", "fct_hcp_engagement"}
    feeds = {name: n.config.meta["fe_platform"]["delivery_feed"] for name, n in incremental.items()}
    assert feeds == {"fct_rx_weekly": "iqvia_rx", "fct_billing_line": "sap_billing",
                     "fct_dispense": "sp_dispense", "fct_hcp_engagement": "hcp_engagement"}
    assert {n.config.incremental_strategy for n in incremental.values()} == {"latest_delivery"}


@pytest.mark.parametrize("feed", sorted(PULLED_FEED_SCHEMAS))
def test_pulled_feed_sources_have_the_validated_columns(manifest, feed):
    source = manifest.sources[f"source.fe_platform.lake.{feed}"]
    assert list(source.columns) == PULLED_FEED_SCHEMAS[feed].names


def test_dashboard_fixtures_agree_with_the_reporting_contracts(manifest):
    reporting = models(manifest, "reporting")
    tests = column_tests(manifest)
    for name, table in fabricate_tables().items():
        contract = reporting[name].columns
        assert table.column_names == list(contract), name
        for field in table.schema:
            assert field.type in CONTRACT_TYPES[contract[field.name].data_type.replace(", ", ",")], (name, field)
            if "fraction" in tests.get((name, field.name), set()):
                values = [v for v in table.column(field.name).to_pylist() if v is not None]
                assert values and 0 <= min(values) <= max(values) <= 1, (name, field.name)


def test_unit_test_names_fit_postgres_identifiers(manifest):
    names = [t.name for t in manifest.unit_tests.values()]
    assert len(names) >= 16
    assert [n for n in names if len(n) > 63] == []


REFUSED_DELIVERY_DATES = [
    ({"iqvia_rx": ["2026-11-20' or 1=1 --"]}, "not a date YYYY-MM-DD"),
    ({"iqvia_rx": ["2026-02-30"]}, "not a date YYYY-MM-DD"),
    ({"iqvia_rx": ["20261120"]}, "not a date YYYY-MM-DD"),
    ({"iqvia_rx": "2026-11-20"}, "must be a list of dates"),
    (["2026-11-20"], "must map a feed to a list of dates"),
]


def test_delivery_dates_are_refused_unless_real_dates(tmp_path):
    """The dates are inlined in SQL: anything but a list of real YYYY-MM-DD dates per feed stops the run."""
    from fe_platform.lib.warehouse import DuckDBWarehouse

    path = tmp_path / "w.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_all(wh)
    dbt = Dbt("duckdb", {"FE_DUCKDB_PATH": str(path)})
    try:
        dbt("run", "--select", "+fct_rx_weekly")  # the fact exists, so the next compile is incremental
        compiled = dbt("compile", "--select", "fct_rx_weekly", "--vars",
                       json.dumps({"delivery_dates": {"iqvia_rx": ["2026-11-20", "2026-11-13"]}}))
        assert "in (cast('2026-11-13' as date), cast('2026-11-20' as date))" in compiled.stdout
        for value, error in REFUSED_DELIVERY_DATES:
            with pytest.raises(AssertionError, match=re.escape(error)):
                dbt("compile", "--select", "fct_rx_weekly", "--vars", json.dumps({"delivery_dates": value}))
    finally:
        dbt.close()


def test_the_window_in_the_environment_compiles_into_the_facts_without_parsing_again(tmp_path):
    """Dagster passes the facts' window in FE_DBT_DELIVERY_DATES: another window at each run, and dbt keeps its
    partial parse (another --vars at each run made it parse the whole project again, seconds per refresh)."""
    import os
    import subprocess
    import sys

    from fe_platform.lib.warehouse import DuckDBWarehouse
    from fe_platform.settings import PROJECT_ROOT

    path = tmp_path / "w.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_all(wh)

    def dbt(*args: str, window: dict | None = None) -> str:
        env = {**os.environ, "FE_WAREHOUSE": "duckdb", "FE_DUCKDB_PATH": str(path),
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "FE_DBT_DELIVERY_DATES": json.dumps(window or {})}
        done = subprocess.run([str(Path(sys.executable).parent / "dbt"), *args,
                               "--project-dir", str(PROJECT_ROOT / "dbt_project"), "--profiles-dir",
                               str(PROJECT_ROOT / "dbt_project"), "--target-path", str(tmp_path / "target")],
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    dbt("run", "--select", "+fct_rx_weekly")  # the fact exists, so the next compile is incremental
    second = dbt("compile", "--select", "fct_rx_weekly", window={"iqvia_rx": ["2026-11-20"]})
    assert "in (cast('2026-11-20' as date))" in second
    third = dbt("compile", "--select", "fct_rx_weekly", window={"iqvia_rx": ["2026-11-13", "2026-11-20"]})
    assert "in (cast('2026-11-13' as date), cast('2026-11-20' as date))" in third
    assert "Unable to do partial parsing" not in second + third


def test_dashboard_fixtures_follow_the_warehouse_definitions():
    """The fabricated tables hold what the models compute: the dashboards are tested on true shapes."""
    tables = {name: t.to_pylist() for name, t in fabricate_tables().items()}
    for row in tables["rpt_data_quality"]:
        expected = row["rows_quarantined"] / row["rows_in"] if row["rows_in"] else None
        assert row["quarantine_pct"] == expected, row
    by_brand: dict[str, list[dict]] = {}
    for row in sorted(tables["rpt_brand_weekly"], key=lambda r: r["week_ending"]):
        by_brand.setdefault(row["brand_code"], []).append(row)
    for rows in by_brand.values():
        for i, row in enumerate(rows):
            assert row["trx_share"] == row["trx"] / row["market_trx"]
            assert row["trx_4wk"] == (sum(r["trx"] for r in rows[i - 3: i + 1]) if i >= 3 else None)
    for row in tables["rpt_field_activity"]:
        assert row["call_frequency"] == row["calls_total"] / row["hcps_reached"]
    for row in tables["rpt_territory_weekly"]:
        assert row["reach_pct"] == row["hcps_reached"] / row["hcps_with_own_trx_13wk"]


def test_no_yaml_file_of_the_project_repeats_a_key():
    """YAML keeps the last of two equal keys without a word: a second `config:` would hide the first."""
    import collections

    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k) for k, _ in node.value]
        repeated = [k for k, n in collections.Counter(keys).items() if n > 1]
        assert not repeated, f"{node.start_mark}: {repeated} repeated"
        return loader.construct_mapping(node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    project = Path(__file__).parent.parent / "dbt_project"
    files = [project / "dbt_project.yml", *sorted((project / "models").rglob("*.yml"))]
    assert len(files) > 5
    for path in files:
        yaml.load(path.read_text(), Loader=Strict)
