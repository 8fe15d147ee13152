"""Publishing extracts to Tableau, against a local stub of the REST API (`tableau_server_stub`).

What the stub proves: the publisher speaks the REST calls in the right order with the right
shape (PAT sign-in to the configured site, project lookup by name, multipart publish in
Overwrite mode with the data source name and the actual `.hyper` bytes, the chunked upload
path, refresh, sign-out), sends the session token and site id on every call, retries
transient failures (503, 429, connection refused) a bounded number of times and does not
retry other 4xx, fails sign-in with a clear message, and never leaks the token secret.

What it cannot prove:
- the real server's permission model (project permissions, site roles, "Publish" and
  "Overwrite" capabilities, content ownership): the stub lets any valid token do anything;
- that Tableau accepts these extracts and that a real extract refresh succeeds (a refresh of
  a published .hyper with no live connection behind it is refused or is a no-op on a real
  server; the stub just returns a job id), nor the job's later progress;
- REST API version differences (we pin 3.19 and never probe serverinfo; older servers lack
  some calls, newer ones add elements), response-XML details beyond what TSC parses, and real
  pagination of many projects or nested projects with the same name;
- Tableau Cloud specifics: pod URLs and redirects, site content URL rules, PAT expiry and
  the one-session-per-PAT rule, rate limits, Tableau Bridge for refreshes, upload limits.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import traceback

import pytest

from fe_platform.lib.dashboards import DASHBOARDS, write_extract
from fe_platform.lib.dashboards.extract import hyper_process
from fe_platform.lib.dashboards.tableau import TableauPublishError, publish_extracts
from fe_platform.settings import TableauSettings

try:
    from fe_platform_tests.tableau_server_stub import TableauServerStub
    from fe_platform_tests.test_dashboards_fixtures import fabricate_tables
except ImportError:
    from tableau_server_stub import TableauServerStub
    from test_dashboards_fixtures import fabricate_tables

SECRET = "s3cr3t-PAT-value-never-to-be-printed"
TOKEN = "fe-platform-publisher"


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    out = tmp_path_factory.mktemp("hyper")
    tables = fabricate_tables()
    paths = {}
    with hyper_process() as hyper:
        for d in DASHBOARDS:
            path = out / f"{d.slug}.hyper"
            write_extract(d, tables, path, hyper=hyper)
            paths[d.datasource_name] = path
    return paths


@pytest.fixture
def stub():
    with TableauServerStub(token_name=TOKEN, token_secret=SECRET, site="fe", project="F&E Dashboards") as s:
        yield s


def settings_for(stub, **overrides) -> TableauSettings:
    values = dict(server_url=stub.url, site="fe", project="F&E Dashboards", token_name=TOKEN,
                  token_secret=SECRET)
    values.update(overrides)
    return TableauSettings(**values)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_publish_sequence(stub, extracts):
    sleeps = Sleeps()
    jobs = publish_extracts(settings_for(stub), extracts, sleep=sleeps)
    assert list(jobs) == [d.datasource_name for d in DASHBOARDS]
    assert sorted(jobs.values()) == sorted(stub.jobs) and len(set(stub.jobs)) == len(DASHBOARDS)
    assert sleeps == []
    calls = stub.calls()
    site = f"/sites/{stub.site_id}"
    assert calls[0] == "POST /auth/signin"
    assert calls[1] == f"GET {site}/projects"
    assert calls[2:-1] == [c for ds_id in stub.datasources.values()
                           for c in (f"POST {site}/datasources", f"POST {site}/datasources/{ds_id}/refresh")]
    assert calls[-1] == "POST /auth/signout" and stub.signed_out == 1
    assert stub.requests[1].query["filter"] == ["name:eq:F&E Dashboards"]
    assert all(q["overwrite"] == "true" and q["datasourceType"] == "hyper" for q in stub.publish_queries)
    for name, path in extracts.items():
        assert stub.sha256(name) == hashlib.sha256(path.read_bytes()).hexdigest()
    # every call after sign-in carried the session token
    assert all(r.headers.get("x-tableau-auth") for r in stub.requests[1:])


def test_republish_overwrites_the_same_datasources(stub, extracts):
    publish_extracts(settings_for(stub), extracts, sleep=Sleeps())
    first = dict(stub.datasources)
    publish_extracts(settings_for(stub), extracts, sleep=Sleeps())
    assert stub.datasources == first and len(stub.refreshed) == 2 * len(DASHBOARDS)


def test_chunked_upload_path(stub, extracts, monkeypatch):
    monkeypatch.setenv("TSC_FILESIZE_LIMIT_MB", "0")  # force TSC's fileUploads path
    name = DASHBOARDS[0].datasource_name
    jobs = publish_extracts(settings_for(stub), {name: extracts[name]}, sleep=Sleeps())
    assert jobs[name] == stub.jobs[0]
    calls = stub.calls()
    assert any(c.endswith("/fileUploads") for c in calls)
    assert any("/fileUploads/" in c and c.startswith("PUT") for c in calls)
    assert "uploadSessionId" in stub.publish_queries[0]
    assert stub.sha256(name) == hashlib.sha256(extracts[name].read_bytes()).hexdigest()


def test_failed_signin_is_a_clear_error_without_the_secret(stub, extracts, caplog):
    stub.fail_signin = True
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TableauPublishError) as info:
        publish_extracts(settings_for(stub), extracts, sleep=Sleeps())
    message = str(info.value)
    assert stub.url in message and "'fe'" in message and TOKEN in message and "sign-in failed" in message
    assert stub.calls() == ["POST /auth/signin"]  # a 401 is not retried
    full = "".join(traceback.format_exception(info.value)) + caplog.text
    assert SECRET not in full


def test_wrong_site_is_refused(stub, extracts):
    with pytest.raises(TableauPublishError, match="site 'other'"):
        publish_extracts(settings_for(stub, site="other"), extracts, sleep=Sleeps())


@pytest.mark.parametrize("call", ["signin", "projects", "publish", "refresh"])
def test_transient_503_is_retried(stub, extracts, call, caplog):
    stub.fail_once(call, 503)
    sleeps = Sleeps()
    caplog.set_level(logging.DEBUG)
    jobs = publish_extracts(settings_for(stub), extracts, sleep=sleeps, backoff_seconds=0.5)
    assert len(jobs) == len(DASHBOARDS) and all(jobs.values())
    assert sleeps == [0.5]
    assert [r.status for r in stub.requests].count(503) == 1
    assert "retrying" in caplog.text and SECRET not in caplog.text


def test_429_is_retried_with_backoff(stub, extracts):
    stub.fail_once("publish", 429)
    stub.fail_once("publish", 429)
    sleeps = Sleeps()
    publish_extracts(settings_for(stub), extracts, sleep=sleeps, backoff_seconds=1.0)
    assert sleeps == [1.0, 2.0]


def test_retries_are_bounded(stub, extracts):
    for _ in range(3):
        stub.fail_once("refresh", 503)
    sleeps = Sleeps()
    with pytest.raises(TableauPublishError, match="HTTP 503") as info:
        publish_extracts(settings_for(stub), extracts, sleep=sleeps, max_attempts=3)
    assert len(sleeps) == 2
    assert DASHBOARDS[0].datasource_name in str(info.value)
    assert stub.signed_out == 1  # signed out even on failure


def test_other_4xx_is_not_retried(stub, extracts):
    stub.fail_once("publish", 403)
    sleeps = Sleeps()
    with pytest.raises(TableauPublishError, match="403000"):
        publish_extracts(settings_for(stub), extracts, sleep=sleeps)
    assert sleeps == []


def test_unknown_project(stub, extracts):
    with pytest.raises(TableauPublishError, match="project 'Nope' not found"):
        publish_extracts(settings_for(stub, project="Nope"), extracts, sleep=Sleeps())


def test_unreachable_server_is_retried_then_clear(extracts):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    settings = TableauSettings(f"http://127.0.0.1:{port}", "fe", "F&E Dashboards", TOKEN, SECRET)
    with pytest.raises(TableauPublishError) as info:
        publish_extracts(settings, extracts, sleep=sleeps, max_attempts=3)
    assert len(sleeps) == 2 and "cannot reach" in str(info.value) and SECRET not in str(info.value)
