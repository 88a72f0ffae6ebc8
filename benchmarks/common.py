"""What every benchmark module shares: rows, budgets, timing, the work directory and workers.

A figure is always shown next to a baseline measured in the same run, as a ratio, so a slower
or busier machine moves both sides together. Timings are medians of repeated runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
GB = 2**30
MB = 2**20
RESULT_MARK = "KITTEH-BENCH-RESULT "


@dataclass
class Settings:
    """Sizes and repetitions of one run (``--quick`` shrinks both)."""

    quick: bool
    big: int
    """Bytes of the large array and DataFrame (1 GB, or 128 MB with --quick)."""
    small: int
    """Bytes of the small array of the O(1) restore row (100 MB, or 16 MB)."""
    reps: int
    """Repetitions of each large-object measurement (medians are reported)."""
    cell_reps: int
    """Repetitions of each cell-level timing (rows 1 and 2)."""

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(quick=True, big=128 * MB, small=16 * MB, reps=2, cell_reps=100)
        return cls(quick=False, big=GB, small=100 * MB, reps=3, cell_reps=300)


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is oriented so that its budget is a bound stated in the same words (see
    ``ratio_label``); ``ok`` is None when the row has no budget.
    """

    id: str
    what: str
    kitteh: str
    baseline: str
    ratio: float | None
    ratio_label: str
    budget: str
    ok: bool | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mark(self) -> str:
        return {True: "pass", False: "**MISS**", None: "-"}[self.ok]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Wall times (s) of ``reps`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fmt_time(seconds: float) -> str:
    """Seconds in the unit that reads best: µs, ms or s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_rate(nbytes: int, seconds: float) -> str:
    rate = nbytes / seconds / GB if seconds > 0 else float("inf")
    return f"{rate:.2f} GB/s"


def fmt_size(nbytes: float) -> str:
    return f"{nbytes / GB:.2f} GB" if nbytes >= GB else f"{nbytes / MB:.0f} MB"


# --- environment --------------------------------------------------------------------------


def bench_env() -> dict[str, str]:
    """The environment of every worker: a throw-away key and store, nothing of the user's."""
    WORK.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["KITTEH_MAGIC_KEY_FILE"] = str(WORK / "key")
    env["KITTEH_MAGIC_DIR"] = str(WORK / "default-store")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["IPYTHONDIR"] = str(WORK / "ipython")
    env.pop("JPY_SESSION_NAME", None)
    env["PYTHONHASHSEED"] = "0"
    return env


def install_env() -> None:
    """Apply :func:`bench_env` to this process too (in-process measurements)."""
    os.environ.update(bench_env())


def fresh_dir(name: str) -> Path:
    """An empty directory under ``benchmarks/.work/`` (removed first if present)."""
    path = WORK / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def settle() -> None:
    """Write back dirty pages so one measurement's writes do not slow the next one down."""
    os.sync()


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (a cold read next time); needs no root.

    ``POSIX_FADV_DONTNEED`` discards clean pages only, hence the fsync first.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_fraction(path: Path) -> float | None:
    """Fraction of ``path`` in the page cache, from util-linux ``fincore`` (None if absent)."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE",
                              str(path)], capture_output=True, text=True, check=True).stdout
        res, size = (int(x) for x in out.split()[:2])
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None
    return res / size if size else None


# --- workers ------------------------------------------------------------------------------


def worker(task: str, *, env: dict[str, str] | None = None, timeout: float = 600,
           **args: Any) -> dict[str, Any]:
    """Run ``benchmarks.worker <task>`` in a fresh interpreter and return its JSON result.

    A fresh process per measurement gives an honest peak RSS and no warm allocator.
    """
    return script(["-m", "benchmarks.worker", task, json.dumps(args)], env=env, timeout=timeout,
                  name=task)


def script(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600,
           name: str = "script", cwd: Path = ROOT) -> dict[str, Any]:
    """Run ``python ARGV...`` and return the result it reported with :func:`report`."""
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env={**bench_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
            return result
    raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def report(result: dict[str, Any]) -> None:
    """Worker side: hand ``result`` back to :func:`worker`."""
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)


def reset_peak() -> int:
    """Worker side: reset the peak RSS to the current RSS and return that (bytes)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss("VmRSS")


def rss(field_name: str = "VmHWM") -> int:
    """``VmHWM`` (peak) or ``VmRSS`` (current) of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field_name} in /proc/self/status")
