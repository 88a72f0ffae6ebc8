"""A local HTTP server on 127.0.0.1 that stands in for a paid API and counts every request.

Paths:
* ``/item/N``: ``{"item": N}``;
* ``/flaky/NAME?fail=K``: HTTP 503 for the first K requests to that path, then ``{"ok": NAME}``;
* ``/hold/NAME``: waits until the test releases it (a call in flight), then answers.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class CountingServer(ThreadingHTTPServer):
    """The server, its per-path hit counts and the gate for held requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.holding = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: CountingServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the counts are the record."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        with self.server.lock:
            self.server.hits[url.path] += 1
            hits = self.server.hits[url.path]
        parts = url.path.strip("/").split("/")
        if parts[0] == "item":
            self._json(200, {"item": int(parts[1])})
        elif parts[0] == "flaky":
            fail = int(parse_qs(url.query).get("fail", ["1"])[0])
            if hits <= fail:
                self._json(503, {"error": "try later"})
            else:
                self._json(200, {"ok": parts[1]})
        elif parts[0] == "hold":
            self.server.holding.set()
            self.server.release.wait(timeout=60)
            self._json(200, {"held": parts[1]})
        else:
            self._json(404, {"error": "no such path"})

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    """Serve in a background thread for the duration of a test."""
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
