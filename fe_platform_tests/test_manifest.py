"""The generator's defect manifest, matched exactly by ingestion: per file, its outcome, its rows and the
rows each rule quarantines; and per file-level defect, the reason it was rejected for."""

import json
from collections import Counter
from datetime import date

import pytest

from fe_platform.lib.delivery_log import LogIndex, read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_delivery, reject
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.planning import plan_landing
from fe_platform.sample_data.generator import generate

KEY = "manifest-test-key-0123456789"
# What a rejection for each kind of file-level defect must say.
REASON_WORDS = {
    "wrong_delimiter": "wrong delimiter",
    "missing_required_column": "missing required column",
    "no_header": "header",
    "empty_file": "empty",
    "undecodable": "UTF-8",
    "not_declared_format": ("gzip", "XLSX"),
    "bad_file_name": "does not match",
    "invalid_json": "JSON",
    "missing_rates": "rates",
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    manifest = generate(lake, date(2026, 11, 20), weeks=4, hcps=150, seed=11, defect_rate=0.02)
    work = tmp_path_factory.mktemp("work")
    for feed in FEEDS.values():  # reference feeds first, as the platform runs them
        index = LogIndex.of(lake, feed.name)
        plan = plan_landing(lake, feed, index, date(2026, 11, 30))
        for obj, problem in plan.to_reject:
            reject(lake, feed, obj, problem)
        for obj in plan.new:
            ingest_delivery(lake, feed, obj, KEY, work, index)
    return manifest, {r.landing_key: r for r in read_delivery_log(lake)}


def test_every_file_has_the_outcome_the_manifest_expects(ingested):
    manifest, records = ingested
    assert set(records) == {f["key"] for f in manifest["files"]}
    for expected in manifest["files"]:
        record = records[expected["key"]]
        assert record.outcome == expected["expected"], (expected, record.reason)


def test_rejected_files_say_why(ingested):
    manifest, records = ingested
    rejected = [f for f in manifest["files"] if f["expected"] == "rejected"]
    assert {f["file_defect"] for f in rejected} == set(REASON_WORDS)
    for f in rejected:
        words = REASON_WORDS[f["file_defect"]]
        words = words if isinstance(words, tuple) else (words,)
        reason = records[f["key"]].reason.lower()
        assert any(w.lower() in reason for w in words), (f["file_defect"], reason)


def test_quarantine_counts_per_rule_match_exactly(ingested):
    manifest, records = ingested
    for expected in manifest["files"]:
        if expected["expected"] != "loaded":
            continue
        record = records[expected["key"]]
        assert record.rows_in == expected["rows"], expected["key"]
        assert record.rules == expected["row_defects"], expected["key"]
        assert record.rows_in == record.rows_valid + record.rows_quarantined
        assert json.loads(record.drift_columns or "[]") == expected["drift_columns"], expected["key"]


def test_totals_per_feed_match(ingested):
    manifest, records = ingested
    for feed, totals in manifest["totals"].items():
        loaded = [r for r in records.values() if r.feed == feed and r.outcome == "loaded"]
        by_rule = Counter()
        for r in loaded:
            by_rule.update(r.rules)
        assert sum(r.rows_quarantined for r in loaded) == totals["quarantined"], feed
        assert dict(by_rule) == totals["by_rule"], feed
