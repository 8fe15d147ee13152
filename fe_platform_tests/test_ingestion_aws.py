"""Ingestion in aws mode: the lake is S3 (a moto server over HTTP), writes are SSE-KMS encrypted."""

from datetime import date

import boto3
import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from fe_platform.definitions import build_definitions
from fe_platform.defs.ingestion.assets import DELIVERY_LOG
from fe_platform.defs.ingestion.sensors import FEED_TAG, landing_sensor
from fe_platform.defs.resources import ingestion_from_settings, lake_from_settings
from fe_platform.lib.delivery_log import LogIndex, read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.lake import S3Lake
from fe_platform.lib.planning import plan_landing
from fe_platform.lib.zones import read_partition
from fe_platform.runner.execution import Runner
from fe_platform.runner.planning import RANGE_END, RANGE_START
from fe_platform.runner.report import RunSummary
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
    assert read_partition(lake, "validated", "iqvia_rx", "2026-11-20").num_rows == 3


def test_sensor_batches_new_deliveries_and_starts_nothing_the_log_holds(aws_env):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    resources = {"lake": lake, "ingestion": ingestion_from_settings(settings)}
    feed = FEEDS["iqvia_rx"]
    first_key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261030.txt", delimited("iqvia_rx", iqvia_rows(1)))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261106.txt", delimited("iqvia_rx", iqvia_rows(1)))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113_v2.txt", delimited("iqvia_rx", iqvia_rows(1)))
    sensor = landing_sensor(feed, None)
    with dg.instance_for_test() as instance:
        tick = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        [request] = tick.run_requests
        # the tick's rejection is a new record in the delivery log: reporting follows it
        assert [e.asset_key for e in tick.asset_events] == [DELIVERY_LOG]
        assert request.run_config["ops"]["ingest_iqvia_rx"]["config"]["landing_keys"] == [
            "landing/iqvia_rx/RXDYN_WEEKLY_20261030.txt", "landing/iqvia_rx/RXDYN_WEEKLY_20261106.txt"]
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-10-30", "2026-11-06")
        # the misnamed file was rejected by the tick, with its reason, and is not asked for again
        assert lake.exists("rejected/iqvia_rx/RXDYN_WEEKLY_20261113_v2.txt.error.json")

        # while that run is in progress, a tick starts nothing
        instance.add_run(DagsterRun(job_name="ingest_iqvia_rx_job", run_id=make_new_run_id(),
                                    tags={FEED_TAG: "iqvia_rx"}, status=DagsterRunStatus.STARTED))
        assert isinstance(sensor(dg.build_sensor_context(instance=instance, resources=resources)), dg.SkipReason)

    with dg.instance_for_test() as instance:
        for key in request.run_config["ops"]["ingest_iqvia_rx"]["config"]["landing_keys"]:
            ingest_landing_file(lake, key, settings.pii_hmac_key)
        idle = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(idle, dg.SkipReason)  # what the log holds with the same bytes starts no run

        land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261030.txt", delimited("iqvia_rx", iqvia_rows(2)))  # a correction
        [again] = sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests
        assert again.run_config["ops"]["ingest_iqvia_rx"]["config"]["landing_keys"] == [first_key]


def test_future_and_non_friday_dates_are_rejected_before_any_run(aws_env):
    lake = lake_from_settings(load_settings(aws_env))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20270101.txt", delimited("iqvia_rx", iqvia_rows(1)))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261118.txt", delimited("iqvia_rx", iqvia_rows(1)))
    plan = plan_landing(lake, FEEDS["iqvia_rx"], LogIndex.of(lake, "iqvia_rx"), date(2026, 11, 30))
    assert plan.new == []
    reasons = {obj.key.rsplit("/", 1)[-1]: why for obj, why in plan.to_reject}
    assert "not a Friday" in reasons["RXDYN_WEEKLY_20261118.txt"]
    assert "in the future" in reasons["RXDYN_WEEKLY_20270101.txt"]


def ingest_all(settings, defs, instance) -> RunSummary:
    runner = Runner(settings, defs, instance, echo=lambda _: None)
    runner.ingest()
    return runner.summary


def test_ingestion_jobs_run_through_dagster_on_s3(aws_env):
    settings = load_settings(aws_env)
    lake = lake_from_settings(settings)
    land(lake, "product_master", "PRODUCT_MASTER_20261120.csv",
         delimited("product_master", [CLEAN["product_master"]]))
    land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        summary = ingest_all(settings, defs, instance)
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
    with dg.instance_for_test() as instance:
        summary = ingest_all(settings, defs, instance)
        assert summary.ok, summary.failed_runs
        outcomes = {r.landing_key: r for r in read_delivery_log(lake)}
        for expected in manifest["files"]:
            record = outcomes[expected["key"]]
            assert record.outcome == expected["expected"], expected["key"]
            if record.outcome == "loaded":
                assert record.rules == expected["row_defects"], expected["key"]

        # A backfill from the UI carries no landing key: the partition is rebuilt from raw, identically.
        before = {z: read_partition(lake, z, "iqvia_rx", "2026-11-20") for z in ("validated", "quarantine")}
        rerun = defs.resolve_job_def("ingest_iqvia_rx_job").execute_in_process(
            instance=instance, partition_key="2026-11-20")
        assert rerun.success
        assert all(read_partition(lake, z, "iqvia_rx", "2026-11-20").equals(before[z]) for z in before)
        assert len(read_delivery_log(lake, "iqvia_rx")) == len([r for r in outcomes.values() if r.feed == "iqvia_rx"])

    s3 = boto3.client("s3", endpoint_url=aws_env["FE_S3_ENDPOINT_URL"], region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=aws_env["FE_S3_BUCKET"], Prefix="fe/")
    written = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].startswith("fe/landing/")]
    assert any(k.startswith("fe/validated/sap_billing/") for k in written)
    for object_key in written:
        head = s3.head_object(Bucket=aws_env["FE_S3_BUCKET"], Key=object_key)
        assert head.get("ServerSideEncryption") == "aws:kms", object_key
