"""The internal events API, served for real on 127.0.0.1: `GET /v1/attendances` page by page.

It holds the generator's attendance items by the day they were updated and answers
`updated_since` / `updated_before` (ISO-8601, `Z`) with the items of the days in that window,
`page_size` at a time, behind `Authorization: Bearer <token>`. A test scripts failures with
`fail_next(Answer(...), ...)`: each scripted answer is served to one request, in order, before
normal service resumes; `requests` records what every request asked.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a hanging server)


class EventsApiStub:
    def __init__(self, items_by_day: dict[date, list[dict]], token: str, page_size: int = 25):
        self.items_by_day = items_by_day
        self.token = token
        self.page_size = page_size
        self.script: list[Answer] = []
        self.requests: list[dict] = []
        self.release = threading.Event()  # set at stop: a hanging handler returns at once
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                stub.requests.append({"path": parts.path, "query": query,
                                      "authorization": self.headers.get("Authorization")})
                answer = stub.script.pop(0) if stub.script else stub.serve(parts.path, query,
                                                                           self.headers.get("Authorization"))
                if answer.delay and stub.release.wait(answer.delay):
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
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def fail_next(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def serve(self, path: str, query: dict, authorization: str | None) -> Answer:
        if authorization != f"Bearer {self.token}":
            return Answer(401, b'{"error": "invalid token"}')
        if path != "/v1/attendances":
            return Answer(404, b'{"error": "not found"}')
        try:
            since = datetime.fromisoformat(query["updated_since"].replace("Z", "+00:00"))
            before = datetime.fromisoformat(query["updated_before"].replace("Z", "+00:00"))
            offset = int(query.get("page_token", "p0")[1:])
        except (KeyError, ValueError):
            return Answer(400, b'{"error": "updated_since and updated_before are required"}')
        # The API files each item under the day it was updated; the window is whole UTC days.
        items = [item for day in sorted(self.items_by_day) if since.date() <= day < before.date()
                 for item in self.items_by_day[day]]
        page = items[offset:offset + self.page_size]
        more = offset + self.page_size < len(items)
        body = {"items": page, "next_page_token": f"p{offset + self.page_size}" if more else None}
        return Answer(200, json.dumps(body).encode())

    def __enter__(self) -> EventsApiStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)
