"""Calls that must stay activities, or stay usable, in a durable cell (DESIGN §5).

* Classification is by the called object: every entry of the lists, resolved to what it names,
  classifies as its list says (``asyncio.sleep`` is ``asyncio.tasks.sleep``; in a kernel
  ``input`` and ``getpass.getpass`` are ipykernel's methods).
* A DB-API cursor stays a cursor: statements run once and their rows are journaled, so a resumed
  cell neither repeats a write nor needs the database for what it read.
"""

from __future__ import annotations

import builtins
import getpass
import importlib
import json
import os
import sqlite3
import sys
import textwrap
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kernel import Kernel, Result

from kitteh_magic.activities import JournaledCursor, activity, classify, configure, rules
from kitteh_magic.activities.dispatch import StepActivities, call
from kitteh_magic.activities.journal import Journal
from kitteh_magic.errors import KittehWarning, UnpicklableError
from kitteh_magic.store import Store


@pytest.fixture(autouse=True)
def default_lists() -> Iterator[None]:
    configure(reset=True)
    yield
    configure(reset=True)


# -- every entry of the lists, resolved ------------------------------------------------------------

def _entry_list() -> list[tuple[str, bool]]:
    current = rules()
    return ([(name, True) for name in current["activity"]]
            + [(name, False) for name in current["inline"]])


ENTRIES = _entry_list()
TABLE = dict(ENTRIES)


def _listed(path: str) -> bool:
    """What the lists say of a dotted path: its most specific entry."""
    parts = path.split(".")
    for depth in range(len(parts), 0, -1):
        found = TABLE.get(".".join(parts[:depth]))
        if found is not None:
            return found
    raise AssertionError(f"no entry covers {path}")


def _resolve(name: str) -> Any:
    """The object an entry names, importing its module; None when it is not installed."""
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:depth]))
        except ImportError:
            continue
        break
    else:
        return None
    for attr in parts[depth:]:
        obj = getattr(obj, attr)
    return obj


def _home(obj: Any) -> str | None:
    """The module an object's code belongs to (a bound method's: its receiver's type's)."""
    owner = getattr(obj, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        return (owner if isinstance(owner, type) else type(owner)).__module__
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else None


_CALLABLES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
              types.MethodDescriptorType, types.ClassMethodDescriptorType)


