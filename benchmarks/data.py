"""The objects the benchmarks save, restore and hash: random (incompressible) numbers."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

FRAME_COLUMNS = 8
"""Numeric columns of the DataFrame (6 float64, 2 int64), plus one small categorical column."""


def make_array(nbytes: int, seed: int = 0) -> np.ndarray[Any, Any]:
    """A float64 array of ``nbytes`` bytes."""
    return np.random.default_rng(seed).random(nbytes // 8)


def make_frame(nbytes: int, seed: int = 0) -> pd.DataFrame:
    """A DataFrame of about ``nbytes``: numeric columns and one small string (categorical) one."""
    rows = nbytes // (8 * FRAME_COLUMNS + 1)
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {f"f{i}": rng.random(rows) for i in range(6)}
    columns["i0"] = rng.integers(0, 1 << 40, rows)
    columns["i1"] = np.arange(rows, dtype=np.int64)
    columns["city"] = pd.Categorical.from_codes(rng.integers(0, 4, rows, dtype=np.int8),
                                                ["Oslo", "Lima", "Pune", "Kyiv"])
    return pd.DataFrame(columns)


BUILDS: list[float] = []
"""Seconds each :func:`make` call of this process took, so that a caller timing a whole cell or
cached call can subtract the work itself and keep the overhead (building 1 GB is noisy: page
faults)."""


HITS = [0]
"""Calls counted by row 8's functions (a module's state: not an input of the steps)."""

GATE: dict[str, Any] = {"at": None, "closed": False, "first": math.inf}
"""Row 8g's items from ``at`` on: when the first started (``perf_counter``), and whether they
block (a module's state, so the killed run and its resume are the same step version)."""


def gate(i: int) -> None:
    """Called by row 8g's item function: items before ``GATE["at"]`` pass at once; from it on,
    note when the first one started and, while the gate is closed, never return (the process
    is killed meanwhile, with those items unfinished and not journaled)."""
    at = GATE["at"]
    if at is None or i < at:
        return
    GATE["first"] = min(GATE["first"], time.perf_counter())
    if GATE["closed"]:
        threading.Event().wait()


def make(kind: str, nbytes: int, seed: int = 0) -> Any:
    start = time.perf_counter()
    obj = make_array(nbytes, seed) if kind == "array" else make_frame(nbytes, seed)
    BUILDS.append(time.perf_counter() - start)
    return obj


def last_build() -> float:
    """Seconds of the last :func:`make` call in this process (0 if it was never called)."""
    return BUILDS[-1] if BUILDS else 0.0


def nbytes_of(obj: Any) -> int:
    if isinstance(obj, pd.DataFrame):
        return int(obj.memory_usage(index=False, deep=False).sum())
    return int(obj.nbytes)


def touch(obj: Any) -> float:
    """A first full pass over the data (what a user's next cell would do): sum every number."""
    if isinstance(obj, pd.DataFrame):
        total = 0.0
        for name in obj.columns:
            column = obj[name]
            values = column.cat.codes.to_numpy() if name == "city" else column.to_numpy()
            total += float(values.sum())
        return total
    return float(obj.sum())


def buffers(obj: Any) -> list[memoryview]:
    """The raw data buffers of ``obj`` (what a raw hash or a raw write would go over)."""
    if isinstance(obj, pd.DataFrame):
        views: list[memoryview] = []
        for block in obj._mgr.blocks:
            values = block.values
            data = values.codes if hasattr(values, "codes") else values
            views.append(memoryview(np.ascontiguousarray(data)).cast("B"))
        return views
    return [memoryview(obj).cast("B")]
