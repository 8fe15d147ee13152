"""Pull the day's exchange rates from the configured HTTP JSON API into landing.

The body is written to `landing/fx_rates/FX_RATES_<YYYYMMDD>.json` exactly as the API
sent it (bytes unchanged), so it flows through raw and validated like every file feed;
the fx_rates landing sensor then ingests it.

The URL comes from the setting `FE_FX_API_URL`:

- when it contains `{date}`, that placeholder is replaced by the day as `YYYY-MM-DD`
  (`https://fx.example/v1/{date}?base=EUR`);
- otherwise `date=YYYY-MM-DD` is added to its query string
  (`https://fx.example/v1/rates` -> `https://fx.example/v1/rates?date=2025-03-14`).

Connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff
(`backoff`, 2 x, 4 x ... seconds, or the server's `Retry-After` when longer, capped),
`attempts` tries in all; any other non-200 answer fails at once. A body must be
`{"base": str, "date": "YYYY-MM-DD", "rates": {CODE: number, ...}}` with `date` the
requested day, or the pull fails; row-level rules (currency code format, rate > 0) are
left to validation, which quarantines the rows that break them. Every failure raises
`FxApiError`, whose message names the URL (userinfo and query values other than `date`
redacted) and the problem, and nothing is written to landing. The file is written only
after the body passed, in one atomic put.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import date
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
import urllib3

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
MAX_BODY_BYTES = 10 << 20  # a day's rates are a few KB; anything this large is not a rates body
MAX_RETRY_AFTER = 60.0
SNIPPET = 200
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class FxApiError(RuntimeError):
    """The pull failed; the message names the (redacted) URL and the problem."""

    def __init__(self, url: str, problem: str):
        self.url = url
        self.problem = problem
        super().__init__(f"fx_rates pull from {url} failed: {problem}")


def landing_key(day: date) -> str:
    key = f"{FEEDS['fx_rates'].landing_prefix}FX_RATES_{day:%Y%m%d}.json"
    assert FEEDS["fx_rates"].match(key.rsplit("/", 1)[-1]) == day
    return key


def request_url(url_template: str, day: date) -> str:
    """The URL for `day`: `{date}` replaced, or `date=YYYY-MM-DD` added to the query."""
    iso = day.isoformat()
    if "{date}" in url_template:
        return url_template.replace("{date}", iso)
    parts = urlsplit(url_template)
    query = f"{parts.query}&date={iso}" if parts.query else f"date={iso}"
    return urlunsplit(parts._replace(query=query))


def _secrets(url: str) -> list[str]:
    """Userinfo and query values (except `date`): what must never appear in a message."""
    parts = urlsplit(url)
    found = [parts.username or "", parts.password or ""]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "date"]
    found = [s for s in found if len(s) >= 3]  # short values would redact unrelated text
    return found + [quote(s, safe="") for s in found]


def redact_url(url: str) -> str:
    """`url` without userinfo, every query value but `date` shown as `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v if k == "date" else "***") for k, v in
                       parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _snippet(data: bytes) -> str:
    text = data[:SNIPPET].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text + ("..." if len(data) > SNIPPET else "")


def check_body(data: bytes, day: date) -> dict:
    """The parsed body when it is a rates body for `day`; ValueError naming the problem otherwise."""
    if not data.strip():
        raise ValueError("the answer is empty")
    try:
        # Decoded as UTF-8 like the fx_rates reader does, so a body that passes here is readable there.
        body = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the answer is not JSON ({exc}); it starts: {_snippet(data)!r}") from exc
    if not isinstance(body, dict):
        raise ValueError(f"the answer is JSON but not an object (a {type(body).__name__})")
    problems = []
    if not isinstance(body.get("base"), str) or not body["base"].strip():
        problems.append('"base" is missing or not a string')
    body_date = body.get("date")
    if not isinstance(body_date, str) or not ISO_DAY.fullmatch(body_date):
        problems.append(f'"date" is missing or not YYYY-MM-DD (got {body_date!r})')
    else:
        try:
            parsed = date.fromisoformat(body_date)
        except ValueError:
            problems.append(f'"date" is not a calendar date (got {body_date!r})')
        else:
            if parsed != day:
                problems.append(f'"date" is {body_date}, not the requested day {day.isoformat()}')
    rates = body.get("rates")
    if not isinstance(rates, dict):
        problems.append('"rates" is missing or not an object of CODE: number')
    elif not rates:
        problems.append('"rates" is empty')
    else:
        bad = [code for code, rate in rates.items()
               if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate)]
        # One odd rate is a row-level defect that validation quarantines with its reason, keeping the
        # day's other rates; a body with no numeric rate at all is not an exchange-rate answer.
        if len(bad) == len(rates):
            shown = ", ".join(f"{c}={rates[c]!r}" for c in bad[:5]) + (" ..." if len(bad) > 5 else "")
            problems.append(f'{len(bad)} of {len(rates)} "rates" are not numbers ({shown})')
    if problems:
        raise ValueError("the answer is not an exchange-rate body: " + "; ".join(problems))
    return body


def _no_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _retry_after(response: requests.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "")), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0  # absent, or an HTTP date: the backoff applies


def _fetch(session: requests.Session, url: str, timeout: float) -> tuple[int, bytes, requests.Response]:
    """One GET; `timeout` bounds the connect and every read (a stalled body too)."""
    with session.get(url, timeout=timeout, stream=True, headers={"Accept": "application/json"}) as response:
        data = bytearray()
        try:
            for chunk in response.iter_content(64 << 10):
                data += chunk
                if len(data) > MAX_BODY_BYTES:
                    raise ValueError(f"the answer is larger than {MAX_BODY_BYTES >> 20} MB")
        except requests.ConnectionError as exc:  # requests words a stalled body read as a connection error
            if isinstance(exc.args[0] if exc.args else None, urllib3.exceptions.ReadTimeoutError):
                raise requests.ReadTimeout(exc) from exc
            raise
        return response.status_code, bytes(data), response


def pull_fx_rates(lake: Lake, url_template: str, day: date, *, timeout: float = 10.0, attempts: int = 4,
                  backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                  session: requests.Session | None = None) -> str:
    """Fetch the rates of `day`, check them, write them to landing as received; returns the key.

    Re-pulling a day whose landing file holds the same bytes writes nothing and returns the key.
    A landing file that holds different bytes is not overwritten (landing files are never
    modified: the sensor would not see the change): the pull fails and says so.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    url = request_url(url_template, day)
    shown, secrets = redact_url(url), _secrets(url)
    key = landing_key(day)
    own_session = session is None
    session = session or requests.Session()
    try:
        data = _get_with_retries(session, url, shown, secrets, timeout, attempts, backoff, sleep)
    finally:
        if own_session:
            session.close()
    try:
        check_body(data, day)
    except ValueError as exc:
        raise FxApiError(shown, _scrub(str(exc), secrets)) from None
    if lake.exists(key):
        if lake.read_bytes(key) == data:
            return key
        raise FxApiError(shown, f"{key} already holds a different body for {day.isoformat()}; landing files "
                                "are not overwritten (move it away to pull the day again)")
    lake.put_bytes(data, key)
    return key


def _get_with_retries(session: requests.Session, url: str, shown: str, secrets: list[str], timeout: float,
                      attempts: int, backoff: float, sleep: Callable[[float], None]) -> bytes:
    for attempt in range(1, attempts + 1):
        wait = backoff * 2 ** (attempt - 1)
        try:
            status, data, response = _fetch(session, url, timeout)
        except requests.Timeout:
            problem = f"no answer within {timeout:g} s"
        except requests.ConnectionError as exc:
            problem = f"the API is unreachable ({_scrub(_reason(exc), secrets)})"
        except requests.exceptions.ChunkedEncodingError:
            problem = "the answer broke off before its end"
        except (requests.RequestException, ValueError) as exc:  # invalid URL, oversized body: not retried
            raise FxApiError(shown, _scrub(str(exc), secrets)) from None
        else:
            if status == 200:
                return data
            problem = f"HTTP {status} {response.reason or ''}".rstrip()
            if data.strip():
                problem += f": {_scrub(_snippet(data), secrets)!r}"
            if status not in RETRY_STATUSES:
                raise FxApiError(shown, problem + " (not retried)")
            wait = max(wait, _retry_after(response))
        if attempt == attempts:
            raise FxApiError(shown, f"{problem}, after {attempts} attempt{'s' * (attempts > 1)}")
        sleep(wait)
    raise AssertionError("unreachable")


def _reason(exc: requests.ConnectionError) -> str:
    """The innermost cause of a connection error (`Connection refused`), not urllib3's long repr."""
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None) or inner
    # urllib3 words it "HTTPConnection(host='h', port=1): Failed to establish a new connection: [Errno 111] ..."
    return re.sub(r"^\w*Connection\(host=.*?\): ", "", str(reason))
