"""Activities: the calls inside a durable step that leave the notebook, journaled and replayed.

``api`` is what users type (``km.activity``, ``km.inline``, ``km.effect``) and ``marks`` what it
puts on callees; ``classify`` decides per called object, ``policy`` retries and times calls out,
and ``rewriter`` routes every call of a durable cell through the runtime dispatcher
(``dispatch``, with the running step in ``current``), which keeps the ``journal``. What a call
returns or raises is made replayable by ``results`` (responses), ``cursors`` (DB-API cursors)
and ``failures`` (exceptions). Calls made on other threads and in coroutines run on branches of the
step (``forks``); ``mapping`` is ``km.map``.
"""

from __future__ import annotations

from .api import activity, effect, inline
from .classify import Verdict, classify, configure, rules
from .cursors import JournaledCursor
from .failures import JournaledError
from .mapping import map
from .marks import Mark, Marked, mark_of
from .policy import ActivityTimeout, RetryPolicy

__all__ = [
    "ActivityTimeout",
    "JournaledCursor",
    "JournaledError",
    "Mark",
    "Marked",
    "RetryPolicy",
    "Verdict",
    "activity",
    "classify",
    "configure",
    "effect",
    "inline",
    "map",
    "mark_of",
    "rules",
]
