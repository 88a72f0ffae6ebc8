"""The subprocess side of rows 8f-8g (``km.map`` and thread pools): ``python -m
benchmarks.mapping_worker TASK JSON-ARGS``, as ``benchmarks.worker`` (whose helpers it uses) runs
the other rows; apart because that module is long enough.

* ``map_journal``: the per-item price of journaling, a durable cell against the same cell in
  ``--mode step`` (which does not journal), for ``km.map`` and for ``ThreadPoolExecutor.map``.
* ``map_kill`` and ``map_resume``: a durable ``km.map`` whose first half is journaled when the
  process SIGKILLs itself, then a new process that runs the same cell again.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks.common import median, report
from benchmarks.data import GATE
from benchmarks.worker import _pairs, _run, _shell, main, task

MAP_SETUP = """\
import kitteh_magic as km
from concurrent.futures import ThreadPoolExecutor

from benchmarks.data import gate


def f(i):
    return i * 2


@km.activity
def act(i):
    return i


def h(i):
    gate(i)
    return i * 2
"""

KM_MAP = "%%durable {step} --force{mode}\nres = km.map(f, range({n}), concurrency={c})\n"
POOL_MAP = """\
%%durable {step} --force{mode}
def g(i):
    return act(i)


with ThreadPoolExecutor({c}) as pool:
    res = list(pool.map(g, range({n})))
del pool
"""
"""Row 8f2's cell. ``del pool``: a shut-down executor that a durable cell leaves in the namespace
makes the next step that reads ``res``, ``g`` or ``act`` fingerprint it, and through its threads
(whose ``_stderr`` is the step's capture and whose excepthook closure holds the shell) the whole
shell, in time exponential in the thread count (README, row 8f2)."""
RESUMED = "%%durable resumed\nres = km.map(h, range({n}), concurrency={c})\n"
"""Row 8g's cell: the killed run and the resume are the same code, so the same step version."""
STEP_MODE = " --mode step"


def _profile_threads(fn: Callable[[], object], reps: int, top: int = 25) -> str:
    """cProfile of ``reps`` calls in this thread and every thread started meanwhile, merged.

    Each thread's time is its own wall time, so a call the threads wait in (a lock, a busy
    SQLite write) counts once per waiting thread.
    """
    profiles: list[cProfile.Profile] = []

    def start(frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    main_profile = cProfile.Profile()
    threading.setprofile(start)
    main_profile.enable()
    try:
        for _ in range(reps):
            fn()
    finally:
        main_profile.disable()
        threading.setprofile(None)
    stats = pstats.Stats(main_profile)
    for profile in profiles:
        stats.add(profile)
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    text = "\n".join(line for line in out.getvalue().splitlines() if line.strip())
    return f"{len(profiles)} threads besides the cell's\n{text}"[-6000:]


def _timing(owner: type, method: str, fn: Callable[[], object]) -> list[float]:
    """Wall times of every call of ``owner.method`` (from any thread) while ``fn`` runs."""
    original = getattr(owner, method)
    times: list[float] = []

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    setattr(owner, method, timed_call)
    try:
        fn()
    finally:
        setattr(owner, method, original)
    return times


@task
def map_journal(n: int, reps: int, concurrency: int, profile: bool = False) -> dict[str, Any]:
    """8f: ``km.map`` and ``ThreadPoolExecutor.map`` of ``n`` items, durable vs step mode."""
    from kitteh_magic.store import Store

    shell = _shell()
    _run(shell, MAP_SETUP)
    engine = shell._kitteh_magic_state.engine
    out: dict[str, Any] = {"n": n}
    for name, cell in (("km_map", KM_MAP), ("pool_map", POOL_MAP)):
        durable = cell.format(step=name, mode="", n=n, c=concurrency)
        step = cell.format(step=name + "_step", mode=STEP_MODE, n=n, c=concurrency)
        out[name], out[name + "_base"] = _pairs(shell, durable, step, reps)
        assert shell.user_ns["res"] == [i * (2 if name == "km_map" else 1) for i in range(n)]
        pointer = engine.catalog.pointer(engine.session, name)
        out[name + "_journaled"] = pointer.activities if pointer is not None else 0
        if profile:
            out[name + "_profile"] = _profile_threads(partial(_run, shell, durable), 3)
            # The journal's writes in one more such cell: each a commit, from 8 threads at once.
            writes = _timing(Store, "write_json", partial(_run, shell, durable))
            out[name + "_writes"] = {"count": len(writes), "median": median(writes),
                                     "p99": statistics.quantiles(writes, n=100)[98],
                                     "max": max(writes), "sum": sum(writes)}
    return out


@task
def map_kill(n: int, half: int, concurrency: int) -> dict[str, Any]:
    """8g, first run: items ``half`` and later block, so exactly the first half finishes; once
    its ``half`` entries are in the store, report and SIGKILL this process (a dead kernel).

    The result line is printed before the kill; the resume checks what the kill left.
    """
    from kitteh_magic.activities import dispatch
    from kitteh_magic.steps.records import journal_prefix

    shell = _shell()
    _run(shell, MAP_SETUP)
    engine = shell._kitteh_magic_state.engine
    GATE.update(at=half, closed=True)
    started = [0.0]

    def watch() -> None:
        while True:
            running = dispatch._RUNNING
            if running is not None and len(running.journal.entries) >= half:
                break
            time.sleep(0.002)
        live = time.perf_counter() - started[0]
        # An entry is in memory just before its row is written: wait for the rows.
        store, prefix = running.journal.store, journal_prefix(engine.session, "resumed")
        while len(store.keys(prefix)) < half:
            time.sleep(0.002)
        report({"live": live, "journaled": len(store.keys(prefix)), "pid": os.getpid()})
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="bench-watch", daemon=True).start()
    started[0] = time.perf_counter()
    shell.run_cell(RESUMED.format(n=n, c=concurrency), store_history=True)
    raise RuntimeError("the killed run's cell returned: its items should have blocked")


@task
def map_resume(n: int, half: int, concurrency: int, killed: int, profile: bool = False,
               ) -> dict[str, Any]:
    """8g, the resume: the same cell in a new process; the finished half comes from the
    journal, the rest runs (its items no longer block).

    ``replay`` is from the start of ``run_cell`` to the start of the first live item: the
    cell's lookup, the journal's load, and km.map's pass over the finished items.
    """
    from kitteh_magic.activities.journal import Journal
    from kitteh_magic.steps.records import journal_prefix

    shell = _shell()
    _run(shell, MAP_SETUP)
    engine = shell._kitteh_magic_state.engine
    before = engine.catalog.pointer(engine.session, "resumed")
    pending = len(engine.store.keys(journal_prefix(engine.session, "resumed")))
    try:
        os.kill(killed, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    GATE.update(at=half, closed=False)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    opened = _timing(Journal, "__init__", partial(_run, shell, RESUMED.format(n=n, c=concurrency)))
    end = time.perf_counter()
    out: dict[str, Any] = {}
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        out["profile"] = "\n".join(line for line in text.getvalue().splitlines()
                                   if line.strip())[-6000:]
    after = engine.catalog.pointer(engine.session, "resumed")
    assert after is not None and before is not None
    first = GATE["first"]
    return {**out, "replay": first - start, "cell": end - start, "rest": end - first,
            "journal_open": sum(opened),
            "pending": pending, "state_before": before.state, "pid_before": before.pid,
            "killed_alive": alive, "resumed": after.resumed, "activities": after.activities,
            "state": after.state, "results_ok": shell.user_ns["res"] == [2 * i for i in range(n)]}


if __name__ == "__main__":
    main(sys.argv[1:])
