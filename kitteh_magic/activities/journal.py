"""The activity journal of a step's unfinished execution.

Each activity's outcome is written as it completes, so a cell killed half-way finds, on its next
run, the results of the calls it already made. A journal belongs to one execution of one step
version (DESIGN §4.14), as a Temporal workflow history belongs to one run: its head
(``journal_head_key``) names the step version (the step key: code and inputs) and a random
execution id, and every entry carries that id inside its signature. A run of the same version
resumes the execution; a run of another version (the cell was edited, an input changed) starts
a new one and the old entries are dropped, so they can never answer its calls; an entry of
another execution (left over, or written back) is refused. An entry answers only its own call
(same branch, callee, arguments and occurrence); in a step's sequential part, a call that differs
from the one recorded at its position is a nondeterminism error. A finished execution's journal
is kept: a run of the same version after ``invalidate`` (or after its record was lost, or when
an output could not be saved) executes the cell again and takes the calls it already made
from the journal; ``--force``, ``invalidate --forget-journal``, a new version or ``reset``
end it.

Entries are keyed by their slot (``records.slot_of``): the branch of the step they were called on,
and the identity and occurrence of the call there. Calls from many threads and coroutines write
their entries at once: each is one upsert on the writing thread's own connection, the in-memory
map takes them under a lock, and the head is written once, before the first entry.
"""

from __future__ import annotations

import secrets
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

from .. import faults
from ..errors import DamagedRecordError, DamagedStoreWarning, UnpicklableError
from ..steps.records import JournalEntry, journal_head_key, journal_prefix
from . import failures

if TYPE_CHECKING:
    from ..store import Store

EMBED = 4096
"""Results whose pickle is at most this many bytes travel inside their journal entry."""

NOTHING: Any = object()
"""Marks an argument that was not given (a result may legitimately be None)."""


def _small_json(value: Any, budget: list[int]) -> bool:
    """Whether ``value`` comes back from JSON as itself, in about ``budget[0]`` bytes: None,
    bools, ints, floats, strings, and lists and str-keyed dicts of them (not tuples, not
    subclasses)."""
    kind = type(value)
    if kind is str:
        if not _utf8(value):
            return False
        budget[0] -= len(value) + 2
    elif kind in _JSON_SCALARS:
        budget[0] -= 8
    elif kind is list:
        budget[0] -= 2
        if budget[0] < 0 or not all(_small_json(item, budget) for item in value):
            return False
    elif kind is dict:
        budget[0] -= 2
        for key, item in value.items():
            if (type(key) is not str or not _utf8(key) or budget[0] < 0
                    or not _small_json(item, budget)):
                return False
            budget[0] -= len(key) + 3
    else:
        return False
    return budget[0] >= 0


_JSON_SCALARS = frozenset({type(None), bool, int, float})


