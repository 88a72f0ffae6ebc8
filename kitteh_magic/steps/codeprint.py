"""Code facts: which objects are notebook code, what code a wrapper runs, the globals it uses.

A cell's file name (``ipykernel_<pid>/...``) changes on every restart, and cloudpickle restores a
notebook function as a new object, so code objects are digested by their bytecode and constants,
never by file name or line number (:func:`code_digest`). The globals a notebook function reads
and writes are read from its bytecode; the engine follows them to find a step's indirect inputs
and outputs. A wrapper (``functools.lru_cache``, a ``functools.wraps`` decorator, a
``functools.partial``, a decorator instance, a bound method) is followed to the notebook code it
runs (:func:`notebook_code`), so the globals that code reads count too.

Only facts about code live here. The fingerprint of a function or class as a whole, which also
covers the values it carries (defaults, closure cells, attributes), is
:func:`.fingerprint.code_fingerprint`: values hold code and code holds values, so that recursion
lives in one module, which imports this one and not the reverse.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dis
import functools
from types import CodeType, FunctionType, MethodType
from typing import Any, Final

from .digests import digest, pickled_constant, primitive

#: Bytecode instructions that read a name from the module globals.
_GLOBAL_LOADS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_GLOBAL_STORES: Final = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})

#: Objects looked at when following wrappers to the code they run (a bound on odd graphs).
_WALK_BUDGET: Final = 1000


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


def notebook_code(obj: object) -> tuple[FunctionType | type, ...]:
    """The notebook functions and classes that calling or using ``obj`` may run.

    A notebook function or class is its own code. Wrappers are followed to what they hold:
    ``__wrapped__`` (``lru_cache``, ``functools.wraps``), the function and arguments of a
    ``functools.partial``, the function and instance of a bound method, closure cells, the
    attributes of a decorator instance, the class of an instance of a notebook class, a
    function's defaults, and the items of a small container (``ops = {"scale": scale}``).
    Plain data gives ``()``.

    >>> cell = {"__name__": "__main__"}
    >>> exec("def f(): return LIMIT", cell)  # as a notebook cell defines it
    >>> notebook_code(functools.lru_cache(cell["f"])) == (cell["f"],)
    True
    >>> global_reads(functools.partial(cell["f"])), global_reads({"op": cell["f"]})
    (frozenset({'LIMIT'}), frozenset({'LIMIT'}))
    >>> notebook_code([1, 2, 3])
    ()
    """
    found: list[FunctionType | type] = []
    seen: set[int] = set()
    todo: list[object] = [obj]
    while todo and len(seen) < _WALK_BUDGET:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, type):
            if is_notebook_object(item):
                found.append(item)
            continue
        if isinstance(item, FunctionType) and _runs_in_notebook(item):
            found.append(item)
        todo.extend(_held(item))
    return tuple(found)


def global_reads(fn: object) -> frozenset[str]:
    """Names that the notebook code ``fn`` runs reads as globals (see :func:`notebook_code`).

    Read from the bytecode of each function, of its nested code and, for a class, of the
    methods of its notebook base classes. Builtins (``len``) are left out unless the notebook
    shadows them. Direct reads only: the caller follows the names that are notebook code
    themselves.
    """
    return _code_names(fn, _GLOBAL_LOADS)


def global_writes(fn: object) -> frozenset[str]:
    """Names that the notebook code ``fn`` runs assigns as globals.

    A call of such a function changes those names; the engine treats them as touched.
    """
    return _code_names(fn, _GLOBAL_STORES)


@functools.lru_cache(maxsize=4096)
def code_digest(code: CodeType) -> str:
    """A code object without its file name, line numbers and position tables.

    ``co_qualname`` is left out too: code objects that differ only in it compare equal, so this
    cache could answer for one with the other's digest. The function's qualname is hashed by
    :func:`.fingerprint.code_fingerprint` instead.
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
    return digest(b"o", repr(layout), code.co_code, table, *consts)


