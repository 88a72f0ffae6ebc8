"""Status of a session's steps, derived from metadata only, and its renderings.

States written by kernels are running, done, failed and invalidated; status derives the rest:
``replayed`` (done, and the last run was a replay), ``interrupted`` (running, but the process that
ran it is gone) and ``stale`` (done, but a step it read from has since produced something else).

Metadata is read as damaged disks and hands leave it: a document that is not JSON, lacks a field
or has one of the wrong type is reported (one line naming its key) and skipped, never a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import math
import os
import socket
import time
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import unquote

import psutil

from .errors import DamagedRecordError
from .steps.records import (
    JOURNAL_PREFIX,
    POINTER_PREFIX,
    RECORD_PREFIX,
    SESSION_PREFIX,
    SessionDoc,
    StepPointer,
    pointer_prefix,
)
from .store.blobs import abandoned, temporary_bytes

if TYPE_CHECKING:
    from .steps.lease import LeaseDoc, Party
    from .store import Store

HOST = socket.gethostname()
VALUE_PREFIX = "km1/val/"  # the store's (store.value_key); status never imports the store
LEASE_PREFIX = "km1/lease/"  # steps/lease.py builds its keys on it
_T = TypeVar("_T")


# -- reading metadata that may be damaged ------------------------------------------------------


def checked(cls: type[_T], key: str, doc: object) -> _T:
    """``cls.from_doc(doc)`` once every field of ``doc`` has its declared JSON type, deeply.

    >>> checked(SessionDoc, "km1/ses/a", {"name": "a", "created": 1})
    SessionDoc(name='a', notebook=None, created=1, next_seq=0)
    >>> checked(SessionDoc, "km1/ses/a", {"name": "a", "next_seq": "1"}).name
    Traceback (most recent call last):
    kitteh_magic.errors.DamagedRecordError: record 'km1/ses/a' is damaged (format): ...

    Raises:
        DamagedRecordError: ``format``: not an object, a required field missing, or a field
            (or an item inside one) of the wrong type.
    """
    if not isinstance(doc, dict):
        raise DamagedRecordError(key, "format", f"JSON {type(doc).__name__}, expected an object")
    for name, (hint, required) in _fields(cls).items():
        if name not in doc:
            if required:
                raise DamagedRecordError(key, "format", f"field {name!r} is missing")
        elif not _fits(doc[name], hint):
            raise DamagedRecordError(key, "format", f"field {name!r} is {_shown(doc[name])}, "
                                     f"expected {_hint_text(hint)}")
    result: _T = cls.from_doc(doc)  # type: ignore[attr-defined]
    return result


_FIELDS: dict[type, dict[str, tuple[Any, bool]]] = {}


def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """``name -> (type, required)`` of a document class, from its annotations."""
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls)
        fields = _FIELDS[cls] = {
            f.name: (hints[f.name], f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)}
    return fields


def _fits(value: object, hint: Any) -> bool:
    """Whether a JSON value has the type an annotation of the schema declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    if hint is float:  # JSON writes 1.0 as 1 when a writer passed an int
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return not isinstance(hint, type) or isinstance(value, hint)


