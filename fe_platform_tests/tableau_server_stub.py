"""A local stand-in for the Tableau REST API calls the publisher makes.

`TableauServerStub` runs `http.server` in a thread on 127.0.0.1 (a free port) and answers,
with XML bodies shaped like Tableau's:

    POST /api/<v>/auth/signin                                  personal access token sign-in
    GET  /api/<v>/sites/<site-id>/projects?filter=name:eq:<p>  project lookup
    POST /api/<v>/sites/<site-id>/fileUploads                  initiate a chunked upload
    PUT  /api/<v>/sites/<site-id>/fileUploads/<upload-id>      append a chunk (multipart/mixed)
    POST /api/<v>/sites/<site-id>/datasources?datasourceType=hyper&overwrite=true[&uploadSessionId=]
                                                               publish (multipart/mixed)
    POST /api/<v>/sites/<site-id>/datasources/<id>/refresh     start an extract refresh job
    POST /api/<v>/auth/signout

It checks what a real server would refuse (a wrong token, the X-Tableau-Auth header, the site
id in the path, the overwrite flag, the data source name and project, that the uploaded bytes
are a Hyper file), answers 400/401/404 like Tableau does, and records every request in
`requests` and every published file in `published` (name -> bytes). `fail_signin = True`
makes sign-in fail with 401; `fail_once(call, status)` makes the next `call` ("signin",
"projects", "publish", "upload", "refresh", "signout") answer `status` once.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

NS = "http://tableau.com/api"


def _xml(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><tsResponse xmlns="{NS}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{inner}</tsResponse>').encode()


def _error(code: str, summary: str, detail: str) -> bytes:
    return _xml(f'<error code="{code}"><summary>{summary}</summary><detail>{detail}</detail></error>')


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[dict[str, str], bytes]]:
    """The parts of a multipart/mixed body: name -> (headers, raw bytes)."""
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params["boundary"].strip('"').encode()
    parts = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disposition = headers.get("content-disposition", "")
        name = next((p.split("=", 1)[1].strip('"') for p in disposition.split(";")
                     if p.strip().startswith("name=")), "")
        parts[name] = (headers, data.removesuffix(b"\r\n"))
    return parts


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    body: bytes = field(repr=False)
    status: int = 0


class TableauServerStub:
    def __init__(self, *, token_name: str, token_secret: str, site: str = "fe",
                 project: str = "F&E Dashboards", api_version: str = "3.19"):
        self.token_name = token_name
        self.token_secret = token_secret
        self.site = site
        self.site_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.api_version = api_version
        self.projects = {project: str(uuid.uuid4()), "Default": str(uuid.uuid4())}
        self.fail_signin = False
        self._fail: dict[str, list[int]] = {}
        self.tokens: set[str] = set()
        self.requests: list[Recorded] = []
        self.published: dict[str, bytes] = {}
        self.publish_queries: list[dict] = []
        self.datasources: dict[str, str] = {}  # name -> id (stable across overwrites)
        self.refreshed: list[str] = []  # datasource ids
        self.jobs: list[str] = []
        self.uploads: dict[str, bytearray] = {}
        self.signed_out = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail_once(self, call: str, status: int = 503) -> None:
        self._fail.setdefault(call, []).append(status)

    def calls(self) -> list[str]:
        """The calls received, as "METHOD /path" without the API prefix."""
        prefix = f"/api/{self.api_version}"
        return [f"{r.method} {r.path.removeprefix(prefix)}" for r in self.requests]

    def __enter__(self) -> TableauServerStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # ------------------------------------------------------------------ handlers

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body in one write (no delayed-ACK stalls)
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def _dispatch(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}  # HTTP header names are case-insensitive
                rec = Recorded(method, url.path, parse_qs(url.query), headers, body)
                with stub._lock:
                    stub.requests.append(rec)
                    status, payload = stub._route(rec)
                rec.status = status
                self.send_response(status)
                self.send_header("Content-Type", "application/xml;charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_PUT(self):
                self._dispatch("PUT")

        return Handler

    def _injected(self, call: str) -> tuple[int, bytes] | None:
        pending = self._fail.get(call)
        if pending:
            status = pending.pop(0)
            if status >= 500:
                return status, b"<html><body>Service Unavailable</body></html>"
            return status, _error(f"{status}000", "Injected failure", f"the stub was told to fail {call}")
        return None

    def _route(self, r: Recorded) -> tuple[int, bytes]:
        prefix = f"/api/{self.api_version}/"
        if not r.path.startswith(prefix):
            return 404, _error("404000", "Resource Not Found", f"unknown API version in {r.path}")
        parts = r.path[len(prefix):].split("/")
        if parts == ["auth", "signin"] and r.method == "POST":
            return self._signin(r)
        token = r.headers.get("x-tableau-auth")
        if token not in self.tokens:
            return 401, _error("401002", "Unauthorized Access", "Invalid authentication credentials were provided.")
        if parts == ["auth", "signout"] and r.method == "POST":
            if (failed := self._injected("signout")) is not None:
                return failed
            self.tokens.discard(token)
            self.signed_out += 1
            return 204, b""
        if len(parts) < 3 or parts[0] != "sites" or parts[1] != self.site_id:
            return 403, _error("403069", "Forbidden", f"site id in {r.path} is not the signed-in site")
        rest = parts[2:]
        if rest == ["projects"] and r.method == "GET":
            return self._projects(r)
        if rest == ["fileUploads"] and r.method == "POST":
            if (failed := self._injected("upload")) is not None:
                return failed
            upload_id = f"{uuid.uuid4().hex}:0"
            self.uploads[upload_id] = bytearray()
            return 201, _xml(f'<fileUpload uploadSessionId="{upload_id}" fileSize="0"/>')
        if len(rest) == 2 and rest[0] == "fileUploads" and r.method == "PUT":
            return self._append(r, unquote(rest[1]))
        if rest == ["datasources"] and r.method == "POST":
            return self._publish(r)
        if len(rest) == 3 and rest[0] == "datasources" and rest[2] == "refresh" and r.method == "POST":
            return self._refresh(rest[1])
        return 404, _error("404000", "Resource Not Found", f"the stub does not implement {r.method} {r.path}")

    def _signin(self, r: Recorded) -> tuple[int, bytes]:
        if (failed := self._injected("signin")) is not None:
            return failed
        try:
            creds = ET.fromstring(r.body).find("credentials")
            name = creds.get("personalAccessTokenName")
            secret = creds.get("personalAccessTokenSecret")
            site = creds.find("site").get("contentUrl")
        except (ET.ParseError, AttributeError):
            return 400, _error("400000", "Bad Request", "malformed sign-in request")
        if self.fail_signin or name != self.token_name or secret != self.token_secret or site != self.site:
            return 401, _error("401001", "Signin Error", "Error signing in to Tableau Server")
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return 200, _xml(
            f'<credentials token="{token}" estimatedTimeToExpiration="365:22:12">'
            f'<site id="{self.site_id}" contentUrl="{self.site}"/><user id="{self.user_id}"/></credentials>')

    def _projects(self, r: Recorded) -> tuple[int, bytes]:
        if (failed := self._injected("projects")) is not None:
            return failed
        wanted = None
        for flt in r.query.get("filter", []):
            for cond in flt.split(","):
                field_, op, value = cond.split(":", 2)
                if field_ == "name" and op == "eq":
                    wanted = value
        items = [(n, i) for n, i in self.projects.items() if wanted is None or n == wanted]
        body = "".join(
            f'<project id="{i}" name="{n.replace("&", "&amp;")}" description="" '
            f'contentPermissions="ManagedByOwner"><owner id="{self.user_id}"/></project>'
            for n, i in items)
        return 200, _xml(f'<pagination pageNumber="1" pageSize="100" totalAvailable="{len(items)}"/>'
                         f"<projects>{body}</projects>")

    def _append(self, r: Recorded, upload_id: str) -> tuple[int, bytes]:
        if upload_id not in self.uploads:
            return 404, _error("404003", "Resource Not Found", f"upload session {upload_id} not found")
        parts = parse_multipart(r.headers.get("content-type", ""), r.body)
        if "tableau_file" not in parts:
            return 400, _error("400000", "Bad Request", "missing tableau_file part")
        self.uploads[upload_id] += parts["tableau_file"][1]
        size_mb = len(self.uploads[upload_id]) // (1024 * 1024)
        return 200, _xml(f'<fileUpload uploadSessionId="{upload_id}" fileSize="{size_mb}"/>')

    def _publish(self, r: Recorded) -> tuple[int, bytes]:
        if (failed := self._injected("publish")) is not None:
            return failed
        q = {k: v[0] for k, v in r.query.items()}
        if q.get("datasourceType") != "hyper":
            return 400, _error("400011", "Bad Request", "datasourceType must be hyper")
        if q.get("overwrite") != "true":
            return 409, _error("409004", "Conflict", "a data source with this name exists; overwrite not set")
        if not r.headers.get("content-type", "").startswith("multipart/mixed"):
            return 415, _error("415000", "Unsupported Media Type", "publish must be multipart/mixed")
        parts = parse_multipart(r.headers["content-type"], r.body)
        if "request_payload" not in parts:
            return 400, _error("400000", "Bad Request", "missing request_payload part")
        ds = ET.fromstring(parts["request_payload"][1]).find("datasource")
        name = ds.get("name") if ds is not None else None
        project = ds.find("project") if ds is not None else None
        if not name:
            return 400, _error("400000", "Bad Request", "data source name missing")
        if project is None or project.get("id") not in self.projects.values():
            return 404, _error("404005", "Resource Not Found", "project not found")
        if "uploadSessionId" in q:
            if q["uploadSessionId"] not in self.uploads:
                return 404, _error("404003", "Resource Not Found", "upload session not found")
            data = bytes(self.uploads.pop(q["uploadSessionId"]))
        elif "tableau_datasource" in parts:
            headers, data = parts["tableau_datasource"]
            if not headers.get("content-disposition", "").rstrip('"').endswith(".hyper"):
                return 400, _error("400000", "Bad Request", "the file part must be a .hyper file")
        else:
            return 400, _error("400000", "Bad Request", "no file part and no uploadSessionId")
        if not data.startswith(b"Hyper"):
            return 400, _error("400011", "Bad Request", "the uploaded file is not a Hyper extract")
        self.published[name] = data
        self.publish_queries.append(q)
        ds_id = self.datasources.setdefault(name, str(uuid.uuid4()))
        return 201, _xml(
            f'<datasource id="{ds_id}" name="{name}" type="hyper" contentUrl="{name.replace(" ", "")}" '
            f'isCertified="false" hasExtracts="true"><project id="{project.get("id")}"/>'
            f'<owner id="{self.user_id}"/></datasource>')

    def _refresh(self, ds_id: str) -> tuple[int, bytes]:
        if (failed := self._injected("refresh")) is not None:
            return failed
        if ds_id not in self.datasources.values():
            return 404, _error("404011", "Resource Not Found", "data source not found")
        job_id = str(uuid.uuid4())
        self.refreshed.append(ds_id)
        self.jobs.append(job_id)
        return 202, _xml(f'<job id="{job_id}" mode="Asynchronous" type="RefreshExtract" '
                         f'createdAt="2026-11-23T06:30:00Z"/>')

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.published[name]).hexdigest()
