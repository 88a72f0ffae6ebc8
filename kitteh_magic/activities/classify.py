"""Which calls are activities: decided by the called object, never by its name in the source.

``classify(fn)`` looks at what is actually called: a mark (``@km.activity``, ``@km.inline``,
``@km.effect``) decides; else an entry of the two lists that names this very object (see below);
else the object's qualified name (``module.qualname``, for a method ``module.Type.method`` of its
receiver's type, and of the class that defines it) is looked up in the lists, the most specific
entry winning; else a function written in the notebook, a builtin or the standard library is
inline, and anything else from a third-party package is an activity.

An entry that names an object (``asyncio.sleep``, ``builtins.input``, ``getpass.getpass``) is
resolved to that object (``lists.py``), and a callee that *is* it takes the entry's verdict
whatever its own name says: ``asyncio.sleep`` is defined as ``asyncio.tasks.sleep``, and in a
kernel ``input`` and ``getpass.getpass`` are ipykernel's ``raw_input`` and ``getpass`` methods,
bound to the kernel (ipykernel puts them into ``builtins`` and ``getpass`` for each execution):
a bound method is matched by its receiver's type and function, so the kernel's new bound method
of each execution is the same match. Module prefixes (``requests``) are matched by name only.

Seeded randomness is a choice worth stating: ``random`` functions and ``numpy.random``'s legacy
module-level functions (``np.random.rand``) draw from hidden global state and are activities,
while the methods of a ``numpy.random.Generator`` are inline: the generator is a value in the
notebook, saved with it, and ``np.random.default_rng`` (an activity) records its seed.

>>> import math, time
>>> classify(math.sqrt).activity, classify(time.time).activity, classify(time.time).callee
(False, True, 'time.time')
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import forks, lists
from .marks import Mark, Marked, mark_of
from .names import (
    BOUND_LIKE,
    BUILTIN,
    FUNCTION,
    FUNCTION_LIKE,
    METHOD,
    MODULE,
    Described,
    describe,
    kind_of,
)
from .policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one callee is treated in a durable cell.

    Attributes:
        activity: journal the call (True) or make it plainly (False).
        callee: qualified name, stable across kernel restarts (no ids, no temp file names).
        effect: an activity that must never run twice.
        policy: the callee's own retry policy (from its mark), to merge with the cell's.
        records_receiver: the journal records the receiver's state with the result.
        reason: a short human reason, shown by ``%durable log``.
        route: for an inline callee that hands functions to other threads
            (``Executor.map``) or makes a coroutine of the notebook's: how to call it in a
            step, so that what it hands off or makes runs on a branch of its own (``forks``).
    """

    activity: bool
    callee: str
    effect: bool = False
    policy: RetryPolicy | None = None
    records_receiver: bool = False
    reason: str = ""
    route: forks.Route | None = None


# Caches. Functions, classes and marked wrappers are keyed by id with a weak reference checked on
# every hit (no stale hit after id reuse, no leak of functions made in a loop); a bound method,
# created anew at each attribute access, by (receiver type, function or name); other objects by
# themselves, or by their type when they are instances called through ``__call__``.
_weak: dict[int, tuple[weakref.ReferenceType[Any], Verdict]] = {}
_strong: dict[Any, Verdict] = {}
_LIMIT = 1 << 16



def classify(fn: object) -> Verdict:
    """The verdict for calling ``fn`` in a durable cell (cached: 0.1 to 0.25 µs on a hit).

    Args:
        fn: the object about to be called.

    Returns:
        Whether it is an activity, under which stable name, and why.
    """
    kind = type(fn)
    if kind is BUILTIN:
        owner = fn.__self__  # type: ignore[attr-defined]
        if owner is None or type(owner) is MODULE:
            key: Any = fn
        elif isinstance(owner, type):
            key = (owner, fn.__name__, "class")  # type: ignore[attr-defined]
        else:
            key = (type(owner), fn.__name__)  # type: ignore[attr-defined]
        found = _strong.get(key)
        return found if found is not None else _remember(key, _compute(fn, key))
    if kind is FUNCTION:
        entry = _weak.get(id(fn))
        if entry is not None and entry[0]() is fn:
            return entry[1]
        return _remember_weak(fn, _compute(fn, fn))
    if kind is METHOD:
        owner = fn.__self__  # type: ignore[attr-defined]
        func = fn.__func__  # type: ignore[attr-defined]
        key = (owner, func, "class") if isinstance(owner, type) else (type(owner), func)
        found = _strong.get(key)
        return found if found is not None else _remember(key, _compute(fn, key))
    if kind is functools.partial:
        return classify(fn.func)  # type: ignore[attr-defined]
    if kind is Marked or isinstance(fn, type):
        entry = _weak.get(id(fn))
        if entry is not None and entry[0]() is fn:
            return entry[1]
        return _remember_weak(fn, _compute(fn, None))
    like = kind_of(kind, fn)
    if like == FUNCTION_LIKE:
        key = fn
    elif like == BOUND_LIKE:
        key = (type(fn.__self__), getattr(fn, "__name__", None), "bound")  # type: ignore[attr-defined]
    else:
        key = (kind, "instance")
    try:
        found = _strong.get(key)
    except TypeError:  # an unhashable function-like object
        return _compute(fn, None)
    return found if found is not None else _remember(key, _compute(fn, key))


