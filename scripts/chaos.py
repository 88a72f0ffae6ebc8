#!/usr/bin/env python
"""The fault campaign of issue 8: real kernels, real SIGKILLs, a damaged store, tampering.

Usage::

    python scripts/chaos.py [--trials N] [--only random,damage,tamper,journal,two] [--quick]

It drives IPython kernels through jupyter_client (``tests/kernel.py``) over a small notebook: a
plain cell defines ``BASE`` (a local HTTP server on 127.0.0.1 that logs every request, standing in
for a paid API) and one ``@km.effect`` function, ``notify``; the ``%%durable pipeline`` step makes
5 HTTP GETs through urllib (activities; the second returns a 100 KB body, so its journaled result
is a blob of its own), calls ``notify`` once and keeps ~50 MB of numpy data. It prints a markdown
table of kinds x outcomes, then every failing case in one line. It is a report: the exit code is
0 whatever it finds, 2 on bad usage.

Parts (``--only``):

* ``random``: SIGKILL at a random time during the step (N trials; every third one kills the
  resuming run too), and at named commit points found by watching the probe file, the server
  and the store, plus kitteh_magic's own ``$KITTEH_MAGIC_KILL_AT`` points when it has them; then
  a new kernel runs the step to its end, another replays it, then ``kitteh-magic gc``.
* ``damage``: after a clean finished run (and, for the journal, after a run killed at call 4),
  damage one store object in one way, run the notebook in a fresh kernel twice and run
  ``kitteh-magic status``, ``verify`` and ``gc`` on the damaged store and on the final one.
* ``tamper``: roll a record back to its text before a ``--force`` run, re-insert a journal entry
  after an invalidate, swap records and journal entries between steps, forge a record with
  another key.
* ``journal``: a finished step keeps its journal (issue 10: a run after ``invalidate`` takes its
  calls from it), and it may be left in any state of the finish (exactly, by capturing the
  pointer with SQLite triggers before it leaves "running" and putting it back; at the
  ``record-written`` kill point; and approximately, by killing the kernel as soon as the record
  row appears); then run the same cell (it must replay) and an edited one (all 6 calls live:
  the kept journal belongs to the old version).
* ``two``: two kernels run the same step at once: one executes it, the other waits for its
  lease and replays (issue 9); no call and no effect may run twice.

Outcomes, per trial or case (the table sums them):

* wrong values: a name the step produced differs from a plain run (no kitteh_magic) of the same
  code: ``results``, ``checksum`` and ``data`` (shape, dtype, SHA-256), or is missing.
* repeated completed calls: a call *completed* when it returned into the cell's code before the
  kill: right after each call the cell appends ``<pid> item <i>`` (or ``<pid> effect``) to a probe
  file, which happens after kitteh_magic journaled it. It is *repeated* when the server sees its
  URL again after the kill. The call in flight at the kill may run again (DESIGN.md section 4.2)
  and is not counted. Live calls in a replay of a finished step count too.
* effects twice: the effect's URL was requested more than once in a trial. An interrupted effect
  is settled as an honest user would: ``%durable effect ... done`` when the server got the request,
  ``redo`` when it did not.
* stale replays: a value or a call result came from a rolled-back, swapped, forged or leftover
  record or journal entry.
* kitteh_magic tracebacks: a traceback with a frame in a ``kitteh_magic/`` file, in any cell's
  error, stdout or stderr, the kernel process's own output, or the CLI's.
* cell errors: a cell failed (other than the expected ``IncompleteEffectError``), or a kernel did
  not answer within the time limit.
* garbage after gc: files left in the store's ``tmp/`` after ``kitteh-magic gc``.
* not healed: the second run in a fresh kernel after the damage did not replay cleanly (it made
  live calls, failed, or gave a wrong value): one recompute must heal (DESIGN.md section 4.14).
* CLI crashes: ``kitteh-magic status|verify|gc`` ended with a traceback or a signal, or hung (a
  one-line refusal with exit 2 is a note, not a crash).
* code from the store: a pickle planted in the index (which would create a file if loaded) ran.

Exceptions of the harness itself are listed apart as harness problems, never as product failures.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib.util
import json
import os
import pickle
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from jupyter_client.manager import KernelManager
from kernel import Kernel, Result, ipc_settings

PARTS = ("random", "damage", "tamper", "journal", "two")
CELL_TIMEOUT = 90.0
"""Seconds a cell may take before the kernel counts as hung (a cell error)."""
POINT_TIMEOUT = 30.0
DELAY = 0.15
"""Seconds the server takes per call in the kill trials, so that kills spread over the step."""
PAD = 100_000
"""Bytes of padding in the second call's answer: its journaled result is a blob of its own."""
STEP_CELL = "chaos-step"
KILL_HOOK = "KITTEH_MAGIC_KILL_AT"
"""kitteh_magic's test hook: a kernel with it set kills itself at the named commit point."""

# -- the stand-in for a paid API -----------------------------------------------------------------


class ApiServer(ThreadingHTTPServer):
    """A local HTTP server that logs every request (arrival time, path).

    Paths end in ``item/N`` (``{"item": N}``, padded by ``?pad=BYTES``), ``effect/NAME``
    (``{"sent": NAME}``) or ``seq/NAME`` (``{"n": how often this path was requested}``);
    ``?delay=S`` answers after S seconds. A path set with :meth:`hold` waits until :meth:`unhold`.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.lock = threading.Lock()
        self.log: list[tuple[float, str]] = []
        self.hold_path: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def hits(self, path: str, after: float = 0.0) -> int:
        """Requests of ``path`` that arrived after ``after`` (``time.monotonic``)."""
        with self.lock:
            return sum(1 for t, p in self.log if p == path and t > after)

    def under(self, prefix: str) -> int:
        """Requests of every path under ``prefix``."""
        with self.lock:
            return sum(1 for _, p in self.log if p.startswith(prefix + "/"))

    def paths(self, prefix: str) -> Counter[str]:
        with self.lock:
            return Counter(p for _, p in self.log if p.startswith(prefix + "/"))

    def hold(self, path: str) -> None:
        """Make requests of ``path`` wait (a call in flight) until :meth:`unhold`."""
        self.release.clear()
        self.holding.clear()
        self.hold_path = path

    def unhold(self) -> None:
        self.hold_path = None
        self.release.set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client killed mid-request is the point of the exercise."""


