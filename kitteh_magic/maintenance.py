"""Store maintenance: check the store, repair what is damaged, drop what no session uses.

``verify`` and ``gc`` read the store the same way (:func:`survey`): every session document, step
pointer, record and journal entry is checked (JSON, schema, bound to its key, the values it names
present), and what fails is a :class:`Damage`, one line naming it and what gc does about it.
``verify`` only reports (and checks every value's bytes as well); ``gc`` repairs what it can and
then collects, so that after it ``verify`` finds nothing it could have repaired; ``verify
--repair`` first drops the values whose bytes are damaged (gc reads no value), then runs gc. No
damaged item stops any of them: it is reported, skipped, and the command carries on.

What gc does is what the kernel does when it meets the same damage, so one recompute heals:

* a damaged step pointer is dropped: the step runs again on its next run;
* a damaged record, or one whose values are gone, is dropped and its step invalidated;
* a pointer whose record is gone is invalidated;
* a damaged journal entry is dropped with the entries after it (those calls run again);
* a damaged or missing session document is rewritten from the session's steps.

Signatures (records, values) are checked by ``verify`` only: a record signed with another key
may mean a wrong ``$KITTEH_MAGIC_KEY_FILE``, not a damaged store, so gc never drops one for it.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import DamagedRecordError
from .status import (
    checked,
    count,
    describe,
    human_size,
    process_alive,
    read_sessions,
    read_steps,
)
from .steps.catalog import Catalog
from .steps.records import (
    JOURNAL_PREFIX,
    POINTER_PREFIX,
    RECORD_PREFIX,
    SESSION_PREFIX,
    JournalEntry,
    OutputEntry,
    SessionDoc,
    StepPointer,
    StepRecord,
    pointer_prefix,
    record_key,
    session_key,
)
from .store.blobs import abandoned, sweep

if TYPE_CHECKING:
    from .store import Store

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_DIGEST = re.compile(r"[0-9a-f]{32}")


class SizeError(ValueError, argparse.ArgumentTypeError):
    """Not a size. An ``ArgumentTypeError`` too, so that argparse (the command line, ``%durable
    gc --max-size``) shows this message rather than its own "invalid parse_size value"."""


def parse_size(text: str) -> int:
    """Bytes from a size people write.

    >>> parse_size("2GB"), parse_size("512 MiB"), parse_size("1000")
    (2147483648, 536870912, 1000)

    Raises:
        SizeError: (a ``ValueError``) ``text`` is not a number with an optional unit.
    """
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"not a size: {text!r} (try 500MB or 2GB)")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * 1024 ** "_KMGT".index(unit or "_"))


# -- survey ------------------------------------------------------------------------------------


@dataclass
class Damage:
    """One damaged item: what is wrong, what gc does about it, and what follows."""

    error: DamagedRecordError
    fix: str
    """What gc does, as a verb ("drop it"), and ``done`` the same in the past ("dropped")."""
    done: str
    then: str
    """What follows for the user ("step 'x' of session 'y' runs again")."""
    repair: Callable[[], None] = field(repr=False)

    def __str__(self) -> str:
        """The line ``verify`` prints: what is wrong and what gc will do."""
        return f"{describe(self.error)}; gc will {self.fix}: {self.then}"

    def outcome(self) -> str:
        """The line ``gc`` prints once it repaired it."""
        return f"{describe(self.error)}; {self.done}: {self.then}"


@dataclass
class Survey:
    """What the metadata of a store says, read the way gc reads it."""

    pointers: list[StepPointer] = field(default_factory=list)
    """Every readable step pointer."""
    records: dict[str, set[str]] = field(default_factory=dict)
    """Step key -> the stored values its (readable) record needs."""
    journals: set[str] = field(default_factory=set)
    """Stored values that readable journal entries of unfinished executions need."""
    damage: list[Damage] = field(default_factory=list)
    heals: list[str] = field(default_factory=list)
    """Damage gc leaves to the kernel, one line each: a journaled result that is gone (its
    call is made again, or, for an effect, reported as interrupted: never run twice)."""
    _present: dict[str, bool] = field(default_factory=dict, repr=False)

    def missing(self, store: Store, digests: set[str]) -> list[str]:
        """The digests of ``digests`` that the store holds no value for, sorted."""
        for digest in digests - self._present.keys():
            self._present[digest] = store.has_value({"digest": digest, "kind": "blob"})
        return sorted(d for d in digests if not self._present[d])


def survey(store: Store) -> Survey:
    """Read every session, pointer, record and journal entry; note what is damaged.

    The damage is listed in the order gc repairs it: pointers before the records they name,
    session documents last (they are rebuilt from the pointers that remain).
    """
    found = Survey()
    catalog = Catalog(store)
    sessions, damaged_sessions = read_sessions(store)
    for name in sessions:
        pointers, damaged = read_steps(store, name)
        found.pointers += pointers
        for err in damaged:
            found.damage.append(Damage(err, "drop it", "dropped",
                                       "the step runs again on its next run",
                                       functools.partial(store.delete, err.key)))
    _survey_records(store, catalog, found)
    _survey_journals(store, found)
    documents = set(store.keys(SESSION_PREFIX))
    for err in damaged_sessions:
        found.damage.append(_session_damage(store, err))
    for name in sessions:
        if session_key(name) not in documents:
            err = DamagedRecordError(session_key(name), "missing", "its steps remain")
            found.damage.append(_session_damage(store, err))
    return found


def _survey_records(store: Store, catalog: Catalog, found: Survey) -> None:
    users: dict[str, list[StepPointer]] = {}
    for ptr in found.pointers:
        for key in {*ptr.keys, *([ptr.key] if ptr.key else [])}:
            users.setdefault(key, []).append(ptr)
    stored = set()
    for key, doc in store.json_items(RECORD_PREFIX):
        step_key = key[len(RECORD_PREFIX):]
        stored.add(step_key)
        try:
            record = checked(StepRecord, key, _raise(doc))
            if record.key != step_key:
                raise DamagedRecordError(key, "format", f"holds the record of {record.key!r}")
            digests = _record_digests(key, record)
            gone = found.missing(store, digests)
            if gone:
                raise DamagedRecordError(key, "missing-blob", f"{len(gone)} of its values are "
                                         f"gone ({gone[0]}{', ...' if len(gone) > 1 else ''})")
        except DamagedRecordError as err:
            found.damage.append(_record_damage(store, catalog, step_key, err,
                                               users.get(step_key, [])))
            continue
        found.records[step_key] = digests
    for ptr in found.pointers:
        if ptr.state == "done" and ptr.key and ptr.key not in stored:
            lost = DamagedRecordError(record_key(ptr.key), "missing",
                                      f"step {ptr.step!r} of session {ptr.session!r} is done "
                                      "but its record is gone")
            found.damage.append(_record_damage(store, catalog, ptr.key, lost, [ptr]))


def _record_damage(store: Store, catalog: Catalog, step_key: str, err: DamagedRecordError,
                   users: list[StepPointer]) -> Damage:
    steps = ", ".join(f"step {p.step!r} of session {p.session!r}" for p in users)
    then = f"{steps} runs again" if steps else "no step uses it"

    def repair() -> None:
        for ptr in users:
            _drop_version(catalog, ptr.session, ptr.step, step_key)
        store.delete(record_key(step_key))

    return Damage(err, "drop it", "dropped", then, repair)


def _record_digests(key: str, record: StepRecord) -> set[str]:
    """The stored values a record needs: its outputs' group, its value, its events, and the
    values of earlier steps these refer to (identity kept across steps)."""
    refs: list[object] = []
    for entry in [*record.outputs.values(), *([record.value] if record.value else [])]:
        refs.append(checked(OutputEntry, key, entry).ref)
    return _stored_digests(key, [*refs, record.events])


def _stored_digests(key: str, refs: list[object]) -> set[str]:
    digests: set[str] = set()
    for ref in refs:
        if ref is None or (isinstance(ref, Mapping) and ref.get("kind") == "json"):
            continue  # a JSON value inside the document: no stored value to look for
        if not isinstance(ref, Mapping) or not _is_digest(ref.get("digest")):
            raise DamagedRecordError(key, "format", f"a value reference is {str(ref)[:60]}")
        inner = ref.get("refs", [])
        if not isinstance(inner, list) or not all(_is_digest(d) for d in inner):
            raise DamagedRecordError(key, "format", f"value {ref['digest']} refers to "
                                     f"{str(inner)[:60]}")
        if ref.get("kind") != "embedded":  # embedded values live in the document itself
            digests.add(ref["digest"])
        digests.update(inner)
    return digests


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _survey_journals(store: Store, found: Survey) -> None:
    for key, doc in store.json_items(JOURNAL_PREFIX):
        # km1/jrn/<session>/<step>/<slot>, names percent-encoded; a head is <step>#head.
        is_entry = key[len(JOURNAL_PREFIX):].count("/") >= 2
        try:
            if not is_entry:  # a journal's head: whatever the kernel wrote, it must be JSON
                _raise(doc)
                continue
            entry = checked(JournalEntry, key, _raise(doc))
            digests = _stored_digests(key, [entry.result, entry.error, entry.receiver])
            found.journals |= digests
            gone = found.missing(store, digests)
            if gone:
                lost = DamagedRecordError(key, "missing-blob", f"its value {gone[0]} is gone")
                found.heals.append(f"{describe(lost)}; the step's next run makes that call "
                                   "again (an effect is reported as interrupted instead)")
        except DamagedRecordError as err:
            # Entries answer their own calls only (branch, identity, occurrence): the others
            # stay, as the kernel keeps them when it meets a damaged one.
            found.damage.append(Damage(
                err, "drop it", "dropped",
                "that call runs again" if is_entry else "the step's journal starts over",
                functools.partial(store.delete, key)))


def _session_damage(store: Store, err: DamagedRecordError) -> Damage:
    name = unquote(err.key[len(SESSION_PREFIX):])

    def repair() -> None:
        pointers, _ = read_steps(store, name)
        doc = SessionDoc(name=name, notebook=None,
                         created=min((p.started for p in pointers if p.started),
                                     default=time.time()),
                         next_seq=max((p.seq + 1 for p in pointers), default=0)).to_doc()

        def rewrite(current: dict[str, Any] | None) -> dict[str, Any]:
            # A kernel may have rewritten it meanwhile: a sound document is kept.
            return current if current is not None and _sound(err.key, name, current) else doc

        # A document that is not even JSON reaches ``rewrite`` as None: it is replaced.
        store.update_json(err.key, rewrite, damaged=lambda _: None)

    return Damage(err, "rewrite it from the session's steps", "rewritten from the session's steps",
                  "its steps are kept", repair)


def _sound(key: str, name: str, doc: dict[str, Any]) -> bool:
    try:
        return checked(SessionDoc, key, doc).name == name
    except DamagedRecordError:
        return False


def _raise(doc: dict[str, Any] | DamagedRecordError) -> dict[str, Any]:
    if isinstance(doc, DamagedRecordError):
        raise doc
    return doc


# -- verify ------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What ``verify`` found: damaged items (one line each) and notes that are not damage."""

    damaged: list[str] = field(default_factory=list)
    by_gc: int = 0
    """How many of ``damaged`` gc repairs."""
    by_repair: int = 0
    """Damaged values a step needs: its next run heals them (the kernel drops what fails to
    load and the run rewrites it), or ``--repair`` drops them at once."""
    notes: list[str] = field(default_factory=list)
    repaired: GcReport | None = None
    """What ``--repair`` did."""

    def __str__(self) -> str:
        found = len(self.damaged)
        if not found:
            return "\n".join([*self.notes, "no damage found"])
        later = found - self.by_gc - self.by_repair
        if self.repaired is not None:
            parts = [f"{found - later} repaired"]
        else:
            parts = [f"gc repairs {self.by_gc}"] if self.by_gc else []
            if self.by_repair:
                parts.append(f"{_heal(self.by_repair)}, or now with verify --repair")
        if later:
            parts.append(_heal(later))
        repaired = [str(self.repaired)] if self.repaired is not None else []
        return "\n".join([*self.damaged, *self.notes, *repaired,
                          f"{count(found, 'damaged item')}: {'; '.join(parts)}"])


