"""The checks that look up reference data read it once per state of that data, not once per partition.

A run of 65 SAP partitions used to read every fx partition for each of them (65 x 65 Parquet reads)."""

from datetime import date

import pytest

from fe_platform.lib import quality
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.zones import committed_partitions, current_version
from fe_platform.sample_data.generator import generate

KEY = "a-test-secret-of-enough-length"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    generate(lake, date(2026, 11, 20), weeks=2, hcps=40, seed=11, defect_rate=0.0)
    for feed in ("fx_rates", "product_master", "sap_billing"):
        for obj in lake.list(FEEDS[feed].landing_prefix):
            ingest_landing_file(lake, obj.key, KEY)
    return lake


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The feed of every partition version the checks read, in order; nothing remembered before."""
    reads = []
    real = quality.batches
    monkeypatch.setattr(quality, "batches", lambda lake_, version, zone, columns=None:
                        reads.append(version.feed) or real(lake_, version, zone, columns))
    quality._LOOKUPS.clear()
    return reads


def test_fx_rates_are_read_once_for_every_billing_partition_until_one_changes(lake, reads):
    billing = committed_partitions(lake, "sap_billing")
    fx = committed_partitions(lake, "fx_rates")
    assert len(billing) >= 5 and len(fx) >= 5
    verdicts = [quality.fx_rate_available(lake, FEEDS["sap_billing"], current_version(lake, "sap_billing", p))
                for p in billing]
    assert reads.count("fx_rates") == len(fx)  # not len(fx) * len(billing)
    assert all(v.passed for v in verdicts)

    # another version of an fx partition: looked up afresh
    landing = next(o.key for o in lake.list(FEEDS["fx_rates"].landing_prefix))
    lake.put_bytes(lake.read_bytes(landing).replace(b"\n", b"\r\n"), landing)  # same rates, other bytes
    assert ingest_landing_file(lake, landing, KEY).outcome == "loaded"
    quality.fx_rate_available(lake, FEEDS["sap_billing"], current_version(lake, "sap_billing", billing[0]))
    assert reads.count("fx_rates") == 2 * len(fx)


def test_a_reference_feed_is_read_once_per_version(lake, reads):
    feed = FEEDS["sap_billing"]
    [ref] = [r for r in feed.references if r.target_feed == "product_master"]
    measure = quality.references(ref)
    for partition in committed_partitions(lake, "sap_billing"):
        assert measure(lake, feed, current_version(lake, "sap_billing", partition)).passed
    assert reads.count("product_master") == 1
