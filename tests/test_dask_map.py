"""``km.map(fn, items, client=dask_client)`` on a real Dask cluster (DESIGN §3 ``km.map``, §4.2,
§4.12, §9; issue 11), from real kernels.

A scheduler and two workers of two threads each run as processes of their own, started once for
this file (``daskcluster.py``). Each item calls the local counting server from a worker, so the
server's hit counts say which items ran, and how often. Spy plugins keep every task the scheduler
and the workers were given; the cluster's processes have a home, a config folder and a key file
of their own, so a test can tell whether anything there made or saw the signing key.

Most durable cells make their own client (``with Client(ADDR) as client: ...`` then ``del
client``); the last test makes it in a plain cell, as notebooks usually do: a client is
machinery, fingerprinted by its type and never an output, so that step replays too.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daskcluster import (
    DaskCluster,
    SchedulerSpy,
    WorkerSpy,
    inspect_process,
    install_spies,
    tasks_held,
)
from http_server import CountingServer, counting_server
from kernel import Kernel, Result
from test_parallel import assert_each_call_once, kill_after, plain, run_seen, value

pytestmark = pytest.mark.kernel

ASK = textwrap.dedent("""\
    import json, urllib.request
    def ask(name):
        with urllib.request.urlopen(f"{BASE}/gate/{name}?ms={sum(map(ord, name)) % 5 * 20}") as r:
            return json.loads(r.read())["gate"]
    """)
"""The mapped function: a notebook function whose calls the rewriter routes through
``_kitteh_call_`` (plain calls on a worker, where no step runs)."""


def mapped(step: str, items: list[str], concurrency: int) -> str:
    """A durable cell that maps ``ask`` over ``items`` on the cluster."""
    return f"%%durable {step}\n" + ASK + textwrap.dedent(f"""\
        with Client(ADDR) as client:
            res = km.map(ask, {items!r}, concurrency={concurrency}, client=client)
        del client
        res
        """)


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    started = DaskCluster(workers=2, nthreads=2)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def watch(cluster: DaskCluster) -> Iterator[Any]:
    """This process's client of the cluster, with the spies installed."""
    from distributed import Client

    with Client(cluster.address) as client:
        install_spies(client)
        yield client


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def dkernel(start_kernel: Callable[..., Kernel], server: CountingServer, cluster: DaskCluster,
            watch: Any) -> Kernel:
    """A kernel that knows the server as ``BASE`` and the scheduler as ``ADDR``."""
    given(watch), executed(watch)  # what earlier tests left in the spies
    kernel = start_kernel()
    kernel.ok(prelude(server, cluster))
    return kernel


def prelude(server: CountingServer, cluster: DaskCluster) -> str:
    return (f"BASE = {server.url!r}\nADDR = {cluster.address!r}\nimport kitteh_magic as km\n"
            "from distributed import Client")


def restart(kernel: Kernel, server: CountingServer, cluster: DaskCluster) -> None:
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic\n" + prelude(server, cluster))


def given(watch: Any) -> list[str]:
    """The keys of the tasks the scheduler was given since it was last asked."""
    return [key for key, _ in watch.run_on_scheduler(SchedulerSpy.given)]


def executed(watch: Any) -> list[tuple[str, bytes]]:
    """The tasks every worker started since it was last asked, with their run specs."""
    return [pair for ran in watch.run(WorkerSpy.executed).values() for pair in ran]


def indices(keys: list[str], fn: str) -> list[int]:
    """The item indices of km.map's task keys of ``fn`` (``km.map-<fn>-<index>-<token>``),
    failing on any other key."""
    found = [re.fullmatch(rf"km\.map-{fn}-(\d+)-([0-9a-f]{{8}})(-\d+)?", key) for key in keys]
    assert all(found), f"keys not of km.map's form for {fn}: {keys}"
    return sorted(int(m.group(1)) for m in found if m)


def gated(names: list[str]) -> list[str]:
    return [f"/gate/{name}" for name in names]


# -- results, duplicates, keys, and the plain map ------------------------------------------------