def _heal(n: int) -> str:
    """The summary's part for items that heal when their step next runs.

    >>> _heal(1), _heal(2)
    ('1 heals on the next run of its step', '2 heal on the next run of their steps')
    """
    return (f"{n} heals on the next run of its step" if n == 1
            else f"{n} heal on the next run of their steps")


_CONTENT = frozenset({"truncated", "checksum", "format"})
"""Damage to a value's bytes: dropping it loses nothing (a signature or version mismatch may
be a wrong key file or a newer writer instead)."""


def verify(store: Store, *, repair: bool = False) -> VerifyReport:
    """Check the whole store: metadata as gc reads it, record signatures, every value in full.

    Read-only unless ``repair``: then the values whose bytes are damaged are dropped and gc
    runs, so the steps that needed them are invalidated and run again (one run heals).
    """
    found = survey(store)
    report = VerifyReport(damaged=[*map(str, found.damage), *found.heals],
                          by_gc=len(found.damage))
    seen = {d.error.key for d in found.damage}
    for key, doc in store.json_items(RECORD_PREFIX, signed=True):
        if isinstance(doc, DamagedRecordError) and key not in seen:
            report.damaged.append(f"{describe(doc)}; its step runs again on its next run (if "
                                  "every record fails so, check $KITTEH_MAGIC_KEY_FILE)")
    live = set().union(found.journals, *found.records.values())
    damaged_values = store.verify_all()
    for err in damaged_values:
        if err.key.rpartition("/")[2] in live:
            report.damaged.append(f"{describe(err)}; the step that needs it runs again on its "
                                  "next run and rewrites it")
            report.by_repair += err.reason in _CONTENT
        else:
            report.damaged.append(f"{describe(err)}; gc will remove it: no record needs it")
            report.by_gc += 1
    dead = abandoned(store.directory / "tmp")
    if dead:
        report.notes.append(f"{len(dead)} temporary files left by dead writers hold "
                            f"{human_size(sum(size for _, size in dead))}: gc removes them")
    if repair:
        store.heal({err.key.rpartition("/")[2] for err in damaged_values
                    if err.reason in _CONTENT})
        report.repaired = gc(store)
    return report


