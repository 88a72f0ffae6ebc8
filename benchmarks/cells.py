"""Rows 1 and 2: what ``%%durable`` adds to a small cell, and replaying a small finished step.

Measured in one fresh process with IPython's in-process shell: ``shell.run_cell`` of a plain cell
(before ``%load_ext kitteh_magic``) is the baseline; then the same body under
``%%durable --force`` (lookup, execute and save every time), distinct first runs of new cells
(new code, new step, new outputs each time) and replays of a recorded step.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import Row, Settings, fmt_time, worker

OVERHEAD_BUDGET = 5e-3
REPLAY_BUDGET = 2e-3


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    r = worker("cells", reps=settings.cell_reps, profile=True)
    plain, forced, distinct = r["plain"], r["forced"], r["distinct"]
    rows = [
        Row("1a", "`%%durable --force` small cell (lookup + execute + save)",
            f"{fmt_time(forced)} (+{fmt_time(forced - plain)})", f"plain cell {fmt_time(plain)}",
            forced / plain, "x plain time", "≤ 5 ms over plain",
            forced - plain <= OVERHEAD_BUDGET, "in-process IPython shell, median of "
            f"{settings.cell_reps}"),
        Row("1b", "`%%durable` first run of a new cell (new code each time)",
            f"{fmt_time(distinct)} (+{fmt_time(distinct - r['plain_distinct'])})",
            f"plain new cell {fmt_time(r['plain_distinct'])}",
            distinct / r["plain_distinct"], "x plain time", "≤ 5 ms over plain",
            distinct - r["plain_distinct"] <= OVERHEAD_BUDGET,
            "also creates the step's pointer and session order"),
        Row("1c", "plain cell with the extension loaded (pre_run_cell hook)",
            f"{fmt_time(r['plain_loaded'])} (+{fmt_time(r['plain_loaded'] - plain)})",
            f"plain cell {fmt_time(plain)}", r["plain_loaded"] / plain, "x plain time",
            "(none; cost on every plain cell)", None),
        Row("2", "replay of a finished step with small outputs",
            fmt_time(r["replay"]), f"plain cell {fmt_time(plain)}", r["replay"] / plain,
            "x plain time", "≤ 2 ms", r["replay"] <= REPLAY_BUDGET,
            f"whole run_cell; IPython's own floor (`pass`) is {fmt_time(r['empty'])}"),
    ]
    return rows, {"profile_forced": r.get("profile_forced", ""),
                  "profile_replay": r.get("profile_replay", "")}
