"""Row 6: a 10-step notebook, first run vs Run All after a real kernel restart.

A real ipykernel through jupyter_client (``tests/kernel.py``). Ten ``%%durable`` steps doing
real numpy/pandas work (about 0.3-1 s each, a few hundred MB of outputs). Wall time is measured
client side from each execute request until the kernel is idle again, summed over the ten steps;
the setup cell (``%load_ext``, imports) runs in both and is reported apart. The replay restores
from a warm page cache (the store was just written), as after a restart on the same machine.
"""

from __future__ import annotations

import sys
import time

from benchmarks.common import ROOT, Row, Settings, bench_env, fmt_time, fresh_dir, median

sys.path.insert(0, str(ROOT / "tests"))
from kernel import Kernel  # type: ignore[import-not-found]

REPLAY_BUDGET = 0.05
SETUP = "%load_ext kitteh_magic\nimport numpy as np\nimport pandas as pd"


def steps(n: int) -> list[str]:
    """The ten cells; ``n`` is the length of the main random vector."""
    return [
        f"rng = np.random.default_rng(0)\nx = rng.standard_normal({n})",
        "df = pd.DataFrame({'a': x, 'g': (np.abs(x) * 1000).astype(np.int64) % 5000})\n"
        "df['b'] = np.cumsum(x)",
        "agg = df.groupby('g')['a'].agg(['mean', 'std', 'count'])",
        "q = np.quantile(x, np.linspace(0, 1, 1001))",
        f"srt = np.sort(x[:{n // 2}])",
        "roll = df['b'].rolling(500).mean().to_numpy()",
        "m = np.random.default_rng(1).standard_normal((1200, 1200))\n"
        "inv = np.linalg.inv(m @ m.T + np.eye(1200))",
        f"spec = np.abs(np.fft.rfft(x[:{2 ** (n.bit_length() - 2)}]))",
        "top = df.nlargest(10_000, 'a')",
        "summary = {'rows': len(df), 'groups': len(agg), 'q50': float(q[500]),\n"
        "           'top': float(top['a'].iloc[0]), 'inv': float(inv.trace())}\n"
        "print(summary)\nsummary",
    ]


def _run_all(kernel: Kernel, cells: list[str]) -> tuple[float, list[float], list[bool]]:
    start = time.perf_counter()
    kernel.ok(SETUP)
    setup = time.perf_counter() - start
    times, replayed = [], []
    for i, body in enumerate(cells):
        start = time.perf_counter()
        result = kernel.ok(f"%%durable s{i + 1}\n{body}", cell_id=f"cell-{i + 1}")
        times.append(time.perf_counter() - start)
        replayed.append(result.replayed)
    return setup, times, replayed


def run(settings: Settings, notes: list[str]) -> list[Row]:
    n = 4_000_000 if settings.quick else 16_000_000
    cells = steps(n)
    firsts, replays, setups = [], [], []
    per_step: list[list[float]] = []
    for _ in range(settings.reps):
        store = fresh_dir("notebook-store")
        env = {**bench_env(), "KITTEH_MAGIC_DIR": str(store)}
        kernel = Kernel(store.parent, env)
        try:
            setup1, first, replayed1 = _run_all(kernel, cells)
            kernel.restart()
            setup2, again, replayed2 = _run_all(kernel, cells)
        finally:
            kernel.shutdown()
        if any(replayed1) or not all(replayed2):
            raise RuntimeError(f"expected run then replay, got {replayed1} / {replayed2}")
        firsts.append(sum(first))
        replays.append(sum(again))
        setups.append((setup1, setup2))
        per_step.append(again)
        stored = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    t_first, t_replay = median(firsts), median(replays)
    ratio = t_replay / t_first
    slowest = max(range(10), key=lambda i: median([p[i] for p in per_step]))
    notes.append(
        "* **6**: per-step replay times (last run): "
        + ", ".join(f"s{i + 1} {fmt_time(t)}" for i, t in enumerate(per_step[-1]))
        + f"; setup cell {fmt_time(median([s[0] for s in setups]))} first, "
        f"{fmt_time(median([s[1] for s in setups]))} after the restart; store "
        f"{stored / 2**20:.0f} MB.")
    return [Row(
        "6", "10-step notebook: Run All after a kernel restart (replay)",
        f"{fmt_time(t_replay)}", f"first run {fmt_time(t_first)}", ratio, "x first run",
        "≤ 0.05x", ratio <= REPLAY_BUDGET,
        f"real kernel via jupyter_client, median of {settings.reps}; slowest replayed step "
        f"s{slowest + 1}; warm page cache")]
