"""The metadata schema: JSON documents that describe sessions and steps.

These documents are what status, the command line and the Jupyter server extension read. They are
plain JSON (never unpickled), so a process without the signing key can show them. Values are
referenced by ``ValueRef`` and live elsewhere in the store.

Keys (all begin with the store's format prefix ``km1/``):

* ``km1/ses/<session>``: :class:`SessionDoc`, one per session;
* ``km1/ptr/<session>/<step>``: :class:`StepPointer`, a step's latest state in its session;
* ``km1/rec/<step key>``: :class:`StepRecord`, what one version of a step left (signed).

Session and step names are percent-encoded in keys, so a session named by a path cannot collide
with another session's prefix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeAlias
from urllib.parse import quote

from ..errors import DamagedRecordError

KEY_PREFIX = "km1/"
SESSION_PREFIX = KEY_PREFIX + "ses/"
POINTER_PREFIX = KEY_PREFIX + "ptr/"
RECORD_PREFIX = KEY_PREFIX + "rec/"
JOURNAL_PREFIX = KEY_PREFIX + "jrn/"

ValueRef: TypeAlias = dict[str, Any]
"""``{"digest": str, "size": int, "kind": "inline" | "blob", "type": str}`` (see ``store``)."""

State = Literal["running", "done", "failed", "interrupted", "invalidated"]
"""States written by a kernel ("interrupted": Ctrl-C stopped it). Status derives more: replayed,
stale, and interrupted for a "running" step whose kernel is gone."""


def _quote(name: str) -> str:
    return quote(name, safe="")


def session_key(session: str) -> str:
    """Key of a session document.

    >>> session_key("sub/analysis.ipynb")
    'km1/ses/sub%2Fanalysis.ipynb'
    """
    return SESSION_PREFIX + _quote(session)


def pointer_prefix(session: str) -> str:
    """Prefix of every step pointer of a session."""
    return POINTER_PREFIX + _quote(session) + "/"


def pointer_key(session: str, step: str) -> str:
    """Key of one step's pointer.

    >>> pointer_key("a.ipynb", "load data")
    'km1/ptr/a.ipynb/load%20data'
    """
    return pointer_prefix(session) + _quote(step)


def record_key(step_key: str) -> str:
    """Key of the record of one version of a step."""
    return RECORD_PREFIX + step_key


def journal_prefix(session: str, step: str) -> str:
    """Prefix of the activity journal of a step's unfinished execution."""
    return JOURNAL_PREFIX + _quote(session) + "/" + _quote(step) + "/"


def journal_head_key(session: str, step: str) -> str:
    """Key of a journal's head: which execution of which step version its entries belong to.

    Outside :func:`journal_prefix`'s range ('#' sorts before '/'), so range reads of the
    entries never meet it.

    >>> journal_head_key("a.ipynb", "fetch")
    'km1/jrn/a.ipynb/fetch#head'
    """
    return journal_prefix(session, step)[:-1] + "#head"


def entry_key(session: str, step: str, position: int) -> str:
    """Key of one journal entry; zero-padded so that key order is call order.

    >>> entry_key("a.ipynb", "fetch", 3)
    'km1/jrn/a.ipynb/fetch/00000003'
    """
    return journal_prefix(session, step) + f"{position:08d}"


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


