"""Value fingerprints: 32 hex digits of xxh3-128 that say "same content".

Equal fingerprints in two kernels mean equal inputs, so a step may replay; anything a later read
could see is in the fingerprint, so a step never replays on changed inputs. What makes both hold:

* Values are hashed through their pickle-5 stream (:mod:`.picklers`), never through ``hash()``
  (salted per process), with canonical forms where pickle's own would hide content (the code
  behind an ``lru_cache``) or show caches (pandas' ``_cache``); scalars and plain arrays are
  hashed directly (:mod:`.digests`).
* Code is hashed by what it does, alone or inside a value (:func:`code_fingerprint`): a function
  by its code digest (:mod:`.codeprint`), defaults, closure cells, attributes and
  ``__wrapped__``; a class by its attributes, but for the caches that copyreg and enum keep
  there (``__slotnames__``, written the first time an instance is pickled; the table of
  combined flags). File names and line numbers are left out.
* A part that cannot be pickled (a connection, a lock, a generator) counts by its type, and
  :func:`describe` says where it is. The fast pickler runs first; only when it fails is the value
  pickled again object by object. A value that is nothing but such a part has no fingerprint.

Values and code hold each other (a dict holds a function, a function's defaults are values), so
both are fingerprinted here; :mod:`.codeprint` keeps the facts about code that need no values.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable
from types import FunctionType, MethodType, ModuleType
from typing import Any, Final, NamedTuple

import xxhash

from ..errors import KittehError, UnfingerprintableWarning
from . import codeprint
from .digests import digest, module_token, ndarray, primitive, type_name
from .picklers import (
    HANDLES,
    PLAIN,
    CarefulPickler,
    HashingPickler,
    Hooks,
    attributes,
    from_pandas,
)

__all__ = ["Fingerprint", "Leaf", "Unfingerprintable", "UnfingerprintableWarning",
           "code_fingerprint", "describe", "digest", "fingerprint", "module_token", "type_name"]

#: Class attributes that say nothing about behaviour, or that only hold runtime bookkeeping.
_SKIPPED_CLASS_ATTRIBUTES: Final = frozenset(
    {"__dict__", "__weakref__", "__module__", "__slotnames__"}
)

#: Objects visited when looking for where an unpicklable part sits in a value.
_PATH_BUDGET: Final = 100_000


class Unfingerprintable(KittehError):
    """A value has no content fingerprint: it is a generator, a lock, an open file, a socket.

    Attributes:
        type_name: qualified type name of the value.
        cause: what the pickler said.
    """

    def __init__(self, type_name: str, cause: str = "") -> None:
        self.type_name = type_name
        self.cause = cause
        super().__init__(
            f"cannot fingerprint a {type_name}{': ' + cause if cause else ''}; "
            "nothing of it but its type can be hashed"
        )

    def __reduce__(self) -> tuple[type[Unfingerprintable], tuple[str, str]]:
        return (type(self), (self.type_name, self.cause))


class Leaf(NamedTuple):
    """A part of a value that cannot be pickled, so that it counts by its type only."""

    path: str | None
    """Where it is, from the value: ``["conn"]``, ``[2].lock``; ``""`` is the value itself and
    None somewhere that was not found."""
    type_name: str


class Fingerprint(NamedTuple):
    """A value's fingerprint and the parts of it that count by their type only."""

    digest: str
    leaves: tuple[Leaf, ...] = ()

    @property
    def whole(self) -> bool:
        """The value itself cannot be pickled: the digest says nothing but its type."""
        return any(leaf.path == "" for leaf in self.leaves)


def fingerprint(obj: object) -> str:
    """The content fingerprint of a value: 32 hex digits.

    Equal values of the same type give equal fingerprints in any process; ``1``, ``1.0``,
    ``True`` and ``"1"`` differ. Dict order counts (it is observable); set order does not.

    >>> fingerprint(1) == fingerprint(1.0)
    False
    >>> fingerprint({"a", "b"}) == fingerprint({"b", "a"})
    True

    Raises:
        Unfingerprintable: the value itself cannot be pickled (a generator, a lock, a socket);
            a container that holds one has a fingerprint (see :func:`describe`).
    """
    direct = _direct(obj)
    if direct is not None:
        return direct
    saved = getattr(_local, "parts", None)  # _measure, inlined: this is the hot path
    parts: dict[int, _Part] = {}
    _local.parts = parts
    try:
        result = _structured(obj)
    finally:
        _local.parts = saved
    if parts and id(obj) in parts:
        root = parts[id(obj)]
        raise Unfingerprintable(root.type_name, root.cause)
    return result


