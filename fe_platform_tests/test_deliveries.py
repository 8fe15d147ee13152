"""What a delivery is, and what survives a crash: corrections under the same name, links, a partition
committed as one step, append partitions, JSON lines (issues 10 and 12)."""

import gzip
import json
import os
import time
from datetime import timedelta

import pytest

from fe_platform.lib import zones
from fe_platform.lib.delivery_log import LogIndex, read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_delivery, ingest_landing_file, revalidate_partition
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.planning import batches, plan_landing
from fe_platform.lib.zones import current_version, read_partition
from fe_platform_tests.test_ingestion import KEY, delimited, iqvia_rows, land
from fe_platform_tests.test_rules import CLEAN

TODAY = __import__("datetime").date(2026, 11, 30)


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def entry(lake, key):
    return next(o for o in lake.list(key.rsplit("/", 1)[0] + "/") if o.key == key)


def test_a_corrected_file_under_the_same_name_is_a_new_delivery(lake):
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    assert ingest_landing_file(lake, key, KEY).rows_valid == 3
    assert plan_landing(lake, FEEDS["iqvia_rx"], LogIndex.of(lake, "iqvia_rx"), TODAY).new == []
    time.sleep(0.01)  # a new mtime, as a real re-delivery has
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(2, trx="8")))
    plan = plan_landing(lake, FEEDS["iqvia_rx"], LogIndex.of(lake, "iqvia_rx"), TODAY)
    assert [o.key for o in plan.new] == [key]
    record = ingest_landing_file(lake, key, KEY)
    assert (record.outcome, record.rows_valid) == ("loaded", 2)
    assert read_partition(lake, "validated", "iqvia_rx", "2026-11-20")["trx"].to_pylist() == [8, 8]
    assert [r.outcome for r in read_delivery_log(lake, "iqvia_rx")] == ["loaded", "loaded"]


def test_the_same_bytes_touched_again_are_recorded_once_as_a_duplicate(lake):
    key = land(lake, "sfdc_territory", "SFDC_TERRITORY_20261120.csv", delimited("sfdc_territory",
                                                                                   [CLEAN["sfdc_territory"]]))
    ingest_landing_file(lake, key, KEY)
    os.utime(lake.path(key), ns=(1, 1))
    assert ingest_landing_file(lake, key, KEY).outcome == "duplicate"
    assert ingest_landing_file(lake, key, KEY).outcome == "duplicate"  # known now: nothing new recorded
    assert [r.outcome for r in read_delivery_log(lake, "sfdc_territory")] == ["loaded", "duplicate"]


def test_links_are_rejected_unread_and_stop_nothing(lake, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text(delimited("iqvia_rx", iqvia_rows(2)))
    folder = lake.path("landing/iqvia_rx")
    os.makedirs(folder)
    os.symlink("/etc/passwd", os.path.join(folder, "RXDYN_WEEKLY_20261106.txt"))
    os.symlink(outside, os.path.join(folder, "RXDYN_WEEKLY_20261113.txt"))
    os.symlink(tmp_path / "nowhere", os.path.join(folder, "RXDYN_WEEKLY_20261120.txt"))
    good = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261127.txt", delimited("iqvia_rx", iqvia_rows(2,
                                                                          week_ending="2026-11-27")))
    plan = plan_landing(lake, FEEDS["iqvia_rx"], LogIndex.of(lake, "iqvia_rx"), TODAY)
    assert [o.key for o in plan.new] == [good]
    assert len(plan.to_reject) == 3 and all("not a regular file" in why for _, why in plan.to_reject)
    from fe_platform.lib.ingestion import reject

    for obj, why in plan.to_reject:
        assert reject(lake, FEEDS["iqvia_rx"], obj, why).outcome == "rejected"
    assert not lake.exists("rejected/iqvia_rx/RXDYN_WEEKLY_20261106.txt")  # /etc/passwd was not copied
    assert b"root:" not in b"".join(lake.read_bytes(o.key) for o in lake.list("rejected/"))
    assert ingest_landing_file(lake, good, KEY).outcome == "loaded"
    assert current_version(lake, "iqvia_rx", "2026-11-13") is None  # the outside CSV was not loaded
    again = plan_landing(lake, FEEDS["iqvia_rx"], LogIndex.of(lake, "iqvia_rx"), TODAY)
    assert again.new == [] and again.to_reject == []


def test_a_name_with_non_ascii_digits_names_no_date():
    assert FEEDS["sfdc_call"].match("SFDC_CALL_\uff12\uff10\uff12\uff16\uff11\uff11\uff12\uff15.csv") is None
    assert FEEDS["sfdc_call"].match("SFDC_CALL_\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0665.csv") is None
    assert str(FEEDS["sfdc_call"].match("SFDC_CALL_20261125.csv")) == "2026-11-25"


