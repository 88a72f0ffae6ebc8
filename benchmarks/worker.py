"""The subprocess side: ``python -m benchmarks.worker TASK JSON-ARGS`` measures one thing.

Each task runs in a fresh interpreter (no warm allocator, honest peak RSS), prints its result as
one JSON line (see ``common.report``) and exits. The parent modules decide what to run and how
to read the figures; nothing here prints a table.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pickle
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import report, reset_peak, rss, timed
from benchmarks.data import buffers, last_build, make, nbytes_of, touch

Task = Callable[..., dict[str, Any]]
TASKS: dict[str, Task] = {}


def task(fn: Task) -> Task:
    TASKS[fn.__name__] = fn
    return fn


def _shell(load: bool = True) -> Any:
    """An in-process IPython shell (no terminal, history in memory) with kitteh_magic loaded."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    if load:
        _run(shell, "%load_ext kitteh_magic")
    return shell


def _run(shell: Any, code: str) -> None:
    result = shell.run_cell(code, store_history=True)
    if not result.success:
        raise RuntimeError(f"cell failed: {code[:200]!r}: {result.error_in_exec!r}")


def _profile(fn: Callable[[], object], reps: int, top: int = 18) -> str:
    """cProfile of ``reps`` calls, the ``top`` functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())[-6000:]


# --- rows 1 and 2: cell overhead and small replay ----------------------------------------


@task
def cells(reps: int, profile: bool = False) -> dict[str, Any]:
    """Plain cells vs %%durable cells (forced, distinct first runs, replays), in one shell."""
    from benchmarks.common import median

    body = "a_small = [i * i for i in range(50)]\nb_small = {'n': len(a_small), 's': 'x' * 100}\n"
    shell = _shell(load=False)
    out: dict[str, Any] = {}
    # Baseline: the same body as a plain cell, before the extension is loaded.
    out["plain"] = median(timed(lambda: _run(shell, body), reps, warmup=20))
    counter = iter(range(10**9))

    def distinct_plain() -> None:
        i = next(counter)
        _run(shell, f"p_{i} = {i} * 2\nq_{i} = str(p_{i})")

    out["plain_distinct"] = median(timed(distinct_plain, reps, warmup=5))
    _run(shell, "%load_ext kitteh_magic")
    out["plain_loaded"] = median(timed(lambda: _run(shell, body), reps, warmup=20))
    forced = "%%durable small --force\n" + body
    out["forced"] = median(timed(lambda: _run(shell, forced), reps, warmup=5))

    def distinct_durable() -> None:
        i = next(counter)
        _run(shell, f"%%durable\nr_{i} = {i} * 2\ns_{i} = str(r_{i})")

    out["distinct"] = median(timed(distinct_durable, reps, warmup=5))
    replayed = "%%durable small_r\n" + body
    _run(shell, replayed)
    out["replay"] = median(timed(lambda: _run(shell, replayed), reps, warmup=5))
    out["empty"] = median(timed(lambda: _run(shell, "pass"), reps, warmup=5))
    if profile:
        out["profile_forced"] = _profile(lambda: _run(shell, forced), 100)
        out["profile_replay"] = _profile(lambda: _run(shell, replayed), 100)
    return out


# --- rows 3 and 4: save and restore ------------------------------------------------------


@task
def save(kind: str, nbytes: int, method: str, target: str, seed: int = 0) -> dict[str, Any]:
    """Save one large object, by Store.put_value or pickle.dump(protocol=5) to a file."""
    obj = make(kind, nbytes, seed)
    size = nbytes_of(obj)
    before = reset_peak()
    flush = 0.0
    if method == "kitteh":
        from kitteh_magic.store import Store

        store = Store(target)
        start = time.perf_counter()
        ref = store.put_value(obj)
        elapsed = time.perf_counter() - start
        peak = rss() - before
        start = time.perf_counter()
        store.flush()  # the background fsync, reported apart: pickle.dump does not fsync
        flush = time.perf_counter() - start
        store.close()
        extra: dict[str, Any] = {"ref": dict(ref)}
    else:
        start = time.perf_counter()
        with open(target, "wb") as f:
            pickle.dump(obj, f, protocol=5)
        elapsed = time.perf_counter() - start
        peak = rss() - before
        extra = {}
    return {"seconds": elapsed, "flush": flush, "peak_extra": peak, "size": size, **extra}


@task
def restore(kind: str, method: str, target: str, ref: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Restore one large object and make a first full pass over it."""
    if method == "kitteh":
        from kitteh_magic.store import Store

        store = Store(target)
        assert ref is not None
        load: Callable[[], Any] = lambda: store.get_value(ref)  # noqa: E731
    else:
        def load() -> Any:
            with open(target, "rb") as f:
                return pickle.load(f)
    import numpy  # noqa: F401  (imported before the baseline RSS, as a notebook would have it)
    import pandas  # noqa: F401

    before = reset_peak()
    start = time.perf_counter()
    obj = load()
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    touch(obj)
    passed = time.perf_counter() - start
    return {"load": loaded, "pass": passed, "peak": rss() - before, "size": nbytes_of(obj),
            "kind": kind}


