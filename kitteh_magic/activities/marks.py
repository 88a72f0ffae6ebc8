"""Marks: a user's decision about a callee, kept on the callee itself.

A mark never changes what a call does: a marked Python function carries the mark as its
``__kitteh__`` attribute; objects that cannot take an attribute (bound methods, builtins, callable
instances) are wrapped in a :class:`Marked` that forwards the call. ``api`` puts marks on and
``classify`` reads them; both import this module, so that ``classify`` never imports ``api``.

>>> mark_of(len) is None
True
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .policy import RetryPolicy

Kind = Literal["activity", "inline", "effect"]

ATTRIBUTE = "__kitteh__"


@dataclass(frozen=True)
class Mark:
    """A user's decision about a callee.

    Attributes:
        kind: ``activity`` (journaled), ``inline`` (never journaled) or ``effect`` (journaled,
            and never run twice).
        policy: the activity's own retry policy (None for inline).
        name: the callee name to journal under instead of the computed one.
        records_receiver: the callee is a bound method marked on the spot
            (``km.activity(model.fit)``): the journal records the receiver's new state too.
    """

    kind: Kind
    policy: RetryPolicy | None
    name: str | None
    records_receiver: bool = False


class Marked:
    """A callable that cannot carry a mark itself, with its mark.

    Calling it calls the wrapped object. ``__name__``, ``__qualname__``, ``__doc__`` and
    ``__module__`` are the wrapped object's.
    """

    __kitteh__: Mark
    __wrapped__: Callable[..., Any]
    __name__: str
    __qualname__: str

    def __init__(self, wrapped: Callable[..., Any], mark: Mark) -> None:
        functools.update_wrapper(self, wrapped, updated=())
        self.__kitteh__ = mark

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<km.{self.__kitteh__.kind} {self.__wrapped__!r}>"


def mark_of(obj: object) -> Mark | None:
    """The mark the user put on ``obj``, if any.

    Bound methods carry their function's mark; ``functools.partial`` objects their function's;
    a class only its own (a subclass of a marked class is not marked).
    """
    kind = type(obj)
    if kind is Marked:
        return obj.__kitteh__  # type: ignore[attr-defined, no-any-return]
    if kind is types.MethodType:
        return mark_of(obj.__func__)  # type: ignore[attr-defined]
    if kind is functools.partial:
        return mark_of(obj.func)  # type: ignore[attr-defined]
    if kind is types.FunctionType or isinstance(obj, type):
        found = vars(obj).get(ATTRIBUTE)
        return found if isinstance(found, Mark) else None
    return None
