"""Sessions and steps of a store: the metadata operations that the kernel, the command line and
the Jupyter server extension share. Metadata only; nothing here unpickles a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import DamagedRecordError
from .records import (
    POINTER_PREFIX,
    RECORD_PREFIX,
    SESSION_PREFIX,
    JournalEntry,
    SessionDoc,
    StepPointer,
    StepRecord,
    journal_head_key,
    journal_prefix,
    pointer_key,
    pointer_prefix,
    record_key,
    session_key,
    slot_of,
)

if TYPE_CHECKING:
    from ..store import Store

_D = TypeVar("_D", SessionDoc, StepPointer)


class Catalog:
    """The sessions and steps recorded in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.damaged: list[DamagedRecordError] = []
        """Metadata documents that failed their check and were skipped (for reports)."""

    def _read(self, keys: list[str], kind: type[_D]) -> list[_D]:
        """The documents at ``keys`` that pass their check; the others are noted in ``damaged``."""
        found: list[_D] = []
        for key in keys:
            try:
                doc = self.store.get_json(key)
                if doc is not None:
                    found.append(_at_its_key(key, kind.checked(key, doc)))
            except DamagedRecordError as err:
                self.damaged.append(err)
        return found

    # sessions -------------------------------------------------------------------------------
    def sessions(self) -> list[SessionDoc]:
        """Every session of the store, oldest first."""
        found = self._read(self.store.keys(SESSION_PREFIX), SessionDoc)
        return sorted(found, key=lambda s: (s.created, s.name))

    def session(self, name: str) -> SessionDoc | None:
        """One session, or None when it has no record yet (or a damaged one).

        Raises:
            DamagedRecordError: never; a damaged document is noted in ``damaged``.
        """
        found = self._read([session_key(name)], SessionDoc)
        return found[0] if found else None

    def claim_seq(self, session: str, notebook: str | None) -> int:
        """The next position in the session's order, creating the session on first use."""
        seq = 0

        def bump(doc: dict[str, Any] | None) -> dict[str, Any]:
            nonlocal seq
            current = self._healed(session_key(session), doc, SessionDoc) or SessionDoc(
                name=session, notebook=notebook, created=time.time())
            seq = current.next_seq
            current.next_seq += 1
            return current.to_doc()

        self.store.update_json(session_key(session), bump, damaged=self.damaged.append)
        return seq

    # steps ----------------------------------------------------------------------------------
    def steps(self, session: str) -> list[StepPointer]:
        """The session's steps in order of first appearance."""
        found = self._read(self.store.keys(pointer_prefix(session)), StepPointer)
        return sorted(found, key=lambda p: (p.seq, p.started))

    def pointer(self, session: str, step: str) -> StepPointer | None:
        """A step's latest state; None when it has none (or a damaged one, noted in
        ``damaged``: the step's next run rewrites it)."""
        found = self._read([pointer_key(session, step)], StepPointer)
        return found[0] if found else None

    def update_pointer(self, session: str, step: str,
                       change: Callable[[StepPointer | None], StepPointer | None],
                       ) -> StepPointer | None:
        """Atomically read, change and write a step's pointer (None deletes it)."""

        key = pointer_key(session, step)

        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            new = change(self._healed(key, doc, StepPointer))
            return None if new is None else new.to_doc()

        result = self.store.update_json(key, apply, damaged=self.damaged.append)
        return None if result is None else StepPointer.from_doc(result)

    def _healed(self, key: str, doc: dict[str, Any] | None, kind: type[_D]) -> _D | None:
        """A document about to be rewritten: a damaged one counts as absent (noted in
        ``damaged``), so the write replaces it."""
        if doc is None:
            return None
        try:
            return _at_its_key(key, kind.checked(key, doc))
        except DamagedRecordError as err:
            self.damaged.append(err)
            return None

    def record(self, step_key: str) -> StepRecord | None:
        """The record of one version of a step; DamagedRecordError if it fails verification."""
        key = record_key(step_key)
        doc = self.store.get_json(key, signed=True)
        if doc is None:
            return None
        record = StepRecord.checked(key, doc)  # signed, yet maybe by a buggy or newer writer
        if record.key != step_key:
            raise DamagedRecordError(key, "format", f"it is the record of {record.key!r}")
        return record

    def revision(self, step_key: str) -> int:
        """The revision of the record stored under a key (unverified read); 0 without one."""
        try:
            doc = self.store.get_json(record_key(step_key))
        except DamagedRecordError:
            return 0
        revision = doc.get("revision") if doc else 0
        return revision if isinstance(revision, int) else 0

    def put_record(self, record: StepRecord) -> None:
        """Write a record (signed: it decides what replay restores)."""
        self.store.put_json(record_key(record.key), record.to_doc(), sign=True)

    # management -----------------------------------------------------------------------------
    def invalidate(self, session: str, step: str, *, forget_journal: bool = False) -> bool:
        """Make the next run of a step execute: drop its records. False if there is no such step.

        The journal of the step's last execution is kept unless ``forget_journal``: the run
        that follows executes the cell again, and each call it makes with the identity of a
        journaled one (same branch, callee, arguments and occurrence) is answered from the
        journal instead of being made again (paid API calls are not paid twice). With
        ``forget_journal`` every call is made again. Editing the cell or changing an input
        starts a new execution, which never reads the old journal either way.
        """
        dropped: list[str] = []

        def clear(ptr: StepPointer | None) -> StepPointer | None:
            if ptr is None:
                return None
            dropped.extend(ptr.keys)
            ptr.state, ptr.key, ptr.keys, ptr.outputs = "invalidated", None, [], {}
            if forget_journal:  # a journal written back never resumes
                ptr.execution = ptr.execution_version = ""
            return ptr

        found = self.update_pointer(session, step, clear) is not None
        for key in dropped:
            self.store.delete(record_key(key))
        if forget_journal:
            self.clear_journal(session, step)
        return found

    def clear_journal(self, session: str, step: str) -> int:
        """Drop the activity journal of a step's latest execution; returns its length."""
        self.store.delete(journal_head_key(session, step))
        return self.store.delete_prefix(journal_prefix(session, step))

    def journal(self, session: str, step: str) -> list[JournalEntry]:
        """The journal of a step's latest execution (unfinished, or finished and kept), in the
        order its entries were written (unverified read)."""
        items = self.store.json_items(journal_prefix(session, step))
        entries = [JournalEntry.from_doc(doc) for _, doc in items if isinstance(doc, dict)]
        return sorted(entries, key=lambda e: (e.finished, e.branch, e.pos))

    def journal_view(self, session: str, step: str) -> list[dict[str, Any]]:
        """The calls of a step's latest execution, one dict per call, in the order they ended.

        Metadata only (an unverified read, nothing unpickled): what ``%durable log``, the
        sidebar's journal view and ``kitteh-magic log`` show. Each dict has:

        * ``label`` (str): the call's place, ``"3"`` (third call of the step's main line) or
          ``"map0[17]:1"`` (first call of item 17 of its first ``km.map``);
        * ``call`` (str): the callee, ``module.qualname``;
        * ``duration`` (float, seconds): how long the call took, retries included;
        * ``attempts`` (int);
        * ``outcome`` (str): ``"ok"``, ``"error"`` (the call raised; see ``error``) or
          ``"started"`` (an effect or a timer that began and never finished);
        * ``from_journal`` (bool): the step's latest run took it from the journal instead of
          making the call;
        * ``finished`` (float, epoch seconds): when it ended (began, for ``"started"``);
        * and ``branch`` (str, "" for the main line), ``effect`` (bool), ``error`` (str or
          None: the exception's type and message), ``unsaved`` (str or None: the type of a
          result that could not be saved, so the call is made again).

        The journal is that of the latest execution, kept after it finished (so that a run
        after ``invalidate`` answers the same calls from it); once forgotten (``invalidate
        --forget-journal``, ``--force``), the calls come from the step's record, as its last
        execution logged them. [] for a step without calls (or no such step).
        """
        entries = [entry.to_doc() for entry in self.journal(session, step)]
        answered: set[str] = set()
        if entries:
            try:
                head = self.store.get_json(journal_head_key(session, step))
            except DamagedRecordError:
                head = None
            seen = head.get("answered") if isinstance(head, dict) else None
            if isinstance(seen, list) and head is not None and head.get("execution") == \
                    entries[0].get("execution"):
                answered = {slot for slot in seen if isinstance(slot, str)}
        else:
            entries = self._logged(session, step)
        return [_call_view(doc, answered) for doc in entries]

    def _logged(self, session: str, step: str) -> list[dict[str, Any]]:
        """The activity log of the record of a step's latest version (unverified read)."""
        ptr = self.pointer(session, step)
        if ptr is None or not ptr.key:
            return []
        try:
            doc = self.store.get_json(record_key(ptr.key))
        except DamagedRecordError:
            return []
        log = doc.get("journal") if isinstance(doc, dict) else None
        return [d for d in log if isinstance(d, dict)] if isinstance(log, list) else []

    def invalidate_all(self, session: str, *, forget_journal: bool = False) -> int:
        """Invalidate every step of a session (see :meth:`invalidate`); returns how many."""
        return sum(self.invalidate(session, p.step, forget_journal=forget_journal)
                   for p in self.steps(session))

    def reset(self, session: str) -> int:
        """Drop a session's records, pointers, order and idle leases; returns how many steps it
        had."""
        steps = self.steps(session)
        for ptr in steps:
            for key in ptr.keys:
                self.store.delete(record_key(key))
            self.store.delete(pointer_key(session, ptr.step))
            self.clear_journal(session, ptr.step)
        self.store.delete(session_key(session))
        from .lease import drop_idle  # lease reads status, which reads the catalog

        drop_idle(self.store, session)
        return len(steps)

    def live_records(self) -> set[str]:
        """Record keys that some session's pointer still references."""
        live: set[str] = set()
        for ptr in self._read(self.store.keys(POINTER_PREFIX), StepPointer):
            live.update(ptr.keys)
        return live

    def all_records(self) -> list[str]:
        """Every record key in the store (step keys, without the prefix)."""
        return [k[len(RECORD_PREFIX):] for k in self.store.keys(RECORD_PREFIX)]

    def record_digests(self, step_key: str) -> set[str]:
        """Value digests a record references (unverified read: garbage collection and healing).

        A record that is not JSON or has fields of the wrong shape gives what can be read of it
        (nothing at worst): its damage is reported by whoever reads it for real.
        """
        try:
            doc = self.store.get_json(record_key(step_key))
        except DamagedRecordError:
            return set()
        if doc is None:
            return set()
        outputs = doc.get("outputs")
        entries = list(outputs.values()) if isinstance(outputs, dict) else []
        refs = [entry.get("ref") for entry in entries if isinstance(entry, dict)]
        value = doc.get("value")
        refs += [value.get("ref") if isinstance(value, dict) else None, doc.get("events")]
        digests: set[str] = set()
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            if isinstance(ref.get("digest"), str):
                digests.add(ref["digest"])
            # A group may refer to values of earlier steps (identity kept across steps).
            inner = ref.get("refs")
            if isinstance(inner, list):
                digests.update(d for d in inner if isinstance(d, str))
        return digests


