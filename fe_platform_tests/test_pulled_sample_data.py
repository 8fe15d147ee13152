"""Sample data of the pulled feeds: the manifest is the truth about the files, every rule is broken, the
rows live in the generator's world, and restatements (late updates, reversals, redeliveries) are there."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import date

import pytest

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import LocalLake
from fe_platform.sample_data import pulled_feeds
from fe_platform.sample_data.generator import FILE_FEEDS, RULE_EXCEPTIONS, generate
from fe_platform_tests.pulled_feeds_contract import NULLS, PROPOSED, check_file, contract_rules

END = date(2026, 11, 20)
PULLED = pulled_feeds.FEEDS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    manifest = generate(lake, END, weeks=13, hcps=200, seed=7, defect_rate=0.01, feeds=FILE_FEEDS + PULLED)
    return lake, manifest


@pytest.fixture(scope="module")
def checked(run):
    lake, manifest = run
    return {f["key"]: check_file(PROPOSED[f["feed"]], f["key"], lake.read_bytes(f["key"]))
            for f in manifest["files"] if f["feed"] in PULLED}


def files_of(manifest, feed):
    return [f for f in manifest["files"] if f["feed"] == feed]


def test_file_names_and_partitions_follow_the_contract(run):
    lake, manifest = run
    pulled = [f for f in manifest["files"] if f["feed"] in PULLED]
    assert len({lake.sha256(f["key"]) for f in pulled}) == len(pulled)  # no file is a duplicate delivery
    for feed in PULLED:
        files = files_of(manifest, feed)
        assert files, feed
        for f in files:
            assert PROPOSED[feed].match(f["key"].rsplit("/", 1)[1]).isoformat() == f["partition"], f["key"]
            assert f["key"].startswith(f"landing/{feed}/") and f["expected"] == "loaded"


def test_manifest_matches_the_files(run, checked):
    _, manifest = run
    for feed in PULLED:
        totals = Counter()
        for f in files_of(manifest, feed):
            rows, why = checked[f["key"]]
            assert len(rows) == f["rows"], f["key"]
            found = Counter(rule for w in why for rule in w)
            assert dict(found) == f["row_defects"], f["key"]
            assert sum(1 for w in why if w) == f["rows_quarantined"], f["key"]
            # one rule a row, but for the future-dated dispense that breaks two by construction
            assert all(len(w) <= 1 or sorted(w) == ["not_future", "updated_after_dispense"] for w in why), f["key"]
            totals.update(f["row_defects"])
        assert manifest["totals"][feed]["by_rule"] == dict(sorted(totals.items()))
        assert manifest["totals"][feed]["quarantined"] == sum(f["rows_quarantined"] for f in files_of(manifest, feed))


def test_every_rule_of_the_contract_is_broken(run):
    _, manifest = run
    for feed in PULLED:
        injected = {rule for f in files_of(manifest, feed) for rule in f["row_defects"]}
        exceptions = {rule for name, rule in RULE_EXCEPTIONS if name == feed}
        assert injected == contract_rules(PROPOSED[feed]) - exceptions, feed


def test_same_arguments_same_bytes_and_file_feeds_unchanged(tmp_path, run):
    lake, manifest = run
    again = LocalLake(tmp_path / "again")
    assert generate(again, END, weeks=13, hcps=200, seed=7, defect_rate=0.01, feeds=FILE_FEEDS + PULLED) == manifest
    assert all(again.read_bytes(f["key"]) == lake.read_bytes(f["key"]) for f in manifest["files"])
    alone = LocalLake(tmp_path / "alone")
    files_only = generate(alone, END, weeks=13, hcps=200, seed=7, defect_rate=0.01, feeds=FILE_FEEDS)
    assert {f["key"] for f in files_only["files"]} == {f["key"] for f in manifest["files"] if f["feed"] in FILE_FEEDS}
    assert all(alone.read_bytes(f["key"]) == lake.read_bytes(f["key"]) for f in files_only["files"])


def test_default_feeds_are_those_of_the_registry(tmp_path):
    manifest = generate(LocalLake(tmp_path), END, weeks=1, hcps=30, seed=3)
    assert {f["feed"] for f in manifest["files"]} == set(FEEDS) & set(FILE_FEEDS + PULLED)
    with pytest.raises(ValueError, match="no feed nope"):
        generate(LocalLake(tmp_path), END, weeks=1, hcps=30, feeds=("nope",))


def test_rows_live_in_the_generators_world(run, checked):
    lake, manifest = run

    def clean(feed):
        return [r for f in files_of(manifest, feed) for r, w in zip(*checked[f["key"]], strict=True) if not w]

    def file_rows(feed, delimiter=","):
        import csv
        import io
        out = []
        for f in files_of(manifest, feed):
            if f["expected"] != "loaded":
                continue
            data = lake.read_bytes(f["key"])
            data = gzip.decompress(data) if f["key"].endswith(".gz") else data
            table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter))
            out += [dict(zip([h.lower() for h in table[0]], r, strict=False)) for r in table[1:]]
        return out

    products = file_rows("product_master")
    ndcs = {p["ndc11"] for p in products}
    own_brands = {p["brand_code"] for p in products if p["is_own_brand"] == "true"}
    accounts = file_rows("sfdc_account")
    account_ids = {a["account_id"] for a in accounts}
    crm_npis = {a["npi"] for a in accounts if a["npi"]}
    iqvia_npis = {r["npi"] for r in file_rows("iqvia_rx", "|")}

    dispenses = clean("sp_dispense")
    assert {d["ndc11"] for d in dispenses} <= ndcs
    assert {d["prescriber_npi"] for d in dispenses} <= crm_npis | iqvia_npis
    assert {d["fill_type"] for d in dispenses} == {"NEW", "REFILL"}
    events = clean("hcp_event")
    unknown = Counter(f["key"] for f in files_of(manifest, "hcp_event") for r, w in zip(*checked[f["key"]], strict=True)
                      if not w and r["brand_code"] not in own_brands)
    assert dict(unknown) == manifest["referential"]["hcp_event.brand_code"]
    assert {e["npi"] for e in events} <= crm_npis
    engagement = clean("hcp_engagement")
    assert {e["brand_code"] for e in engagement} <= own_brands
    assert {e["account_id"] for e in engagement if e.get("account_id", "") not in NULLS} <= account_ids
    assert {e["npi"] for e in engagement if e.get("npi", "") not in NULLS} <= crm_npis
    assert {(e["channel"], e["action"]) for e in engagement} >= {("EMAIL", "OPENED"), ("PORTAL", "DOWNLOADED"),
                                                                 ("WEBINAR", "VISITED")}
    assert any("account_id" not in e for e in engagement)  # a producer that leaves out unknown fields


def test_late_updates_reversals_and_redeliveries(run, checked):
    _, manifest = run
    restated = manifest["restatements"]
    # sp_dispense: a later file holds a new version of an earlier dispense, some of them REVERSED
    first_seen: dict[str, tuple[str, dict]] = {}
    late = Counter()
    reversals = Counter()
    for f in sorted(files_of(manifest, "sp_dispense"), key=lambda f: f["key"]):
        rows, why = checked[f["key"]]
        for row, w in zip(rows, why, strict=True):
            if w:
                continue
            if row["dispense_id"] in first_seen and first_seen[row["dispense_id"]][0] != f["key"]:
                (reversals if row["status"] == "REVERSED" else late)[f["key"]] += 1
                assert row["updated_at"] > first_seen[row["dispense_id"]][1]["updated_at"]
            first_seen.setdefault(row["dispense_id"], (f["key"], row))
    assert dict(reversals) == restated["sp_dispense.reversal"] and sum(reversals.values()) > 0
    assert dict(late) == restated["sp_dispense.late_update"] and sum(late.values()) > 0
    # NEW for a patient's first fill of a product, REFILL after
    fills: dict[tuple, list] = {}
    dispenses: set[str] = set()
    for f in sorted(files_of(manifest, "sp_dispense"), key=lambda f: f["key"]):
        for row, w in zip(*checked[f["key"]], strict=True):
            if not w and row["dispense_id"] not in dispenses:  # a dispense's first version
                dispenses.add(row["dispense_id"])
                fills.setdefault((row["patient_token"], row["ndc11"]), []).append(row["fill_type"])
    assert all(kinds.count("NEW") <= 1 for kinds in fills.values())
    assert any(kinds[:2] == ["NEW", "REFILL"] for kinds in fills.values())
    # hcp_engagement: a file repeats the last records of its shard's previous file
    seen: dict[bytes, str] = {}
    repeats = Counter()
    run_lake = run[0]
    for f in sorted(files_of(manifest, "hcp_engagement"), key=lambda f: f["key"].rsplit("_", 2)[1:]):
        for line in gzip.decompress(run_lake.read_bytes(f["key"])).splitlines():
            if line in seen and seen[line] != f["key"]:
                repeats[f["key"]] += 1
            seen.setdefault(line, f["key"])
    assert dict(repeats) == restated["hcp_engagement.repeat_across_files"] and repeats
    assert sum(restated["hcp_event.late_update"].values()) > 0


def test_engagement_shard_is_split_half_way(run):
    _, manifest = run
    shards = [f["key"].rsplit("_", 2)[1] for f in sorted(files_of(manifest, "hcp_engagement"), key=lambda f: f["key"])]
    first_child = next(i for i, s in enumerate(shards) if s != "shardId-000000000000")
    assert set(shards[:first_child]) == {"shardId-000000000000"}
    assert set(shards[first_child:]) == {"shardId-000000000001", "shardId-000000000002"}


def test_no_defects_at_rate_zero(tmp_path):
    lake = LocalLake(tmp_path)
    manifest = generate(lake, END, weeks=2, hcps=80, defect_rate=0, feeds=PULLED)
    assert manifest["files"] and not manifest["referential"]
    for f in manifest["files"]:
        assert f["row_defects"] == {} and f["rows_quarantined"] == 0
        _, why = check_file(PROPOSED[f["feed"]], f["key"], lake.read_bytes(f["key"]))
        assert not any(why), f["key"]


def test_the_registry_declares_the_pulled_feeds_as_the_reference_reading_does():
    for name in PULLED:
        real, proposed = FEEDS[name], PROPOSED[name]
        assert (real.key, real.mode, real.repeated_keys) == (proposed.key, proposed.mode, proposed.repeated_keys)
        assert contract_rules(real) == contract_rules(proposed), name
        assert [(c.name, c.kind, c.required, c.pattern, c.allowed, c.min_value, c.max_value, c.rules)
                for c in real.columns] == [(c.name, c.kind, c.required, c.pattern, c.allowed, c.min_value,
                                            c.max_value, c.rules) for c in proposed.columns], name
        sample = {"sp_dispense": "SP_DISPENSE_20261120.csv.gz", "hcp_event": "HCP_EVENT_20261120.jsonl",
                  "hcp_engagement": "HCP_ENGAGEMENT_20261120_101500_shardId-000000000001_7.jsonl.gz"}[name]
        assert real.match(sample) == proposed.match(sample) is not None


def test_jsonl_lines_are_single_objects_or_the_record_json_defect(run):
    lake, manifest = run
    for f in files_of(manifest, "hcp_event"):
        assert all(isinstance(json.loads(line), dict) for line in lake.read_bytes(f["key"]).splitlines())
    broken = [f for f in files_of(manifest, "hcp_engagement") if "record_json" in f["row_defects"]]
    assert broken
