"""The pullers' settings and Dagster wiring: what configures each source, that no secret shows, that the
puller assets replace the landing specs of their feeds in the whole graph, and the fx_rates asset."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from fe_platform.defs import ingestion
from fe_platform.defs.ingestion.pullers import build_puller_defs
from fe_platform.defs.resources import lake_from_settings, platform_resources
from fe_platform.settings import SettingsError, load_settings
from fe_platform_tests.test_fx_api import GOOD, KEY, FxServer

SP = {"FE_SP_DISPENSE_HOST": "hub.internal", "FE_SP_DISPENSE_DATABASE": "hub", "FE_SP_DISPENSE_USER": "reader",
      "FE_SP_DISPENSE_PASSWORD": "pw-Secret-42"}
EVENTS = {"FE_EVENTS_API_URL": "https://events.internal/api/", "FE_EVENTS_API_TOKEN": "tok-Secret-43"}


def settings(tmp_path, **env):
    return load_settings({"FE_HOME": str(tmp_path), **env})


def test_each_source_is_configured_only_when_set(tmp_path):
    none = settings(tmp_path)
    assert (none.sp_dispense, none.events_api, none.engagement_stream) == (None, None, None)
    assert none.public()["sources"] == {"sp_dispense": None, "events_api_url": None, "kinesis_stream": None}
    s = settings(tmp_path, **SP, **EVENTS, FE_KINESIS_STREAM="hcp-engagement", AWS_REGION="eu-west-1")
    assert s.sp_dispense.conninfo() == {"host": "hub.internal", "port": 5432, "dbname": "hub", "user": "reader",
                                        "password": "pw-Secret-42", "sslmode": "prefer"}
    assert s.sp_dispense.table == "dispense" and s.events_api.url == "https://events.internal/api"
    stream = s.engagement_stream
    assert (stream.stream, stream.region, stream.buffer_bytes, stream.buffer_seconds, stream.tick_seconds) == (
        "hcp-engagement", "eu-west-1", 5 << 20, 60.0, 40.0)


def test_no_secret_in_info_or_repr(tmp_path):
    s = settings(tmp_path, **{**SP, **EVENTS, "FE_EVENTS_API_URL": "https://bot:pa55@events.internal/api?key=k3y-value"})
    shown = s.to_json() + repr(s)
    for secret in ("pw-Secret-42", "tok-Secret-43", "pa55", "k3y-value"):
        assert secret not in shown, secret
    assert s.public()["sources"]["sp_dispense"] == "postgresql://reader@hub.internal:5432/hub (table dispense)"


@pytest.mark.parametrize("env, message", [
    ({"FE_SP_DISPENSE_HOST": "h"}, "FE_SP_DISPENSE_DATABASE is required"),
    ({**SP, "FE_SP_DISPENSE_PASSWORD": ""}, "FE_SP_DISPENSE_PASSWORD is required"),
    ({**SP, "FE_SP_DISPENSE_PORT": "99999"}, "FE_SP_DISPENSE_PORT must be a TCP port"),
    ({**SP, "FE_SP_DISPENSE_TABLE": "a.b.c"}, "FE_SP_DISPENSE_TABLE must be"),
    ({**SP, "FE_SP_DISPENSE_SSLMODE": "maybe"}, "FE_SP_DISPENSE_SSLMODE must be one of"),
    ({"FE_EVENTS_API_URL": "https://events.internal"}, "FE_EVENTS_API_TOKEN is required"),
    ({**EVENTS, "FE_EVENTS_API_URL": "events.internal"}, "must be an http(s) URL"),
    ({"FE_KINESIS_STREAM": "s", "FE_ENGAGEMENT_BUFFER_BYTES": "5MB"}, "FE_ENGAGEMENT_BUFFER_BYTES must be a number"),
    ({"FE_KINESIS_STREAM": "s", "FE_ENGAGEMENT_TICK_SECONDS": "120"}, "FE_ENGAGEMENT_TICK_SECONDS must be between"),
], ids=["sp-partial", "sp-no-password", "sp-port", "sp-table", "sp-sslmode", "events-no-token", "events-url",
        "buffer-bytes", "tick"])
def test_a_half_configured_source_stops_the_platform_naming_the_setting(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(tmp_path, **env)


def test_aws_mode_requires_tls_to_the_database_by_default(tmp_path):
    aws = {"FE_MODE": "aws", "FE_S3_BUCKET": "b", "AWS_REGION": "us-east-1", "FE_PII_HMAC_KEY": "k" * 20,
           "FE_WAREHOUSE": "duckdb"}
    assert settings(tmp_path, **aws, **SP).sp_dispense.sslmode == "require"


def whole_graph(s) -> dg.Definitions:
    """The ingestion Definitions: the pulled feeds' landing assets are the pullers'."""
    return dg.Definitions.merge(ingestion.build_defs(s), dg.Definitions(resources=platform_resources(s)))


def puller_defs(s) -> dg.Definitions:
    return dg.Definitions.merge(build_puller_defs(s), dg.Definitions(resources=platform_resources(s)))


def test_puller_assets_replace_the_landing_specs_and_keep_lineage(tmp_path):
    defs = whole_graph(settings(tmp_path))
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    fx = graph.get(dg.AssetKey("landing_fx_rates"))
    assert fx.is_materializable and type(fx.partitions_def).__name__ == "DailyPartitionsDefinition"
    assert dg.AssetKey("landing_fx_rates") in graph.get(dg.AssetKey("raw_fx_rates")).parent_keys
    for feed in ("sp_dispense", "hcp_event", "hcp_engagement"):
        node = graph.get(dg.AssetKey(f"landing_{feed}"))
        assert node.group_name == "landing" and node.owners, feed
        assert type(node.partitions_def).__name__ == "DailyPartitionsDefinition"
        assert node.is_materializable == (feed != "hcp_engagement")  # the stream's files come from the sensor
    checks = graph.get_check_keys_for_assets({dg.AssetKey("landing_sp_dispense")})
    assert {c.name for c in checks} == {"source_count_matches"}


@pytest.fixture
def fx_server():
    server = FxServer()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()


def test_landing_fx_rates_pulls_its_partition_and_the_schedule_its_own_day(fx_server, tmp_path):
    s = settings(tmp_path, FE_FX_API_URL=fx_server.url + "/v1/{date}?apikey=s3cr3tkey")
    defs = puller_defs(s)
    result = defs.resolve_job_def("landing_fx_rates_job").execute_in_process(partition_key="2025-03-14")
    assert result.success
    assert lake_from_settings(s).read_bytes(KEY) == GOOD
    (materialization,) = result.asset_materializations_for_node("landing_fx_rates")
    assert materialization.metadata["landing_key"].value == KEY
    assert "s3cr3tkey" not in str(materialization.metadata)
    assert fx_server.requests[0]["path"] == "/v1/2025-03-14?apikey=s3cr3tkey"
    schedule = defs.resolve_schedule_def("landing_fx_rates_daily")
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 3, 15, 6, tzinfo=UTC),
                                     repository_def=defs.get_repository_def())
    assert [r.partition_key for r in schedule.evaluate_tick(tick).run_requests] == ["2025-03-15"]
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_an_unconfigured_puller_fails_clearly_and_its_schedule_is_stopped(tmp_path):
    defs = puller_defs(settings(tmp_path))
    for job, message in (("landing_fx_rates_job", "FE_FX_API_URL is not set"),
                         ("landing_sp_dispense_job", "FE_SP_DISPENSE_HOST"),
                         ("landing_hcp_event_job", "FE_EVENTS_API_URL")):
        result = defs.resolve_job_def(job).execute_in_process(partition_key="2025-03-14", raise_on_error=False)
        assert not result.success
        assert message in result.failure_data_for_node(job.removesuffix("_job")).error.message
    for name in ("landing_fx_rates_daily", "landing_sp_dispense_daily", "recheck_sp_dispense_daily",
                 "landing_hcp_event_daily"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED
