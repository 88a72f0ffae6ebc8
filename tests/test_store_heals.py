"""The store never lies and always heals (DESIGN §4.14, issue 8), in real kernels.

A journal belongs to one execution of one step version; a record is bound to its revision; a
damaged activity result is dropped and the call made again, once. The local HTTP server counts
every call; kills happen at exact commit points (``kitteh_magic/faults.py``).
"""

from __future__ import annotations

import os
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


@pytest.fixture
def kernel(start_kernel: Callable[..., Kernel], server: CountingServer) -> Kernel:
    k = start_kernel()
    k.ok(f"BASE = {server.url!r}")
    return k


def calls(name: str, n: int = 3, tail: str = "") -> str:
    """A step making ``n`` journaled HTTP calls; ``tail`` changes its code, not its calls."""
    return textwrap.dedent(f"""\
        %%durable {name}
        import json, urllib.request
        got = []
        for i in range({n}):
            with urllib.request.urlopen(f"{{BASE}}/item/{{i}}") as response:
                got.append(json.loads(response.read())["item"])
        total = sum(got){tail}
        total
        """)


def die_at(kernel: Kernel, point: str, cell: str) -> None:
    """Run ``cell`` in a kernel that SIGKILLs itself at ``point``, then restart it."""
    kernel.ok(f"import os\nos.environ['KITTEH_MAGIC_KILL_AT'] = {point!r}")
    kernel.send(cell)
    deadline = time.monotonic() + 60
    while kernel.manager.is_alive():
        assert time.monotonic() < deadline, f"the kernel never reached {point}"
        time.sleep(0.05)
    kernel.restart()


def hits(server: CountingServer, n: int = 3) -> list[int]:
    return [server.hits[f"/item/{i}"] for i in range(n)]


def rows(store: Path, like: str) -> list[tuple[str, object]]:
    with sqlite3.connect(store / "index" / "cache.db") as db:
        return list(db.execute("SELECT key, value FROM Cache WHERE key LIKE ?", (like,)))


def put_rows(store: Path, saved: list[tuple[str, object]]) -> None:
    with sqlite3.connect(store / "index" / "cache.db") as db:
        for key, value in saved:
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (value, key))
            if db.execute("SELECT changes()").fetchone()[0] == 0:
                db.execute("INSERT INTO Cache(key, raw, store_time, expire_time, access_time,"
                           " access_count, tag, size, mode, filename, value) VALUES"
                           " (?, 1, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)", (key, value))


# Kind 2: a journal left by a finished execution never serves another version --------------------
def test_a_leftover_journal_does_not_answer_an_edited_cell(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    die_at(kernel, "record-written", calls("job"))  # the record is in, the journal not cleared
    assert hits(server) == [1, 1, 1]
    assert rows(tmp_path / "store", "km1/jrn/%"), "the kill left no journal: test is moot"
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    result = kernel.ok(calls("job", tail=" + 0"))  # edited: another version of the step
    assert result.text == "3"
    assert hits(server) == [2, 2, 2], "the edited cell's calls came from the old journal"


def test_the_same_version_after_that_kill_replays_its_record(
        kernel: Kernel, server: CountingServer) -> None:
    die_at(kernel, "record-written", calls("job"))
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    result = kernel.ok(calls("job"))
    assert result.replayed and result.text == "3"
    assert hits(server) == [1, 1, 1]


def test_an_interrupted_execution_still_resumes(
        kernel: Kernel, server: CountingServer) -> None:
    die_at(kernel, "journal-entry-written", calls("job"))  # after the first call's entry
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    assert kernel.ok(calls("job")).text == "3"
    assert hits(server) == [1, 1, 1]


def test_an_interrupted_execution_of_an_edited_cell_starts_over(
        kernel: Kernel, server: CountingServer) -> None:
    die_at(kernel, "journal-entry-written", calls("job"))
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    assert kernel.ok(calls("job", tail=" * 1")).text == "3"
    assert hits(server) == [2, 1, 1]


# Kind 6: rollback is refused -------------------------------------------------------------------
def test_a_record_written_back_after_a_forced_run_is_refused(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    cell = textwrap.dedent("""\
        %%durable stamp
        import json, urllib.request
        with urllib.request.urlopen(f"{BASE}/item/0") as response:
            json.loads(response.read())
        n = len(open(COUNTER).read())
        n
        """)
    counter = tmp_path / "counter.txt"
    counter.write_text("x")
    kernel.ok(f"%load_ext kitteh_magic\nCOUNTER = {str(counter)!r}")
    assert kernel.ok(cell).text == "1"
    old = rows(store, "km1/rec/%")
    assert len(old) == 1
    counter.write_text("xx")
    assert kernel.ok(cell.replace("%%durable stamp", "%%durable stamp --force")).text == "2"
    put_rows(store, old)  # the old signed text, written back under its own key
    result = kernel.run(cell)
    assert result.text == "2", "the rolled-back record replayed its old value"
    assert not result.replayed
    assert "DamagedStoreWarning" in result.stderr and "rollback" in result.stderr


def test_an_entry_of_an_earlier_execution_written_into_a_later_one_is_refused(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    die_at(kernel, "journal-entry-written", calls("job"))
    earlier = [row for row in rows(store, "km1/jrn/%") if not row[0].endswith("#head")]
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}\n"
              "%durable invalidate job --forget-journal")
    die_at(kernel, "journal-entry-written", calls("job"))  # a new execution, killed alike
    assert hits(server) == [2, 0, 0]
    put_rows(store, earlier)  # its first entry replaced by the earlier execution's
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    result = kernel.ok(calls("job"))
    assert result.text == "3"
    assert "another execution" in result.stderr
    assert hits(server) == [3, 1, 1], "the earlier execution's entry answered the call"


def test_a_journal_entry_written_back_after_a_forgetting_invalidate_is_refused(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    die_at(kernel, "journal-entry-written", calls("job"))
    old = rows(store, "km1/jrn/%")
    assert old, "the kill left no journal: test is moot"
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}\n"
              "%durable invalidate job --forget-journal")
    assert not rows(store, "km1/jrn/%")
    put_rows(store, old)
    assert kernel.ok(calls("job")).text == "3"
    assert hits(server) == [2, 1, 1], "the written-back entry answered the first call"