def _call_view(doc: dict[str, Any], answered: set[str]) -> dict[str, Any]:
    """One call of :meth:`Catalog.journal_view` from a journal entry or a record's log entry
    (JSON of any writer: every field defaulted)."""
    branch = _of(doc, "branch", str, "")
    pos = _of(doc, "pos", int, 0)
    state = doc.get("state")
    outcome = {"done": "ok", "error": "error", "started": "started"}.get(
        state if isinstance(state, str) else "", "ok")
    return {
        "label": f"{branch}:{pos + 1}" if branch else str(pos + 1),
        "call": str(doc.get("callee", "?")),
        "duration": _seconds(doc.get("duration")),
        "attempts": doc.get("attempts") if isinstance(doc.get("attempts"), int) else 1,
        "outcome": outcome,
        "from_journal": doc.get("replayed") is True or slot_of(
            branch, _of(doc, "ident", str, ""), _of(doc, "occ", int, -1)) in answered,
        "finished": _seconds(doc.get("finished")),
        "branch": branch,
        "effect": doc.get("effect") is True,
        "error": str(doc["error_text"]) if doc.get("error_text") else None,
        "unsaved": str(doc["unsaved"]) if doc.get("unsaved") else None,
    }


_T = TypeVar("_T")


def _of(doc: dict[str, Any], name: str, kind: type[_T], default: _T) -> _T:
    value = doc.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else default


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _at_its_key(key: str, doc: _D) -> _D:
    """A session or pointer document must be the one its key names (not one copied over it).

    Raises:
        DamagedRecordError: it names another session or step (``format``).
    """
    own = session_key(doc.name) if isinstance(doc, SessionDoc) else pointer_key(doc.session,
                                                                                 doc.step)
    if own != key:
        raise DamagedRecordError(key, "format", f"the document belongs at {own!r}")
    return doc