def test_a_crash_before_the_commit_leaves_the_previous_version_whole(lake, monkeypatch):
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    ingest_landing_file(lake, key, KEY)
    before = {z: read_partition(lake, z, "iqvia_rx", "2026-11-20") for z in zones.ZONES}
    rows = iqvia_rows(4, trx="7") + [dict(CLEAN["iqvia_rx"], prescriber_id="9", payer_type="NOPE")]
    time.sleep(0.01)
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))

    def killed(lake, version):
        raise KeyboardInterrupt("killed before the manifest was written")

    monkeypatch.setattr("fe_platform.lib.ingestion.commit", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest_landing_file(lake, key, KEY)
    # readers see the old validated rows with the old quarantine: never the new parts
    assert all(read_partition(lake, z, "iqvia_rx", "2026-11-20").equals(before[z]) for z in zones.ZONES)
    monkeypatch.undo()
    record = ingest_landing_file(lake, key, KEY)  # the re-run completes it
    assert (record.rows_valid, record.rows_quarantined) == (4, 1)
    assert read_partition(lake, "quarantine", "iqvia_rx", "2026-11-20").num_rows == 1
    version = current_version(lake, "iqvia_rx", "2026-11-20")
    folders = {o.key.split("/")[3] for z in zones.ZONES for o in lake.list(f"{z}/iqvia_rx/2026-11-20/")
               if o.key.count("/") == 4}
    assert folders <= {version.version, version.previous_version}  # the crash's leftover version is gone


def test_only_the_current_and_previous_versions_are_kept(lake):
    versions = []
    for n in range(4):
        time.sleep(0.01)
        key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(n + 1)))
        ingest_landing_file(lake, key, KEY)
        versions.append(current_version(lake, "iqvia_rx", "2026-11-20").version)
    kept = {o.key.split("/")[3] for o in lake.list("validated/iqvia_rx/2026-11-20/") if o.key.count("/") == 4}
    assert kept == set(versions[-2:])


def engagement_line(n: int, **changes) -> str:
    return json.dumps({**CLEAN["hcp_engagement"], "event_id": f"6f1c2a3b-4d5e-4f60-8a7b-{n:012d}", **changes})


def land_engagement(lake, name: str, lines: list[str]) -> str:
    return land(lake, "hcp_engagement", name, gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))


def test_an_append_partition_is_the_union_of_its_deliveries(lake, tmp_path):
    first = land_engagement(lake, "HCP_ENGAGEMENT_20261120_101500_shardId-000000000000_1.jsonl.gz",
                            [engagement_line(1), engagement_line(2)])
    second = land_engagement(lake, "HCP_ENGAGEMENT_20261120_101600_shardId-000000000000_2.jsonl.gz",
                             [engagement_line(2), engagement_line(3)])  # event 2 redelivered by the stream
    copy = land_engagement(lake, "HCP_ENGAGEMENT_20261120_101700_shardId-000000000001_1.jsonl.gz",
                           [engagement_line(2), engagement_line(3)])
    assert [ingest_landing_file(lake, k, KEY).outcome for k in (first, second, copy)] == [
        "loaded", "loaded", "duplicate"]
    version = current_version(lake, "hcp_engagement", "2026-11-20")
    assert [p.landing_key for p in version.parts] == [first, second]
    assert sorted(read_partition(lake, "validated", "hcp_engagement", "2026-11-20")["event_id"].to_pylist()) == [
        engagement_line(n)[14:50] for n in (1, 2, 2, 3)]
    rebuilt = revalidate_partition(lake, FEEDS["hcp_engagement"], "2026-11-20", KEY, tmp_path)
    assert [p.landing_key for p in rebuilt.parts] == [first, second] and rebuilt.rows_valid == 4


def test_a_json_line_that_is_no_object_is_quarantined_hashed_and_the_rest_loads(lake):
    key = land_engagement(lake, "HCP_ENGAGEMENT_20261120_101500_shardId-000000000000_1.jsonl.gz", [
        engagement_line(1), '{"event_id": "broken", ', "[1, 2]", engagement_line(2, extra_field="x"),
        engagement_line(1)])
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_in, record.rows_valid, record.rules) == (5, 2, {"duplicate_key": 1, "record_json": 2})
    assert json.loads(record.drift_columns) == ["extra_field"]
    bad = read_partition(lake, "quarantine", "hcp_engagement", "2026-11-20").to_pylist()
    assert [(r["_source_row"], r["_reject_reasons"]) for r in bad] == [
        (2, "record_json"), (3, "record_json"), (5, "duplicate_key")]
    assert bad[0]["_record_hash"] and len(bad[0]["_record_hash"]) == 64 and bad[0]["event_id"] is None
    assert b"broken" not in b"".join(lake.read_bytes(k) for k in
                                      current_version(lake, "hcp_engagement", "2026-11-20").keys("quarantine"))


