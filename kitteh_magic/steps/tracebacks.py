"""Tracebacks that show the user's code: the cell as typed and the user's frames only.

Two things make a durable cell's traceback differ from a plain one, and both are undone here:

* the cell's first line reaches Python as the string ``'%%durable boom'``
  (``transformer.mark_durable_cell``), and IPython's tracebacks read a cell's lines from
  ``linecache``: :func:`show_typed_line` puts ``%%durable boom`` back in the cached lines (the
  line numbers of the body are the user's already: the marker keeps its line);
* calls go through kitteh_magic's frames (the dispatcher, retry policies, branches of
  hand-offs, the step run): :func:`user_frames` unlinks them from the exception's traceback
  before it leaves the step, so every frontend (IPython, a plain ``traceback`` print, ``%debug``)
  shows what a plain run of the cell shows, down to the last frame.

Unlinking was chosen over IPython's ``__tracebackhide__``: IPython honours that flag only in its
own rendering, writes "[... skipping hidden 1 frame]" in the user's traceback, and never hides
the last frame, which for Ctrl-C in ``time.sleep`` is the dispatcher's. Frames of calls made
outside a step (a plain cell calling a function a durable cell defined, whose calls go through
the dispatcher) are marked with ``__tracebackhide__`` in ``dispatch.call``, so IPython hides
them there. ``$KITTEH_MAGIC_FULL_TRACEBACKS=1`` keeps every frame (debugging kitteh_magic).
"""

from __future__ import annotations

import ast
import linecache
import os
from pathlib import Path
from types import TracebackType

FULL_ENV = "KITTEH_MAGIC_FULL_TRACEBACKS"

_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep
_MARKER_STARTS = ("'%%durable", '"%%durable')


def _ours(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE)


def user_frames(exc: BaseException) -> None:
    """Unlink kitteh_magic's frames from ``exc``'s traceback and from those of its causes and
    contexts (in place: ``tb_next`` is writable). A traceback made only of them becomes None;
    the frames the exception goes through next are added as usual."""
    if os.environ.get(FULL_ENV):
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = _trimmed(current.__traceback__)
        current = current.__cause__ or current.__context__


def _trimmed(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and _ours(tb):
        tb = tb.tb_next
    head = node = tb
    while node is not None:
        following = node.tb_next
        while following is not None and _ours(following):
            following = following.tb_next
        if following is not node.tb_next:
            node.tb_next = following
        node = following
    return head


def show_typed_line(filename: str) -> None:
    """In the cached lines of a cell, ``'%%durable boom'`` (line 1, as compiled) becomes
    ``%%durable boom`` (as typed), so tracebacks and ``%debug`` list the cell as the user
    wrote it. Cheap (a dictionary lookup) and idempotent.

    >>> linecache.cache["<cell>"] = (0, None, ["'%%durable boom'\\n", "1/0\\n"], "<cell>")
    >>> show_typed_line("<cell>"); linecache.cache["<cell>"][2]
    ['%%durable boom\\n', '1/0\\n']
    """
    entry = linecache.cache.get(filename)
    if entry is None or len(entry) != 4 or not entry[2]:
        return
    first = entry[2][0]
    if not first.startswith(_MARKER_STARTS):
        return
    try:
        typed = ast.literal_eval(first.strip())
    except (ValueError, SyntaxError):
        return
    if isinstance(typed, str):
        lines = [typed + "\n", *entry[2][1:]]
        linecache.cache[filename] = (entry[0], entry[1], lines, entry[3])
