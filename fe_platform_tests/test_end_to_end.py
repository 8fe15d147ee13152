"""The whole platform through Dagster on the embedded default: generated feeds in landing, then
`fe-platform run` (ingestion runs, warehouse loads, dbt, dashboards), then a new delivery that makes
the dashboards stale and a second run that refreshes them."""

import io
import json
import re
from datetime import date, datetime

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from tableauhyperapi import Connection

from fe_platform.definitions import build_definitions
from fe_platform.defs.ingestion.sensors import FEED_TAG
from fe_platform.defs.resources import lake_from_settings
from fe_platform.defs.warehouse.project import prepare_manifest
from fe_platform.lib.dashboards import load_reporting_tables
from fe_platform.lib.dashboards.declarations import DASHBOARDS
from fe_platform.lib.dashboards.extract import hyper_process
from fe_platform.lib.delivery_log import read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.zones import committed_partitions, read_partition
from fe_platform.runner import dagster_instance, load_cursor, run_platform
from fe_platform.runner.execution import Runner
from fe_platform.runner.planning import with_downstream
from fe_platform.runner.side_by_side import run_slots
from fe_platform.sample_data.generator import generate
from fe_platform.settings import load_settings

END = date(2026, 11, 13)
NEW_DELIVERY = "landing/iqvia_rx/RXDYN_WEEKLY_20261120.txt"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    settings = load_settings({"FE_HOME": str(home)})
    lake = lake_from_settings(settings)
    manifest = generate(lake, END, weeks=2, hcps=80, seed=5, defect_rate=0.02)
    lines: list[str] = []
    summary = run_platform(settings, lines.append)
    return settings, lake, manifest, summary, lines


def sql(settings, query: str):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(query).fetchall()


def test_first_run_succeeds_and_materializes_every_asset(platform):
    settings, _, _, summary, lines = platform
    assert summary.ok, summary.failed_runs
    instance = dagster_instance(settings)
    graph = build_definitions(settings).resolve_asset_graph()
    never = [k.to_user_string() for k in graph.get_all_asset_keys()
             if not k.to_user_string().startswith("landing_")
             and not instance.fetch_materializations(k, limit=1).records]
    assert never == []
    assert any("rejected" in line for line in lines)  # the generated file-level defects were reported


def test_feeds_are_ingested_side_by_side_and_after_their_reference_data(platform):
    settings, *_ = platform
    instance = dagster_instance(settings)
    if run_slots(instance) < 2:
        pytest.skip("one core: runs go one at a time")  # CI's machines have two
    runs = {}
    for record in instance.get_run_records(dg.RunsFilter(tags={FEED_TAG: list(FEEDS)})):
        feed = record.dagster_run.tags[FEED_TAG]
        first, last = runs.get(feed, (record.start_time, record.end_time))
        runs[feed] = (min(first, record.start_time), max(last, record.end_time))
    assert set(runs) == set(FEEDS)
    overlapping = [(a, b) for a in runs for b in runs if a < b
                   and runs[a][0] < runs[b][1] and runs[b][0] < runs[a][1]]
    assert overlapping, runs
    for feed in FEEDS.values():
        for reference in feed.reference_feeds:
            assert runs[reference][1] <= runs[feed.name][0], (reference, feed.name)


def test_every_delivery_has_the_outcome_the_manifest_expects(platform):
    _, lake, manifest, _, _ = platform
    outcomes = {r.landing_key: r.outcome for r in read_delivery_log(lake)}
    assert outcomes == {f["key"]: f["expected"] for f in manifest["files"]}


