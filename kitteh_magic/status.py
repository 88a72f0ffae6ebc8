"""Status of a session's steps, derived from metadata only, and its renderings.

States written by kernels are running, done, failed and invalidated; status derives the rest:
``replayed`` (done, and the last run was a replay), ``interrupted`` (running, but the process that
ran it is gone) and ``stale`` (done, but a step it read from has since produced something else).
"""

from __future__ import annotations

import html
import socket
import time
from typing import TYPE_CHECKING, Any

import psutil

from .steps.catalog import Catalog
from .steps.records import StepPointer

if TYPE_CHECKING:
    from .store import Store

HOST = socket.gethostname()


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


def step_rows(steps: list[StepPointer]) -> list[dict[str, Any]]:
    """One status row per step, in session order."""
    producers: dict[str, tuple[float, str]] = {}
    for ptr in steps:
        if ptr.state == "done":
            for name, token in ptr.outputs.items():
                if name not in producers or producers[name][0] < ptr.finished:
                    producers[name] = (ptr.finished, "t:" + token)
    return [{
        "step": p.step, "state": _derived_state(p, producers), "cell_id": p.cell_id,
        "seq": p.seq, "runs": p.runs, "replays": p.replays, "duration": p.duration,
        "saved": p.saved, "size": p.size, "activities": p.activities, "started": p.started,
        "finished": p.finished, "error": p.error, "key": p.key, "resumed": p.resumed,
    } for p in steps]


def session_status(store: Store, session: str, now: float | None = None) -> dict[str, Any]:
    """The JSON status of one session: rows and totals (what ``%durable status --json`` prints)."""
    rows = step_rows(Catalog(store).steps(session))
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
    }


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
    totals = status["totals"]
    lines.append(f"{totals['steps']} steps, {human_size(totals['size'])} stored, "
                 f"{human_seconds(totals['saved'])} saved by replay")
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
        title = html.escape(row["error"] or "")
        body.append(f'<tr title="{title}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    totals = status["totals"]
    caption = (f"session <code>{html.escape(status['session'])}</code>: {totals['steps']} steps, "
               f"{human_size(totals['size'])} stored, "
               f"{human_seconds(totals['saved'])} saved by replay")
    return (f'<table class="kitteh-status"><caption style="text-align:left">{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def render_journal(step: str, source: str, entries: list[dict[str, Any]]) -> str:
    """``%durable log``: one line per activity, in call order."""
    if not entries:
        return f"step {step!r} has no journaled activities ({source})"
    lines = [f"step {step!r}: {len(entries)} activities ({source})",
             f"{'#':>4}  {'call':<40} {'duration':>9} {'attempts':>8}  outcome"]
    for entry in entries:
        outcome = {"done": "ok", "error": entry.get("error_text") or "error",
                   "started": "started, never finished"}.get(entry.get("state", ""), "?")
        if entry.get("replayed"):
            outcome += " (from the journal)"
        if entry.get("unsaved"):
            outcome += f" (result not saved: {entry['unsaved']})"
        if entry.get("effect"):
            outcome += " [effect]"
        lines.append(f"{entry['pos'] + 1:>4}  {entry['callee'][:40]:<40} "
                     f"{human_seconds(entry.get('duration', 0.0)):>9} "
                     f"{entry.get('attempts', 1):>8}  {outcome}")
    return "\n".join(lines)
