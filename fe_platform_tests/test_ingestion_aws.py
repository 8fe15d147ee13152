"""Ingestion in aws mode: the lake is S3 (a moto server over HTTP), writes are SSE-KMS encrypted."""

from datetime import date

import boto3
import dagster as dg

from fe_platform.definitions import build_definitions
from fe_platform.defs.ingestion.sensors import landing_sensor, plan_landing
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file, read_delivery_log, zone_key
from fe_platform.lib.lake import S3Lake, lake_from_settings
from fe_platform.runner import RunSummary, ingest_new_deliveries
from fe_platform.sample_data.generator import generate
from fe_platform.settings import load_settings
from fe_platform_tests.test_ingestion import CLEAN, delimited, iqvia_rows, land


def test_s3_lake_writes_are_encrypted_with_the_kms_key(aws_env):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    assert isinstance(lake, S3Lake) and lake.root == f"s3://{aws_env['FE_S3_BUCKET']}/fe"
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    record = ingest_landing_file(lake, key, settings.pii_hmac_key)
    assert (record.outcome, record.rows_valid) == ("loaded", 3)
    s3 = boto3.client("s3", endpoint_url=aws_env["FE_S3_ENDPOINT_URL"], region_name="us-east-1")
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=aws_env["FE_S3_BUCKET"])["Contents"]]
    for zone in ("raw/", "validated/", "quarantine/", "deliveries/"):
        objects = [k for k in written if k.startswith("fe/" + zone)]
        assert objects, zone
        for object_key in objects:
            head = s3.head_object(Bucket=aws_env["FE_S3_BUCKET"], Key=object_key)
            assert head["ServerSideEncryption"] == "aws:kms", object_key
            assert head["SSEKMSKeyId"].endswith(aws_env["FE_KMS_KEY_ID"]), object_key
    assert lake.read_parquet(zone_key("validated", "iqvia_rx", "2026-11-20")).num_rows == 3


def test_sensor_lists_only_keys_after_its_cursor_and_starts_no_run_twice(aws_env, monkeypatch):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    listed = []
    lake.client.meta.events.register("before-parameter-build.s3.ListObjectsV2",
                                     lambda params, **_: listed.append(dict(params)))
    monkeypatch.setattr("fe_platform.defs.ingestion.sensors.lake_from_settings", lambda _s: lake)
    feed = FEEDS["iqvia_rx"]
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261030.txt", delimited("iqvia_rx", iqvia_rows(1)))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261106.txt", delimited("iqvia_rx", iqvia_rows(1)))
    sensor = landing_sensor(feed, None, settings)
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, cursor=None))
        assert [r.partition_key for r in first.run_requests] == ["2026-10-30", "2026-11-06"]
        assert [r.run_key for r in first.run_requests] == [
            "landing/iqvia_rx/RXDYN_WEEKLY_20261030.txt", "landing/iqvia_rx/RXDYN_WEEKLY_20261106.txt"]
        assert first.cursor == "landing/iqvia_rx/RXDYN_WEEKLY_20261106.txt"
        assert "StartAfter" not in listed[-1]

        again = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert again.run_requests == [] and again.cursor == first.cursor
        assert listed[-1]["StartAfter"] == "fe/landing/iqvia_rx/RXDYN_WEEKLY_20261106.txt"

        land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt", delimited("iqvia_rx", iqvia_rows(1)))
        land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113_v2.txt", delimited("iqvia_rx", iqvia_rows(1)))
        third = sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
        assert [r.run_key for r in third.run_requests] == ["landing/iqvia_rx/RXDYN_WEEKLY_20261113.txt"]
        assert third.cursor == "landing/iqvia_rx/RXDYN_WEEKLY_20261113.txt"  # a rejected key moves no cursor
    # the misnamed file was rejected by the tick, with its reason
    assert lake.exists("rejected/iqvia_rx/RXDYN_WEEKLY_20261113_v2.txt.error.json")


def test_future_and_non_friday_dates_are_rejected_before_any_run(aws_env):
    lake = lake_from_settings(load_settings(aws_env))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20991231.txt", delimited("iqvia_rx", iqvia_rows(1)))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261118.txt", delimited("iqvia_rx", iqvia_rows(1)))
    plan = plan_landing(lake, FEEDS["iqvia_rx"])
    assert plan.runs == []
    assert sorted(r.landing_key.rsplit("/", 1)[-1] for r in plan.rejected) == [
        "RXDYN_WEEKLY_20261118.txt", "RXDYN_WEEKLY_20991231.txt"]
    assert all("not a weekly partition" in r.reason for r in plan.rejected)


def test_ingestion_jobs_run_through_dagster_on_s3(aws_env):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    land(lake, "product_master", "PRODUCT_MASTER_20261120.csv",
         delimited("product_master", [CLEAN["product_master"]]))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    defs = build_definitions(settings)
    summary = RunSummary()
    with dg.instance_for_test() as instance:
        ingest_new_deliveries(defs, settings, instance, summary, echo=lambda _: None)
        assert summary.ok and summary.runs == 2
        assert {"raw_iqvia_rx", "validated_iqvia_rx", "validated_product_master"} <= set(summary.materialized)
        assert "validated_iqvia_rx:ndc11_in_product_master (WARN)" not in summary.checks_failed
        materialized = instance.get_latest_materialization_event(dg.AssetKey("validated_iqvia_rx"))
        assert materialized.asset_materialization.partition == "2026-11-20"
        assert materialized.asset_materialization.metadata["rows_valid"].value == 3


def test_generated_feeds_ingest_on_s3_as_the_manifest_expects_and_a_backfill_changes_nothing(aws_env):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    manifest = generate(lake, date(2026, 11, 20), weeks=1, hcps=40, seed=3, defect_rate=0.02)
    defs = build_definitions(settings)
    summary = RunSummary()
    with dg.instance_for_test() as instance:
        ingest_new_deliveries(defs, settings, instance, summary, echo=lambda _: None)
        assert summary.ok, summary.failed_runs
        outcomes = {r.landing_key: r for r in read_delivery_log(lake)}
        for expected in manifest["files"]:
            record = outcomes[expected["key"]]
            assert record.outcome == expected["expected"], expected["key"]
            if record.outcome == "loaded":
                assert record.rules == expected["row_defects"], expected["key"]

        # A backfill from the UI carries no landing key: the partition is rebuilt from raw, identically.
        key = zone_key("validated", "iqvia_rx", "2026-11-20")
        before = lake.read_bytes(key)
        rerun = defs.resolve_job_def("ingest_iqvia_rx_job").execute_in_process(
            instance=instance, partition_key="2026-11-20")
        assert rerun.success
        assert lake.read_bytes(key) == before
        assert len(read_delivery_log(lake, "iqvia_rx")) == len([r for r in outcomes.values() if r.feed == "iqvia_rx"])

    s3 = boto3.client("s3", endpoint_url=aws_env["FE_S3_ENDPOINT_URL"], region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=aws_env["FE_S3_BUCKET"], Prefix="fe/")
    written = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].startswith("fe/landing/")]
    assert any(k.startswith("fe/validated/sap_billing/") for k in written)
    for object_key in written:
        head = s3.head_object(Bucket=aws_env["FE_S3_BUCKET"], Key=object_key)
        assert head.get("ServerSideEncryption") == "aws:kms", object_key
