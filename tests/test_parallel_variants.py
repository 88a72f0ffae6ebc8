"""Parallel calls on variants ``test_parallel.py`` does not show (DESIGN §3 ``km.map``, §4.2, §4.4,
§4.5, §4.12; issue 9), on real kernels.

Each test runs a cell the way a user would write it, SIGKILLs the kernel half-way (or lets the
cell fail), restarts it and runs the cell again; the local server counts every call. The promise:
every finished call comes from the journal whatever order the calls finished in, the others are
made once, a recorded result is never handed to a different call, and the values are those of
the same cell run plain. Tests marked ``xfail`` show failures of today's code (the reason says
what goes wrong); the others guard variants that work.

Cells whose first calls finish in reverse order use ``/gate/u<i>?ms=<(8 - i) * 40>``: u7 answers
first, u0 last. A resume answers the finished ones from the journal at once, in about the order
they were made, so anything that follows completion order differs between the run and the
resume.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, Result
from test_parallel import GET, assert_each_call_once, kill_after, plain, restart, value

pytestmark = pytest.mark.kernel

VSDK = '''
"""A stand-in for a third-party client."""
import json, urllib.request

def fetch(url):
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())["gate"]

def fetch_each(urls):
    """Fetches every URL of any iterable (a generator too): one call of the client."""
    out = []
    for url in urls:
        with urllib.request.urlopen(url) as response:
            out.append(json.loads(response.read()))
    return out
'''

REVERSED = 'urls = [f"{BASE}/gate/u{i}?ms={(8 - i) * 40}" for i in range(8)]\n'
"""8 gated calls; u7 finishes first and u0 last."""

U8 = [f"/gate/u{i}" for i in range(8)]
NAMES8 = [f"u{i}" for i in range(8)]
ITEMS8 = [f"/item/{i}" for i in range(8)]

FLAKY = textwrap.dedent("""\
    import json, urllib.request
    def flaky(name):
        with urllib.request.urlopen(f"{BASE}/flaky/{name}?fail=1") as response:
            return json.loads(response.read())["ok"]
    """)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def vkernel(start_kernel: Callable[..., Kernel], tmp_path: Path,
            server: CountingServer) -> Kernel:
    """A kernel that can import ``vsdk`` and knows the server as ``BASE``."""
    sdk = tmp_path / "vsdk"
    sdk.mkdir()
    (sdk / "vsdk.py").write_text(VSDK)
    kernel = start_kernel(PYTHONPATH=os.pathsep.join(filter(None, [
        str(sdk), os.environ.get("PYTHONPATH")])))
    kernel.ok(f"BASE = {server.url!r}\nimport kitteh_magic as km")
    return kernel


def resume(kernel: Kernel, server: CountingServer, cell: str, finished: int,
           setup: tuple[str, ...] = ()) -> tuple[Result, Counter[str]]:
    """Kill ``cell`` once ``finished`` gated calls answered, restart, run ``setup`` and the cell
    again; returns the re-run and the gated calls that were in flight at the kill."""
    held = kill_after(kernel, server, cell, finished)
    restart(kernel, server, *setup)
    return kernel.run(cell, timeout=90), held


def kill_at_end(kernel: Kernel, server: CountingServer, cell: str, before: int,
                timeout: float = 30) -> Counter[str]:
    """Run ``cell`` until its last call, ``/gate/end``, is held in flight (after ``before``
    other gated calls were answered), then SIGKILL the kernel; returns what was held."""
    server.close_gate(after=before)
    kernel.send(cell)
    deadline = time.monotonic() + timeout
    while server.waiting["/gate/end"] < 1:
        assert time.monotonic() < deadline, "the cell never reached its last call"
        time.sleep(0.02)
    kernel.kill()
    return server.open_gate()


def replays_without_calls(kernel: Kernel, server: CountingServer, cell: str) -> None:
    """A finished step runs again as a replay: no call made, no warning."""
    before = Counter(server.hits)
    again = kernel.run(cell)
    again.raise_for_error()
    assert again.replayed, f"the finished step ran again: {again.stderr}"
    assert Counter(server.hits) == before


def assert_plain_gives(kernel: Kernel, cell: str, result: Result) -> None:
    assert value(result) == value(kernel.ok(plain(cell)))


# == a recorded result handed to a different call (wrong values) ===============================

AS_COMPLETED_JSON = {
    "threads": REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor, as_completed
        out = {}
        with ThreadPoolExecutor(8) as ex:
            for f in as_completed([ex.submit(httpx.get, u) for u in urls]):
                r = f.result()
                out[r.url.path] = r.json()["gate"]
        res = sorted(out.items())
        res
        """),
    "asyncio": REVERSED + textwrap.dedent("""\
        out = {}
        async with httpx.AsyncClient() as client:
            for nxt in asyncio.as_completed([client.get(u) for u in urls]):
                r = await nxt
                out[r.url.path] = r.json()["gate"]
        del nxt
        res = sorted(out.items())
        res
        """),
}


