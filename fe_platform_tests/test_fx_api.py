"""The fx_rates puller against a real HTTP server on 127.0.0.1.

The server answers from a script of responses (status, body, delay), the last one
repeating, and records every request; tests inject a `sleep` that only records, so
retries cost no time.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fe_platform import cli
from fe_platform.lib.fx_api import FxApiError, pull_fx_rates, redact_url, request_url
from fe_platform.lib.ingestion import ingest_landing_file
from fe_platform.lib.lake import LocalLake
from fe_platform_tests.conftest import free_port

DAY = date(2025, 3, 14)
KEY = "landing/fx_rates/FX_RATES_20250314.json"
RATES = {"USD": 1.0512, "GBP": 0.8421, "JPY": 161.2, "CHF": 0.9563, "SEK": 11.02}
# Spacing, key order and a trailing newline a re-serialisation would not keep: landing must hold these bytes.
GOOD = ('{ "date":"2025-03-14",  "base": "EUR",\n  "rates": {' +
        ", ".join(f'"{c}": {r}' for c, r in RATES.items()) + "}\n}\n").encode()


@dataclass
class Answer:
    status: int = 200
    body: bytes = GOOD
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


class FxServer:
    def __init__(self):
        self.script: list[Answer] = [Answer()]
        self.requests: list[dict] = []
        self.release = threading.Event()  # set at teardown: a hanging handler returns at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                answer = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if answer.delay and server.release.wait(answer.delay):
                    return
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def answer(self, *answers: Answer) -> None:
        self.script = list(answers)


@pytest.fixture
def server():
    srv = FxServer()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=2)
    assert not srv.thread.is_alive()


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def pull(lake, url, day=DAY, **kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("timeout", 2.0)
    return pull_fx_rates(lake, url, day, **kw)


def landing(lake) -> list[str]:
    return [o.key for o in lake.list("landing/")]


def fails(lake, url, *parts, **kw) -> FxApiError:
    with pytest.raises(FxApiError) as info:
        pull(lake, url, **kw)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert landing(lake) == [], "nothing may be written on failure"
    return info.value


# --- the URL ---------------------------------------------------------------------------------------

def test_request_url_appends_the_date_or_fills_the_placeholder():
    assert request_url("https://fx.example/v1/rates", DAY) == "https://fx.example/v1/rates?date=2025-03-14"
    assert request_url("https://fx.example/v1?base=EUR", DAY) == "https://fx.example/v1?base=EUR&date=2025-03-14"
    assert request_url("https://fx.example/v1/{date}?base=EUR", DAY) == "https://fx.example/v1/2025-03-14?base=EUR"


def test_redact_url_strips_userinfo_and_query_values_but_the_date():
    assert (redact_url("https://bob:pa55word@fx.example/v1?apikey=s3cr3t&date=2025-03-14")
            == "https://fx.example/v1?apikey=***&date=2025-03-14")


# --- good answers ----------------------------------------------------------------------------------

def test_good_body_lands_byte_for_byte(server, lake):
    assert pull(lake, server.url + "/v1/rates") == KEY
    assert lake.read_bytes(KEY) == GOOD
    assert landing(lake) == [KEY]
    assert [r["path"] for r in server.requests] == ["/v1/rates?date=2025-03-14"]


def test_date_placeholder_is_filled_in_the_path(server, lake):
    assert pull(lake, server.url + "/v1/{date}?base=EUR") == KEY
    assert server.requests[0]["path"] == "/v1/2025-03-14?base=EUR"


def test_503_then_success_is_retried_with_exponential_backoff(server, lake):
    server.answer(Answer(503, b"busy"), Answer(503, b"busy"), Answer())
    sleeps = Sleeps()
    assert pull(lake, server.url, sleep=sleeps, backoff=0.5) == KEY
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]
    assert lake.read_bytes(KEY) == GOOD


def test_429_honours_retry_after(server, lake):
    server.answer(Answer(429, b"", headers={"Retry-After": "7"}), Answer())
    sleeps = Sleeps()
    pull(lake, server.url, sleep=sleeps)
    assert sleeps == [7.0] and len(server.requests) == 2


def test_repeated_pull_of_the_same_body_is_a_no_op(server, lake):
    pull(lake, server.url)
    before = lake.list("landing/").__next__().modified
    assert pull(lake, server.url) == KEY
    assert next(lake.list("landing/")).modified == before


# --- failures: nothing written, the message names the URL and the problem ------------------------

def test_503_every_time_gives_up_after_the_attempts(server, lake):
    server.answer(Answer(503, b"maintenance"))
    sleeps = Sleeps()
    fails(lake, server.url, f"{server.url}?date=2025-03-14", "HTTP 503", "maintenance", "after 3 attempts",
          attempts=3, sleep=sleeps)
    assert len(server.requests) == 3 and sleeps == [1.0, 2.0]


def test_404_is_not_retried(server, lake):
    server.answer(Answer(404, b'{"error": "no such day"}'))
    sleeps = Sleeps()
    fails(lake, server.url + "/v1", f"{server.url}/v1?date=2025-03-14", "HTTP 404", "no such day",
          "not retried", sleep=sleeps)
    assert len(server.requests) == 1 and sleeps == []


def test_non_json_is_refused(server, lake):
    server.answer(Answer(200, b"<html>Service temporarily unavailable</html>"))
    fails(lake, server.url, server.url, "not JSON", "<html>Service")
    assert len(server.requests) == 1


@pytest.mark.parametrize("body, problem", [
    ({"base": "EUR", "date": "2025-03-14"}, '"rates" is missing'),
    ({"base": "EUR", "date": "2025-03-14", "rates": {}}, '"rates" is empty'),
    ({"base": "EUR", "date": "2025-03-14", "rates": {"USD": "1.05", "GBP": None}},
     '2 of 2 "rates" are not numbers'),
    ({"base": "EUR", "date": "2025-03-14", "rates": {"USD": True}}, '"rates" are not numbers'),
    ({"base": "EUR", "date": "2025-03-14", "rates": [1.05]}, '"rates" is missing or not an object'),
    ({"base": "EUR", "date": "2025-03-13", "rates": RATES}, '"date" is 2025-03-13, not the requested day 2025-03-14'),
    ({"base": "EUR", "date": "14.03.2025", "rates": RATES}, '"date" is missing or not YYYY-MM-DD'),
    ({"date": "2025-03-14", "rates": RATES}, '"base" is missing'),
    ([RATES], "not an object (a list)"),
], ids=["no-rates", "empty-rates", "rates-not-numbers", "rate-bool", "rates-list", "wrong-date", "date-format",
        "no-base", "array"])
def test_json_nonsense_is_refused(server, lake, body, problem):
    server.answer(Answer(200, json.dumps(body).encode()))
    fails(lake, server.url, f"{server.url}?date=2025-03-14", problem)


def test_nan_rate_is_refused(server, lake):
    server.answer(Answer(200, b'{"base": "EUR", "date": "2025-03-14", "rates": {"USD": NaN}}'))
    fails(lake, server.url, "not JSON", "NaN")


def test_a_hanging_api_times_out(server, lake):
    server.answer(Answer(delay=5.0))
    started = time.perf_counter()
    fails(lake, server.url, server.url, "no answer within 0.2 s", "after 2 attempts", timeout=0.2, attempts=2)
    assert time.perf_counter() - started < 2.0
    assert len(server.requests) == 2


def test_a_down_api_is_retried_then_reported(lake):
    url = f"http://127.0.0.1:{free_port()}/v1"  # bound then closed: nothing listens
    sleeps = Sleeps()
    fails(lake, url, f"{url}?date=2025-03-14", "unreachable", "after 4 attempts", sleep=sleeps)
    assert sleeps == [1.0, 2.0, 4.0]


def test_credentials_never_appear_in_the_message(server, lake):
    server.answer(Answer(401, b"bad key"))
    url = server.url.replace("http://", "http://bob:pa55word@") + "/v1?apikey=s3cr3tkey"
    error = fails(lake, url, "HTTP 401", "apikey=***", "not retried")
    assert "pa55word" not in str(error) and "s3cr3tkey" not in str(error) and "bob" not in str(error)
    assert server.requests[0]["auth"].startswith("Basic ")  # the credentials did reach the server


def test_a_different_body_never_overwrites_a_landed_file(server, lake):
    lake.put_bytes(b'{"base": "EUR", "date": "2025-03-14", "rates": {"USD": 1.0}}', KEY)
    with pytest.raises(FxApiError, match="already holds a different body"):
        pull(lake, server.url)
    assert lake.read_bytes(KEY) == b'{"base": "EUR", "date": "2025-03-14", "rates": {"USD": 1.0}}'


# --- Dagster, CLI, ingestion -----------------------------------------------------------------------

def test_cli_pull_fx(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FE_HOME", str(tmp_path))
    monkeypatch.delenv("FE_FX_API_URL", raising=False)
    assert cli.main(["pull-fx", "--date", "2025-03-14"]) == 1
    assert "FE_FX_API_URL is not set" in capsys.readouterr().err

    monkeypatch.setenv("FE_FX_API_URL", server.url)
    assert cli.main(["pull-fx", "--date", "2025-03-14"]) == 0
    assert capsys.readouterr().out.strip() == KEY

    server.answer(Answer(200, b"not json"))
    assert cli.main(["pull-fx", "--date", "2025-03-13"]) == 1
    err = capsys.readouterr().err
    assert "not JSON" in err and f"{server.url}?date=2025-03-13" in err


def test_one_odd_rate_lands_and_is_quarantined_by_validation(server, lake):

    body = json.dumps({"base": "EUR", "date": "2025-03-14", "rates": {"USD": 1.05, "GBP": None, "JPY": 161.2}})
    server.answer(Answer(200, body.encode()))
    key = pull_fx_rates(lake, server.url, date(2025, 3, 14), sleep=lambda _: None)
    record = ingest_landing_file(lake, key, "k" * 20)
    assert (record.rows_valid, record.rows_quarantined, record.rules) == (2, 1, {"rate_required": 1})
