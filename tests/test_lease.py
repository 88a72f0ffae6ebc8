"""One runner per step (DESIGN §4.13): the step lease, in real kernels and on a real store.

Two kernels share one store and session. The local HTTP server counts every call and an effect
appends to a file, so the counts prove what ran once. ``KITTEH_MAGIC_PAUSE_AT`` holds the first
kernel at an exact point (``faults.py``) while the second one starts; SIGKILLs are real.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, Result

from kitteh_magic import cellargs, faults, status
from kitteh_magic.errors import StepBusyError
from kitteh_magic.steps import lease as leases
from kitteh_magic.steps.engine import Engine
from kitteh_magic.steps.lease import HOST, Lease, LeaseDoc, Party, lease_key
from kitteh_magic.steps.records import StepPointer, pointer_key
from kitteh_magic.steps.run import StepRun, StepSpec, run_step
from kitteh_magic.store import Store

SESSION = "default"  # what a kernel outside Jupyter (no notebook path) calls its session


# -- two kernels on one step ------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path, key_file: Path) -> Iterator[Store]:
    """The kernels' store, opened by the test to watch the lease."""
    with Store(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def two(start_kernel: Callable[..., Kernel], server: CountingServer, tmp_path: Path,
        ) -> Callable[..., Kernel]:
    """Start a kernel that knows the server as ``BASE`` and the effect ``note()``."""
    def start(**env: str) -> Kernel:
        kernel = start_kernel(**env)
        kernel.ok(textwrap.dedent(f"""\
            import os
            import kitteh_magic as km
            BASE = {server.url!r}

            @km.effect
            def note():
                with open({str(tmp_path / "effect.txt")!r}, "a") as f:
                    f.write("x")
            """))
        return kernel
    return start


def job(tmp_path: Path, options: str = "", *, fail: bool = False, block: bool = False) -> str:
    """The raced step: five counted calls, then the effect.

    Args:
        options: more of the ``%%durable job`` line (``--wait 1``).
        fail: a kernel whose ``$KM_TEST_FAIL`` is set fails after two calls (the variable is
            read inline, so the decision is never journaled: another kernel decides anew).
        block: after three calls, create ``ready-body`` and wait until ``go-body`` exists.
    """
    ready, go = tmp_path / "ready-body", tmp_path / "go-body"
    lines = [f"%%durable job {options}".rstrip(),
             "import json, urllib.request",
             "results = []",
             "for i in range(5):",
             "    with urllib.request.urlopen(f'{BASE}/item/{i}') as response:",
             "        results.append(json.loads(response.read())['item'])"]
    if fail:
        lines += ["    if i == 1 and km.inline(os.environ.get)('KM_TEST_FAIL'):",
                  "        raise RuntimeError('the holder fails')"]
    if block:
        lines += [f"    if i == 2 and not os.path.exists({str(go)!r}):",
                  f"        open({str(ready)!r}, 'w').close()",
                  f"        while not os.path.exists({str(go)!r}):",
                  "            pass  # the test kills the kernel here, or lets it go on"]
    return "\n".join([*lines, "note()", "results", ""])


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def lease_doc(store: Store, step: str = "job") -> LeaseDoc | None:
    doc = store.get_json(lease_key(SESSION, step))
    return None if doc is None else LeaseDoc.checked(lease_key(SESSION, step), doc)


def wait_for_waiter(store: Store, kernel: Kernel, timeout: float = 60) -> None:
    """Until ``kernel`` is named among the step's waiters."""
    deadline = time.monotonic() + timeout
    while True:
        doc = lease_doc(store)
        if doc is not None and any(w.pid == kernel.pid for w in doc.waiters):
            return
        assert time.monotonic() < deadline, f"kernel {kernel.pid} never waited for the lease"
        time.sleep(0.02)


def waiting_texts(result: Result) -> list[str]:
    return [d["data"]["text/plain"] for d in result.displays
            if d.get("metadata", {}).get("kitteh_magic", {}).get("waiting")]


def hits(server: CountingServer) -> list[int]:
    return [server.hits[f"/item/{i}"] for i in range(5)]


def effects(tmp_path: Path) -> int:
    path = tmp_path / "effect.txt"
    return len(path.read_text()) if path.exists() else 0


def pause_at(point: str, go: Path) -> dict[str, str]:
    return {faults.PAUSE_ENV: f"{point}:{go}"}


@pytest.mark.kernel
def test_second_kernel_waits_for_the_holder_then_replays_its_record(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = two(**pause_at("lease-taken", go))
    second = two()
    cell = job(tmp_path)
    sent = first.send(cell)
    wait_for(Path(f"{go}.reached"))  # the first kernel holds the lease, nothing ran yet
    waiting = second.send(cell)
    wait_for_waiter(store, second)
    go.touch()

    ran = first.collect(sent).raise_for_error()
    replayed = second.collect(waiting).raise_for_error()
    assert hits(server) == [1, 1, 1, 1, 1]
    assert effects(tmp_path) == 1
    assert not ran.replayed and replayed.replayed
    assert ran.text == replayed.text == "[0, 1, 2, 3, 4]"
    assert second.value("results") == [0, 1, 2, 3, 4]
    texts = waiting_texts(replayed)
    assert texts and f"waiting for kernel {first.pid} on {HOST}" in texts[0]
    # Released, and nobody waits any more.
    doc = lease_doc(store)
    assert doc is not None and doc.holder is None and doc.waiters == []


@pytest.mark.kernel
def test_status_names_the_kernel_that_runs_a_step_and_the_one_that_waits(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    first, second = two(), two()
    cell = job(tmp_path, block=True)
    sent = first.send(cell)
    wait_for(tmp_path / "ready-body")  # the holder made three calls and is still running
    waiting = second.send(cell)
    wait_for_waiter(store, second)

    report = json.loads(two().ok("%durable status --json").stdout)  # a third kernel's view
    row = next(r for r in report["steps"] if r["step"] == "job")
    assert row["state"] == "running"
    assert (row["holder"]["pid"], row["holder"]["host"]) == (first.pid, HOST)
    assert [w["pid"] for w in row["waiters"]] == [second.pid]
    text = status.render_text(status.session_status(store, SESSION))
    assert f"kernel {first.pid} on {HOST} runs it; kernel {second.pid} on {HOST} waits" in text

    (tmp_path / "go-body").touch()
    assert first.collect(sent).raise_for_error().text == "[0, 1, 2, 3, 4]"
    assert second.collect(waiting).raise_for_error().replayed
    assert hits(server) == [1, 1, 1, 1, 1] and effects(tmp_path) == 1
    row = status.session_status(store, SESSION)["steps"][0]
    assert row["holder"] is None and row["waiters"] == []


@pytest.mark.kernel
def test_a_killed_holders_lease_is_taken_over_at_once_and_its_journal_resumed(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    first, second = two(), two()
    cell = job(tmp_path, block=True)
    first.send(cell)
    wait_for(tmp_path / "ready-body")  # three calls made, the lease held
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.pid == first.pid
    first.kill()
    (tmp_path / "go-body").touch()

    result = second.ok(cell)
    assert waiting_texts(result) == []  # a dead holder on this host: no wait at all
    assert result.text == "[0, 1, 2, 3, 4]" and not result.replayed
    assert hits(server) == [1, 1, 1, 1, 1]  # the dead kernel's three calls came from its journal
    assert effects(tmp_path) == 1
    doc = lease_doc(store)
    assert doc is not None and doc.holder is None


@pytest.mark.kernel
def test_wait_runs_out_with_step_busy_error_and_the_holder_finishes(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = two(**pause_at("lease-taken", go))
    second = two()
    sent = first.send(job(tmp_path))
    wait_for(Path(f"{go}.reached"))

    busy = second.run(job(tmp_path, "--wait 1"))
    assert not go.exists()  # it gave up while the holder still held the lease
    assert busy.error is not None and busy.error["ename"] == "StepBusyError"
    assert f"kernel {first.pid} on {HOST}" in busy.error["evalue"]
    assert "'job'" in busy.error["evalue"] and "--wait 1" in busy.error["evalue"]
    assert second.value("'results' in globals()") is False  # nothing ran there
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.pid == first.pid
    assert doc.waiters == []

    go.touch()
    assert first.collect(sent).raise_for_error().text == "[0, 1, 2, 3, 4]"
    assert hits(server) == [1, 1, 1, 1, 1] and effects(tmp_path) == 1
    assert second.ok(job(tmp_path, "--wait 1")).replayed  # now its record is there


@pytest.mark.kernel
def test_a_failing_holder_leaves_the_step_to_the_waiter(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = two(KM_TEST_FAIL="1", **pause_at("lease-taken", go))
    second = two()
    cell = job(tmp_path, fail=True)
    sent = first.send(cell)
    wait_for(Path(f"{go}.reached"))
    waiting = second.send(cell)
    wait_for_waiter(store, second)
    go.touch()

    failed = first.collect(sent)
    assert failed.error is not None and failed.error["ename"] == "RuntimeError"
    result = second.collect(waiting).raise_for_error()
    assert f"waiting for kernel {first.pid} on {HOST}" in waiting_texts(result)[0]
    assert result.text == "[0, 1, 2, 3, 4]" and not result.replayed
    # The holder's two calls came from its journal; the waiter made the rest, and the effect.
    assert hits(server) == [1, 1, 1, 1, 1] and effects(tmp_path) == 1


@pytest.mark.kernel
def test_ctrl_c_while_waiting_stops_cleanly_and_leaves_the_waiters(
        two: Callable[..., Kernel], server: CountingServer, store: Store,
        tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = two(**pause_at("lease-taken", go))
    second = two()
    sent = first.send(job(tmp_path))
    wait_for(Path(f"{go}.reached"))
    waiting = second.send(job(tmp_path))
    wait_for_waiter(store, second)
    second.manager.interrupt_kernel()

    stopped = second.collect(waiting)
    assert stopped.error is not None and stopped.error["ename"] == "KeyboardInterrupt"
    assert f"stopped waiting for step 'job', which kernel {first.pid}" in stopped.error["evalue"]
    doc = lease_doc(store)
    assert doc is not None and doc.waiters == []
    go.touch()
    assert first.collect(sent).raise_for_error().text == "[0, 1, 2, 3, 4]"
    assert hits(server) == [1, 1, 1, 1, 1]


# -- the lease on a real store ----------------------------------------------------------------


def me(**fields: Any) -> Party:
    return Party(pid=os.getpid(), host=HOST, proc_start=psutil.Process().create_time(),
                 **fields)


def lease_of(store: Store, party: Party, step: str = "job") -> Lease:
    told: list[str] = []
    return Lease(store, SESSION, step, party, told.append)


@pytest.fixture
def live_process() -> Iterator[psutil.Process]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def holder_of(proc: psutil.Process, **fields: Any) -> Party:
    return Party(**{"pid": proc.pid, "host": HOST, "proc_start": proc.create_time(),
                    "token": "theirs", **fields})


def put_holder(store: Store, holder: Party) -> None:
    store.put_json(lease_key(SESSION, "job"), LeaseDoc(holder=holder).to_doc())


def test_take_renew_release(store: Store) -> None:
    lease = lease_of(store, me(kernel="k-1", key="stepkey"))
    assert lease.take(waiting=True).holder is None
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None
    assert (doc.holder.pid, doc.holder.host, doc.holder.kernel, doc.holder.key) == (
        os.getpid(), HOST, "k-1", "stepkey")
    taken = doc.holder.heartbeat
    time.sleep(0.01)
    lease.renew()
    renewed = lease_doc(store)
    assert renewed is not None and renewed.holder is not None
    assert renewed.holder.heartbeat > taken
    lease.release()
    released = lease_doc(store)
    assert released is not None and released.holder is None and released.released > taken


def test_a_live_holder_keeps_it_and_the_taker_waits(store: Store,
                                                   live_process: psutil.Process) -> None:
    put_holder(store, holder_of(live_process))
    lease = lease_of(store, me())
    found = lease.take(waiting=True)
    assert found.holder is not None and found.holder.pid == live_process.pid
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.pid == live_process.pid
    assert [w.pid for w in doc.waiters] == [os.getpid()]
    lease.leave()
    left = lease_doc(store)
    assert left is not None and left.waiters == []


def test_a_dead_holders_lease_is_taken(store: Store) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    put_holder(store, Party(pid=proc.pid, host=HOST, proc_start=started, token="dead"))
    assert lease_of(store, me()).take(waiting=True).holder is None
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.pid == os.getpid()


def test_a_reused_pid_is_not_the_holder(store: Store, live_process: psutil.Process) -> None:
    # The pid lives, but as a process that started after the holder's: the holder is dead.
    put_holder(store, holder_of(live_process, proc_start=live_process.create_time() - 100))
    assert lease_of(store, me()).take(waiting=True).holder is None


def test_another_hosts_holder_lives_by_its_heartbeat(store: Store) -> None:
    now = time.time()
    put_holder(store, Party(pid=1, host="elsewhere", heartbeat=now - 1, token="fresh"))
    found = lease_of(store, me()).take(waiting=False)
    assert found.holder is not None and found.holder.host == "elsewhere"
    put_holder(store, Party(pid=1, host="elsewhere", heartbeat=now - leases.STALE - 1,
                            token="stale"))
    assert lease_of(store, me()).take(waiting=False).holder is None


def test_the_same_process_takes_back_a_lease_it_never_released(store: Store) -> None:
    earlier = lease_of(store, me())
    assert earlier.take(waiting=False).holder is None
    again = lease_of(store, me())
    assert again.take(waiting=False).holder is None
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.token == again.me.token
    earlier.release()  # an older take releases nothing of the new one
    doc = lease_doc(store)
    assert doc is not None and doc.holder is not None and doc.holder.token == again.me.token


def test_concurrent_takers_in_threads_one_wins(store: Store) -> None:
    takers = [lease_of(store, Party(pid=100 + i, host=f"host-{i}")) for i in range(8)]
    start = threading.Barrier(len(takers))
    won: list[int] = []

    def take(lease: Lease) -> None:
        start.wait()
        if lease.take(waiting=True).holder is None:
            won.append(lease.me.pid)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    doc = lease_doc(store)
    assert len(won) == 1 and doc is not None and doc.holder is not None
    assert doc.holder.pid == won[0]
    assert sorted(w.pid for w in doc.waiters) == sorted(set(range(100, 108)) - set(won))


def _take_in_process(directory: str, barrier: Any, done: Any, results: Any) -> None:
    with Store(directory) as opened:
        party = Party(pid=os.getpid(), host=HOST, proc_start=psutil.Process().create_time())
        barrier.wait()
        results.put((os.getpid(), lease_of(opened, party).take(waiting=False).holder is None))
        done.wait(60)  # alive until every taker has tried: a live holder keeps its lease


def test_concurrent_takers_in_processes_one_wins(store: Store) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, done, results = context.Barrier(4), context.Event(), context.Queue()
    procs = [context.Process(target=_take_in_process,
                             args=(str(store.directory), barrier, done, results))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=60) for _ in procs]
    finally:
        done.set()
        for proc in procs:
            proc.join(30)
    winners = [pid for pid, won in outcomes if won]
    doc = lease_doc(store)
    assert len(winners) == 1 and doc is not None and doc.holder is not None
    assert doc.holder.pid == winners[0]


def test_the_heartbeat_renews_a_held_lease(store: Store) -> None:
    lease = lease_of(store, me())
    lease.take(waiting=False)
    first = lease_doc(store)
    assert first is not None and first.holder is not None
    lease.hold()
    try:
        deadline = time.monotonic() + 10 * leases.HEARTBEAT
        while True:
            doc = lease_doc(store)
            assert doc is not None and doc.holder is not None
            if doc.holder.heartbeat > first.holder.heartbeat:
                break
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.05)
    finally:
        lease.release()


def test_wait_gives_up_with_step_busy_error(store: Store, live_process: psutil.Process) -> None:
    put_holder(store, holder_of(live_process, since=time.time() - 5))
    lease = lease_of(store, me())
    with pytest.raises(StepBusyError) as info:
        leases.acquire(lease, wait=0.2, notice=leases.WaitNotice(None, "job"))
    err = info.value
    assert (err.step, err.pid, err.host) == ("job", live_process.pid, HOST)
    assert err.held >= 5 and f"kernel {live_process.pid} on {HOST}" in str(err)
    doc = lease_doc(store)
    assert doc is not None and doc.waiters == []


def test_status_rows_name_the_live_holder_and_waiters(store: Store,
                                                      live_process: psutil.Process) -> None:
    store.put_json(pointer_key(SESSION, "job"), StepPointer(
        session=SESSION, step="job", state="running", pid=live_process.pid, host=HOST,
        proc_start=live_process.create_time()).to_doc())
    dead = Party(pid=2**22 + 7, host=HOST, proc_start=1.0)
    store.put_json(lease_key(SESSION, "job"), LeaseDoc(
        holder=holder_of(live_process, kernel="k-9"), waiters=[me(), dead]).to_doc())
    row = status.session_status(store, SESSION)["steps"][0]
    assert row["holder"]["pid"] == live_process.pid and row["holder"]["kernel"] == "k-9"
    assert [w["pid"] for w in row["waiters"]] == [os.getpid()]  # the dead waiter is left out
    assert "waits" in status.render_html(status.session_status(store, SESSION))
    store.put_json(lease_key(SESSION, "job"), {"holder": "nobody", "waiters": []})
    report = status.session_status(store, SESSION)
    assert report["steps"][0]["holder"] is None
    assert any("step lease" in line for line in report["damaged"])


def test_a_record_saved_between_lookup_and_take_is_replayed(tmp_path: Path, key_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another kernel saves the step and releases the lease after this one looked the record
    up but before it took the lease: the released lease tells it to look again."""
    first = Engine({}, store_dir=tmp_path / "store", session=SESSION)
    second = Engine({}, store_dir=tmp_path / "store", session=SESSION)
    ran: list[str] = []

    def execute(engine: Engine, who: str) -> Callable[[], object]:
        def body() -> object:
            ran.append(who)
            engine.namespace["x"] = 42
            return 42
        return body

    take = StepRun._take_lease

    def first_runs_meanwhile(self: StepRun, looked_up: float) -> bool:
        if self.engine is second:
            run_step(first, StepSpec(source="x = 42\nx", name="job"), execute(first, "first"))
        return take(self, looked_up)

    monkeypatch.setattr(StepRun, "_take_lease", first_runs_meanwhile)
    value = run_step(second, StepSpec(source="x = 42\nx", name="job"), execute(second, "second"))
    assert ran == ["first"] and value == 42 and second.namespace["x"] == 42
    ptr = second.catalog.pointer(SESSION, "job")
    assert ptr is not None and ptr.last == "replayed"
    first.close()
    second.close()


def test_pause_point_blocks_until_its_file_exists(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    go = tmp_path / "go"
    monkeypatch.setenv(faults.PAUSE_ENV, f"lease-taken:{go}")
    passed = threading.Event()

    def reach() -> None:
        faults.point("record-written")  # another point: no pause
        faults.point("lease-taken")
        passed.set()

    thread = threading.Thread(target=reach)
    thread.start()
    wait_for(Path(f"{go}.reached"))
    assert not passed.wait(0.2)
    go.touch()
    thread.join(10)
    assert passed.is_set()


# -- --wait ---------------------------------------------------------------------------------


def test_wait_is_parsed() -> None:
    assert cellargs.parse("job --wait 2.5", "x = 1").wait == 2.5
    assert cellargs.parse("job --wait 0", "x = 1").wait == 0
    assert cellargs.parse("job", "x = 1").wait is None
    assert "--wait SECONDS" in cellargs.CELL_USAGE and "--wait SECONDS" in cellargs.CELL_HELP


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", ""])
def test_bad_wait_values_are_usage_errors(value: str) -> None:
    with pytest.raises(cellargs.CellArgsError, match="--wait") as info:
        cellargs.parse(f"job --wait '{value}'", "x = 1")
    assert str(info.value).endswith(cellargs.CELL_USAGE)


@pytest.mark.kernel
def test_bad_wait_is_a_usage_error_in_a_kernel(kernel: Kernel) -> None:
    result = kernel.run("%%durable job --wait -2\nx = 1")
    assert "UsageError" in result.stderr and "--wait must be 0 or more" in result.stderr
    assert kernel.value("'x' in globals()") is False


def test_reset_drops_idle_leases_and_keeps_a_held_one(store: Store) -> None:
    from kitteh_magic.steps.catalog import Catalog
    from kitteh_magic.steps.lease import lease_prefix

    lease_of(store, me(), "busy").take(waiting=False)
    idle = lease_of(store, me(), "done")
    idle.take(waiting=False)
    idle.release()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    store.put_json(lease_key(SESSION, "dead"), LeaseDoc(
        holder=Party(pid=proc.pid, host=HOST, proc_start=started)).to_doc())
    Catalog(store).reset(SESSION)
    assert store.keys(lease_prefix(SESSION)) == [lease_key(SESSION, "busy")]
