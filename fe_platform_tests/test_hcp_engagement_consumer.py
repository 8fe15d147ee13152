"""The hcp_engagement consumer against moto's Kinesis over HTTP: every record lands; files close at their
size or age; a consumer killed between writing a file and moving its checkpoint loses nothing; a shard
split mid-stream is read to its end before its children; the Dagster sensor reports what it landed."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, OrderedDict
from datetime import UTC, date, datetime, timedelta
from hashlib import md5

import dagster as dg
import pytest
from moto.kinesis.models import Stream

from fe_platform.lib.lake import LocalLake
from fe_platform.lib.sources import hcp_engagement
from fe_platform.lib.sources.hcp_engagement import (
    STATE_PREFIX,
    Checkpoint,
    ConsumeReport,
    EngagementConsumer,
    _Shard,
    kinesis_client,
    record_line,
)
from fe_platform.lib.sources.landing import PullError
from fe_platform.sample_data.generator import generate
from fe_platform.sample_data.pulled_feeds import engagement_records, put_engagement_records
from fe_platform.settings import load_settings
from fe_platform_tests.conftest import free_port
from fe_platform_tests.pulled_feeds_contract import PROPOSED
from fe_platform_tests.test_puller_defs import puller_defs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
FAST = {"poll_interval": 0.02, "min_call_interval": 0.0, "discover_interval": 0.1}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[bytes]:
    lake = LocalLake(tmp_path_factory.mktemp("generated"))
    manifest = generate(lake, date(2026, 11, 20), weeks=1, hcps=150, seed=4, defect_rate=0.02,
                        feeds=("hcp_engagement",))
    out = engagement_records(lake, sorted(f["key"] for f in manifest["files"]))
    assert any(not line.startswith(b"{") for line in out)  # record_json defects travel the stream too
    return out


@pytest.fixture
def kinesis(moto_endpoint, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return kinesis_client("us-east-1", moto_endpoint, max_attempts=1)


@pytest.fixture
def stream(kinesis, request):
    name = "engagement-" + re.sub(r"[^A-Za-z0-9-]", "-", request.node.name)[:80]
    kinesis.create_stream(StreamName=name, ShardCount=2)
    yield name
    kinesis.delete_stream(StreamName=name)


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def landed(lake) -> list[bytes]:
    return [line for o in lake.list("landing/") for line in gzip.decompress(lake.read_bytes(o.key)).splitlines()]


def checkpoints(lake) -> dict[str, dict]:
    return {json.loads(lake.read_bytes(o.key))["shard_id"]: json.loads(lake.read_bytes(o.key))
            for o in lake.list(STATE_PREFIX)}


def test_record_line_keeps_a_record_on_one_line():
    assert record_line(b'{"a":\r\n 1}\n') == b'{"a":   1}\n'
    assert record_line(b"not json") == b"not json\n"


def test_every_record_lands_once_and_the_next_run_starts_after_it(records, kinesis, stream, lake):
    put_engagement_records(kinesis, stream, records)
    report = EngagementConsumer(lake, kinesis, stream, **FAST).consume(max_seconds=60, until_caught_up=True)
    assert Counter(landed(lake)) == Counter(records)
    assert report.records == len(records) and len(report.files) == 2  # one file per shard, closed at the end
    keys = [f.key for f in report.files]
    assert keys == sorted(keys) == sorted(o.key for o in lake.list("landing/"))
    for f in report.files:
        name = f.key.rsplit("/", 1)[1]
        assert PROPOSED["hcp_engagement"].match(name) == f.day, name
        assert f"_{f.shard_id}_000001.jsonl.gz" in name
    assert {s: c["sequence_number"] for s, c in checkpoints(lake).items()} == \
        {f.shard_id: f.last_sequence for f in report.files}
    again = EngagementConsumer(lake, kinesis, stream, **FAST).consume(max_seconds=10, until_caught_up=True)
    assert again.files == [] and len(landed(lake)) == len(records)
    more = [json.dumps({"event_id": f"late-{i}"}).encode() for i in range(5)]
    put_engagement_records(kinesis, stream, more)
    third = EngagementConsumer(lake, kinesis, stream, **FAST).consume(max_seconds=10, until_caught_up=True)
    assert third.records == 5 and Counter(landed(lake)) == Counter(records + more)
    assert all(f.key.endswith("_000002.jsonl.gz") for f in third.files)


def test_files_close_at_the_buffer_size(records, kinesis, stream, lake):
    put_engagement_records(kinesis, stream, records)
    report = EngagementConsumer(lake, kinesis, stream, max_bytes=4096, **FAST).consume(max_seconds=60,
                                                                                        until_caught_up=True)
    assert len(report.files) > 4 and Counter(landed(lake)) == Counter(records)
    assert all(f.bytes <= 4096 for f in report.files)
    for shard in {f.shard_id for f in report.files}:
        numbers = [int(f.key.rsplit("_", 1)[1][:6]) for f in report.files if f.shard_id == shard]
        assert numbers == list(range(1, len(numbers) + 1))


class FakeTime:
    """A clock for the consumer: sleeping moves it on and runs what is due by then."""

    def __init__(self, start: datetime):
        self.start, self.t, self.due = start, 0.0, []

    def clock(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        for when, action in [d for d in self.due if d[0] <= self.t]:
            self.due.remove((when, action))
            action()


def test_files_close_at_the_buffer_age(kinesis, lake):
    kinesis.create_stream(StreamName="engagement-age", ShardCount=1)
    first = [b'{"event_id": "a%d"}' % i for i in range(10)]
    second = [b'{"event_id": "b%d"}' % i for i in range(10)]
    put_engagement_records(kinesis, "engagement-age", first)
    fake = FakeTime(datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC))
    fake.due.append((70.0, lambda: put_engagement_records(kinesis, "engagement-age", second)))
    consumer = EngagementConsumer(lake, kinesis, "engagement-age", max_age=60, poll_interval=1.0,
                                  clock=fake.clock, now=fake.now, sleep=fake.sleep)
    report = consumer.consume(max_seconds=100)
    assert [f.records for f in report.files] == [10, 10]
    assert report.files[0].key.rsplit("/", 1)[1].startswith("HCP_ENGAGEMENT_20261120_120100_")  # its age: 60 s
    assert report.files[1].key.rsplit("/", 1)[1].startswith("HCP_ENGAGEMENT_20261120_120140_")  # the end: 100 s
    assert landed(lake) == first + second
    kinesis.delete_stream(StreamName="engagement-age")


class Killed(BaseException):
    """The consumer's process dies (not an error it could handle)."""


