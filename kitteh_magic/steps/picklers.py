"""Hashing picklers: a value's pickle-5 stream fed into xxh3, with canonical forms.

Neither the stream nor the out-of-band buffers are kept: a 1 GB DataFrame is hashed at xxh3
speed. ``persistent_id`` sees every object (``reducer_override`` is skipped for sets, which the C
pickler writes itself) and writes canonical forms where pickle's own would be wrong for a
fingerprint:

* sets in an order that does not depend on ``PYTHONHASHSEED``; modules by name and version;
* code (notebook functions and classes, lambdas, local functions) by its fingerprint;
* ``functools.lru_cache`` wrappers by the function they wrap and their attributes: pickle names
  them (``__main__.f``), which hides their code, and their cache changes on every call;
* pandas objects by their reduction without pandas' caches. ``cache_readonly`` keeps derived
  values in a ``_cache`` dict, and the Cython pickling of the arrays behind an Index or a Series
  (``NDArrayBacked``: DatetimeArray, Categorical...) writes it with the array
  (``{'_cache': {'unit': 'us'}}`` once ``ts.loc[t]`` ran). Index ``_cache`` and ``_engine`` and
  DataFrame ``_item_cache`` never reach the stream: their reductions list their fields;
* weak references and weak containers by their type: what they hold depends on the collector.

:class:`CarefulPickler` is the slow path, for a value the fast pickler failed on: each object it
cannot reduce is written as its type name and reported. The fingerprints of code and of set
elements come from the caller (:class:`Hooks`), so this module imports neither
:mod:`.fingerprint` nor anything that does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copyreg
import functools
import pickle
import sys
import threading
import weakref
from collections.abc import Callable
from types import FunctionType, ModuleType
from typing import Any, Final, NamedTuple

from . import codeprint
from .digests import feed, module_token, type_name

#: Exact types the pickler writes itself; the persistent_id hook returns at once for them.
PLAIN: Final[frozenset[type]] = frozenset(
    {int, float, str, bytes, bool, type(None), tuple, list, dict, complex, bytearray}
)

_LRU_WRAPPER: Final[type] = functools._lru_cache_wrapper
HANDLES: Final = (threading.Thread, concurrent.futures.Executor, asyncio.AbstractEventLoop)
"""Machinery fingerprinted by its type (``_handle_id``)."""
_WEAK: Final = (weakref.ref, weakref.WeakKeyDictionary, weakref.WeakValueDictionary,
                weakref.WeakSet)


class Hooks(NamedTuple):
    """What the picklers need from the value fingerprints."""

    code: Callable[[Any], str]
    """The fingerprint of a function or class."""
    value: Callable[[object], str]
    """The digest of a value (a set element)."""
    record: Callable[[object, Exception], None]
    """Notes an object that counts by its type only, and why."""


class HashingPickler(pickle.Pickler):
    """A pickler whose stream goes into one hash and whose out-of-band buffers go into another."""

    def __init__(self, stream: Any, buffers: Any, hooks: Hooks) -> None:
        self.hooks = hooks
        self._buffers = buffers
        self._ids: dict[int, tuple[object, Any]] | None = None  # made on first use
        self._strings: dict[str, str] | None = None  # made on first use
        super().__init__(_Sink(stream.update), protocol=5, buffer_callback=self._buffer)

    def _buffer(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:
            return True  # non-contiguous: let the pickler copy it into the stream instead
        with view:
            self._buffers.update(view.nbytes.to_bytes(8, "little"))
            feed(self._buffers, view)
        return False  # false means out-of-band: the buffer is not copied into the stream

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in PLAIN:
            if kind is str:
                # Pickle's memo makes the stream depend on whether two equal strings are one
                # object, and unpickling un-shares them (an instance's attribute name and an
                # equal dict key), so a restored value would fingerprint differently. One
                # object per string value within a dump makes the memo go by value.
                strings = self._strings
                if strings is None:
                    strings = self._strings = {}
                return strings.setdefault(obj, obj)
            return None
        try:
            handler = _HANDLERS[kind]
        except KeyError:
            handler = _handler(kind)
        if handler is None:
            return None
        # Once per object and dump, as pickle's memo does: each instance in a list names its
        # class again, and the same persistent id then pickles as a reference to the first.
        if self._ids is None:
            self._ids = {}
        known = self._ids.get(id(obj))
        if known is None:
            known = self._ids[id(obj)] = (obj, handler(self, obj))  # obj: keeps the id its own
        return known[1]

    def code_id(self, obj: FunctionType | type) -> tuple[str, str] | None:
        """Code by its fingerprint."""
        return ("kitteh:code", self.hooks.code(obj)) if codeprint.by_code(obj) else None


class CarefulPickler(HashingPickler):
    """Writes each object that cannot be reduced as its type name, and records it."""

    def persistent_id(self, obj: Any) -> Any:
        try:
            return super().persistent_id(obj)
        except Exception as error:
            self.hooks.record(obj, error)
            return ("kitteh:unpicklable", type_name(obj))

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, FunctionType | type):
            # Not notebook code (persistent_id took that): pickled by name when the name leads
            # back to it, else (a function of a reloaded module) by code.
            if _named(obj):
                return NotImplemented
            return (str, ("kitteh:code " + self.hooks.code(obj),))
        reduce = copyreg.dispatch_table.get(type(obj))
        try:
            return reduce(obj) if reduce is not None else obj.__reduce_ex__(5)
        except Exception as error:
            self.hooks.record(obj, error)
            # Builds a str, a shape no real object pickles to (pickle writes strings itself).
            return (str, ("kitteh:unpicklable " + type_name(obj),))


def attributes(obj: object) -> list[tuple[str, Any]]:
    """An object's attributes but ``__wrapped__`` (hashed on its own), sorted by name."""
    return sorted((k, v) for k, v in vars(obj).items() if k != "__wrapped__")


