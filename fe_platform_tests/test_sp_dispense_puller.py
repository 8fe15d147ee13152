"""The sp_dispense puller against a real PostgreSQL: the tests' throwaway cluster, its `dispense` table
filled by the generator (every version of every dispense: late updates and reversals included)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.sources import sp_dispense
from fe_platform.lib.sources.landing import PullError
from fe_platform.sample_data.generator import generate
from fe_platform.sample_data.pulled_feeds import fill_dispense_table
from fe_platform.settings import load_settings
from fe_platform_tests import postgres_cluster
from fe_platform_tests.test_puller_defs import puller_defs

pytestmark = pytest.mark.postgres
END = date(2026, 11, 20)
READER_PASSWORD = "reader-pw-Kq81x"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(cluster, generated lake, manifest, the read-only user's conninfo)."""
    assert postgres_cluster.available(), "PostgreSQL 15 is required: .ci/run installs postgresql-15"
    generated = LocalLake(tmp_path_factory.mktemp("generated"))
    manifest = generate(generated, END, weeks=3, hcps=500, seed=5, defect_rate=0.02, feeds=("sp_dispense",))
    with postgres_cluster.PostgresCluster() as pg:
        with psycopg.connect(**pg.conninfo()) as conn:
            conn.execute("create schema hub")
            fill_dispense_table(conn, generated, [f["key"] for f in manifest["files"]])
            fill_dispense_table(conn, generated, [f["key"] for f in manifest["files"]], table="hub.dispense")
            conn.execute("create table hub.ungranted (like dispense)")
        pg.superuser_sql(f"create role reader login password '{READER_PASSWORD}'",
                         "grant select on dispense to reader", "grant usage on schema hub to reader",
                         "grant select on hub.dispense to reader", database=pg.database)
        yield pg, generated, manifest, pg.conninfo(user="reader", password=READER_PASSWORD)


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def days(manifest) -> list[date]:
    return sorted(date.fromisoformat(f["partition"]) for f in manifest["files"])


def pull(lake, conninfo, day, **kw):
    kw.setdefault("sleep", Sleeps())
    return sp_dispense.pull_sp_dispense(lake, conninfo, day, **kw)


def test_the_table_holds_late_updates_and_reversals(source):
    pg, _, manifest, _ = source
    with psycopg.connect(**pg.conninfo()) as conn:
        versions = conn.execute("select count(*) from (select dispense_id from dispense where dispense_id > 0 "
                                "group by dispense_id having count(distinct updated_at) > 1) v").fetchone()[0]
        reversed_ = conn.execute("select count(*) from dispense where status = 'REVERSED'").fetchone()[0]
        total = conn.execute("select count(*) from dispense").fetchone()[0]
    assert versions > 0 and reversed_ > 0
    assert total == sum(f["rows"] for f in manifest["files"])


def test_every_day_lands_exactly_the_generated_file(source, lake):
    _, generated, manifest, reader = source
    for f in manifest["files"]:
        result = pull(lake, reader, date.fromisoformat(f["partition"]))
        assert (result.key, result.rows, result.changed) == (f["key"], f["rows"], True)
        assert lake.read_bytes(f["key"]) == generated.read_bytes(f["key"]), f["key"]
    assert sorted(o.key for o in lake.list("landing/")) == sorted(f["key"] for f in manifest["files"])


