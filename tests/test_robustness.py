"""Crashes, several kernels, unsaveable values and damaged stores (DESIGN.md §4.6 to 4.9)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kernel import Kernel, runs

from kitteh_magic import errors

pytestmark = pytest.mark.kernel


def statuses(kernel: Kernel) -> dict[str, str]:
    report = json.loads(kernel.ok("%durable status --json").stdout)
    return {row["step"]: row["state"] for row in report["steps"]}


def edit_value_frames(store: Path, edit: Callable[[bytearray], None]) -> None:
    """Change every value frame in the store's index in place, as a bad disk or a hand would."""
    db = sqlite3.connect(store / "index" / "cache.db")
    rows = db.execute("SELECT rowid, value FROM Cache WHERE key LIKE 'km1/val/%'").fetchall()
    assert rows, "the step saved no value frames"
    for rowid, value in rows:
        frame = bytearray(value)
        edit(frame)
        db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(frame), rowid))
    db.commit()
    db.close()


def test_sigkill_mid_cell_then_resume(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    first = f"%%durable first\n{counter('first')}\nprepared = 'ready'\n"
    slow = (f"%%durable slow\n{counter('slow')}\nimport time\n"
            f"open({str(tmp_path / 'started')!r}, 'w').close()\ntime.sleep(60)\nslow_done = True\n")
    kernel.ok(first)
    msg = kernel.send(slow)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, "the slow cell never started"
        time.sleep(0.05)
    kernel.kill()
    del msg

    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    assert statuses(kernel) == {"first": "done", "slow": "interrupted"}
    kernel.ok(first)
    fast = slow.replace("time.sleep(60)", "time.sleep(0)")
    kernel.ok(fast)
    assert kernel.value("prepared") == "ready"
    assert (runs(tmp_path, "first"), runs(tmp_path, "slow")) == (1, 2)
    assert statuses(kernel) == {"first": "replayed", "slow": "done"}


def test_two_kernels_share_a_store(start_kernel: Callable[..., Kernel], tmp_path: Path,
                                   counter: Callable[[str], str]) -> None:
    one, two = start_kernel(), start_kernel()
    flag = tmp_path / "go"
    wait = (f"%%durable waiting\n{counter('waiting')}\nimport os, time\n"
            f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)\nshared = 'from one'\n")
    pending = one.send(wait)
    deadline = time.monotonic() + 30
    while statuses(two).get("waiting") != "running":
        assert time.monotonic() < deadline, "kernel two never saw the step running"
        time.sleep(0.1)
    # Both kernels write at once: separate steps, one store.
    for i in range(20):
        two.ok(f"%%durable two-{i}\nvalue_{i} = list(range({i}))\n")
    flag.touch()
    one.collect(pending).raise_for_error()
    assert statuses(two)["waiting"] == "done"
    two.ok(wait)   # the same step in the other kernel replays one's record
    assert two.value("shared") == "from one"
    assert runs(tmp_path, "waiting") == 1
    three = start_kernel()
    three.ok("%durable restore")
    assert three.value("value_19") == list(range(19))


def test_unpicklable_value_is_named_and_the_step_reruns_on_replay(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = (f"%%durable gen\n{counter('gen')}\nsquares = (i * i for i in range(5))\n"
            "kept = [1, 2]\n")
    first = kernel.ok(cell)
    assert "squares" in first.stderr and "generator" in first.stderr
    assert "UnpicklableWarning" in first.stderr
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok(cell)
    assert runs(tmp_path, "gen") == 2
    assert kernel.value("sum(squares)") == 30
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    restored = kernel.ok("%durable restore")
    assert "'squares'" in restored.stdout and "not saved" in restored.stdout
    assert kernel.value("kept") == [1, 2]


def test_damaged_store_warns_and_recomputes(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = f"%%durable data\n{counter('data')}\nnumbers = list(range(100))\n"
    kernel.ok(cell)
    kernel.restart()
    # Flip bytes in every stored value frame: the records must be refused, not unpickled.
    edit_value_frames(tmp_path / "store", lambda frame: frame.__setitem__(-5, frame[-5] ^ 0xFF))
    kernel.ok("%load_ext kitteh_magic")
    result = kernel.ok(cell)
    assert "DamagedStoreWarning" in result.stderr
    assert runs(tmp_path, "data") == 2
    assert kernel.value("sum(numbers)") == 4950
    kernel.ok(cell)  # rewritten: replays cleanly now
    assert runs(tmp_path, "data") == 2


def test_store_that_cannot_be_written_never_breaks_the_cell(
        start_kernel: Callable[..., Kernel], tmp_path: Path,
        counter: Callable[[str], str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store should be")
    kernel = start_kernel(KITTEH_MAGIC_DIR=str(blocker / "store"))
    result = kernel.ok(f"%%durable x\n{counter('x')}\nanswer = 42\nanswer\n")
    assert result.text == "42"
    assert runs(tmp_path, "x") == 1
    assert kernel.value("answer") == 42
    # One of kitteh_magic's warnings (not any warning: the counter's unclosed file is one too)
    # names the step, the store it could not open and what to do about it.
    ours = [message for category, message in re.findall(r"(\w+Warning): (.*)", result.stderr)
            if issubclass(getattr(errors, category, Warning), errors.KittehWarning)]
    assert len(ours) == 1, result.stderr
    [message] = ours
    assert "'x'" in message and str(blocker / "store") in message
    assert "$KITTEH_MAGIC_DIR" in message


def test_records_signed_with_another_key_are_refused(
        start_kernel: Callable[..., Kernel], tmp_path: Path,
        counter: Callable[[str], str]) -> None:
    cell = f"%%durable keyed\n{counter('keyed')}\nsecret = {{'a': 1}}\n"
    first = start_kernel()
    first.ok(cell)
    first.shutdown()
    other = start_kernel(KITTEH_MAGIC_KEY_FILE=str(tmp_path / "other-key"))
    result = other.ok(cell)
    assert "DamagedStoreWarning" in result.stderr and "signature" in result.stderr
    assert runs(tmp_path, "keyed") == 2
    assert other.value("secret") == {"a": 1}


def _blob_files(store: Path) -> list[Path]:
    return [p for p in (store / "blobs").rglob("*") if p.is_file()]


def test_truncated_blob_warns_and_recomputes(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = (f"%%durable array\n{counter('array')}\nimport numpy as np\n"
            "wide = np.arange(500_000)\n")
    kernel.ok(cell)
    kernel.restart()
    blobs = _blob_files(tmp_path / "store")
    assert len(blobs) == 1
    with open(blobs[0], "r+b") as blob:
        blob.truncate(blobs[0].stat().st_size // 2)
    kernel.ok("%load_ext kitteh_magic")
    result = kernel.ok(cell)
    assert "DamagedStoreWarning" in result.stderr and "truncated" in result.stderr
    assert runs(tmp_path, "array") == 2
    assert kernel.value("int(wide.sum())") == 124999750000


def test_record_from_a_future_format_is_not_trusted(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = f"%%durable future\n{counter('future')}\nanswer = 'now'\n"
    kernel.ok(cell)
    kernel.restart()
    edit_value_frames(tmp_path / "store", lambda frame: frame.__setitem__(4, 99))  # version byte
    kernel.ok("%load_ext kitteh_magic")
    result = kernel.ok(cell)
    assert "DamagedStoreWarning" in result.stderr and "version" in result.stderr
    assert runs(tmp_path, "future") == 2
    assert kernel.value("answer") == "now"


def test_disk_full_while_saving_keeps_the_result_and_saves_next_time(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    kernel.ok("%%durable warm-up\nready = True\n")
    kernel.ok("import errno, os\nreal_write = os.write\n"
              "def full(*args):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"
              "os.write = full")
    cell = (f"%%durable fill\n{counter('fill')}\nimport numpy as np\n"
            "filled = np.ones(300_000)\nfloat(filled.sum())\n")
    result = kernel.ok(cell)
    assert result.text == "300000.0"
    assert "StoreWriteWarning" in result.stderr and "No space left" in result.stderr
    assert not [p for p in (tmp_path / "store" / "tmp").iterdir()]
    states = statuses(kernel)
    assert states["fill"] == "invalidated"
    kernel.ok("os.write = real_write")
    kernel.ok(cell)
    kernel.ok(cell)
    assert runs(tmp_path, "fill") == 2