def _members(obj: types.ModuleType | type, entry: str) -> list[tuple[str, Any]]:
    """What a module defines (not what it imports), or a class's own methods, by dotted path."""
    if isinstance(obj, type):
        return [(f"{entry}.{attr}", getattr(obj, attr)) for attr, value in vars(obj).items()
                if not attr.startswith("_") and isinstance(value, _CALLABLES)]
    return [(f"{entry}.{attr}", value) for attr, value in vars(obj).items()
            if not attr.startswith("_") and isinstance(value, _CALLABLES)
            and (_home(value) or "").startswith(obj.__name__)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importing telnetlib, nntplib
def test_every_list_entry_classifies_as_listed() -> None:
    """An entry naming a callable: that object. A module or class: what it defines.

    One test over the whole table, so that the message lists every entry that disagrees.
    """
    wrong, checked, absent = [], 0, []
    for entry, listed_activity in ENTRIES:
        obj = _resolve(entry)
        if obj is None:
            absent.append(entry)
            continue
        if isinstance(obj, types.ModuleType | type):
            members = _members(obj, entry)
            checked += len(members)
            wrong += [(path, classify(value)) for path, value in members
                      if classify(value).activity != _listed(path)]
        else:
            checked += 1
            if classify(obj).activity != listed_activity:
                wrong.append((entry, classify(obj)))
    assert not wrong, wrong
    assert checked > 500 and len(absent) < len(ENTRIES) / 2, (checked, absent)


# Objects whose own names are not their entries' (a C classmethod, a builtin, a bound method
# of a hidden instance, a function re-exported under another module's name).
NAMED_OTHERWISE: list[tuple[str, Callable[[], Any], str, str]] = [
    ("asyncio.sleep", lambda: __import__("asyncio").sleep, "asyncio.tasks.sleep", "clock"),
    ("datetime.now", lambda: __import__("datetime").datetime.now, "datetime.datetime.now",
     "clock"),
    ("time.time", lambda: time.time, "time.time", "clock"),
    ("random.random", lambda: __import__("random").random, "random.Random.random",
     "randomness"),
    ("uuid.uuid4", lambda: uuid.uuid4, "uuid.uuid4", "randomness"),
    ("os.urandom", lambda: os.urandom, f"{os.urandom.__module__}.urandom", "randomness"),
    ("secrets.token_hex", lambda: __import__("secrets").token_hex, "secrets.token_hex",
     "randomness"),
    ("getpass.getpass", lambda: getpass.getpass, f"getpass.{getpass.getpass.__name__}",
     "user input"),
    ("input", lambda: builtins.input, "builtins.input", "user input"),
]


def test_objects_named_differently_from_their_entry() -> None:
    found = {label: (classify(get()).activity, classify(get()).callee, classify(get()).reason)
             for label, get, _, _ in NAMED_OTHERWISE}
    assert found == {label: (True, name, reason) for label, _, name, reason in NAMED_OTHERWISE}


def _kernel_module() -> types.ModuleType:
    """A stand-in for ipykernel's kernel class, under ipykernel's name (an inline package)."""
    module = types.ModuleType("ipykernel._kitteh_test_kernelbase")
    exec(textwrap.dedent("""\
        class Kernel:
            def raw_input(self, prompt=""):
                return "typed"
            def getpass(self, prompt="", stream=None):
                return "secret"
        """), module.__dict__)
    return module


def test_a_kernels_input_and_getpass_are_user_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """ipykernel puts bound methods of the kernel into ``builtins`` and ``getpass``."""
    pytest.importorskip("ipykernel")
    module = _kernel_module()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    kernel = module.Kernel()
    monkeypatch.setattr(builtins, "input", kernel.raw_input)
    monkeypatch.setattr(getpass, "getpass", kernel.getpass)
    for fn in (builtins.input, getpass.getpass):
        verdict = classify(fn)
        assert verdict.activity and verdict.reason == "user input", verdict
        assert verdict.callee.startswith("ipykernel._kitteh_test_kernelbase.Kernel.")


def test_a_configured_entry_naming_the_same_object_wins() -> None:
    import asyncio

    configure(inline=["asyncio.tasks.sleep"])
    assert not classify(asyncio.sleep).activity
    configure(reset=True)
    assert classify(asyncio.sleep).activity


# -- DB-API cursors, in this process ---------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "store", key_file=tmp_path / "key")
    yield st
    st.close()



def replayed_positions(activities: StepActivities) -> set[int]:
    """Main-line positions of the calls this execution took from the journal."""
    return {entry.pos for slot in activities.from_journal
            if (entry := activities.journal.get(slot)) is not None}

def run_step(store: Store, body: Callable[[], Any]) -> tuple[Any, StepActivities]:
    """Run ``body`` as a step's code; a new Journal each time, as after a kernel restart."""
    activities = StepActivities(Journal(store, "s", "db"))
    token = activities.activate()
    try:
        return body(), activities
    except BaseException as exc:
        activities.ended_by(exc)
        raise
    finally:
        activities.deactivate(token)


def writes_and_reads(path: str, crash: bool = False) -> Callable[[], dict[str, Any]]:
    """A cell's calls as the rewriter routes them (``call(f, ...)`` for ``f(...)``)."""
    def cell() -> dict[str, Any]:
        con = call(sqlite3.connect, path)
        cur = call(con.cursor)
        call(cur.execute, "create table if not exists t(x, y)")
        call(cur.executemany, "insert into t values (?, ?)", [(1, "a"), (2, "b")])
        many = cur.rowcount
        call(cur.execute, "insert into t values (?, ?)", (3, "c"))
        last = cur.lastrowid
        call(con.commit)
        chained = call(call(cur.execute, "select x from t where x > ?", (1,)).fetchall)
        if crash:
            raise RuntimeError("the kernel dies after a select, before its rows are read")
        call(cur.execute, "select x, y from t order by x")
        head = call(cur.fetchone)
        rest = call(cur.fetchmany, 5)
        iterated = [row for row in call(con.execute, "select y from t order by x")]
        described = [d[0] for d in call(con.execute, "select x, y from t").description]
        frame = call(pd.read_sql, "select x, y from t order by x", con)
        call(con.close)
        return {"many": many, "last": last, "chained": chained, "head": head, "rest": rest,
                "iterated": iterated, "described": described,
                "frame": frame.to_dict("list")}
    return cell


def rows_in(path: Path) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return con.execute("select x, y from t order by x").fetchall()
    finally:
        con.close()


def test_a_cursor_stays_a_cursor_and_replays_without_the_database(
        store: Store, tmp_path: Path) -> None:
    reference = writes_and_reads(str(tmp_path / "plain.db"))()   # outside any step
    db = tmp_path / "live.db"
    live, _ = run_step(store, writes_and_reads(str(db)))
    assert live == reference
    # A restarted kernel, and the database file is gone: every statement replays.
    db.rename(tmp_path / "kept.db")
    replayed, activities = run_step(store, writes_and_reads(str(db)))
    assert replayed == reference
    assert not rows_in_table_exists(db)   # nothing was written to the new file
    assert rows_in(tmp_path / "kept.db") == [(1, "a"), (2, "b"), (3, "c")]
    assert len(activities.from_journal) >= 10


def rows_in_table_exists(path: Path) -> bool:
    con = sqlite3.connect(path)
    try:
        return bool(con.execute("select name from sqlite_master where name = 't'").fetchall())
    finally:
        con.close()


def test_a_select_journaled_before_a_crash_gives_its_rows_on_resume(
        store: Store, tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    with pytest.raises(RuntimeError):
        run_step(store, writes_and_reads(str(db), crash=True))
    # The resumed run reads the rows of the select that ran before the crash from the
    # journal: delete them from the database to prove it.
    con = sqlite3.connect(db)
    con.execute("delete from t where x = 3")
    con.commit()
    con.close()
    resumed, _ = run_step(store, writes_and_reads(str(db)))
    assert resumed["chained"] == [(2,), (3,)]   # from the journal: x = 3 is gone from the file
    assert rows_in(db) == [(1, "a"), (2, "b")]   # the inserts were not made again


def test_a_replayed_cursor_still_writes_new_statements(store: Store, tmp_path: Path) -> None:
    db = str(tmp_path / "data.db")

    def cell(second: bool) -> Any:
        con = call(sqlite3.connect, db)
        cur = call(con.cursor)
        call(cur.execute, "create table if not exists t(x, y)")
        call(cur.execute, "insert into t values (1, 'a')")
        call(con.commit)
        if not second:
            raise RuntimeError("dies after the first insert")
        call(cur.execute, "insert into t values (2, 'b')")
        call(con.commit)
        return call(call(cur.execute, "select count(*) from t").fetchone)

    with pytest.raises(RuntimeError):
        run_step(store, lambda: cell(False))
    result, activities = run_step(store, lambda: cell(True))
    assert result == (2,) and rows_in(Path(db)) == [(1, "a"), (2, "b")]
    # cursor, create, insert, commit
    assert replayed_positions(activities) == {1, 2, 3, 4}


def test_a_cursor_returned_by_an_activity_replays_its_rows(store: Store, tmp_path: Path) -> None:
    @activity
    def top(cur: Any, n: int) -> Any:   # calls inside an activity are not journaled on their own
        return cur.execute("select x from t order by x desc limit ?", (n,))

    db = tmp_path / "data.db"
    con = sqlite3.connect(db)
    con.execute("create table t(x)")
    con.executemany("insert into t values (?)", [(1,), (2,), (3,)])
    con.commit()

    def cell() -> Any:
        cur = call(con.cursor)
        return [row for row in call(top, cur, 2)]

    assert run_step(store, cell)[0] == [(3,), (2,)]
    con.execute("delete from t")
    con.commit()
    replayed, activities = run_step(store, cell)
    assert replayed == [(3,), (2,)] and replayed_positions(activities) == {0, 1}
    con.close()


def test_a_cursor_made_outside_the_step_keeps_working(store: Store, tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "data.db")
    cur = con.cursor()   # a plain cell made it
    cur.execute("create table t(x)")
    cur.executemany("insert into t values (?)", [(1,), (2,)])

    def cell() -> Any:
        call(cur.execute, "select x from t order by x")
        return call(cur.fetchall)

    with pytest.warns(KittehWarning, match="cursor made outside a durable cell"):
        rows, _ = run_step(store, cell)
    assert rows == [(1,), (2,)]
    con.close()


def test_a_cursor_in_the_namespace_is_named_as_unpicklable(store: Store, tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "data.db")
    cur, _ = run_step(store, lambda: call(con.cursor))
    assert isinstance(cur, JournaledCursor)
    with pytest.raises(UnpicklableError) as info:
        store.put_value({"cur": cur})
    assert "sqlite3.Cursor" in str(info.value)
    con.close()


# -- real kernels ----------------------------------------------------------------------------------

def send(kernel: Kernel, code: str) -> str:
    """An execute request that allows input (``Kernel.send`` does not)."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": True, "stop_on_error": False}
    msg = kernel.client.session.msg("execute_request", content,
                                    metadata={"cellId": str(uuid.uuid4())})
    kernel.client.shell_channel.send(msg)
    return str(msg["header"]["msg_id"])


class Answerer:
    """Answers the kernel's input requests in a thread, keeping every prompt it was asked."""

    def __init__(self, kernel: Kernel, answers: dict[str, str]) -> None:
        self.client, self.answers = kernel.client, answers
        self.prompts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.stdin_channel.get_msg(timeout=0.1)
            except Exception:  # queue.Empty, or a channel closed by a kill
                continue
            if msg["msg_type"] == "input_request":
                prompt = msg["content"]["prompt"]
                self.prompts.append(prompt)
                self.client.input(self.answers[prompt])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run_with_input(kernel: Kernel, code: str, answers: dict[str, str]) -> tuple[Result, list[str]]:
    answerer = Answerer(kernel, answers)
    try:
        result = kernel.collect(send(kernel, code))
    finally:
        answerer.stop()
    return result, answerer.prompts


def wait_code(tmp_path: Path) -> str:
    ready, go = tmp_path / "ready", tmp_path / "go"
    return (f"if not os.path.exists({str(go)!r}):\n"
            f"    open({str(ready)!r}, 'w').close()\n"
            f"    while not os.path.exists({str(go)!r}):\n"
            "        pass")


def kill_at_wait(kernel: Kernel, tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline, "the cell never reached its wait"
        time.sleep(0.02)
    kernel.kill()
    (tmp_path / "go").touch()
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")


@pytest.mark.kernel
def test_input_and_getpass_are_not_asked_again_after_a_crash(
        kernel: Kernel, tmp_path: Path) -> None:
    cell = textwrap.dedent("""\
        %%durable ask
        import getpass, os
        name = input("name? ")
        token = getpass.getpass("token? ")
        WAIT
        (name, token)
        """).replace("WAIT", wait_code(tmp_path))
    answerer = Answerer(kernel, {"name? ": "alice", "token? ": "s3cret"})
    send(kernel, cell)
    kill_at_wait(kernel, tmp_path)
    answerer.stop()
    assert answerer.prompts == ["name? ", "token? "]
    result, prompts = run_with_input(kernel, cell, {"name? ": "bob", "token? ": "other"})
    assert result.raise_for_error().text == "('alice', 's3cret')"
    assert prompts == []   # the answers came from the journal: nobody was asked again
    log = kernel.ok("%durable log ask").stdout
    assert "2 activities" in log and "IPythonKernel.getpass" in log


@pytest.mark.kernel
def test_classification_in_a_kernel_is_by_the_object(kernel: Kernel) -> None:
    """In a kernel: input/getpass are the kernel's methods, asyncio.sleep is a timer."""
    verdicts = json.loads(kernel.ok(textwrap.dedent("""\
        import asyncio, getpass, json
        from kitteh_magic.activities import classify
        print(json.dumps({name: [classify(fn).activity, classify(fn).reason] for name, fn in
                          [("input", input), ("getpass", getpass.getpass),
                           ("sleep", asyncio.sleep)]}))
        """)).stdout)
    assert verdicts == {"input": [True, "user input"], "getpass": [True, "user input"],
                        "sleep": [True, "clock"]}
    cell = textwrap.dedent("""\
        %%durable nap
        import asyncio
        await asyncio.sleep(0.01)
        raise RuntimeError("keep the journal")
        """)
    kernel.run(cell)
    callees = json.loads(kernel.ok(
        "print(json.dumps([e.callee for e in "
        "_kitteh_engine_.catalog.journal(_kitteh_engine_.session, 'nap')]))").stdout)
    assert callees == ["asyncio.tasks.sleep"]


@pytest.mark.kernel
def test_kernel_killed_between_statements_resumes_without_repeating_writes(
        kernel: Kernel, tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    cell = textwrap.dedent(f"""\
        %%durable orders
        import os, sqlite3
        import pandas as pd
        con = sqlite3.connect({str(db)!r})
        cur = con.cursor()
        cur.execute("create table if not exists orders(id integer primary key, item)")
        cur.execute("insert into orders(item) values (?)", ("apple",))
        first_id = cur.lastrowid
        con.commit()
        before = [row for row in con.execute("select item from orders")]
        WAIT
        cur.execute("insert into orders(item) values (?)", ("pear",))
        con.commit()
        total = cur.execute("select count(*) from orders").fetchone()[0]
        frame = pd.read_sql("select item from orders order by id", con)
        (first_id, before, total, list(frame["item"]))
        """).replace("WAIT", wait_code(tmp_path))
    kernel.send(cell)
    kill_at_wait(kernel, tmp_path)
    result = kernel.ok(cell)
    assert result.text == "(1, [('apple',)], 2, ['apple', 'pear'])"
    assert "cannot be saved" not in result.stderr   # a connection is a handle, not a result
    assert rows_in_orders(db) == [(1, "apple"), (2, "pear")]


def rows_in_orders(path: Path) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return con.execute("select id, item from orders order by id").fetchall()
    finally:
        con.close()