# -- gc ----------------------------------------------------------------------------------------


@dataclass
class GcReport:
    """What a collection repaired and removed."""

    records: int
    freed: int
    size: int
    temporary: int = 0
    """Bytes of temporary files of dead writers removed (part of ``freed``)."""
    repaired: list[str] = field(default_factory=list)
    """One line per damaged item met, and what was done about it."""
    evicted: list[str] = field(default_factory=list)
    """One line per step whose latest record ``max_size`` trimmed (it runs again)."""

    def __str__(self) -> str:
        temporary = (f" ({human_size(self.temporary)} of temporary files left by dead writers)"
                     if self.temporary else "")
        return "\n".join([*self.repaired, *self.evicted,
                          f"removed {count(self.records, 'record')}, freed "
                          f"{human_size(self.freed)}{temporary}; the store holds "
                          f"{human_size(self.size)}"])


EVICTED = "evicted: its record was trimmed by gc --max-size"
"""The ``error`` of a step whose latest record gc trimmed: its state is ``invalidated`` (it
runs again on its next run) and this says why, where status shows a step's error."""


def gc(store: Store, max_size: int | None = None) -> GcReport:
    """Repair damage, remove records no session references and the values no record needs,
    then the oldest records until the values take at most ``max_size`` bytes.

    Trimming drops whole versions of steps, oldest finished first; a step whose latest record is
    dropped becomes ``invalidated`` with the error :data:`EVICTED`, stores nothing (its ``size``
    is 0, so status totals stay true) and runs again next time; the report names it.
    """
    temporary = sweep(store.directory / "tmp")
    found = survey(store)
    repaired = []
    for damage in found.damage:
        try:
            damage.repair()
            repaired.append(damage.outcome())
        except DamagedRecordError as err:  # damaged again meanwhile: the next gc sees it
            repaired.append(f"{damage}; not repaired: {describe(err)}")
    if found.damage:
        found = survey(store)  # what the repairs left
    catalog = Catalog(store)
    live = {key for ptr in found.pointers for key in ptr.keys}
    # A step running in a live kernel writes its values, then its record, then its pointer:
    # what it wrote since it started is not garbage yet.
    since = in_flight_since(found.pointers)
    orphans = [key for key in found.records if key not in live
               and (since is None or _finished(store, key) < since)]
    for key in orphans:
        store.delete(record_key(key))
    removed = len(orphans)
    freed = temporary + store.collect(_digests(found, live), keep_after=since)
    evicted = []
    if max_size is not None and store.values_size() > max_size:
        versions = sorted(((p.finished, p.session, p.step, key)
                           for p in found.pointers for key in p.keys), key=lambda v: v[0])
        for _, session, step, key in versions:
            if store.values_size() <= max_size:
                break
            if _drop_version(catalog, session, step, key, error=EVICTED):
                evicted.append(f"evicted step {step!r} of session {session!r}: its record was "
                               f"trimmed to fit --max-size {human_size(max_size)}; it runs "
                               "again on its next run")
            live.discard(key)
            store.delete(record_key(key))
            removed += 1
            freed += store.collect(_digests(found, live), keep_after=since)
    return GcReport(records=removed, freed=freed, size=store.values_size(),
                    temporary=temporary, repaired=repaired, evicted=evicted)