def test_the_outbox_tells_every_rejected_file_and_failed_error_check_to_its_owners(platform):
    from fe_platform.lib.alerts.outbox import read_outbox
    from fe_platform.lib.alerts.routing import owner_teams

    settings, lake, _, _, _ = platform
    alerts = [alert for _, alert in read_outbox(settings.home / "outbox")]
    graph = build_definitions(settings).resolve_asset_graph()
    for alert in alerts:
        assert alert["team"] in owner_teams(graph.get(dg.AssetKey.from_user_string(alert["asset"])).owners), alert
    rejected = {r.landing_key.rsplit("/", 1)[-1] for r in read_delivery_log(lake) if r.outcome == "rejected"}
    assert rejected and {a["check"].split("@")[0] for a in alerts if a["kind"] == "delivery_rejected"} == rejected
    instance = dagster_instance(settings)
    failed_error = {
        (key.asset_key.to_user_string(), key.name, record.partition)
        for key in graph.asset_check_keys
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
        if record.status.value == "FAILED" and record.evaluation.severity == dg.AssetCheckSeverity.ERROR}
    assert failed_error and {(a["asset"], a["check"], a["partition"]) for a in alerts
                             if a["kind"] == "check_failed"} == failed_error


def test_warehouse_holds_every_validated_row(platform):
    settings, lake, _, _, _ = platform
    for feed in ("iqvia_rx", "sap_billing", "sfdc_call", "fx_rates"):
        validated = sum(read_partition(lake, "validated", feed, p).num_rows for p in committed_partitions(lake, feed))
        assert sql(settings, f'select count(*) from lake."{feed}"')[0][0] == validated, feed


def latest_delivery_totals(lake) -> int:
    """TRx by hand: for every key, the value of the latest delivery that holds it."""
    rows = pa.concat_tables([read_partition(lake, "validated", "iqvia_rx", p)
                             for p in committed_partitions(lake, "iqvia_rx")])
    frame = rows.to_pandas().sort_values("_data_date")
    key = ["prescriber_id", "ndc11", "week_ending", "payer_type", "channel"]
    return int(frame.drop_duplicates(key, keep="last")["trx"].sum())


def test_facts_and_reporting_follow_the_latest_delivery(platform):
    settings, lake, _, _, _ = platform
    expected = latest_delivery_totals(lake)
    assert sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0] == expected
    reported = sql(settings, "select sum(trx) from reporting.rpt_brand_weekly")[0][0]
    unknown_products = sql(settings, "select coalesce(sum(trx), 0) from marts.fct_rx_weekly f left join "
                                     "marts.dim_product p using (product_key) where p.product_key is null")[0][0]
    assert reported + unknown_products == expected


def built_dashboards() -> list:
    """The declared dashboards whose reporting tables the dbt project builds (all, once issue 12's are in)."""
    reporting = load_reporting_tables(prepare_manifest())
    built = [d for d in DASHBOARDS if all(t in reporting for t in d.tables)]
    assert len(built) >= 5
    return built


def hyper_rows(path, table: str) -> tuple[int, float]:
    with hyper_process() as hyper, Connection(hyper.endpoint, str(path)) as conn:
        count = conn.execute_scalar_query(f'SELECT COUNT(*) FROM "Extract"."{table}"')
        total = conn.execute_scalar_query(f'SELECT SUM("trx") FROM "Extract"."{table}"')
    return count, float(total or 0)


def test_dashboards_have_extracts_matching_reporting_and_previews(platform):
    settings, lake, _, _, _ = platform
    count, total = hyper_rows(lake.path("dashboards/brand-performance.hyper"), "rpt_brand_weekly")
    assert (count, total) == (sql(settings, "select count(*) from reporting.rpt_brand_weekly")[0][0],
                              float(sql(settings, "select sum(trx) from reporting.rpt_brand_weekly")[0][0]))
    index = (settings.dashboards_dir / "index.html").read_text()
    instance = dagster_instance(settings)
    for dashboard in built_dashboards():
        assert lake.exists(f"dashboards/{dashboard.slug}.hyper")
        assert f'href="{dashboard.slug}.html"' in index
        event = instance.get_latest_materialization_event(dg.AssetKey(["dashboards", dashboard.slug]))
        preview = event.asset_materialization.metadata["preview"].value
        assert preview == str(settings.dashboards_dir / f"{dashboard.slug}.html")
        assert "<img" in (settings.dashboards_dir / f"{dashboard.slug}.html").read_text()


