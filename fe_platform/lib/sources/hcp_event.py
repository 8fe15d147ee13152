"""Pull one day of speaker-program and medical-event attendances from the internal REST API.

    GET {base}/v1/attendances?updated_since=<D 00:00Z>&updated_before=<D+1 00:00Z>&page_token=<t>
    Authorization: Bearer <token>
    -> {"items": [{...}, ...], "next_page_token": "..." | null}

Every page of day D is written, one item per line as received (each item's JSON, compact), to a
local file published whole as `landing/hcp_event/HCP_EVENT_<YYYYMMDD>.jsonl`. Row-level rules are
left to validation, which quarantines the items that break them.

A 429 waits for its `Retry-After` (seconds or an HTTP date, capped); a 5xx, a timeout or a broken
connection is retried with exponential back-off; each page has `attempts` tries. A 401 or 403 fails
at once (the token is refused), as does any other 4xx. A page that is not `{"items": [objects],
"next_page_token": string or null}`, or a page token that comes back twice, fails the pull. Every
failure raises `PullError`, whose message names the API (userinfo and query values redacted) and
never carries the token; nothing is written to landing. A day without items writes no file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
import urllib3

from fe_platform.lib.fx_api import redact_url
from fe_platform.lib.lake import Lake
from fe_platform.lib.sources.landing import PullError, backoff_wait, local_file, publish_file, scrub

FEED = "hcp_event"
PATH = "/v1/attendances"
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
MAX_PAGE_BYTES = 64 << 20
SNIPPET = 200


@dataclass(frozen=True)
class PullResult:
    key: str | None  # None when the day had no items: nothing was written
    rows: int
    pages: int
    changed: bool


def landing_key(day: date) -> str:
    return f"landing/{FEED}/HCP_EVENT_{day:%Y%m%d}.jsonl"


def item_line(item: dict) -> bytes:
    """One item as a landing line: its JSON, compact, UTF-8, newline-terminated."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def day_params(day: date) -> dict[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {"updated_since": start.strftime(iso), "updated_before": (start + timedelta(days=1)).strftime(iso)}


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def check_page(data: bytes) -> tuple[list[dict], str | None]:
    """The items and next page token of a page; ValueError naming what is wrong with its shape."""
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"the page is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValueError(f"the page is JSON but not an object (a {type(body).__name__})")
    if "items" not in body or "next_page_token" not in body:
        missing = [k for k in ("items", "next_page_token") if k not in body]
        raise ValueError(f"the page has no {' and no '.join(repr(k) for k in missing)}")
    items, token = body["items"], body["next_page_token"]
    if not isinstance(items, list):
        raise ValueError(f'"items" is not a list (a {type(items).__name__})')
    odd = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if odd:
        raise ValueError(f'{len(odd)} of {len(items)} "items" are not objects (the first at position {odd[0]})')
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f'"next_page_token" is neither a non-empty string nor null (got {type(token).__name__})')
    return items, token


def _retry_after(response: requests.Response, cap: float) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(cap, max(0.0, seconds))


def _snippet(data: bytes) -> str:
    text = " ".join(data[:SNIPPET].decode("utf-8", errors="replace").split())
    return text + ("..." if len(data) > SNIPPET else "")


def _read(response: requests.Response) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(1 << 16):
        data += chunk
        if len(data) > MAX_PAGE_BYTES:
            raise ValueError(f"the page is larger than {MAX_PAGE_BYTES >> 20} MB")
    return bytes(data)


class _Pager:
    """GETs the pages of one day with the retry policy above."""

    def __init__(self, session: requests.Session, url: str, token: str, timeout: float, attempts: int,
                 backoff: float, max_retry_after: float, sleep: Callable[[float], None]):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.session, self.url, self.timeout = session, url, timeout
        self.attempts, self.backoff, self.max_retry_after, self.sleep = attempts, backoff, max_retry_after, sleep
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.secrets = [token]
        self.shown = redact_url(url)

    def fail(self, problem: str) -> PullError:
        return PullError(FEED, self.shown, scrub(problem, self.secrets))

    def get(self, params: dict[str, str], page: int) -> bytes:
        for attempt in range(1, self.attempts + 1):
            wait = backoff_wait(attempt, self.backoff)
            try:
                with self.session.get(self.url, params=params, headers=self.headers, timeout=self.timeout,
                                      stream=True) as response:
                    data = _read(response)
            except requests.Timeout:
                problem = f"page {page}: no answer within {self.timeout:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                # requests words a stalled body as a connection error around urllib3's read timeout
                if isinstance(exc.args[0] if exc.args else None, urllib3.exceptions.ReadTimeoutError):
                    problem = f"page {page}: no answer within {self.timeout:g} s"
                else:
                    problem = f"page {page}: the API is unreachable or broke off ({type(exc).__name__})"
            except (requests.RequestException, ValueError) as exc:
                raise self.fail(f"page {page}: {exc}") from None
            else:
                status = response.status_code
                if status == 200:
                    return data
                problem = f"page {page}: HTTP {status} {response.reason or ''}".rstrip()
                if data.strip():
                    problem += f": {_snippet(data)!r}"
                if status in (401, 403):
                    raise self.fail(f"{problem}; the API refused the bearer token (not retried)")
                if status not in RETRY_STATUSES:
                    raise self.fail(problem + " (not retried)")
                if status == 429:
                    wait = _retry_after(response, self.max_retry_after) or wait
            if attempt == self.attempts:
                raise self.fail(f"{problem}, after {self.attempts} attempt{'s' * (self.attempts > 1)}")
            self.sleep(wait)
        raise AssertionError("unreachable")


def pull_hcp_event(lake: Lake, base_url: str, token: str, day: date, *, timeout: float = 30.0, attempts: int = 5,
                   backoff: float = 1.0, max_retry_after: float = 300.0, sleep: Callable[[float], None] = time.sleep,
                   session: requests.Session | None = None) -> PullResult:
    """Pull every page of `day` into its landing file (see the module's docstring)."""
    if not token:
        raise ValueError("a bearer token is required")
    key = landing_key(day)
    own_session = session is None
    pager = _Pager(session or requests.Session(), base_url.rstrip("/") + PATH, token, timeout, attempts, backoff,
                   max_retry_after, sleep)
    try:
        with local_file(key) as path:
            rows = pages = 0
            seen: set[str] = set()
            params = day_params(day)
            with open(path, "wb") as out:
                while True:
                    pages += 1
                    try:
                        items, next_token = check_page(pager.get(params, pages))
                    except ValueError as exc:
                        raise pager.fail(f"page {pages}: {exc}") from None
                    for item in items:
                        out.write(item_line(item))
                    rows += len(items)
                    if next_token is None:
                        break
                    if next_token in seen:
                        raise pager.fail(f"page {pages}: the API sent a page token it had sent before (a loop)")
                    seen.add(next_token)
                    params = {**day_params(day), "page_token": next_token}
            if rows == 0:
                return PullResult(None, 0, pages, False)
            return PullResult(key, rows, pages, publish_file(lake, path, key))
    finally:
        if own_session:
            pager.session.close()