@pytest.mark.parametrize("way", list(AS_COMPLETED_JSON))
def test_each_response_keeps_its_own_body_in_completion_order(
        vkernel: Kernel, server: CountingServer, way: str) -> None:
    """Responses read as they arrive, each keyed by its own URL: a resume pairs every URL with
    its own body (wrong today: ``('/gate/u0', 'u7')``)."""
    cell = "%%durable bodies\nimport asyncio, httpx\n" + AS_COMPLETED_JSON[way]
    result, held = resume(vkernel, server, cell, finished=6)
    result.raise_for_error()
    assert value(result) == [(f"/gate/u{i}", f"u{i}") for i in range(8)]
    assert_each_call_once(server, U8, held)


def test_a_generator_argument_is_never_answered_with_another_calls_result(
        vkernel: Kernel, server: CountingServer) -> None:
    """Each answer is followed, on the cell's own thread, by a call of the client with a
    generator of URLs. A generator's content is unknown until the call consumes it, so in a
    step whose order follows completion order such calls cannot be told apart: they are made
    again, with a warning, never answered with another call's result. The pool's own calls
    still come from the journal."""
    cell = "%%durable gens\nimport vsdk\n" + GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor, as_completed
        out = {}
        with ThreadPoolExecutor(8) as ex:
            for f in as_completed([ex.submit(get, u) for u in urls]):
                name = f.result()
                out[name] = vsdk.fetch_each(f"{BASE}/item/{n}" for n in [name[1:]])
        res = [out[f"u{i}"][0]["item"] for i in range(8)]
        res
        """)
    result, held = resume(vkernel, server, cell, finished=6)
    result.raise_for_error()
    assert value(result) == list(range(8))
    assert "UnjournaledWarning" in result.stderr and "vsdk" in result.stderr, result.stderr
    assert_each_call_once(server, U8, held)


def test_a_partial_with_other_arguments_is_another_call(
        vkernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    """``run_in_executor`` takes no keyword arguments, so people hand it ``partial(...)``. The
    URL comes from a file (not an input): a changed one is a different call."""
    plan = tmp_path / "plan.txt"
    plan.write_text("a")
    cell = textwrap.dedent(f"""\
        %%durable part
        import asyncio, functools, httpx
        name = open({str(plan)!r}).read()
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(
            None, functools.partial(httpx.get, f"{{BASE}}/item/{{ord(name)}}", timeout=5))
        del loop
        if not globals().get("again"):
            raise RuntimeError("dies after the call")
        r.json()["item"]
        """)
    assert vkernel.run(cell).error is not None
    plan.write_text("b")
    vkernel.ok("again = True")
    result = vkernel.run(cell)
    if result.error is not None:
        assert result.error["ename"] == "NondeterminismError", result.error
        assert server.hits["/item/98"] == 0
        return
    assert result.text == "98"
    assert (server.hits["/item/97"], server.hits["/item/98"]) == (1, 1)


# == the same calls refused (NondeterminismError when nothing changed) =========================

def test_calls_made_as_answers_arrive_resume(vkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable arrive\n" + GET + REVERSED + textwrap.dedent("""\
        import json, urllib.request
        from concurrent.futures import ThreadPoolExecutor, as_completed
        out = {}
        with ThreadPoolExecutor(8) as ex:
            for f in as_completed([ex.submit(get, u) for u in urls]):
                name = f.result()
                with urllib.request.urlopen(f"{BASE}/item/{name[1:]}") as response:
                    out[name] = json.loads(response.read())["item"]
        res = [out[f"u{i}"] for i in range(8)]
        res
        """)
    result, held = resume(vkernel, server, cell, finished=6)
    result.raise_for_error()
    assert value(result) == list(range(8))
    assert_each_call_once(server, U8 + ITEMS8, held)


def test_executor_map_made_as_answers_arrive_resumes(
        vkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable maparrive\n" + GET + REVERSED + textwrap.dedent("""\
        import json, urllib.request
        from concurrent.futures import ThreadPoolExecutor, as_completed
        def item(url):
            with urllib.request.urlopen(url) as response:
                return json.loads(response.read())["item"]
        out = {}
        with ThreadPoolExecutor(8) as ex, ThreadPoolExecutor(2) as inner:
            for f in as_completed([ex.submit(get, u) for u in urls]):
                name = f.result()
                out[name] = list(inner.map(item, [f"{BASE}/item/{name[1:]}"]))
        res = [out[f"u{i}"] for i in range(8)]
        res
        """)
    result, held = resume(vkernel, server, cell, finished=6)
    result.raise_for_error()
    assert value(result) == [[i] for i in range(8)]
    assert_each_call_once(server, U8 + ITEMS8, held)


# == failures of parallel items ===============================================================

MANY_FAILURES = {
    "km.map": "res = km.map(flaky, names, concurrency=3)\n",
    "Executor.map": textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(3) as ex:
            res = list(ex.map(flaky, names))
        """),
}