class _Doc:
    """JSON round trip shared by the documents; unknown fields are ignored (newer writers)."""

    def to_doc(self) -> dict[str, Any]:
        # Shallow on purpose: documents are encoded as JSON at once, so ``dataclasses.asdict``'s
        # deep copy would only cost time (it dominated the cost of journaling an activity).
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        names = _field_names(cls)
        return cls(**{k: v for k, v in doc.items() if k in names})

    @classmethod
    def checked(cls, key: str, doc: object) -> Self:
        """:meth:`from_doc` after checking every field's JSON type (metadata read from disk).

        Raises:
            DamagedRecordError: not an object, a required field missing, or a field of the
                wrong type (``format``).
        """
        if not isinstance(doc, dict):
            raise DamagedRecordError(key, "format", f"JSON {type(doc).__name__}, not an object")
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in doc:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise DamagedRecordError(key, "format", f"field {f.name!r} is missing")
                continue
            value, kind = doc[f.name], str(f.type)
            expected = _JSON_TYPES.get(kind)
            if expected is not None and not isinstance(value, expected):
                raise DamagedRecordError(key, "format", f"field {f.name!r} is a "
                                         f"{type(value).__name__}, expected {kind}")
            items = value.values() if isinstance(value, dict) else value
            inner = _ITEMS.get(kind)
            wrong = [v for v in items if not isinstance(v, inner)] if inner is not None else []
            if wrong:
                raise DamagedRecordError(key, "format", f"field {f.name!r} holds a "
                                         f"{type(wrong[0]).__name__}, expected {kind}")
            allowed = _CHOICES.get(kind)
            if allowed is not None and value not in allowed:
                raise DamagedRecordError(key, "format", f"field {f.name!r} is {value!r}, "
                                         f"expected one of {sorted(allowed)}")
        return cls.from_doc(doc)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": (int, float), "bool": bool,
    "str | None": (str, type(None)), "State": str,
    "list[str]": list, "dict[str, str]": dict, "dict[str, Any]": dict,
    "dict[str, dict[str, Any]]": dict, "list[dict[str, Any]]": list,
    "ValueRef | None": (dict, type(None)), "dict[str, Any] | None": (dict, type(None)),
    "Literal['executed', 'replayed', '']": str,
    'Literal["executed", "replayed", ""]': str,
}
"""Annotation (as written, ``from __future__ import annotations``) -> the JSON types allowed."""

_ITEMS: dict[str, type] = {
    "list[str]": str, "dict[str, str]": str, "dict[str, dict[str, Any]]": dict,
    "list[dict[str, Any]]": dict,
}
"""Containers whose items must be of one JSON type."""

_CHOICES: dict[str, frozenset[str]] = {
    "State": frozenset({"running", "done", "failed", "interrupted", "invalidated"}),
    "Literal['executed', 'replayed', '']": frozenset({"executed", "replayed", ""}),
    'Literal["executed", "replayed", ""]': frozenset({"executed", "replayed", ""}),
}
"""Annotations whose values are a closed set."""


@dataclass
class SessionDoc(_Doc):
    """A session: one durable execution of a notebook."""

    name: str
    notebook: str | None = None
    created: float = 0.0
    next_seq: int = 0
    """Order of first appearance of steps; `restore` follows it (notebook order on Run All)."""


@dataclass
class OutputEntry(_Doc):
    """One name a step produced."""

    ref: ValueRef | None
    """Where the value is; None when it could not be saved (see ``StepRecord.unsaved``)."""
    token: str
    type: str
    size: int = 0
    member: str | None = None
    """The name of the value in its group (``outputs.py``); None when the ref is the value
    itself (a step whose outputs are one object, and records written before groups)."""


@dataclass
class StepRecord(_Doc):
    """What one version of a step left: enough to replay it without running it."""

    key: str
    session: str
    step: str
    code: str
    mode: str = "durable"
    cell_id: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name -> OutputEntry document."""
    deleted: list[str] = field(default_factory=list)
    value: dict[str, Any] | None = None
    """OutputEntry document of the last expression's value, if any."""
    events: ValueRef | None = None
    """Captured stdout/stderr/display events, a pickled list."""
    complete: bool = True
    """False when an output could not be saved: replay then re-executes the body."""
    unsaved: dict[str, str] = field(default_factory=dict)
    """name -> type of outputs that could not be saved."""
    started: float = 0.0
    finished: float = 0.0
    duration: float = 0.0
    size: int = 0
    activities: int = 0
    resumed: int = 0
    """Activities whose outcome came from the journal of an earlier, unfinished execution."""
    journal: list[dict[str, Any]] = field(default_factory=list)
    """The activity log of this version (``JournalEntry`` documents without values)."""
    imports: list[str] = field(default_factory=list)
    """Submodules of bound packages its run loaded, imported again on replay (``imports.py``)."""
    revision: int = 0
    """Counts the records written under this key (``--force`` writes a new one): a pointer
    remembers the revision it last saw, and an older one (a record written back) is refused."""


