"""Code fingerprints: notebook functions and classes hashed by what they do, not where they live.

A cell's file name (``ipykernel_<pid>/...``) changes on every restart, and cloudpickle restores a
notebook function as a new object, so code is hashed by its bytecode, constants and defaults,
never by file name or line number. Also here: the globals a notebook function reads and writes,
read from its bytecode, which the engine follows to find a step's indirect inputs and outputs.

Values and code refer to each other (a function's defaults and closure are values, a dict may hold
a function), so this module and :mod:`.fingerprint` import each other as modules and
look names up at call time, which works whichever is imported first.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dis
import functools
import threading
from collections.abc import Iterable
from types import CodeType, FunctionType, MethodType
from typing import Any, Final

from kitteh_magic.steps import fingerprint

#: Class attributes that say nothing about behaviour, or that only hold runtime bookkeeping.
_SKIPPED_CLASS_ATTRIBUTES: Final = frozenset({"__dict__", "__weakref__", "__module__"})

#: Bytecode instructions that read a name from the module globals.
_GLOBAL_LOADS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_GLOBAL_STORES: Final = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})


def is_notebook_object(obj: object) -> bool:
    """True for a function or class defined by notebook code (or a method of one).

    Notebook code runs with ``__name__ == "__main__"``; cloudpickle restores such functions with
    the same ``__module__``, so restored and freshly defined objects are treated alike.
    """
    if isinstance(obj, MethodType):
        obj = obj.__func__
    return isinstance(obj, FunctionType | type) and getattr(obj, "__module__", None) == "__main__"


def by_code(obj: FunctionType | type) -> bool:
    """Notebook code, and code pickle cannot name (lambdas, local functions and classes)."""
    qualname = getattr(obj, "__qualname__", "")
    return is_notebook_object(obj) or "<locals>" in qualname or "<lambda>" in qualname


def code_fingerprint(obj: object) -> str:
    """The fingerprint of a function's or class's code, stable across restarts and pickling.

    Functions: bytecode, constants (nested code objects recursively), names, argument layout,
    flags, exception table, defaults, closure contents and ``__wrapped__``. Classes: name,
    bases, metaclass and every attribute (methods by code, other values by content where they
    have one, else by type name). File names and line numbers are left out on purpose.

    Raises:
        TypeError: ``obj`` is neither a function, a method nor a class.
    """
    if isinstance(obj, MethodType):
        obj = obj.__func__
    if not isinstance(obj, FunctionType | type):
        raise TypeError(
            f"code_fingerprint needs a function or class, got {fingerprint.type_name(obj)}"
        )
    active = _active()
    if id(obj) in active:
        # A class whose attributes refer back to it (enum members, a registry of instances).
        return fingerprint.digest(b"r", obj.__qualname__)
    active.add(id(obj))
    try:
        if isinstance(obj, type):
            return fingerprint.digest(b"k", *_class_parts(obj))
        return fingerprint.digest(b"c", *_function_parts(obj))
    finally:
        active.discard(id(obj))


def global_reads(fn: object) -> frozenset[str]:
    """Names a notebook function (or the methods of a notebook class) reads as globals.

    Read from the bytecode of the function and of its nested code. Builtins (``len``) are left
    out unless the notebook shadows them. Direct reads only: the caller follows the names that
    are notebook functions themselves.
    """
    return _code_names(fn, _GLOBAL_LOADS)


def global_writes(fn: object) -> frozenset[str]:
    """Names a notebook function (or the methods of a notebook class) assigns as globals.

    A call of such a function changes those names; the engine treats them as touched.
    """
    return _code_names(fn, _GLOBAL_STORES)


# --- global names -----------------------------------------------------------------------------


def _code_names(fn: object, opnames: frozenset[str]) -> frozenset[str]:
    if isinstance(fn, MethodType):
        fn = fn.__func__
    if isinstance(fn, type):
        names: set[str] = set()
        for klass in fn.__mro__:
            if is_notebook_object(klass):
                for function in _class_functions(klass):
                    names |= _code_names(function, opnames)
        return frozenset(names)
    if not isinstance(fn, FunctionType):
        return frozenset()
    found = _instruction_names(fn.__code__, opnames)
    wrapped = getattr(fn, "__wrapped__", None)
    if isinstance(wrapped, FunctionType):
        found |= _code_names(wrapped, opnames)
    namespace = fn.__globals__
    builtins: Any = namespace.get("__builtins__", {})
    builtin_names = builtins if isinstance(builtins, dict) else vars(builtins)
    return frozenset(n for n in found if n in namespace or n not in builtin_names)


@functools.lru_cache(maxsize=4096)
def _instruction_names(code: CodeType, opnames: frozenset[str]) -> frozenset[str]:
    names = {str(ins.argval) for ins in dis.get_instructions(code) if ins.opname in opnames}
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _instruction_names(const, opnames)
    return frozenset(names)


def _class_functions(klass: type) -> Iterable[FunctionType]:
    for value in vars(klass).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            yield from (
                f for f in (value.fget, value.fset, value.fdel) if isinstance(f, FunctionType)
            )
        elif isinstance(value, FunctionType):
            yield value


# --- code -------------------------------------------------------------------------------------

_local = threading.local()


def _active() -> set[int]:
    """Ids of the functions and classes being fingerprinted on this thread (cycle guard)."""
    active: set[int] | None = getattr(_local, "active", None)
    if active is None:
        active = _local.active = set()
    return active


def _loose(value: object) -> str:
    """The fingerprint of a value, or its type name when it has none (best effort)."""
    try:
        return fingerprint.fingerprint(value)
    except fingerprint.Unfingerprintable:
        return "type:" + fingerprint.type_name(value)


@functools.lru_cache(maxsize=4096)
def _code_digest(code: CodeType) -> str:
    """A code object without its file name, line numbers and position tables.

    ``co_qualname`` is left out too: code objects that differ only in it compare equal, so this
    cache could answer for one with the other's digest. The function's qualname is hashed instead.
    """
    layout = (
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    )
    consts = [_const_digest(const) for const in code.co_consts]
    table = getattr(code, "co_exceptiontable", b"")
    return fingerprint.digest(b"o", repr(layout), code.co_code, table, *consts)


def _const_digest(const: object) -> str:
    if isinstance(const, CodeType):
        return _code_digest(const)
    if type(const) is tuple:
        return fingerprint.digest(b"t", *(_const_digest(item) for item in const))
    if type(const) is frozenset:
        return fingerprint.digest(b"z", *sorted(_const_digest(item) for item in const))
    return _loose(const)


def _identity(kind: type) -> str:
    """A base class or metaclass: by code if the notebook defined it, else by its import path."""
    if by_code(kind):
        return code_fingerprint(kind)
    return f"{kind.__module__}.{kind.__qualname__}"


def _function_parts(fn: FunctionType) -> list[str]:
    kwdefaults = sorted((fn.__kwdefaults__ or {}).items())
    parts = [fn.__qualname__, _code_digest(fn.__code__), _loose(fn.__defaults__)]
    parts += [f"{name}={_loose(value)}" for name, value in kwdefaults]
    for cell in fn.__closure__ or ():
        try:
            parts.append(_loose(cell.cell_contents))
        except ValueError:  # an empty cell: the variable is not assigned yet
            parts.append("<empty>")
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:
        parts.append("wrapped:" + _loose(wrapped))
    return parts


def _attribute_digest(value: object) -> str:
    if isinstance(value, staticmethod | classmethod):
        return f"{type(value).__name__}:{_attribute_digest(value.__func__)}"
    if isinstance(value, property):
        return "property:" + ",".join(
            _attribute_digest(f) for f in (value.fget, value.fset, value.fdel)
        )
    if isinstance(value, FunctionType):
        return code_fingerprint(value)
    return _loose(value)


def _class_parts(klass: type) -> list[str]:
    parts = [klass.__qualname__, _identity(type(klass))]
    parts += ["base:" + _identity(base) for base in klass.__bases__]
    for name in sorted(vars(klass)):
        if name not in _SKIPPED_CLASS_ATTRIBUTES:
            parts.append(f"{name}={_attribute_digest(vars(klass)[name])}")
    return parts
