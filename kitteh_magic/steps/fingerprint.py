"""Value fingerprints: 32 hex digits of xxh3-128 that say "same content".

Equal fingerprints in two kernels mean equal inputs, so a step may replay. Three rules make that
hold across restarts:

* Values are hashed through the pickle-5 stream, never through ``hash()`` (salted per process);
  sets are hashed in a canonical order; out-of-band buffers (numpy, pandas) are hashed in place.
* Notebook functions and classes, inside a value or alone, are hashed by their code
  (:mod:`kitteh_magic.steps.codeprint`), never by file name or line number.
* Modules are hashed by name and version, not by content.

Pure: no I/O besides reading installed package metadata once per package (cached), no clock.
numpy is never imported here; arrays are recognised by their type's module name.
"""

from __future__ import annotations

import functools
import importlib.metadata
import pickle
import struct
import sys
from types import FunctionType, ModuleType
from typing import Any, Final

import xxhash

from kitteh_magic.errors import KittehError
from kitteh_magic.steps import codeprint  # imports this module back: code holds values too

#: Rows of a non-contiguous array copied at a time; bounds the extra memory to ~this many bytes.
_CHUNK_BYTES: Final = 64 << 20

#: Exact types the pickler writes itself; the persistent_id hook returns at once for them.
_PLAIN: Final[frozenset[type]] = frozenset(
    {int, float, str, bytes, bool, type(None), tuple, list, dict, complex, bytearray}
)


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
        return digest(b"m", module_token(obj))
    if isinstance(obj, FunctionType | type) and codeprint.by_code(obj):
        return codeprint.code_fingerprint(obj)
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


def digest(tag: bytes, *parts: str | bytes) -> str:
    """xxh3-128 of a tag and length-prefixed parts (unambiguous: no two lists encode alike).

    Every fingerprint, of a value or of code, is one of these; the one-byte tags keep kinds apart.
    """
    h = xxhash.xxh3_128(tag)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return str(h.hexdigest())


def type_name(obj: object) -> str:
    """The qualified name of a value's type, without ``builtins.``: ``dict``, ``socket.socket``."""
    kind = type(obj)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


# --- values -----------------------------------------------------------------------------------


def _primitive(obj: object) -> str | None:
    """Type-tagged fast paths for scalars, strings and bytes; None for everything else."""
    if obj is None:
        return digest(b"N")
    kind = type(obj)
    if kind is bool:
        return digest(b"T" if obj else b"F")
    if kind is int:
        value: Any = obj
        return digest(b"i", value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True))
    if kind is float:
        return digest(b"f", struct.pack("<d", obj))
    if kind is complex:
        number: Any = obj
        return digest(b"j", struct.pack("<dd", number.real, number.imag))
    if kind is str:
        return digest(b"s", str(obj))
    if kind is bytes or kind is bytearray:
        data: Any = obj
        return digest(b"b" if kind is bytes else b"B", data)
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
        if isinstance(obj, FunctionType | type) and codeprint.by_code(obj):
            return ("kitteh:code", codeprint.code_fingerprint(obj))
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
        raise Unfingerprintable(type_name(obj), f"{type(error).__name__}: {error}") from error
    return digest(b"p", stream.digest(), buffers.digest())


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
