"""Activities: the calls inside a durable step that leave the notebook, journaled and replayed.

``api`` is what users type (``km.activity``, ``km.inline``, ``km.effect``), ``classify`` decides
per called object, ``policy`` retries and times calls out, and ``rewriter`` routes every call of
a durable cell through the runtime dispatcher (``dispatch``), which keeps the ``journal``.
"""

from __future__ import annotations

from .api import Mark, Marked, activity, effect, inline, mark_of
from .classify import Verdict, classify, configure, rules
from .policy import ActivityTimeout, RetryPolicy

__all__ = [
    "ActivityTimeout",
    "Mark",
    "Marked",
    "RetryPolicy",
    "Verdict",
    "activity",
    "classify",
    "configure",
    "effect",
    "inline",
    "mark_of",
    "rules",
]