def test_items_run_on_the_cluster_each_duplicate_too_as_a_plain_run_gives(
        dkernel: Kernel, server: CountingServer, watch: Any) -> None:
    names = ["a", "b", "a", "c", "b", "a"]
    cell = mapped("dups", names, concurrency=3)
    result, seen = run_seen(dkernel, cell)
    assert value(result) == names
    # pure=False: equal items are each a task of their own, and each ran once
    assert Counter({p: server.hits[p] for p in set(gated(names))}) == Counter(gated(names))
    keys = given(watch)
    assert indices(keys, "ask") == list(range(6))
    assert len({key.rsplit("-", 1)[1] for key in keys}) == 1  # one token for the map
    assert sorted(key for key, _ in executed(watch)) == sorted(keys)  # all ran on workers
    assert "km.map ask" in seen and "6/6" in seen, seen  # the progress bar

    # The oracle: the same cell run plain, where km.map is a parallel map on the cluster.
    assert value(dkernel.ok(plain(cell))) == value(result)
    assert Counter({p: server.hits[p] for p in set(gated(names))}) == \
        Counter(gated(names) * 2)
    again = given(watch)
    assert indices(again, "ask") == list(range(6)) and not set(again) & set(keys)


# -- a killed kernel resumes ---------------------------------------------------------------------

def test_a_kernel_killed_half_way_resumes_with_the_finished_items_from_the_journal(
        dkernel: Kernel, server: CountingServer, cluster: DaskCluster, watch: Any) -> None:
    items = [f"q{i}" for i in range(16)]
    cell = mapped("fanout", items, concurrency=4)
    held = kill_after(dkernel, server, cell, finished=6)
    finished = set(server.answered)
    assert len(finished) == 6
    assert 1 <= sum(held.values()) <= 4, held  # never more than `concurrency` in flight
    given(watch)
    restart(dkernel, server, cluster)
    result, seen = run_seen(dkernel, cell)
    result.raise_for_error()
    assert value(result) == items
    assert_each_call_once(server, gated(items), held)
    # The resume sent exactly the items the journal did not answer, once each.
    assert indices(given(watch), "ask") == [i for i, p in enumerate(gated(items))
                                             if p not in finished]
    assert "journal" in seen.lower() and "6" in seen, seen
    assert value(dkernel.ok(plain(cell))) == value(result)


def test_a_finished_map_replays_after_a_restart_without_a_task(
        dkernel: Kernel, server: CountingServer, cluster: DaskCluster, watch: Any) -> None:
    items = [f"r{i}" for i in range(8)]
    cell = mapped("done", items, concurrency=4)
    first = dkernel.ok(cell)
    assert indices(given(watch), "ask") == list(range(8)) and len(executed(watch)) == 8
    restart(dkernel, server, cluster)
    again = dkernel.ok(cell)
    assert again.replayed and value(again) == value(first) == items
    assert given(watch) == [] and executed(watch) == []
    assert [server.hits[p] for p in gated(items)] == [1] * 8


# -- failures, retries and timeouts --------------------------------------------------------------

RETRIED = textwrap.dedent("""\
    %%durable retried
    import urllib.request
    @km.activity(retries=2, backoff=0.01)
    def flaky(name):
        return urllib.request.urlopen(f"{BASE}/flaky/{name}?fail=1").read().decode()
    with Client(ADDR) as client:
        res = km.map(flaky, ["a", "b", "c", "d", "e"], concurrency=2, client=client)
    del client
    res
    """)

PICKY = textwrap.dedent("""\
    %%durable picky
    import time, urllib.error, urllib.request
    def picky(name):
        if name == "c":
            time.sleep(0.5)  # c fails after e, and is still the failure the cell sees
        try:
            return urllib.request.urlopen(
                f"{BASE}/flaky/p{name}?fail={int(name in 'ce')}").read().decode()
        except urllib.error.HTTPError as err:
            code = err.code  # raised below: Dask cannot send an exception whose context
        raise ValueError(f"item {name} refused: {code}")  # holds a socket
    with Client(ADDR) as client:
        res = km.map(picky, list("abcdef"), concurrency=6, client=client)
    del client
    res
    """)


def test_items_are_retried_on_the_cluster_per_the_activity_policy(
        dkernel: Kernel, server: CountingServer, watch: Any) -> None:
    result = dkernel.ok(RETRIED)
    assert value(result) == [f'{{"ok": "{n}"}}' for n in "abcde"]
    assert [server.hits[f"/flaky/{n}"] for n in "abcde"] == [2] * 5
    keys = given(watch)
    # Each retry is a task of its own on the cluster: attempt 2 is ``<key>-2``.
    assert indices(keys, "flaky") == sorted(list(range(5)) * 2)
    assert sum(key.endswith("-2") for key in keys) == 5
    log = dkernel.ok("%durable log retried").stdout
    assert len(re.findall(r"\b2\s+ok\b", log)) == 5, log  # journaled with 2 attempts each