def restated_delivery(lake) -> bytes:
    """The latest IQVIA delivery's valid rows again, every TRx one higher: a restatement."""
    latest = committed_partitions(lake, "iqvia_rx")[-1]
    table = read_partition(lake, "validated", "iqvia_rx", latest).select(FEEDS["iqvia_rx"].source_columns)
    table = table.set_column(table.column_names.index("trx"), "trx", pc.add(table["trx"], 1))
    out = io.BytesIO()
    pcsv.write_csv(table, out, pcsv.WriteOptions(delimiter="|", quoting_style="none"))
    return out.getvalue()


def test_a_new_delivery_makes_dashboards_stale_and_run_refreshes_them(platform):
    settings, lake, _, _, _ = platform
    instance = dagster_instance(settings)
    defs = build_definitions(settings)
    dashboard = dg.AssetKey(["dashboards", "brand-performance"])
    before = instance.get_latest_materialization_event(dashboard).timestamp
    fact_before = sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0]

    lake.put_bytes(restated_delivery(lake), NEW_DELIVERY)
    runner = Runner(settings, defs, instance, echo=lambda _: None)
    runner.ingest()
    assert runner.summary.ok and "validated_iqvia_rx" in runner.summary.materialized
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=load_cursor(settings))
    graph = defs.resolve_asset_graph()
    requested = {k: set(result.get_requested_partitions(k)) for k in graph.get_all_asset_keys()
                 if result.get_num_requested(k)}
    assert requested[dg.AssetKey(["warehouse", "lake", "iqvia_rx"])] == {"2026-11-20"}
    stale = with_downstream(graph, requested)
    assert dashboard in stale and dg.AssetKey(["marts", "fct_rx_weekly"]) in stale
    # (the requests above are only looked at; the run below asks the same conditions afresh)

    second = run_platform(settings, lambda _: None)
    assert second.ok, second.failed_runs
    assert instance.get_latest_materialization_event(dashboard).timestamp > before
    assert sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0] == latest_delivery_totals(lake)
    assert sql(settings, "select sum(trx) from marts.fct_rx_weekly")[0][0] > fact_before
    status = json.loads((settings.dashboards_dir / "brand-performance.status.json").read_text())
    assert datetime.fromisoformat(status["refreshed_at"]).timestamp() > before

    third = run_platform(settings, lambda _: None)
    assert third.ok and third.runs == 0  # nothing new landed: nothing is stale


def test_nothing_new_is_not_evaluated_again_but_a_wiped_dashboard_is_rebuilt(platform, monkeypatch):
    from fe_platform.defs.warehouse import automation

    settings, _, _, _, _ = platform
    instance = dagster_instance(settings)
    evaluated = []
    evaluate = automation.evaluate
    monkeypatch.setattr(automation, "evaluate", lambda *a: evaluated.append(1) or evaluate(*a))
    assert run_platform(settings, lambda _: None).runs == 0 and run_platform(settings, lambda _: None).runs == 0
    assert evaluated == []  # the last evaluation asked for nothing, and nothing happened since

    dashboard = dg.AssetKey(["dashboards", "market-share"])
    instance.wipe_assets([dashboard])  # deletes its events, writes none
    rebuilt = run_platform(settings, lambda _: None)
    assert rebuilt.ok and rebuilt.runs == 1 and evaluated
    assert instance.get_latest_materialization_event(dashboard) is not None