# Kind 3: a damaged activity result heals by calling again --------------------------------------
BIG_RESULTS = textwrap.dedent("""\
    %%durable big
    import urllib.request
    import kitteh_magic as km

    @km.activity
    def fetch(i):
        return urllib.request.urlopen(f"{BASE}/item/{i}").read() * 200_000  # a blob

    blob = [fetch(i) for i in range(3)]
    size = sum(map(len, blob))
    size
    """)


def test_a_lost_large_activity_result_is_called_again_once(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    die_at(kernel, "journal-entry-written", BIG_RESULTS)
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    assert blobs, "the first result was not stored as a blob: test is moot"
    for path in blobs:
        path.unlink()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    first = kernel.run(BIG_RESULTS)
    assert first.error is None, first.error
    assert "DamagedStoreWarning" in first.stderr
    assert kernel.run(BIG_RESULTS).replayed
    assert hits(server) == [2, 1, 1]


# Kind 4: damaged metadata heals on the next run --------------------------------------------------
POINTER_DAMAGE = {
    "not_json": "{oops",
    "field_missing": '{"step": "job"}',
    "wrong_type": None,  # keys: a number instead of a list
    "json_list": "[1, 2]",
}


@pytest.mark.parametrize("damage", sorted(POINTER_DAMAGE))
def test_a_damaged_step_pointer_heals_with_one_run(
        kernel: Kernel, server: CountingServer, tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    kernel.ok("%load_ext kitteh_magic")
    assert kernel.ok(calls("job")).text == "3"
    (key, value), = rows(store, "km1/ptr/%")
    bad = POINTER_DAMAGE[damage]
    if bad is None:
        bad = str(value).replace('"keys":[', '"keys":7,"old":[')
    put_rows(store, [(key, bad)])
    first = kernel.run(calls("job"))
    assert first.error is None and first.text == "3"
    assert "DamagedStoreWarning" in first.stderr, first.stderr
    status = kernel.run("%durable status")
    assert status.error is None and "job" in str(status.displays)
    assert kernel.run(calls("job")).replayed
    assert hits(server) in ([1, 1, 1], [2, 2, 2])  # replayed, or executed once: never more
    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    assert kernel.run(calls("job")).replayed


def test_an_index_that_is_not_a_database_is_moved_aside(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    kernel.ok("%load_ext kitteh_magic")
    assert kernel.ok(calls("job")).text == "3"
    kernel.kill()
    for path in (store / "index").iterdir():
        path.write_bytes(b"garbage" * 4096)
    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    first = kernel.run(calls("job"))
    assert first.error is None and first.text == "3"
    assert "moved to" in first.stderr + first.stdout, first.stderr
    assert kernel.run(calls("job")).replayed
    assert hits(server) == [2, 2, 2]  # the journal was in the index too
    assert [p.name for p in store.iterdir() if p.name.startswith("index.damaged-")]


# Kinds 4 and 5: a damaged value heals with one recompute ----------------------------------------
def _blob_as_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


def _future_version(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4] = 99  # the frame format version byte
    path.write_bytes(bytes(data))


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


BLOB_DAMAGE = {"directory": _blob_as_directory, "future_format": _future_version,
               "flipped_byte": _flipped, "truncated": _truncated, "deleted": Path.unlink}

OUTPUTS = textwrap.dedent("""\
    %%durable many
    import json, urllib.request
    with urllib.request.urlopen(f"{BASE}/item/0") as response:
        base = json.loads(response.read())["item"]
    parts = {f"p{i}": bytes([i]) * 300_000 for i in range(6)}
    p0, p1, p2, p3, p4, p5 = (parts[k] for k in sorted(parts))
    total = base + sum(len(v) for v in parts.values())
    total
    """)


@pytest.mark.parametrize("damage", sorted(BLOB_DAMAGE))
def test_a_damaged_large_output_heals_with_one_recompute(
        kernel: Kernel, server: CountingServer, tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    kernel.ok("%load_ext kitteh_magic")
    assert kernel.ok(OUTPUTS).text == "1800000"
    blobs = sorted(p for p in (store / "blobs").rglob("*") if p.is_file())
    assert blobs, "no output was stored as a blob: test is moot"
    for path in blobs:
        BLOB_DAMAGE[damage](path)
    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    first = kernel.run(OUTPUTS)
    assert first.error is None and first.text == "1800000", first.error
    assert "DamagedStoreWarning" in first.stderr
    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    again = kernel.run(OUTPUTS)
    assert again.replayed, again.stderr
    assert kernel.value("p5[:2]") == b"\x05\x05"
    # The finished execution's journal is kept: the recompute took the call from it.
    assert server.hits["/item/0"] == 1, "the recompute made its call again"


# Kind 8: Ctrl-C while a step is saved ------------------------------------------------------------
def test_an_interrupt_while_saving_leaves_the_step_runnable(
        kernel: Kernel, server: CountingServer, tmp_path: Path) -> None:
    ready, calm = tmp_path / "ready", tmp_path / "calm"
    kernel.ok("%load_ext kitteh_magic\n" + textwrap.dedent(f"""\
        import os, time
        class Slow:
            def __reduce__(self):  # saving it takes long until the test calms it
                if not os.path.exists({str(calm)!r}):
                    open({str(ready)!r}, "w").close()
                    time.sleep(30)
                return (Slow, ())
        """))
    cell = "%%durable slow\nimport urllib.request\nurllib.request.urlopen(f'{BASE}/item/0')\n" \
           "thing = Slow()\n"
    msg = kernel.send(cell)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline, "saving never started"
        time.sleep(0.05)
    kernel.manager.interrupt_kernel()
    result = kernel.collect(msg)
    assert result.error is not None and result.error["ename"] == "KeyboardInterrupt"
    assert "saving step 'slow' was interrupted" in result.error["evalue"]
    status = kernel.ok("%durable status --json").stdout
    assert "slow" in status and '"running"' not in status, status
    calm.touch()
    assert not kernel.run(cell).replayed  # it runs again, the call from its journal
    assert kernel.run(cell).replayed
    assert hits(server, 1) == [1]


# Kind 7: large data is verified after an O(1) restore ---------------------------------------------
def test_large_data_altered_on_disk_is_caught_after_the_restore(
        kernel: Kernel, tmp_path: Path) -> None:
    store = tmp_path / "store"
    cell = "%%durable big\nimport numpy as np\na = np.arange(34_000_000, dtype=np.float64)\n"
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok(cell)  # 272 MB: above the 256 MiB limit of checksums on restore
    kernel.restart()
    [blob] = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    with blob.open("r+b") as handle:
        handle.seek(-4096, os.SEEK_END)
        handle.write(b"\x00" * 8)
    kernel.ok("%load_ext kitteh_magic")
    first = kernel.run(cell)
    assert first.replayed  # O(1): the restore itself checks sizes only
    deadline = time.monotonic() + 60
    while "invalidated" not in kernel.ok("%durable status --json").stdout:
        assert time.monotonic() < deadline, "the background check never invalidated the step"
        time.sleep(0.2)
    again = kernel.run(cell)
    assert not again.replayed and again.error is None
    assert kernel.value("float(a[-1])") == 33_999_999.0


# A validly signed record of the wrong shape (a writer's bug, another version) -------------------
RECORD_SHAPES: dict[str, Callable[[dict[str, object]], None]] = {
    "outputs_a_list": lambda doc: doc.__setitem__("outputs", [1, 2]),
    "fields_missing": lambda doc: [doc.pop(k) for k in ("key", "session", "step")],
    "imports_not_names": lambda doc: doc.__setitem__("imports", [3]),
    "another_key": lambda doc: doc.__setitem__("key", "0" * 32),
}


@pytest.mark.parametrize("shape", sorted(RECORD_SHAPES))
def test_a_signed_record_of_the_wrong_shape_heals_with_one_run(
        kernel: Kernel, server: CountingServer, tmp_path: Path, key_file: Path,
        shape: str) -> None:
    from kitteh_magic.store import Store

    kernel.ok("%load_ext kitteh_magic")
    assert kernel.ok(calls("job")).text == "3"
    kernel.kill()
    with Store(tmp_path / "store", key_file=key_file) as store:
        [key] = store.keys("km1/rec/")
        doc = store.get_json(key, signed=True)
        assert doc is not None
        RECORD_SHAPES[shape](doc)
        store.put_json(key, doc, sign=True)  # signed with the user's key: only its shape is bad
    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    first = kernel.run(calls("job"))
    assert first.error is None and first.text == "3"
    assert "DamagedStoreWarning" in first.stderr and "InternalWarning" not in first.stderr
    assert kernel.run(calls("job")).replayed
    assert hits(server) == [1, 1, 1], "the recompute made calls its kept journal holds"