def configure(*, activity: Iterable[str] = (), inline: Iterable[str] = (),
              reset: bool = False) -> None:
    """Add entries to the activity and inline lists.

    An entry is a module prefix (``"mylib"``, ``"mylib.client"``) or a qualified name
    (``"mylib.Client.get"``); the most specific entry that matches a callee wins, and an entry
    given here replaces a default entry with the same text. A class is called as a constructor
    (inline) unless an entry given here names it exactly.

    Args:
        activity: entries to make activities.
        inline: entries to make inline.
        reset: drop the entries configured before (back to the defaults) first.

    Raises:
        ValueError: an entry that is not a dotted name, or one given in both lists.
    """
    wanted_activity, wanted_inline = _entries(activity), _entries(inline)
    both = set(wanted_activity) & set(wanted_inline)
    if both:
        raise ValueError(f"configure: {sorted(both)} given as both activity and inline; "
                         "give each entry once")
    lists.configure(wanted_activity, wanted_inline, reset)
    forget()


def rules() -> dict[str, list[str]]:
    """The current lists: ``activity`` and ``inline`` entries, and which were ``configured``."""
    return lists.rules()


def forget(obj: object = None) -> None:
    """Drop cached verdicts (after a mark or the lists changed)."""
    _weak.clear()
    _strong.clear()


def _entries(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(f"configure: {name!r} is not a module or qualified name such as "
                             "'mylib' or 'mylib.Client.get'")
        out.append(name)
    return out


def _remember(key: Any, verdict: Verdict) -> Verdict:
    if len(_strong) >= _LIMIT:
        _strong.clear()
    _strong[key] = verdict
    return verdict


def _remember_weak(fn: object, verdict: Verdict) -> Verdict:
    key = id(fn)

    def drop(ref: weakref.ReferenceType[Any]) -> None:
        entry = _weak.get(key)
        if entry is not None and entry[0] is ref:
            del _weak[key]

    _weak[key] = (weakref.ref(fn, drop), verdict)
    return verdict


def _marked(mark: Mark, callee: str) -> Verdict:
    return Verdict(mark.kind != "inline", mark.name or callee, mark.kind == "effect", mark.policy,
                   mark.records_receiver, f"marked {mark.kind}")


def _compute(fn: object, key: Any) -> Verdict:
    """The verdict on a cache miss; ``key`` is the cache key, which is also the identity key."""
    if type(fn) is Marked:
        return _marked(fn.__kitteh__, classify(fn.__wrapped__).callee)
    described = describe(fn)
    mark = mark_of(described.target)
    if mark is not None:
        return _marked(mark, described.callee)
    route = forks.route_for(fn, described.names)
    if route is not None:
        return Verdict(False, described.callee, reason="hands functions to threads",
                       route=route)
    if key is not None and described.module.partition(".")[0] != "kitteh_magic":
        named = lists.by_identity(key)
        if named is not None:
            return Verdict(named.activity, described.callee, reason=named.reason)
    return _decide(described)


def _decide(d: Described) -> Verdict:
    top = d.module.partition(".")[0]
    if top == "kitteh_magic":
        return Verdict(False, d.callee, reason="kitteh_magic")
    if d.is_class:
        entry = lists.exact(d.callee)
        if entry is not None and entry.user and entry.activity:
            return Verdict(True, d.callee, reason=entry.reason)
        return Verdict(False, d.callee, reason="class constructor")
    best = lists.by_name(d.names)
    if best is not None:
        return Verdict(best.activity, d.callee, reason=best.reason)
    if d.module == "__main__":
        coroutine = inspect.iscoroutinefunction(d.target)
        return Verdict(False, d.callee, reason="notebook function",
                       route=forks.fork_coroutine if coroutine else None)
    if top in sys.stdlib_module_names:
        return Verdict(False, d.callee, reason="standard library")
    return Verdict(True, d.callee, reason="unknown third-party (defaults to activity)")
