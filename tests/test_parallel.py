"""Parallel calls are durable (DESIGN.md §3 `km.map`, §4.2, §4.4, §4.12; issue 9), on real kernels.

Calls made from worker threads (thread pools, `threading.Thread`, `asyncio.to_thread`,
`run_in_executor`), from concurrent coroutines (`asyncio.gather` with httpx) and through `km.map`
must resume as sequential calls do. The local server's ``/gate`` answers the first K calls of a
cell (in another order than they were made) and holds every later one in flight; the test then
SIGKILLs the kernel, so it knows exactly which calls had finished. After a restart and a re-run of
the same cell, every call was made exactly once, plus once more for each call that was in flight
at the kill, and the values are those of the same cell run plain (without ``%%durable``).
"""

from __future__ import annotations

import ast
import os
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, Result, runs

pytestmark = pytest.mark.kernel

NETSDK = '''
"""A stand-in for a third-party client whose functions a notebook hands to threads."""
import json, urllib.request

def fetch(url):
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())["gate"]
'''

GET = textwrap.dedent("""\
    import json, urllib.request
    def get(url):
        with urllib.request.urlopen(url) as response:
            return json.loads(response.read())["gate"]
    """)

URLS = 'urls = [f"{BASE}/gate/u{i}?ms={(7 * i) % 16 * 10}" for i in range(16)]\n'
"""16 calls that finish in another order than they are made (u0 first, u1 after 70 ms, ...)."""

PATHS = [f"/gate/u{i}" for i in range(16)]


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def pkernel(start_kernel: Callable[..., Kernel], tmp_path: Path,
            server: CountingServer) -> Kernel:
    """A kernel that can import ``netsdk`` and knows the server as ``BASE``."""
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    (sdk / "netsdk.py").write_text(NETSDK)
    # Prepended, not replaced: the kernel imports the kitteh_magic under test.
    kernel = start_kernel(PYTHONPATH=os.pathsep.join(filter(None, [
        str(sdk), os.environ.get("PYTHONPATH")])))
    kernel.ok(prelude(server))
    return kernel


def prelude(server: CountingServer) -> str:
    return f"BASE = {server.url!r}\nimport kitteh_magic as km"


def plain(cell: str) -> str:
    """The same cell without its ``%%durable`` line: the oracle of the values."""
    first, _, body = cell.partition("\n")
    assert first.startswith("%%durable")
    return body


def kill_after(kernel: Kernel, server: CountingServer, cell: str, finished: int,
               timeout: float = 30) -> Counter[str]:
    """Run ``cell`` until ``finished`` gated calls have answered (the later ones are held in
    flight), then SIGKILL the kernel; returns the gated calls that were in flight."""
    server.close_gate(after=finished)
    msg_id = kernel.send(cell)
    deadline = time.monotonic() + timeout
    while not server.gate_settled():
        assert time.monotonic() < deadline, f"{len(server.answered)} of {finished} calls " \
                                            f"finished within {timeout} s"
        try:
            msg = kernel.client.get_iopub_msg(timeout=0.02)
        except Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "error":
            raise AssertionError(f"the cell failed before {finished} calls finished: "
                                 f"{msg['content']['ename']}: {msg['content']['evalue']}")
    kernel.kill()
    return server.open_gate()


def restart(kernel: Kernel, server: CountingServer, *setup: str) -> None:
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic\n" + prelude(server))
    for code in setup:
        kernel.ok(code)


def kill_and_rerun(kernel: Kernel, server: CountingServer, cell: str, finished: int,
                   setup: tuple[str, ...] = ()) -> tuple[Result, Counter[str]]:
    """:func:`kill_after`, then restart the kernel, run ``setup`` and the cell again.

    Returns the re-run's result and the gated calls that were in flight at the kill.
    """
    held = kill_after(kernel, server, cell, finished)
    restart(kernel, server, *setup)
    return kernel.run(cell, timeout=60), held


def value(result: Result) -> Any:
    """A cell's value (IPython pretty-prints long lists over several lines)."""
    return ast.literal_eval(result.raise_for_error().text)


