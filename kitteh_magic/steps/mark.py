"""The step mark: how a step tells the frontend what it did, without adding an output.

When a step ends (executed, replayed, failed or interrupted), the kernel sends one IOPub
``update_display_data`` message whose ``transient.display_id`` is :data:`DISPLAY_ID` and whose
data is ``{MIME: mark}`` (metadata ``{"kitteh_magic": mark}``). Frontends update only displays
they showed with that id, and none ever is: JupyterLab's kernel connection treats an update
as handled without passing it to the cell (``@jupyterlab/services`` ``kernel/default.js``,
``_handleDisplayId``; its ``iopubMessage`` signal still carries it to extensions), its
``OutputArea`` would change nothing for an unknown id either (``@jupyterlab/outputarea``
``widget.js``, ``_onIOPub``), and nbclient's ``_update_display_id`` logs and returns, and never
turns an ``update_display_data`` into an output (``nbclient/client.py``). So a saved or exported
notebook holds exactly the original run's outputs, while a listener on IOPub (the JupyterLab
extension, ``kitteh-magic run``, the tests) reads the mark. A terminal IPython has no frontend
to listen: it prints one line for a replay or a resume instead.

A mark (all times in seconds)::

    {"step": str, "session": str,
     "state": "executed" | "replayed" | "failed" | "interrupted",
     "duration": float,   # the step's run time: this run's, or the replayed execution's
     "elapsed": float,    # what this run took (a replay: from its lookup to its last output)
     "saved": float,      # what this run saved (ARCHITECTURE.md: one definition of time saved)
     "activities": int,   # calls the step made (a replay: the replayed execution's)
     "resumed": int}      # calls this run took from the journal instead of making them
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from ..status import count, human_seconds

DISPLAY_ID = "kitteh-magic-step"
MIME = "application/vnd.kitteh-magic.step+json"


State = Literal["executed", "replayed", "failed", "interrupted"]


class Mark(TypedDict):
    """What one run of a step did (see the module docstring)."""

    step: str
    session: str
    state: State
    duration: float
    elapsed: float
    saved: float
    activities: int
    resumed: int


def state_of(exc: BaseException | None) -> State:
    """The mark's state for a step whose body ended with ``exc`` (None: it finished).

    >>> state_of(None), state_of(KeyboardInterrupt()), state_of(ValueError())
    ('executed', 'interrupted', 'failed')
    """
    if exc is None:
        return "executed"
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"


def publish(display_pub: Any | None, mark: Mark) -> None:
    """Send the mark on IOPub (a kernel), or print its line (a terminal, no publisher).

    Args:
        display_pub: IPython's display publisher; a kernel's has a ``session`` (and
            ipykernel's a ``pub_socket``).
        mark: what the run did.
    """
    session = getattr(display_pub, "session", None)
    if display_pub is None or session is None:
        line = text(mark)
        if line:
            print(line)
        return
    content = {"data": {MIME: dict(mark)}, "metadata": {"kitteh_magic": dict(mark)},
               "transient": {"display_id": DISPLAY_ID}}
    socket = getattr(display_pub, "pub_socket", None)
    if socket is None:  # a kernel other than ipykernel: its publisher's own way
        display_pub.publish(content["data"], content["metadata"],
                            transient=content["transient"], update=True)
        return
    # The message ipykernel's ``publish(update=True)`` would send, without what publish adds
    # around it: flushing stdout and stderr first (waiting for the IOPub thread: 0.3 ms per
    # step, the cost of the old replay banner), output-capture hooks (an ``Output`` widget
    # must not take the mark) and the display history. Its order relative to the cell's
    # streams does not matter; relative to the idle status it is kept (one IOPub queue).
    msg = session.msg("update_display_data", content, parent=display_pub.parent_header)
    session.send(socket, msg, ident=getattr(display_pub, "topic", b"display_data"))


def text(mark: Mark) -> str:
    """The terminal's line for a replay or a resume; "" for other runs (nothing to add).

    >>> text(Mark(step="load", session="a.ipynb", state="replayed", duration=2.5, elapsed=0.01,
    ...           saved=2.49, activities=1, resumed=0))
    "↻ replayed step 'load' (ran 2.5 s, replayed in 10 ms: saved 2.5 s)"
    """
    if mark["state"] == "replayed":
        return (f"↻ replayed step {mark['step']!r} (ran {human_seconds(mark['duration'])}, "
                f"replayed in {human_seconds(mark['elapsed'])}: saved "
                f"{human_seconds(mark['saved'])})")
    if mark["resumed"]:
        return (f"↻ step {mark['step']!r} took {count(mark['resumed'], 'call')} from its journal "
                f"(saved {human_seconds(mark['saved'])})")
    return ""
