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

    from kitteh_magic.steps.engine import Engine
    from kitteh_magic.steps.fingerprint import fingerprint

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


# --- row 9: state observation --------------------------------------------------------------


@task
def observing(kind: str, nbytes: int, reps: int) -> dict[str, Any]:
    """A step that reads a large step output: plain, durable (observed), and observation alone.

    The durable cell is forced (lookup, execute, observe, save every time); its overhead over
    the plain cell is mostly the state observation (one hash pass after the step, and one
    before it the first time, until lineage remembers the fingerprint).
    """
    from kitteh_magic.steps import observe

    shell = _shell()
    # touch is a local module's function, an activity by default (its argument digest would
    # be a second hash pass); a notebook's numpy/pandas calls are inline.
    _run(shell, "import kitteh_magic as km\nfrom benchmarks.data import make, touch\n"
                "touch = km.inline(touch)")
    _run(shell, f"%%durable big\nobj = make({kind!r}, {nbytes})")
    body = "m = touch(obj)"
    out: dict[str, Any] = {}
    out["first"] = timed(lambda: _run(shell, "%%durable stat --force\n" + body), 1, warmup=0)
    out["plain"] = timed(lambda: _run(shell, body), reps, warmup=1)
    out["durable"] = timed(lambda: _run(shell, "%%durable stat --force\n" + body), reps,
                           warmup=1)
    engine = shell._kitteh_magic_state.engine
    ns = engine.namespace

    def observation() -> None:
        watch = observe.Observation(ns, {"obj"}, [n for n in ns if not engine.hidden(n)],
                                    lambda n, v: None)
        watch.changed()

    out["observation"] = timed(observation, reps, warmup=1)
    if kind == "array":
        # What remembering costs a step that does write: the first write to each page after a
        # digest takes a minor fault (writewatch). A full in-place pass, protected vs not.
        from kitteh_magic.steps import fingerprint

        array = ns["obj"]
        protected, unprotected = [], []
        for _ in range(reps):
            fingerprint.fingerprint(array)
            protected.extend(timed(lambda: array.__imul__(1.0), 1, warmup=0))
            unprotected.extend(timed(lambda: array.__imul__(1.0), 1, warmup=0))
        out["write_protected"], out["write_unprotected"] = protected, unprotected
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


# --- row 8: activities ---------------------------------------------------------------------

ACTIVITY_SETUP = """\
import math
import time

import kitteh_magic as km


@km.activity
def act(i):
    return i


@km.inline
def same(i):
    return i


inline_time = km.inline(time.time)
# The count lives in a module: a notebook global the functions read would be an input, and a
# count that grows would make every run a new step version (whose journal starts afresh).
import benchmarks.data as _data


@km.activity
def act_counted(i):
    _data.HITS[0] += 1
    return i


@km.inline
def same_counted(i):
    _data.HITS[0] += 1
    return i
"""

PIPELINE_DATA = """\
import numpy as np
import pandas as pd

_rng = np.random.default_rng(0)
_n = 100_000
customers = pd.DataFrame({
    "customer_id": np.arange(5_000),
    "region": _rng.choice(["north", "south", "east", "west"], 5_000),
    "segment": _rng.choice(["retail", "pro", "public"], 5_000),
})
orders = pd.DataFrame({
    "order_id": np.arange(_n),
    "customer_id": _rng.integers(0, 5_000, _n),
    "month": _rng.integers(1, 13, _n),
    "price": _rng.uniform(1.0, 500.0, _n),
    "qty": _rng.integers(1, 20, _n),
    "discount": _rng.uniform(0.0, 0.3, _n),
})
"""

# A realistic analysis cell: vectorised pandas work, then a Python loop of 10,000 inline calls
# (5,000 math.sqrt and 5,000 list.append).
PIPELINE = """\
df = orders.merge(customers, on="customer_id", how="left")
df["revenue"] = df["price"] * df["qty"]
df["discounted"] = df["revenue"] * (1 - df["discount"])
df["log_revenue"] = np.log1p(df["revenue"])
df["big"] = df["revenue"] > df["revenue"].quantile(0.9)
by_region = df.groupby("region").agg(
    revenue=("revenue", "sum"), orders=("order_id", "count"), avg_qty=("qty", "mean"))
by_segment = df.groupby(["region", "segment"])["discounted"].sum().unstack(fill_value=0)
monthly = df.groupby("month")["revenue"].sum()
growth = monthly.pct_change().fillna(0)
top = df.nlargest(100, "revenue")[["order_id", "customer_id", "revenue"]]
cust = df.groupby("customer_id").agg(
    total=("revenue", "sum"), n=("order_id", "count")).reset_index()
cust["avg"] = cust["total"] / cust["n"]
cust = cust.merge(customers[["customer_id", "region"]], on="customer_id")
ranked = cust.sort_values("total", ascending=False).head(50)
z = (df["revenue"] - df["revenue"].mean()) / df["revenue"].std()
outliers = int((z.abs() > 3).sum())
share = by_region["revenue"] / by_region["revenue"].sum()
scores = []
for total in cust["total"].tolist():
    scores.append(math.sqrt(total))
summary = {
    "revenue": float(df["revenue"].sum()),
    "outliers": outliers,
    "mean_score": sum(scores) / len(scores),
    "top_region": str(share.idxmax()),
    "best_month": int(growth.idxmax()),
}
"""


