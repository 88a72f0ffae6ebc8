"""Pickling functions and classes defined in the notebook, bound to the namespace they live in.

cloudpickle saves a notebook function by value together with copies of the globals it reads, and
restores it with a private globals dict. Restored into a notebook, such a function would keep
reading those frozen copies instead of the notebook's current values (and would drag a copy of
every DataFrame it mentions into the store). Here a function whose globals are the notebook's
namespace is saved without them, and re-bound on load to the namespace the value is restored
into, so it behaves exactly like the function the cell defined.

A notebook class (``__module__ == "__main__"``, alone or as the type of an instance anywhere in a
value) is saved by value as cloudpickle does, plus its qualified name and code fingerprint. On
load, the class of that name in the namespace is used instead when its fingerprint is the same,
so restored instances are instances of the notebook's class (``isinstance``, ``match``,
``singledispatch``, enum members by identity). Otherwise the class is rebuilt by value, once per
name and fingerprint in this process, so that all the values saved with it share one class: an
instance made before its class was changed keeps the old class and its behaviour, as it would in
a plain run. The fingerprint covers what a later read of the class can see, class attributes
included, so a class whose attributes its instances changed (a counter, a registry) also comes
back by value. Rejected: looking classes up by name alone (an edited class would silently give old
instances new behaviour) and assigning ``__class__`` of restored instances (it breaks slots,
C-level layouts and objects that cache their type).

>>> import enum
>>> class Color(enum.Enum):
...     RED = 1
>>> Color.__module__ = "__main__"  # as if a notebook cell had defined it
>>> stream = dumps([Color.RED], {}, lambda buf: True)
>>> with restoring_into({"Color": Color}):
...     pickle.loads(stream)[0] is Color.RED
True

The rebuild functions below (``_skeleton``, ``_fill``, ``_class``, ``_fill_class``) are referenced
by name from stored records: keep their names.
"""

from __future__ import annotations

import builtins
import contextlib
import copyreg
import functools
import io
import pickle
import types
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import cloudpickle

from kitteh_magic.errors import InternalWarning

_NAMESPACE: ContextVar[dict[str, Any] | None] = ContextVar("kitteh_namespace", default=None)
_EMPTY = "__kitteh_empty_cell__"

_ClassKey = tuple[str, str]
"""A notebook class's qualified name and code fingerprint."""

_BUILT: weakref.WeakValueDictionary[_ClassKey, type] = weakref.WeakValueDictionary()
"""Classes rebuilt by value in this process, so that later loads of the same class share them."""

_UNFILLED: weakref.WeakKeyDictionary[type, _ClassKey] = weakref.WeakKeyDictionary()
"""Classes rebuilt by value whose attributes are still to be set (by :func:`_fill_class`)."""


def _skeleton(code: types.CodeType, name: str, cells: int) -> types.FunctionType:
    """A function over the namespace being restored into, closure cells still empty."""
    namespace = _NAMESPACE.get()
    if namespace is None:  # loaded outside a notebook: a private, minimal namespace
        namespace = {"__builtins__": builtins, "__name__": "__main__"}
        _NAMESPACE.set(namespace)
    closure = tuple(types.CellType() for _ in range(cells)) or None
    return types.FunctionType(code, namespace, name, None, closure)


def _fill(fn: types.FunctionType, state: dict[str, Any]) -> None:
    """Second phase: defaults, attributes and closure contents (may refer back to ``fn``)."""
    fn.__defaults__ = state["defaults"]
    fn.__kwdefaults__ = state["kwdefaults"]
    fn.__qualname__ = state["qualname"]
    fn.__doc__ = state["doc"]
    fn.__module__ = state["module"]
    fn.__annotations__ = state["annotations"]
    fn.__dict__.update(state["dict"])
    for cell, content in zip(fn.__closure__ or (), state["cells"], strict=True):
        if content != _EMPTY:
            cell.cell_contents = content


