"""The step whose activities are being journaled in this context, if any.

``dispatch`` sets it while a durable cell runs; code of kitteh_magic's own that acts for the cell
(a journaled cursor's ``execute``) journals its calls through :func:`journaled`. Kept apart from
``dispatch`` so that such code does not import the dispatcher that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

from .classify import Verdict, classify


class Runner(Protocol):
    """The running step's journal (``dispatch.StepActivities``)."""

    def run(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any: ...


STEP: ContextVar[Any] = ContextVar("kitteh_step", default=None)
"""The running step's :class:`Runner`, or None outside durable cells."""
INSIDE: ContextVar[bool] = ContextVar("kitteh_inside_activity", default=False)
"""True while an activity runs: calls it makes are not journaled on their own (no nesting)."""


def journaled(callee: Any, impl: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
    """``impl(*args, **kwargs)``, journaled as a call of ``callee`` with those arguments.

    The journal's identity (callee name, argument digest) and the verdict are ``callee``'s, as
    if the cell had called it; ``impl`` makes the call and returns what is journaled. Outside a
    durable step, inside an activity, or when ``callee`` is inline, ``impl`` is simply called.
    """
    step: Runner | None = STEP.get()
    if step is None or INSIDE.get():
        return impl(*args, **kwargs)
    verdict = classify(callee)
    if not verdict.activity:
        return impl(*args, **kwargs)
    return step.run(impl, verdict, args, kwargs)
