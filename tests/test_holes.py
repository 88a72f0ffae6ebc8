"""Holes a mutation run found (issue 12), each closed by a test on a real kernel.

Every test here fails when one named break of ``scripts/mutants.py`` is applied and passes on the
code: the break's name is in the test's docstring. The store is damaged the way an attacker or a
bad disk would do it (the SQLite index and blob files, edited from outside the kernel), kernels
are restarted or SIGKILLed for real, and counters and a counting HTTP server say what ran.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, runs
from nbformat.v4 import new_code_cell, new_notebook

from kitteh_magic.steps.records import record_key
from kitteh_magic.store import Store

pytestmark = pytest.mark.kernel

FRAME_BUFFERS = slice(8, 12)
"""Where a value frame's header keeps its number of out-of-band buffers (``store/frames.py``)."""


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


def reload(kernel: Kernel, *setup: str) -> None:
    """Restart the kernel process and load the extension again, as a user does after a restart."""
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    for code in setup:
        kernel.ok(code)


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def statuses(kernel: Kernel) -> dict[str, dict[str, object]]:
    report = json.loads(kernel.ok("%durable status --json").stdout)
    return {row["step"]: row for row in report["steps"]}


def record_of(kernel: Kernel, step: str) -> str:
    """The store key of the record a step replays from (its pointer names it)."""
    key = kernel.value(f"_kitteh_engine_.catalog.pointer(_kitteh_engine_.session, {step!r}).key")
    return record_key(key)


# --- a step record is verified before it is trusted (DESIGN §4.7, §4.9) -----------------------


def _forge_under_old_signature(store_dir: Path, key: str, edit: Callable[[dict], None]) -> None:
    """Edit a record's JSON in the SQLite index and keep its signature line: what a hand
    without the signing key can do."""
    db = sqlite3.connect(store_dir / "index" / "cache.db")
    (raw,), = db.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
    signature, newline, text = raw.partition("\n")
    assert newline and signature.startswith("km1-hmac-sha256:"), "records are stored signed"
    doc = json.loads(text)
    edit(doc)
    db.execute("UPDATE Cache SET value = ? WHERE key = ?",
               (f"{signature}\n{json.dumps(doc, separators=(',', ':'))}", key))
    db.commit()
    db.close()


def _forge_unsigned(store_dir: Path, key: str, edit: Callable[[dict], None]) -> None:
    """Rewrite a record through the real Store API, unsigned (no key is needed for that)."""
    with Store(store_dir) as store:
        doc = store.get_json(key)
        assert doc is not None
        edit(doc)
        store.put_json(key, doc)


@pytest.mark.parametrize("forge", [_forge_under_old_signature, _forge_unsigned],
                         ids=["edited-under-old-signature", "rewritten-unsigned"])
def test_a_record_pointed_at_another_steps_value_is_refused(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str],
        forge: Callable[[Path, str, Callable[[dict], None]], None]) -> None:
    """Break ``record-signature``: a record read without its signature replays a value that
    belongs to another step (validly signed itself, so the value check alone cannot tell)."""
    cell_a = f"%%durable a\n{counter('a')}\nsecret = 'the value of step a'\n"
    cell_b = f"%%durable b\n{counter('b')}\nanswer = 'computed by b'\nanswer\n"
    kernel.ok(cell_a)
    kernel.ok(cell_b)
    key_a, key_b = record_of(kernel, "a"), record_of(kernel, "b")
    kernel.restart()
    with Store(tmp_path / "store") as store:
        doc_a = store.get_json(key_a)
        assert doc_a is not None
    stolen = doc_a["outputs"]["secret"]["ref"]

    def point_b_at_a(doc: dict) -> None:
        doc["outputs"]["answer"]["ref"] = stolen
        doc["value"]["ref"] = stolen

    forge(tmp_path / "store", key_b, point_b_at_a)
    kernel.ok("%load_ext kitteh_magic")
    result = kernel.ok(cell_b)

    assert "DamagedStoreWarning" in result.stderr and "signature" in result.stderr
    assert not result.replayed
    assert runs(tmp_path, "b") == 2
    assert kernel.value("answer") == "computed by b"
    assert result.text == "'computed by b'"
    again = kernel.ok(cell_b)  # the recompute rewrote the record: it replays cleanly
    assert again.replayed and "DamagedStoreWarning" not in again.stderr
    assert runs(tmp_path, "b") == 2