def from_pandas(kind: type) -> bool:
    """A type that pandas defines."""
    module = getattr(kind, "__module__", None)  # "pandas" for the public classes
    return isinstance(module, str) and (module == "pandas" or module.startswith("pandas."))


class _Sink:
    """A write-only file object that feeds a hash."""

    __slots__ = ("write",)

    def __init__(self, write: Any) -> None:
        self.write = write


_Handler = Callable[[HashingPickler, Any], Any]

#: The persistent-id handler of each type met so far (None: pickled as usual). One dict lookup
#: per object keeps the hook cheap; bounded, since it holds on to the types.
_HANDLERS: dict[type, _Handler | None] = {}
_HANDLERS_MAX: Final = 4096


def cluster_handle(kind: type) -> bool:
    """Whether ``kind`` is a Dask cluster's client or cluster object: a connection to
    machinery, like an executor (checked without importing dask).

    >>> cluster_handle(dict)
    False
    """
    distributed = sys.modules.get("distributed")
    if distributed is None or not kind.__module__.startswith("distributed"):
        return False
    machinery = tuple(t for t in (getattr(distributed, "Client", None),
                                  getattr(getattr(distributed, "deploy", None), "Cluster", None))
                      if isinstance(t, type))
    return bool(machinery) and issubclass(kind, machinery)


def _handler(kind: type) -> _Handler | None:
    handler: _Handler | None = None
    if kind is _LRU_WRAPPER:
        handler = _wrapper_id
    elif issubclass(kind, HANDLES) or cluster_handle(kind):
        handler = _handle_id
    elif issubclass(kind, _WEAK):
        handler = _weak_id
    elif issubclass(kind, set | frozenset):
        handler = _set_id
    elif issubclass(kind, ModuleType):
        handler = _module_id
    elif issubclass(kind, FunctionType | type):
        handler = HashingPickler.code_id
    elif from_pandas(kind) and not kind.__module__.startswith("pandas._libs."):
        handler = _pandas_id  # not its scalars and offsets: a Timestamp has no _cache
    if len(_HANDLERS) >= _HANDLERS_MAX:
        _HANDLERS.clear()
    _HANDLERS[kind] = handler
    return handler


def _wrapper_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...]:
    return ("kitteh:wrapper", obj.__wrapped__, attributes(obj))


def _handle_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...]:
    # A thread, an executor, an event loop or a Dask client is machinery, not content: its
    # type says all a fingerprint can. Walking it instead reaches whatever its threads hold
    # (the shell's excepthook, the output streams), once per thread: seconds for a pool of 8.
    return ("kitteh:handle", type_name(obj))


def _weak_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...]:
    # By type, empty or not: an empty WeakKeyDictionary pickles, a full one does not.
    pickler.hooks.record(obj, TypeError("what a weak reference holds is not content"))
    return ("kitteh:unpicklable", type_name(obj))


def _set_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...]:
    kinds = {type(item) for item in obj}
    if len(kinds) == 1 and kinds <= {str, int, bytes}:
        return ("kitteh:set", type(obj), "sorted", tuple(sorted(obj)))  # cheaper than hashing
    elements = tuple(sorted(pickler.hooks.value(item) for item in obj))
    return ("kitteh:set", type(obj), "fingerprints", elements)


def _module_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...]:
    return ("kitteh:module", module_token(obj))


def _pandas_id(pickler: HashingPickler, obj: Any) -> tuple[Any, ...] | None:
    """The reduction without ``_cache`` in its state, for every pandas object, cached or not.

    The Cython pickling of ``NDArrayBacked`` writes ``(dtype, ndarray)`` and appends the
    instance ``__dict__`` when there is one: a dict left empty is dropped. None: a reduction
    of another shape (a name, for ``pd.NA``), pickled as usual.
    """
    reduced = obj.__reduce_ex__(5)
    if type(reduced) is not tuple or len(reduced) < 3:
        return None
    state = reduced[2]
    if type(state) is dict and "_cache" in state:
        state = {k: v for k, v in state.items() if k != "_cache"}
    elif type(state) is tuple and state and type(state[-1]) is dict and (
            "_cache" in state[-1] or not state[-1]):
        rest = {k: v for k, v in state[-1].items() if k != "_cache"}
        state = (*state[:-1], rest) if rest else state[:-1]
    return ("kitteh:reduced", reduced[0], reduced[1], state, *reduced[3:])


def _named(obj: FunctionType | type) -> bool:
    """Whether pickle's lookup by module and qualified name finds this very object."""
    found: Any = sys.modules.get(getattr(obj, "__module__", None) or "")
    for part in obj.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is obj