def _utf8(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8 (a lone surrogate cannot: pickled instead)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Journal:
    """Entries of one step's unfinished execution, loaded once and appended as calls finish.

    Args:
        store: the store.
        session, step: whose journal.
        namespace: where restored values' notebook functions are bound.
        version: the step key of the run that opens it. None opens whatever execution is
            there, without changing it (``%durable effect``).
        execution: with ``version``, the execution the step's pointer says is unfinished: its
            journal resumes when its head names both; otherwise the journal is discarded and
            ``execution`` starts.
    """

    def __init__(self, store: Store, session: str, step: str,
                 namespace: dict[str, Any] | None = None, *, version: str | None = None,
                 execution: str = "") -> None:
        self.store = store
        self.session = session
        self.step = step
        self.namespace = namespace
        self.entries: dict[str, JournalEntry] = {}
        """slot -> entry."""
        self.execution = ""
        self._pending_head: dict[str, Any] | None = None
        self._head_doc: dict[str, Any] = {}
        """The head as written (or read), so :meth:`note_run` can rewrite it."""
        self._positions: dict[tuple[str, int], JournalEntry] = {}
        self._lock = threading.Lock()
        self._prefix = journal_prefix(session, step)
        self._head = journal_head_key(session, step)
        self._open(version, execution)

    def _open(self, version: str | None, expected: str) -> None:
        try:
            head = self.store.get_json(self._head, signed=True) or {}
        except DamagedRecordError as err:
            warnings.warn(f"step {self.step!r}: its journal's head is damaged ({err}); the "
                          "journal is discarded and its calls run again.",
                          DamagedStoreWarning, stacklevel=3)
            head = {}
        execution = head.get("execution")
        if version is not None and (head.get("version") != version or execution != expected
                                    or not expected):
            self._start(version, expected or secrets.token_hex(16))
            return
        self.execution = execution if isinstance(execution, str) else ""
        self._head_doc = head
        self._load()

    def _start(self, version: str, execution: str) -> None:
        """A new execution of ``version``: whatever journal was there is dropped first.

        Its head is written with its first entry (a step without activities writes nothing).
        """
        self.store.delete_prefix(self._prefix)
        self.execution, self._head_doc = execution, {}
        self._pending_head = {"version": version, "execution": self.execution,
                              "started": time.time()}

    def _load(self) -> None:
        items = self.store.json_items(self._prefix, signed=True)
        for key, doc in items:
            if isinstance(doc, DamagedRecordError):
                problem = f"is damaged ({doc})"
            elif doc.get("execution") != self.execution:
                problem = "belongs to another execution (left over or written back)"
            else:
                entry = JournalEntry.from_doc(doc)
                if entry.slot == key[len(self._prefix):]:
                    self._remember(entry)
                    continue
                problem = "is not at its own key (moved or swapped)"
            # Only that entry goes: calls are identified by what they are, not by where they
            # stand, so the entries around it still answer their own calls.
            warnings.warn(f"step {self.step!r}: journal entry {key!r} {problem}; that call "
                          "will run again.", DamagedStoreWarning, stacklevel=3)
            self.store.delete(key)

    def _remember(self, entry: JournalEntry) -> None:
        with self._lock:
            self.entries[entry.slot] = entry
            if entry.ident:
                self._positions[entry.branch, entry.pos] = entry

    def get(self, slot: str) -> JournalEntry | None:
        """The entry at a slot, if the journal has it."""
        return self.entries.get(slot)

    def at(self, branch: str, position: int) -> JournalEntry | None:
        """The entry of the call made at ``position`` on ``branch`` (the determinism check)."""
        return self._positions.get((branch, position))

    def started(self, entry: JournalEntry, *, deadline: float = 0.0) -> JournalEntry:
        """Note that a call is about to run: an effect (at-most-once needs this before the
        call) or a durable timer (its ``deadline``, so that a resume waits only what is left).

        Args:
            entry: the call's identity (state, outcome and times are set here).
        """
        entry.state, entry.finished, entry.deadline = "started", time.time(), deadline
        self._put(entry)
        return entry

    def record(self, entry: JournalEntry, *, result: Any = NOTHING,
               error: BaseException | None = None, receiver: Any = NOTHING) -> JournalEntry:
        """Write a finished call: its result or exception (and receiver state), then the entry.

        A result that cannot be pickled is noted as ``unsaved``: replay calls it again.
        """
        # Values first: a large one is a value of its own, and the entry that refers to it is
        # written last, so a kill in between leaves no entry pointing at nothing.
        if result is not NOTHING:
            entry.result, entry.unsaved = self._save(result)
        if error is not None:
            # A record of parts, not the exception itself: see failures.py for why.
            entry.error, _ = self._save(failures.record(error, self.store, self.namespace))
            entry.error_text = f"{type(error).__name__}: {failures.text_of(error)}"
        if receiver is not NOTHING:
            entry.receiver, _ = self._save(receiver)
        entry.finished = time.time()
        self._put(entry)
        return entry

    def _save(self, value: Any) -> tuple[dict[str, Any] | None, str | None]:
        # A small JSON value (what most API calls return) is the entry's own JSON, signed with
        # it: nothing to pickle or unpickle. Another small result travels inside the entry as
        # a signed frame (one index write per call); a large one is a value of its own,
        # content addressed like step outputs.
        if _small_json(value, [EMBED]):
            return {"kind": "json", "value": value}, None
        try:
            return dict(self.store.put_value(value, namespace=self.namespace, embed=EMBED)), None
        except UnpicklableError as err:
            return None, err.type_name

    def _put(self, entry: JournalEntry) -> None:
        if self._pending_head is not None:
            with self._lock:
                if self._pending_head is not None:
                    self.store.put_json(self._head, self._pending_head, sign=True)
                    self._head_doc, self._pending_head = self._pending_head, None
        entry.execution = self.execution
        self._remember(entry)
        # One upsert on this thread's own connection, committed before the call returns.
        # (Grouping concurrent entries into one commit was measured slower: the work around
        # the commit holds the GIL, so the threads wait for each other instead.)
        self.store.write_json(self._prefix + entry.slot, entry.to_doc(), sign=True)
        faults.point("journal-entry-written")

    def load(self, ref: dict[str, Any]) -> Any:
        """A recorded value (result, exception or receiver state), verified before unpickling."""
        if ref.get("kind") == "json":
            return ref.get("value")
        return self.store.get_value(ref, namespace=self.namespace)

    def failure(self, entry: JournalEntry) -> BaseException:
        """The exception a journaled call raised, rebuilt; never fails (a stand-in names it).

        Journals written before exceptions were recorded in parts hold the exception itself,
        which may not unpickle (``__init__`` with keyword-only arguments): then, too, the
        stand-in is a :class:`~.failures.JournaledError` naming its type and message.
        """
        if entry.error is None:
            return failures.lost(entry.error_text, "it could not be saved")
        try:
            value = self.load(entry.error)
        except Exception as exc:
            return failures.lost(entry.error_text, f"{type(exc).__name__}: {exc}")
        if isinstance(value, dict):
            return failures.rebuild(value, self.store, self.namespace)
        if isinstance(value, BaseException):
            return value
        return failures.lost(entry.error_text, f"the journal holds a {type(value).__name__}")

    def drop(self, slot: str) -> None:
        """Forget one entry (a failure that ended the cell is retried, not replayed)."""
        with self._lock:
            entry = self.entries.pop(slot, None)
            if entry is not None:
                self._positions.pop((entry.branch, entry.pos), None)
        self.store.delete(self._prefix + slot)

    def clear(self) -> None:
        """Forget the whole journal and its execution (the step finished, or ``--force``)."""
        with self._lock:
            self.entries.clear()
            self._positions.clear()
        self.store.delete_prefix(self._prefix)
        self.store.delete(self._head)
        self._pending_head, self._head_doc = None, {}

    def note_run(self, answered: set[str]) -> None:
        """Write into the head which calls the run that ends now took from the journal
        (``Catalog.journal_view`` shows them), when that changes what the head says.

        Args:
            answered: the slots of the calls answered from the journal.
        """
        if self._pending_head is not None or not self._head_doc:
            return  # nothing journaled: no head, nothing to show
        if sorted(answered) == self._head_doc.get("answered", []):
            return
        self._head_doc = {**self._head_doc, "answered": sorted(answered)}
        self.store.put_json(self._head, self._head_doc, sign=True)

    def restart(self, version: str, execution: str) -> None:
        """Start a new execution of ``version`` (``--force``): no entry of the old one serves."""
        with self._lock:
            self.entries.clear()
            self._positions.clear()
        self._start(version, execution)

    def log(self) -> list[dict[str, Any]]:
        """The entries without their values, in the order they were written (kept in the
        step's record)."""
        docs = []
        with self._lock:
            entries = sorted(self.entries.values(), key=lambda e: (e.finished, e.branch, e.pos))
        for entry in entries:
            doc = entry.to_doc()
            for field in ("result", "error", "receiver"):
                doc.pop(field, None)
            docs.append(doc)
        return docs