def test_the_first_failing_item_by_order_fails_the_cell_and_runs_again(
        dkernel: Kernel, server: CountingServer, watch: Any) -> None:
    failed = dkernel.run(PICKY)
    assert failed.error is not None and failed.error["ename"] == "ValueError"
    assert failed.error["evalue"] == "item c refused: 503", failed.error["evalue"]
    assert failed.mark["state"] == "failed"
    assert [server.hits[f"/flaky/p{n}"] for n in "abcdef"] == [1] * 6
    assert indices(given(watch), "picky") == list(range(6))
    again = dkernel.run(PICKY)
    assert value(again) == [f'{{"ok": "p{n}"}}' for n in "abcdef"]
    # The finished items came from the journal; the two that failed ran again, on the cluster.
    assert [server.hits[f"/flaky/p{n}"] for n in "abcdef"] == [1, 1, 2, 1, 2, 1]
    assert indices(given(watch), "picky") == [2, 4]


def test_an_item_past_its_timeout_is_cancelled_on_the_cluster(
        dkernel: Kernel, server: CountingServer, watch: Any) -> None:
    dkernel.ok("client = Client(ADDR)")  # connected after the cell (see the Ctrl-C test)
    cell = textwrap.dedent("""\
        %%durable slow
        import urllib.request
        @km.activity(timeout=1)
        def slow(name):
            return urllib.request.urlopen(f"{BASE}/hold/{name}").read().decode()
        res = km.map(slow, ["h"], client=client)
        """)
    held = dkernel.send(cell)
    assert server.holding.wait(30), "the item never reached the server"
    result = dkernel.collect(held, timeout=30)
    assert result.error is not None and result.error["ename"] == "ActivityTimeout"
    assert server.hits["/hold/h"] == 1
    # Still running on its worker (held by the server), but no longer the scheduler's.
    assert watch.run_on_scheduler(tasks_held, "slow") == []


# -- Ctrl-C --------------------------------------------------------------------------------------

def test_ctrl_c_cancels_the_tasks_still_on_the_cluster(
        dkernel: Kernel, server: CountingServer, watch: Any) -> None:
    # A client of the notebook's, still connected after the cell: only km.map's cancel can make
    # the scheduler forget the items (their future objects stay alive in the traceback).
    dkernel.ok("client = Client(ADDR)")
    cell = textwrap.dedent("""\
        %%durable wait
        import urllib.request
        def wait(name):
            return urllib.request.urlopen(f"{BASE}/hold/{name}").read().decode()
        res = km.map(wait, [f"w{i}" for i in range(6)], concurrency=2, client=client)
        """)
    msg_id = dkernel.send(cell)
    deadline = time.monotonic() + 30
    while server.hits["/hold/w0"] + server.hits["/hold/w1"] < 2:
        assert time.monotonic() < deadline, f"the items never reached the server: {server.hits}"
        time.sleep(0.05)
    assert len(watch.run_on_scheduler(tasks_held, "wait")) == 2
    dkernel.manager.interrupt_kernel()
    result = dkernel.collect(msg_id, timeout=30)
    assert result.error is not None and result.error["ename"] == "KeyboardInterrupt"
    assert result.mark["state"] == "interrupted"
    # Both items still hold their worker threads (Dask cannot stop a running task), but the
    # scheduler has let them go, and the other four never started.
    deadline = time.monotonic() + 10
    while watch.run_on_scheduler(tasks_held, "wait"):
        assert time.monotonic() < deadline, "the items' tasks were not cancelled"
        time.sleep(0.1)
    assert sum(server.hits[f"/hold/w{i}"] for i in range(6)) == 2
    server.release.set()


# -- what the cluster sees -----------------------------------------------------------------------

SECRET = textwrap.dedent("""\
    %%durable secret
    import json, urllib.request
    def fetch(url):
        with urllib.request.urlopen(url) as r:
            return json.loads(r.read())["item"]
    def twice(i):
        return fetch(f"{BASE}/item/{i}") * 2
    with Client(ADDR) as client:
        res = km.map(twice, list(range(6)), concurrency=3, client=client)
    del client
    res
    """)