class DiesBeforeItsFirstCheckpoint(LocalLake):
    def put_bytes(self, data: bytes, key: str) -> None:
        if key.startswith(STATE_PREFIX):
            raise Killed()
        super().put_bytes(data, key)


def test_a_consumer_killed_between_a_file_and_its_checkpoint_loses_nothing(records, kinesis, stream, tmp_path):
    put_engagement_records(kinesis, stream, records)
    with pytest.raises(Killed):
        EngagementConsumer(DiesBeforeItsFirstCheckpoint(tmp_path / "lake"), kinesis, stream, max_bytes=8192,
                           **FAST).consume(max_seconds=60, until_caught_up=True)
    lake = LocalLake(tmp_path / "lake")
    (before_kill,) = [o.key for o in lake.list("landing/")]  # the file was written, its checkpoint was not
    written_then = lake.read_bytes(before_kill)
    assert checkpoints(lake) == {}

    report = EngagementConsumer(lake, kinesis, stream, max_bytes=8192, **FAST).consume(max_seconds=60,
                                                                                        until_caught_up=True)
    assert before_kill not in [f.key for f in report.files] and lake.read_bytes(before_kill) == written_then
    lines = landed(lake)
    assert set(lines) == set(records)  # no record lost
    re_read = Counter(lines) - Counter(records)  # at least once: what the dead consumer had landed comes again
    assert re_read == Counter(gzip.decompress(written_then).splitlines())
    # the warehouse keeps each event_id once
    event_ids = [json.loads(x)["event_id"] for x in lines if x.startswith(b"{") and json.loads(x).get("event_id")]
    assert len(set(event_ids)) == len({json.loads(x)["event_id"] for x in records
                                       if x.startswith(b"{") and json.loads(x).get("event_id")})


def _open_shard_for_key(self, partition_key, explicit_hash_key=None):
    key = int(explicit_hash_key) if explicit_hash_key else int(md5(partition_key.encode()).hexdigest(), 16)
    return next((s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash), None)


@pytest.fixture
def kinesis_as_aws(monkeypatch):
    """moto's Kinesis, resharding as AWS does: a closed shard keeps its records and takes no new ones
    (moto moves the parent's records and keeps writing to it)."""
    original = Stream.split_shard

    def split_shard(self, shard_to_split, new_starting_hash_key):
        parent = self.shards[shard_to_split]
        kept, parent.records = parent.records, OrderedDict()
        original(self, shard_to_split, new_starting_hash_key)
        parent.records = kept

    monkeypatch.setattr(Stream, "split_shard", split_shard)
    monkeypatch.setattr(Stream, "get_shard_for_key", _open_shard_for_key)


