"""Maintenance on a damaged store (issue 8, kinds 1 and 9; DESIGN.md §4.14).

A store is made once by really running steps in a kernel; each test damages a copy on disk, as a
killed kernel, a bad disk or a hand would, and runs ``kitteh-magic status/verify/gc/clear`` on
it the way a user does. Every command reports each damaged item in one line and carries on; gc
repairs what it meets, so a second ``verify`` is clean, and leaves no file of a dead writer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kernel import Kernel

from kitteh_magic import maintenance, status
from kitteh_magic.store import Store, blobs

pytestmark = pytest.mark.kernel

CELLS = {
    "small": "numbers = list(range(10))\n",
    "big": "import numpy as np\nwide = np.arange(500_000)\n",  # 4 MB: a blob file
    "both": "total = sum(numbers) + int(wide.sum())\ntotal\n",
}
MB = 2**20


@dataclass(frozen=True)
class Pristine:
    store: Path
    key: Path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    """A store whose three steps a kernel really ran (session 'default')."""
    base = tmp_path_factory.mktemp("pristine")
    made = Pristine(base / "store", base / "config" / "key")
    kernel = Kernel(base, {"KITTEH_MAGIC_DIR": str(made.store),
                           "KITTEH_MAGIC_KEY_FILE": str(made.key)})
    try:
        kernel.ok("%load_ext kitteh_magic")
        for name, code in CELLS.items():
            kernel.ok(f"%%durable {name}\n{code}")
    finally:
        kernel.shutdown()
    return made


@pytest.fixture
def store(pristine: Pristine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the pristine store, to damage."""
    monkeypatch.setenv("KITTEH_MAGIC_KEY_FILE", str(pristine.key))
    copy = tmp_path / "store"
    shutil.copytree(pristine.store, copy)
    return copy


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitteh_magic.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# -- damage, as disks, kills and hands leave it ---------------------------------------------------


def edit_rows(store: Path, like: str, edit: Callable[[str], str]) -> str:
    """Rewrite the text of the index rows whose key is LIKE ``like``; returns the first key."""
    db = sqlite3.connect(store / "index" / "cache.db")
    rows = db.execute("SELECT rowid, key, value FROM Cache WHERE key LIKE ? ORDER BY key",
                      (like,)).fetchall()
    assert rows, f"no row like {like!r}"
    for rowid, _, value in rows:
        db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (edit(value), rowid))
    db.commit()
    db.close()
    return str(rows[0][1])


def record_of(store: Path, step: str) -> str:
    db = sqlite3.connect(store / "index" / "cache.db")
    (key,), = db.execute("SELECT key FROM Cache WHERE key LIKE 'km1/rec/%' AND value LIKE ?",
                         (f'%"step":"{step}"%',)).fetchall()
    db.close()
    return str(key)