@pytest.mark.parametrize("way", list(MANY_FAILURES))
def test_every_failed_item_is_retried_on_the_next_run(
        vkernel: Kernel, server: CountingServer, way: str) -> None:
    """Three items fail at once (a service outage); the cell is run again once the service is
    back: each failed item is made again (today: km.map fails again with a journaled 503 and
    makes no call; Executor.map retries one item per run)."""
    cell = "%%durable outage\n" + FLAKY + "names = ['a', 'b', 'c']\n" + MANY_FAILURES[way] + "res\n"
    first = vkernel.run(cell)
    assert first.error is not None and first.error["ename"] == "HTTPError"
    result = vkernel.run(cell)
    hits = [server.hits[f"/flaky/{n}"] for n in "abc"]
    assert result.error is None, (result.error["evalue"], hits)
    assert value(result) == ["a", "b", "c"]
    assert hits == [2, 2, 2]


def test_failures_inside_pool_items_retry_and_replay(
        vkernel: Kernel, server: CountingServer) -> None:
    """Retries per ``@km.activity(retries=...)`` in pool items; failures an item catches are
    replayed after a kill, not made again."""
    cell = "%%durable fails\n" + FLAKY + GET + textwrap.dedent("""\
        import urllib.error
        from concurrent.futures import ThreadPoolExecutor
        @km.activity(retries=3, backoff=0.01)
        def patient(name):
            with urllib.request.urlopen(f"{BASE}/flaky/p{name}?fail=2") as response:
                return json.loads(response.read())["ok"]
        def safe(name):
            try:
                return flaky(name)
            except urllib.error.HTTPError as err:
                return err.code
        with ThreadPoolExecutor(3) as ex:
            res = list(ex.map(safe, ["a", "b", "c"])) + list(ex.map(patient, ["a", "b", "c"]))
        get(f"{BASE}/gate/end")
        res
        """)
    held = kill_at_end(vkernel, server, cell, before=0)
    assert held == Counter({"/gate/end": 1})
    restart(vkernel, server)
    result = vkernel.run(cell)
    assert value(result) == [503, 503, 503, "pa", "pb", "pc"]
    assert [server.hits[f"/flaky/{n}"] for n in ("a", "b", "c", "pa", "pb", "pc")] == \
        [1, 1, 1, 3, 3, 3]
    replays_without_calls(vkernel, server, cell)


# == calls made again =========================================================================