def assert_each_call_once(server: CountingServer, paths: list[str], held: Counter[str]) -> None:
    """Every call was made once, and once more if it was in flight at the kill: no finished call
    was made again, none was lost."""
    wrong = {p: (server.hits[p], paths.count(p) + held[p]) for p in sorted(set(paths))
             if server.hits[p] != paths.count(p) + held[p]}
    assert not wrong, f"calls made (times, expected times): {wrong}; in flight at the kill: " \
                      f"{sorted(held.elements())}"


def assert_plain_gives(kernel: Kernel, cell: str, result: Result) -> None:
    """The durable run's value is the value of the same cell run plain."""
    assert value(result) == value(kernel.ok(plain(cell)))


def run_seen(kernel: Kernel, code: str, timeout: float = 60) -> tuple[Result, str]:
    """Run ``code``; also return the text the user saw besides the value, progress bars
    included (``Result.seen``)."""
    result = kernel.run(code, timeout=timeout)
    return result, "\n".join(result.seen)


# -- thread pools ---------------------------------------------------------------------------------

POOLS = {
    "map-8": GET + URLS + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(get, urls))
        res
        """),
    "map-2-get-from-an-earlier-step": URLS + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as ex:
            res = list(ex.map(get, urls))
        res
        """),
    "map-32": GET + URLS + textwrap.dedent("""\
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
            res = list(ex.map(get, urls))
        res
        """),
    "submit-as-completed": GET + URLS + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(8) as ex:
            futures = {ex.submit(get, url): url for url in urls}
            got = {futures[f]: f.result() for f in as_completed(futures)}
        res = [got[url] for url in urls]
        res
        """),
}


@pytest.mark.parametrize("variant", list(POOLS))
def test_thread_pool_resumes_with_every_finished_call(
        pkernel: Kernel, server: CountingServer, variant: str) -> None:
    setup = ("%%durable helpers\n" + GET,) if "earlier" in variant else ()
    for code in setup:
        pkernel.ok(code)
    cell = "%%durable pool\n" + POOLS[variant]
    result, held = kill_and_rerun(pkernel, server, cell, finished=5, setup=setup)
    result.raise_for_error()
    assert_each_call_once(server, PATHS, held)
    assert value(result) == [f"u{i}" for i in range(16)]
    assert_plain_gives(pkernel, cell, result)


def test_thread_pool_over_a_function_the_cell_did_not_define(
        pkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable sdkpool\nimport netsdk\n" + URLS + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(netsdk.fetch, urls))
        res
        """)
    result, held = kill_and_rerun(pkernel, server, cell, finished=6)
    result.raise_for_error()
    assert_each_call_once(server, PATHS, held)
    assert_plain_gives(pkernel, cell, result)