class _ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the log is the record."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        with self.server.lock:
            self.server.log.append((time.monotonic(), url.path))
            count = sum(1 for _, p in self.server.log if p == url.path)
        if url.path == self.server.hold_path:
            self.server.holding.set()
            self.server.release.wait(60)
        time.sleep(float(query.get("delay", ["0"])[0]))
        parts = url.path.strip("/").split("/")
        kind, name = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")
        body: dict[str, Any]
        if kind == "item":
            body = {"item": int(name), "pad": "x" * int(query.get("pad", ["0"])[0])}
        elif kind == "effect":
            body = {"sent": name}
        elif kind == "seq":
            body = {"n": count, "name": name}
        else:
            body = {"error": "no such path"}
        data = json.dumps(body).encode()
        with contextlib.suppress(OSError):
            self.send_response(200 if kind in ("item", "effect", "seq") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


# -- kernels ----------------------------------------------------------------------------------


class ChaosKernel(Kernel):
    """A :class:`Kernel` whose process output (where a crashing thread's traceback goes) is kept."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.manager = KernelManager(kernel_name="python3", **ipc_settings())
        self.manager.start_kernel(cwd=str(cwd), env={**os.environ, **env},
                                  stdout=self._log, stderr=self._log)
        self._connect()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            super().shutdown()
        self._log.close()


def kill(kernel: Kernel) -> None:
    """SIGKILL the kernel, unless it is dead already (a kill hook fired)."""
    with contextlib.suppress(ProcessLookupError):
        kernel.kill()


# -- the notebook -----------------------------------------------------------------------------

_PROBE = '(lambda f: (f.write(f"{{os.getpid()}} {what}\\n"), f.close()))(open({probe!r}, "a"))'

CHECK = ("(results, checksum, tuple(data.shape), str(data.dtype), "
         "__import__('hashlib').sha256(data.tobytes()).hexdigest())")
"""What a run produced, compared with a plain run's."""


@dataclass(frozen=True)
class Scenario:
    """One instance of the notebook: its server prefix, probe file and store."""

    base: str
    """The server's URL plus a prefix of this instance's own: its requests are counted by it."""
    directory: Path
    delay: float = 0.0

    @property
    def prefix(self) -> str:
        return urlparse(self.base).path

    @property
    def store(self) -> Path:
        return self.directory / "store"

    @property
    def probe(self) -> Path:
        return self.directory / "probe.txt"

    @property
    def effect_path(self) -> str:
        return f"{self.prefix}/effect/notify"

    def item_path(self, i: int) -> str:
        return f"{self.prefix}/item/{i}"

    def call_path(self, call: str) -> str:
        """The URL path of a probe line's call (``item 3``, ``effect``)."""
        return self.effect_path if call == "effect" else self.item_path(int(call.split()[1]))

    def setup(self) -> str:
        return (f"import kitteh_magic as km\nimport json, urllib.request\nBASE = {self.base!r}\n\n"
                "@km.effect\ndef notify(total):\n"
                '    """The side effect (an e-mail, a payment): it must never run twice."""\n'
                '    with urllib.request.urlopen(f"{BASE}/effect/notify?total={total}") as r:\n'
                '        return json.loads(r.read())["sent"]\n')

    def body(self, edited: bool = False) -> str:
        probe = str(self.probe)
        return "\n".join([
            "import os",
            "import numpy as np",
            "results = []",
            "for i in range(5):",
            f'    url = f"{{BASE}}/item/{{i}}?delay={self.delay}&pad={{{PAD} if i == 1 else 0}}"',
            "    with urllib.request.urlopen(url) as response:",
            '        results.append(json.loads(response.read())["item"])',
            "    " + _PROBE.format(what="item {i}", probe=probe),
            "notify(sum(results))",
            _PROBE.format(what="effect", probe=probe),
            "data = np.arange(6_553_600, dtype=np.float64) * (sum(results) + 1)",
            "checksum = float(data[::1024].sum())" + (" + 0" if edited else ""),
            "(len(results), checksum)",
            ""])

    def step(self, edited: bool = False) -> str:
        return "%%durable pipeline\n" + self.body(edited)

    def completed(self, pid: int) -> list[str]:
        """The calls that returned into the cell in process ``pid`` (``item 0``, ``effect``)."""
        try:
            lines = self.probe.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line.split(" ", 1)[1] for line in lines if line.startswith(f"{pid} ")]


# -- outcomes ---------------------------------------------------------------------------------

COLUMNS: dict[str, str] = {
    "wrong": "wrong values",
    "repeated": "repeated completed calls",
    "effects": "effects twice",
    "stale": "stale replays",
    "tracebacks": "kitteh_magic tracebacks",
    "errors": "cell errors",
    "garbage": "garbage after gc",
    "unhealed": "not healed",
    "cli": "CLI crashes",
    "code": "code from the store",
}


@dataclass
class Outcome:
    """What one trial or case found."""

    part: str
    kind: str
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    judged: bool = True
    """False for part ``two``: reported, not part of the contract."""
    problems: list[str] = field(default_factory=list)
    """Exceptions of the harness itself (not product failures): reported apart."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, column: str, message: str, n: int = 1) -> None:
        with self._lock:  # the CLI of a damage case runs in a thread of its own
            self.counts[column] += n
            self.failures.append(f"{self.part} / {self.kind}: {message}")

    def note(self, text: str) -> None:
        self.notes.append(text)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KM_FRAME = re.compile(r'File "?([^"\n]*?[/\\]kitteh_magic[/\\][^"\n:,]*\.py)')


def plain(text: str) -> str:
    return _ANSI.sub("", text)


def km_frames(text: str) -> list[str]:
    """Files of kitteh_magic that appear as frames of a traceback in ``text``."""
    return sorted({m.group(1).rsplit("kitteh_magic", 1)[1].lstrip("/\\")
                   for m in _KM_FRAME.finditer(plain(text))})


def _summary(text: str, limit: int = 160) -> str:
    text = " ".join(plain(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- the store from outside -------------------------------------------------------------------


def index_db(store: Path) -> Path:
    return store / "index" / "cache.db"


@contextlib.contextmanager
def database(store: Path) -> Iterator[sqlite3.Connection]:
    """The store's SQLite index, opened by hand (no kernel may hold it meanwhile)."""
    con = sqlite3.connect(index_db(store), timeout=30, isolation_level=None)
    try:
        yield con
    finally:
        con.close()


def checkpoint(store: Path) -> None:
    """Fold the write-ahead log into the database file, so the file alone is the index."""
    with database(store) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def rows(store: Path, pattern: str) -> list[tuple[int, str, Any, int]]:
    """``(rowid, key, value, mode)`` of the index rows whose key matches the GLOB ``pattern``."""
    with database(store) as con:
        return con.execute("SELECT rowid, key, value, mode FROM Cache WHERE key GLOB ?"
                           " ORDER BY key", (pattern,)).fetchall()


def journal_entry(store: Path, step: str, position: int) -> str:
    """The key of the journal entry of ``step`` (a GLOB) made at ``position`` on the step's
    main line (entries are keyed by their call's identity, not by position); a key matching no
    row when there is none."""
    for _, key, value, _ in rows(store, f"km*/jrn/*/{step}/*"):
        doc = json.loads(doc_text(value)[1])
        if doc.get("branch", "") == "" and doc.get("pos") == position:
            return key
    return f"km*/jrn/*/{step}/no-entry-at-{position}"