def describe(obj: object) -> Fingerprint:
    """The fingerprint of a value and where the parts that count by their type only are.

    >>> import threading
    >>> found = describe({"rows": [1, 2], "lock": threading.Lock()})
    >>> found.leaves
    (Leaf(path="['lock']", type_name='_thread.lock'),)
    >>> found.digest == describe({"rows": [1, 2], "lock": threading.Lock()}).digest
    True
    >>> found.digest == describe({"rows": [1, 3], "lock": threading.Lock()}).digest
    False
    """
    result, parts = _measure(obj, _value)
    return Fingerprint(result, _paths(obj, parts) if parts else ())


def code_fingerprint(obj: object) -> str:
    """The fingerprint of a function's or class's code, stable across restarts and pickling.

    Functions: the code digest (:func:`.codeprint.code_digest`), qualified name, defaults,
    keyword defaults, closure contents, ``__wrapped__`` and attributes (``f.threshold = 3``).
    Classes: name, bases, metaclass and every attribute (methods by code, other values by
    content where they have one, else by type name).

    Raises:
        TypeError: ``obj`` is neither a function, a method nor a class.
    """
    if isinstance(obj, MethodType):
        obj = obj.__func__
    if not isinstance(obj, FunctionType | type):
        raise TypeError(f"code_fingerprint needs a function or class, got {type_name(obj)}")
    active = _active()
    if id(obj) in active:
        # A class whose attributes refer back to it (enum members, a registry of instances).
        return digest(b"r", obj.__qualname__)
    active.add(id(obj))
    try:
        if isinstance(obj, type):
            return digest(b"k", *_class_parts(obj))
        return digest(b"c", *_function_parts(obj))
    finally:
        active.discard(id(obj))


# --- values -----------------------------------------------------------------------------------

_local = threading.local()


class _Part(NamedTuple):
    """An object the pickler could not reduce (kept alive so that its id stays its own)."""

    obj: object
    type_name: str
    cause: str


def _measure(obj: object, how: Callable[[object], str]) -> tuple[str, dict[int, _Part]]:
    """The digest of a value by ``how``, and its parts that count by type, by id."""
    saved = getattr(_local, "parts", None)
    parts: dict[int, _Part] = {}
    _local.parts = parts
    try:
        return how(obj), parts
    finally:
        _local.parts = saved


def _direct(obj: object) -> str | None:
    """The digest of a scalar, a string or a plain array without pickling; None otherwise."""
    kind = type(obj)
    if kind in PLAIN:
        return primitive(obj)
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        array: Any = obj
        if not array.dtype.hasobject:
            return ndarray(array)
    return None


def _value(obj: object) -> str:
    """The digest of a value; unpicklable parts are recorded in the current ``_measure``."""
    direct = _direct(obj)
    return direct if direct is not None else _structured(obj)


def _structured(obj: object) -> str:
    """The digest of a value that is neither a scalar nor a plain array."""
    if isinstance(obj, HANDLES):  # machinery, by its type (see picklers._handle_id)
        return digest(b"h", type_name(obj))
    if isinstance(obj, ModuleType):
        return digest(b"m", module_token(obj))
    if isinstance(obj, FunctionType | type) and codeprint.by_code(obj):
        return code_fingerprint(obj)
    stream = xxhash.xxh3_128()
    buffers = xxhash.xxh3_128()
    try:
        HashingPickler(stream, buffers, _HOOKS).dump(obj)
    except Exception:  # pickling can fail in arbitrary ways inside user __reduce__
        return _carefully(obj)
    if id(obj) in _local.parts:  # a weak reference, written as its type
        return digest(b"u", type_name(obj))
    return digest(b"p", stream.digest(), buffers.digest())


def _carefully(obj: object) -> str:
    """The slow path, after the fast pickler failed: unpicklable parts are written as types."""
    stream = xxhash.xxh3_128()
    buffers = xxhash.xxh3_128()
    try:
        CarefulPickler(stream, buffers, _HOOKS).dump(obj)
    except Exception as error:  # a failure outside the hooks: nothing but the type is left
        _record(obj, error)
    if id(obj) in _local.parts:
        return digest(b"u", type_name(obj))
    return digest(b"q", stream.digest(), buffers.digest())


def _record(obj: object, error: Exception) -> None:
    _local.parts.setdefault(id(obj), _Part(obj, type_name(obj), f"{type(error).__name__}: {error}"))