def _hint_text(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _shown(value: object) -> str:
    text = repr(value)
    return f"{'null' if value is None else type(value).__name__} {text[:40]}"


def read_sessions(store: Store) -> tuple[list[str], list[DamagedRecordError]]:
    """Every session of the store, oldest first, and the damaged session documents met.

    A session is named by its key, so one whose document is damaged (or gone while its steps
    remain) is still listed.
    """
    created: dict[str, float] = {}
    damaged: list[DamagedRecordError] = []
    for key, doc in store.json_items(SESSION_PREFIX):
        name = unquote(key[len(SESSION_PREFIX):])
        try:
            session = checked(SessionDoc, key, _raise(doc))
            if session.name != name:
                raise DamagedRecordError(key, "format", f"names session {session.name!r}")
            created[name] = session.created
        except DamagedRecordError as err:
            damaged.append(err)
            created[name] = 0.0
    for key in store.keys(POINTER_PREFIX):
        name = unquote(key[len(POINTER_PREFIX):].partition("/")[0])
        created.setdefault(name, 0.0)
    return sorted(created, key=lambda n: (created[n], n)), damaged


def read_steps(store: Store, session: str) -> tuple[list[StepPointer], list[DamagedRecordError]]:
    """The session's step pointers in order of first appearance, and the damaged ones met."""
    prefix = pointer_prefix(session)
    found: list[StepPointer] = []
    damaged: list[DamagedRecordError] = []
    for key, doc in store.json_items(prefix):
        try:
            ptr = checked(StepPointer, key, _raise(doc))
            step = unquote(key[len(prefix):])
            if (ptr.session, ptr.step) != (session, step):
                raise DamagedRecordError(key, "format", f"names step {ptr.step!r} of session "
                                         f"{ptr.session!r}")
            found.append(ptr)
        except DamagedRecordError as err:
            damaged.append(err)
    return sorted(found, key=lambda p: (p.seq, p.started)), damaged


def _raise(doc: dict[str, Any] | DamagedRecordError) -> dict[str, Any]:
    if isinstance(doc, DamagedRecordError):
        raise doc
    return doc


_KINDS = ((SESSION_PREFIX, "session document"), (POINTER_PREFIX, "step pointer"),
          (RECORD_PREFIX, "step record"), (JOURNAL_PREFIX, "journal document"),
          (VALUE_PREFIX, "value"), (LEASE_PREFIX, "step lease"))


def describe(err: DamagedRecordError) -> str:
    """A damaged item in one line, named by what it is and its key.

    >>> describe(DamagedRecordError("km1/ses/a", "format", "field 'name' is missing"))
    "session document 'km1/ses/a' is damaged (format): field 'name' is missing"
    """
    kind = next((name for prefix, name in _KINDS if err.key.startswith(prefix)), "document")
    what = "is missing" if err.reason == "missing" else f"is damaged ({err.reason})"
    return " ".join(f"{kind} {err.key!r} {what}{': ' + err.detail if err.detail else ''}"
                    .split())


# -- status ------------------------------------------------------------------------------------


def process_alive(pid: int, proc_start: float, host: str) -> bool:
    """Whether the process that wrote a "running" state still runs (unknown hosts count as alive).

    The start time tells a live kernel from an unrelated process that reused its pid.
    """
    if host and host != HOST:
        return True
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return False
    return not proc_start or abs(started - proc_start) < 2.0


Producers = dict[str, tuple[float, str, str]]
"""name -> (when, input fingerprint, step) of the latest finished step that produced it."""


def _stale_inputs(ptr: StepPointer, producers: Producers) -> list[tuple[str, str]]:
    """The inputs of a finished step that a later step produced anew: (name, that step)."""
    found = []
    for name, fingerprint in sorted(ptr.inputs.items()):
        latest = producers.get(name)
        if latest and latest[0] > ptr.finished and latest[1] != fingerprint:
            found.append((name, latest[2]))
    return found


def _derived_state(ptr: StepPointer, stale: list[tuple[str, str]], alive: bool) -> str:
    if ptr.state == "running":
        return "running" if alive else "interrupted"
    if ptr.state != "done":
        return ptr.state
    if stale:
        return "stale"
    return "replayed" if ptr.last == "replayed" else "done"


def stale_reason(stale: list[tuple[str, str]]) -> str | None:
    """Why a step is stale, naming each changed input and the step that made it anew.

    >>> stale_reason([("x", "load")])
    "x changed: step 'load' made a new x after this step ran"
    >>> stale_reason([("a", "s1"), ("b", "s2")])
    "a changed: step 's1' made a new a after this step ran; b changed: step 's2' made a new b"
    >>> stale_reason([]) is None
    True
    """
    if not stale:
        return None
    parts = [f"{name} changed: step {step!r} made a new {name}" for name, step in stale]
    parts[0] += " after this step ran"
    return "; ".join(parts)


def step_rows(steps: list[StepPointer], leases: Mapping[str, LeaseDoc] | None = None,
              now: float | None = None) -> list[dict[str, Any]]:
    """One status row per step, in session order.

    A row's fields (times in seconds, sizes in bytes): ``step``, ``state`` (running, done,
    replayed, failed, interrupted, stale, invalidated), ``cell_id``, ``seq``, ``runs``,
    ``replays``, ``duration`` (its last execution), ``saved`` (the time saved in the session,
    the one figure every view shows: ARCHITECTURE.md), ``size``, ``activities``, ``resumed``,
    ``started``, ``finished`` (epoch seconds), ``error``, ``key``, and:

    * ``outputs``: the names the step's latest version saved, sorted;
    * ``stale_reason``: for a stale step, which input changed and which step made it anew
      (:func:`stale_reason`), else null;
    * ``loaded``: whether the kernel that last ran or replayed the step (or restored it) still
      runs on this host, so its values are in a kernel; false after a restart with nothing run
      (the values are stored, not loaded);
    * with the session's ``leases`` (``steps/lease.py``), ``holder``: the live kernel that holds
      the step's lease (pid, host, kernel id, since when; else null) and ``waiters``: the live
      kernels waiting for it (the same fields).
    """
    producers: Producers = {}
    for ptr in steps:
        if ptr.state == "done":
            for name, token in ptr.outputs.items():
                if name not in producers or producers[name][0] < ptr.finished:
                    producers[name] = (ptr.finished, "t:" + token, ptr.step)
    now = time.time() if now is None else now
    leases = leases or {}
    alive: dict[tuple[int, float, str], bool] = {}
    rows = []
    for p in steps:
        lease = leases.get(p.step)
        holder = lease.live_holder(now) if lease is not None else None
        waiters = lease.live_waiters(now) if lease is not None else []
        who = (p.pid, p.proc_start, p.host)
        if who not in alive:
            alive[who] = bool(p.pid) and process_alive(*who)
        stale = _stale_inputs(p, producers) if p.state == "done" else []
        rows.append({
            "step": p.step, "state": _derived_state(p, stale, alive[who]),
            "cell_id": p.cell_id, "seq": p.seq, "runs": p.runs, "replays": p.replays,
            "duration": p.duration, "saved": p.saved, "size": p.size,
            "activities": p.activities, "started": p.started, "finished": p.finished,
            "error": p.error, "key": p.key, "resumed": p.resumed,
            "outputs": sorted(p.outputs), "stale_reason": stale_reason(stale),
            "loaded": alive[who] and (not p.host or p.host == HOST),
            "holder": _party(holder) if holder is not None else None,
            "waiters": [_party(w) for w in waiters],
        })
    return rows


def _party(party: Party) -> dict[str, Any]:
    # Not its heartbeat: a row that changed every 2 s would redraw the sidebar at every poll.
    return {"pid": party.pid, "host": party.host, "kernel": party.kernel, "since": party.since}


def lease_text(row: dict[str, Any]) -> str:
    """Who runs a step and who waits for it, or "" when no kernel holds its lease.

    >>> lease_text({"holder": {"pid": 7, "host": "a"}, "waiters": [{"pid": 9, "host": "b"}]})
    'kernel 7 on a runs it; kernel 9 on b waits'
    """
    holder, waiters = row.get("holder"), row.get("waiters") or []
    if not holder and not waiters:
        return ""
    text = f"kernel {holder['pid']} on {holder['host']} runs it" if holder else ""
    if waiters:
        names = ", ".join(f"kernel {w['pid']} on {w['host']}" for w in waiters)
        text += ("; " if text else "") + f"{names} wait{'s' if len(waiters) == 1 else ''}"
    return text


def session_status(store: Store, session: str, now: float | None = None) -> dict[str, Any]:
    """The JSON status of one session (what ``%durable status --json`` prints).

    ``steps`` are its rows (:func:`step_rows`) and ``totals`` sum them. ``temporary`` is what
    the store's temporary files hold besides (blobs being written, and the ``abandoned`` files
    of dead writers, which gc removes): a scan of ``tmp/``, cheap enough for the sidebar's
    polling. ``damaged`` has one line per step pointer or lease that could not be read (the
    step, or who runs it, is left out).
    """
    from .steps.lease import read_leases  # lease.py reads this module's helpers

    pointers, damaged = read_steps(store, session)
    leases, damaged_leases = read_leases(store, session)
    rows = step_rows(pointers, leases, now)
    return {
        "session": session,
        "store": store.location,
        "time": time.time() if now is None else now,
        "steps": rows,
        "totals": {
            "steps": len(rows),
            "size": sum(r["size"] for r in rows),
            "saved": sum(r["saved"] for r in rows),
            "duration": sum(r["duration"] for r in rows),
        },
        "temporary": temporary_usage(store),
        "damaged": [describe(err) for err in [*damaged, *damaged_leases]],
    }


def temporary_usage(store: Store) -> dict[str, int]:
    """Bytes in the store's temporary files: all of them, and those of dead writers."""
    tmp = store.directory / "tmp"
    return {"size": temporary_bytes(tmp), "abandoned": sum(size for _, size in abandoned(tmp))}


def temporary_text(usage: dict[str, int]) -> str:
    """What temporary files hold, or "" when there are none.

    >>> temporary_text({"size": 3 * 2**20, "abandoned": 2**20})
    '3.0 MB of temporary files (1.0 MB left by dead writers: gc removes them)'
    """
    if not usage["size"]:
        return ""
    text = f"{human_size(usage['size'])} of temporary files"
    if usage["abandoned"]:
        text += f" ({human_size(usage['abandoned'])} left by dead writers: gc removes them)"
    return text


def store_text(store: Store) -> str:
    """What the whole store takes on disk: values, temporary files, the index's metadata and
    free pages, and anything else in the directory, such as damaged indexes moved aside (walks
    ``blobs/``: for the command line, not for polling)."""
    values, temporary = store.values_size(), temporary_usage(store)
    if store.shared:
        cached = _bytes_under(store.directory / "blobs")
        text = (f"the store holds {human_size(values)} of values on its server; this machine "
                f"caches {human_size(cached)} of them in {store.directory}")
        return text + (f", {temporary_text(temporary)}" if temporary["size"] else "")
    own = sum(_bytes_under(store.directory / part) for part in ("index", "blobs", "tmp"))
    other = _bytes_under(store.directory) - own
    text = (f"the store takes {human_size(own + other)} on disk: "
            f"{human_size(values)} of values")
    if temporary["size"]:
        text += f", {temporary_text(temporary)}"
    text += f", {human_size(max(own - values - temporary['size'], 0))} of metadata"
    if other > 0:
        aside = any(store.directory.glob("index.damaged-*"))
        text += f", {human_size(other)} of other files" + (
            " (damaged indexes moved aside, index.damaged-*: delete them once not needed)"
            if aside else "")
    return text


def _bytes_under(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def count(n: int, one: str, many: str | None = None) -> str:
    """A number and its noun, in the number's grammar.

    >>> count(1, "step"), count(2, "step"), count(0, "activity", "activities")
    ('1 step', '2 steps', '0 activities')
    """
    return f"{n} {one if n == 1 else many or one + 's'}"


def human_size(size: float) -> str:
    """Bytes for people.

    >>> human_size(0), human_size(1536), human_size(3 * 2**30)
    ('0 B', '1.5 KB', '3.0 GB')
    """
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """Durations for people; the JupyterLab extension's ``formatSeconds`` gives the same text.

    Rounded before it is split, so 119.6 s reads "2 min 0 s", never "1 min 60 s".

    >>> human_seconds(0.0042), human_seconds(12.34), human_seconds(3725)
    ('4 ms', '12.3 s', '1 h 2 min')
    >>> human_seconds(0.9996), human_seconds(59.96), human_seconds(119.6), human_seconds(0)
    ('1.0 s', '1 min 0 s', '2 min 0 s', '0 s')
    """
    if not math.isfinite(seconds) or seconds <= 0:
        return "0 s"
    if seconds < 0.9995:
        return f"{round(seconds * 1000)} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    total = round(seconds)
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min {total - minutes * 60} s"
    return f"{minutes // 60} h {minutes % 60} min"


_COLUMNS = ("step", "state", "runs", "duration", "saved", "size", "activities")


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["step"], row["state"], f"{row['runs']}+{row['replays']}",
            human_seconds(row["duration"]), human_seconds(row["saved"]),
            human_size(row["size"]), str(row["activities"])]


def render_text(status: dict[str, Any]) -> str:
    """A plain-text table for terminals."""
    header = ["step", "state", "runs+replays", "duration", "saved", "size", "activities"]
    table = [header] + [_cells(r) for r in status["steps"]]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [f"session {status['session']!r} in {status['store']}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
              for line in table]
    lines += [f"step {r['step']!r}: {lease_text(r)}" for r in status["steps"] if lease_text(r)]
    lines += [f"step {r['step']!r} is stale: {r['stale_reason']}" for r in status["steps"]
              if r.get("stale_reason")]
    lines.append(_totals_text(status["totals"]))
    if status.get("temporary", {}).get("size"):
        lines.append("plus " + temporary_text(status["temporary"]))
    lines += [f"damaged, skipped: {line}" for line in status.get("damaged", ())]
    return "\n".join(lines)


def _totals_text(totals: dict[str, Any]) -> str:
    """The totals line of a status.

    >>> _totals_text({"steps": 1, "size": 2048, "saved": 2.5})
    '1 step, 2.0 KB stored, 2.5 s saved'
    """
    return (f"{count(totals['steps'], 'step')}, {human_size(totals['size'])} stored, "
            f"{human_seconds(totals['saved'])} saved")


# JupyterLab's theme variables, so that both themes keep the contrast (the fallbacks, for other
# frontends, are at least 3:1 on white). The colour marks a glyph beside the state's text, not
# the text itself: no single colour reads at 4.5:1 on both the light and the dark theme.
_STATE_COLOURS = {
    "done": "var(--jp-success-color1, #2e7d32)",
    "replayed": "var(--jp-content-link-color, #0d47a1)",
    "running": "var(--jp-info-color0, #006064)",
    "failed": "var(--jp-error-color1, #c62828)",
    "interrupted": "var(--jp-warn-color0, #e65100)",
    "stale": "var(--jp-warn-color0, #e65100)",
    "invalidated": "var(--jp-ui-font-color2, #757575)",
}
_FAINT = "color:var(--jp-ui-font-color2, #616161)"


def render_html(status: dict[str, Any]) -> str:
    """An HTML table for notebooks, in the frontend's theme colours."""
    head = "".join(f"<th>{c}</th>" for c in
                   ("step", "state", "runs+replays", "duration", "saved", "size", "activities"))
    body = []
    for row in status["steps"]:
        cells = [html.escape(c) for c in _cells(row)]
        colour = _STATE_COLOURS.get(row["state"], "currentcolor")
        cells[1] = (f'<span style="color:{colour}" aria-hidden="true">●</span> '
                    f'<span style="font-weight:600">{cells[1]}</span>')
        notes = [text for text in (lease_text(row), row.get("stale_reason")) if text]
        cells[1] += "".join(f'<br><small style="{_FAINT}">{html.escape(t)}</small>'
                            for t in notes)
        title = html.escape(row["error"] or "")
        body.append(f'<tr title="{title}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    caption = (f"session <code>{html.escape(status['session'])}</code>: "
               + html.escape(_totals_text(status["totals"])))
    if status.get("temporary", {}).get("size"):
        caption += f", plus {html.escape(temporary_text(status['temporary']))}"
    for line in status.get("damaged", ()):
        caption += (f'<br><span style="color:{_STATE_COLOURS["failed"]}" aria-hidden="true">'
                    f"⚠</span> damaged, skipped: {html.escape(line)}")
    return (f'<table class="kitteh-status"><caption style="text-align:left">{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def invalidated_text(forget_journal: bool, steps: int = 1) -> str:
    """What an invalidation means for the next run, for ``steps`` steps.

    >>> invalidated_text(False).split("; ")[0]
    'its next run executes the cell'
    >>> invalidated_text(True, 2)
    'their next runs execute the cells and make every call again'
    """
    if steps == 1:
        if forget_journal:
            return "its next run executes the cell and makes every call again"
        return ("its next run executes the cell; the calls it made come from its journal "
                "(--forget-journal: made again)")
    if forget_journal:
        return "their next runs execute the cells and make every call again"
    return ("their next runs execute the cells; the calls they made come from their journals "
            "(--forget-journal: made again)")


def journal_source(state: str) -> str:
    """Which execution ``%durable log`` lists, by the state of the step's pointer."""
    if state in ("running", "failed", "interrupted"):
        return "unfinished execution: its next run takes these calls from the journal"
    if state == "invalidated":
        return "kept journal: the next run takes these calls from it"
    return "latest execution"


def render_journal(step: str, calls: list[dict[str, Any]], source: str = "") -> str:
    """``%durable log``: one line per call of ``Catalog.journal_view``, in the order they ended,
    under a heading that says which execution they belong to (``source``, :func:`journal_source`).
    """
    if not calls:
        return f"step {step!r} has no journaled activities"
    width = max(4, *(len(c["label"]) for c in calls))
    heading = f"step {step!r}: {count(len(calls), 'activity', 'activities')}"
    lines = [heading + (f" ({source})" if source else ""),
             f"{'#':>{width}}  {'call':<40} {'duration':>9} {'attempts':>8}  outcome"]
    for call in calls:
        outcome = {"ok": "ok", "error": call.get("error") or "error",
                   "started": "started, never finished"}.get(call["outcome"], call["outcome"])
        if call.get("from_journal"):
            outcome += " (from the journal)"
        if call.get("unsaved"):
            outcome += f" (result not saved: {call['unsaved']})"
        if call.get("effect"):
            outcome += " [effect]"
        lines.append(f"{call['label']:>{width}}  {call['call'][:40]:<40} "
                     f"{human_seconds(call['duration']):>9} {call['attempts']:>8}  {outcome}")
    return "\n".join(lines)