def in_flight_since(pointers: list[StepPointer]) -> float | None:
    """When the oldest step still running in a live kernel started; None when none runs."""
    running = [p.started for p in pointers
               if p.state == "running" and process_alive(p.pid, p.proc_start, p.host)]
    return min(running) if running else None


def _finished(store: Store, key: str) -> float:
    """When a record was written (unverified read); 0 when it cannot be told."""
    try:
        doc = store.get_json(record_key(key)) or {}
    except DamagedRecordError:
        return 0.0
    finished = doc.get("finished", 0.0)
    return float(finished) if isinstance(finished, int | float) else 0.0


def _digests(found: Survey, live: set[str]) -> set[str]:
    """Values that live records and unfinished journals still need."""
    return set().union(found.journals, *(found.records.get(key, set()) for key in live))


def _drop_version(catalog: Catalog, session: str, step: str, key: str,
                  error: str | None = None) -> bool:
    """Forget one version of a step; True when it was the latest, which invalidates the step
    (``error`` says why) and leaves it storing nothing."""
    latest = False

    def drop(ptr: StepPointer | None) -> StepPointer | None:
        nonlocal latest
        if ptr is None:
            return None
        ptr.keys = [k for k in ptr.keys if k != key]
        if ptr.key == key:
            latest = True
            ptr.state, ptr.key, ptr.size = "invalidated", None, 0
            ptr.error = error or ptr.error
        return ptr

    catalog.update_pointer(session, step, drop)
    return latest


# -- clear -------------------------------------------------------------------------------------


@dataclass
class ClearReport:
    """What ``clear`` dropped."""

    sessions: int
    steps: int
    lines: list[str] = field(default_factory=list)
    """Damaged items met (dropped with their session, or repaired by the gc that follows)."""

    def __str__(self) -> str:
        return "\n".join([*self.lines, f"cleared {count(self.sessions, 'session')} "
                                        f"({count(self.steps, 'step')})"])


def clear(store: Store, sessions: list[str]) -> ClearReport:
    """Drop every step of ``sessions`` (records, pointers, journals, order), then collect."""
    catalog = Catalog(store)
    report = ClearReport(sessions=len(sessions), steps=0)
    for name in sessions:
        _, damaged = read_steps(store, name)
        for err in damaged:  # the catalog cannot read them: dropped here, their records by gc
            store.delete(err.key)
            report.lines.append(f"{describe(err)}; dropped with its session")
        report.steps += catalog.reset(name) + len(damaged)
        # Journals of steps whose pointer was damaged too: every key of the session's range.
        store.delete_prefix(JOURNAL_PREFIX + pointer_prefix(name)[len(POINTER_PREFIX):])
    report.lines += gc(store).repaired
    return report