def test_rows_stream_in_batches_through_a_server_side_cursor(source, lake):
    pg, _, manifest, reader = source
    day = max(days(manifest), key=lambda d: next(f["rows"] for f in manifest["files"] if f["partition"] == str(d)))
    rows = next(f["rows"] for f in manifest["files"] if f["partition"] == day.isoformat())
    seen, queries = [], []
    with psycopg.connect(**pg.conninfo(), autocommit=True) as admin:
        def progress(done: int) -> None:
            seen.append(done)
            queries.append(admin.execute("select query from pg_stat_activity where application_name = %s",
                                         (sp_dispense.APPLICATION_NAME,)).fetchone()[0])

        pull(lake, reader, day, batch_rows=3, progress=progress)
    assert seen == [min(rows, 3 * (i + 1)) for i in range(-(-rows // 3))]
    assert all(q.startswith('FETCH FORWARD 3 FROM "sp_dispense_pull"') for q in queries), queries[:2]


def test_an_unchanged_re_pull_writes_nothing_and_a_late_commit_fails_the_count(source, lake):
    pg, _, manifest, reader = source
    day = days(manifest)[3]
    first = pull(lake, reader, day, table="hub.dispense")
    before = next(lake.list("landing/")).modified
    again = pull(lake, reader, day, table="hub.dispense")
    assert (again.rows, again.changed) == (first.rows, False)
    assert next(lake.list("landing/")).modified == before
    with sp_dispense.connect(reader) as conn:
        assert sp_dispense.source_count(conn, day, "hub.dispense") == first.rows == sp_dispense.landed_rows(lake, day)
    with psycopg.connect(**pg.conninfo()) as conn:  # a transaction stamped late on the day commits after the pull
        conn.execute("insert into hub.dispense select dispense_id + 1, pharmacy_ncpdp, patient_token, prescriber_npi,"
                     " ndc11, dispense_date, fill_type, quantity, days_supply, payer_type, copay_usd, status, "
                     "%s from hub.dispense where dispense_id > 0 limit 1",
                     (datetime(day.year, day.month, day.day, 23, 59, 59, 500000, tzinfo=UTC),))
    with sp_dispense.connect(reader) as conn:
        assert sp_dispense.source_count(conn, day, "hub.dispense") == first.rows + 1
    third = pull(lake, reader, day, table="hub.dispense")
    assert (third.rows, third.changed) == (first.rows + 1, True)
    assert sp_dispense.landed_rows(lake, day) == first.rows + 1


def test_a_connection_lost_mid_pull_is_retried_from_scratch(source, lake):
    pg, generated, manifest, reader = source
    f = max(manifest["files"], key=lambda f: f["rows"])
    sleeps = Sleeps()
    killed = threading.Event()

    def kill_once(_done: int) -> None:
        if not killed.is_set():
            killed.set()
            with psycopg.connect(**pg.conninfo(), autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
                              (sp_dispense.APPLICATION_NAME,))

    result = pull(lake, reader, date.fromisoformat(f["partition"]), batch_rows=2, progress=kill_once, sleep=sleeps,
                  backoff=0.5)
    assert killed.is_set() and sleeps == [0.5]
    assert result.rows == f["rows"] and lake.read_bytes(f["key"]) == generated.read_bytes(f["key"])


def test_a_down_source_fails_after_bounded_retries_and_writes_nothing(lake):
    port = postgres_cluster.free_port()
    conninfo = {"host": "127.0.0.1", "port": port, "dbname": "hub", "user": "reader", "password": "s3cret-pw"}
    sleeps = Sleeps()
    with pytest.raises(PullError) as info:
        pull(lake, conninfo, END, attempts=3, sleep=sleeps, connect_timeout=2)
    message = str(info.value)
    assert f"postgresql://reader@127.0.0.1:{port}/hub" in message and "after 3 attempts" in message
    assert "Connection refused" in message and "s3cret-pw" not in message
    assert sleeps == [1.0, 2.0]
    assert list(lake.list("")) == []


def test_a_refusal_fails_at_once_without_the_password(source, lake):
    _, _, manifest, reader = source
    sleeps = Sleeps()
    with pytest.raises(PullError, match="password authentication failed.*not retried") as info:
        pull(lake, dict(reader, password="wrong-password-123"), days(manifest)[0], sleep=sleeps)
    assert "wrong-password-123" not in str(info.value) and READER_PASSWORD not in str(info.value)
    with pytest.raises(PullError, match=r'relation "nope" does not exist.*not retried'):
        pull(lake, reader, days(manifest)[0], table="nope", sleep=sleeps)
    with pytest.raises(PullError, match="permission denied"):  # the reader may not read what it was not granted
        pull(lake, reader, days(manifest)[0], table="hub.ungranted", sleep=sleeps)
    assert sleeps == [] and list(lake.list("")) == []


def test_a_day_without_rows_writes_no_file(source, lake):
    _, _, manifest, reader = source
    saturday = next(d for d in range_days(days(manifest)) if d.weekday() == 5)
    assert pull(lake, reader, saturday) == sp_dispense.PullResult(None, 0, False)
    assert list(lake.list("")) == [] and sp_dispense.landed_rows(lake, saturday) is None


def range_days(known: list[date]) -> list[date]:
    return [date.fromordinal(n) for n in range(known[0].toordinal(), known[-1].toordinal() + 1)]


def test_the_query_quotes_identifiers_and_binds_the_window():
    query = sp_dispense.day_query("hub.dispense; drop table x").as_string(None)
    assert 'from "hub"."dispense; drop table x" where "updated_at" >= %s and "updated_at" < %s' in query
    with pytest.raises(ValueError):
        sp_dispense.day_query("a.b.c")


# --- Dagster ---------------------------------------------------------------------------------------

def settings_for(pg, tmp_path, **extra):
    env = {"FE_HOME": str(tmp_path / "home"), "FE_SP_DISPENSE_HOST": pg.host, "FE_SP_DISPENSE_PORT": str(pg.port),
           "FE_SP_DISPENSE_DATABASE": pg.database, "FE_SP_DISPENSE_USER": "reader",
           "FE_SP_DISPENSE_PASSWORD": READER_PASSWORD, **extra}
    return load_settings(env)


def checks_only(defs, partition: str):
    """The run the recheck schedule asks for: the pull job with no asset and only the check selected."""
    tick = dg.build_schedule_context(repository_def=defs.get_repository_def(), scheduled_execution_time=(
        datetime.fromisoformat(partition + "T02:15:00+00:00") + timedelta(days=2)))
    (request,) = defs.resolve_schedule_def("recheck_sp_dispense_daily").evaluate_tick(tick).run_requests
    assert request.partition_key == partition and request.asset_selection == []
    return defs.resolve_job_def("landing_sp_dispense_job").get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys))


def check_passed(result, name="source_count_matches") -> tuple[bool, dict]:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation.passed, evaluation.metadata


def test_asset_pulls_a_partition_with_its_check_and_recheck_catches_a_late_commit(source, tmp_path):
    pg, generated, manifest, _ = source
    settings = settings_for(pg, tmp_path, FE_SP_DISPENSE_TABLE="hub.dispense")
    defs = puller_defs(settings)
    f = manifest["files"][5]
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("landing_sp_dispense_job").execute_in_process(
            instance=instance, partition_key=f["partition"])
        assert result.success
        (materialization,) = result.asset_materializations_for_node("landing_sp_dispense")
        assert materialization.metadata["rows"].value == f["rows"]
        assert materialization.metadata["landing_key"].value == f["key"]
        assert READER_PASSWORD not in str(materialization.metadata)
        passed, meta = check_passed(result)
        assert passed and meta["source_rows"].value == meta["landed_rows"].value == f["rows"]
        assert lake_from_settings(settings).read_bytes(f["key"]) == generated.read_bytes(f["key"])

        day = date.fromisoformat(f["partition"])
        with psycopg.connect(**pg.conninfo()) as conn:
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            conn.execute("insert into hub.dispense (dispense_id, updated_at, status) values (99999999, %s, 'NEW')",
                         (noon,))
        recheck = checks_only(defs, f["partition"]).execute_in_process(instance=instance,
                                                                          partition_key=f["partition"])
        passed, meta = check_passed(recheck)
        assert not passed and meta["difference"].value == 1
        assert recheck.asset_materializations_for_node("landing_sp_dispense") == []  # a check, not a pull

        again = defs.resolve_job_def("landing_sp_dispense_job").execute_in_process(
            instance=instance, partition_key=f["partition"])
        assert check_passed(again)[0]


def test_a_refused_source_fails_the_run_clearly(source, tmp_path):
    pg, _, manifest, _ = source
    settings = settings_for(pg, tmp_path, FE_SP_DISPENSE_PASSWORD="not-the-password")
    result = puller_defs(settings).resolve_job_def("landing_sp_dispense_job").execute_in_process(
        partition_key=manifest["files"][0]["partition"], raise_on_error=False)
    assert not result.success
    error = result.failure_data_for_node("landing_sp_dispense").error.message
    assert f"postgresql://reader@{pg.host}:{pg.port}/{pg.database}" in error and "password authentication" in error
    assert "not-the-password" not in error


def test_schedules_pull_the_day_before_and_recheck_the_day_before_that(source, tmp_path):
    pg, _, _, _ = source
    defs = puller_defs(settings_for(pg, tmp_path))
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 2, tzinfo=UTC),
                                     repository_def=defs.get_repository_def())
    pull_schedule = defs.resolve_schedule_def("landing_sp_dispense_daily")
    recheck = defs.resolve_schedule_def("recheck_sp_dispense_daily")
    assert [r.partition_key for r in pull_schedule.evaluate_tick(tick).run_requests] == ["2026-11-20"]
    (request,) = recheck.evaluate_tick(tick).run_requests
    assert request.partition_key == "2026-11-19" and request.asset_selection == []
    assert request.asset_check_keys == [dg.AssetCheckKey(dg.AssetKey("landing_sp_dispense"), "source_count_matches")]
    assert (pull_schedule.cron_schedule, pull_schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert pull_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    stopped = puller_defs(load_settings({"FE_HOME": str(tmp_path / "none")}))
    assert stopped.resolve_schedule_def("landing_sp_dispense_daily").default_status == \
        dg.DefaultScheduleStatus.STOPPED
