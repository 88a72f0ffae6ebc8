"""Rows 10: the store shared in PostgreSQL against the embedded store (DESIGN §7, §9).

A throw-away PostgreSQL server (Debian's binaries, ``tests/pgserver.py``) on 127.0.0.1 holds the
team's store. Each measurement runs in a fresh interpreter (``python -m benchmarks.team TASK``):

* 10a: replaying a finished small step (whole ``run_cell`` in an in-process shell) with the
  store in PostgreSQL and the values in this process, against the same replay on the embedded
  store, in alternating blocks in one shell (``%durable store`` switches between them);
* 10b: the first restore of a large array on a new machine (an empty local cache: every chunk
  comes from the server into the cache file, then the array is mapped and one full pass is
  made over it) against the raw read throughput of the server: the same chunks fetched by
  psycopg in binary into memory and summed;
* 10c: the same restore once cached (mapped, O(1)) against the embedded store's restore;
* 10d: saving the array (into the cache and up to the server) against the embedded store.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    Row,
    Settings,
    fmt_rate,
    fmt_size,
    fmt_time,
    fresh_dir,
    median,
    report,
    script,
)

REPLAY_BUDGET = 2.0
FIRST_RESTORE_BUDGET = 0.5


def run(settings: Settings, notes: list[str]) -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests"))
    from pgserver import PgServer  # the test suite's throw-away server

    with PgServer() as server:
        url = server.database()
        work = fresh_dir("team")
        replay = script(["-m", "benchmarks.team", "replay", url, str(work),
                         str(settings.cell_reps)], name="team replay")
        big = script(["-m", "benchmarks.team", "restore", url, str(work), str(settings.big),
                      str(settings.reps)], name="team restore", timeout=1800)
    pg, embedded = replay["postgresql"], replay["embedded"]
    first, raw = big["first"], big["raw"]
    version = server.bin_dir.parent.name
    notes.append(f"10a: {replay['pairs']} replays of each store in alternating blocks of 10 "
                 f"(the first replay after a switch not counted), medians; PostgreSQL {version} "
                 "on 127.0.0.1 (TCP), the store's connection kept by the kernel's thread")
    notes.append(f"10b: {fmt_size(big['size'])} float64 array in {big['chunks']} chunks; first "
                 f"restore = fetch into the cache file + map + a full pass, median of "
                 f"{settings.reps} fresh caches; raw = the same chunks by psycopg (binary) + sum")
    return [
        Row("10a", "PostgreSQL store: replay of a finished small step, values cached",
            fmt_time(pg), f"embedded store {fmt_time(embedded)}", pg / embedded,
            "x embedded", "≤ 2x the embedded store", pg / embedded <= REPLAY_BUDGET),
        Row("10b", "PostgreSQL store: first restore on a new machine (+ one pass)",
            fmt_rate(big["size"], first), f"raw server read {fmt_rate(big['size'], raw)}",
            raw / first, "x raw read throughput", "≥ 0.5x raw read throughput",
            raw / first >= FIRST_RESTORE_BUDGET),
        Row("10c", "PostgreSQL store: restore once cached (mapped)", fmt_time(big["cached"]),
            f"embedded store {fmt_time(big['embedded_restore'])}",
            big["cached"] / big["embedded_restore"], "x embedded", "(none: O(1) like it)", None),
        Row("10d", "PostgreSQL store: saving the array (cache file + upload)",
            fmt_rate(big["size"], big["save"]),
            f"embedded store {fmt_rate(big['size'], big['embedded_save'])}",
            big["embedded_save"] / big["save"], "x embedded throughput", "(none)", None),
    ]


# -- the worker side ------------------------------------------------------------------------------


def _replay(url: str, work: Path, reps: int) -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)

    def run(code: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            result = shell.run_cell(code, store_history=True)
        if not result.success:
            raise RuntimeError(f"cell failed: {code!r}: {result.error_in_exec!r}")

    run("%load_ext kitteh_magic")
    cell = ("%%durable small_r\na_small = [i * i for i in range(50)]\n"
            "b_small = {'n': len(a_small), 's': 'x' * 100}\n")
    stores = {"embedded": str(work / "embedded"), "postgresql": url}
    for where in stores.values():
        run(f"%durable store {where}")
        run(cell)  # recorded
        for _ in range(20):
            run(cell)  # warm: connections, kept frames, imports
    # Blocks of 10 replays on one store, alternating stores: switching closes the store
    # (`%durable store` opens the new one), so the first replay of a block, which would pay
    # for connecting and for reading the value frames again, is not counted.
    times: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(max(reps // 10, 1)):
        for name, where in stores.items():
            run(f"%durable store {where}")
            run(cell)
            for _ in range(10):
                start = time.perf_counter()
                run(cell)
                times[name].append(time.perf_counter() - start)
    return {name: median(values) for name, values in times.items()} | {"pairs": reps}


def _restore(url: str, work: Path, size: int, reps: int) -> dict[str, Any]:
    import numpy as np
    import psycopg

    from kitteh_magic import locate
    from kitteh_magic.store import Store, open_store

    key = locate.key_file()  # the run's throw-away key (bench_env), as the replay task's
    array = np.random.default_rng(0).random(size // 8)
    embedded = Store(work / "embedded", key_file=key)
    start = time.perf_counter()
    ref = embedded.put_value(array)
    embedded_save = time.perf_counter() - start
    embedded.flush()
    start = time.perf_counter()
    float(embedded.get_value(ref).sum())  # type: ignore[attr-defined]
    embedded_restore_pass = time.perf_counter() - start
    start = time.perf_counter()
    embedded.get_value(ref)
    embedded_restore = time.perf_counter() - start
    embedded.close()
    team = open_store(url, key_file=key, cache=work / "cache-a")
    start = time.perf_counter()
    team.put_value(array)
    save = time.perf_counter() - start
    team.close()
    del array
    with psycopg.connect(url) as con:
        (names,), = con.execute("SELECT chunks FROM kitteh_magic.blobs WHERE digest = %s",
                                (ref["digest"],)).fetchall()

    def raw_read() -> float:
        started = time.perf_counter()
        total = 0
        with psycopg.connect(url, autocommit=True) as con, con.cursor(binary=True) as cur:
            for name in names:
                (data,), = cur.execute("SELECT data FROM kitteh_magic.chunks WHERE digest = %s",
                                       (name,)).fetchall()
                total += len(data)
        assert total >= size
        return time.perf_counter() - started

    first, raw, cached = [], [], []
    for rep in range(reps):
        raw.append(raw_read())
        machine = open_store(url, key_file=key, cache=work / f"cache-new-{rep}")
        start = time.perf_counter()
        float(machine.get_value(ref).sum())  # type: ignore[attr-defined]
        first.append(time.perf_counter() - start)
        machine.close()
        again = open_store(url, key_file=key, cache=work / f"cache-new-{rep}")
        start = time.perf_counter()
        again.get_value(ref)
        cached.append(time.perf_counter() - start)
        again.close()
    return {"size": size, "chunks": len(names), "first": median(first), "raw": median(raw),
            "cached": median(cached), "embedded_restore": embedded_restore,
            "embedded_restore_pass": embedded_restore_pass, "save": save,
            "embedded_save": embedded_save}


def main(argv: list[str]) -> None:
    command, url, work = argv[0], argv[1], Path(argv[2])
    if command == "replay":
        report(_replay(url, work, int(argv[3])))
    elif command == "restore":
        report(_restore(url, work, int(argv[3]), int(argv[4])))
    else:
        raise SystemExit(f"unknown task {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
