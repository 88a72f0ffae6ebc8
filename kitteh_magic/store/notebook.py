"""Pickling functions and classes defined in the notebook, bound to the namespace they live in.

cloudpickle saves a notebook function by value together with copies of the globals it reads, and
restores it with a private globals dict. Restored into a notebook, such a function would keep
reading those frozen copies instead of the notebook's current values (and would drag a copy of
every DataFrame it mentions into the store). Here a function whose globals are the notebook's
namespace is saved without them, and re-bound on load to the namespace the value is restored
into, so it behaves exactly like the function the cell defined.

The two rebuild functions below are referenced by name from stored records: keep their names.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import pickle
import types
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import cloudpickle

_NAMESPACE: ContextVar[dict[str, Any] | None] = ContextVar("kitteh_namespace", default=None)
_EMPTY = "__kitteh_empty_cell__"


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


def _cell_content(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not assigned yet)
        return _EMPTY


class NotebookPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, except that functions over ``namespace`` are saved without their globals."""

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
        return super().reducer_override(obj)


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
    """Functions unpickled inside this block are bound to ``namespace``."""
    token = _NAMESPACE.set(namespace)
    try:
        yield
    finally:
        _NAMESPACE.reset(token)