def _pairs(shell: Any, a: str, b: str, reps: int, warmup: int = 2,
           runner: Callable[[Any, str], None] = _run) -> tuple[list[float], list[float]]:
    """Wall times of cells ``a`` and ``b`` run alternately (A B A B ...), so drift hits both."""
    for _ in range(warmup):
        runner(shell, a)
        runner(shell, b)
    ta, tb = [], []
    for _ in range(reps):
        for code, times in ((a, ta), (b, tb)):
            start = time.perf_counter()
            runner(shell, code)
            times.append(time.perf_counter() - start)
    return ta, tb


def _run_failing(shell: Any, code: str) -> None:
    result = shell.run_cell(code, store_history=True)
    if not isinstance(result.error_in_exec, ValueError):
        raise RuntimeError(f"cell should end with its ValueError: {code[:200]!r}: "
                           f"{result.error_in_exec or result.error_before_exec!r}")


@task
def activities(n: int, reps: int, joblib_dir: str, loop: int, pipeline_reps: int,
               profile: bool = False) -> dict[str, Any]:
    """Activity journaling and replay, joblib.Memory on the same function, the dispatcher."""
    import math
    import timeit

    import joblib
    import pandas as pd

    from kitteh_magic.activities.classify import classify

    shell = _shell()
    _run(shell, ACTIVITY_SETUP)
    out: dict[str, Any] = {"n": n}
    loop_of = "%%durable {step} --force\nfor i in range({n}):\n    r = {call}\n".format

    # 8a: live journaling, a marked activity and a stdlib one, vs the same cell with inline calls
    inline_cell = loop_of(step="inline_calls", n=n, call="same(i)")
    for name, call in (("live", "act(i)"), ("live_time", "time.time()")):
        base = inline_cell if name == "live" else loop_of(step="inline_time", n=n,
                                                          call="inline_time()")
        cell, plain = _pairs(shell, loop_of(step=name, n=n, call=call), base, reps)
        out[name], out[name + "_base"] = cell, plain
    if profile:
        out["profile_live"] = _profile(lambda: _run(shell, loop_of(step="live", n=n,
                                                                   call="act(i)")), 5, top=30)

    # 8b: replay from a pending journal: the cell raises at its end, so no record replaces it
    shell.showtraceback = lambda *a, **k: None  # the same traceback on both sides: not timed
    failing = "%%durable {step}\nfor i in range({n}):\n    r = {call}\nraise ValueError('end')\n"
    replayed = failing.format(step="replayed", n=n, call="act_counted(i)")
    _run_failing(shell, replayed)  # journals the n calls
    from benchmarks.data import HITS

    hits = HITS[0]
    cell, plain = _pairs(shell, replayed,
                         failing.format(step="replayed_base", n=n, call="same_counted(i)"),
                         reps, runner=_run_failing)
    out["replay"], out["replay_base"] = cell, plain
    # Every run of the replayed cell ran none of its activities (the inline side ran them all).
    out["replay_live_calls"] = HITS[0] - hits - n * (reps + 2)
    if profile:
        out["profile_replay"] = _profile(lambda: _run_failing(shell, replayed), 5, top=30)
    del shell.showtraceback

    # 8c: joblib.Memory on the same function, plain Python calls
    memory = joblib.Memory(joblib_dir, verbose=0)
    cached = memory.cache(_identity)
    first, hit = [], []
    for rep in range(max(3, reps // 3)):
        args = range(rep * n, (rep + 1) * n)
        start = time.perf_counter()
        for i in args:
            cached(i)
        first.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        for i in args:
            cached(i)
        hit.append((time.perf_counter() - start) / n)
    out["joblib_first"], out["joblib_hit"] = first, hit

    # 8d: a pandas pipeline with many inline calls: plain vs durable (rewritten) vs step mode
    _run(shell, PIPELINE_DATA)
    variants = {"plain": PIPELINE,
                "durable": "%%durable pipeline_d --force --mode durable\n" + PIPELINE,
                "step": "%%durable pipeline_s --force --mode step\n" + PIPELINE}
    for code in variants.values():
        _run(shell, code)  # warm-up (the first saves of the outputs)
    pipe: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(pipeline_reps):
        for key, code in variants.items():
            start = time.perf_counter()
            _run(shell, code)
            pipe[key].append(time.perf_counter() - start)
    out["pipeline"] = pipe
    out["pipeline_calls"] = len(shell.user_ns["scores"]) * 2
    sqrt_loop = ("%%durable {step} --force --mode {mode}\n"
                 "for i in range({loop}):\n    math.sqrt(i)\n")
    durable, step = _pairs(shell, sqrt_loop.format(step="sqrt_d", mode="durable", loop=loop),
                           sqrt_loop.format(step="sqrt_s", mode="step", loop=loop),
                           max(3, pipeline_reps))
    out["sqrt_durable"], out["sqrt_step"], out["loop"] = durable, step, loop

    # 8e: the classifier's cache, hit every time
    lst: list[int] = []
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    number = 200_000
    table = {math.sqrt: 1}
    callees = {"math.sqrt": math.sqrt, "lst.append": lst.append, "df.sum": frame.sum}
    classify_ns: dict[str, float] = {}
    for label, fn in callees.items():
        classify(fn)
        timer = timeit.Timer("classify(fn)", globals={"classify": classify, "fn": fn})
        classify_ns[label] = min(timer.repeat(5, number)) / number * 1e9
    timer = timeit.Timer("get(key)", globals={"get": table.get, "key": math.sqrt})
    classify_ns["dict.get"] = min(timer.repeat(5, number)) / number * 1e9
    out["classify_ns"] = classify_ns
    return out


def _identity(i: int) -> int:
    """The function of rows 8a-8c, for joblib.Memory (module level, so joblib can hash it)."""
    return i


def main(argv: list[str]) -> None:
    name, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    report(TASKS[name](**args))


if __name__ == "__main__":
    main(sys.argv[1:])