def test_a_journal_entry_pointed_at_another_value_is_refused(
        kernel: Kernel, tmp_path: Path) -> None:
    """Break ``journal-signature``: a journal entry read without its signature hands a call
    the result it was edited to point at (another step's validly signed value)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    kernel.ok("%%durable a\nsecret = 'the value of step a'\n")
    stolen = kernel.value("_kitteh_engine_.catalog.record(_kitteh_engine_.catalog.pointer("
                          "_kitteh_engine_.session, 'a').key).outputs['secret']['ref']")
    cell = textwrap.dedent(f"""\
        %%durable clock
        import os, time
        first = time.time()
        if not os.path.exists({str(go)!r}):
            open({str(ready)!r}, "w").close()
            while not os.path.exists({str(go)!r}):
                pass  # killed here, with the clock's reading journaled
        first
        """)
    kernel.send(cell)
    wait_for(ready)
    kernel.kill()
    go.touch()
    [key] = [k for k in _index_keys(tmp_path / "store")
             if k.startswith("km1/jrn/") and not k.endswith("#head")]

    def point_at_a(doc: dict) -> None:
        doc["result"] = stolen

    _forge_under_old_signature(tmp_path / "store", key, point_at_a)
    reload(kernel)
    result = kernel.ok(cell)

    assert "DamagedStoreWarning" in result.stderr and "journal entry" in result.stderr
    assert isinstance(kernel.value("first"), float)
    assert statuses(kernel)["clock"]["resumed"] == 0


def _index_keys(store_dir: Path) -> list[str]:
    db = sqlite3.connect(store_dir / "index" / "cache.db")
    keys = [key for (key,) in db.execute("SELECT key FROM Cache ORDER BY key")]
    db.close()
    return keys


# --- a finished step's journal is cleared (DESIGN §4.2, §4.3) ---------------------------------


def test_a_step_rerun_after_an_upstream_change_makes_its_calls_again(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``journal-version``: a completed step's kept journal hands its calls' old results
    to the execution of another version of the step (here: yesterday's ``time.time()``)."""
    stamped = (f"%%durable stamped\n{counter('stamped')}\nimport random, time\n"
               "stamp = (time.time(), random.random())\nlabelled = (base, stamp)\n")
    kernel.ok("%%durable base\nbase = 1\n")
    kernel.ok(stamped)
    first = kernel.value("stamp")
    reload(kernel)
    kernel.ok("%%durable base\nbase = 2\n")   # upstream changed: stamped must execute again
    kernel.ok(stamped)

    assert runs(tmp_path, "stamped") == 2
    stamp = kernel.value("stamp")
    assert stamp[0] > first[0] and stamp[1] != first[1]
    assert kernel.value("labelled[0]") == 2
    row = statuses(kernel)["stamped"]
    assert (row["state"], row["activities"], row["resumed"]) == ("done", 2, 0)


# --- lineage tokens stand for an object only while the name holds it (DESIGN §4.3) ------------