@dataclass
class JournalEntry(_Doc):
    """One journaled activity: its identity and its outcome.

    A call's identity is its branch (``forks.py``: the step's main line, or a line forked by a
    thread pool, a coroutine or ``km.map``, named by what runs on it), its callee and argument
    digest (``ident`` hashes the two), and the occurrence of that pair on the branch (DESIGN
    §4.12): so concurrent calls keep their identity whatever order they complete in, and a
    recorded result is only ever handed to the same call. ``pos`` is where on its branch the
    call was made, for the log and for the determinism check of a step's sequential part.
    Arguments are never stored, only their digest; the result and any exception are values.
    """

    pos: int
    callee: str
    args: str
    state: Literal["started", "done", "error"] = "done"
    effect: bool = False
    result: ValueRef | None = None
    error: ValueRef | None = None
    error_text: str = ""
    unsaved: str | None = None
    """Type of a result that could not be saved: replay calls it again."""
    receiver: ValueRef | None = None
    """The receiver's state after the call, for activities marked on a method."""
    duration: float = 0.0
    attempts: int = 1
    finished: float = 0.0
    awaitable: bool = False
    """The call returned an awaitable (journaled when awaited): replay returns one too."""
    execution: str = ""
    """The execution it belongs to (its journal's head); any other is refused."""
    branch: str = ""
    """The branch the call was made on; "" is the step's main line."""
    ident: str = ""
    """Digest of callee and argument digest ("" in journals written before identities)."""
    occ: int = -1
    """Which occurrence of ``ident`` on its branch the call was (0 for the first)."""
    deadline: float = 0.0
    """For a durable timer (``time.sleep``) that started: when it ends (epoch seconds)."""

    @property
    def slot(self) -> str:
        """Where the entry lives in its journal (its key after the journal's prefix)."""
        return slot_of(self.branch, self.ident, self.occ)

    @property
    def label(self) -> str:
        """How ``%durable log`` and ``%durable effect`` name the call: ``3`` (the third call of
        the main line) or ``map0[17]:1`` (the first call of item 17 of the step's first map)."""
        return f"{self.branch}:{self.pos + 1}" if self.branch else str(self.pos + 1)


def slot_of(branch: str, ident: str, occurrence: int) -> str:
    """The journal slot of a call: its branch, identity and occurrence.

    >>> slot_of("", "3f2ab1c9d0e1f2a3", 0), slot_of("task2", "3f2ab1c9d0e1f2a3", 1)
    ('3f2ab1c9d0e1f2a3#0', 'task2:3f2ab1c9d0e1f2a3#1')
    """
    tail = f"{ident}#{occurrence}"
    return f"{branch}:{tail}" if branch else tail


@dataclass
class StepPointer(_Doc):
    """A step's latest state in its session: what status and the sidebar show."""

    session: str
    step: str
    seq: int = 0
    state: State = "running"
    key: str | None = None
    """The record key of the version that ran or replayed last."""
    keys: list[str] = field(default_factory=list)
    """Every record key this step has in the session (so invalidate can drop them all)."""
    cell_id: str | None = None
    last: Literal["executed", "replayed", ""] = ""
    runs: int = 0
    replays: int = 0
    saved: float = 0.0
    """Time saved in this session, summed (ARCHITECTURE.md, "time saved"): each replay adds the
    recorded run time of the execution it replays minus its own time (never below 0), each run
    that took calls from the journal adds the time their recorded runs took (overlaps once).
    Written by kernels only."""
    duration: float = 0.0
    size: int = 0
    activities: int = 0
    resumed: int = 0
    """Activities the last execution took from the journal instead of calling them."""
    started: float = 0.0
    finished: float = 0.0
    pid: int = 0
    host: str = ""
    proc_start: float = 0.0
    """Start time of the process that runs it: with pid, tells a dead kernel from a reused pid."""
    error: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    """Input fingerprints of the latest version (status derives 'stale' from them)."""
    outputs: dict[str, str] = field(default_factory=dict)
    """name -> lineage token of the latest version's outputs."""
    revision: int = 0
    """The revision of the record of ``key`` it last executed or replayed."""
    execution: str = ""
    """The id of its latest execution (its journal's head must name it), "" when none: an
    unfinished one resumes; a finished one's journal is kept, and a run of the same version
    after ``invalidate`` continues it, taking the calls it made from the journal."""
    execution_version: str = ""
    """The step key that execution runs: another version starts a new execution."""
