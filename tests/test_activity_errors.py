"""Journaled exceptions come back as themselves (DESIGN §4.5): a failure a cell caught replays as
the same exception, whatever its class's ``__init__`` looks like and whatever it holds.

The first half runs steps in this process (a real store; a new ``Journal`` on the same store is
what a restarted kernel sees); the second half kills real kernels in the middle of a cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel

import kitteh_magic.activities as km
from kitteh_magic.activities.dispatch import StepActivities, call
from kitteh_magic.activities.journal import Journal
from kitteh_magic.steps.records import JournalEntry
from kitteh_magic.store import Store

# -- in this process ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "store", key_file=tmp_path / "key")
    yield st
    st.close()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv



def replayed_positions(activities: StepActivities) -> set[int]:
    """Main-line positions of the calls this execution took from the journal."""
    return {entry.pos for slot in activities.from_journal
            if (entry := activities.journal.get(slot)) is not None}

def run_step(store: Store, body: Callable[[], Any],
             namespace: dict[str, Any] | None = None) -> tuple[Any, StepActivities]:
    """Run ``body`` as a durable step's code; a new Journal each time, as after a restart."""
    activities = StepActivities(Journal(store, "s", "step", namespace))
    token = activities.activate()
    try:
        return body(), activities
    except BaseException as exc:
        activities.ended_by(exc)  # as the step does when its cell fails
        raise
    finally:
        activities.deactivate(token)