def latest_results_by_hand(instance, graph) -> dict[str, str]:
    """Every check's worst level over the latest completed evaluation of each partition, from its full history."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as S

    worst = {}
    for key in graph.asset_check_keys:
        latest = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100_000):
            if record.status in (S.SUCCEEDED, S.FAILED) and record.partition not in latest:  # newest first
                latest[record.partition] = record.evaluation
        levels = {"OK" if e.passed else e.severity.value for e in latest.values()}
        if levels - {"OK"}:
            worst[key.to_user_string()] = "ERROR" if "ERROR" in levels else "WARN"
    return worst


def test_pages_and_index_name_every_check_that_did_not_pass(platform):
    settings, _, _, _, _ = platform
    instance = dagster_instance(settings)
    graph = build_definitions(settings).resolve_asset_graph()
    failing = latest_results_by_hand(instance, graph)
    assert failing, "the generated defects fail some checks"
    index = (settings.dashboards_dir / "index.html").read_text()
    named = dict(re.findall(r'data-check="([^"]+)" data-level="(\w+)"', index.split('id="failing-checks"')[1]))
    assert named == failing  # every dashboard sits on every feed, so the index names them all
    for dashboard in built_dashboards():
        status = json.loads((settings.dashboards_dir / f"{dashboard.slug}.status.json").read_text())
        expected = "ERROR" if "ERROR" in failing.values() else "WARN"
        assert status["quality"]["level"] == expected and status["quality_status"] != "OK"


def test_a_run_that_only_rejects_files_still_reaches_data_quality_reporting(platform):
    settings, lake, _, _, _ = platform
    lake.put_bytes(b"not a delivery", "landing/sfdc_call/SFDC_CALL_2026-11-16.csv")  # rejected for its name
    lake.put_bytes(b"", "landing/product_master/PRODUCT_MASTER_20261116.csv")  # rejected for being empty
    summary = run_platform(settings, lambda _: None)
    assert summary.ok, summary.failed_runs
    records = read_delivery_log(lake)
    assert sql(settings, "select count(*) from lake.deliveries")[0][0] == len(records)
    rejected = sql(settings, "select count(*) from reporting.rpt_data_quality where outcome = 'rejected' "
                             "and landing_key in ('landing/sfdc_call/SFDC_CALL_2026-11-16.csv', "
                             "'landing/product_master/PRODUCT_MASTER_20261116.csv')")[0][0]
    assert rejected == 2


def test_the_summary_counts_the_rows_of_tables_and_names_the_views(platform):
    """Counting a view runs its query (the staging layer is views over the lake): the summary counts tables."""
    from fe_platform.defs.resources import warehouse_from_settings
    from fe_platform.runner import warehouse_lines

    settings = platform[0]
    lines = warehouse_lines(settings, warehouse_from_settings(settings))
    by_layer = {line.split()[0]: line.split()[1:] for line in lines}
    views = sql(settings, "select count(*) from information_schema.tables "
                          "where table_schema = 'staging' and table_type = 'VIEW'")[0][0]
    assert views > 0 and by_layer["staging"] == [str(views), "views"]
    tables = sql(settings, "select table_name from information_schema.tables "
                           "where table_schema = 'lake' and table_type = 'BASE TABLE'")
    rows = sum(sql(settings, f'select count(*) from lake."{name}"')[0][0] for (name,) in tables)
    assert by_layer["lake"] == [f"{rows:,}", "rows", "in", str(len(tables)), "tables"]


def test_the_summary_counts_again_once_the_warehouse_file_changed(platform, monkeypatch):
    from fe_platform.defs.resources import warehouse_from_settings
    from fe_platform.runner import warehouse_lines

    settings = platform[0]
    target = warehouse_from_settings(settings)
    before = warehouse_lines(settings, target)
    opened = []
    connect = type(target).connect
    monkeypatch.setattr(type(target), "connect", lambda self: opened.append(1) or connect(self))
    assert warehouse_lines(settings, target) == before and opened == []  # the same file: not opened again

    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create table marts.summary_probe as select 1 as one")
    try:
        after = warehouse_lines(settings, target)

        def marts_tables(lines) -> int:
            return int(next(line for line in lines if line.split()[0] == "marts").split()[-2])

        assert opened and marts_tables(after) == marts_tables(before) + 1
    finally:
        with duckdb.connect(str(settings.duckdb_path)) as con:
            con.execute("drop table marts.summary_probe")