def test_pool_calls_submitted_in_completion_order_resume(
        pkernel: Kernel, server: CountingServer) -> None:
    """Each first answer is handed back to the pool as it comes (as_completed), so the second
    calls are submitted in an order that differs between the run and the resume."""
    cell = "%%durable chain\n" + GET + URLS + textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(4) as ex:
            firsts = [ex.submit(get, url) for url in urls]
            seconds = [ex.submit(get, f"{BASE}/gate/b{f.result()}?ms=10")
                       for f in as_completed(firsts)]
            res = sorted((s.result().removeprefix("b") for s in seconds),
                         key=lambda name: int(name[1:]))
        res
        """)
    # The 16 first calls are queued before any second one: 22 finished = 16 + 6 second calls.
    result, held = kill_and_rerun(pkernel, server, cell, finished=22)
    result.raise_for_error()
    assert_each_call_once(server, PATHS + [f"/gate/bu{i}" for i in range(16)], held)
    assert value(result) == [f"u{i}" for i in range(16)]
    assert_plain_gives(pkernel, cell, result)


def test_identical_calls_in_a_pool_are_each_answered(
        pkernel: Kernel, server: CountingServer) -> None:
    names = ["a", "b", "a", "c", "b", "d", "a", "e", "c", "f", "g", "a"]
    cell = "%%durable twins\n" + GET + textwrap.dedent(f"""\
        names = {names!r}
        urls = [f"{{BASE}}/gate/{{n}}?ms={{(ord(n) * 37) % 9 * 15}}" for n in names]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(6) as ex:
            res = list(ex.map(get, urls))
        res
        """)
    result, held = kill_and_rerun(pkernel, server, cell, finished=5)
    result.raise_for_error()
    assert_each_call_once(server, [f"/gate/{n}" for n in names], held)
    assert value(result) == names
    assert_plain_gives(pkernel, cell, result)


def test_a_pool_never_hands_a_recorded_result_to_another_call(
        pkernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    """Item 3's function changes between runs (the plan comes from a file, not an input): its
    call is made live or refused, never answered with what the other function returned."""
    plan = tmp_path / "plan.txt"
    plan.write_text("d d d d d d")
    define = GET + textwrap.dedent("""\
        @km.activity
        def ask_d(n):
            return get(f"{BASE}/gate/d{n}")
        @km.activity
        def ask_t(n):
            return get(f"{BASE}/gate/t{n}")
        """)
    pkernel.ok(define)
    cell = textwrap.dedent(f"""\
        %%durable choose
        from concurrent.futures import ThreadPoolExecutor
        plan = open({str(plan)!r}).read().split()
        fns = {{"d": ask_d, "t": ask_t}}
        with ThreadPoolExecutor(4) as ex:
            res = list(ex.map(lambda i: fns[plan[i]](i), range(6)))
        get(f"{{BASE}}/gate/end")  # held in flight: the kill comes after every item finished
        res
        """)
    held = kill_after(pkernel, server, cell, finished=6)
    assert held == Counter({"/gate/end": 1})
    plan.write_text("d d d t d d")
    restart(pkernel, server, define)
    result = pkernel.run(cell, timeout=60)
    if result.error is not None:
        assert result.error["ename"] == "NondeterminismError", result.error
        assert server.hits["/gate/t3"] <= 1
        return
    assert value(result) == ["d0", "d1", "d2", "t3", "d4", "d5"]
    assert_each_call_once(server, [f"/gate/d{i}" for i in range(6)] + ["/gate/t3", "/gate/end"],
                          held)


def test_a_finished_pool_step_replays_and_its_executor_is_no_output(
        pkernel: Kernel, server: CountingServer, tmp_path: Path,
        counter: Callable[[str], str]) -> None:
    """The executor bound by ``with ... as ex`` is closed after its block: the step is saved."""
    cell = "%%durable finished\n" + GET + URLS + textwrap.dedent(f"""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(get, urls))
        {counter("pool")}
        res
        """)
    first = pkernel.ok(cell)
    again = pkernel.ok(cell)
    restart(pkernel, server)
    after_restart = pkernel.ok(cell)
    assert [server.hits[p] for p in PATHS] == [1] * 16
    assert runs(tmp_path, "pool") == 1
    assert again.replayed and after_restart.replayed
    assert value(again) == value(after_restart) == value(first) == [f"u{i}" for i in range(16)]
    assert "UnpicklableWarning" not in first.stderr, first.stderr
    assert pkernel.value("res") == [f"u{i}" for i in range(16)]


def test_a_closed_file_is_no_output(pkernel: Kernel, tmp_path: Path,
                                    counter: Callable[[str], str]) -> None:
    data = tmp_path / "words.txt"
    data.write_text("alpha beta gamma")
    cell = textwrap.dedent(f"""\
        %%durable words
        with open({str(data)!r}) as f:
            words = f.read().split()
        {counter("words")}
        len(words)
        """)
    first = pkernel.ok(cell)
    again = pkernel.ok(cell)
    assert runs(tmp_path, "words") == 1
    assert again.replayed and again.text == first.text == "3"
    assert "UnpicklableWarning" not in first.stderr, first.stderr
    assert pkernel.value("words") == ["alpha", "beta", "gamma"]


# -- threads and executors reached other ways ---------------------------------------------------

OTHER_WAYS = {
    "threading.Thread": GET + URLS + textwrap.dedent("""\
        import threading
        res = [None] * len(urls)
        def work(i):
            res[i] = get(urls[i])
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(urls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        res
        """),
    "run_in_executor": GET + URLS + textwrap.dedent("""\
        import asyncio
        loop = asyncio.get_running_loop()
        res = await asyncio.gather(*(loop.run_in_executor(None, get, url) for url in urls))
        res
        """),
    "multiprocessing.pool.ThreadPool": GET + URLS + textwrap.dedent("""\
        from multiprocessing.pool import ThreadPool
        with ThreadPool(4) as pool:
            res = pool.map(get, urls)
        res
        """),
}


@pytest.mark.parametrize("way", list(OTHER_WAYS))
def test_calls_from_other_threads_resume(
        pkernel: Kernel, server: CountingServer, way: str) -> None:
    cell = "%%durable threads\n" + OTHER_WAYS[way]
    result, held = kill_and_rerun(pkernel, server, cell, finished=5)
    result.raise_for_error()
    assert_each_call_once(server, PATHS, held)
    assert value(result) == [f"u{i}" for i in range(16)]
    assert_plain_gives(pkernel, cell, result)


# -- coroutines -----------------------------------------------------------------------------------

def test_to_thread_over_an_imported_function_resumes(
        pkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable tothread\nimport asyncio, netsdk\n" + URLS + (
        "res = await asyncio.gather(*(asyncio.to_thread(netsdk.fetch, url) for url in urls))\n"
        "res\n")
    result, held = kill_and_rerun(pkernel, server, cell, finished=6)
    result.raise_for_error()
    assert_each_call_once(server, PATHS, held)
    assert_plain_gives(pkernel, cell, result)


def test_to_thread_second_calls_in_completion_order_resume(
        pkernel: Kernel, server: CountingServer) -> None:
    """Each fetch makes two calls, the second from the first's answer; the first answers come
    back in reverse order, so the second calls start in another order than the first ones."""
    cell = "%%durable twostep\nimport asyncio\n" + GET + textwrap.dedent("""\
        async def fetch(i):
            first = await asyncio.to_thread(get, f"{BASE}/gate/a{i}?ms={(8 - i) * 40}")
            second = await asyncio.to_thread(get, f"{BASE}/gate/b{first}?ms=10")
            return [first, second]
        res = await asyncio.gather(*(fetch(i) for i in range(8)))
        res
        """)
    result, held = kill_and_rerun(pkernel, server, cell, finished=10)
    result.raise_for_error()
    assert_each_call_once(server, [f"/gate/{p}{i}" for p in ("a", "ba") for i in range(8)], held)
    assert value(result) == [[f"a{i}", f"ba{i}"] for i in range(8)]
    assert_plain_gives(pkernel, cell, result)


HTTPX = {
    "gather-client.get": URLS + textwrap.dedent("""\
        async with httpx.AsyncClient() as client:
            responses = await asyncio.gather(*(client.get(url) for url in urls))
        res = [r.json()["gate"] for r in responses]
        res
        """),
    "notebook-async-def": URLS + textwrap.dedent("""\
        client = httpx.AsyncClient()
        async def fetch(url):
            r = await client.get(url)
            return r.json()["gate"]
        res = await asyncio.gather(*(fetch(url) for url in urls))
        await client.aclose()
        res
        """),
    "semaphore-second-call": URLS + textwrap.dedent("""\
        limit = asyncio.Semaphore(4)
        async def fetch(client, url):
            async with limit:
                first = (await client.get(url)).json()["gate"]
                second = await client.get(f"{BASE}/gate/b{first}?ms=10")
            return second.json()["gate"].removeprefix("b")
        async with httpx.AsyncClient() as client:
            res = await asyncio.gather(*(fetch(client, url) for url in urls))
        res
        """),
}


@pytest.mark.parametrize("variant", list(HTTPX))
def test_httpx_gather_resumes(pkernel: Kernel, server: CountingServer, variant: str) -> None:
    cell = "%%durable hx\nimport asyncio, httpx\n" + HTTPX[variant]
    result, held = kill_and_rerun(pkernel, server, cell, finished=8)
    result.raise_for_error()
    seconds = [f"/gate/bu{i}" for i in range(16)] if "second" in variant else []
    assert_each_call_once(server, PATHS + seconds, held)
    assert value(result) == [f"u{i}" for i in range(16)]
    assert_plain_gives(pkernel, cell, result)


# -- km.map ---------------------------------------------------------------------------------------

def test_km_map_resumes_with_every_finished_item(
        pkernel: Kernel, server: CountingServer) -> None:
    cell = "%%durable mapped\n" + GET + textwrap.dedent("""\
        def ask(i):
            return get(f"{BASE}/gate/q{i}?ms={(7 * i) % 10 * 10}")
        answers = km.map(ask, list(range(40)), concurrency=16)
        answers
        """)
    held = kill_after(pkernel, server, cell, finished=12)
    restart(pkernel, server)
    result, seen = run_seen(pkernel, cell)
    result.raise_for_error()
    assert_each_call_once(server, [f"/gate/q{i}" for i in range(40)], held)
    assert value(result) == [f"q{i}" for i in range(40)]
    # The progress bar on resume: the item count, and that the 12 finished came from the journal.
    assert "40" in seen and "12" in seen and "journal" in seen.lower(), seen
    assert_plain_gives(pkernel, cell, result)
    assert value(pkernel.ok("[ask(i) for i in range(40)]")) == value(result)


def test_km_map_retries_items_per_the_activity_policy(
        pkernel: Kernel, server: CountingServer) -> None:
    pkernel.ok(textwrap.dedent("""\
        import urllib.request
        @km.activity(retries=2, backoff=0.01)
        def flaky(name):
            return urllib.request.urlopen(f"{BASE}/flaky/{name}?fail=1").read().decode()
        """))
    result, seen = run_seen(pkernel, "%%durable retried\n"
                                     "km.map(flaky, ['a', 'b', 'c', 'd', 'e'], concurrency=2)")
    result.raise_for_error()
    assert value(result) == [f'{{"ok": "{n}"}}' for n in "abcde"]
    assert [server.hits[f"/flaky/{n}"] for n in "abcde"] == [2] * 5
    assert "5/5" in seen, seen   # a progress bar counted the items


def test_km_map_of_nothing_and_bad_arguments(pkernel: Kernel) -> None:
    assert pkernel.ok("%%durable empty\nkm.map(str, [])").text == "[]"
    assert pkernel.ok("km.map(str, [])").text == "[]"
    zero = pkernel.run("km.map(str, [1, 2], concurrency=0)")
    assert zero.error is not None and zero.error["ename"] in ("ValueError", "TypeError")
    assert "concurrency" in zero.error["evalue"], zero.error["evalue"]
    uncallable = pkernel.run("km.map(42, [1, 2])")
    assert uncallable.error is not None and uncallable.error["ename"] == "TypeError"
    assert "int" in uncallable.error["evalue"], uncallable.error["evalue"]   # names what it got


# -- durable timers -------------------------------------------------------------------------------

@pytest.mark.parametrize("sleep", ["time.sleep(6)", "await asyncio.sleep(6)"])
def test_an_interrupted_sleep_waits_only_what_is_left(
        pkernel: Kernel, server: CountingServer, tmp_path: Path, sleep: str) -> None:
    began = tmp_path / "began"
    cell = textwrap.dedent(f"""\
        %%durable nap
        import asyncio, time
        open({str(began)!r}, "w").close()
        {sleep}
        "woke"
        """)
    pkernel.send(cell)
    deadline = time.monotonic() + 30
    while not began.exists():
        assert time.monotonic() < deadline, "the cell never started"
        time.sleep(0.02)
    time.sleep(3)
    pkernel.kill()
    restart(pkernel, server)
    start = time.monotonic()
    resumed = pkernel.ok(cell)
    waited = time.monotonic() - start
    assert resumed.text == "'woke'"
    # About 3 s of the 6 were left at the kill, and the restart took some of them: a resume
    # that sleeps 6 s again is what this catches, with a wide margin for a slow machine.
    assert waited < 5, f"the resumed sleep took {waited:.1f} s"
    start = time.monotonic()
    replayed = pkernel.ok(cell)
    assert replayed.replayed and replayed.text == "'woke'"
    assert time.monotonic() - start < 3, "a finished sleep was waited again"
