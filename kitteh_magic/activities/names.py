"""Stable names for called objects: what a callee is called in the journal and in the lists.

A callee's name is ``module.qualname`` (``time.time``, ``builtins.len``, ``__main__.clean``);
a method's is ``module.Type.method`` of its receiver's type (``sqlite3.Connection.execute``),
and the lists are also consulted under the name of the class that defines the method, so a
notebook subclass of a database connection is still a database connection. No name contains an
id or a temporary file name, so names are the same after a kernel restart.

>>> describe(len).callee, describe([].append).callee
('builtins.len', 'builtins.list.append')
"""

from __future__ import annotations

import types
from typing import Any, NamedTuple

FUNCTION, BUILTIN, METHOD = types.FunctionType, types.BuiltinFunctionType, types.MethodType
MODULE = types.ModuleType

FUNCTION_LIKE, BOUND_LIKE, INSTANCE = 0, 1, 2
_kinds: dict[type, int] = {}


class Described(NamedTuple):
    """What :func:`describe` finds out about a callee.

    Attributes:
        callee: the name journaled (the receiver's type's for a method).
        names: the names looked up in the lists: ``callee`` and where the code is defined.
        module: the module whose code runs (``__main__`` for notebook code).
        is_class: calling it constructs an instance.
        target: where a user's mark would be: the object, or the ``__call__`` of an instance.
    """

    callee: str
    names: tuple[str, ...]
    module: str
    is_class: bool
    target: object


def kind_of(kind: type, fn: object) -> int:
    """What the objects of type ``kind`` are when called, decided once per type.

    Returns:
        ``FUNCTION_LIKE`` for objects that name themselves (numpy ufuncs, Cython functions),
        ``BOUND_LIKE`` for other bound methods (``method-wrapper``), ``INSTANCE`` for instances
        called through their type's ``__call__``.
    """
    found = _kinds.get(kind)
    if found is None:
        if not isinstance(getattr(fn, "__qualname__", None), str):
            found = INSTANCE
        elif isinstance(getattr(fn, "__self__", None), MODULE | types.NoneType):
            found = FUNCTION_LIKE
        else:
            found = BOUND_LIKE
        _kinds[kind] = found
    return found


def module_of(obj: object) -> str:
    """``obj.__module__``; code without one was made by ``exec`` in the notebook."""
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else "__main__"


def _qualname(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return name if isinstance(name, str) else type(obj).__qualname__


def full_name(obj: object) -> str:
    """``module.qualname`` of a function or class."""
    return f"{module_of(obj)}.{_qualname(obj)}"


def _method(owner: type, name: str, target: object) -> Described:
    definer = next((c for c in owner.__mro__ if name in c.__dict__), owner)
    callee = f"{full_name(owner)}.{name}"
    return Described(callee, (callee, f"{full_name(definer)}.{name}"), module_of(definer),
                     False, target)


def describe(fn: Any) -> Described:
    """Name a callee and say where its code lives.

    Args:
        fn: a function, class, bound or unbound method, builtin or callable instance
            (``functools.partial`` and marked wrappers are unwrapped by the caller).

    Returns:
        Its names, module and kind.
    """
    kind = type(fn)
    if kind is FUNCTION or isinstance(fn, type):
        full = full_name(fn)
        return Described(full, (full,), module_of(fn), kind is not FUNCTION, fn)
    if kind is METHOD:
        receiver = fn.__self__
        owner = receiver if isinstance(receiver, type) else type(receiver)
        func = fn.__func__
        callee = f"{full_name(owner)}.{getattr(func, '__name__', _qualname(func))}"
        return Described(callee, (callee, full_name(func)), module_of(func), False, fn)
    if hasattr(fn, "__objclass__"):  # an unbound C method: list.append, str.join
        return _method(fn.__objclass__, fn.__name__, fn)
    if kind is BUILTIN or kind_of(kind, fn) != INSTANCE:
        receiver = getattr(fn, "__self__", None)
        if receiver is None or isinstance(receiver, MODULE):
            # A module-level builtin (``time.time`` is bound to the time module).
            module = getattr(fn, "__module__", None)
            if not isinstance(module, str):
                module = receiver.__name__ if receiver is not None else "builtins"
            callee = f"{module}.{_qualname(fn)}"
            return Described(callee, (callee,), module, False, fn)
        # A C method bound to an instance, or to a class (``datetime.datetime.now``).
        owner = receiver if isinstance(receiver, type) else type(receiver)
        return _method(owner, getattr(fn, "__name__", "__call__"), fn)
    return _method(kind, "__call__", vars(kind).get("__call__") or kind.__call__)
