"""Row 7: peers doing the same work, each in fresh processes, against kitteh_magic's step path.

* ``joblib.Memory``: a cached function that builds the object. First call (build + save) vs the
  first run of the ``%%durable`` cell that builds it (rows 3c/3d); cached call in a new process
  vs the cell's replay in a new process (the "restart" case), each alone and plus a first full
  pass over the data. Also joblib at its best, ``mmap_mode="r"`` (read-only arrays).
* ``marimo.persistent_cache``: ``with mo.persistent_cache(name=...)`` raises
  ``ContextNotInitializedError`` outside a marimo runtime, so it runs where it works: a marimo
  app executed as a script (``python app.py``), twice (build + save, then load).
* ``dill.dump_session`` / ``load_session``: the whole ``__main__`` holding the object, saved in
  one process and loaded in a new one; compared with ``Store.put_value`` (row 3a/3b) and the
  step's replay in a new process.

Ratios are peer time / kitteh_magic time: above 1 means kitteh_magic is faster ("faster on
every row" is the budget). All warm page cache.
"""

from __future__ import annotations

import textwrap
from typing import Any

from benchmarks.common import (
    Row,
    Settings,
    fmt_size,
    fmt_time,
    fresh_dir,
    median,
    script,
    settle,
    worker,
)
from benchmarks.saving import KINDS

MARIMO_APP = '''\
import marimo

app = marimo.App()


@app.cell
def _():
    import time

    import marimo as mo

    from benchmarks.common import report
    from benchmarks.data import last_build, make, touch
    return last_build, make, mo, report, time, touch


@app.cell
def _(last_build, make, mo, report, time, touch):
    start = time.perf_counter()
    with mo.persistent_cache(name="bench"):
        obj = make({kind!r}, {nbytes}, 0)
    block = time.perf_counter() - start
    start = time.perf_counter()
    touch(obj)
    report({{"block": block, "build": last_build(), "pass": time.perf_counter() - start}})
    return (obj,)


if __name__ == "__main__":
    app.run()
'''

DILL_DUMP = '''
import time, dill
from benchmarks.common import report
from benchmarks.data import make
obj = make({kind!r}, {nbytes}, 0)
start = time.perf_counter()
dill.dump_session({path!r})
report({{"seconds": time.perf_counter() - start}})
'''

DILL_LOAD = '''
import time, dill
from benchmarks.common import report
from benchmarks.data import touch
import numpy, pandas
start = time.perf_counter()
dill.load_session({path!r})
loaded = time.perf_counter() - start
start = time.perf_counter()
touch(obj)
report({{"load": loaded, "pass": time.perf_counter() - start}})
'''


def _versus(row_id: str, what: str, kitteh: float, peer: float, peer_name: str,
            note: str = "") -> Row:
    ratio = peer / kitteh
    return Row(row_id, what, fmt_time(kitteh), f"{peer_name} {fmt_time(peer)}", ratio,
               "x (peer / kitteh)", "kitteh faster (> 1x)", ratio > 1.0, note)


def run(settings: Settings, artifacts: dict[str, Any], notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    reps = settings.reps
    ids = iter(f"7{c}" for c in "abcdefghijklmnopqrstuvwxyz")
    for kind, label in KINDS:
        art = artifacts[kind]
        size = fmt_size(art["size"])
        # kitteh: replay of the recorded step in a new process (+ first pass).
        replays = [worker("step", env={"KITTEH_MAGIC_DIR": art["step_store"]}, kind=kind,
                          nbytes=settings.big, phase="replay", seed=art["step_seed"])
                   for _ in range(reps)]
        if not all(r["replayed"] for r in replays):
            raise RuntimeError(f"the {kind} step did not replay")
        k_replay = median([r["replay"] for r in replays])
        k_full = median([r["replay"] + r["pass"] for r in replays])
        # joblib.Memory
        firsts, cached, cached_mm = [], [], []
        for _ in range(reps):
            location = str(fresh_dir(f"joblib-{kind}"))
            firsts.append(worker("joblib_call", kind=kind, nbytes=settings.big,
                                 location=location))
            settle()
            cached.append(worker("joblib_call", kind=kind, nbytes=settings.big,
                                 location=location))
            if kind == "array":
                cached_mm.append(worker("joblib_call", kind=kind, nbytes=settings.big,
                                        location=location, mmap=True))
        j_first = median([r["call"] - r["build"] for r in firsts])
        rows.append(_versus(next(ids), f"{size} {label}: first run, added to building it",
                            art["step_overhead"], j_first, "joblib.Memory first call",
                            "kitteh: `%%durable` cell (rows 3c/3d); both minus the build time "
                            "measured inside"))
        rows.append(_versus(next(ids), f"{size} {label}: load after restart",
                            k_replay, median([r["call"] for r in cached]),
                            "joblib.Memory cached call", "kitteh: replay of the cell in a new "
                            "process (mapped lazily)"))
        rows.append(_versus(next(ids), f"{size} {label}: load after restart + first pass",
                            k_full, median([r["call"] + r["pass"] for r in cached]),
                            "joblib.Memory cached call + pass"))
        if cached_mm:
            rows.append(_versus(next(ids), f"{size} {label}: load + first pass, joblib mmap",
                                k_full, median([r["call"] + r["pass"] for r in cached_mm]),
                                "joblib.Memory(mmap_mode='r')",
                                "joblib's arrays are then read-only; kitteh's are writable"))
        # marimo persistent_cache, in a marimo app run as a script
        app_dir = fresh_dir(f"marimo-{kind}")
        app = app_dir / "app.py"
        app.write_text(MARIMO_APP.format(kind=kind, nbytes=settings.big))
        m_first, m_load = [], []
        for rep in range(reps):
            if rep:
                cache = app_dir / "__marimo__"
                for path in sorted(cache.rglob("*"), reverse=True):
                    path.unlink() if path.is_file() else path.rmdir()
            m_first.append(script([str(app)], cwd=app_dir, name="marimo app"))
            settle()
            m_load.append(script([str(app)], cwd=app_dir, name="marimo app"))
        rows.append(_versus(next(ids), f"{size} {label}: first run, added to building it",
                            art["step_overhead"],
                            median([r["block"] - r["build"] for r in m_first]),
                            "marimo persistent_cache"))
        rows.append(_versus(next(ids), f"{size} {label}: load after restart + first pass",
                            k_full, median([r["block"] + r["pass"] for r in m_load]),
                            "marimo persistent_cache"))
        # dill sessions
        d_dump, d_load = [], []
        for _ in range(reps):
            path = str(fresh_dir(f"dill-{kind}") / "session.pkl")
            d_dump.append(script(["-c", textwrap.dedent(
                DILL_DUMP.format(kind=kind, nbytes=settings.big, path=path))], name="dill dump"))
            settle()
            d_load.append(script(["-c", DILL_LOAD.format(path=path)], name="dill load"))
        rows.append(_versus(next(ids), f"{size} {label}: save",
                            art["put_seconds"], median([r["seconds"] for r in d_dump]),
                            "dill.dump_session", "kitteh: `Store.put_value` (rows 3a/3b)"))
        rows.append(_versus(next(ids), f"{size} {label}: load after restart + first pass",
                            k_full, median([r["load"] + r["pass"] for r in d_load]),
                            "dill.load_session + pass"))
    notes.append("* **7**: marimo's `with mo.persistent_cache(...)` outside a marimo runtime "
                 "raises `ContextNotInitializedError`; it is measured inside a marimo app run "
                 "as a script, where it works.")
    return rows
