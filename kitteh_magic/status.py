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


def _derived_state(ptr: StepPointer, producers: dict[str, tuple[float, str]]) -> str:
    if ptr.state == "running":
        return "running" if process_alive(ptr.pid, ptr.proc_start, ptr.host) else "interrupted"
    if ptr.state != "done":
        return ptr.state
    for name, fingerprint in ptr.inputs.items():
        latest = producers.get(name)
        if latest and latest[0] > ptr.finished and latest[1] != fingerprint:
            return "stale"
    return "replayed" if ptr.last == "replayed" else "done"


def step_rows(steps: list[StepPointer], leases: Mapping[str, LeaseDoc] | None = None,
              now: float | None = None) -> list[dict[str, Any]]:
    """One status row per step, in session order.

    With the session's ``leases`` (``steps/lease.py``), a row names the live kernel that holds
    the step's lease (``holder``: pid, host, kernel id, since when; else null) and the live
    kernels waiting for it (``waiters``, the same fields).
    """
    producers: dict[str, tuple[float, str]] = {}
    for ptr in steps:
        if ptr.state == "done":
            for name, token in ptr.outputs.items():
                if name not in producers or producers[name][0] < ptr.finished:
                    producers[name] = (ptr.finished, "t:" + token)
    now = time.time() if now is None else now
    leases = leases or {}
    rows = []
    for p in steps:
        lease = leases.get(p.step)
        holder = lease.live_holder(now) if lease is not None else None
        waiters = lease.live_waiters(now) if lease is not None else []
        rows.append({
            "step": p.step, "state": _derived_state(p, producers), "cell_id": p.cell_id,
            "seq": p.seq, "runs": p.runs, "replays": p.replays, "duration": p.duration,
            "saved": p.saved, "size": p.size, "activities": p.activities, "started": p.started,
            "finished": p.finished, "error": p.error, "key": p.key, "resumed": p.resumed,
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
        "store": str(store.directory),
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
    """Durations for people.

    >>> human_seconds(0.0042), human_seconds(12.34), human_seconds(3725)
    ('4 ms', '12.3 s', '1 h 2 min')
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


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
    totals = status["totals"]
    lines.append(f"{totals['steps']} steps, {human_size(totals['size'])} stored, "
                 f"{human_seconds(totals['saved'])} saved by replay")
    if status.get("temporary", {}).get("size"):
        lines.append("plus " + temporary_text(status["temporary"]))
    lines += [f"damaged, skipped: {line}" for line in status.get("damaged", ())]
    return "\n".join(lines)


_STATE_COLOURS = {"done": "#2e7d32", "replayed": "#1565c0", "running": "#ef6c00",
                  "failed": "#c62828", "stale": "#8d6e63", "interrupted": "#ad1457",
                  "invalidated": "#757575"}


def render_html(status: dict[str, Any]) -> str:
    """An HTML table for notebooks."""
    head = "".join(f"<th>{c}</th>" for c in
                   ("step", "state", "runs+replays", "duration", "saved", "size", "activities"))
    body = []
    for row in status["steps"]:
        cells = [html.escape(c) for c in _cells(row)]
        colour = _STATE_COLOURS.get(row["state"], "inherit")
        cells[1] = f'<span style="color:{colour};font-weight:600">{cells[1]}</span>'
        if lease_text(row):
            cells[1] += f'<br><small>{html.escape(lease_text(row))}</small>'
        title = html.escape(row["error"] or "")
        body.append(f'<tr title="{title}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    totals = status["totals"]
    caption = (f"session <code>{html.escape(status['session'])}</code>: {totals['steps']} steps, "
               f"{human_size(totals['size'])} stored, "
               f"{human_seconds(totals['saved'])} saved by replay")
    if status.get("temporary", {}).get("size"):
        caption += f", plus {html.escape(temporary_text(status['temporary']))}"
    for line in status.get("damaged", ()):
        caption += f'<br><span style="color:#c62828">damaged, skipped: {html.escape(line)}</span>'
    return (f'<table class="kitteh-status"><caption style="text-align:left">{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _label(entry: dict[str, Any]) -> str:
    """``3`` for the third call of the step's main line, ``map0[17]:1`` on a branch."""
    branch = entry.get("branch") or ""
    number = entry.get("pos", 0) + 1
    return f"{branch}:{number}" if branch else str(number)


def render_journal(step: str, source: str, entries: list[dict[str, Any]]) -> str:
    """``%durable log``: one line per activity, in call order."""
    if not entries:
        return f"step {step!r} has no journaled activities ({source})"
    width = max(4, *(len(_label(e)) for e in entries))
    lines = [f"step {step!r}: {len(entries)} activities ({source})",
             f"{'#':>{width}}  {'call':<40} {'duration':>9} {'attempts':>8}  outcome"]
    for entry in entries:
        outcome = {"done": "ok", "error": entry.get("error_text") or "error",
                   "started": "started, never finished"}.get(entry.get("state", ""), "?")
        if entry.get("replayed"):
            outcome += " (from the journal)"
        if entry.get("unsaved"):
            outcome += f" (result not saved: {entry['unsaved']})"
        if entry.get("effect"):
            outcome += " [effect]"
        lines.append(f"{_label(entry):>{width}}  {entry['callee'][:40]:<40} "
                     f"{human_seconds(entry.get('duration', 0.0)):>9} "
                     f"{entry.get('attempts', 1):>8}  {outcome}")
    return "\n".join(lines)