def full_rows(store: Path, pattern: str) -> list[dict[str, Any]]:
    """Every column of the matching rows (to put them back later)."""
    with database(store) as con:
        cursor = con.execute("SELECT * FROM Cache WHERE key GLOB ? ORDER BY key", (pattern,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def put_rows(store: Path, saved: list[dict[str, Any]]) -> None:
    """Write rows back by key (replacing what is there), without their old row ids."""
    with database(store) as con:
        for row in saved:
            columns = [c for c in row if c != "rowid"]
            con.execute(f"INSERT OR REPLACE INTO Cache({', '.join(columns)}) VALUES "
                        f"({', '.join('?' for _ in columns)})", [row[c] for c in columns])


class Watch:
    """Polls the store for a row (read-only, so the kernel never waits for it)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._con: sqlite3.Connection | None = None

    def has(self, pattern: str) -> bool:
        try:
            if self._con is None:
                if not index_db(self.store).exists():
                    return False
                self._con = sqlite3.connect(f"file:{index_db(self.store)}?mode=ro", uri=True,
                                            timeout=0.2, check_same_thread=False)
            found = self._con.execute("SELECT 1 FROM Cache WHERE key GLOB ? LIMIT 1",
                                      (pattern,)).fetchone()
        except sqlite3.Error:
            return False
        return found is not None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def tmp_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "tmp").rglob("*") if p.is_file()) \
        if (store / "tmp").is_dir() else []


def blob_files(store: Path) -> list[Path]:
    return sorted((p for p in (store / "blobs").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)


def doc_text(value: str) -> tuple[str, str]:
    """``(signature line or "", JSON text)`` of a document row."""
    if value.startswith("{"):
        return "", value
    head, _, text = value.partition("\n")
    return head, text


def wait_until(check: Callable[[], bool], timeout: float = POINT_TIMEOUT,
               interval: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# -- the campaign -----------------------------------------------------------------------------


class Campaign:
    """One server, one signing key and a work folder; parts add outcomes."""

    def __init__(self, work: Path, server: ApiServer, seed: int = 8,
                 progress: Callable[[str], None] | None = None, keep: bool = False) -> None:
        self.work = work
        self.keep = keep
        """Keep every trial's store and logs (else each is removed once its trial is over)."""
        self.folders: list[Path] = []
        self.server = server
        self.key = work / "key"
        self.rng = random.Random(seed)
        self.outcomes: list[Outcome] = []
        self.expected: Any = None
        self.live_seconds = 2.0
        self.progress = progress or (lambda text: None)
        self._ids = 0
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="chaos-cli")

    def scenario(self, tag: str, delay: float = 0.0) -> Scenario:
        self._ids += 1
        name = f"{tag}{self._ids}"
        directory = self.work / name
        directory.mkdir(parents=True)
        self.folders.append(directory)
        return Scenario(f"{self.server.url}/{name}", directory, delay)

    def tidy(self, since: int = 0) -> None:
        """Remove the folders of trials from ``self.folders[since:]`` (a trial's store holds
        50 MB blobs; a full campaign would fill a disk), unless asked to keep them."""
        if self.keep:
            return
        for folder in self.folders[since:]:
            shutil.rmtree(folder, ignore_errors=True)
        del self.folders[since:]

    def env(self, store: Path) -> dict[str, str]:
        return {"KITTEH_MAGIC_DIR": str(store), "KITTEH_MAGIC_STORE": str(store),
                "KITTEH_MAGIC_KEY_FILE": str(self.key), "PYTHONWARNINGS": "default"}

    def kernel(self, store: Path, log: Path, env: dict[str, str] | None = None) -> ChaosKernel:
        """A new kernel on ``store`` (kitteh_magic not loaded yet: see :meth:`prepare`)."""
        return ChaosKernel(store.parent, {**self.env(store), **(env or {})}, log)

    def add(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        state = "ok" if not outcome.failures else "; ".join(
            f.split(": ", 1)[1] for f in outcome.failures)
        if outcome.problems:
            state = "HARNESS PROBLEM " + "; ".join(outcome.problems)
        self.progress(f"[{outcome.part}] {outcome.kind}: {_summary(state, 300)}")
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # running cells ------------------------------------------------------------------------
    def run(self, kernel: Kernel, code: str, out: Outcome, label: str,
            cell_id: str | None = None) -> Result | None:
        """Run a cell, noting tracebacks from kitteh_magic; None when the kernel did not answer."""
        try:
            result = kernel.run(code, cell_id, timeout=CELL_TIMEOUT)
        except TimeoutError:
            out.fail("errors", f"{label}: no answer within {CELL_TIMEOUT:.0f} s")
            return None
        self.inspect(result, out, label)
        return result

    @staticmethod
    def inspect(result: Result, out: Outcome, label: str) -> None:
        """Note a traceback through kitteh_magic in a cell's error, stdout or stderr."""
        text = result.stdout + result.stderr
        if result.error:
            text += "\n".join(result.error.get("traceback", []))
        frames = km_frames(text)
        if frames:
            ename = result.error["ename"] if result.error else "in stderr"
            out.fail("tracebacks", f"{label}: traceback ({ename}) through {', '.join(frames)}")

    def prepare(self, kernel: Kernel, sc: Scenario | None, out: Outcome, label: str,
                setup: str | None = None) -> bool:
        """Load kitteh_magic and run the notebook's plain setup cell; False if either failed."""
        for what, code in (("%load_ext", "%load_ext kitteh_magic"),
                           ("setup cell", setup or (sc.setup() if sc else ""))):
            if not self.ok(kernel, code, out, f"{label}, {what}"):
                return False
        return True

    def ok(self, kernel: Kernel, code: str, out: Outcome, label: str) -> bool:
        """Run a cell that should succeed; a failure is a cell error."""
        result = self.run(kernel, code, out, label)
        if result is not None and result.error:
            out.fail("errors", f"{label}: {result.error['ename']}: "
                               f"{_summary(result.error['evalue'])}")
        return result is not None and not result.error

    def run_step(self, kernel: Kernel, sc: Scenario, out: Outcome, label: str,
                 code: str | None = None, since: float = 0.0) -> Result | None:
        """Run the step to its end as a user would; an interrupted effect is settled honestly
        (``done`` when the server got its request after ``since``, ``redo`` when not) and the
        step run again."""
        code = code or sc.step()
        for _ in range(3):
            result = self.run(kernel, code, out, label, STEP_CELL)
            if result is None:
                return None
            if result.error is None:
                return result
            ename, evalue = result.error["ename"], plain(result.error["evalue"])
            settle = re.search(r"%durable effect (\S+) (\d+) (?:done|redo)", evalue)
            if ename != "IncompleteEffectError" or settle is None:
                out.fail("errors", f"{label}: {ename}: {_summary(evalue)}")
                return None
            verdict = "done" if self.server.hits(sc.effect_path, after=since) else "redo"
            out.note(f"effect settled {verdict}")
            self.run(kernel, f"%durable effect {settle[1]} {settle[2]} {verdict}", out,
                     f"{label}, settling the effect")
        out.fail("errors", f"{label}: still not finished after settling the effect twice")
        return None

    def check(self, kernel: Kernel, out: Outcome, label: str) -> bool:
        """Compare what the step produced with the plain run; False (and a failure) if not."""
        try:
            got = kernel.value(CHECK)
        except (AssertionError, TimeoutError, ValueError, SyntaxError) as err:
            out.fail("wrong", f"{label}: the step's names are missing or unreadable "
                              f"({_summary(str(err), 120)})")
            return False
        if got != self.expected:
            names = ("results", "checksum", "data.shape", "data.dtype", "data (sha256)")
            diff = [f"{n}={g!r:.60} (plain run: {e!r:.60})"
                    for n, g, e in zip(names, got, self.expected, strict=True) if g != e]
            out.fail("wrong", f"{label}: {', '.join(diff)}")
            return False
        return True

    def scan_log(self, kernel: ChaosKernel, out: Outcome, label: str) -> None:
        """Tracebacks from kitteh_magic in the kernel process's own output."""
        with contextlib.suppress(OSError):
            frames = km_frames(kernel.log_path.read_text(errors="replace"))
            if frames:
                out.fail("tracebacks", f"{label}: kernel process printed a traceback through "
                                       f"{', '.join(frames)}")

    # the command line -----------------------------------------------------------------------
    def cli(self, store: Path, out: Outcome, label: str,
            commands: Sequence[str] = ("status", "verify", "gc")) -> None:
        for command in commands:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "kitteh_magic.cli", command, str(store)],
                    env={**os.environ, **self.env(store)}, capture_output=True, text=True,
                    timeout=120, cwd=store.parent)
            except subprocess.TimeoutExpired:
                out.fail("cli", f"{label}: kitteh-magic {command} hung")
                continue
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            if "Traceback (most recent call last)" in proc.stderr or proc.returncode < 0:
                out.fail("cli", f"{label}: kitteh-magic {command} crashed: {_summary(last)}")
            elif proc.returncode not in (0, 1):
                # A deliberate refusal in one line (2 is the CLI's usage error): not a crash.
                out.note(f"{label}: kitteh-magic {command} refused (exit {proc.returncode}): "
                         f"{_summary(last, 80)}")

    def cli_later(self, store: Path, out: Outcome, label: str) -> Future[None]:
        """:meth:`cli` in a background thread (it only needs the store, not the kernels)."""
        return self._pool.submit(self.cli, store, out, label)

    # the baseline ---------------------------------------------------------------------------
    def baseline(self) -> Outcome:
        """The plain run's values (no kitteh_magic loaded), and a clean durable run and replay."""
        out = Outcome("baseline", "clean run, then replay after a restart")
        sc = self.scenario("base", DELAY)
        kernel = self.kernel(sc.store, sc.directory / "plain.log")
        try:
            kernel.ok(sc.setup())
            kernel.ok(sc.body())
            self.expected = kernel.value(CHECK)
        finally:
            kernel.shutdown()
        kernel = self.kernel(sc.store, sc.directory / "kernel.log")
        try:
            self.prepare(kernel, sc, out, "first run")
            started = time.monotonic()
            if self.run_step(kernel, sc, out, "first run") is not None:
                self.live_seconds = time.monotonic() - started
                self.check(kernel, out, "first run")
            kernel.restart()
            self.prepare(kernel, sc, out, "replay")
            before = self.server.under(sc.prefix)
            replay = self.run_step(kernel, sc, out, "replay")
            live = self.server.under(sc.prefix) - before
            if live:
                out.fail("repeated", f"replay after a restart made {live} live calls", live)
            if replay is not None:
                self.check(kernel, out, "replay")
        finally:
            kernel.shutdown()
        self.scan_log(kernel, out, "baseline")
        out.note(f"live run {self.live_seconds:.1f} s")
        return self.add(out)


def guarded(c: Campaign, part: str, kind: str, trial: Callable[[], object]) -> None:
    """Run one trial; an exception of the harness itself is reported as a harness problem (not
    a product failure) and the campaign goes on."""
    since = len(c.folders)
    try:
        trial()
    except Exception as err:
        out = Outcome(part, kind)
        where = traceback.extract_tb(err.__traceback__)[-1]
        out.problems.append(f"{type(err).__name__}: {_summary(str(err), 200)} "
                            f"(at {Path(where.filename).name}:{where.lineno})")
        c.add(out)
    finally:
        if part != "damage" or kind != "template":  # templates serve the damage cases after
            c.tidy(since)


# -- part (a): SIGKILL at random times and at commit points ------------------------------------


