"""A local server that answers like the Hub's papers endpoints, with faults on demand (test helper).

Serves `/api/daily_papers?date=&limit=&p=` (paged), `/api/papers/search?q=` and
`/papers/date/YYYY-MM-DD` (HTML with the hydration JSON). `faults` is a list consumed one per
request: None (answer), an HTTP status (429 carries Retry-After), "drop" (close without answering),
"slow" (answer after the client's timeout), "truncate" (promise more bytes than are sent).
Every request's time, path and headers are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from bench.render import html_page


class HubState:
    def __init__(self, days: dict[str, list[dict]], faults: list | None = None, slow_seconds: float = 3.0):
        self.days = days
        self.faults = list(faults or [])
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def next_fault(self):
        with self.lock:
            return self.faults.pop(0) if self.faults else None


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no request log, and one way to answer (JSON for anything not bytes)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body=b"", content_type="application/json", headers=None):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _handler(state: HubState):
    class Handler(QuietHandler):

        def do_GET(self):
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with state.lock:
                state.requests.append({"t": time.monotonic(), "path": url.path, "query": query,
                                       "headers": dict(self.headers)})
            fault = state.next_fault()
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "slow":
                time.sleep(state.slow_seconds)
            if isinstance(fault, int):
                extra = {"Retry-After": "1"} if fault == 429 else {}
                return self._send(fault, b'{"error": "injected"}', headers=extra)
            body, content_type = self._body(url.path, query)
            if body is None:
                return self._send(404, b'{"error": "not found"}')
            if fault == "truncate":
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) + 500))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            etag = f'"{hash(body) & 0xFFFFFFFF:08x}"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", headers={"ETag": etag})
            self._send(200, body, content_type, headers={"ETag": etag})

        def _body(self, path: str, query: dict):
            if path == "/api/daily_papers":
                items = state.days.get(query.get("date", ""), [])
                limit, page = int(query.get("limit", 50)), int(query.get("p", 0))
                return json.dumps(items[page * limit:(page + 1) * limit]).encode(), "application/json"
            if path == "/api/papers/search":
                q = query.get("q", "").lower()
                found = [i for items in state.days.values() for i in items if q in i["paper"]["title"].lower()]
                return json.dumps(found).encode(), "application/json"
            if path.startswith("/papers/date/"):
                date = path.rsplit("/", 1)[1]
                shown = date if date in state.days else max(state.days)
                return html_page(state.days[shown], shown).encode(), "text/html"
            return None, None

    return Handler


class LocalServer:
    """A threaded HTTP server on a free loopback port, for as long as the `with` block lasts."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class HubServer(LocalServer):
    def __init__(self, state: HubState):
        self.state = state
        super().__init__(_handler(state))