def _class(qualname: str, print_: str, make: Callable[..., type], args: tuple[Any, ...]) -> type:
    """The namespace's class of this name and fingerprint, else the class rebuilt by value.

    ``make(*args)`` is cloudpickle's skeleton of the class; its attributes are set afterwards by
    :func:`_fill_class` (they may refer back to the class: methods using ``super()``, members).
    """
    key = (qualname, print_)
    found = _namespace_class(key)
    if found is None:  # not `or`: a class can be false (an enum without members has len 0)
        found = _BUILT.get(key)
    if found is not None:
        return found
    built = make(*args)
    _UNFILLED[built] = key
    return built


def _fill_class(cls: type, state: tuple[Callable[[type, Any], object], Any]) -> None:
    """Second phase: the attributes of a class rebuilt by value; nothing for a class found."""
    key = _UNFILLED.pop(cls, None)
    if key is None:
        return
    setstate, attributes = state
    setstate(cls, attributes)
    _BUILT[key] = cls


def _namespace_class(key: _ClassKey) -> type | None:
    namespace = _NAMESPACE.get()
    qualname, print_ = key
    if namespace is None or "<locals>" in qualname:
        return None
    head, *path = qualname.split(".")
    found = namespace.get(head)
    for name in path:  # a nested class: Outer.Inner
        found = vars(found).get(name) if isinstance(found, type) else None
    if not isinstance(found, type) or getattr(found, "__module__", None) != "__main__":
        return None
    if found.__qualname__ != qualname:
        return None
    try:
        same = _class_print(found, namespace) == print_
    except Exception as exc:  # the value still loads, with the class it was saved with
        warnings.warn(InternalWarning(
            f"kitteh_magic could not fingerprint the notebook's class {qualname} "
            f"({type(exc).__name__}: {exc}); restored values keep the class they were saved "
            f"with, so isinstance(..., {qualname}) is False for them. Re-run the step that made "
            f"them (%%durable NAME --force) to make them with the current class."), stacklevel=2)
        return None
    return found if same else None


def _class_print(cls: type, namespace: dict[str, Any] | None) -> str:
    """The code fingerprint of a notebook class, the same before and after pickling instances.

    Pickling an instance caches ``__slotnames__`` on its class (``copyreg``), an attribute the
    fingerprint sees, and a class's fingerprint covers the classes it refers to (bases, field
    types). So the cache is filled first on this class and on every notebook class of the
    namespace, when saving and when loading alike, and the two sides compare equal.
    """
    from kitteh_magic.steps.fingerprint import code_fingerprint  # the store sits below the steps

    for klass in (*cls.__mro__, *(namespace or {}).values()):
        if (isinstance(klass, type) and getattr(klass, "__module__", None) == "__main__"
                and "__slotnames__" not in vars(klass)):
            copyreg._slotnames(klass)  # type: ignore[attr-defined]
    return code_fingerprint(cls)


def _default_reduce(cls: type) -> bool:
    """Whether an exception class pickles with ``BaseException``'s own ``__reduce__``."""
    def owner(name: str) -> type:
        return next(klass for klass in cls.__mro__ if name in vars(klass))

    return owner("__reduce__") is BaseException and owner("__reduce_ex__") is object


