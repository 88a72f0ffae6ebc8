"""Fingerprints of values and of notebook code: 32 hex digits of xxh3-128.

A fingerprint says "same content": equal fingerprints in two kernels mean equal inputs, so a step
may replay. Three rules make that hold across restarts:

* Values are hashed through the pickle-5 stream, never through ``hash()`` (salted per process);
  sets are hashed in a canonical order; out-of-band buffers (numpy, pandas) are hashed in place.
* Notebook functions and classes are hashed by their bytecode, constants and defaults, never by
  file name or line number: a cell's file name (``ipykernel_<pid>/...``) changes on every restart.
* Modules are hashed by name and version, not by content.

Pure: no I/O besides reading installed package metadata once per package (cached), no clock.
numpy is never imported here; arrays are recognised by their type's module name.
"""

from __future__ import annotations

import dis
import functools
import importlib.metadata
import pickle
import struct
import sys
import threading
from collections.abc import Iterable
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import Any, Final

import xxhash

from kitteh_magic.errors import KittehError

#: Rows of a non-contiguous array copied at a time; bounds the extra memory to ~this many bytes.
_CHUNK_BYTES: Final = 64 << 20

#: Exact types the pickler writes itself; the persistent_id hook returns at once for them.
_PLAIN: Final[frozenset[type]] = frozenset(
    {int, float, str, bytes, bool, type(None), tuple, list, dict, complex, bytearray}
)

#: Class attributes that say nothing about behaviour, or that only hold runtime bookkeeping.
_SKIPPED_CLASS_ATTRIBUTES: Final = frozenset({"__dict__", "__weakref__", "__module__"})

#: Bytecode instructions that read a name from the module globals.
_GLOBAL_LOADS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_GLOBAL_STORES: Final = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})


class Unfingerprintable(KittehError):
    """A value has no content fingerprint (a generator, a lock, an open file, a socket).

    Attributes:
        type_name: qualified type name of the value.
        cause: what the pickler said.
    """

    def __init__(self, type_name: str, cause: str = "") -> None:
        self.type_name = type_name
        self.cause = cause
        super().__init__(
            f"cannot fingerprint a {type_name}{': ' + cause if cause else ''}; "
            "it is keyed by identity instead, so steps reading it re-run after a restart"
        )

    def __reduce__(self) -> tuple[type[Unfingerprintable], tuple[str, str]]:
        return (type(self), (self.type_name, self.cause))


def fingerprint(obj: object) -> str:
    """The content fingerprint of a value: 32 hex digits.

    Equal values of the same type give equal fingerprints in any process; ``1``, ``1.0``,
    ``True`` and ``"1"`` differ. Dict order counts (it is observable); set order does not.

    >>> fingerprint(1) == fingerprint(1.0)
    False
    >>> fingerprint({"a", "b"}) == fingerprint({"b", "a"})
    True

    Raises:
        Unfingerprintable: the value cannot be pickled (generator, lock, socket, open file).
    """
    kind = type(obj)
    if kind in _PLAIN:
        primitive = _primitive(obj)
        if primitive is not None:
            return primitive
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        array: Any = obj
        if not array.dtype.hasobject:
            return _ndarray(array)
    if isinstance(obj, ModuleType):
        return _digest(b"m", module_token(obj))
    if isinstance(obj, FunctionType | type) and _by_code(obj):
        return code_fingerprint(obj)
    return _pickled(obj)


def module_token(mod: ModuleType) -> str:
    """``name==version`` of a module; the version is its top-level distribution's. O(1), cached.

    Standard-library modules carry the Python version; a module without any version (a local
    ``utils.py``) carries ``unversioned``, so editing it does not change the token.

    >>> module_token(sys) == "sys==python-%d.%d.%d" % sys.version_info[:3]
    True
    """
    top = mod.__name__.partition(".")[0]
    return f"{mod.__name__}=={_version(top)}"


def is_notebook_object(obj: object) -> bool:
    """True for a function or class defined by notebook code (or a method of one).

    Notebook code runs with ``__name__ == "__main__"``; cloudpickle restores such functions with
    the same ``__module__``, so restored and freshly defined objects are treated alike.
    """
    if isinstance(obj, MethodType):
        obj = obj.__func__
    return isinstance(obj, FunctionType | type) and getattr(obj, "__module__", None) == "__main__"


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
        raise TypeError(f"code_fingerprint needs a function or class, got {_type_name(obj)}")
    active = _active()
    if id(obj) in active:
        # A class whose attributes refer back to it (enum members, a registry of instances).
        return _digest(b"r", obj.__qualname__)
    active.add(id(obj))
    try:
        if isinstance(obj, type):
            return _digest(b"k", *_class_parts(obj))
        return _digest(b"c", *_function_parts(obj))
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


# --- values -----------------------------------------------------------------------------------


def _digest(tag: bytes, *parts: str | bytes) -> str:
    """xxh3-128 of a tag and length-prefixed parts (unambiguous: no two lists encode alike)."""
    h = xxhash.xxh3_128(tag)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return str(h.hexdigest())


def _primitive(obj: object) -> str | None:
    """Type-tagged fast paths for scalars, strings and bytes; None for everything else."""
    if obj is None:
        return _digest(b"N")
    kind = type(obj)
    if kind is bool:
        return _digest(b"T" if obj else b"F")
    if kind is int:
        value: Any = obj
        return _digest(b"i", value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True))
    if kind is float:
        return _digest(b"f", struct.pack("<d", obj))
    if kind is complex:
        number: Any = obj
        return _digest(b"j", struct.pack("<dd", number.real, number.imag))
    if kind is str:
        return _digest(b"s", str(obj))
    if kind is bytes or kind is bytearray:
        data: Any = obj
        return _digest(b"b" if kind is bytes else b"B", data)
    return None