@task
def get_only(target: str, ref: dict[str, Any], reps: int = 5) -> dict[str, Any]:
    """Store.get_value alone, repeated (each call maps the blob again): O(1) in the size?

    With the default ``verify_limit`` (buffers up to 256 MiB are checksummed) and with 0 (never:
    what is left is the mapping itself).
    """
    from kitteh_magic.store import Store

    out: dict[str, Any] = {}
    for name, store in (("default", Store(target)), ("unverified", Store(target, verify_limit=0))):
        out[name] = timed(lambda s=store: s.get_value(ref), reps, warmup=1)  # type: ignore[misc]
    return out


# --- row 5: fingerprints -------------------------------------------------------------------


@task
def fingerprints(kind: str, nbytes: int, reps: int) -> dict[str, Any]:
    """kitteh_magic's fingerprint vs raw xxh3-128 over the same buffers; the lineage path."""
    import xxhash

    from kitteh_magic.engine import Engine
    from kitteh_magic.fingerprint import fingerprint

    obj = make(kind, nbytes)
    views = buffers(obj)

    def raw() -> None:
        h = xxhash.xxh3_128()
        for view in views:
            h.update(view)
        h.hexdigest()

    out: dict[str, Any] = {"size": nbytes_of(obj)}
    out["fingerprint"] = timed(lambda: fingerprint(obj), reps, warmup=1)
    out["xxh3"] = timed(raw, reps, warmup=1)
    tiny = [1, 2, 3]
    engine = Engine({"x": obj, "y": tiny}, store_dir=Path(os.environ["KITTEH_MAGIC_DIR"]),
                    session="bench")
    engine.lineage.set("x", "0" * 32, obj)
    engine.lineage.set("y", "1" * 32, tiny)
    assert engine.input_fingerprint("x", obj) == "t:" + "0" * 32
    calls = 100_000
    for name, value in (("x", obj), ("y", tiny)):
        times = timed(lambda n=name, v=value: [engine.input_fingerprint(n, v)  # type: ignore
                                                for _ in range(calls)], 5)
        out["lineage_" + name] = [t / calls for t in times]
    return out


# --- rows 3, 7: a whole step in an IPython shell --------------------------------------------


@task
def step(kind: str, nbytes: int, phase: str, seed: int = 0) -> dict[str, Any]:
    """A %%durable cell creating the large object: first run (vs the plain cell) or replay."""
    shell = _shell()
    _run(shell, "from benchmarks.data import make, touch")
    code = f"obj = make({kind!r}, {nbytes}, {seed})"
    out: dict[str, Any] = {}
    if phase == "run":
        before = reset_peak()
        start = time.perf_counter()
        _run(shell, code)
        out["plain"] = time.perf_counter() - start
        out["plain_build"] = last_build()
        out["plain_peak"] = rss() - before
        _run(shell, "del obj")
        before = reset_peak()
        start = time.perf_counter()
        _run(shell, "%%durable big\n" + code)
        out["durable"] = time.perf_counter() - start
        out["durable_build"] = last_build()
        out["durable_peak"] = rss() - before
    else:
        before = reset_peak()
        start = time.perf_counter()
        _run(shell, "%%durable big\n" + code)
        out["replay"] = time.perf_counter() - start
        start = time.perf_counter()
        _run(shell, "touch(obj)")
        out["pass"] = time.perf_counter() - start
        out["peak"] = rss() - before
        engine = shell._kitteh_magic_state.engine
        ptr = engine.catalog.pointer(engine.session, "big")
        out["replayed"] = ptr is not None and ptr.last == "replayed"
    return out


# --- row 7: joblib.Memory ------------------------------------------------------------------


@task
def joblib_call(kind: str, nbytes: int, location: str, mmap: bool = False) -> dict[str, Any]:
    """A joblib.Memory-cached function producing the object: call it, then a first pass."""
    import joblib

    memory = joblib.Memory(location, verbose=0, mmap_mode="r" if mmap else None)
    cached = memory.cache(make)
    before = reset_peak()
    start = time.perf_counter()
    obj = cached(kind, nbytes, 0)
    call = time.perf_counter() - start
    start = time.perf_counter()
    touch(obj)
    passed = time.perf_counter() - start
    return {"call": call, "build": last_build(), "pass": passed, "peak": rss() - before}


def main(argv: list[str]) -> None:
    name, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    report(TASKS[name](**args))


if __name__ == "__main__":
    main(sys.argv[1:])