def _exception(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """An exception rebuilt without calling its class's ``__init__`` (state is set after)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


def _cached_property(func: Any, attrname: str | None, doc: str | None) -> Any:
    """A ``functools.cached_property`` rebuilt from its function and attribute name."""
    prop: Any = functools.cached_property(func)
    prop.attrname, prop.__doc__ = attrname, doc
    return prop


_SINGLEDISPATCH: types.CodeType = functools.singledispatch(lambda value: value).__code__  # type: ignore[attr-defined]
"""The code of every ``functools.singledispatch`` wrapper (one inner function for all)."""
_SINGLEDISPATCH_ATTRIBUTES = frozenset(functools.singledispatch(lambda value: value).__dict__)
"""What ``singledispatch`` and ``update_wrapper`` put on a wrapper; the rest is the user's."""


def _singledispatch(func: Callable[..., Any], registry: list[tuple[type, Callable[..., Any]]],
                    attributes: dict[str, Any]) -> Any:
    """A ``functools.singledispatch`` function rebuilt from its function and registry."""
    dispatcher: Any = functools.singledispatch(func)
    for cls, impl in registry:
        dispatcher.register(cls, impl)
    dispatcher.__dict__.update(attributes)
    return dispatcher


def _cell_content(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not assigned yet)
        return _EMPTY


class NotebookPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, except that functions over ``namespace`` are saved without their globals and
    notebook classes are saved with their name and fingerprint (see the module's docstring)."""

    def __init__(self, file: io.BytesIO, namespace: dict[str, Any],
                 buffer_callback: Callable[[pickle.PickleBuffer], bool]) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffer_callback)
        self._namespace = namespace

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self._namespace:
            closure = obj.__closure__ or ()
            state = {"defaults": obj.__defaults__, "kwdefaults": obj.__kwdefaults__,
                     "qualname": obj.__qualname__, "doc": obj.__doc__, "module": obj.__module__,
                     "annotations": obj.__annotations__, "dict": dict(obj.__dict__),
                     "cells": [_cell_content(c) for c in closure]}
            # The six-item form creates the function first, so a closure that refers back to it
            # (a recursive inner function) finds it in the memo.
            return (_skeleton, (obj.__code__, obj.__name__, len(closure)), state, None, None,
                    _fill)
        if isinstance(obj, types.FunctionType) and obj.__code__ is _SINGLEDISPATCH:
            # Its closure holds a WeakKeyDictionary (the dispatch cache), which cannot be
            # pickled: rebuilt from the function it wraps and its registry instead.
            registry = [(cls, impl) for cls, impl in obj.registry.items()  # type: ignore[attr-defined]
                        if cls is not object]
            own = {k: v for k, v in obj.__dict__.items()
                   if k not in _SINGLEDISPATCH_ATTRIBUTES}
            return (_singledispatch, (obj.__wrapped__, registry, own))  # type: ignore[attr-defined]
        if issubclass(type(obj), type) and getattr(obj, "__module__", None) == "__main__":
            return self._class_reduce(obj)
        if isinstance(obj, BaseException) and _default_reduce(type(obj)):
            # The default rebuilds it as ``cls(*args)``: an ``__init__`` with keyword-only or
            # extra arguments then fails on every load. Rebuilt as ``copy`` does instead.
            return (_exception, (type(obj), obj.args), obj.__dict__ or None)
        if type(obj) is functools.cached_property:
            # Before Python 3.12 it holds an RLock, which cannot be pickled: every notebook
            # class with a cached_property would make its instances unsaveable.
            return (_cached_property, (obj.func, obj.attrname, obj.__doc__))
        return super().reducer_override(obj)

    def _class_reduce(self, cls: type) -> Any:
        reduced = super().reducer_override(cls)
        if not isinstance(reduced, tuple) or len(reduced) != 6:
            return reduced  # a class cloudpickle saves by reference
        make, args, attributes, _, _, setstate = reduced
        # Six items again: the class is in the memo before its attributes are loaded, whichever
        # class _class picked, so attributes that refer back to it get that same class.
        return (_class, (cls.__qualname__, _class_print(cls, self._namespace), make, args),
                (setstate, attributes), None, None, _fill_class)


def dumps(obj: object, namespace: dict[str, Any] | None,
          buffer_callback: Callable[[pickle.PickleBuffer], bool]) -> bytes:
    """Pickle ``obj`` (protocol 5); notebook functions are bound to ``namespace`` if given."""
    if namespace is None:
        stream: bytes = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffer_callback)
        return stream
    sink = io.BytesIO()
    NotebookPickler(sink, namespace, buffer_callback).dump(obj)
    return sink.getvalue()


@contextlib.contextmanager
def restoring_into(namespace: dict[str, Any] | None) -> Iterator[None]:
    """Functions and classes unpickled inside this block are bound to ``namespace``."""
    token = _NAMESPACE.set(namespace)
    try:
        yield
    finally:
        _NAMESPACE.reset(token)
