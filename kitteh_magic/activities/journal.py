"""The activity journal of a step's unfinished execution.

Each activity's outcome is written as it completes, so a cell killed half-way finds, on its next
run, the results of the calls it already made. The journal belongs to the step (session + step
name), not to one version of its code: an edited cell that still makes the same first calls
resumes, and one that makes a different call at a recorded position is a nondeterminism error,
never a wrong answer. A finished step's record makes the journal redundant and it is cleared;
an incomplete record (an output that could not be saved) keeps it, so the re-execution that
replay needs still takes its activities from the journal.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import DamagedRecordError, DamagedStoreWarning, UnpicklableError
from ..steps.records import JournalEntry, journal_prefix
from . import failures

if TYPE_CHECKING:
    from ..store import Store

EMBED = 4096
"""Results whose pickle is at most this many bytes travel inside their journal entry."""

NOTHING: Any = object()
"""Marks an argument that was not given (a result may legitimately be None)."""


class Journal:
    """Entries of one step's unfinished execution, loaded once and appended as calls finish."""

    def __init__(self, store: Store, session: str, step: str,
                 namespace: dict[str, Any] | None = None) -> None:
        self.store = store
        self.session = session
        self.step = step
        self.namespace = namespace
        self.entries: dict[int, JournalEntry] = {}
        self._prefix = journal_prefix(session, step)
        self._load()

    def _load(self) -> None:
        items = self.store.json_items(self._prefix, signed=True)
        for key, doc in items:
            if isinstance(doc, DamagedRecordError):
                # Everything from a damaged entry on is dropped: positions must stay contiguous.
                warnings.warn(f"step {self.step!r}: journal entry {key!r} is damaged ({doc}); "
                              "that call and the ones after it will run again.",
                              DamagedStoreWarning, stacklevel=2)
                self._truncate(int(key.rsplit("/", 1)[1]))
                return
            entry = JournalEntry.from_doc(doc)
            self.entries[entry.pos] = entry

    def _truncate(self, position: int) -> None:
        doomed = [p for p in self.entries if p >= position]
        for pos in doomed:
            del self.entries[pos]
        if position == 0:
            self.store.delete_prefix(self._prefix)
            return
        keys = [k for k in self.store.keys(self._prefix)
                if int(k.rsplit("/", 1)[1]) >= position]
        with self.store.transaction():
            for key in keys:
                self.store.delete(key)

    def get(self, position: int) -> JournalEntry | None:
        """The entry at a position, if the journal reaches it."""
        return self.entries.get(position)

    def started(self, position: int, callee: str, args: str) -> None:
        """Note that an effect is about to run (at-most-once needs this before the call)."""
        entry = JournalEntry(pos=position, callee=callee, args=args, state="started",
                             effect=True, finished=time.time())
        self._put(entry)

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
        # A small result travels inside the entry (one index write per call); a large one is a
        # value of its own, content addressed like step outputs.
        try:
            return dict(self.store.put_value(value, namespace=self.namespace, embed=EMBED)), None
        except UnpicklableError as err:
            return None, err.type_name

    def _put(self, entry: JournalEntry) -> None:
        self.entries[entry.pos] = entry
        # The key of entry_key(), from the prefix computed once (quoting costs per call).
        self.store.write_json(f"{self._prefix}{entry.pos:08d}", entry.to_doc(), sign=True)

    def load(self, ref: dict[str, Any]) -> Any:
        """A recorded value (result, exception or receiver state), verified before unpickling."""
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

    def drop(self, position: int) -> None:
        """Forget one entry (a failure that ended the cell is retried, not replayed)."""
        self._truncate(position)

    def clear(self) -> None:
        """Forget the whole journal (the step finished, or ``--force``)."""
        self._truncate(0)

    def log(self) -> list[dict[str, Any]]:
        """The entries without their values, in call order (kept in the step's record)."""
        docs = []
        for pos in sorted(self.entries):
            doc = self.entries[pos].to_doc()
            for field in ("result", "error", "receiver"):
                doc.pop(field, None)
            docs.append(doc)
        return docs