# --- following wrappers -----------------------------------------------------------------------


def _runs_in_notebook(fn: FunctionType) -> bool:
    """A function whose own bytecode reads the notebook's globals.

    ``functools.wraps`` copies ``__module__``: a library's wrapper then claims ``__main__``, but
    its globals, and so the names its bytecode reads, are its library's.
    """
    return is_notebook_object(fn) and fn.__globals__.get("__name__") == "__main__"


_SMALL_CONTAINERS: Final = frozenset({list, tuple, dict, set, frozenset})
_CONTAINER_ITEMS: Final = 256
"""Containers up to this size are searched for notebook code; larger ones are data."""


def _held(item: object) -> list[object]:
    """What a wrapper holds that may be, or lead to, notebook code."""
    if isinstance(item, MethodType):
        return [item.__func__, item.__self__]
    if isinstance(item, staticmethod | classmethod):
        return [item.__func__]
    if isinstance(item, property):
        return [item.fget, item.fset, item.fdel]
    if isinstance(item, functools.cached_property | functools.partialmethod
                  | functools.singledispatchmethod):
        return [item.func]
    if isinstance(item, functools.partial):
        return [item.func, *item.args, *item.keywords.values()]
    if isinstance(item, FunctionType):
        held: list[object] = []
        for cell in item.__closure__ or ():
            try:
                held.append(cell.cell_contents)
            except ValueError:  # an empty cell: the variable is not assigned yet
                continue
        held.extend(item.__defaults__ or ())  # ``def apply(x, fn=lambda v: v * FACTOR)``
        held.extend((item.__kwdefaults__ or {}).values())
        wrapped = item.__dict__.get("__wrapped__")
        return [*held, wrapped] if wrapped is not None else held
    kind = type(item)
    if kind in _SMALL_CONTAINERS and len(item) <= _CONTAINER_ITEMS:  # type: ignore[arg-type]
        # Functions kept in a small container (``ops = {"scale": scale}``; ``ops["scale"](x)``).
        items: Any = item
        return list(items.values()) if kind is dict else list(items)
    attributes: Any = getattr(item, "__dict__", None)
    values = list(attributes.values()) if isinstance(attributes, dict) else []
    if is_notebook_object(kind):  # an instance of a notebook class, a decorator instance too
        return [kind, *values]
    if callable(item):  # a library's wrapper object: lru_cache, a decorator class's instance
        wrapped = getattr(item, "__wrapped__", None)
        return [*values, wrapped] if wrapped is not None else values
    return []


# --- global names -----------------------------------------------------------------------------


def _code_names(obj: object, opnames: frozenset[str]) -> frozenset[str]:
    names: set[str] = set()
    for code in notebook_code(obj):
        if isinstance(code, type):
            for klass in code.__mro__:
                if is_notebook_object(klass):
                    for member in vars(klass).values():
                        if not isinstance(member, type):
                            names |= _function_names(member, opnames)
        else:
            names |= _own_names(code, opnames)
    return frozenset(names)


def _function_names(member: object, opnames: frozenset[str]) -> set[str]:
    """Names read by the notebook functions a class attribute runs (a method, a property...)."""
    names: set[str] = set()
    for code in notebook_code(member):
        if isinstance(code, FunctionType):
            names |= _own_names(code, opnames)
    return names


def _own_names(fn: FunctionType, opnames: frozenset[str]) -> frozenset[str]:
    found = _instruction_names(fn.__code__, opnames)
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


# --- code objects -----------------------------------------------------------------------------


def _const_digest(const: object) -> str:
    """A code constant: a literal, a tuple or frozenset of them, or nested code."""
    if isinstance(const, CodeType):
        return code_digest(const)
    if type(const) is tuple:
        return digest(b"t", *(_const_digest(item) for item in const))
    if type(const) is frozenset:
        return digest(b"z", *sorted(_const_digest(item) for item in const))
    return primitive(const) or pickled_constant(const)  # ``...`` is the one non-primitive
