"""The hcp_event puller against a real HTTP server on 127.0.0.1 serving the generator's attendances,
told to fail in every way the contract names (429, 5xx, 401/403, bad shapes, a hanging server)."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from fe_platform.defs.resources import lake_from_settings
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.sources import hcp_event
from fe_platform.lib.sources.landing import PullError
from fe_platform.sample_data.generator import generate
from fe_platform.sample_data.pulled_feeds import attendance_items
from fe_platform.settings import load_settings
from fe_platform_tests.conftest import free_port
from fe_platform_tests.events_api_stub import Answer, EventsApiStub
from fe_platform_tests.test_puller_defs import puller_defs

END = date(2026, 11, 20)
TOKEN = "evt-token-9f8e7d6c5b4a"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("generated"))
    manifest = generate(lake, END, weeks=2, hcps=400, seed=9, defect_rate=0.02, feeds=("hcp_event",))
    return lake, manifest


@pytest.fixture
def api(generated):
    lake, manifest = generated
    with EventsApiStub(attendance_items(lake, [f["key"] for f in manifest["files"]]), TOKEN, page_size=10) as stub:
        yield stub


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def busiest(manifest) -> dict:
    return max(manifest["files"], key=lambda f: f["rows"])


def pull(lake, api, day, **kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("timeout", 2.0)
    return hcp_event.pull_hcp_event(lake, api.url, kw.pop("token", TOKEN), day, **kw)


def fails(lake, api, day, *parts, **kw) -> PullError:
    with pytest.raises(PullError) as info:
        pull(lake, api, day, **kw)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert TOKEN not in message
    assert list(lake.list("")) == [], "nothing may be written on failure"
    return info.value


def test_every_day_lands_exactly_the_generated_file_page_by_page(generated, api, lake):
    source, manifest = generated
    files = sorted(manifest["files"], key=lambda f: -f["rows"])  # the busiest first: it has 3 pages or more
    assert files[0]["rows"] > 20
    for f in files:
        result = pull(lake, api, date.fromisoformat(f["partition"]))
        assert (result.key, result.rows, result.pages) == (f["key"], f["rows"], max(1, -(-f["rows"] // 10)))
        assert lake.read_bytes(f["key"]) == source.read_bytes(f["key"]), f["key"]
    first = api.requests[0]
    assert first["path"] == "/v1/attendances" and first["authorization"] == f"Bearer {TOKEN}"
    day = date.fromisoformat(files[0]["partition"])
    assert first["query"] == {"updated_since": f"{day}T00:00:00Z", "updated_before": f"{day + timedelta(1)}T00:00:00Z"}
    assert [r["query"].get("page_token") for r in api.requests[:3]] == [None, "p10", "p20"]


def test_429_honours_retry_after_and_5xx_is_retried_with_back_off(generated, api, lake):
    source, manifest = generated
    f = busiest(manifest)
    api.fail_next(Answer(429, b'{"error": "slow down"}', {"Retry-After": "7"}), Answer(500, b"oops"),
                  Answer(503, b"busy"))
    sleeps = Sleeps()
    result = pull(lake, api, date.fromisoformat(f["partition"]), sleep=sleeps, backoff=0.5)
    assert sleeps == [7.0, 1.0, 2.0]  # Retry-After, then 0.5 x 2^(attempt-1) on the same page
    assert lake.read_bytes(result.key) == source.read_bytes(f["key"])


def test_a_429_with_an_http_date_waits_until_then_capped(generated, api, lake):
    _, manifest = generated
    later = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    api.fail_next(Answer(429, b"", {"Retry-After": later}))
    sleeps = Sleeps()
    pull(lake, api, date.fromisoformat(busiest(manifest)["partition"]), sleep=sleeps, max_retry_after=90)
    assert sleeps == [90.0]


def test_5xx_every_time_gives_up_after_the_attempts(generated, api, lake):
    _, manifest = generated
    api.fail_next(*[Answer(502, b"bad gateway")] * 3)
    sleeps = Sleeps()
    fails(lake, api, date.fromisoformat(busiest(manifest)["partition"]), api.url, "page 1", "HTTP 502",
          "after 3 attempts", attempts=3, sleep=sleeps)
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_fails_at_once(generated, api, lake, status):
    _, manifest = generated
    api.fail_next(Answer(status, b'{"error": "token expired"}'))
    sleeps = Sleeps()
    fails(lake, api, date.fromisoformat(busiest(manifest)["partition"]), f"HTTP {status}",
          "refused the bearer token", "not retried", sleep=sleeps)
    assert sleeps == [] and len(api.requests) == 1


def test_a_wrong_token_is_refused_by_the_server_and_never_shown(generated, api, lake):
    _, manifest = generated
    with pytest.raises(PullError, match="HTTP 401") as info:
        pull(lake, api, date.fromisoformat(busiest(manifest)["partition"]), token="wrong-token-12345")
    assert "wrong-token-12345" not in str(info.value)


@pytest.mark.parametrize("body, problem", [
    (b"<html>maintenance</html>", "the page is not JSON"),
    (b'[{"attendance_id": "AT-0000000001"}]', "not an object (a list)"),
    (b'{"items": []}', "no 'next_page_token'"),
    (b'{"data": [], "next": null}', "no 'items' and no 'next_page_token'"),
    (b'{"items": {"a": 1}, "next_page_token": null}', '"items" is not a list'),
    (b'{"items": [{"a": 1}, "AT-1"], "next_page_token": null}', '1 of 2 "items" are not objects'),
    (b'{"items": [], "next_page_token": 2}', '"next_page_token" is neither'),
    (b'{"items": [{"meal_value_usd": NaN}], "next_page_token": null}', "NaN is not valid JSON"),
], ids=["html", "array", "no-token", "other-names", "items-object", "item-string", "token-number", "nan"])
def test_a_page_of_the_wrong_shape_fails_the_pull(generated, api, lake, body, problem):
    _, manifest = generated
    api.fail_next(Answer(200, body))
    fails(lake, api, date.fromisoformat(busiest(manifest)["partition"]), "page 1", problem)


def test_a_bad_page_after_good_ones_writes_nothing(generated, api, lake):
    _, manifest = generated
    f = busiest(manifest)
    day = date.fromisoformat(f["partition"])
    good = api.serve("/v1/attendances", hcp_event.day_params(day), f"Bearer {TOKEN}")
    api.fail_next(good, Answer(200, b'{"items": "oops", "next_page_token": null}'))
    fails(lake, api, day, "page 2", '"items" is not a list')


def test_a_page_token_that_comes_back_is_a_loop(generated, api, lake):
    _, manifest = generated
    loop = Answer(200, json.dumps({"items": [{"attendance_id": "AT-0000000001"}], "next_page_token": "t1"}).encode())
    api.fail_next(loop, loop)
    fails(lake, api, date.fromisoformat(busiest(manifest)["partition"]), "page 2", "a loop")


def test_a_hanging_api_times_out_and_is_retried(generated, api, lake):
    _, manifest = generated
    api.fail_next(Answer(delay=5.0), Answer(delay=5.0))
    started = time.perf_counter()
    fails(lake, api, date.fromisoformat(busiest(manifest)["partition"]), "no answer within 0.2 s",
          "after 2 attempts", timeout=0.2, attempts=2)
    assert time.perf_counter() - started < 2.5


def test_a_down_api_is_retried_then_reported(lake):
    url = f"http://127.0.0.1:{free_port()}"
    sleeps = Sleeps()
    with pytest.raises(PullError, match="unreachable.*after 3 attempts") as info:
        hcp_event.pull_hcp_event(lake, url, TOKEN, END, attempts=3, sleep=sleeps)
    assert url in str(info.value) and sleeps == [1.0, 2.0]


def test_a_day_without_attendances_writes_no_file(api, lake):
    result = pull(lake, api, date(2025, 1, 1))
    assert (result.key, result.rows, result.pages) == (None, 0, 1)
    assert list(lake.list("")) == []


def test_an_unchanged_re_pull_writes_nothing(generated, api, lake):
    _, manifest = generated
    day = date.fromisoformat(busiest(manifest)["partition"])
    assert pull(lake, api, day).changed
    assert not pull(lake, api, day).changed


# --- Dagster ---------------------------------------------------------------------------------------

def test_asset_pulls_a_partition_and_the_schedule_asks_for_the_day_before(generated, api, tmp_path):
    source, manifest = generated
    settings = load_settings({"FE_HOME": str(tmp_path), "FE_EVENTS_API_URL": api.url,
                              "FE_EVENTS_API_TOKEN": TOKEN})
    assert TOKEN not in settings.to_json() and TOKEN not in repr(settings)
    defs = puller_defs(settings)
    f = busiest(manifest)
    result = defs.resolve_job_def("landing_hcp_event_job").execute_in_process(partition_key=f["partition"])
    assert result.success
    (materialization,) = result.asset_materializations_for_node("landing_hcp_event")
    assert materialization.metadata["rows"].value == f["rows"]
    assert TOKEN not in str(materialization.metadata)
    assert lake_from_settings(settings).read_bytes(f["key"]) == source.read_bytes(f["key"])

    schedule = defs.resolve_schedule_def("landing_hcp_event_daily")
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 2, 30, tzinfo=UTC),
                                     repository_def=defs.get_repository_def())
    assert [r.partition_key for r in schedule.evaluate_tick(tick).run_requests] == ["2026-11-20"]
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_refused_token_fails_the_run_clearly(api, tmp_path):
    settings = load_settings({"FE_HOME": str(tmp_path), "FE_EVENTS_API_URL": api.url,
                              "FE_EVENTS_API_TOKEN": "expired-token-777"})
    result = puller_defs(settings).resolve_job_def("landing_hcp_event_job").execute_in_process(
        partition_key="2026-11-20", raise_on_error=False)
    assert not result.success
    error = result.failure_data_for_node("landing_hcp_event").error.message
    assert "HTTP 401" in error and "refused the bearer token" in error and "expired-token-777" not in error
