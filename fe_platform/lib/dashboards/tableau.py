"""Publish dashboard extracts to Tableau Server / Tableau Cloud and ask for a refresh.

Sign in with a personal access token, find the project by name, publish each `.hyper` as a
data source in Overwrite mode, start an extract refresh for it, sign out. Transient failures
(HTTP 5xx, 429, connection errors and timeouts) are retried with exponential backoff, a
bounded number of times; other client errors (4xx) are not. The token secret never appears in
a log line or an exception message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import requests
import tableauserverclient as TSC
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    InternalServerError,
    NonXMLResponseError,
    ServerResponseError,
)

if TYPE_CHECKING:
    from fe_platform.settings import TableauSettings  # (the settings' shape; lib/ never reads them)


log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "3.19"  # Tableau Server 2023.1; Tableau Cloud accepts it too
T = TypeVar("T")


class TableauPublishError(RuntimeError):
    """Publishing to Tableau failed; the message says where and why (never the token secret)."""


class _StatusRecorder:
    """Remembers the HTTP status of the last response, which TSC's exceptions do not always carry."""

    def __init__(self):
        self.last_status: int | None = None

    def session(self) -> requests.Session:
        s = requests.Session()
        s.hooks["response"].append(self._hook)
        return s

    def _hook(self, response, *args, **kwargs):
        self.last_status = response.status_code


def _is_transient(err: BaseException, status: int | None) -> bool:
    if isinstance(err, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(err, InternalServerError):
        return True  # HTTP 5xx
    if isinstance(err, ServerResponseError | NonXMLResponseError):
        return status == 429 or (status is not None and status >= 500) or str(
            getattr(err, "code", "")).startswith("429")
    return False


class _Publisher:
    def __init__(self, settings: TableauSettings, *, api_version: str, max_attempts: int,
                 backoff_seconds: float, sleep: Callable[[float], None], timeout: float):
        self.settings = settings
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.recorder = _StatusRecorder()
        self.server = TSC.Server(settings.server_url, use_server_version=False,
                                 session_factory=self.recorder.session)
        self.server.version = api_version  # no version probe: a fixed REST API version
        self.server.add_http_options({"timeout": timeout})

    def where(self) -> str:
        s = self.settings
        return f"Tableau {s.server_url} (site {s.site or 'Default'!r}, token {s.token_name!r})"

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, retried on transient errors with exponential backoff."""
        for attempt in range(1, self.max_attempts + 1):
            self.recorder.last_status = None
            try:
                return fn()
            except Exception as err:
                status = self.recorder.last_status
                if not _is_transient(err, status) or attempt == self.max_attempts:
                    raise
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning("%s: %s failed (attempt %d of %d, HTTP %s: %s); retrying in %.1fs",
                            self.where(), what, attempt, self.max_attempts, status or "-",
                            type(err).__name__, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    def sign_in(self) -> None:
        s = self.settings
        auth = TSC.PersonalAccessTokenAuth(s.token_name, s.token_secret, site_id=s.site)
        try:
            self.call("sign-in", lambda: self.server.auth.sign_in(auth))
        except FailedSignInError as err:
            raise TableauPublishError(
                f"sign-in failed on {self.where()}: {err.summary or 'rejected'} ({err.code}); check that the "
                f"personal access token exists, is not expired and belongs to this site") from err
        except Exception as err:
            raise TableauPublishError(f"sign-in failed on {self.where()}: {_describe(err)}") from err

    def project_id(self) -> str:
        name = self.settings.project
        options = TSC.RequestOptions()
        options.filter.add(TSC.Filter(TSC.RequestOptions.Field.Name, TSC.RequestOptions.Operator.Equals, name))
        projects, _ = self.call("find project", lambda: self.server.projects.get(options))
        matches = [p for p in projects if p.name == name]
        if not matches:
            raise TableauPublishError(f"project {name!r} not found on {self.where()}")
        if len(matches) > 1:  # same name under different parents: take the top-level one
            top = [p for p in matches if not p.parent_id]
            matches = top or matches
        return matches[0].id

    def publish(self, project_id: str, name: str, path: Path) -> TSC.DatasourceItem:
        item = TSC.DatasourceItem(project_id=project_id, name=name)
        mode = TSC.Server.PublishMode.Overwrite
        return self.call(f"publish {name!r}", lambda: self.server.datasources.publish(item, str(path), mode))

    def refresh(self, datasource: TSC.DatasourceItem) -> str | None:
        job = self.call(f"refresh {datasource.name!r}", lambda: self.server.datasources.refresh(datasource))
        return job.id if job is not None else None  # None: a refresh was already queued

    def sign_out(self) -> None:
        try:
            self.server.auth.sign_out()
        except Exception as err:  # the session expires on its own; not worth failing the run
            log.warning("%s: sign-out failed: %s", self.where(), _describe(err))


def _describe(err: BaseException) -> str:
    if isinstance(err, InternalServerError):
        return f"HTTP {err.code} from the server"
    if isinstance(err, ServerResponseError):
        return f"{err.code}: {err.summary} {err.detail}".strip()
    if isinstance(err, requests.RequestException):
        return f"{type(err).__name__}: cannot reach the server"
    return f"{type(err).__name__}: {err}"


def publish_extracts(settings: TableauSettings, extracts: Mapping[str, Path], *,
                     api_version: str = DEFAULT_API_VERSION, max_attempts: int = 4,
                     backoff_seconds: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                     timeout: float = 600.0) -> dict[str, str | None]:
    """Publish each extract (data source name -> `.hyper` path) in Overwrite mode into
    `settings.project`, start an extract refresh for each, and return name -> refresh job id
    (None when Tableau says a refresh is already queued).

    Raises `TableauPublishError` naming the server, site and token name (never the secret).
    """
    missing = [str(p) for p in extracts.values() if not Path(p).is_file()]
    if missing:
        raise TableauPublishError(f"no extract file at {', '.join(missing)}")
    pub = _Publisher(settings, api_version=api_version, max_attempts=max_attempts,
                     backoff_seconds=backoff_seconds, sleep=sleep, timeout=timeout)
    pub.sign_in()
    jobs: dict[str, str | None] = {}
    try:
        project_id = pub.project_id()
        for name, path in extracts.items():
            try:
                datasource = pub.publish(project_id, name, Path(path))
                jobs[name] = pub.refresh(datasource)
            except TableauPublishError:
                raise
            except Exception as err:
                raise TableauPublishError(
                    f"publishing data source {name!r} to project {settings.project!r} on {pub.where()} "
                    f"failed: {_describe(err)}") from err
            log.info("published %s to %s, refresh job %s", name, pub.where(), jobs[name])
    except TableauPublishError:
        raise
    except Exception as err:
        raise TableauPublishError(f"publishing to {pub.where()} failed: {_describe(err)}") from err
    finally:
        pub.sign_out()
    return jobs