def dead_pid() -> int:
    """The pid of a process that ran and was waited for: nobody has it now."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def dead_writer_tmp(store: Path) -> str:
    """What a kernel killed while writing a large value leaves (the name its writer gave it)."""
    path = store / "tmp" / f"{'ab' * 16}.{dead_pid()}.0badf00d.tmp"
    path.write_bytes(b"\0" * 3 * MB)
    return ""


def empty_session(store: Path) -> str:
    return edit_rows(store, "km1/ses/%", lambda _: "{}")


def session_of_wrong_types(store: Path) -> str:
    return edit_rows(store, "km1/ses/%", lambda _: json.dumps(
        {"name": 5, "notebook": [], "created": "yesterday", "next_seq": "x"}))


def truncated_record(store: Path) -> str:
    return edit_rows(store, record_of(store, "small"), lambda text: text[:len(text) // 2])


def missing_blob(store: Path) -> str:
    [blob] = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    blob.unlink()
    return record_of(store, "big")


def empty_pointer(store: Path) -> str:
    return edit_rows(store, "km1/ptr/%/small", lambda _: "{}")


def pointer_of_wrong_types(store: Path) -> str:
    def edit(text: str) -> str:
        doc = json.loads(text)
        doc["keys"], doc["outputs"], doc["seq"] = doc["key"], {"numbers": 5}, "first"
        return json.dumps(doc)
    return edit_rows(store, "km1/ptr/%/both", edit)


def journal_entry_of_wrong_types(store: Path) -> str:
    key = "km1/jrn/default/both/00000000"
    with Store(store) as opened:
        opened.put_json(key, {"pos": "first", "callee": 3, "args": None})
    return key


DAMAGE = {
    "dead-writer-tmp": dead_writer_tmp,
    "empty-session": empty_session,
    "session-of-wrong-types": session_of_wrong_types,
    "truncated-record": truncated_record,
    "missing-blob": missing_blob,
    "empty-pointer": empty_pointer,
    "pointer-of-wrong-types": pointer_of_wrong_types,
    "journal-entry-of-wrong-types": journal_entry_of_wrong_types,
}

# Which commands name the damaged item (the key): status reads sessions and pointers only;
# clear drops a session's records and journals without reading them.
NAMED_BY = {
    "empty-session": {"status", "verify", "gc"},
    "session-of-wrong-types": {"status", "verify", "gc"},
    "truncated-record": {"verify", "gc"},
    "missing-blob": {"verify", "gc"},
    "empty-pointer": {"status", "verify", "gc", "clear"},
    "pointer-of-wrong-types": {"status", "verify", "gc", "clear"},
    "journal-entry-of-wrong-types": {"verify", "gc"},
}


COMMANDS = {"status": ["status"], "status-json": ["status", "--json"], "verify": ["verify"],
            "verify-repair": ["verify", "--repair"], "gc": ["gc"],
            "gc-trim": ["gc", "--max-size", "0"], "clear": ["clear", "--yes"]}


@pytest.mark.parametrize("variant", list(COMMANDS))
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_maintenance_commands_report_damage_and_carry_on(
        store: Path, tmp_path: Path, kind: str, variant: str) -> None:
    key = DAMAGE[kind](store)
    command, *options = COMMANDS[variant]

    result = cli(command, *options, store, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert all(line.startswith(f"kitteh-magic {command}: ") for line in
               result.stderr.splitlines()), result.stderr
    damaged = kind != "dead-writer-tmp"
    assert result.returncode == (1 if command == "verify" and damaged else 0), output
    if command in NAMED_BY.get(kind, ()):
        named = [line for line in output.splitlines() if repr(key) in line]
        assert len(named) == (2 if variant == "verify-repair" else 1), output  # found, repaired
        assert all("is damaged" in line or "is missing" in line for line in named)
    if variant == "verify-repair":
        assert result.stdout.splitlines()[-1] == ("1 damaged item: 1 repaired" if damaged
                                                  else "no damage found")
    if variant == "gc-trim":
        assert all(row["state"] == "invalidated" for row in json.loads(
            cli("status", "--json", store, cwd=tmp_path).stdout)[0]["steps"])
    if command == "clear":
        assert cli("status", store, cwd=tmp_path).stdout.splitlines()[0] == "no sessions"

    collected = cli("gc", store, cwd=tmp_path)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert list((store / "tmp").iterdir()) == []
    again = cli("verify", store, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "no damage found"), again.stdout
    shown = cli("status", store, "--json", cwd=tmp_path)
    assert shown.returncode == 0 and "damaged" not in shown.stderr, shown.stderr
    assert all(report["damaged"] == [] for report in json.loads(shown.stdout))


def flipped_value_frame(store: Path) -> str:
    """A bad disk: one byte of every small value frame in the index is flipped."""
    db = sqlite3.connect(store / "index" / "cache.db")
    rows = db.execute("SELECT rowid, value FROM Cache WHERE key LIKE 'km1/val/%'").fetchall()
    for rowid, value in rows:
        frame = bytearray(value)
        frame[-5] ^= 0xFF
        db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(frame), rowid))
    db.commit()
    db.close()
    return f"{len(rows)} damaged items"


def truncated_blob(store: Path) -> str:
    [blob] = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    os.truncate(blob, blob.stat().st_size // 2)
    return "1 damaged item"


@pytest.mark.parametrize(("damage", "invalidated"), [
    (flipped_value_frame, {"small", "big", "both"}),  # the small frames include every events list
    (truncated_blob, {"big"}),
])
def test_damaged_values_heal_on_the_next_run_or_at_once_with_repair(
        store: Path, tmp_path: Path, damage: Callable[[Path], str], invalidated: set[str]) -> None:
    """gc cannot see a value's bytes are bad (it reads no value); verify says which steps
    will run again, and ``verify --repair`` drops the values and invalidates those steps."""
    count = damage(store)
    for command in ("status", "gc"):
        result = cli(command, store, cwd=tmp_path)
        assert result.returncode == 0 and not result.stderr, result.stderr
    found = cli("verify", store, cwd=tmp_path)
    assert found.returncode == 1
    assert found.stdout.splitlines()[-1].startswith(f"{count}: ")
    assert "runs again on its next run" in found.stdout
    repaired = cli("verify", "--repair", store, cwd=tmp_path)
    assert repaired.returncode == 1
    assert repaired.stdout.splitlines()[-1] == f"{count}: {count.split()[0]} repaired"
    again = cli("verify", store, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "no damage found"), again.stdout
    states = {row["step"]: row["state"] for row in
              json.loads(cli("status", "--json", store, cwd=tmp_path).stdout)[0]["steps"]}
    assert {step for step, state in states.items() if state == "invalidated"} == invalidated


def test_a_journaled_result_that_is_gone_is_left_to_the_kernel(store: Path,
                                                               tmp_path: Path) -> None:
    """Dropping the entry would run an effect twice; the kernel reports it instead."""
    key = "km1/jrn/default/both/00000000"
    with Store(store) as opened:
        opened.put_json(key, {"pos": 0, "callee": "shop.buy", "args": "0" * 32, "effect": True,
                              "result": {"digest": "9" * 32, "size": 9, "kind": "blob",
                                         "type": "int"}})
    for _ in range(2):
        found = cli("verify", store, cwd=tmp_path)
        assert found.returncode == 1
        assert found.stdout.splitlines() == [
            f"journal document {key!r} is damaged (missing-blob): its value {'9' * 32} is gone; "
            "the step's next run makes that call again (an effect is reported as interrupted "
            "instead)",
            "1 damaged item: 1 heals on the next run of its step"]
        collected = cli("gc", store, cwd=tmp_path)
        assert collected.returncode == 0 and repr(key) not in collected.stdout


@pytest.mark.parametrize(("kind", "rerun"), [("truncated-record", "small"),
                                             ("missing-blob", "big"),
                                             ("empty-pointer", "small")])
def test_after_gc_one_run_heals(store: Path, tmp_path: Path, pristine: Pristine, kind: str,
                                rerun: str) -> None:
    """gc's repairs agree with the kernel: the step whose record it dropped runs again, the
    others replay, and the store is clean after that one run."""
    DAMAGE[kind](store)
    assert cli("gc", store, cwd=tmp_path).returncode == 0
    kernel = Kernel(tmp_path, {"KITTEH_MAGIC_DIR": str(store),
                               "KITTEH_MAGIC_KEY_FILE": str(pristine.key)})
    try:
        kernel.ok("%load_ext kitteh_magic")
        results = {name: kernel.ok(f"%%durable {name}\n{code}") for name, code in CELLS.items()}
        assert kernel.value("total") == 45 + 124999750000
    finally:
        kernel.shutdown()
    assert {name for name, result in results.items() if not result.replayed} == {rerun}
    again = cli("verify", store, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "no damage found"), again.stdout


def test_magics_report_damage_and_carry_on(store: Path, tmp_path: Path,
                                           pristine: Pristine) -> None:
    """``%durable status`` and ``%durable gc`` go through the same functions."""
    key = empty_pointer(store)
    session_of_wrong_types(store)
    kernel = Kernel(tmp_path, {"KITTEH_MAGIC_DIR": str(store),
                               "KITTEH_MAGIC_KEY_FILE": str(pristine.key)})
    try:
        kernel.ok("%load_ext kitteh_magic")
        status = kernel.ok("%durable status --json")
        report = json.loads(status.stdout)
        assert [row["step"] for row in report["steps"]] == ["big", "both"]
        assert [line for line in report["damaged"] if repr(key) in line]
        [table] = kernel.ok("%durable status").displays
        assert "damaged, skipped: step pointer" in table["data"]["text/html"]
        collected = kernel.ok("%durable gc").stdout
        assert repr(key) in collected and "km1/ses/default" in collected
    finally:
        kernel.shutdown()
    again = cli("verify", store, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "no damage found"), again.stdout


# -- temporary files of dead writers (kind 1) ------------------------------------------------------


def test_gc_removes_dead_writers_files_and_reports_the_bytes(store: Path) -> None:
    with Store(store) as opened:
        dead_writer_tmp(store)  # after the store was opened: opening may sweep too
        report = maintenance.gc(opened)
        left = status.session_status(opened, "default")["temporary"]
    assert report.temporary == 3 * MB and report.freed >= 3 * MB
    assert "3.0 MB of temporary files left by dead writers" in str(report)
    assert list((store / "tmp").iterdir()) == []
    assert left == {"size": 0, "abandoned": 0}


def test_status_counts_temporary_files(store: Path, tmp_path: Path) -> None:
    with Store(store) as opened:
        values = opened.values_size()
        (store / "tmp" / f"{'cd' * 16}.{os.getpid()}.0000beef.tmp").write_bytes(b"\0" * MB)
        dead_writer_tmp(store)
        aside = store / "index.damaged-20261130-120000-4242"  # as the store moves a bad index
        aside.mkdir()
        (aside / "cache.db").write_bytes(b"\0" * 2 * MB)
        report = status.session_status(opened, "default")
        whole = status.store_text(opened)
        on_disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    assert report["temporary"] == {"size": 4 * MB, "abandoned": 3 * MB}
    assert ("plus 4.0 MB of temporary files (3.0 MB left by dead writers: gc removes them)"
            in status.render_text(report).splitlines())
    assert whole.startswith(f"the store takes {on_disk / MB:.1f} MB on disk: "
                            f"{values / MB:.1f} MB of values, 4.0 MB of temporary files (3.0 MB")
    assert whole.endswith("2.0 MB of other files (damaged indexes moved aside, "
                          "index.damaged-*: delete them once not needed)")
    shown = cli("status", store, cwd=tmp_path).stdout.splitlines()
    assert shown[-1].startswith("the store takes ")


_WRITER = """
import sys, time
from pathlib import Path
from kitteh_magic.store import blobs
path = Path(sys.argv[1]) / f"{'cd' * 16}.{blobs._writer_name()}.00c0ffee.tmp"
path.write_bytes(b"half a value")
print(path.name, flush=True)
time.sleep(120)
"""


def test_sweep_spares_live_writers_and_takes_dead_ones(tmp_path: Path) -> None:
    """A live writer's file stays; once it is killed, its file goes at the next sweep, an hour
    early; a file naming a live pid with another start time (the pid was reused) goes too."""
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        name = writer.stdout.readline().strip()
        started_earlier = f"{int(time.time()) - 600}.{blobs._HOST}"
        (tmp_path / f"{'ef' * 16}.{writer.pid}.{started_earlier}.0000beef.tmp").write_bytes(b"x")
        assert blobs.sweep(tmp_path) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert blobs.sweep(tmp_path) == len(b"half a value")
    assert list(tmp_path.iterdir()) == []


class _SweepingParts(list[bytes]):
    """Parts of a value that sweep the store's tmp/ while the blob is half written."""

    def __init__(self, tmp: Path) -> None:
        super().__init__([b"x" * MB, b"y" * MB])
        self.tmp = tmp
        self.swept: int | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self[0]
        self.swept = blobs.sweep(self.tmp, max_age=0.0)  # even "old" files being written stay
        yield self[1]