def test_a_shard_split_mid_stream_is_read_to_its_end_before_its_children(kinesis_as_aws, kinesis, lake):
    name = "engagement-split"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    parent = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    before = [b'{"event_id": "before-%d"}' % i for i in range(30)]
    unread = [b'{"event_id": "unread-%d"}' % i for i in range(30)]
    after = [b'{"event_id": "after-%d"}' % i for i in range(60)]
    put_engagement_records(kinesis, name, before)

    def reshard():  # while the consumer runs: more records, a split, then records for the children
        put_engagement_records(kinesis, name, unread)
        kinesis.split_shard(StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(2 ** 127))
        put_engagement_records(kinesis, name, after)

    calls = []

    def sleep(seconds):
        if not calls:
            reshard()
        calls.append(seconds)

    report = EngagementConsumer(lake, kinesis, name, sleep=sleep, **FAST).consume(max_seconds=30,
                                                                                   until_caught_up=True)
    assert Counter(landed(lake)) == Counter(before + unread + after)
    shards = [f.shard_id for f in report.files]
    children = {s["ShardId"] for s in kinesis.list_shards(StreamName=name)["Shards"]} - {parent}
    assert shards[0] == parent and set(shards[1:]) == children  # the parent's file first, then its children's
    parent_lines = gzip.decompress(lake.read_bytes(report.files[0].key)).splitlines()
    assert parent_lines == before + unread  # the parent read to its end, in order
    assert report.finished_shards == [parent] and checkpoints(lake)[parent]["finished"]
    again = EngagementConsumer(lake, kinesis, name, **FAST).consume(max_seconds=5, until_caught_up=True)
    assert again.files == [] and again.finished_shards == []
    kinesis.delete_stream(StreamName=name)


def test_keys_only_grow_even_when_a_later_sorting_shard_closes_first(lake):
    noon = datetime(2026, 11, 20, 12, 0, 0, 500000, tzinfo=UTC)
    consumer = EngagementConsumer(lake, None, "s", now=lambda: noon)
    report = ConsumeReport()
    for shard_id, sequence in (("shardId-000000000001", "5"), ("shardId-000000000000", "9")):
        consumer._close(_Shard(Checkpoint(shard_id), None, last_read=sequence, lines=[b"{}\n"], size=3), report)
    keys = [f.key for f in report.files]
    assert keys == sorted(keys)
    assert "_120000_shardId-000000000001_" in keys[0] and "_120001_shardId-000000000000_" in keys[1]


def test_a_down_stream_fails_clearly_and_writes_nothing(lake, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = kinesis_client("us-east-1", f"http://127.0.0.1:{free_port()}", max_attempts=1)
    slept = []
    with pytest.raises(PullError, match="kinesis stream engagement.*after 2 attempts"):
        EngagementConsumer(lake, client, "engagement", attempts=2, sleep=slept.append).consume(max_seconds=5)
    assert slept == [1.0] and list(lake.list("")) == []


def test_a_missing_stream_is_not_retried(kinesis, lake):
    slept = []
    with pytest.raises(PullError, match="ResourceNotFoundException.*not retried"):
        EngagementConsumer(lake, kinesis, "no-such-stream", sleep=slept.append).consume(max_seconds=5)
    assert slept == []


def test_shard_ids_that_could_leave_the_zone_are_refused():
    with pytest.raises(ValueError):
        hcp_engagement.landing_key(datetime(2026, 11, 20, tzinfo=UTC), "../../etc", 1)
    with pytest.raises(ValueError):
        hcp_engagement.checkpoint_key("a/b")


# --- Dagster ---------------------------------------------------------------------------------------

def test_sensor_lands_the_stream_and_reports_each_day(records, kinesis, stream, moto_endpoint, tmp_path):
    put_engagement_records(kinesis, stream, records[:50])
    settings = load_settings({"FE_HOME": str(tmp_path), "FE_KINESIS_STREAM": stream, "AWS_REGION": "us-east-1",
                              "FE_KINESIS_ENDPOINT_URL": moto_endpoint, "FE_ENGAGEMENT_TICK_SECONDS": "1"})
    defs = puller_defs(settings)
    sensor = defs.resolve_sensor_def("hcp_engagement_consumer")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    lake = LocalLake(settings.lake_root)
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources={"lake": lake}))
        (event,) = result.asset_events
        assert event.asset_key == dg.AssetKey("landing_hcp_engagement")
        assert event.partition == datetime.now(UTC).date().isoformat()
        assert event.metadata["records"].value == 50 and event.metadata["files"].value == 2
        assert Counter(landed(LocalLake(settings.lake_root))) == Counter(records[:50])
        idle = sensor(dg.build_sensor_context(instance=instance, resources={"lake": lake}))
        assert isinstance(idle, dg.SkipReason)
    off = puller_defs(load_settings({"FE_HOME": str(tmp_path / "off")}))
    assert off.resolve_sensor_def("hcp_engagement_consumer").default_status == dg.DefaultSensorStatus.STOPPED