def _loose(value: object) -> str:
    """The fingerprint of a value that code holds, or its type name when it has none.

    Parts of it that cannot be pickled are not reported: a function's closure or a class's
    attributes often hold locks and weak dicts (``functools.singledispatch`` does) that are
    machinery, not data the user would be warned about.
    """
    result, parts = _measure(value, _value)
    return "type:" + type_name(value) if id(value) in parts else result


_HOOKS: Final = Hooks(code=code_fingerprint, value=_value, record=_record)


# --- code -------------------------------------------------------------------------------------


def _active() -> set[int]:
    """Ids of the functions and classes being fingerprinted on this thread (cycle guard)."""
    active: set[int] | None = getattr(_local, "active", None)
    if active is None:
        active = _local.active = set()
    return active


def _identity(kind: type) -> str:
    """A base class or metaclass: by code if the notebook defined it, else by its import path."""
    if codeprint.by_code(kind):
        return code_fingerprint(kind)
    return f"{kind.__module__}.{kind.__qualname__}"


def _function_parts(fn: FunctionType) -> list[str]:
    kwdefaults = sorted((fn.__kwdefaults__ or {}).items())
    parts = [fn.__qualname__, codeprint.code_digest(fn.__code__), _loose(fn.__defaults__)]
    parts += [f"{name}={_loose(value)}" for name, value in kwdefaults]
    for cell in fn.__closure__ or ():
        try:
            parts.append(_loose(cell.cell_contents))
        except ValueError:  # an empty cell: the variable is not assigned yet
            parts.append("<empty>")
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:
        parts.append("wrapped:" + _loose(wrapped))
    state = attributes(fn)
    if state:  # absent for a plain function, whose fingerprint is as it always was
        parts.append("dict:" + _loose(state))
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
    skipped = _SKIPPED_CLASS_ATTRIBUTES
    if isinstance(klass, enum.EnumMeta):
        # Its members are in ``_member_map_``; this one also caches every combination of flags
        # made so far (``Perm.R | Perm.W``).
        skipped = skipped | {"_value2member_map_"}
    for name in sorted(vars(klass)):
        if name not in skipped:
            parts.append(f"{name}={_attribute_digest(vars(klass)[name])}")
    return parts


# --- where the unpicklable parts are ----------------------------------------------------------


def _paths(root: object, parts: dict[int, _Part]) -> tuple[Leaf, ...]:
    """Where each recorded part sits in ``root``, breadth first so that paths are short."""
    where: dict[int, str] = {id(root): ""} if id(root) in parts else {}
    queue: deque[tuple[object, str]] = deque([(root, "")])
    seen = {id(root): root}  # the objects too: a column made on the fly must keep its id
    budget = _PATH_BUDGET
    while queue and len(where) < len(parts) and budget > 0:
        obj, path = queue.popleft()
        for label, child in _children(obj):
            budget -= 1
            if id(child) in seen:
                continue
            seen[id(child)] = child
            if id(child) in parts:
                where[id(child)] = path + label
            else:
                queue.append((child, path + label))
    leaves = {Leaf(where.get(key), part.type_name) for key, part in parts.items()}
    return tuple(sorted(leaves, key=lambda leaf: (leaf.path is None, leaf.path or "", leaf)))


def _children(obj: object) -> Iterable[tuple[str, object]]:
    """The parts of a value with an accessor each: ``["key"]``, ``[0]``, ``.attribute``."""
    kind = type(obj)
    if kind in PLAIN and kind not in (tuple, list, dict):
        return ()
    if isinstance(obj, dict):
        return ((f"[{_label(key)}]", value) for key, value in obj.items())
    if isinstance(obj, list | tuple):
        return ((f"[{i}]", value) for i, value in enumerate(obj))
    if isinstance(obj, set | frozenset):
        return (("{…}", value) for value in obj)
    if isinstance(obj, type | ModuleType | FunctionType):
        return ()  # code: what it holds is not reported (see _loose)
    items: Any = getattr(kind, "items", None)
    if from_pandas(kind) and callable(items):  # columns, then rows
        return ((f"[{_label(key)}]", value) for key, value in items(obj))
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        array: Any = obj
        return ((f"[{i}]", v) for i, v in enumerate(array.flat)) if array.dtype.hasobject else ()
    fields: Any = getattr(obj, "__dict__", None)
    if isinstance(fields, dict):
        return ((f".{name}", value) for name, value in fields.items())
    return ()


def _label(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:39] + "…"
