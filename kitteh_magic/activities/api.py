"""What users type to override the classification: ``km.activity``, ``km.inline``, ``km.effect``.

A mark never changes what a call does: a marked Python function is returned unchanged, with the
mark as its ``__kitteh__`` attribute, so calling it outside a durable cell behaves exactly as
before. Objects that cannot take an attribute (bound methods, builtins, callable instances) are
wrapped in a :class:`Marked` that forwards the call.

>>> @activity(retries=2)
... def fetch(url):
...     return url
>>> fetch("x"), mark_of(fetch).kind, mark_of(fetch).policy.retries
('x', 'activity', 2)
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .classify import forget
from .marks import ATTRIBUTE, Kind, Mark, Marked, mark_of
from .policy import RetryPolicy

__all__ = ["Kind", "Mark", "Marked", "activity", "effect", "inline", "mark_of"]

F = TypeVar("F", bound=Callable[..., Any])


def _apply(obj: Any, mark: Mark, who: str) -> Any:
    if not callable(obj) and not isinstance(obj, staticmethod | classmethod):
        raise TypeError(f"km.{who} expects a function or another callable, got "
                        f"{type(obj).__name__} {obj!r}")
    if isinstance(obj, staticmethod | classmethod):
        # ``@km.activity`` above ``@staticmethod``: mark the function the descriptor hands out.
        _apply(obj.__func__, mark, who)
        return obj
    if type(obj) is Marked:
        obj = obj.__wrapped__
    if type(obj) is types.MethodType and not isinstance(obj.__self__, type):
        # A method bound on the spot (``km.activity(model.fit)``): its effect on the receiver is
        # part of its result. Only Python-level methods: the receiver of a C method (a list, a
        # database connection) has no state the journal could record and give back.
        mark = Mark(mark.kind, mark.policy, mark.name, records_receiver=mark.kind != "inline")
        return Marked(obj, mark)
    if type(obj) is types.FunctionType or (isinstance(obj, type) and _settable(obj)):
        setattr(obj, ATTRIBUTE, mark)
        forget(obj)  # a verdict cached before the mark must not outlive it
        return obj
    return Marked(obj, mark)


def _settable(cls: type) -> bool:
    try:
        setattr(cls, ATTRIBUTE, None)
    except (TypeError, AttributeError):  # builtin and extension types are immutable
        return False
    delattr(cls, ATTRIBUTE)
    return True


def _policy(retries: int, backoff: float, timeout: float | None,
            retry_on: tuple[type[BaseException], ...] | type[BaseException],
            name: str | None, who: str) -> RetryPolicy:
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"km.{who}(name=...) must be a non-empty string, got {name!r}")
    try:
        return RetryPolicy(retries, backoff, timeout, retry_on)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise type(err)(f"km.{who}: {err}") from None


@overload
def activity(fn: F, /, *, retries: int = ..., backoff: float = ..., timeout: float | None = ...,
             retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
             name: str | None = ...) -> F: ...
@overload
def activity(fn: None = None, /, *, retries: int = 0, backoff: float = 1.0,
             timeout: float | None = None,
             retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
             name: str | None = None) -> Callable[[F], F]: ...
def activity(fn: Any = None, /, *, retries: int = 0, backoff: float = 1.0,
             timeout: float | None = None,
             retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
             name: str | None = None) -> Any:
    """Make every call of ``fn`` in a durable cell an activity: journaled, replayed, retried.

    Usable as ``@km.activity``, ``@km.activity(retries=3, ...)`` and, for a one-off,
    ``km.activity(model.fit)(X, y)`` (a bound method marked on the spot: its receiver's new state
    is recorded with the result).

    Args:
        fn: the callable (omitted when used as ``@km.activity(...)``).
        retries: extra attempts after a failure.
        backoff: seconds before the first retry, doubling for each next one.
        timeout: seconds one attempt may take.
        retry_on: the exception classes that are retried.
        name: the name to journal the call under (default: the callee's qualified name).

    Returns:
        ``fn`` itself with its mark, a :class:`Marked` wrapper for objects that cannot take
        attributes, or a decorator when ``fn`` is omitted.

    Raises:
        ValueError: a negative ``retries`` or ``backoff``, a non-positive ``timeout``.
        TypeError: ``retry_on`` is not made of exception classes, ``fn`` is not callable.
    """
    mark = Mark("activity", _policy(retries, backoff, timeout, retry_on, name, "activity"), name)
    if fn is None:
        return lambda f: _apply(f, mark, "activity")
    return _apply(fn, mark, "activity")


@overload
def effect(fn: F, /, *, retries: int = ..., backoff: float = ..., timeout: float | None = ...,
           retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
           name: str | None = ...) -> F: ...
@overload
def effect(fn: None = None, /, *, retries: int = 0, backoff: float = 1.0,
           timeout: float | None = None,
           retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
           name: str | None = None) -> Callable[[F], F]: ...
def effect(fn: Any = None, /, *, retries: int = 0, backoff: float = 1.0,
           timeout: float | None = None,
           retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
           name: str | None = None) -> Any:
    """Like :func:`activity`, for a call that must never run twice (sending an email, a payment).

    The journal notes the call as started before making it; if the kernel dies while it runs,
    replay stops with ``IncompleteEffectError`` instead of running it again. Retries after an
    exception the call raised are still made when asked for.

    Args:
        fn: the callable (omitted when used as ``@km.effect(...)``).
        retries: extra attempts after a failure.
        backoff: seconds before the first retry, doubling for each next one.
        timeout: seconds one attempt may take.
        retry_on: the exception classes that are retried.
        name: the name to journal the call under.

    Returns:
        As :func:`activity`.

    Raises:
        ValueError: as :func:`activity`.
        TypeError: as :func:`activity`.
    """
    mark = Mark("effect", _policy(retries, backoff, timeout, retry_on, name, "effect"), name)
    if fn is None:
        return lambda f: _apply(f, mark, "effect")
    return _apply(fn, mark, "effect")


@overload
def inline(fn: F, /) -> F: ...
@overload
def inline(fn: None = None, /) -> Callable[[F], F]: ...
def inline(fn: Any = None, /) -> Any:
    """Never journal calls of ``fn``: they run every time, on replay too.

    For deterministic helpers from packages the classifier does not know (an unknown
    third-party call defaults to activity). Usable as ``@km.inline``, ``@km.inline()`` and
    ``km.inline(obj.method)(...)``.

    Args:
        fn: the callable.

    Returns:
        ``fn`` with its mark, or a :class:`Marked` wrapper, or a decorator.
    """
    mark = Mark("inline", None, None)
    if fn is None:
        return lambda f: _apply(f, mark, "inline")
    return _apply(fn, mark, "inline")