def test_a_plain_cell_rebinding_a_step_output_through_a_global_reruns_the_reader(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``lineage-identity``: the plain cell only names ``reload``; the token of ``data``
    survives it and must be refused because ``data`` is another object now."""
    kernel.ok("def reload():\n    global data\n    data = [10, 20, 30]\n")
    kernel.ok(f"%%durable load\n{counter('load')}\ndata = [1, 2, 3]\n")
    reader = f"%%durable total\n{counter('total')}\ntotal = sum(data)\ntotal\n"
    assert kernel.ok(reader).text == "6"
    kernel.ok("reload()")
    result = kernel.ok(reader)

    assert not result.replayed
    assert result.text == "60" and kernel.value("total") == 60
    assert (runs(tmp_path, "load"), runs(tmp_path, "total")) == (1, 2)


def test_a_plain_cell_mutating_a_replayed_output_reruns_the_reader(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``lineage-drop``: after a restart the replayed outputs carry tokens again; a plain
    cell that changes one in place must take its token away."""
    load = f"%%durable load\n{counter('load')}\ndata = [1, 2, 3]\n"
    reader = f"%%durable total\n{counter('total')}\ntotal = sum(data)\ntotal\n"
    kernel.ok(load)
    kernel.ok(reader)
    reload(kernel)
    assert kernel.ok(load).replayed and kernel.ok(reader).replayed
    kernel.ok("data.append(4)")
    result = kernel.ok(reader)

    assert not result.replayed and result.text == "10"
    assert (runs(tmp_path, "load"), runs(tmp_path, "total")) == (1, 2)


# --- array buffers are checked on restore (DESIGN §4.7) --------------------------------------


def _flip_last_buffer_byte(frame: bytearray) -> bool:
    """Flip the frame's last byte when it ends with an out-of-band buffer (array data, outside
    the stream's checksum and signature); frames without buffers are left alone."""
    if int.from_bytes(frame[FRAME_BUFFERS], "little") == 0:
        return False
    frame[-1] ^= 0x01
    return True


def test_altered_array_buffers_are_refused_inline_and_in_blob_files(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``buffer-checksums``: a bit flipped in array data (not in the pickle stream) comes
    back as a wrong number unless the buffer's checksum is checked."""
    small = (f"%%durable small\n{counter('small')}\nimport numpy as np\n"
             "small = np.arange(1_000, dtype='int64')\n")          # 8 KB: a row of the index
    large = (f"%%durable large\n{counter('large')}\nimport numpy as np\n"
             "large = np.arange(1_000_000, dtype='int64')\n")      # 8 MB: a mapped blob file
    kernel.ok(small)
    kernel.ok(large)
    kernel.restart()
    store = tmp_path / "store"
    db = sqlite3.connect(store / "index" / "cache.db")
    edited = 0
    for rowid, value in db.execute(
            "SELECT rowid, value FROM Cache WHERE key LIKE 'km1/val/%'").fetchall():
        frame = bytearray(value)
        if _flip_last_buffer_byte(frame):
            db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(frame), rowid))
            edited += 1
    db.commit()
    db.close()
    for path in (p for p in (store / "blobs").rglob("*") if p.is_file()):
        frame = bytearray(path.read_bytes())
        if _flip_last_buffer_byte(frame):
            path.write_bytes(frame)
            edited += 1
    assert edited == 2, "expected one array frame in the index and one blob file"
    kernel.ok("%load_ext kitteh_magic")

    for cell, name in ((small, "small"), (large, "large")):
        result = kernel.ok(cell)
        assert "DamagedStoreWarning" in result.stderr and "buffer" in result.stderr, name
        assert runs(tmp_path, name) == 2
    assert kernel.value("(int(small[-1]), int(small.sum()))") == (999, 499500)
    assert kernel.value("(int(large[-1]), int(large.sum()))") == (999_999, 499_999_500_000)


# --- DataFrames are fingerprinted by their data (DESIGN §4.3, §4.11) ---------------------------


