"""Row 8h: ``km.map`` on a Dask cluster, per item, against ``client.map`` of the same function.

A local cluster of real processes, as a user runs one: ``dask scheduler`` and two ``dask
worker`` processes of two threads each from the venv's ``bin/``, on 127.0.0.1, started for the
group and stopped by pid (the test suite's ``tests/daskcluster.py``). A fresh process with
IPython's in-process shell and a store of its own
(``python -m benchmarks.dask_map dask_map ARGS``) is the kernel: its client is made in a plain
cell, and the cells reach it through a module (``cluster.CLIENT``), so no cell reads a client
from the namespace (a step's input is fingerprinted; a client's cost there is per cell, not per
item, and not this row's).

* 8h: ``%%durable --force`` cell ``res = km.map(f, range(N), client=cluster.CLIENT)`` (default
  ``concurrency=8``: at most 8 tasks on the cluster, taken as they complete, each result
  journaled) vs the plain cell ``res = client.gather(client.map(f, range(N), pure=False))`` of
  the same notebook function ``def f(i): return i * 2`` (every task at once, one gather). Cells
  run alternately; per item = median of the pairs' differences / N.
* 8h2: the same km.map cell, durable, with ``concurrency=N`` (every item on the cluster at once,
  as ``client.map`` has it): what is left is journaling and taking results in batches.
* 8h3 (informational): km.map with ``concurrency=8`` in a plain cell (no journal): the bounded
  fan-out's own cost.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

from benchmarks.common import ROOT, Row, Settings, fmt_time, fresh_dir, median, script

CLIENT: Any = None
"""The kernel's client (worker side), read by the cells as ``cluster.CLIENT``."""

SETUP = """\
import kitteh_magic as km
import benchmarks.dask_map as cluster


def f(i):
    return i * 2
"""
BASELINE = "res = cluster.CLIENT.gather(cluster.CLIENT.map(f, range({n}), pure=False))\n"
KM_MAP = "{magic}res = km.map(f, range({n}), concurrency={c}, client=cluster.CLIENT)\n"
DURABLE = "%%durable dask_map --force\n"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def run(settings: Settings, notes: list[str]) -> list[Row]:
    n, concurrency = 2_000, 8
    if importlib.util.find_spec("distributed") is None:
        return [Row("8h", "km.map on Dask, per item", "not run: distributed is not installed "
                    "(pip install -e '.[dask]')", "-", None, "", "(none)", None)]
    reps = 3 if settings.quick else 5
    sys.path.insert(0, str(ROOT / "tests"))
    from daskcluster import DaskCluster  # the test suite's real scheduler and workers

    cluster = DaskCluster()
    try:
        address = cluster.start()
        r = script(["-m", "benchmarks.dask_map", "dask_map", json.dumps(
            {"address": address, "workers": cluster.workers, "n": n, "reps": reps,
             "concurrency": concurrency})],
            env={"KITTEH_MAGIC_DIR": str(fresh_dir("dask-store"))}, name="dask_map")
    finally:
        cluster.stop()
    base = median(r["baseline"])
    rows = []
    for rid, key, label in (
            ("8h", "durable", f"`%%durable --force` cell `km.map(f, range({n:,}), "
                              f"client=client)` (concurrency={concurrency}, the default)"),
            ("8h2", "durable_all", f"the same with `concurrency={n:,}` (every item on the "
                                   "cluster at once, as `client.map` has it)"),
            ("8h3", "plain", f"`km.map(f, range({n:,}), client=client)` in a plain cell (no "
                             f"journal; concurrency={concurrency})")):
        cell, pairs = r[key], r[key + "_baseline"]
        per = median([c - b for c, b in zip(cell, pairs, strict=True)]) / n
        rows.append(Row(
            rid, f"km.map on Dask, per item: {label}",
            f"{_us(per)} per item (cell {fmt_time(median(cell))})",
            f"`client.gather(client.map(f, range({n:,}), pure=False))` {fmt_time(base)}",
            median(cell) / median(pairs), "x client.map", "(none)", None,
            f"local cluster: a scheduler and {cluster.workers} worker processes of "
            f"{cluster.nthreads} threads (`dask` CLI, 127.0.0.1); {reps} alternating pairs "
            f"against the baseline cell; per item = median of (cell - baseline) / {n:,}; "
            f"`def f(i): return i * 2`, a notebook function, pickled by value"
            + (f"; activities in the durable step's record: {r[key + '_journaled']:,}"
               if key != "plain" else "")))
    return rows


def dask_map(address: str, workers: int, n: int, reps: int, concurrency: int,
             ) -> dict[str, Any]:
    """Worker side of 8h: the three km.map cells, each in alternating pairs with the
    ``client.map`` baseline, in one in-process shell."""
    from distributed import Client

    from benchmarks.worker import _pairs, _run, _shell

    global CLIENT
    shell = _shell()
    client = CLIENT = Client(address)
    client.wait_for_workers(workers, timeout=90)
    _run(shell, SETUP)
    engine = shell._kitteh_magic_state.engine
    baseline = BASELINE.format(n=n)
    out: dict[str, Any] = {"baseline": []}
    for key, magic, c in (("durable", DURABLE, concurrency), ("durable_all", DURABLE, n),
                          ("plain", "", concurrency)):
        cell = KM_MAP.format(magic=magic, n=n, c=c)
        out[key], out[key + "_baseline"] = _pairs(shell, cell, baseline, reps, warmup=1)
        out["baseline"] += out[key + "_baseline"]
        assert shell.user_ns["res"] == [i * 2 for i in range(n)]
        if magic:
            pointer = engine.catalog.pointer(engine.session, "dask_map")
            out[key + "_journaled"] = pointer.activities if pointer is not None else 0
    client.close()
    return out


if __name__ == "__main__":
    from benchmarks.worker import TASKS, main

    # The cells import this module by name: let them find this very one, with its CLIENT.
    sys.modules.setdefault("benchmarks.dask_map", sys.modules[__name__])
    TASKS["dask_map"] = dask_map
    main(sys.argv[1:])
