"""Row 4: restoring the saved objects, ``Store.get_value`` vs ``pickle.load``.

Each restore runs in a fresh process (honest peak RSS: reset after the imports, read after the
first pass). "Restore + first pass" is the time to get the object back and sum every number in
it: kitteh_magic maps the blob lazily, so its pages load during the pass; pickle reads it all
first. Warm = the file is in the page cache (it was just written); cold = its pages were
dropped first (fsync + ``posix_fadvise(DONTNEED)``, checked with ``fincore``), so it is read
from the disk. O(1): ``get_value`` alone on a small and on the large array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import (
    Row,
    Settings,
    cached_fraction,
    evict,
    fmt_rate,
    fmt_size,
    fmt_time,
    fresh_dir,
    median,
    worker,
)
from benchmarks.saving import KINDS

RESTORE_BUDGET = 0.80
PEAK_BUDGET = 1.2


def _blob(store: str, ref: dict[str, Any]) -> Path:
    digest = ref["digest"]
    return Path(store) / "blobs" / digest[:2] / digest


def _measure(settings: Settings, kind: str, art: dict[str, Any], cold: bool
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[float | None]]:
    kitteh, plain, resident = [], [], []
    blob, pkl = _blob(art["store"], art["ref"]), Path(art["pickle"])
    for rep in range(settings.reps):
        order = ("kitteh", "pickle") if rep % 2 == 0 else ("pickle", "kitteh")
        for method in order:
            path = blob if method == "kitteh" else pkl
            if cold:
                evict(path)
                resident.append(cached_fraction(path))
            target = art["store"] if method == "kitteh" else art["pickle"]
            result = worker("restore", kind=kind, method=method, target=target, ref=art["ref"])
            (kitteh if method == "kitteh" else plain).append(result)
    return kitteh, plain, resident


def run(settings: Settings, artifacts: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    letters = iter("abcdefgh")
    for kind, label in KINDS:
        art = artifacts[kind]
        size = art["size"]
        for cold in (False, True) if kind == "array" else (False,):
            kitteh, plain, resident = _measure(settings, kind, art, cold)
            t_k = median([r["load"] + r["pass"] for r in kitteh])
            t_p = median([r["load"] + r["pass"] for r in plain])
            load_k = median([r["load"] for r in kitteh])
            load_p = median([r["load"] for r in plain])
            peak_k = median([r["peak"] for r in kitteh]) / size
            peak_p = median([r["peak"] for r in plain]) / size
            ratio = t_p / t_k
            cache = "cold (pages dropped" + (
                f", {max(x or 0 for x in resident):.0%} resident before)" if resident else ")"
            ) if cold else "warm page cache"
            rows.append(Row(
                f"4{next(letters)}", f"restore {fmt_size(size)} {label} + first full pass"
                f" ({'cold' if cold else 'warm'})",
                f"{fmt_time(t_k)} ({fmt_rate(size, t_k)}; get_value {fmt_time(load_k)})",
                f"pickle.load+pass {fmt_time(t_p)} (load {fmt_time(load_p)})", ratio,
                "x pickle throughput", "≥ 0.80x pickle", ratio >= RESTORE_BUDGET,
                f"{cache}; one fresh process per restore"))
            if not cold:
                rows.append(Row(
                    f"4{next(letters)}", f"peak memory of that restore + pass ({label})",
                    f"{peak_k:.2f}x the object", f"pickle.load {peak_p:.2f}x", peak_k,
                    "x object size", "≤ 1.2x object", peak_k <= PEAK_BUDGET,
                    "peak RSS (VmHWM, reset after imports) minus RSS before, incl. mapped pages"))
    # O(1): get_value alone, a small and the large array.
    small_store = fresh_dir("restore-small-store")
    small = worker("save", kind="array", nbytes=settings.small, method="kitteh",
                   target=str(small_store))
    art = artifacts["array"]
    small_t = worker("get_only", target=str(small_store), ref=small["ref"])
    big_t = worker("get_only", target=art["store"], ref=art["ref"])
    t_small, t_big = median(small_t["unverified"]), median(big_t["unverified"])
    ratio = t_big / t_small
    rows.append(Row(
        f"4{next(letters)}", f"`get_value` alone: {fmt_size(art['size'])} vs "
        f"{fmt_size(small['size'])} array, checksums off (O(1)?)",
        f"{fmt_time(t_big)} vs {fmt_time(t_small)}",
        f"size ratio {art['size'] / small['size']:.1f}x", ratio, "x time (big / small)",
        "O(1): ≤ 2x", ratio <= 2.0,
        f"warm; with the default verify_limit (buffers ≤ 256 MiB are checksummed on restore) "
        f"{fmt_time(median(big_t['default']))} vs {fmt_time(median(small_t['default']))}"))
    return rows
