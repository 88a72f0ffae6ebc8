"""Row 8: activities: journaling a live call, replaying one, the peer, the dispatcher's cost.

Measured in one fresh process with IPython's in-process shell (``%load_ext kitteh_magic``), a
store of its own:

* 8a: a ``%%durable --force`` cell calling ``@km.activity def act(i): return i`` N times (and
  ``time.time()``, a stdlib activity) vs the same cell calling an ``@km.inline`` function (and
  ``km.inline(time.time)``). Cells run alternately; per call = median of the pairs' differences
  / N. The difference is everything an activity adds: argument digest, pickling and saving the
  result, the signed journal entry, its commit, and at the end of the cell the journal's log in
  the record and its clearing.
* 8b: a cell that journals N calls and then raises (so the journal stays pending), run again:
  its N calls come from the journal. Baseline: the same failing cell with inline calls.
* 8c: ``joblib.Memory`` caching the same function, called N times with new arguments (first
  call) and again (cached call), plain Python in the same process. Ratio = peer / kitteh.
* 8d: a ~30-line pandas pipeline on 100k rows with a loop of 10,000 inline calls, as a plain
  cell, as ``%%durable --force --mode durable`` (calls rewritten through the dispatcher) and
  ``--mode step`` (not rewritten); and a loop of ``math.sqrt`` calls, durable vs step.
* 8e: ``classify`` of three callees, its cache hit every time (``timeit``, best of 5).
"""

from __future__ import annotations

from benchmarks.common import Row, Settings, fmt_time, fresh_dir, median, worker

LIVE_BUDGET = 100e-6
REPLAY_BUDGET = 50e-6


def _per_call(cell: list[float], base: list[float], n: int) -> float:
    """Median over the alternating pairs of (cell - baseline), per call."""
    return median([c - b for c, b in zip(cell, base, strict=True)]) / n


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def run(settings: Settings, notes: list[str]) -> list[Row]:
    n = 200
    reps = 7 if settings.quick else 15
    r = worker("activities", n=n, reps=reps, joblib_dir=str(fresh_dir("activities-joblib")),
               loop=100_000, pipeline_reps=3 if settings.quick else 5, profile=True,
               env={"KITTEH_MAGIC_DIR": str(fresh_dir("activities-store"))})
    rows: list[Row] = []

    live = _per_call(r["live"], r["live_base"], n)
    live_time = _per_call(r["live_time"], r["live_time_base"], n)
    replay = _per_call(r["replay"], r["replay_base"], n)
    for rid, label, per, cell, base in (
            ("8a1", "`@km.activity` function", live, r["live"], r["live_base"]),
            ("8a2", "`time.time()` (a stdlib activity)", live_time, r["live_time"],
             r["live_time_base"])):
        rows.append(Row(
            rid, f"activity journaling, live call, small result: {label}",
            f"{_us(per)} per call (cell {fmt_time(median(cell))})",
            f"same cell, inline calls {fmt_time(median(base))}", median(cell) / median(base),
            "x inline cell", "≤ 100 µs per call", per <= LIVE_BUDGET,
            f"`%%durable --force` cell of {n} calls, {reps} alternating pairs; per call = "
            "median of (cell - inline cell) / N"))
    replay_ok = replay <= REPLAY_BUDGET and r["replay_live_calls"] == 0
    rows.append(Row(
        "8b1", "replay of one activity from the journal",
        f"{_us(replay)} per call (cell {fmt_time(median(r['replay']))})",
        f"same failing cell, inline calls {fmt_time(median(r['replay_base']))}",
        median(r["replay"]) / median(r["replay_base"]), "x inline cell", "≤ 50 µs per call",
        replay_ok, f"{n} journaled calls, cell raises at its end (journal stays pending); "
        f"activities run live during the replays: {r['replay_live_calls']}; tracebacks not "
        "printed (both sides)"))

    hit, first = median(r["joblib_hit"]), median(r["joblib_first"])
    rows.append(Row(
        "8c1", "replay per call vs joblib.Memory cached call (same function)", _us(replay),
        f"joblib.Memory cached call {_us(hit)}", hit / replay, "x (peer / kitteh)",
        "kitteh faster (> 1x)", hit / replay > 1,
        f"joblib: plain Python calls, {n} arguments, median of {len(r['joblib_hit'])}"))
    rows.append(Row(
        "8c2", "live journaling per call vs joblib.Memory first call", _us(live),
        f"joblib.Memory first call {_us(first)}", first / live, "x (peer / kitteh)",
        "kitteh faster (> 1x)", first / live > 1,
        "joblib's first call: hash the arguments, run, pickle to its own directory"))

    pipe = {k: median(v) for k, v in r["pipeline"].items()}
    rewrite = pipe["durable"] - pipe["step"]
    rows.append(Row(
        "8d1", f"rewriting + dispatch on a pandas pipeline ({r['pipeline_calls']:,} inline "
        "calls in a loop): durable minus step mode",
        f"{rewrite * 1e3:+.2f} ms (durable {fmt_time(pipe['durable'])}, step "
        f"{fmt_time(pipe['step'])})", f"plain cell {fmt_time(pipe['plain'])}",
        rewrite / pipe["plain"], "x plain time (the rewriting's share)", "(none)", None,
        f"100k-row orders merged with 5k customers, groupbys, a loop of math.sqrt and "
        f"list.append; median of {len(r['pipeline']['plain'])}; step mode adds "
        f"{(pipe['step'] - pipe['plain']) * 1e3:+.2f} ms to the plain cell (lookup, "
        "fingerprints, save)"))
    loop = r["loop"]
    sqrt_d, sqrt_s = median(r["sqrt_durable"]), median(r["sqrt_step"])
    per_sqrt = _per_call(r["sqrt_durable"], r["sqrt_step"], loop)
    rows.append(Row(
        "8d2", "dispatcher cost per inline call (`math.sqrt` loop)",
        f"{per_sqrt * 1e9:.0f} ns per call (cell {fmt_time(sqrt_d)})",
        f"step mode (calls not rewritten) {fmt_time(sqrt_s)}, {sqrt_s / loop * 1e9:.0f} ns "
        "per iteration", sqrt_d / sqrt_s, "x step-mode cell", "(none)", None,
        f"{loop:,} calls; per call = median of (durable - step) / calls"))

    ns = r["classify_ns"]
    for rid, label in (("8e1", "math.sqrt"), ("8e2", "lst.append"), ("8e3", "df.sum")):
        rows.append(Row(
            rid, f"`classify({label})`, cache hit", f"{ns[label]:.0f} ns",
            f"dict.get (a cache's floor) {ns['dict.get']:.0f} ns", ns[label] / ns["dict.get"],
            "x dict.get", "(none)", None, "timeit, best of 5" if rid == "8e1" else ""))

    if not live <= LIVE_BUDGET:
        notes.append(f"* **8a1** missed; cProfile of 5 such cells ({n} activity calls each, "
                     f"cumulative):\n\n```\n{r['profile_live']}\n```")
    if not replay_ok:
        notes.append(f"* **8b1** missed; cProfile of 5 replays ({n} activity calls each, "
                     f"cumulative):\n\n```\n{r['profile_replay']}\n```")
    return rows

