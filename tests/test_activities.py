"""Activities (DESIGN.md §4.2, §4.4, §4.5, §5): journaled calls, on real kernels.

A local HTTP server counts requests per path; the kernel is SIGKILLed between calls and while a
call is in flight, and the counts after the resumed run prove what was sent again and what not.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel

pytestmark = pytest.mark.kernel

SDK = '''
"""A stand-in for a third-party SDK (a paid API client)."""
import json, urllib.request

class _Completions:
    def __init__(self, base):
        self.base = base
    def create(self, n):
        with urllib.request.urlopen(f"{self.base}/item/{n}") as response:
            return json.loads(response.read())

class _Chat:
    def __init__(self, base):
        self.completions = _Completions(base)

class Client:
    def __init__(self, base):
        self.base = base
        self.chat = _Chat(base)
    def stream(self):
        urllib.request.urlopen(f"{self.base}/item/100").read()
        return (i for i in range(3))

class AsyncClient:
    def __init__(self, base):
        self.base = base
    async def get(self, n):
        import asyncio
        def fetch():
            with urllib.request.urlopen(f"{self.base}/item/{n}") as response:
                return json.loads(response.read())
        return await asyncio.to_thread(fetch)
'''


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def sdk_kernel(start_kernel: Callable[..., Kernel], tmp_path: Path,
               server: CountingServer) -> Kernel:
    """A kernel that can import ``acme_sdk`` and knows the server as ``BASE``."""
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    (sdk / "acme_sdk.py").write_text(SDK)
    # Prepended, not replaced: a kernel must import the kitteh_magic the tests run against
    # (scripts/mutants.py points PYTHONPATH at a broken copy of the sources).
    kernel = start_kernel(PYTHONPATH=os.pathsep.join(filter(None, [
        str(sdk), os.environ.get("PYTHONPATH")])))
    kernel.ok(f"BASE = {server.url!r}\nimport kitteh_magic as km")
    return kernel


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def five_calls(tmp_path: Path) -> str:
    ready, go = tmp_path / "ready", tmp_path / "go"
    return textwrap.dedent(f"""\
        %%durable five
        import json, os, urllib.request
        results = []
        for i in range(5):
            with urllib.request.urlopen(f"{{BASE}}/item/{{i}}") as response:
                results.append(json.loads(response.read())["item"])
            if i == 2 and not os.path.exists({str(go)!r}):
                open({str(ready)!r}, "w").close()
                while not os.path.exists({str(go)!r}):
                    pass  # the test kills the kernel here, between call 3 and call 4
        results
        """)


def test_killed_between_calls_resumes_without_resending(
        sdk_kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    sdk_kernel.send(five_calls(tmp_path))
    wait_for(tmp_path / "ready")
    sdk_kernel.kill()
    (tmp_path / "go").touch()
    sdk_kernel.restart()
    sdk_kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    result = sdk_kernel.ok(five_calls(tmp_path))
    assert result.text == "[0, 1, 2, 3, 4]"
    assert [server.hits[f"/item/{i}"] for i in range(5)] == [1, 1, 1, 1, 1]
    log = sdk_kernel.ok("%durable log five").stdout
    assert "urllib.request.urlopen" in log and "5 activities" in log


def test_killed_while_a_call_is_in_flight_sends_only_that_one_again(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    cell = textwrap.dedent("""\
        %%durable flight
        import urllib.request
        got = [urllib.request.urlopen(f"{BASE}/{path}").read() for path in
               ["item/0", "item/1", "hold/x", "item/3"]]
        len(got)
        """)
    sdk_kernel.send(cell)
    assert server.holding.wait(30)
    sdk_kernel.kill()
    server.release.set()
    sdk_kernel.restart()
    sdk_kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    assert sdk_kernel.ok(cell).text == "4"
    assert (server.hits["/item/0"], server.hits["/item/1"], server.hits["/hold/x"],
            server.hits["/item/3"]) == (1, 1, 2, 1)


def test_sdk_client_calls_are_activities(sdk_kernel: Kernel, server: CountingServer) -> None:
    cell = textwrap.dedent("""\
        %%durable sdk
        import acme_sdk
        client = acme_sdk.Client(BASE)
        answers = [client.chat.completions.create(n)["item"] for n in range(3)]
        if not globals().get("second_time"):
            raise RuntimeError("the cell dies after the calls")
        answers
        """)
    failed = sdk_kernel.run(cell)
    assert failed.error is not None and failed.error["ename"] == "RuntimeError"
    sdk_kernel.ok("second_time = True")
    assert sdk_kernel.ok(cell).text == "[0, 1, 2]"
    assert [server.hits[f"/item/{n}"] for n in range(3)] == [1, 1, 1]


def test_clocks_randomness_and_sleep_replay(sdk_kernel: Kernel, tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    cell = textwrap.dedent(f"""\
        %%durable clocks
        import datetime, os, random, time, uuid
        stamp = (time.time(), random.random(), str(uuid.uuid4()), str(datetime.datetime.now()))
        began = time.perf_counter()
        time.sleep(0.2)
        if not os.path.exists({str(flag)!r}):
            open({str(flag)!r}, "w").close()
            raise RuntimeError("first run fails after the sleep")
        """)
    sdk_kernel.run(cell)
    first = sdk_kernel.value("stamp")
    sdk_kernel.ok(cell)
    assert sdk_kernel.value("stamp") == first
    # Every call of the second run, the sleep included, came from the journal: none was made.
    calls = sdk_kernel.ok("%durable log clocks").stdout.splitlines()[2:]
    assert [line.split()[1] for line in calls] == [
        "time.time", "random.Random.random", "uuid.uuid4", "datetime.datetime.now",
        "time.perf_counter", "time.sleep"]
    assert all(line.endswith("ok (from the journal)") for line in calls), calls


def test_retries_with_backoff_then_success(sdk_kernel: Kernel, server: CountingServer) -> None:
    sdk_kernel.ok(textwrap.dedent("""\
        import urllib.request
        @km.activity(retries=3, backoff=0.05, retry_on=(OSError,))
        def fetch(name):
            return urllib.request.urlopen(f"{BASE}/flaky/{name}?fail=2").read()
        """))
    assert "ok" in sdk_kernel.ok("%%durable retry\nfetch('a')").text
    assert server.hits["/flaky/a"] == 3
    log = sdk_kernel.ok("%durable log retry").stdout
    assert "__main__.fetch" in log and " 3 " in log
    cell = ("%%durable --retries 2 --backoff 0.05 cellwide\n"
            "urllib.request.urlopen(f'{BASE}/flaky/b?fail=1').read()")
    assert "ok" in sdk_kernel.ok(cell).text
    assert server.hits["/flaky/b"] == 2


def test_timeout_ends_the_cell(sdk_kernel: Kernel, server: CountingServer) -> None:
    result = sdk_kernel.run("%%durable --timeout 0.5 slow\nimport urllib.request\n"
                            "urllib.request.urlopen(f'{BASE}/hold/t').read()")
    server.release.set()
    assert result.error is not None and result.error["ename"] == "ActivityTimeout"
    assert "0.5" in result.error["evalue"]


def test_changed_call_sequence_is_a_nondeterminism_error(
        sdk_kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    # The same step version (same code and inputs) calls something else at a journaled
    # position: here the path comes from a file, which is not an input.
    paths = tmp_path / "paths.txt"
    paths.write_text("item/1 item/2")
    first = (f"%%durable seq\nimport urllib.request\nfor p in open({str(paths)!r}).read()"
             ".split():\n    urllib.request.urlopen(f'{BASE}/{p}').read()\n"
             "raise RuntimeError('stop')")
    sdk_kernel.run(first)
    paths.write_text("item/1 item/5")
    result = sdk_kernel.run(first)
    assert result.error is not None and result.error["ename"] == "NondeterminismError"
    message = result.error["evalue"]
    assert "'seq'" in message and "#2" in message and "--force" in message
    assert "urllib.request.urlopen" in message
    shown = "\n".join(result.error["traceback"])
    assert "kitteh_magic/" not in shown and "NondeterminismError" in shown, shown
    assert server.hits["/item/5"] == 0
    forced = sdk_kernel.run(first.replace("%%durable seq", "%%durable seq --force"))
    assert forced.error is not None and forced.error["ename"] == "RuntimeError"
    assert (server.hits["/item/1"], server.hits["/item/5"]) == (2, 1)


def test_an_edited_cell_starts_a_new_execution(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    # A journal belongs to one execution of one step version (DESIGN §4.14).
    first = ("%%durable seq\nimport urllib.request\nfor p in ['item/1', 'item/2']:\n"
             "    urllib.request.urlopen(f'{BASE}/{p}').read()\nraise RuntimeError('stop')")
    sdk_kernel.run(first)
    edited = first.replace("'item/2'", "'item/5'")
    result = sdk_kernel.run(edited)
    assert result.error is not None and result.error["ename"] == "RuntimeError"
    assert (server.hits["/item/1"], server.hits["/item/2"], server.hits["/item/5"]) == (2, 1, 1)


def test_interrupted_effect_is_not_repeated_silently(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    define = textwrap.dedent("""\
        import urllib.request
        @km.effect
        def send_mail(to):
            return urllib.request.urlopen(f"{BASE}/hold/{to}").read()
        """)
    cell = "%%durable notify\nsent = send_mail('ops')\n'sent'"
    sdk_kernel.ok(define)
    sdk_kernel.send(cell)
    assert server.holding.wait(30)
    sdk_kernel.kill()
    server.release.set()
    sdk_kernel.restart()
    sdk_kernel.ok(f"%load_ext kitteh_magic\nimport kitteh_magic as km\nBASE = {server.url!r}")
    sdk_kernel.ok(define)
    result = sdk_kernel.run(cell)
    assert result.error is not None and result.error["ename"] == "IncompleteEffectError"
    assert "%durable effect notify 1 done" in result.error["evalue"]
    assert server.hits["/hold/ops"] == 1
    sdk_kernel.ok("%durable effect notify 1 done")
    assert sdk_kernel.ok(cell).text == "'sent'"
    assert server.hits["/hold/ops"] == 1


def test_caught_failures_replay_and_uncaught_failures_retry(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    caught = textwrap.dedent("""\
        %%durable caught
        import urllib.error, urllib.request
        try:
            urllib.request.urlopen(f"{BASE}/flaky/c?fail=1")
            handled = False
        except urllib.error.HTTPError as err:
            handled = err.code
        urllib.request.urlopen(f"{BASE}/item/9").read()
        if not globals().get("again"):
            raise RuntimeError("dies after handling the failure")
        handled
        """)
    sdk_kernel.run(caught)
    sdk_kernel.ok("again = True")
    assert sdk_kernel.ok(caught).text == "503"   # the recorded failure, raised again
    assert (server.hits["/flaky/c"], server.hits["/item/9"]) == (1, 1)
    uncaught = ("%%durable uncaught\nimport urllib.request\n"
                "urllib.request.urlopen(f'{BASE}/flaky/u?fail=1').read()")
    assert sdk_kernel.run(uncaught).error is not None
    assert "ok" in sdk_kernel.ok(uncaught).text   # retried on the next run
    assert server.hits["/flaky/u"] == 2


def test_awaited_calls_are_journaled(sdk_kernel: Kernel, server: CountingServer) -> None:
    cell = textwrap.dedent("""\
        %%durable async
        import acme_sdk
        client = acme_sdk.AsyncClient(BASE)
        first = await client.get(1)
        second = await client.get(2)
        if not globals().get("resume"):
            raise RuntimeError("dies after two awaited calls")
        [first["item"], second["item"]]
        """)
    failed = sdk_kernel.run(cell)
    assert failed.error is not None and failed.error["ename"] == "RuntimeError"
    sdk_kernel.ok("resume = True")
    assert sdk_kernel.ok(cell).text == "[1, 2]"
    assert (server.hits["/item/1"], server.hits["/item/2"]) == (1, 1)


def test_unpicklable_result_is_named_and_called_again(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    cell = textwrap.dedent("""\
        %%durable stream
        import acme_sdk
        client = acme_sdk.Client(BASE)
        first = client.chat.completions.create(8)["item"]
        numbers = list(client.stream())
        if not globals().get("done_once"):
            raise RuntimeError("stop")
        [first, numbers]
        """)
    first = sdk_kernel.run(cell)
    assert first.error is not None and first.error["ename"] == "RuntimeError"
    assert "acme_sdk.Client.stream" in first.stderr and "generator" in first.stderr
    sdk_kernel.ok("done_once = True")
    assert sdk_kernel.ok(cell).text == "[8, [0, 1, 2]]"
    # The saved result came from the journal; the generator could not, so its call was made
    # again (each stream() call requests /item/100).
    assert (server.hits["/item/8"], server.hits["/item/100"]) == (1, 2)


def test_mode_step_keeps_no_journal(sdk_kernel: Kernel, server: CountingServer) -> None:
    cell = ("%%durable --mode step unit\nimport urllib.request\n"
            "urllib.request.urlopen(f'{BASE}/item/7').read()\n"
            "if not globals().get('ok'):\n    raise RuntimeError('stop')")
    sdk_kernel.run(cell)
    sdk_kernel.ok("ok = True")
    sdk_kernel.ok(cell)
    assert server.hits["/item/7"] == 2


def test_classification_by_running_the_calls(sdk_kernel: Kernel) -> None:
    """Which calls in a durable cell were journaled, by kind of callee (DESIGN §5)."""
    sdk_kernel.ok(textwrap.dedent("""\
        import kitteh_magic as km
        @km.activity
        def marked():
            import time
            return time.time()          # inside an activity: not journaled on its own
        @km.inline
        def trusted():
            import random
            return 4                    # never an activity
        """))
    cell = textwrap.dedent("""\
        %%durable kinds
        import json, math, random, time, uuid
        import numpy as np, pandas as pd
        import acme_sdk
        def helper(v):
            return v + 1
        square = lambda v: v * v
        def outer():
            def inner():
                return random.random()
            return inner()
        values = [len("abc"), math.sqrt(4), json.dumps([1]), np.arange(3).sum(),
                  pd.DataFrame({"a": [1]}).sum(), helper(1), square(3),
                  [time.time() for _ in range(2)], uuid.uuid4(), outer(), marked(), trusted(),
                  acme_sdk.Client(BASE).chat.completions.create(5)]
        raise RuntimeError("keep the journal")
        """)
    sdk_kernel.run(cell)
    callees = json.loads(sdk_kernel.ok(
        "import json\nprint(json.dumps([e.callee for e in "
        "_kitteh_engine_.catalog.journal(_kitteh_engine_.session, 'kinds')]))").stdout)
    assert callees == [
        "time.time", "time.time",                                   # comprehension
        "uuid.uuid4",
        "random.Random.random",                                     # nested function's call
        "__main__.marked",                                          # decorated activity
        "acme_sdk._Completions.create",                             # method of a client object
    ], callees


def test_marked_method_records_its_receivers_new_state(
        sdk_kernel: Kernel, server: CountingServer) -> None:
    """`km.activity(model.fit)(X)`: replay gives the model the state the call left it in."""
    sdk_kernel.ok(textwrap.dedent("""\
        import json, urllib.request
        class Model:
            def __init__(self):
                self.weights = None
            def fit(self, n):
                with urllib.request.urlopen(f"{BASE}/item/{n}") as response:
                    self.weights = json.loads(response.read())["item"] * 10
                return self
        """))
    cell = textwrap.dedent("""\
        %%durable train
        model = Model()
        km.activity(model.fit)(4)
        if not globals().get("trained_once"):
            raise RuntimeError("dies after training")
        model.weights
        """)
    assert sdk_kernel.run(cell).error is not None
    sdk_kernel.ok("trained_once = True")
    assert sdk_kernel.ok(cell).text == "40"
    assert server.hits["/item/4"] == 1