def caught(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> BaseException:
    """Call ``fn`` as a durable cell would and return what it raised."""
    try:
        call(fn, *args, **kwargs)
    except Exception as exc:
        return exc
    raise AssertionError(f"{fn} raised nothing")


NOTEBOOK_CLASSES = """
import threading

class ApiError(Exception):
    def __init__(self, *, status, detail):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail

class QuotaError(Exception):
    def __init__(self, limit, message):
        super().__init__(message)
        self.limit = limit

class Locked(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()
        self.code = 7
"""


def notebook() -> dict[str, Any]:
    """A namespace whose classes are the notebook's (module ``__main__``), made anew each time."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(NOTEBOOK_CLASSES, namespace)
    return namespace


def raising(make: Callable[[], BaseException], calls: list[int]) -> Callable[[], None]:
    @km.activity
    def flaky() -> None:
        calls.append(1)
        raise make()
    return flaky


@pytest.mark.parametrize(("make", "check"), [
    (lambda ns: ns["ApiError"](status=503, detail="busy"),
     lambda e: (e.status, e.detail, str(e), e.args) == (503, "busy", "503: busy", ("503: busy",))),
    (lambda ns: ns["QuotaError"](100, "over quota"),
     lambda e: (e.limit, str(e), e.args) == (100, "over quota", ("over quota",))),
    (lambda ns: ns["Locked"]("held"),
     lambda e: (e.code, str(e)) == (7, "held") and "lock" in repr(e.lock)),
], ids=["keyword-only init", "extra required args", "unpicklable attribute"])
def test_a_notebook_exception_replays_as_the_notebooks_class(
        store: Store, make: Callable[[dict[str, Any]], BaseException],
        check: Callable[[Any], bool]) -> None:
    calls: list[int] = []
    first_ns = notebook()
    flaky = raising(lambda: make(first_ns), calls)
    live, _ = run_step(store, lambda: caught(flaky), first_ns)
    assert check(live)
    # A restarted kernel: the notebook defines its classes again (new class objects).
    second_ns = notebook()
    replayed, activities = run_step(store, lambda: caught(flaky), second_ns)
    assert calls == [1] and replayed_positions(activities) == {0}
    assert type(replayed) is second_ns[type(live).__name__]
    assert check(replayed)


def test_an_unpicklable_attribute_stands_in_and_says_what_it_was(store: Store) -> None:
    ns = notebook()
    flaky = raising(lambda: ns["Locked"]("held"), [])
    run_step(store, lambda: caught(flaky), ns)
    replayed, _ = run_step(store, lambda: caught(flaky), ns)
    assert repr(replayed.lock).startswith("<unlocked _thread.lock object")
    with pytest.raises(AttributeError, match=r"_thread\.lock.*could not be saved"):
        replayed.lock.acquire()


def test_library_exceptions_round_trip(store: Store, server: CountingServer,
                                       tmp_path: Path) -> None:
    import xmlrpc.client

    @km.activity
    def parse(text: str) -> Any:
        return json.loads(text)

    @km.activity
    def read(path: str) -> str:
        return Path(path).read_text()

    @km.activity
    def fault() -> None:
        raise xmlrpc.client.Fault(4, "too many parameters")

    missing = str(tmp_path / "missing.txt")

    def cell() -> list[BaseException]:
        response = call(httpx.get, f"{server.url}/flaky/x?fail=1")
        return [caught(parse, "{bad"), caught(subprocess.run, ["false"], check=True),
                caught(read, missing), caught(urllib.request.urlopen, f"{server.url}/nowhere"),
                caught(response.raise_for_status), caught(fault)]

    live, _ = run_step(store, cell)
    replayed, activities = run_step(store, cell)
    assert len(activities.from_journal) == 7 and server.hits["/nowhere"] == 1
    for before, after in zip(live, replayed, strict=True):
        assert type(after) is type(before) and str(after) == str(before), (before, after)
    decode, process, oserror, http_error, status, xml_fault = replayed
    assert (decode.msg, decode.pos, decode.lineno) == ("Expecting property name enclosed in "
                                                       "double quotes", 1, 1)
    assert (process.returncode, process.cmd) == (1, ["false"])
    assert isinstance(oserror, FileNotFoundError)
    assert (oserror.errno, oserror.filename) == (2, missing)
    assert isinstance(http_error, urllib.error.HTTPError) and http_error.code == 404
    assert json.loads(http_error.read()) == {"error": "no such path"}
    assert isinstance(status, httpx.HTTPStatusError)
    assert status.response.status_code == 503 and status.request.url.path == "/flaky/x"
    assert (xml_fault.faultCode, xml_fault.faultString) == (4, "too many parameters")


def test_cause_context_and_notes_come_back(store: Store) -> None:
    ns = notebook()

    @km.activity
    def wrapped() -> None:
        try:
            raise ConnectionError("reset by peer")
        except ConnectionError as low:
            err = ns["ApiError"](status=502, detail="bad gateway")
            err.add_note("while fetching page 3")
            raise err from low

    run_step(store, lambda: caught(wrapped), ns)
    replayed, _ = run_step(store, lambda: caught(wrapped), ns)
    assert replayed.__notes__ == ["while fetching page 3"]
    assert type(replayed.__cause__) is ConnectionError
    assert str(replayed.__cause__) == "reset by peer" and replayed.__suppress_context__


def test_an_exception_group_of_notebook_exceptions(store: Store) -> None:
    ns = notebook()

    @km.activity
    def batch() -> None:
        raise ExceptionGroup("2 calls failed", [ns["ApiError"](status=429, detail="slow down"),
                                                ValueError("bad id")])

    run_step(store, lambda: caught(batch), ns)
    replayed, _ = run_step(store, lambda: caught(batch), notebook())
    assert isinstance(replayed, ExceptionGroup)
    assert str(replayed) == "2 calls failed (2 sub-exceptions)"
    api, value = replayed.exceptions
    assert (api.status, str(api), str(value)) == (429, "429: slow down", "bad id")


def test_a_class_that_is_gone_replays_as_a_stand_in(store: Store, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vendor_sdk.py").write_text(textwrap.dedent("""\
        class RateLimited(ValueError):
            def __init__(self, *, retry_after):
                super().__init__(f"retry after {retry_after} s")
                self.retry_after = retry_after
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import vendor_sdk

    calls: list[int] = []
    flaky = raising(lambda: vendor_sdk.RateLimited(retry_after=30), calls)
    run_step(store, lambda: caught(flaky))
    # The package was uninstalled before the next run (and its class cannot be loaded).
    (tmp_path / "vendor_sdk.py").unlink()
    monkeypatch.delitem(sys.modules, "vendor_sdk")
    replayed, _ = run_step(store, lambda: caught(flaky))
    assert calls == [1]
    assert isinstance(replayed, ValueError) and isinstance(replayed, km.JournaledError)
    assert str(replayed) == "retry after 30 s" and replayed.retry_after == 30
    assert replayed.type_name == "vendor_sdk.RateLimited"


def test_a_journal_of_an_older_version_never_fails_with_its_own_error(store: Store) -> None:
    """An exception pickled whole (as journals did) that cannot unpickle is a JournaledError."""
    ns = notebook()
    journal = Journal(store, "s", "step", ns)
    error = ns["ApiError"](status=503, detail="busy")
    entry = JournalEntry(pos=0, callee="__main__.flaky", args="", state="error",
                         error_text="ApiError: 503: busy")
    # Pickled the old way: plain cloudpickle, whose reduction rebuilds it as ``cls(*args)``.
    entry.error = dict(store.put_value(error))
    journal._put(entry)

    @km.activity
    def flaky() -> None:
        raise AssertionError("replayed, never called")

    flaky.__module__, flaky.__qualname__ = "__main__", "flaky"
    from kitteh_magic.activities.dispatch import args_digest, call_ident

    entry.args = args_digest((), {})
    entry.ident, entry.occ = call_ident(entry.callee, entry.args), 0
    journal._put(entry)
    replayed, _ = run_step(store, lambda: caught(flaky), ns)
    assert isinstance(replayed, km.JournaledError)
    assert replayed.type_name == "ApiError" and replayed.message == "503: busy"


def test_a_replayed_failure_that_ends_the_cell_is_retried_next_run(store: Store) -> None:
    ns = notebook()
    calls: list[int] = []
    flaky = raising(lambda: ns["ApiError"](status=503, detail="busy"), calls)
    stamp = km.activity(lambda: "later")

    def cell(handle: bool) -> None:
        try:
            call(flaky)
        except ns["ApiError"]:
            if not handle:
                raise
        call(stamp)
        raise RuntimeError("the kernel died here")

    with pytest.raises(RuntimeError):
        run_step(store, lambda: cell(handle=True), ns)
    with pytest.raises(ns["ApiError"]):
        run_step(store, lambda: cell(handle=False), ns)   # replayed, and now it ends the cell
    with pytest.raises(RuntimeError):
        run_step(store, lambda: cell(handle=True), ns)
    assert calls == [1, 1]


# -- real kernels, killed mid-cell -----------------------------------------------------------------

def killed_then_resumed(kernel: Kernel, tmp_path: Path, setup: str, cell: str,
                        restart_setup: str | None = None) -> str:
    """Run ``cell`` until it signals, SIGKILL the kernel, restart, run setup and the cell again.

    ``cell`` must contain ``WAIT`` where the kernel is to die: it becomes a wait for a file.
    Returns the text of the resumed cell's value.
    """
    ready, go = tmp_path / "ready", tmp_path / "go"
    wait = (f"if not os.path.exists({str(go)!r}):\n"
            f"    open({str(ready)!r}, 'w').close()\n"
            f"    while not os.path.exists({str(go)!r}):\n"
            "        pass")
    code = cell.replace("WAIT", wait)
    kernel.ok(setup)
    kernel.send(code)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline, "the cell never reached WAIT"
        time.sleep(0.02)
    kernel.kill()
    go.touch()
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok(restart_setup or setup)
    return kernel.ok(code).text


def counts(tmp_path: Path) -> dict[str, int]:
    return {p.name[len("calls-"):]: len(p.read_text()) for p in tmp_path.glob("calls-*")}


@pytest.mark.kernel
def test_kernel_killed_after_a_caught_keyword_only_error_resumes(
        kernel: Kernel, tmp_path: Path) -> None:
    setup = textwrap.dedent(f"""\
        import os
        import kitteh_magic as km
        class ApiError(Exception):
            def __init__(self, *, status, detail):
                super().__init__(f"{{status}}: {{detail}}")
                self.status = status
                self.detail = detail
        @km.activity
        def call_api(n):
            open({str(tmp_path)!r} + f"/calls-{{n}}", "a").write("x")
            if n == 1:
                raise ApiError(status=503, detail="busy")
            return n * 10
        """)
    cell = textwrap.dedent("""\
        %%durable api
        try:
            call_api(1)
            caught = None
        except ApiError as err:
            caught = (type(err).__name__, err.status, err.detail, str(err), err.args)
        second = call_api(2)
        WAIT
        third = call_api(3)
        (caught, second, third)
        """)
    text = killed_then_resumed(kernel, tmp_path, setup, cell)
    assert text == "(('ApiError', 503, 'busy', '503: busy', ('503: busy',)), 20, 30)"
    assert counts(tmp_path) == {"1": 1, "2": 1, "3": 1}


@pytest.mark.kernel
def test_kernel_killed_after_caught_library_errors_resumes(
        kernel: Kernel, tmp_path: Path, server: CountingServer) -> None:
    setup = textwrap.dedent(f"""\
        import os, json, subprocess, xmlrpc.client
        import httpx
        import kitteh_magic as km
        BASE = {server.url!r}
        @km.activity
        def parse(text):
            return json.loads(text)
        @km.activity
        def read(path):
            return open(path).read()
        @km.activity
        def rpc():
            open({str(tmp_path)!r} + "/calls-rpc", "a").write("x")
            raise xmlrpc.client.Fault(4, "too many parameters")
        """)
    cell = textwrap.dedent(f"""\
        %%durable libs
        seen = []
        for attempt in (lambda: httpx.get(BASE + "/flaky/k?fail=1").raise_for_status(),
                        lambda: parse("{{bad"),
                        lambda: subprocess.run(["false"], check=True),
                        lambda: read({str(tmp_path / "missing")!r}),
                        rpc):
            try:
                attempt()
            except Exception as err:
                seen.append((type(err).__name__, str(err)[:40], getattr(err, "errno", None),
                             getattr(err, "returncode", None), getattr(err, "faultCode", None),
                             getattr(getattr(err, "response", None), "status_code", None)))
        WAIT
        seen
        """)
    text = killed_then_resumed(kernel, tmp_path, setup, cell)
    seen = eval(text)
    assert [s[0] for s in seen] == ["HTTPStatusError", "JSONDecodeError", "CalledProcessError",
                                    "FileNotFoundError", "Fault"]
    assert seen[0][5] == 503 and seen[2][3] == 1 and seen[3][2] == 2 and seen[4][4] == 4
    assert server.hits["/flaky/k"] == 1 and counts(tmp_path) == {"rpc": 1}


@pytest.mark.kernel
def test_kernel_killed_after_an_error_holding_a_live_response_resumes(
        kernel: Kernel, tmp_path: Path, server: CountingServer) -> None:
    setup = textwrap.dedent(f"""\
        import os, threading, urllib.request
        import kitteh_magic as km
        BASE = {server.url!r}
        class Refused(Exception):
            def __init__(self, response, reason):
                super().__init__(f"refused: {{reason}}")
                self.response = response          # a live HTTP response (bound to a socket)
                self.lock = threading.Lock()
                self.reason = reason
        @km.activity
        def submit(n):
            response = urllib.request.urlopen(f"{{BASE}}/item/{{n}}")
            raise Refused(response, "quota")
        """)
    cell = textwrap.dedent("""\
        %%durable refused
        try:
            submit(1)
        except Refused as err:
            caught = (type(err).__name__, str(err), err.reason,
                      "HTTPResponse" in repr(err.response))
        WAIT
        caught
        """)
    text = killed_then_resumed(kernel, tmp_path, setup, cell)
    assert text == "('Refused', 'refused: quota', 'quota', True)"
    assert server.hits["/item/1"] == 1
