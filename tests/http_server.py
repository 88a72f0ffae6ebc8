"""A local HTTP server on 127.0.0.1 that stands in for a paid API and counts every request.

Paths:
* ``/item/N``: ``{"item": N}``;
* ``/flaky/NAME?fail=K``: HTTP 503 for the first K requests to that path, then ``{"ok": NAME}``;
* ``/hold/NAME``: waits until the test releases it (a call in flight), then answers;
* ``/gate/NAME?ms=M``: ``{"gate": NAME}`` after M milliseconds (so that calls finish in another
  order than they were made). After :meth:`CountingServer.close_gate` ``(after=K)``, the first K
  requests to ``/gate/...`` are answered and the later ones wait, in flight, until
  :meth:`CountingServer.open_gate`: a test that kills the kernel in between knows exactly which
  calls had finished.
"""

from __future__ import annotations

import json
import threading
import time
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
        self.gate_after: int | None = None
        self.gate_arrived = 0
        self.answered: list[str] = []
        """Paths of the ``/gate`` requests answered since the gate was closed, in order."""
        self.waiting: Counter[str] = Counter()
        """``/gate`` paths held at the gate now."""
        self._gate_open = threading.Event()
        self._gate_open.set()
        self._changed = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close_gate(self, after: int) -> None:
        """Answer the next ``after`` requests to ``/gate``; hold every later one."""
        with self.lock:
            self.gate_after, self.gate_arrived = after, 0
            self.answered = []
            self._gate_open.clear()

    def gate_settled(self, quiet: float = 0.5) -> bool:
        """Whether the gate's quota is answered and nothing arrived or finished for ``quiet``
        seconds (so the caller is done with the last answer)."""
        with self.lock:
            done = self.gate_after is not None and len(self.answered) >= self.gate_after
            return done and time.monotonic() - self._changed >= quiet

    def open_gate(self) -> Counter[str]:
        """Let every held request through (and every later one); returns what was held."""
        with self.lock:
            held = Counter(self.waiting)
            self.gate_after = None
            self._gate_open.set()
        return held


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
        elif parts[0] == "gate":
            self._gate(url.path, parts[1], int(parse_qs(url.query).get("ms", ["0"])[0]))
        else:
            self._json(404, {"error": "no such path"})

    def _gate(self, path: str, name: str, ms: int) -> None:
        server = self.server
        with server.lock:
            server._changed = time.monotonic()
            held = server.gate_after is not None and server.gate_arrived >= server.gate_after
            server.gate_arrived += 1
            if held:
                server.waiting[path] += 1
        if held:
            server._gate_open.wait(timeout=60)
            with server.lock:
                server.waiting[path] -= 1
        time.sleep(ms / 1000)
        if self._json(200, {"gate": name}) and not held:
            with server.lock:
                server.answered.append(path)
                server._changed = time.monotonic()

    def _json(self, status: int, body: object) -> bool:
        """Answer; False when the client is gone (its kernel was killed while it waited)."""
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True


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
