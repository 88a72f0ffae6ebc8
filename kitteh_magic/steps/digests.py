"""Digests: xxh3-128 of tagged, length-prefixed parts, and the digests that need no pickling.

The leaf that value fingerprints (:mod:`.fingerprint`) and code facts (:mod:`.codeprint`) both
build on: scalars, strings, bytes, numpy arrays, code constants and module versions are hashed
here directly, so neither of those modules has to import the other.

Pure: no I/O besides reading installed package metadata once per package (cached), no clock.
numpy is never imported here; arrays are recognised by their type's module name.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pickle
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, Final

import xxhash

from kitteh_magic import writewatch

#: Rows of a non-contiguous array copied at a time; bounds the extra memory to ~this many bytes.
_CHUNK_BYTES: Final = 64 << 20

#: Buffers at least this large are hashed in pieces on every core (xxh3 releases the GIL): a
#: step that reads 1 GB pays one pass after it runs to learn whether it changed it.
PARALLEL_BYTES: Final = 64 << 20
_PIECE_BYTES: Final = 8 << 20
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child has no threads


def digest(tag: bytes, *parts: str | bytes) -> str:
    """xxh3-128 of a tag and length-prefixed parts (unambiguous: no two lists encode alike).

    Every fingerprint, of a value or of code, is one of these; the one-byte tags keep kinds apart.

    >>> digest(b"s", "ab", "c") == digest(b"s", "a", "bc")
    False
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


def primitive(obj: object) -> str | None:
    """Type-tagged digests of None, bools, numbers, strings and bytes; None for anything else."""
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


def pickled_constant(obj: object) -> str:
    """A picklable constant (``...``, a code constant of a rare type) by its plain pickle.

    Equal to what the value pickler gives for it: a plain stream and no out-of-band buffers.
    """
    stream = xxhash.xxh3_128(pickle.dumps(obj, protocol=5))
    return digest(b"p", stream.digest(), xxhash.xxh3_128().digest())


def ndarray(array: Any) -> str:
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
        feed(h, array.reshape(-1).view("u1"))
    elif layout == "F":
        feed(h, array.T.reshape(-1).view("u1"))
    else:
        numpy = sys.modules[type(array).__module__]
        rows = max(1, _CHUNK_BYTES // max(1, array[0].nbytes))
        for start in range(0, array.shape[0], rows):
            chunk = numpy.ascontiguousarray(array[start : start + rows])
            h.update(chunk.reshape(-1).view("u1"))
    return str(h.hexdigest())


def feed(h: Any, data: Any) -> None:
    """Feed a contiguous byte buffer into the hash ``h``.

    Up to :data:`PARALLEL_BYTES` the bytes go in as they are; a larger buffer goes in as the
    xxh3-128 digests of its 8 MiB pieces, hashed on all cores (about 1.6x faster on two) and
    remembered while the memory is not written (:mod:`kitteh_magic.writewatch`), so a step
    that only read a large input learns it is unchanged without hashing it again. The size
    alone decides which, so equal buffers always hash alike, on any number of cores.

    >>> a, b = xxhash.xxh3_128(), xxhash.xxh3_128()
    >>> feed(a, b"x" * 10); b.update(b"x" * 10); a.digest() == b.digest()
    True
    """
    size = memoryview(data).nbytes
    if size < PARALLEL_BYTES:
        h.update(data)
        return
    h.update(b"pieces:%d:" % _PIECE_BYTES)
    h.update(writewatch.digest(memoryview(data).cast("B"), b"xxh3-128/8M", _pieces))


def _pieces(whole: memoryview) -> bytes:
    """The xxh3-128 digests of the 8 MiB pieces of a buffer, back to back."""
    global _pool
    pieces = [whole[start:start + _PIECE_BYTES] for start in range(0, whole.nbytes,
                                                                   _PIECE_BYTES)]
    workers = os.cpu_count() or 1
    if workers < 2:
        return b"".join(map(xxhash.xxh3_128_digest, pieces))
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="kitteh-hash"))
    return b"".join(_pool[1].map(xxhash.xxh3_128_digest, pieces))


def module_token(mod: ModuleType) -> str:
    """``name==version`` of a module; the version is its top-level distribution's. O(1), cached.

    Standard-library modules carry the Python version; a module without any version (a local
    ``utils.py``) carries ``unversioned``, so editing it does not change the token.

    >>> module_token(sys) == "sys==python-%d.%d.%d" % sys.version_info[:3]
    True
    """
    top = mod.__name__.partition(".")[0]
    return f"{mod.__name__}=={_version(top)}"


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
        pass  # not a failure: the package may ship in a distribution of another name, below
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
