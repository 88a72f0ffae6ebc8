"""The team store never lies and always heals (DESIGN §4.7, §4.14) on PostgreSQL: the kinds of
``test_store_heals.py``, ported to the rows of ``kitteh_magic.entries``, ``.blobs`` and
``.chunks`` and to a machine's local cache.

Every damage is met by a real kernel on a real server: a warning and one recompute that heals
(the run after replays), never wrong data, never a crash. A recompute takes its calls from the
step's kept journal, so the counting HTTP server proves nothing was paid twice.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from http_server import CountingServer
from kernel import Kernel
from test_team_store import (  # the fixtures machine, on, pg and server are used by name
    SCHEMA,
    SESSION,
    Machine,
    Pg,
    calls,
    cli,
    damaged,
    hits,
    kill_at,
    machine,
    no_local_store,
    on,
    pg,
    reload,
    server,
)
from test_team_store_cache import CHUNK_DAMAGE, EXPECTED, EXPECTED_VALUE, OUTPUTS

from kitteh_magic.store.frames import SIG_PREFIX

pytestmark = pytest.mark.kernel
__all__ = ["machine", "on", "pg", "server"]  # fixtures, imported to be found here



# -- documents and small frames in kitteh_magic.entries -----------------------------------------


def _tamper(doc: str | None) -> str:
    """Another document under the old signature line: valid JSON, a wrong signature."""
    assert doc is not None and doc.startswith(SIG_PREFIX), f"not a signed document: {doc!r}"
    signature, _, text = doc.partition("\n")
    body = json.loads(text)
    body["duration"] = 1e9 if body.get("duration") != 1e9 else 0.0
    return f"{signature}\n{json.dumps(body, separators=(',', ':'))}"


def _flip_frame(pg: Pg, like: str) -> int:
    return pg.execute(f"UPDATE {SCHEMA}.entries SET frame = set_byte(frame, length(frame) / 2,"
                      " get_byte(frame, length(frame) / 2) # 255) WHERE key LIKE %s"
                      " AND frame IS NOT NULL", like)


ENTRY_DAMAGE: dict[str, Callable[[Pg], int]] = {
    "record_tampered": lambda pg: sum(
        pg.execute(f"UPDATE {SCHEMA}.entries SET doc = %s WHERE key = %s", _tamper(doc), key)
        for key, doc in pg.docs("km1/rec/%")),
    "record_not_json": lambda pg: pg.execute(
        f"UPDATE {SCHEMA}.entries SET doc = '{{oops' WHERE key LIKE %s", "km1/rec/%"),
    "record_foreign_row": lambda pg: pg.execute(  # a row kitteh_magic never wrote
        f"UPDATE {SCHEMA}.entries SET doc = NULL, frame = '\\x80049500'::bytea"
        " WHERE key LIKE %s", "km1/rec/%"),
    "record_deleted": lambda pg: pg.execute(
        f"DELETE FROM {SCHEMA}.entries WHERE key LIKE %s", "km1/rec/%"),
    "value_flipped": lambda pg: _flip_frame(pg, "km1/val/%"),
    "value_truncated": lambda pg: pg.execute(
        f"UPDATE {SCHEMA}.entries SET frame = substring(frame from 1 for 20)"
        " WHERE key LIKE %s AND frame IS NOT NULL", "km1/val/%"),
    "value_deleted": lambda pg: pg.execute(
        f"DELETE FROM {SCHEMA}.entries WHERE key LIKE %s", "km1/val/%"),
}
WARNS = {"record_tampered", "record_not_json", "record_foreign_row", "value_flipped",
         "value_truncated", "value_deleted"}
"""Damage that must be reported; a record that is simply gone is a miss (a warning allowed)."""


@pytest.mark.parametrize("damage", sorted(ENTRY_DAMAGE))
def test_a_damaged_entry_row_heals_with_one_recompute(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path, damage: str) -> None:
    kernel = on(machine("A"))
    assert kernel.ok(calls("job")).text == "3"
    assert ENTRY_DAMAGE[damage](pg) > 0, f"{damage}: no row to damage (test is moot)"
    kernel.restart()
    reload(kernel, server)
    first = kernel.run(calls("job"))
    assert first.error is None and first.text == "3", first.error
    assert first.mark["state"] == "executed", first.marks
    assert "InternalWarning" not in first.stderr, first.stderr
    if damage in WARNS:
        assert damaged(first), f"no DamagedStoreWarning for {damage}: {first.stderr!r}"
    again = kernel.run(calls("job"))
    assert again.mark["state"] == "replayed", again.stderr
    assert hits(server) == [1, 1, 1], "the recompute made calls its kept journal holds"
    no_local_store(tmp_path)


POINTER_DAMAGE = {"not_json": "{oops", "field_missing": '{"step": "job"}', "json_list": "[1, 2]",
                  "null": None}


@pytest.mark.parametrize("damage", sorted(POINTER_DAMAGE))
def test_a_damaged_step_pointer_heals_with_one_run(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, damage: str) -> None:
    kernel = on(machine("A"))
    assert kernel.ok(calls("job")).text == "3"
    key = f"km1/ptr/{SESSION}/job"
    assert pg.execute(f"UPDATE {SCHEMA}.entries SET doc = %s WHERE key = %s",
                      POINTER_DAMAGE[damage], key) == 1
    first = kernel.run(calls("job"))
    assert first.error is None and first.text == "3"
    assert damaged(first), first.stderr
    status = kernel.run("%durable status")
    assert status.error is None and "job" in str(status.displays) + status.stdout
    assert kernel.run(calls("job")).replayed
    assert hits(server) in ([1, 1, 1], [2, 2, 2])  # replayed, or executed once: never more
    kernel.restart()
    reload(kernel, server)
    assert kernel.run(calls("job")).replayed


# -- rollback: rows written back are refused -------------------------------------------------


def test_a_record_written_back_after_a_forced_run_is_refused(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine], pg: Pg,
        tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    counter.write_text("x")
    kernel = on(machine("A"))
    kernel.ok(f"COUNTER = {str(counter)!r}")
    cell = textwrap.dedent("""\
        %%durable stamp
        import json, urllib.request
        with urllib.request.urlopen(f"{BASE}/item/0") as response:
            json.loads(response.read())
        n = len(open(COUNTER).read())
        n
        """)
    assert kernel.ok(cell).text == "1"
    old = pg.docs("km1/rec/%")
    assert len(old) == 1
    counter.write_text("xx")
    assert kernel.ok(cell.replace("%%durable stamp", "%%durable stamp --force")).text == "2"
    pg.put_docs(old)  # the old signed text, written back under its own key
    result = kernel.run(cell)
    assert result.text == "2", "the rolled-back record replayed its old value"
    assert not result.replayed
    assert damaged(result) and "rollback" in result.stderr, result.stderr


def test_a_journal_entry_written_back_after_a_forgetting_invalidate_is_refused(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg) -> None:
    kernel = on(machine("A"))
    kill_at(kernel, "journal-entry-written", calls("job"))
    old = pg.docs("km1/jrn/%")
    assert old, "the kill left no journal: test is moot"
    reload(kernel, server)
    kernel.ok("%durable invalidate job --forget-journal")
    assert pg.docs("km1/jrn/%") == []
    pg.put_docs(old)
    assert kernel.ok(calls("job")).text == "3"
    assert hits(server) == [2, 1, 1], "the written-back entry answered the first call"


# -- maintenance on a damaged team store ------------------------------------------------------


def test_maintenance_commands_report_damage_and_one_run_heals(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    kernel = on(machine("A"))
    assert kernel.ok(OUTPUTS).text == "1800000"
    assert kernel.ok(calls("job")).text == "3"
    CHUNK_DAMAGE["chunk_flipped"](pg)
    _flip_frame(pg, "km1/val/%")
    pg.execute(f"UPDATE {SCHEMA}.entries SET doc = '{{oops' WHERE key = %s",
               f"km1/ptr/{SESSION}/job")
    env = machine("cli").env

    def run(*args: str) -> tuple[int, str]:
        done = cli(*args, cwd=tmp_path, env=env)
        assert "Traceback" not in done.stderr and "a bug in kitteh_magic" not in done.stderr, (
            args, done.stderr)
        return done.returncode, done.stdout + done.stderr

    code, text = run("verify")
    assert code == 1 and "damaged" in text, text
    code, text = run("status", "--json")
    assert code == 0, text
    code, text = run("gc")
    assert code == 0, text
    kernel.restart(env={"KITTEH_MAGIC_CACHE": str(machine("B").cache)})
    reload(kernel, server)
    for cell in (OUTPUTS, calls("job")):
        assert kernel.run(cell).error is None
    assert kernel.value(EXPECTED) == EXPECTED_VALUE and kernel.value("total") == 3
    kernel.restart()
    reload(kernel, server)
    assert kernel.run(OUTPUTS).mark["state"] == "replayed"
    assert kernel.run(calls("job")).mark["state"] == "replayed"
    code, text = run("verify")
    assert code == 0 and "no damage found" in text, text