def test_joblib_threads_over_a_generator_resume(vkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable jl\n" + GET + REVERSED + textwrap.dedent("""\
        from joblib import Parallel, delayed
        res = Parallel(n_jobs=3, prefer="threads")(delayed(get)(u) for u in urls)
        get(f"{BASE}/gate/end")
        res
        """)
    held = kill_at_end(vkernel, server, cell, before=8)
    assert held == Counter({"/gate/end": 1})
    restart(vkernel, server)
    result = vkernel.run(cell)
    result.raise_for_error()
    assert value(result) == NAMES8
    assert_each_call_once(server, [*U8, "/gate/end"], held)
    assert "UnjournaledWarning" not in result.stderr, result.stderr


@pytest.mark.xfail(strict=True, reason="km.map journals a notebook function's item as one "
                   "activity: an item killed between its two calls makes its first call again")
def test_km_map_item_killed_between_its_calls_keeps_the_first(
        vkernel: Kernel, server: CountingServer) -> None:
    """Each item's first call answers, its second is in flight at the kill. The same function
    through ``Executor.map`` keeps each item's first call."""
    cell = "%%durable twocalls\n" + GET + textwrap.dedent("""\
        import json, urllib.request
        def ask(i):
            with urllib.request.urlopen(f"{BASE}/item/{i}") as response:
                first = json.loads(response.read())["item"]
            return first, get(f"{BASE}/gate/b{i}")
        res = km.map(ask, range(3), concurrency=3)
        res
        """)
    server.close_gate(after=0)
    vkernel.send(cell)
    deadline = time.monotonic() + 30
    while sum(server.waiting.values()) < 3:
        assert time.monotonic() < deadline, "the second calls never started"
        time.sleep(0.02)
    vkernel.kill()
    server.open_gate()
    restart(vkernel, server)
    result = vkernel.run(cell)
    result.raise_for_error()
    assert value(result) == [(i, f"b{i}") for i in range(3)]
    assert [server.hits[f"/item/{i}"] for i in range(3)] == [1, 1, 1]


@pytest.mark.xfail(strict=True, reason="calls a handed-off thread makes after its cell ended are "
                   "plain (forks.Handed.call), and the step is unsaveable: all made again")
def test_a_thread_joined_in_a_later_cell_is_not_repeated(
        vkernel: Kernel, server: CountingServer) -> None:
    start = "%%durable bg\n" + GET + textwrap.dedent("""\
        import threading, time
        urls = [f"{BASE}/item/{i}" for i in range(6)]
        res = [None] * 6
        def work():
            time.sleep(0.3)          # the cell has ended by now
            for i, url in enumerate(urls):
                res[i] = json.loads(urllib.request.urlopen(url).read())["item"]
        t = threading.Thread(target=work)
        t.start()
        """)
    join = "%%durable joined\nt.join()\nres\n"
    vkernel.ok(start)
    assert value(vkernel.ok(join)) == list(range(6))
    restart(vkernel, server)
    vkernel.ok(start)
    assert value(vkernel.ok(join)) == list(range(6))
    vkernel.ok("t.join()")
    assert [server.hits[p] for p in ITEMS8[:6]] == [1] * 6


@pytest.mark.xfail(strict=True, reason="pool items still running when their cell ends make plain "
                   "calls, and the live executor makes the step unsaveable: calls made again")
def test_futures_resolved_in_a_later_cell_are_not_repeated(
        vkernel: Kernel, server: CountingServer) -> None:
    submit = "%%durable sub\n" + GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        ex = ThreadPoolExecutor(3)
        futs = [ex.submit(get, u) for u in urls]
        """)
    collect = "%%durable col\nres = [f.result() for f in futs]\nex.shutdown()\nres\n"
    vkernel.ok(submit)
    assert value(vkernel.ok(collect)) == NAMES8
    restart(vkernel, server)
    vkernel.ok(submit)
    assert value(vkernel.ok(collect)) == NAMES8
    vkernel.ok("ex.shutdown()")
    assert [server.hits[p] for p in U8] == [1] * 8


def test_a_pool_inside_an_activity_is_no_stray(vkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable inner\n" + GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        @km.activity
        def batch(part):
            with ThreadPoolExecutor(2) as inner:
                return list(inner.map(get, part))
        with ThreadPoolExecutor(2) as ex:
            res = sum(ex.map(batch, [urls[:4], urls[4:]]), [])
        res
        """)
    result = vkernel.ok(cell)
    assert value(result) == NAMES8
    assert "UnjournaledWarning" not in result.stderr, result.stderr