def test_sweep_never_removes_a_file_this_process_is_writing(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "tmp").mkdir()
    files = blobs.BlobFiles(tmp_path / "blobs", tmp_path / "tmp", "machine")
    parts = _SweepingParts(tmp_path / "tmp")
    assert files.write("12" * 16, parts) == 2 * MB
    assert parts.swept == 0
    assert files.path("12" * 16).stat().st_size == 2 * MB


def test_gc_keeps_what_a_running_step_wrote_before_its_record(tmp_path: Path) -> None:
    """A kernel saving a step writes values, then the record, then the pointer: a gc from
    another process in between must not take them (nor the record), and takes them once the
    step is no longer running in a live kernel."""
    import psutil

    from kitteh_magic.steps.catalog import Catalog
    from kitteh_magic.steps.records import StepPointer, StepRecord, pointer_key

    with Store(tmp_path / "store", key_file=tmp_path / "key") as st:
        catalog = Catalog(st)
        started = time.time() - 1
        ptr = StepPointer(session="s", step="job", state="running", started=started,
                          pid=os.getpid(), host=status.HOST,
                          proc_start=psutil.Process().create_time())
        st.put_json(pointer_key("s", "job"), ptr.to_doc())
        small = st.put_value({"a": 1})
        big = st.put_value(b"x" * 2_000_000)
        catalog.put_record(StepRecord(key="k" * 32, session="s", step="job", code="",
                                      finished=time.time()))
        maintenance.gc(st)
        assert st.has_value(small) and st.has_value(big)
        assert catalog.record("k" * 32) is not None

        ptr.pid = dead_pid()  # the kernel died: nothing of it is in flight any more
        st.put_json(pointer_key("s", "job"), ptr.to_doc())
        maintenance.gc(st)
        assert not st.has_value(small) and not st.has_value(big)
        assert catalog.record("k" * 32) is None