def test_workers_never_see_the_key_the_store_or_the_step(
        dkernel: Kernel, server: CountingServer, cluster: DaskCluster, watch: Any,
        key_file: Path) -> None:
    assert value(dkernel.ok(SECRET)) == [0, 2, 4, 6, 8, 10]
    assert [server.hits[f"/item/{i}"] for i in range(6)] == [1] * 6
    key = key_file.read_bytes()
    assert len(key) == 32  # the kernel's store signed its records with it
    sha = hashlib.sha256(key).hexdigest()
    sent = watch.run_on_scheduler(SchedulerSpy.given)
    ran = executed(watch)
    assert indices([key for key, _ in sent], "twice") == list(range(6)) and len(ran) == 6
    for where, payload in [("scheduler", p) for _, p in sent] + [("worker", p) for _, p in ran]:
        # What went is the rewritten notebook functions (the one mapped and the one it calls,
        # with the dispatcher by reference) and the item...
        assert b"twice" in payload and b"fetch" in payload, where
        assert b"kitteh_magic.activities.dispatch" in payload, where
        # ... and nothing of the key, the store or the step.
        assert key not in payload and key.hex().encode() not in payload, where
        for name in (b"kitteh_magic.store", b"StepActivities", b"Journal", b"StepRun",
                     b"Signer"):
            assert name not in payload, (where, name)
    scans = [*watch.run(inspect_process, sha).values(),
             watch.run_on_scheduler(inspect_process, sha)]
    for scan in scans:
        assert scan["key_file"] is False and scan["key_copies"] == 0, scan
        assert scan["holders"] == [] and scan["running"] is False, scan
    assert any("kitteh_magic.activities.dispatch" in scan["modules"] for scan in scans[:-1])
    assert not cluster.key_file.exists()
    assert not list(cluster.folder.rglob("kitteh_magic")) + list(cluster.folder.rglob(".kitteh"))

    # The same scan, here, finds a signer and a copy of the key where there are some.
    from kitteh_magic.store.signing import Signer

    signer = Signer(key_file)
    signer.mac(b"loaded")
    kept = [key_file.read_bytes()]
    here = inspect_process(sha)
    assert "kitteh_magic.store.signing.Signer" in here["holders"] and here["key_copies"] >= 1
    del signer, kept


def test_an_item_on_an_in_process_worker_is_one_activity(dkernel: Kernel) -> None:
    """Workers that are threads of the kernel run the item as an activity's body: the calls it
    makes are not journaled on their own, and are no strays."""
    cell = textwrap.dedent("""\
        %%durable inproc
        import time
        def stamp(i):
            return (i, time.time() > 0)
        with Client(processes=False, n_workers=1, threads_per_worker=2,
                    dashboard_address=None) as client:
            res = km.map(stamp, range(4), client=client)
        del client
        res
        """)
    result = dkernel.ok(cell)
    assert value(result) == [(i, True) for i in range(4)]
    assert "UnjournaledWarning" not in result.stderr, result.stderr
    log = dkernel.ok("%durable log inproc").stdout
    assert "4 activities" in log and "time.time" not in log, log


NO_DASK = textwrap.dedent("""\
    import sys
    class NoDask:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("dask", "distributed"):
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, NoDask())
    from concurrent.futures import ThreadPoolExecutor
    import kitteh_magic as km
    with ThreadPoolExecutor(2) as pool:
        print(km.map(abs, [-1, -2]), km.map(abs, [-3], client=pool))
    print(sorted(m for m in sys.modules if m.partition(".")[0] in ("dask", "distributed")))
    """)


def test_kitteh_magic_imports_and_maps_without_dask(tmp_path: Path) -> None:
    """Dask is an extra: without it, km.map runs on threads and executors as before."""
    run = subprocess.run([sys.executable, "-c", NO_DASK], capture_output=True, text=True,
                         env={**os.environ, "KITTEH_MAGIC_KEY_FILE": str(tmp_path / "key"),
                              "KITTEH_MAGIC_DIR": str(tmp_path / "store")}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[1, 2] [3]", "[]"], run.stdout


# -- a known gap ---------------------------------------------------------------------------------

def test_a_client_made_in_another_cell_lets_the_step_replay(
        dkernel: Kernel, server: CountingServer, cluster: DaskCluster) -> None:
    dkernel.ok("client = Client(ADDR)")
    cell = "%%durable other\n" + ASK + "res = km.map(ask, ['o1', 'o2'], client=client)\nres\n"
    first: Result = dkernel.ok(cell)
    assert "Warning" not in first.stderr, first.stderr  # no unsaveable output, no input walk
    again = dkernel.ok(cell)
    assert value(again) == value(first) == ["o1", "o2"]
    assert again.replayed and server.hits["/gate/o1"] == 1
    restart(dkernel, server, cluster)  # a new client, made again in a plain cell
    dkernel.ok("client = Client(ADDR)")
    after = dkernel.ok(cell)
    assert after.replayed and value(after) == ["o1", "o2"] and server.hits["/gate/o1"] == 1