# == dead handles that make a finished step unsaveable ========================================

DEAD_HANDLES = {
    # The concurrent.futures documentation's own idiom.
    "dict-of-futures-to-urls": textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(3) as ex:
            future_to_url = {ex.submit(get, url): url for url in urls}
            got = {future_to_url[f]: f.result() for f in as_completed(future_to_url)}
        res = [got[u] for u in urls]
        """),
    "running-event-loop": textwrap.dedent("""\
        import asyncio
        loop = asyncio.get_running_loop()
        res = await asyncio.gather(*(loop.run_in_executor(None, get, u) for u in urls))
        """),
    "concurrent.futures.wait-result": textwrap.dedent("""\
        import concurrent.futures as cf
        with cf.ThreadPoolExecutor(3) as ex:
            futs = [ex.submit(get, u) for u in urls]
            waited = cf.wait(futs)
        res = [f.result() for f in futs]
        """),
    "exited-TaskGroup": textwrap.dedent("""\
        import asyncio
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(asyncio.to_thread(get, u)) for u in urls]
        res = [t.result() for t in tasks]
        """),
    "finished-Thread-subclass": textwrap.dedent("""\
        import threading
        class Worker(threading.Thread):
            def __init__(self, url):
                super().__init__()
                self.url = url
            def run(self):
                self.result = get(self.url)
        workers = [Worker(u) for u in urls]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        res = [w.result for w in workers]
        """),
    "shut-down-Executor-subclass": textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        class Pool(ThreadPoolExecutor):
            pass
        with Pool(3) as ex:
            res = list(ex.map(get, urls))
        """),
    "awaited-asyncio.as_completed-item": textwrap.dedent("""\
        import asyncio
        async def fetch(u):
            return await asyncio.to_thread(get, u)
        res = sorted([await nxt for nxt in asyncio.as_completed([fetch(u) for u in urls])])
        for nxt in asyncio.as_completed([fetch(u) for u in urls[:1]]):
            await nxt
        """),
}


@pytest.mark.parametrize("handle", list(DEAD_HANDLES))
def test_dead_handles_do_not_make_a_finished_step_unsaveable(
        vkernel: Kernel, server: CountingServer, handle: str) -> None:
    cell = ("%%durable handles\n" + GET
            + 'urls = [f"{BASE}/gate/h{i}" for i in range(4)]\n' + DEAD_HANDLES[handle] + "res\n")
    first = vkernel.ok(cell)
    assert value(first) == [f"h{i}" for i in range(4)]
    assert "UnpicklableWarning" not in first.stderr, first.stderr
    replays_without_calls(vkernel, server, cell)


# == variants that work (regression guards) ===================================================