def test_batches_are_bounded_by_files_and_bytes(lake):
    for day in range(2, 9):
        land(lake, "sfdc_call", f"SFDC_CALL_202611{day:02d}.csv", "x" * (100 * day))
    plan = plan_landing(lake, FEEDS["sfdc_call"], LogIndex.of(lake, "sfdc_call"), TODAY)
    by_count = batches(plan, max_deliveries=3, max_bytes=10**9)
    assert [len(b.deliveries) for b in by_count] == [3, 3, 1]
    assert by_count[0].partitions == ["2026-11-02", "2026-11-03", "2026-11-04"]
    by_bytes = batches(plan, max_deliveries=100, max_bytes=1000)
    assert all(b.bytes <= 1000 or len(b.deliveries) == 1 for b in by_bytes)
    assert [o.key for b in by_bytes for o in b.deliveries] == [o.key for o in plan.new]


def test_a_batch_in_one_index_sees_its_own_deliveries(lake, tmp_path):
    text = delimited("sfdc_territory", [CLEAN["sfdc_territory"]])
    a = land(lake, "sfdc_territory", "SFDC_TERRITORY_20261119.csv", text)
    b = land(lake, "sfdc_territory", "SFDC_TERRITORY_20261120.csv", text)
    index = LogIndex.of(lake, "sfdc_territory")
    outcomes = [ingest_delivery(lake, FEEDS["sfdc_territory"], entry(lake, k), KEY, tmp_path, index).outcome
                for k in (a, b)]
    assert outcomes == ["loaded", "duplicate"]


def test_a_file_named_after_tomorrow_waits_for_its_day_and_a_later_one_is_refused(lake):
    today = TODAY
    tomorrow = land(lake, "sfdc_call", f"SFDC_CALL_{today + timedelta(days=1):%Y%m%d}.csv", "x")
    later = land(lake, "sfdc_call", f"SFDC_CALL_{today + timedelta(days=2):%Y%m%d}.csv", "x")
    plan = plan_landing(lake, FEEDS["sfdc_call"], LogIndex.of(lake, "sfdc_call"), today)
    assert plan.new == [] and [o.key for o, _ in plan.to_reject] == [later]  # a source ahead of UTC is no error
    next_day = plan_landing(lake, FEEDS["sfdc_call"], LogIndex.of(lake, "sfdc_call"), today + timedelta(days=1))
    assert [o.key for o in next_day.new] == [tomorrow]


def test_the_sensor_of_a_feed_waits_for_the_reference_data_its_rules_look_up(lake, tmp_path):
    import dagster as dg

    from fe_platform.defs.ingestion.sensors import landing_sensor
    from fe_platform.defs.resources import Ingestion

    resources = {"lake": lake, "ingestion": Ingestion(KEY, tmp_path / "work", 100, 1 << 30)}
    rates = land(lake, "fx_rates", "FX_RATES_20261120.json",
                 '{"base": "EUR", "date": "2026-11-20", "rates": {"USD": 1.05}}')
    land(lake, "sap_billing", "SAP_BILLING_20261120.csv", delimited("sap_billing", [CLEAN["sap_billing"]]))
    sensor = landing_sensor(FEEDS["sap_billing"], None)
    with dg.instance_for_test() as instance:
        waiting = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(waiting, dg.SkipReason) and "fx_rates" in waiting.skip_message
        ingest_landing_file(lake, rates, KEY)
        [request] = sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests
    # No run key: Dagster never starts a run again under the key of a failed one, and a failed batch must be.
    assert request.run_key is None


def test_a_corrected_stream_file_replaces_its_part_and_nothing_else(lake, tmp_path):
    name = "HCP_ENGAGEMENT_20261120_101500_shardId-000000000000_1.jsonl.gz"
    other = land_engagement(lake, "HCP_ENGAGEMENT_20261120_101600_shardId-000000000001_1.jsonl.gz",
                            [engagement_line(9)])
    key = land_engagement(lake, name, [engagement_line(1), engagement_line(2)])
    for k in (other, key):
        ingest_landing_file(lake, k, KEY)
    time.sleep(0.01)
    land_engagement(lake, name, [engagement_line(1)])  # the same file, corrected: event 2 withdrawn
    assert ingest_landing_file(lake, key, KEY).rows_valid == 1
    version = current_version(lake, "hcp_engagement", "2026-11-20")
    assert sorted(p.landing_key for p in version.parts) == sorted([other, key])
    ids = sorted(read_partition(lake, "validated", "hcp_engagement", "2026-11-20")["event_id"].to_pylist())
    assert ids == sorted(engagement_line(n)[14:50] for n in (1, 9))
    files = [o.key for o in lake.list(version.folder("validated"))]
    assert sorted(files) == sorted(version.keys("validated"))  # the replaced part is gone (Athena reads folders)
    rebuilt = revalidate_partition(lake, FEEDS["hcp_engagement"], "2026-11-20", KEY, tmp_path)
    assert rebuilt.rows_valid == 2 and sorted(p.landing_key for p in rebuilt.parts) == sorted([other, key])
