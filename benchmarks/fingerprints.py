"""Row 5: fingerprinting inputs, ``kitteh_magic.steps.fingerprint.fingerprint`` vs raw xxh3-128.

The baseline hashes the object's raw data buffers with ``xxhash.xxh3_128`` and nothing else: the
floor of any content hash. Both run in one fresh process over the same in-memory object
(median of repeated runs after one warm-up). The lineage path is
``Engine.input_fingerprint`` for a name that holds a durable step's output (a token lookup).
The write watch is off here (``KITTEH_MAGIC_WRITE_WATCH=0``): the repeated fingerprints of one
unwritten array would come from memory, and this row measures the hash itself (a first
fingerprint); what the watch saves is row 9.
"""

from __future__ import annotations

from benchmarks.common import GB, Row, Settings, fmt_rate, fmt_size, fmt_time, median, worker
from benchmarks.saving import KINDS

RATE_BUDGET = 5.0  # GB/s


def run(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    reps = max(5, settings.reps * 2)
    for n, (kind, label) in enumerate(KINDS):
        r = worker("fingerprints", env={"KITTEH_MAGIC_WRITE_WATCH": "0"}, kind=kind,
                   nbytes=settings.big, reps=reps)
        size = r["size"]
        t_f, t_x = median(r["fingerprint"]), median(r["xxh3"])
        rate = size / t_f / GB
        rows.append(Row(
            f"5{'ab'[n]}", f"fingerprint a {fmt_size(size)} {label}",
            f"{fmt_time(t_f)} ({fmt_rate(size, t_f)})",
            f"raw xxh3-128 {fmt_time(t_x)} ({fmt_rate(size, t_x)})", t_x / t_f,
            "x xxh3 throughput", "≥ 5 GB/s", rate >= RATE_BUDGET,
            f"in memory, median of {reps}"))
        if kind == "array":
            big, tiny = median(r["lineage_x"]), median(r["lineage_y"])
            rows.append(Row(
                "5c", f"lineage path: `input_fingerprint` of a step's {fmt_size(size)} output",
                f"{big * 1e6:.2f} µs", f"same for a 3-item list {tiny * 1e6:.2f} µs "
                f"(content hash: {fmt_time(t_f)})", big / tiny, "x (big / tiny)",
                "O(1): ≤ 2x", big / tiny <= 2.0))
    return rows