WORKING = {
    "pool-1-submit-identical-arguments": textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as ex:
            futs = [ex.submit(get, urls[i % 3]) for i in range(8)]
            res = [f.result() for f in futs]
        del futs
        """),
    "pool-64-two-iterables-timeout-generator": textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        def pair(url, k):
            return get(url) + ":" + str(k)
        with ThreadPoolExecutor(64) as ex:
            res = list(ex.map(pair, (u for u in urls), range(8), timeout=60))
        res = [r.split(":")[0] for r in res]
        """),
    "pool-3-lock-holding-arguments": textwrap.dedent("""\
        import threading
        from concurrent.futures import ThreadPoolExecutor
        class Request:
            def __init__(self, url):
                self.url, self.lock = url, threading.Lock()
        def send(request):
            with request.lock:
                return get(request.url)
        requests_ = [Request(u) for u in urls]
        with ThreadPoolExecutor(3) as ex:
            futs = [ex.submit(send, r) for r in requests_]
            res = [f.result() for f in futs]
        del futs, requests_
        """),
    "nested-pool-in-coroutine-to_thread-in-item-km.map-in-item": textwrap.dedent("""\
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        async def batch(part):
            with ThreadPoolExecutor(2) as ex:
                return list(ex.map(get, part))
        def threaded(url):
            async def inner():
                return await asyncio.to_thread(get, url)
            return asyncio.run(inner())
        def mapped(part):
            return km.map(get, part, concurrency=2)
        first = sum(await asyncio.gather(batch(urls[:2]), batch(urls[2:4])), [])
        with ThreadPoolExecutor(2) as ex:
            second = list(ex.map(threaded, urls[4:6]))
            third = sum(ex.map(mapped, [urls[6:7], urls[7:]]), [])
        res = first + second + third
        """),
    "TaskGroup-asyncio.wait-cf.wait-ThreadPool": textwrap.dedent("""\
        import asyncio, concurrent.futures as cf
        from multiprocessing.pool import ThreadPool
        async def fetch(url):
            return await asyncio.to_thread(get, url)
        async with asyncio.TaskGroup() as group:
            grouped = [group.create_task(fetch(u)) for u in urls[:2]]
        tasks = [asyncio.create_task(fetch(u)) for u in urls[2:4]]
        done, pending = await asyncio.wait(tasks)
        with cf.ThreadPoolExecutor(2) as ex:
            futs = [ex.submit(get, u) for u in urls[4:6]]
            finished, unfinished = cf.wait(futs)
        with ThreadPool(2) as pool:
            pooled = pool.map(get, urls[6:])
        res = [t.result() for t in grouped + tasks] + [f.result() for f in futs] + pooled
        del group, grouped, tasks, done, pending, futs, finished, unfinished
        """),
}


@pytest.mark.parametrize("variant", list(WORKING))
def test_variants_resume_with_every_finished_call(
        vkernel: Kernel, server: CountingServer, variant: str) -> None:
    cell = "%%durable works\n" + GET + REVERSED + WORKING[variant] + "res\n"
    expected = ([f"u{i % 3}" for i in range(8)] if "identical" in variant else NAMES8)
    result, held = resume(vkernel, server, cell, finished=3)
    result.raise_for_error()
    assert value(result) == expected
    assert_each_call_once(server, [f"/gate/{n}" for n in expected], held)
    assert "UnjournaledWarning" not in result.stderr, result.stderr
    replays_without_calls(vkernel, server, cell)
    assert_plain_gives(vkernel, cell, result)


def test_an_effect_in_a_pool_item_killed_mid_way_is_settled_by_its_label(
        vkernel: Kernel, server: CountingServer) -> None:
    define = GET + textwrap.dedent("""\
        @km.effect
        def notify(i):
            return get(f"{BASE}/gate/e{i}?ms={i * 20}")
        """)
    vkernel.ok(define)
    cell = textwrap.dedent("""\
        %%durable notify
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as ex:
            futs = [ex.submit(notify, i) for i in range(4)]
            res = [f.result() for f in futs]
        del futs
        res
        """)
    held = kill_after(vkernel, server, cell, finished=2)
    assert sum(held.values()) == 2
    restart(vkernel, server, define)
    settled = []
    for _ in range(2):
        refused = vkernel.run(cell)
        assert refused.error is not None, refused.text
        assert refused.error["ename"] == "IncompleteEffectError", refused.error
        command = re.search(r"`(%durable effect notify \S+ done)`", refused.error["evalue"])
        assert command is not None, refused.error["evalue"]
        assert "marked done" in vkernel.ok(command.group(1)).stdout
        settled.append(command.group(1))
    result = vkernel.ok(cell)
    done = sorted(f"e{i}" for i in range(4) if f"/gate/e{i}" not in held)
    assert sorted(v for v in value(result) if v is not None) == done
    assert value(result).count(None) == 2
    assert [server.hits[f"/gate/e{i}"] for i in range(4)] == [1] * 4, settled