@dataclass(frozen=True)
class Point:
    """Where to kill: ``arm`` runs before the step is sent, ``wait`` returns when it is time
    (or a message saying why the point was never reached)."""

    name: str
    wait: Callable[[Campaign, Scenario, ChaosKernel, str], str]
    arm: Callable[[Campaign, Scenario], None] = lambda c, sc: None
    env: tuple[tuple[str, str], ...] = ()
    """Environment of the first kernel (a product hook that kills it at a named point)."""
    journaled: tuple[str, ...] = ()
    """Calls known to be journaled at the point, beyond those the probe file shows."""


def _after_call(what: str) -> Callable[[Campaign, Scenario, ChaosKernel, str], str]:
    def wait(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
        pid = kernel.pid
        if not wait_until(lambda: what in sc.completed(pid)):
            return f"never saw {what!r} return"
        return ""
    return wait


def _effect_in_flight(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
    return "" if c.server.holding.wait(POINT_TIMEOUT) else "the effect was never called"


def _file_appears(where: str, size: int) -> Callable[[Campaign, Scenario, ChaosKernel, str], str]:
    def wait(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
        folder = sc.store / where

        def big() -> bool:
            with contextlib.suppress(OSError):
                for path in folder.rglob("*"):
                    with contextlib.suppress(OSError):
                        if path.is_file() and path.stat().st_size >= size:
                            return True
            return False
        return "" if wait_until(big) else f"no file of {size >> 20} MB in {where}/ appeared"
    return wait


def _row_appears(pattern: str) -> Callable[[Campaign, Scenario, ChaosKernel, str], str]:
    def wait(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
        watch = Watch(sc.store)
        try:
            return "" if wait_until(lambda: watch.has(pattern), interval=0) \
                else f"no {pattern} row appeared"
        finally:
            watch.close()
    return wait


def _hook_fired(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
    if wait_until(lambda: not kernel.manager.is_alive(), interval=0.01):
        return ""
    return f"the kernel never killed itself (no ${KILL_HOOK} in this kitteh_magic?)"


def _finished(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
    try:
        kernel.collect(msg, timeout=CELL_TIMEOUT)
    except TimeoutError:
        return "the step never finished"
    return ""


POINTS = [
    Point("kill after call 1 returned", _after_call("item 1")),
    Point("kill after call 4 returned", _after_call("item 4")),
    Point("kill while the effect is in flight", _effect_in_flight,
          lambda c, sc: c.server.hold(sc.effect_path)),
    Point("kill after the effect returned", _after_call("effect")),
    Point("kill while the 50 MB blob is written", _file_appears("tmp", 1 << 20)),
    Point("kill once the 50 MB blob is renamed into place", _file_appears("blobs", 40 << 20)),
    Point("kill once the record row appears", _row_appears("km*/rec/*")),
    Point("kill after the step finished", _finished),
    Point("hook: kill once call 1's journal entry is written", _hook_fired,
          env=((KILL_HOOK, "journal-entry-written"),), journaled=("item 0",)),
    Point("hook: kill once the record is written", _hook_fired,
          env=((KILL_HOOK, "record-written"),),
          journaled=("item 0", "item 1", "item 2", "item 3", "item 4", "effect")),
]
QUICK_POINTS = ("kill while the effect is in flight", "kill while the 50 MB blob is written",
                "kill once the record row appears",
                "hook: kill once call 1's journal entry is written")


def _random_point(c: Campaign) -> Point:
    delay = c.rng.uniform(0.0, c.live_seconds * 1.1)

    def wait(c: Campaign, sc: Scenario, kernel: ChaosKernel, msg: str) -> str:
        time.sleep(delay)
        return ""
    return Point(f"random kill at {delay:.2f} s", wait)


def kill_trial(c: Campaign, points: Sequence[Point], kind: str) -> Outcome:
    """Kill the kernel at ``points[0]`` during the step (and, for each further point, during
    the next run: a kill while it resumes), then run it to its end and replay it."""
    out = Outcome("random", kind)
    sc = c.scenario("a", DELAY)
    name = " then ".join(p.name for p in points)
    completed: dict[str, float] = {}
    """Each call that returned into the cell before a kill -> the time of that kill."""
    for n, point in enumerate(points):
        # A new kernel each time (not a restart: a kill hook is in the first one's environment).
        kernel = c.kernel(sc.store, sc.directory / f"killed-{n}.log", env=dict(point.env))
        try:
            if not c.prepare(kernel, sc, out, f"run {n + 1}"):
                return c.add(out)
            point.arm(c, sc)
            msg = kernel.send(sc.step(), STEP_CELL)
            pid = kernel.pid
            missed = point.wait(c, sc, kernel, msg)
            killed_at = time.monotonic()
            kill(kernel)
            c.server.unhold()
            if missed:
                out.fail("errors", f"{point.name}: {missed} (killed anyway)")
            for call in {*sc.completed(pid), *point.journaled}:
                completed.setdefault(call, killed_at)
            out.note(f"{len(completed)} calls done at kill {n + 1}")
            if tmp_files(sc.store):
                out.note("a blob half-written at the kill")
        finally:
            kernel.shutdown()
            c.server.unhold()
        c.scan_log(kernel, out, point.name)

    kernel = c.kernel(sc.store, sc.directory / "kernel.log")
    try:
        if c.prepare(kernel, sc, out, "run after the kill") and \
                c.run_step(kernel, sc, out, "run after the kill") is not None:
            c.check(kernel, out, "run after the kill")
        for call, killed_at in sorted(completed.items()):
            again = c.server.hits(sc.call_path(call), after=killed_at)
            if again and call != "effect":  # the effect counts under "effects twice"
                out.fail("repeated", f"{name}: {call} had returned before a kill and was "
                                     f"requested again {again}x", again)
        effects = c.server.hits(sc.effect_path)
        if effects > 1:
            out.fail("effects", f"{name}: the effect ran {effects} times")

        kernel.restart()
        if c.prepare(kernel, sc, out, "replay"):
            before = c.server.under(sc.prefix)
            replay = c.run_step(kernel, sc, out, "replay after a restart")
            live = c.server.under(sc.prefix) - before
            if live:
                out.fail("repeated", f"{name}: the replay of the finished step made {live} "
                                     "live calls", live)
            if replay is not None:
                c.check(kernel, out, "replay after a restart")
    finally:
        kernel.shutdown()
        c.server.unhold()
    c.scan_log(kernel, out, name)
    c.cli(sc.store, out, "after the trial", commands=("gc",))
    garbage = tmp_files(sc.store)
    if garbage:
        size = sum(p.stat().st_size for p in garbage)
        out.fail("garbage", f"{name}: {len(garbage)} file(s) left in tmp/ after gc "
                            f"({size / 2**20:.0f} MB)", len(garbage))
    return c.add(out)


def has_kill_hook() -> bool:
    """Whether the kitteh_magic the kernels import has the ``$KITTEH_MAGIC_KILL_AT`` hook."""
    return importlib.util.find_spec("kitteh_magic.faults") is not None


def _no_hook(c: Campaign, part: str, kind: str) -> None:
    out = Outcome(part, kind)
    out.note(f"not applicable: this kitteh_magic has no ${KILL_HOOK} hook")
    c.add(out)


def part_random(c: Campaign, trials: int, quick: bool) -> None:
    """Random kills (every third trial kills the resuming run too), then the named points."""
    for i in range(trials):
        twice = i % 3 == 2
        kind = ("two random kills (the second while it resumes)" if twice else
                "random kill during the step")
        points = [_random_point(c) for _ in range(2 if twice else 1)]
        guarded(c, "random", kind, functools.partial(kill_trial, c, points, kind))
    for point in POINTS:
        if quick and point.name not in QUICK_POINTS:
            continue
        if point.env and not has_kill_hook():
            _no_hook(c, "random", point.name)
        else:
            guarded(c, "random", point.name, functools.partial(kill_trial, c, [point], point.name))


# -- part (b): the damage matrix ---------------------------------------------------------------


class Touch:
    """A pickle that creates a file when loaded: proves whether the store ever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _wrong_types(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "many"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return {"not": "a list"}
    if isinstance(value, dict):
        return [1, 2, 3]
    return ["unexpected"]


def _sign(c: Campaign, key: str, doc: dict[str, Any], key_file: Path | None = None) -> str:
    """``doc`` signed as kitteh_magic signs documents, with the user's key (or ``key_file``)."""
    from kitteh_magic.store.frames import encode_json
    from kitteh_magic.store.signing import Signer

    return encode_json(key, doc, Signer(key_file or c.key))


def _rewrite_doc(c: Campaign, store: Path, pattern: str,
                 change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Replace the matching documents by ``change(doc)``, signed again if they were signed."""
    for rowid, key, value, _ in rows(store, pattern):
        signature, text = doc_text(value)
        new = change(json.loads(text))
        raw = _sign(c, key, new) if signature else json.dumps(new)
        with database(store) as con:
            con.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (raw, rowid))


def _edit_rows(store: Path, pattern: str, edit: Callable[[Any], Any]) -> None:
    found = rows(store, pattern)
    if not found:
        raise LookupError(f"no {pattern} row to damage")
    with database(store) as con:
        for rowid, _, value, _ in found:
            con.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (edit(value), rowid))


def _flip(data: bytes, at: int) -> bytes:
    at %= max(len(data), 1)
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _flip_text(text: str) -> str:
    signature, body = doc_text(text)
    middle = len(body) // 2
    body = body[:middle] + chr(ord(body[middle]) ^ 1) + body[middle + 1:]
    return f"{signature}\n{body}" if signature else body


def _row_damages(target: str, where: str | Callable[[Path], str],
                 signed: bool) -> dict[str, Callable[..., None]]:
    """Ways to damage a JSON document row: ``where`` is a GLOB pattern of its key, or finds its
    key in a store."""
    def at(store: Path) -> str:
        return where(store) if callable(where) else where

    def empty(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, at(store), lambda v: "{}")

    def truncate(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, at(store), lambda v: v[:len(v) // 2])

    def flip(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, at(store), _flip_text)

    def garbage(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, at(store), lambda v: "{oops " + os.urandom(16).hex())

    def delete(c: Campaign, store: Path, marker: Path) -> None:
        pattern = at(store)
        if not rows(store, pattern):
            raise LookupError(f"no {pattern} row to delete")
        with database(store) as con:
            con.execute("DELETE FROM Cache WHERE key GLOB ?", (pattern,))

    def wrong_types(c: Campaign, store: Path, marker: Path) -> None:
        _rewrite_doc(c, store, at(store), lambda d: {k: _wrong_types(v) for k, v in d.items()})

    def missing(c: Campaign, store: Path, marker: Path) -> None:
        drop = {"session", "step", "name", "key", "pos", "callee", "state", "outputs"}
        _rewrite_doc(c, store, at(store), lambda d: {k: v for k, v in d.items() if k not in drop})

    def blob(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, at(store), lambda v: v.encode() if isinstance(v, str) else v)

    def foreign(c: Campaign, store: Path, marker: Path) -> None:
        pattern = at(store)
        _edit_rows(store, pattern, lambda v: pickle.dumps(Touch(marker)))
        with database(store) as con:  # mode 4: diskcache's own pickled value
            con.execute("UPDATE Cache SET mode = 4 WHERE key GLOB ?", (pattern,))

    ways: dict[str, Callable[..., None]] = {
        "truncate": truncate, "flip a byte": flip, "garbage": garbage, "delete": delete,
        "empty JSON {}": empty,
        "wrong types" + (" (signed with the user's key)" if signed else ""): wrong_types,
        "missing fields" + (" (signed with the user's key)" if signed else ""): missing,
        "BLOB instead of TEXT": blob, "foreign pickle row": foreign,
    }
    return {f"{target}: {way}": fn for way, fn in ways.items()}


def _frame_damages() -> dict[str, Callable[..., None]]:
    """Ways to damage the value frames kept in the SQLite index (``km1/val/...``)."""
    pattern = "km*/val/*"

    def edit(fn: Callable[[bytes], bytes]) -> Callable[..., None]:
        return lambda c, store, marker: _edit_rows(store, pattern, fn)

    def delete(c: Campaign, store: Path, marker: Path) -> None:
        with database(store) as con:
            if not con.execute("DELETE FROM Cache WHERE key GLOB ?", (pattern,)).rowcount:
                raise LookupError("no value frame row to delete")

    def foreign(c: Campaign, store: Path, marker: Path) -> None:
        _edit_rows(store, pattern, lambda v: pickle.dumps(Touch(marker)))
        with database(store) as con:
            con.execute("UPDATE Cache SET mode = 4 WHERE key GLOB ?", (pattern,))

    ways: dict[str, Callable[..., None]] = {
        "truncate": edit(lambda v: v[:len(v) // 2]),
        "flip a byte of the stream": edit(lambda v: _flip(v, len(v) - 40)),
        "flip a byte of the header": edit(lambda v: _flip(v, 40)),
        "garbage": edit(lambda v: os.urandom(len(v))),
        "delete": delete,
        "empty": edit(lambda v: b""),
        "future frame version": edit(lambda v: v[:4] + bytes([v[4] + 1]) + v[5:]),
        "TEXT instead of BLOB": edit(lambda v: bytes(v).decode("latin-1")),
        "foreign pickle row": foreign,
    }
    return {f"value frame in the index: {way}": fn for way, fn in ways.items()}


def _blob_damages(target: str, largest: bool) -> dict[str, Callable[..., None]]:
    """Ways to damage blob files: the largest one (the step's outputs) or every one."""
    def targets(store: Path) -> list[Path]:
        found = blob_files(store)
        if not found:
            raise LookupError("no blob file to damage")
        return found[-1:] if largest else found

    def edit(fn: Callable[[Path], None]) -> Callable[..., None]:
        def apply(c: Campaign, store: Path, marker: Path) -> None:
            for path in targets(store):
                fn(path)
        return apply

    def rewrite(path: Path, at: int, data: bytes) -> None:
        with path.open("r+b") as f:
            f.seek(at)
            f.write(data)

    def flip(path: Path, at: int) -> None:
        with path.open("r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0xFF]))

    def directory(path: Path) -> None:
        path.unlink()
        path.mkdir()

    ways: dict[str, Callable[[Path], None]] = {
        "truncate": lambda p: os.truncate(p, p.stat().st_size // 2),
        "flip a byte of the header": lambda p: flip(p, 40),
        "flip a byte of the data": lambda p: flip(p, p.stat().st_size - 1000),
        "garbage": lambda p: rewrite(p, 0, os.urandom(4096)),
        "delete": lambda p: p.unlink(),
        "replace by a directory": directory,
        "empty": lambda p: os.truncate(p, 0),
        "future frame version": lambda p: rewrite(p, 4, bytes([p.read_bytes()[4] + 1])),
    }
    return {f"{target}: {way}": edit(fn) for way, fn in ways.items()}


def _index_damages() -> dict[str, Callable[..., None]]:
    """Ways to damage the SQLite index file itself."""
    def files(store: Path) -> list[Path]:
        db = index_db(store)
        return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]

    def remove_side(store: Path) -> None:
        for path in files(store)[1:]:
            path.unlink(missing_ok=True)

    def edit(fn: Callable[[Path], None]) -> Callable[..., None]:
        def apply(c: Campaign, store: Path, marker: Path) -> None:
            remove_side(store)
            fn(index_db(store))
        return apply

    def flip_at(path: Path, at: int, n: int = 16) -> None:
        data = bytearray(path.read_bytes())
        for i in range(at, min(at + n, len(data))):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    def page_two(path: Path) -> int:
        return int.from_bytes(path.read_bytes()[16:18], "big") + 100

    def directory(path: Path) -> None:
        path.unlink()
        path.mkdir()

    def index_is_file(c: Campaign, store: Path, marker: Path) -> None:
        shutil.rmtree(store / "index")
        (store / "index").write_text("not a directory")

    ways: dict[str, Callable[..., None]] = {
        "truncate": edit(lambda p: os.truncate(p, p.stat().st_size // 2)),
        "flip the header": edit(lambda p: flip_at(p, 0)),
        "flip bytes of page 2": edit(lambda p: flip_at(p, page_two(p))),
        "garbage": edit(lambda p: p.write_bytes(os.urandom(p.stat().st_size))),
        "delete": edit(lambda p: p.unlink()),
        "replace by a directory": edit(directory),
        "empty": edit(lambda p: os.truncate(p, 0)),
        "index/ replaced by a file": index_is_file,
    }
    return {f"index file: {way}": fn for way, fn in ways.items()}


def _settings_damages() -> dict[str, Callable[..., None]]:
    """Values of diskcache's Settings table, which diskcache trusts from disk."""
    def setting(**values: Any) -> Callable[..., None]:
        def apply(c: Campaign, store: Path, marker: Path) -> None:
            with database(store) as con:
                for key, value in values.items():
                    con.execute("UPDATE Settings SET value = ? WHERE key = ?", (value, key))
        return apply

    ways: dict[str, Callable[..., None]] = {
        "sqlite_journal_mode = off": setting(sqlite_journal_mode="off"),
        "sqlite_journal_mode = x' (bad SQL)": setting(sqlite_journal_mode="x'"),
        "sqlite_synchronous = bogus()": setting(sqlite_synchronous="bogus()"),
        "sqlite_cache_size = 'a lot'": setting(sqlite_cache_size="a lot"),
        "sqlite_mmap_size = -1": setting(sqlite_mmap_size=-1),
        "count = 'many'": setting(count="many"),
        "eviction_policy = least-recently-stored, size_limit = 1":
            setting(eviction_policy="least-recently-stored", size_limit=1),
        "disk_min_file_size = 'x'": setting(disk_min_file_size="x"),
    }
    return {f"diskcache Settings: {way}": fn for way, fn in ways.items()}


FINISHED_DAMAGES: dict[str, Callable[..., None]] = {
    **_row_damages("step pointer", "km*/ptr/*", signed=False),
    **_row_damages("session doc", "km*/ses/*", signed=False),
    **_row_damages("step record", "km*/rec/*", signed=True),
    **_frame_damages(),
    **_blob_damages("outputs blob", largest=True),
    **_index_damages(),
    **_settings_damages(),
}
"""Damages applied to the store of a clean finished run."""
INTERRUPTED_DAMAGES: dict[str, Callable[..., None]] = {
    **_row_damages("journal entry #2", lambda store: journal_entry(store, "*", 1), signed=True),
    **_row_damages("journal head", "km*/jrn/*#head", signed=True),
    **_row_damages("running step pointer", "km*/ptr/*", signed=False),
    **{k: v for k, v in _blob_damages("journaled result blob", largest=False).items()
       if "header" not in k},
}
"""Damages applied to the store of a run killed during call 4 (journal entries #1-#3). The
journal head (execution id and step version) exists in kitteh_magic versions that bind a journal
to one execution; elsewhere those cases are "not applicable"."""
QUICK_DAMAGES = (
    "step pointer: garbage", "session doc: empty JSON {}", "step record: flip a byte",
    "value frame in the index: truncate", "outputs blob: replace by a directory",
    "index file: truncate", "diskcache Settings: sqlite_journal_mode = x' (bad SQL)",
    "journal entry #2: flip a byte", "journaled result blob: delete",
)


def make_template(c: Campaign, interrupted: bool, into: list[Scenario]) -> None:
    """A store after a clean finished run, or after a kill while call 4 was in flight; appended
    to ``into``."""
    label = "killed during call 4" if interrupted else "clean finished run"
    out = Outcome("damage", f"template: {label}")
    sc = c.scenario("j" if interrupted else "b")
    kernel = c.kernel(sc.store, sc.directory / "kernel.log")
    try:
        if c.prepare(kernel, sc, out, label):
            if interrupted:
                c.server.hold(sc.item_path(3))
                kernel.send(sc.step(), STEP_CELL)
                if not c.server.holding.wait(POINT_TIMEOUT):
                    out.fail("errors", "call 4 was never made")
                kill(kernel)
                c.server.unhold()
            elif c.run_step(kernel, sc, out, label) is not None:
                c.check(kernel, out, label)
    finally:
        kernel.shutdown()
        c.server.unhold()
    checkpoint(sc.store)
    if out.failures:
        c.add(out)
    into.append(sc)


def damage_case(c: Campaign, name: str, damage: Callable[..., None],
                template: Scenario) -> Outcome:
    """Damage a copy of ``template``'s store, run the notebook twice in fresh kernels, run the
    CLI on the damaged store (a copy, in a thread) and on the final one."""
    out = Outcome("damage", name)
    started = time.monotonic()
    directory = c.work / f"d{len(c.outcomes)}-{re.sub(r'[^a-z0-9]+', '-', name.lower())[:40]}"
    # The same code and probe as the template (so the record matches), in a store of its own.
    sc = Scenario(template.base, template.directory, template.delay)
    store = directory / "store"
    shutil.copytree(template.store, store, symlinks=True)
    marker = directory / "pickle-ran"
    try:
        damage(c, store, marker)
    except LookupError as err:
        out.note(f"not applicable: {err}")
        return c.add(out)
    except Exception as err:
        out.problems.append(f"could not damage the store: {type(err).__name__}: {err}")
        return c.add(out)
    copy = directory / "cli-before" / "store"
    shutil.copytree(store, copy, symlinks=True)
    cli_before = c.cli_later(copy, out, "on the damaged store")
    live: list[int] = []
    runs: list[Result | None] = []
    kernel = ChaosKernel(directory, c.env(store), directory / "kernel.log")
    try:
        for run in ("first run", "second run"):
            if run == "second run":
                kernel.restart()
            result: Result | None = None
            before = c.server.under(sc.prefix)
            if c.prepare(kernel, sc, out, run):
                result = c.run_step(kernel, sc, out, run, since=started)
            live.append(c.server.under(sc.prefix) - before)
            runs.append(result)
            if result is not None and not c.check(kernel, out, run):
                runs[-1] = None
    finally:
        kernel.shutdown()
    c.scan_log(kernel, out, "kernel")
    second = runs[1]
    if second is None or live[1] or not second.replayed:
        why = ("it failed" if second is None else
               f"it made {live[1]} live calls" if live[1] else "it was not replayed")
        out.fail("unhealed", f"the second run after one recompute did not replay cleanly: {why}")
    out.note(f"live calls {live[0]} then {live[1]}")
    c.cli(store, out, "after the runs")
    cli_before.result()
    if marker.exists():
        out.fail("code", "the planted pickle was loaded (it created its file)")
    if not c.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return c.add(out)


def part_damage(c: Campaign, quick: bool, match: str = "") -> None:
    since = len(c.folders)
    for interrupted, damages in ((False, FINISHED_DAMAGES), (True, INTERRUPTED_DAMAGES)):
        chosen = {name: damage for name, damage in damages.items()
                  if (not quick or name in QUICK_DAMAGES) and match.lower() in name.lower()}
        if not chosen:
            continue
        templates: list[Scenario] = []
        guarded(c, "damage", "template",
                functools.partial(make_template, c, interrupted, templates))
        for name, damage in chosen.items():
            if templates:
                guarded(c, "damage", name,
                        functools.partial(damage_case, c, name, damage, templates[0]))
    c.tidy(since)  # the templates


# -- part (c): tamper and rollback -------------------------------------------------------------

def _seq_cell(step: str, *names: str, force: bool = False) -> str:
    lines = [f"%%durable {step}" + (" --force" if force else "")]
    for var, name in zip("abcd", names, strict=False):
        lines.append(f'{var} = json.loads(urllib.request.urlopen(f"{{BASE}}/seq/{name}").read())')
    lines.append("(" + ", ".join(f"{v}['name'], {v}['n']" for v in "abcd"[:len(names)]) + ")")
    return "\n".join(lines) + "\n"


class _Tamper:
    """A fresh store and kernels for one tamper case."""

    def __init__(self, c: Campaign, out: Outcome) -> None:
        self.c, self.out = c, out
        self.sc = c.scenario("c")
        self.kernels: list[ChaosKernel] = []

    @property
    def setup(self) -> str:
        return f"import json, urllib.request\nBASE = {self.sc.base!r}\n"

    def kernel(self) -> ChaosKernel:
        kernel = self.c.kernel(self.sc.store, self.sc.directory / f"k{len(self.kernels)}.log")
        self.kernels.append(kernel)
        self.c.prepare(kernel, None, self.out, "setup", setup=self.setup)
        return kernel

    def value(self, kernel: Kernel, code: str, label: str) -> Any:
        result = self.c.run(kernel, code, self.out, label)
        if result is None:
            return None
        if result.error:
            self.out.fail("errors", f"{label}: {result.error['ename']}: "
                                    f"{_summary(result.error['evalue'])}")
            return None
        try:
            return ast.literal_eval(result.text)
        except (ValueError, SyntaxError):
            return result.text

    def interrupt(self, code: str, held: str) -> None:
        """Run ``code`` in a new kernel and kill it while the call to ``held`` is in flight."""
        self.c.server.hold(f"{self.sc.prefix}/seq/{held}")
        kernel = self.kernel()
        kernel.send(code)
        if not self.c.server.holding.wait(POINT_TIMEOUT):
            self.out.fail("errors", f"the call to {held} was never made")
        kill(kernel)
        self.c.server.unhold()
        self.stop()

    def stop(self) -> None:
        for kernel in self.kernels:
            kernel.shutdown()
            self.c.scan_log(kernel, self.out, "kernel")
        self.kernels = []


def tamper_rollback(c: Campaign, t: _Tamper) -> None:
    """A record's signed text from before a ``--force`` run, written back, must not replay."""
    cell = _seq_cell("roll", "roll")
    kernel = t.kernel()
    first = t.value(kernel, cell, "first run")
    saved = full_rows(t.sc.store, "km*/rec/*")
    forced = t.value(kernel, _seq_cell("roll", "roll", force=True), "--force run")
    t.stop()
    keys = {r["key"] for r in saved} & {r[1] for r in rows(t.sc.store, "km*/rec/*")}
    t.out.note("same record key" if keys else "--force wrote another record key")
    put_rows(t.sc.store, saved)
    after = t.value(t.kernel(), cell, "run after the rollback")
    t.stop()
    if after is not None and after == first:
        t.out.fail("stale", f"replayed the rolled-back value {first} (the --force run gave "
                            f"{forced})")


def tamper_reinsert(c: Campaign, t: _Tamper) -> None:
    """A journal entry of an execution whose journal was forgotten, put back, must not replay."""
    cell = _seq_cell("jr", "jr-a", "jr-b")
    t.interrupt(cell, "jr-b")
    saved = full_rows(t.sc.store, "km*/jrn/*")
    if not saved:
        t.out.fail("errors", "the killed step left no journal (call 1 was not journaled)")
    kernel = t.kernel()
    t.value(kernel, "%durable invalidate jr --forget-journal", "invalidate")
    t.stop()
    left = len(rows(t.sc.store, "km*/jrn/*"))
    if left:
        t.out.note(f"invalidate left {left} journal rows")
    put_rows(t.sc.store, saved)
    got = t.value(t.kernel(), cell, "run after the re-insert")
    t.stop()
    if isinstance(got, tuple) and got[:2] == ("jr-a", 1):
        t.out.fail("stale", "call 1 replayed the re-inserted entry of the invalidated execution "
                            "(jr-a n=1; live it is n=2)")


def tamper_swap_record(c: Campaign, t: _Tamper, forge: bool) -> None:
    """Step one's record under step two's key (as is, or signed with an attacker's key)."""
    one, two = "%%durable one\nword = 'one'\nword\n", "%%durable two\nword = 'two'\nword\n"
    kernel = t.kernel()
    t.value(kernel, one, "step one")
    t.value(kernel, two, "step two")
    t.stop()
    records = {json.loads(doc_text(v)[1])["step"]: (rowid, key, v)
               for rowid, key, v, _ in rows(t.sc.store, "km*/rec/*")}
    _, _, text = records["one"]
    rowid, key, _ = records["two"]
    if forge:
        doc = json.loads(doc_text(text)[1])
        text = _sign(c, key, doc, key_file=c.work / "attacker-key")
    with database(t.sc.store) as con:
        con.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (text, rowid))
    got = t.value(t.kernel(), two, "step two after the swap")
    t.stop()
    if got == "one":
        t.out.fail("stale", "step two replayed step one's record" +
                   (" signed with another key" if forge else ""))


def tamper_swap_journal(c: Campaign, t: _Tamper) -> None:
    """Step y's journal entry #1 under step x's key at the same position."""
    x, y = _seq_cell("jx", "jx-a", "jx-b"), _seq_cell("jy", "jy-a", "jy-b")
    t.interrupt(x, "jx-b")
    t.interrupt(y, "jy-b")
    ours = rows(t.sc.store, journal_entry(t.sc.store, "jx", 0))
    theirs = rows(t.sc.store, journal_entry(t.sc.store, "jy", 0))
    if not ours or not theirs:
        t.out.fail("errors", "the killed steps left no journal entry #1")
        return
    with database(t.sc.store) as con:
        con.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (theirs[0][2], ours[0][0]))
    got = t.value(t.kernel(), x, "step x after the swap")
    t.stop()
    if isinstance(got, tuple) and got[0] != "jx-a":
        t.out.fail("stale", f"step x replayed step y's journal entry ({got[0]})")


TAMPERS: dict[str, Callable[[Campaign, _Tamper], None]] = {
    "record rolled back to its text before a --force run": tamper_rollback,
    "journal entry re-inserted after an invalidate": tamper_reinsert,
    "record of another step under this key": lambda c, t: tamper_swap_record(c, t, False),
    "record of another step signed with another key": lambda c, t: tamper_swap_record(c, t, True),
    "journal entry of another step at this position": tamper_swap_journal,
}


def part_tamper(c: Campaign, quick: bool) -> None:
    for name, case in TAMPERS.items():
        out = Outcome("tamper", name)
        since = len(c.folders)
        t = _Tamper(c, out)
        try:
            case(c, t)
        except Exception as err:
            out.problems.append(f"{type(err).__name__}: {_summary(str(err), 200)}")
        finally:
            t.stop()
            c.tidy(since)
        c.add(out)


# -- part (d): a leftover journal --------------------------------------------------------------

_CAPTURE = """
CREATE TABLE chaos_saved AS SELECT * FROM Cache WHERE 0;
CREATE TRIGGER chaos_journal BEFORE DELETE ON Cache WHEN OLD.key GLOB 'km*/jrn/*'
BEGIN INSERT INTO chaos_saved SELECT * FROM Cache WHERE rowid = OLD.rowid; END;
CREATE TRIGGER chaos_pointer BEFORE UPDATE OF value ON Cache
WHEN OLD.key GLOB 'km*/ptr/*' AND OLD.value LIKE '%"state":"running"%'
 AND NEW.value NOT LIKE '%"state":"running"%'
BEGIN INSERT INTO chaos_saved SELECT * FROM Cache WHERE rowid = OLD.rowid; END;
"""
"""Triggers that keep a copy of the journal as it is cleared and of the pointer before "done"."""


def _leftover_check(c: Campaign, sc: Scenario, out: Outcome) -> None:
    """The same cell replays; the edited cell makes every call live (6: 5 items and the effect)."""
    kernel = c.kernel(sc.store, sc.directory / "after.log")
    try:
        if not c.prepare(kernel, sc, out, "after"):
            return
        before = c.server.under(sc.prefix)
        if c.run_step(kernel, sc, out, "the same cell") is not None:
            c.check(kernel, out, "the same cell")
        same = c.server.under(sc.prefix) - before
        before = c.server.under(sc.prefix)
        if c.run_step(kernel, sc, out, "the edited cell", sc.step(edited=True)) is not None:
            c.check(kernel, out, "the edited cell")
        edited = c.server.under(sc.prefix) - before
        out.note(f"live calls: same cell {same}, edited cell {edited}")
        if same:
            out.fail("repeated", f"the same cell made {same} live calls instead of replaying",
                     same)
        if edited < 6:
            out.fail("stale", f"the edited cell took {6 - edited} of its 6 calls from the old "
                              "journal", 6 - edited)
    finally:
        kernel.shutdown()
    c.scan_log(kernel, out, "kernel")


def leftover_exact(c: Campaign) -> Outcome:
    """The state of a kill between the record write and the pointer's "done", made exactly:
    the journal (kept anyway) and the "running" pointer."""
    out = Outcome("journal", "record written, pointer still running (exact, by triggers)")
    sc = c.scenario("e")
    kernel = c.kernel(sc.store, sc.directory / "kernel.log")
    try:
        if not c.prepare(kernel, sc, out, "first run"):
            return c.add(out)
        # The store exists from here on.
        if not c.ok(kernel, "%%durable warm-up\nready = True\n", out, "warm-up"):
            return c.add(out)
        with database(sc.store) as con:
            con.executescript(_CAPTURE)
        if c.run_step(kernel, sc, out, "first run") is None:
            return c.add(out)
        kill(kernel)
    finally:
        kernel.shutdown()
    with database(sc.store) as con:
        saved = con.execute("SELECT count(*) FROM chaos_saved").fetchone()[0]
        con.executescript("DROP TRIGGER chaos_journal; DROP TRIGGER chaos_pointer;")
    saved_rows = full_rows_from(sc.store, "chaos_saved")
    with database(sc.store) as con:
        con.execute("DROP TABLE chaos_saved")
    put_rows(sc.store, saved_rows)
    out.note(f"{saved} rows put back")
    if not rows(sc.store, "km*/jrn/*"):
        out.fail("errors", "the finished step kept no journal (issue 10 keeps it)")
    _leftover_check(c, sc, out)
    return c.add(out)


def full_rows_from(store: Path, table: str) -> list[dict[str, Any]]:
    with database(store) as con:
        cursor = con.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def leftover_by_kill(c: Campaign, hook: bool) -> Outcome:
    """Kill as soon as the record row appears (sometimes before the journal is cleared), or at
    kitteh_magic's own ``record-written`` hook (always between the two)."""
    kind = ("hook: kill once the record is written, edit, run" if hook else
            "kill as soon as the record row appears, edit, run")
    out = Outcome("journal", kind)
    sc = c.scenario("k")
    kernel = c.kernel(sc.store, sc.directory / "kernel.log",
                      env={KILL_HOOK: "record-written"} if hook else None)
    try:
        if not c.prepare(kernel, sc, out, "first run"):
            return c.add(out)
        msg = kernel.send(sc.step(), STEP_CELL)
        wait = _hook_fired if hook else _row_appears("km*/rec/*")
        missed = wait(c, sc, kernel, msg)
        kill(kernel)
        if missed:
            out.fail("errors", missed)
    finally:
        kernel.shutdown()
    out.note(f"{len(rows(sc.store, 'km*/jrn/*'))} journal rows kept")
    _leftover_check(c, sc, out)
    return c.add(out)


def part_journal(c: Campaign, trials: int) -> None:
    guarded(c, "journal", "exact", functools.partial(leftover_exact, c))
    if has_kill_hook():
        guarded(c, "journal", "hook", functools.partial(leftover_by_kill, c, hook=True))
    else:
        _no_hook(c, "journal", "hook: kill once the record is written, edit, run")
    for _ in range(trials):
        guarded(c, "journal", "poll", functools.partial(leftover_by_kill, c, hook=False))


# -- part (e): two kernels ---------------------------------------------------------------------

def two_kernels(c: Campaign) -> Outcome:
    out = Outcome("two", "two kernels run the same step at once")
    sc = c.scenario("t", DELAY)
    kernels = [c.kernel(sc.store, sc.directory / f"k{i}.log") for i in range(2)]
    try:
        for kernel in kernels:
            c.prepare(kernel, sc, out, "setup")
        msgs = [kernel.send(sc.step(), STEP_CELL) for kernel in kernels]
        for i, (kernel, msg) in enumerate(zip(kernels, msgs, strict=True)):
            try:
                result = kernel.collect(msg, timeout=CELL_TIMEOUT)
            except TimeoutError:
                out.fail("errors", f"kernel {i + 1}: no answer")
                continue
            c.inspect(result, out, f"kernel {i + 1}")
            if result.error:
                out.fail("errors", f"kernel {i + 1}: {result.error['ename']}: "
                                   f"{_summary(result.error['evalue'])}")
            else:
                c.check(kernel, out, f"kernel {i + 1}")
    finally:
        for kernel in kernels:
            kernel.shutdown()
            c.scan_log(kernel, out, "kernel")
    hits = c.server.paths(sc.prefix)
    twice = sum(n - 1 for path, n in hits.items() if n > 1 and path != sc.effect_path)
    if twice:
        out.fail("repeated", f"{twice} item calls ran in both kernels", twice)
    if hits[sc.effect_path] > 1:
        out.fail("effects", f"the effect ran {hits[sc.effect_path]} times")
    return c.add(out)


def part_two(c: Campaign, trials: int) -> None:
    for _ in range(trials):
        guarded(c, "two", "two kernels", functools.partial(two_kernels, c))


# -- the report --------------------------------------------------------------------------------


def table(outcomes: Sequence[Outcome]) -> str:
    """Kinds x outcomes, one row per (part, kind), as markdown."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.part, outcome.kind), []).append(outcome)
    head = ["part", "kind", "trials", *COLUMNS.values(), "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (part, kind), group in groups.items():
        counts: Counter[str] = Counter()
        notes: Counter[str] = Counter()
        for outcome in group:
            counts.update(outcome.counts)
            notes.update(outcome.notes)
            notes.update("HARNESS PROBLEM" for _ in outcome.problems)
        shown = "; ".join(n if k == 1 else f"{n} (x{k})" for n, k in notes.most_common(4))
        if len(notes) > 4:
            shown += f"; {len(notes) - 4} more"
        part_name = part if all(o.judged for o in group) else f"{part} (reported)"
        cells = [part_name, kind, str(len(group)),
                 *(str(counts[c]) if counts[c] else "·" for c in COLUMNS), shown]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def failures(outcomes: Sequence[Outcome], judged_only: bool = True) -> list[str]:
    return [f for o in outcomes if o.judged or not judged_only for f in o.failures]


def problems(outcomes: Sequence[Outcome]) -> list[str]:
    return [f"{o.part} / {o.kind}: {p}" for o in outcomes for p in o.problems]


def report(outcomes: Sequence[Outcome], seconds: float | None = None) -> str:
    """The table, a one-line summary, every failing case and every harness problem."""
    judged = failures(outcomes)
    reported = [f for o in outcomes if not o.judged for f in o.failures]
    took = "" if seconds is None else f" in {seconds / 60:.1f} min"
    parts = [table(outcomes), "",
             f"{len(outcomes)} trials and cases{took}; "
             f"{len(judged)} failures against the contract"
             + (f", {len(reported)} reported only" if reported else "") + ".", ""]
    if judged or reported:
        parts.append("## Failing cases\n")
        parts += [f"- {f}" + (f" (x{n})" if n > 1 else "") for f, n in Counter(judged).items()]
        parts += [f"- (reported only) {f}" + (f" (x{n})" if n > 1 else "")
                  for f, n in Counter(reported).items()]
    if problems(outcomes):
        parts += ["", "## Harness problems (not product failures)\n"]
        parts += [f"- {p}" for p in problems(outcomes)]
    return "\n".join(parts)


# -- entry points ------------------------------------------------------------------------------


@contextlib.contextmanager
def campaign(work: Path | None = None, seed: int = 8,
             progress: Callable[[str], None] | None = None,
             keep: bool = False) -> Iterator[Campaign]:
    """A server, a work folder (a temporary one unless given) and the baseline run; with
    ``keep``, every trial's store and kernel logs stay in the work folder."""
    server = ApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    owned = work is None
    folder = Path(tempfile.mkdtemp(prefix="kitteh-chaos-")) if work is None else work
    c = Campaign(folder, server, seed, progress, keep)
    try:
        c.baseline()
        yield c
    finally:
        c.close()
        server.unhold()
        server.shutdown()
        server.server_close()
        c.tidy()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


def run_parts(c: Campaign, only: Sequence[str], trials: int, quick: bool,
              match: str = "") -> None:
    """Run the chosen parts; ``trials`` random kills, and a share of it for the other parts;
    only the damage cases whose name contains ``match``."""
    if "random" in only:
        part_random(c, trials, quick)
    if "damage" in only:
        part_damage(c, quick, match)
    if "tamper" in only:
        part_tamper(c, quick)
    if "journal" in only:
        part_journal(c, max(1, trials // 8))
    if "two" in only:
        part_two(c, max(1, trials // 10))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chaos.py", description="The fault campaign of issue 8 (real kernels, real kills).")
    parser.add_argument("--trials", type=int, default=None,
                        help="random kills (default 40, 2 with --quick); journal and two-kernel "
                             "trials are an 8th and a 10th of it")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts (default all): {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true",
                        help="a few trials of each part, as the test suite runs them")
    parser.add_argument("--seed", type=int, default=8, help="seed of the random kill times")
    parser.add_argument("--match", default="", metavar="TEXT",
                        help="only the damage cases whose name contains TEXT (e.g. 'record:')")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the stores and kernel logs in this (new) folder")
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in args.only if p not in PARTS]
    if unknown or not args.only:
        parser.error(f"--only: unknown part(s) {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(PARTS)}")
    if args.trials is None:
        args.trials = 2 if args.quick else 40
    if args.trials < 0:
        parser.error("--trials must be 0 or more")
    if args.keep is not None:
        if args.keep.exists():
            parser.error(f"--keep: {args.keep} exists; name a new folder")
        args.keep.mkdir(parents=True)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"{time.monotonic() - started:6.0f}s {text}", file=sys.stderr, flush=True)

    with campaign(args.keep, args.seed, progress, keep=args.keep is not None) as c:
        run_parts(c, args.only, args.trials, args.quick, args.match)
        print(report(c.outcomes, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
