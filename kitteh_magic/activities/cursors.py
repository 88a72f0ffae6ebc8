"""DB-API cursors in a durable cell: a statement runs once, the rows it returns are journaled.

DESIGN §5: a cursor stays a cursor (``cur = con.cursor(); cur.execute(...)``), and what is
journaled is the result of the calls that return rows. The unit of that result is the
*statement*: ``cur.execute(sql)`` (or ``con.execute(sql)``, which makes a cursor and executes)
is one activity, whose journaled outcome is everything the statement produced: its rows, read to
the end as it returns, and ``description``, ``rowcount`` and ``lastrowid``. The cell reads them
through a :class:`JournaledCursor`, live and on replay alike, so that:

* a replay needs the database for none of it: rows, ``for row in cur``, ``cur.lastrowid`` come
  from the record, and the statement is not run again (an ``INSERT`` is not repeated);
* a kernel killed between ``cur.execute`` and ``cur.fetchall()`` resumes correctly: the rows
  were journaled with the statement. Journaling the fetches separately would not give that:
  the resumed fetch would have to run a statement that the journal says already ran;
* a live cursor still writes: each new statement on a :class:`JournaledCursor` runs on the
  driver's cursor (one is opened through the connection's ``cursor()`` if the cursor itself was
  replayed); anything else (``arraysize``, ``close()``, driver extras) goes to that cursor.

Which calls: ``con.cursor()``, ``con.execute(...)`` and any other activity whose result is a
cursor hand the cell a :class:`JournaledCursor`; its ``execute``/``executemany``/
``executescript`` are journaled under the driver method's own name and arguments
(``sqlite3.Cursor.execute``), so ``%durable log`` and the determinism check see the statement.
``pd.read_sql(sql, con)`` is an activity on its own (its DataFrame is journaled).

Limits, stated: rows are held in memory when the statement returns (a statement's result is
journaled whole); a cursor made *outside* a durable cell and used inside one cannot be wrapped:
its statements and fetches are journaled one by one, but rows read by iterating it are not; and a
statement journaled inside a transaction that the kernel's death rolled back is not run again:
commit in the same activity (a ``@km.activity`` function that executes and commits) or use
autocommit.

>>> import sqlite3
>>> con = sqlite3.connect(":memory:")
>>> cur = JournaledCursor(con.cursor(), RecordedCursor([], None, -1, None), con.cursor)
>>> cur.execute("create table t(x)") is cur, cur.execute("insert into t values (4)").lastrowid
(True, 1)
>>> [row for row in cur.execute("select x from t")], cur.rowcount
([(4,)], -1)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import KittehError, KittehWarning
from .current import journaled


class RecordedCursor:
    """A statement's outcome: its rows (read to the end), description, rowcount, lastrowid.

    The journal keeps it; the cell reads it through a :class:`JournaledCursor` (or, for journals
    older than those, directly: it has the reading half of a cursor's interface).
    """

    def __init__(self, rows: list[Any], description: Any, rowcount: int,
                 lastrowid: Any) -> None:
        self._rows, self._next = rows, 0
        self.description, self.rowcount, self.lastrowid = description, rowcount, lastrowid
        self.arraysize = 1

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        """Nothing to release: the rows are in memory."""


@dataclass
class Statement:
    """What a statement made through a :class:`JournaledCursor` journals.

    Attributes:
        outcome: its rows and counters.
        returned_cursor: the driver's method returned the cursor itself (sqlite3 does).
        returned: what it returned otherwise (None for psycopg, a row count for PyMySQL).
    """

    outcome: RecordedCursor
    returned_cursor: bool
    returned: Any = None


def is_cursor(obj: object) -> bool:
    """A DB-API cursor, by its interface (drivers share no base class)."""
    return (hasattr(obj, "description") and hasattr(obj, "fetchall")
            and hasattr(obj, "rowcount") and hasattr(obj, "execute"))


def read(cursor: Any) -> RecordedCursor:
    """The outcome of the statement ``cursor`` last ran, its rows read to the end."""
    rows = list(cursor.fetchall()) if cursor.description is not None else []
    return RecordedCursor(rows, cursor.description, getattr(cursor, "rowcount", -1),
                          getattr(cursor, "lastrowid", None))


def _run(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Statement:
    """Run a statement on the driver's cursor and read its outcome (the journaled call)."""
    returned = method(*args, **kwargs)
    cursor = method.__self__  # type: ignore[attr-defined]
    if returned is cursor:
        return Statement(read(cursor), True)
    return Statement(read(cursor), False, returned)


_OWN = frozenset({"_live", "_opener", "_outcome", "arraysize"})


class JournaledCursor:
    """A DB-API cursor of a durable cell: statements are activities, rows come from their record.

    Args:
        live: the driver's cursor, or None when the cursor came from the journal.
        outcome: the last statement's outcome (empty for a new cursor).
        opener: opens a driver cursor when a statement must run and there is none (the
            connection's ``cursor``).
    """

    _live: Any
    _opener: Callable[[], Any] | None
    _outcome: RecordedCursor
    arraysize: int

    def __init__(self, live: Any, outcome: RecordedCursor,
                 opener: Callable[[], Any] | None = None) -> None:
        object.__setattr__(self, "_live", live)
        object.__setattr__(self, "_opener", opener)
        object.__setattr__(self, "_outcome", outcome)
        object.__setattr__(self, "arraysize", getattr(live, "arraysize", 1) or 1)

    # -- statements: one journaled activity each -------------------------------------------------
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run (or replay) a statement; returns this cursor when the driver returns its own."""
        return self._statement("execute", args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        """Run (or replay) a statement for every set of parameters."""
        return self._statement("executemany", args, kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        """Run (or replay) a script of statements (sqlite3)."""
        return self._statement("executescript", args, kwargs)

    def _statement(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        method = getattr(self._cursor(), name)
        made = journaled(method, functools.partial(_run, method), args, kwargs)
        object.__setattr__(self, "_outcome", made.outcome)
        return self if made.returned_cursor else made.returned

    def _cursor(self) -> Any:
        if self._live is None:
            if self._opener is None:
                raise KittehError(
                    "this cursor came from the activity journal and has no connection to run a "
                    "new statement on; make the cursor from a connection in the cell "
                    "(`cur = con.cursor()`) so that a replayed cursor can open a live one.")
            object.__setattr__(self, "_live", self._opener())
        return self._live

    # -- rows: from the last statement's record ----------------------------------------------------
    @property
    def description(self) -> Any:
        return self._outcome.description

    @property
    def rowcount(self) -> int:
        return self._outcome.rowcount

    @property
    def lastrowid(self) -> Any:
        return self._outcome.lastrowid

    @property
    def connection(self) -> Any:
        if self._live is None and self._opener is not None:
            return getattr(self._opener, "__self__", None)
        return getattr(self._live, "connection", None)

    def fetchone(self) -> Any:
        return self._outcome.fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._outcome.fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        return self._outcome.fetchall()

    def __iter__(self) -> JournaledCursor:
        return self

    def __next__(self) -> Any:
        row = self._outcome.fetchone()
        if row is None:
            raise StopIteration
        return row

    # -- the rest is the driver's cursor's ---------------------------------------------------------
    def close(self) -> None:
        """Close the driver's cursor, if one is open."""
        if self._live is not None:
            self._live.close()

    def __enter__(self) -> JournaledCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # Private and special names (IPython's display hooks, pickle's) are not the driver's:
        # looking them up must not open a cursor.
        if name.startswith("_"):
            raise AttributeError(name)
        if self._live is None and self._opener is None:
            raise AttributeError(f"{name!r}: this cursor came from the activity journal and has "
                                 "no driver cursor behind it")
        return getattr(self._cursor(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:  # row_factory, driver options: they are the driver cursor's
            setattr(self._cursor(), name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # A step output holding a cursor is named as unpicklable, as a driver's cursor is, so the
        # step re-executes on replay (its statements from the journal) and the cursor is live.
        kind = type(self._live) if self._live is not None else JournaledCursor
        raise TypeError(f"cannot pickle '{kind.__module__}.{kind.__qualname__}' object "
                        "(a live database cursor)")

    def __repr__(self) -> str:
        return f"<journaled cursor of {self._live!r}>"


def snapshot(result: Any, receiver: Any) -> tuple[RecordedCursor, Any]:
    """(what the journal keeps, what the cell gets) for a live call that returned a cursor.

    ``receiver`` is what the call was made on: the connection of ``con.execute(...)`` or
    ``con.cursor()``, whose ``cursor`` a replayed cursor opens a live one with.
    """
    if type(result) is JournaledCursor:  # an activity of the user's that returns one of ours
        return result._outcome, result
    if result is receiver:
        # A driver cursor's own statement (a cursor made outside a durable cell): the cell goes
        # on reading from that cursor, so its rows are left to it, and its fetches are journaled
        # one by one; rows read by iterating it are not.
        warnings.warn(
            f"{type(result).__qualname__}.execute on a cursor made outside a durable cell: "
            "its fetches are journaled, but rows read by iterating it are not, and a resumed "
            "cell cannot read rows that a statement returned before the kernel died. Make the "
            "cursor in the durable cell (`cur = con.cursor()`).", KittehWarning, stacklevel=2)
        return RecordedCursor([], result.description, getattr(result, "rowcount", -1),
                              getattr(result, "lastrowid", None)), result
    outcome = read(result)
    return outcome, JournaledCursor(result, outcome, _opener(receiver))


def revive(outcome: RecordedCursor, receiver: Any) -> Any:
    """What the cell gets on replay for a journaled cursor (the twin of :func:`snapshot`)."""
    if is_cursor(receiver):
        return receiver
    return JournaledCursor(None, outcome, _opener(receiver))


def _opener(receiver: Any) -> Callable[[], Any] | None:
    opener = getattr(receiver, "cursor", None)
    return opener if callable(opener) else None