def test_large_results_from_threads_resume(vkernel: Kernel, server: CountingServer) -> None:
    """Results over the 4 KB embedding limit and 1 MB arrays, some identical, written at once."""
    cell = "%%durable big\n" + GET + REVERSED + textwrap.dedent("""\
        import numpy as np
        from concurrent.futures import ThreadPoolExecutor
        def big(url):
            name = get(url)
            return name, "x" * 5000 + name, np.full(150_000, int(name[1:])), np.zeros(200_000)
        with ThreadPoolExecutor(8) as ex:
            out = list(ex.map(big, urls))
        res = [(o[0], len(o[1]), o[1][-2:], int(o[2].sum()), float(o[3].sum())) for o in out]
        get(f"{BASE}/gate/end")
        res
        """)
    held = kill_at_end(vkernel, server, cell, before=8)
    assert held == Counter({"/gate/end": 1})
    restart(vkernel, server)
    result = vkernel.run(cell)
    assert value(result) == [(f"u{i}", 5002, f"u{i}", 150_000 * i, 0.0) for i in range(8)]
    assert_each_call_once(server, [*U8, "/gate/end"], held)
    assert_plain_gives(vkernel, cell, result)


def test_sleeps_in_pool_items_wait_only_what_is_left(
        vkernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    began = tmp_path / "began"
    cell = textwrap.dedent(f"""\
        %%durable naps
        import time
        from concurrent.futures import ThreadPoolExecutor
        def nap(i):
            open({str(began)!r}, "w").close()
            time.sleep(4)
            return i
        with ThreadPoolExecutor(3) as ex:
            res = list(ex.map(nap, range(3)))
        res
        """)
    vkernel.send(cell)
    deadline = time.monotonic() + 30
    while not began.exists():
        assert time.monotonic() < deadline, "the cell never started"
        time.sleep(0.02)
    time.sleep(2)
    vkernel.kill()
    restart(vkernel, server)
    start = time.monotonic()
    assert value(vkernel.ok(cell)) == [0, 1, 2]
    waited = time.monotonic() - start
    assert waited < 3.5, f"the resumed sleeps took {waited:.1f} s of 4"


def test_km_map_on_a_process_pool_resumes(vkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable processes\n" + GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(2) as processes:
            res = km.map(get, urls, concurrency=2, client=processes)
        res
        """)
    result, held = resume(vkernel, server, cell, finished=3)
    assert value(result) == NAMES8
    assert_each_call_once(server, U8, held)
    replays_without_calls(vkernel, server, cell)


def test_a_kill_right_after_the_first_entry_of_a_pool(
        vkernel: Kernel, server: CountingServer) -> None:
    """``KITTEH_MAGIC_KILL_AT=journal-entry-written``: one worker, so exactly one call was
    made and journaled when the kernel died."""
    cell = "%%durable exact\n" + GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as ex:
            res = list(ex.map(get, urls))
        res
        """)
    vkernel.ok("import os\nos.environ['KITTEH_MAGIC_KILL_AT'] = 'journal-entry-written'")
    vkernel.send(cell)
    deadline = time.monotonic() + 30
    while vkernel.manager.is_alive():
        assert time.monotonic() < deadline, "the kernel never reached the kill point"
        time.sleep(0.05)
    assert sum(server.hits.values()) == 1
    restart(vkernel, server)
    assert value(vkernel.ok(cell)) == NAMES8
    assert [server.hits[p] for p in U8] == [1] * 8


def test_every_cell_durable_with_a_pool(vkernel: Kernel, server: CountingServer) -> None:
    """``%durable on``: a cell without the magic resumes by its cell id."""
    vkernel.ok("%durable on")
    cell = GET + REVERSED + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(3) as ex:
            res = list(ex.map(get, urls))
        res
        """)
    server.close_gate(after=3)
    vkernel.send(cell, cell_id="pool-cell")
    deadline = time.monotonic() + 30
    while not server.gate_settled():
        assert time.monotonic() < deadline, "the calls never finished"
        time.sleep(0.05)
    vkernel.kill()
    held = server.open_gate()
    restart(vkernel, server, "%durable on")
    result = vkernel.run(cell, cell_id="pool-cell")
    assert value(result) == NAMES8
    assert_each_call_once(server, U8, held)
    again = vkernel.ok(cell, cell_id="pool-cell")
    assert again.replayed and value(again) == NAMES8
    assert_each_call_once(server, U8, held)
