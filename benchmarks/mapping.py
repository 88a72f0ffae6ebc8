"""Rows 8f-8g: ``km.map`` and thread-pool activities: journaling per item, and the resume.

Measured in fresh processes with IPython's in-process shell (``%load_ext kitteh_magic``), a
store of their own (the worker side is ``benchmarks/mapping_worker.py``):

* 8f1: ``km.map(f, range(N), concurrency=8)`` of a notebook function ``def f(i): return i * 2``
  in a ``%%durable --force`` cell (each item an activity on its own branch, journaled as it
  finishes) vs the same cell in ``--mode step`` (where km.map is a plain parallel map). Cells
  run alternately; per item = median of the pairs' differences / N.
* 8f2: the same for ``ThreadPoolExecutor(8).map(g, range(N))`` with ``g`` calling an
  ``@km.activity`` once per item (each item a branch of the hand-off).
* 8g: a durable cell mapping 10,000 items whose items from 5,000 on block; once the first
  5,000 are journaled the process SIGKILLs itself. A new process runs the same cell: the time
  from ``run_cell`` to the first live item is what the finished half costs to come back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import Row, Settings, fmt_time, fresh_dir, median, script

ITEM_BUDGET = 200e-6
RESUME_BUDGET = 1.0


def _worker(task: str, store: Path, **args: Any) -> dict[str, Any]:
    return script(["-m", "benchmarks.mapping_worker", task, json.dumps(args)],
                  env={"KITTEH_MAGIC_DIR": str(store)}, name=task)


def _writes(w: dict[str, Any]) -> str:
    return (f"the journal's {w['count']:,} writes (`Store.write_json`, one commit each) in one "
            f"more such cell: median {_us(w['median'])}, p99 {fmt_time(w['p99'])}, max "
            f"{fmt_time(w['max'])}, {fmt_time(w['sum'])} summed over the threads")


def _per_item(cell: list[float], base: list[float], n: int) -> float:
    """Median over the alternating pairs of (cell - baseline), per item."""
    return median([c - b for c, b in zip(cell, base, strict=True)]) / n


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def run(settings: Settings, notes: list[str]) -> list[Row]:
    n, concurrency = 2_000, 8
    reps = 7 if settings.quick else 15
    r = _worker("map_journal", fresh_dir("map-store"), n=n, reps=reps, concurrency=concurrency,
                profile=True)
    rows: list[Row] = []
    for rid, name, label in (
            ("8f1", "km_map", f"`km.map(f, range({n}), concurrency={concurrency})`, "
                              "`def f(i): return i * 2`"),
            ("8f2", "pool_map", f"`ThreadPoolExecutor({concurrency}).map(g, range({n}))`, "
                                "`g` calling an `@km.activity`")):
        cell, base = r[name], r[name + "_base"]
        per = _per_item(cell, base, n)
        ok = per <= ITEM_BUDGET and r[name + "_journaled"] == n
        rows.append(Row(
            rid, f"journaling per item: {label}",
            f"{_us(per)} per item (cell {fmt_time(median(cell))})",
            f"same cell in `--mode step` (not journaled) {fmt_time(median(base))}",
            median(cell) / median(base), "x step-mode cell", "≤ 200 µs per item", ok,
            f"`%%durable --force` cell vs `--mode step`, {reps} alternating pairs; per item = "
            f"median of (durable - step) / {n:,}; activities in the durable step's record: "
            f"{r[name + '_journaled']:,}; {_writes(r[name + '_writes'])}"))
        if not ok:
            notes.append(f"* **{rid}** missed; cProfile of 3 such cells, the cell's thread and "
                         f"the pool's merged (internal time):\n\n```\n{r[name + '_profile']}"
                         "\n```")
    rows.append(_resume(settings, notes))
    return rows


def _kill_resume(n: int, half: int, concurrency: int, rep: int, profile: bool = False,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One kill/resume pair, in a store of its own."""
    store = fresh_dir(f"map-resume-{rep}")
    killed = _worker("map_kill", store, n=n, half=half, concurrency=concurrency)
    resumed = _worker("map_resume", store, n=n, half=half, concurrency=concurrency,
                      killed=killed["pid"], profile=profile)
    return killed, resumed


def _resume(settings: Settings, notes: list[str]) -> Row:
    """8g: the median of kill/resume pairs."""
    n, half, concurrency = 10_000, 5_000, 8
    pairs = [_kill_resume(n, half, concurrency, rep) for rep in range(2 if settings.quick else 3)]
    replay = median([resumed["replay"] for _, resumed in pairs])
    live = median([killed["live"] for killed, _ in pairs])
    faithful = all(k["journaled"] == half and r["pending"] == half and r["resumed"] == half
                   and r["state_before"] == "running" and r["pid_before"] == k["pid"]
                   and not r["killed_alive"] and r["state"] == "done" and r["results_ok"]
                   for k, r in pairs)
    ok = replay <= RESUME_BUDGET and faithful
    if not ok:
        _, profiled = _kill_resume(n, half, concurrency, len(pairs), profile=True)
        notes.append(f"* **8g** missed (faithful kill and resume: {faithful}; the worker "
                     f"results: {pairs}); cProfile of one more resumed cell, the cell's thread "
                     f"(cumulative; the pass ends where the pool starts):\n\n```\n"
                     f"{profiled['profile']}\n```")
    first = pairs[0][1]
    return Row(
        "8g", f"resume of a {n:,}-item `km.map` killed half-way: the finished half comes back",
        f"{fmt_time(replay)} ({_us(replay / half)} per finished item, of which opening the "
        f"journal {fmt_time(median([r['journal_open'] for _, r in pairs]))}; whole cell "
        f"{fmt_time(median([r['cell'] for _, r in pairs]))}, of which the {n - half:,} live "
        f"items {fmt_time(median([r['rest'] for _, r in pairs]))})",
        f"the first run of that half, live and journaled {fmt_time(live)}", replay / live,
        "x the live half", "≤ 1 s", ok,
        f"a worker process SIGKILLed once its {half:,}th entry was written (items from "
        f"{half:,} on had blocked), then a new process running the same cell; timed from "
        "`run_cell` to the first live item's start: the cell's lookup, the journal's load, and "
        f"km.map's pass over all {n:,} items (replaying the finished ones, placing the rest); "
        f"median of {len(pairs)} kill/resume pairs; in each the journal held {first['pending']:,} "
        f"entries before the resume and {first['resumed']:,} came from it: "
        f"{'checked' if faithful else 'NOT SO in every pair (see the note)'}")