def test_a_dataframe_with_new_numbers_of_the_same_shape_reruns_its_reader(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``dataframe-buffers``: a DataFrame's numbers live in out-of-band buffers, not in
    the pickle stream; a fingerprint that skips them calls yesterday's file today's."""
    csv = tmp_path / "prices.csv"
    read = f"import pandas as pd\nprices = pd.read_csv({str(csv)!r})\n"
    reader = f"%%durable total\n{counter('total')}\ntotal = int(prices['price'].sum())\ntotal\n"
    csv.write_text("price,qty\n1,10\n2,20\n3,30\n")
    kernel.ok(read)
    assert kernel.ok(reader).text == "6"
    reload(kernel)
    csv.write_text("price,qty\n4,10\n5,20\n6,30\n")   # same shape, columns and dtypes
    kernel.ok(read)
    result = kernel.ok(reader)

    assert not result.replayed and result.text == "15"
    assert runs(tmp_path, "total") == 2
    kernel.ok(reader)
    assert runs(tmp_path, "total") == 2   # and unchanged data still replays


# --- restart replay, from another angle: a SIGKILL after the step (DESIGN §4.1) ---------------


def test_a_step_finished_before_a_sigkill_replays_without_its_body_or_calls(
        start_kernel: Callable[..., Kernel], tmp_path: Path, counter: Callable[[str], str],
        server: CountingServer) -> None:
    """Break ``replay``: the kernel is killed (not restarted politely) after the step; its
    next run must restore names, output and value without executing the body or the call."""
    kernel = start_kernel()
    cell = textwrap.dedent(f"""\
        %%durable fetch
        {counter('fetch')}
        import json, urllib.request
        with urllib.request.urlopen({server.url + '/item/7'!r}) as response:
            item = json.loads(response.read())["item"]
        print('fetched', item)
        item * 6
        """)
    first = kernel.ok(cell)
    kernel.kill()
    reload(kernel)
    again = kernel.ok(cell)

    assert again.replayed
    assert (runs(tmp_path, "fetch"), server.hits["/item/7"]) == (1, 1)
    assert "fetched 7" in again.stdout and again.text == first.text == "42"
    assert kernel.value("item") == 7


def test_a_name_a_step_deleted_stays_deleted_when_the_notebook_replays(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``deleted-names``: replaying a step that deleted a name must delete it again, or
    the replayed notebook holds a name its plain run would not."""
    first = f"%%durable first\n{counter('first')}\nx = 1\nlabel = 'first'\n"
    second = f"%%durable second\n{counter('second')}\nx = x + 10\ndel label\n"
    kernel.ok(first)
    kernel.ok(second)
    reload(kernel)
    assert kernel.ok(first).replayed and kernel.ok(second).replayed

    assert kernel.value("x") == 11
    assert kernel.value("'label' in globals()") is False
    assert (runs(tmp_path, "first"), runs(tmp_path, "second")) == (1, 1)


def test_a_step_with_an_unsaveable_output_reruns_with_its_activities_replayed(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    """Break ``record-complete``: a step whose output could not be saved is executed again on
    replay (DESIGN §4.6), as planned rather than through an internal failure, and its journal
    is kept so that its activities are still replayed."""
    cell = (f"%%durable gen\n{counter('gen')}\nimport time\nstarted = time.time()\n"
            "squares = (i * i for i in range(5))\n")
    assert "UnpicklableWarning" in kernel.ok(cell).stderr
    stamp = kernel.value("started")
    reload(kernel)
    again = kernel.ok(cell)

    assert not again.replayed and runs(tmp_path, "gen") == 2
    assert "InternalWarning" not in again.stderr
    assert kernel.value("started") == stamp   # the clock was read from the journal
    assert kernel.value("sum(squares)") == 30


# --- journal identity, from another angle: another callee after a crash (DESIGN §4.4) --------


def test_another_callee_at_a_journaled_position_after_a_crash_is_refused(
        kernel: Kernel, tmp_path: Path) -> None:
    """Break ``journal-identity``: after a SIGKILL the same step version calls ``random.random``
    where ``time.time`` was journaled (what it calls depends on a file, not an input); the
    journaled clock must not become the random draw."""
    ready, go, choice = tmp_path / "ready", tmp_path / "go", tmp_path / "choice"
    choice.write_text("clock")
    cell = textwrap.dedent(f"""\
        %%durable draw
        import os, random, time
        how = open({str(choice)!r}).read()
        first = time.time() if how == "clock" else random.random()
        if not os.path.exists({str(go)!r}):
            open({str(ready)!r}, "w").close()
            while not os.path.exists({str(go)!r}):
                pass  # killed here, after the first activity
        second = random.random()
        """)
    kernel.send(cell)
    wait_for(ready)
    kernel.kill()
    go.touch()
    choice.write_text("draw")
    reload(kernel)
    result = kernel.run(cell)

    assert result.error is not None and result.error["ename"] == "NondeterminismError"
    message = result.error["evalue"]
    assert "'draw'" in message and "#1" in message and "--force" in message
    assert "time.time" in message and "random.Random.random" in message
    assert kernel.value("'first' in globals()") is False


# --- effects, from another angle: redo after a crash (DESIGN §4.2) ---------------------------


def test_an_effect_cut_by_a_crash_is_refused_then_redone_once(
        kernel: Kernel, tmp_path: Path) -> None:
    """Break ``effect-incomplete``: an effect that started and never finished is neither
    replayed as if it had returned nor run again until the user says ``redo``; then it runs
    exactly once more."""
    ready, go, sent = tmp_path / "ready", tmp_path / "go", tmp_path / "sent.txt"
    define = textwrap.dedent(f"""\
        import os, kitteh_magic as km
        @km.effect
        def send(text):
            with open({str(sent)!r}, "a") as out:
                out.write(text + "\\n")
            open({str(ready)!r}, "w").close()
            while not os.path.exists({str(go)!r}):
                pass  # killed here: the line is written, the effect never returned
            return len(text)
        """)
    cell = "%%durable mail\nreceipt = send('hello')\nreceipt"
    kernel.ok(define)
    kernel.send(cell)
    wait_for(ready)
    kernel.kill()
    go.touch()
    reload(kernel, define)

    refused = kernel.run(cell)
    assert refused.error is not None and refused.error["ename"] == "IncompleteEffectError"
    assert "%durable effect mail 1 redo" in refused.error["evalue"]
    assert sent.read_text() == "hello\n"
    assert "will run again" in kernel.ok("%durable effect mail 1 redo").stdout
    assert kernel.ok(cell).text == "5"
    assert sent.read_text() == "hello\nhello\n"
    assert kernel.ok(cell).replayed
    assert sent.read_text() == "hello\nhello\n"


# --- the runner, from another angle: a kernel killed from outside (DESIGN §4.2) ---------------


def test_the_runner_resumes_after_its_kernel_is_killed_from_outside(
        tmp_path: Path, key_file: Path, server: CountingServer) -> None:
    """Break ``runner-restart``: the OOM killer takes the runner's kernel half-way through a
    cell; the runner starts a new kernel, replays the finished step and resumes the cell from
    its journal, so no request is sent twice."""
    pid_file, go = tmp_path / "kernel.pid", tmp_path / "go"
    nb = new_notebook(cells=[
        new_code_cell(f"import urllib.request\nBASE = {server.url!r}\n"
                      "first = urllib.request.urlopen(f'{BASE}/item/1').read()"),
        new_code_cell(textwrap.dedent(f"""\
            import os
            second = urllib.request.urlopen(f'{{BASE}}/item/2').read()
            if not os.path.exists({str(go)!r}):
                with open({str(pid_file)!r}, "w") as out:
                    out.write(str(os.getpid()))
                while not os.path.exists({str(go)!r}):
                    pass  # killed here, between the two requests
            third = urllib.request.urlopen(f'{{BASE}}/item/3').read()
            len(first + second + third)""")),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "pipeline.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "KITTEH_MAGIC_KEY_FILE": str(key_file), "KITTEH_MAGIC_DIR": ""}
    runner = subprocess.Popen(
        [sys.executable, "-m", "kitteh_magic.cli", "run", str(path), "-q",
         "-o", str(tmp_path / "out.ipynb")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(pid_file, timeout=120)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        go.touch()
        stdout, stderr = runner.communicate(timeout=240)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()

    assert runner.returncode == 0, stdout + stderr
    assert "1 kernel restart," in stdout
    assert "1 step executed, 1 replayed" in stdout
    assert re.search(r"\b2 activities in executed steps, 1 of them taken from the journal",
                     stdout), stdout
    assert [server.hits[f"/item/{n}"] for n in (1, 2, 3)] == [1, 1, 1]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[-1]["data"]["text/plain"] == str(len(b'{"item": 1}') * 3)
