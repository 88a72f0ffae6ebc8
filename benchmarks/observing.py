"""Row 9: state observation on a step whose inputs hold a large value (DESIGN §7).

A ``%%durable --force`` step reads a 1 GB step output (``m = touch(obj)``: a full pass, as a
real step would make) and is compared with the same plain cell in one fresh process. The
overhead is what deciding the step's outputs by observation costs (``steps/observe.py``): a
content fingerprint of every value the step could touch, after it runs (and before it, the
first time); a large buffer nobody wrote since its last digest is not hashed again
(``kitteh_magic/writewatch.py``). The observation alone is timed as well, and row 9c prices the
write watch: the first in-place write to every page of a watched 1 GB array.
"""

from __future__ import annotations

from benchmarks.common import Row, Settings, fmt_size, fmt_time, median, worker
from benchmarks.saving import KINDS

SHARE_BUDGET = 0.05
FLOOR_BUDGET = 0.100


def run(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    price: list[Row] = []
    reps = max(3, settings.reps)
    for n, (kind, label) in enumerate(KINDS):
        r = worker("observing", kind=kind, nbytes=settings.big, reps=reps)
        plain, durable, alone = median(r["plain"]), median(r["durable"]), median(r["observation"])
        over = max(durable - plain, 0.0)
        rows.append(Row(
            f"9{'ab'[n]}", f"state observation, step reading a {fmt_size(settings.big)} {label}",
            f"+{fmt_time(over)} over plain (observation alone {fmt_time(alone)}; first run "
            f"{fmt_time(median(r['first']))})", f"plain step {fmt_time(plain)}", over / plain,
            "x plain time", "≤ 5% of the step, or ≤ 100 ms",
            over <= SHARE_BUDGET * plain or over <= FLOOR_BUDGET,
            f"forced durable cell vs the plain cell, median of {reps}"))
        if "write_protected" in r:
            first, again = median(r["write_protected"]), median(r["write_unprotected"])
            price.append(Row(
                "9c", f"the price of 9a: a step writing all of its {fmt_size(settings.big)} "
                "input in place", f"first full write after a digest {fmt_time(first)}",
                f"the same write again {fmt_time(again)}", first / again, "x unwatched write",
                "none (informational)", None,
                "writewatch: the first write to each page after a digest takes a minor fault"))
    return rows + price