def _ndarray(array: Any) -> str:
    """dtype, shape, layout and raw bytes; contiguous data is hashed in place, without a copy.

    A Fortran-ordered array is hashed in its own memory order and tagged ``F``, so it differs
    from an equal C-ordered array: a needless re-run at worst, whereas putting it in C order
    would be a strided transpose, 50 times slower than hashing (0.5 GB/s for 1 GB).
    """
    dtype = array.dtype
    layout = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    header = f"{dtype.str}|{dtype.descr if dtype.fields else ''}|{array.shape}|{layout}"
    h = xxhash.xxh3_128(b"a")
    h.update(header.encode())
    if array.nbytes == 0:
        pass
    elif array.flags.c_contiguous:
        h.update(array.reshape(-1).view("u1"))
    elif layout == "F":
        h.update(array.T.reshape(-1).view("u1"))
    else:
        numpy = sys.modules[type(array).__module__]
        rows = max(1, _CHUNK_BYTES // max(1, array[0].nbytes))
        for start in range(0, array.shape[0], rows):
            chunk = numpy.ascontiguousarray(array[start : start + rows])
            h.update(chunk.reshape(-1).view("u1"))
    return str(h.hexdigest())


class _HashingPickler(pickle.Pickler):
    """A pickler whose stream goes into one hash and whose out-of-band buffers go into another.

    Neither the stream nor the buffers are kept: a 1 GB DataFrame is hashed at xxh3 speed.
    ``persistent_id`` sees every object (``reducer_override`` is skipped for sets, which the C
    pickler writes itself), and substitutes canonical forms for sets, modules and notebook code.
    """

    def __init__(self, stream: Any, buffers: Any) -> None:
        self._buffers = buffers
        super().__init__(_Sink(stream.update), protocol=5, buffer_callback=self._buffer)

    def _buffer(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:
            return True  # non-contiguous: let the pickler copy it into the stream instead
        with view:
            self._buffers.update(view.nbytes.to_bytes(8, "little"))
            self._buffers.update(view)
        return False  # false means out-of-band: the buffer is not copied into the stream

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN:
            return None
        if isinstance(obj, set | frozenset):
            return ("kitteh:set", kind, *_canonical_set(obj))
        if isinstance(obj, ModuleType):
            return ("kitteh:module", module_token(obj))
        if isinstance(obj, FunctionType | type) and _by_code(obj):
            return ("kitteh:code", code_fingerprint(obj))
        return None


class _Sink:
    """A write-only file object that feeds a hash."""

    __slots__ = ("write",)

    def __init__(self, write: Any) -> None:
        self.write = write


def _canonical_set(items: set[Any] | frozenset[Any]) -> tuple[str, tuple[Any, ...]]:
    """Elements in an order that does not depend on ``PYTHONHASHSEED``."""
    kinds = {type(item) for item in items}
    if len(kinds) == 1 and kinds <= {str, int, bytes}:
        return ("sorted", tuple(sorted(items)))  # a total order, cheaper than hashing each
    return ("fingerprints", tuple(sorted(fingerprint(item) for item in items)))


def _pickled(obj: object) -> str:
    stream = xxhash.xxh3_128()
    buffers = xxhash.xxh3_128()
    try:
        _HashingPickler(stream, buffers).dump(obj)
    except Exception as error:  # pickling can fail in arbitrary ways inside user __reduce__
        raise Unfingerprintable(_type_name(obj), f"{type(error).__name__}: {error}") from error
    return _digest(b"p", stream.digest(), buffers.digest())


def _by_code(obj: FunctionType | type) -> bool:
    """Notebook code, and code pickle cannot name (lambdas, local functions and classes)."""
    qualname = getattr(obj, "__qualname__", "")
    return is_notebook_object(obj) or "<locals>" in qualname or "<lambda>" in qualname


def _loose(value: object) -> str:
    """The fingerprint of a value, or its type name when it has none (best effort)."""
    try:
        return fingerprint(value)
    except Unfingerprintable:
        return "type:" + _type_name(value)


def _type_name(obj: object) -> str:
    kind = type(obj)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


# --- code -------------------------------------------------------------------------------------

_local = threading.local()


def _active() -> set[int]:
    """Ids of the functions and classes being fingerprinted on this thread (cycle guard)."""
    active: set[int] | None = getattr(_local, "active", None)
    if active is None:
        active = _local.active = set()
    return active


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
    return _digest(b"o", repr(layout), code.co_code, table, *consts)


def _const_digest(const: object) -> str:
    if isinstance(const, CodeType):
        return _code_digest(const)
    if type(const) is tuple:
        return _digest(b"t", *(_const_digest(item) for item in const))
    if type(const) is frozenset:
        return _digest(b"z", *sorted(_const_digest(item) for item in const))
    return _loose(const)


def _identity(kind: type) -> str:
    """A base class or metaclass: by code if the notebook defined it, else by its import path."""
    if _by_code(kind):
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


# --- module versions --------------------------------------------------------------------------


@functools.cache
def _version(top: str) -> str:
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "python-{}.{}.{}".format(*sys.version_info[:3])
    try:
        return importlib.metadata.version(top)  # distribution named like the package: fast
    except importlib.metadata.PackageNotFoundError:
        pass
    for distribution in _distributions().get(top, ()):
        try:
            return f"{distribution}-{importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unversioned"


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level package to distribution names; scans installed metadata once per process."""
    return dict(importlib.metadata.packages_distributions())
