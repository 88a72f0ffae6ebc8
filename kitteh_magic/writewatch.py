"""Digests of large buffers, remembered for as long as the kernel says their memory was not written.

Deciding what a step changed means fingerprinting what it could touch after it runs; for a
step that only reads a 1 GB input, that is a hash pass over memory nobody wrote. Linux (6.7 and
later) can say which pages were written since a point in time: a userfaultfd registered in
write-protect mode with ``UFFD_FEATURE_WP_ASYNC`` lets the kernel resolve the write fault itself
(the page just loses its write-protect bit), and the ``PAGEMAP_SCAN`` ioctl on
``/proc/self/pagemap`` reports the pages that lost it (``PAGE_IS_WRITTEN``). It is the kernel's
replacement for soft-dirty bits, made for CRIU's incremental dumps and Wine's
``GetWriteWatch``; see the kernel's ``Documentation/admin-guide/mm/pagemap.rst``.

:func:`digest` write-protects a buffer's pages, computes its digest and remembers it; the next
call for the same memory returns the remembered digest when no page of it was written since
(about 60 µs for 1 GB, against 100 ms or more to hash it).

What makes a remembered digest trustworthy:

* Memory is known by its address range, and a remembered digest holds only while every page
  of the range is still registered, was not written, and was not dropped (``madvise``
  ``MADV_DONTNEED`` turns a page into a hole): memory freed and mapped again, by ``munmap``
  and ``mmap`` or by an allocator that keeps the range, always reads as changed. Nothing is
  held: the objects are free to go, and a weak reference would stop ``ndarray.resize``.
* Only private memory is watched: anonymous memory and copy-on-write maps of files under a
  trusted directory (the store's immutable blobs, see :func:`trust`). A shared map
  (``multiprocessing.shared_memory``, ``np.memmap(mode="r+")``) can be written by another
  process, whose writes these page bits do not see, so it is hashed every time.
* A forked child opens its own descriptors and remembers nothing of its parent's.

The price: the first write to each watched page after a digest takes a minor fault, resolved
in the kernel (about 0.7 µs per 4 KiB page here, so about 190 ms for a step that overwrites a
whole 1 GB input in place, on top of the hash it then needs). Where the kernel or a sandbox
(Docker's default seccomp profile) refuses userfaultfd, everything is hashed as before, and
``KITTEH_MAGIC_WRITE_WATCH=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Final

PAGE: Final[int] = mmap.PAGESIZE

_NR_USERFAULTFD: Final = {"x86_64": 323, "aarch64": 282}
_UFFD_USER_MODE_ONLY: Final = 1
_UFFD_API: Final = 0xAA
_FEATURE_WP_UNPOPULATED: Final = 1 << 13
_FEATURE_WP_ASYNC: Final = 1 << 15
_MODE_WP: Final = 1 << 1
_PAGE_IS_WRITTEN: Final = 1 << 1
#: Remembered digests kept at most (the oldest go first).
LIMIT: Final = 4096


def _iowr(kind: int, number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (kind << 8) | number


_UFFDIO_API: Final = _iowr(0xAA, 0x3F, 24)
_UFFDIO_REGISTER: Final = _iowr(0xAA, 0x00, 32)
_UFFDIO_WRITEPROTECT: Final = _iowr(0xAA, 0x06, 24)
_PAGEMAP_SCAN: Final = _iowr(ord("f"), 16, 96)


class _Kernel:
    """One process's userfaultfd and pagemap descriptors (a forked child opens its own)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._libc = ctypes.CDLL(None, use_errno=True)
        machine = os.uname().machine
        if machine not in _NR_USERFAULTFD:
            raise OSError(f"userfaultfd: no syscall number known for {machine}")
        fd = self._libc.syscall(_NR_USERFAULTFD[machine],
                                os.O_CLOEXEC | os.O_NONBLOCK | _UFFD_USER_MODE_ONLY)
        if fd < 0:
            raise self._error("userfaultfd")
        self.uffd: int = fd
        try:
            self._ioctl(fd, _UFFDIO_API, struct.pack(
                "QQQ", _UFFD_API, _FEATURE_WP_ASYNC | _FEATURE_WP_UNPOPULATED, 0))
            self.pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(fd)
            raise
        self.entries: dict[tuple[int, int, bytes], bytes] = {}
        """(address, size, kind) -> digest, oldest first."""
        self.lock = threading.Lock()

    def _error(self, what: str) -> OSError:
        code = ctypes.get_errno()
        return OSError(code, f"{what}: {os.strerror(code)}")

    def _ioctl(self, fd: int, request: int, argument: bytes) -> None:
        buffer = ctypes.create_string_buffer(argument, len(argument))
        if self._libc.ioctl(fd, ctypes.c_ulong(request), buffer) < 0:
            raise self._error(f"ioctl {request:#x}")

    def protect(self, start: int, end: int) -> None:
        """Register the pages (again, harmlessly) and write-protect them."""
        self._ioctl(self.uffd, _UFFDIO_REGISTER, struct.pack("QQQQ", start, end - start,
                                                             _MODE_WP, 0))
        self._ioctl(self.uffd, _UFFDIO_WRITEPROTECT, struct.pack("QQQ", start, end - start, 1))

    def changed(self, start: int, end: int) -> bool:
        """Whether any page in ``[start, end)`` may have changed since it was protected.

        The kernel reports as written every page that lost its write protection: written,
        not registered (unmapped and mapped again, moved by ``mremap``, a fork's copy), or
        dropped into a hole (``MADV_DONTNEED``); ``tests/test_writewatch.py`` checks each.
        """
        return self._scan(start, end, _PAGE_IS_WRITTEN)

    def _scan(self, start: int, end: int, category: int) -> bool:
        """Whether ``PAGEMAP_SCAN`` finds a page of the category in the range."""
        found = (ctypes.c_uint64 * 3)()
        argument = struct.pack("12Q", 96, 0, start, end, 0, ctypes.addressof(found), 1, 0,
                               0, category, 0, category)
        buffer = ctypes.create_string_buffer(argument, len(argument))
        regions = self._libc.ioctl(self.pagemap, ctypes.c_ulong(_PAGEMAP_SCAN), buffer)
        if regions < 0:
            raise self._error("PAGEMAP_SCAN")
        return bool(regions)


_kernel: _Kernel | None = None
_failure: str | None = None
_trusted: set[str] = set()
_guard = threading.Lock()


def trust(directory: str | os.PathLike[str]) -> None:
    """Count copy-on-write maps of files under ``directory`` as watchable memory.

    Only for files nobody writes after they are complete (the store's content-addressed
    blobs): a private map's unwritten pages show the file's current content.
    """
    with _guard:
        _trusted.add(os.path.join(os.path.realpath(directory), ""))


def available() -> bool:
    """Whether this process can watch writes (Linux ≥ 6.7 with userfaultfd allowed)."""
    return _open() is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is false (the kernel's error), or None."""
    _open()
    return _failure


def _open() -> _Kernel | None:
    global _kernel, _failure
    kernel = _kernel
    if kernel is not None and kernel.pid == os.getpid():
        return kernel
    if os.environ.get("KITTEH_MAGIC_WRITE_WATCH", "1") == "0":
        _failure = "turned off by KITTEH_MAGIC_WRITE_WATCH=0"
        return None
    with _guard:
        if _kernel is not None and _kernel.pid == os.getpid():
            return _kernel
        if _failure is not None and _kernel is None:
            return None
        try:
            _kernel = _Kernel()  # in a forked child: the parent's entries are not inherited
        except (OSError, AttributeError) as error:  # no userfaultfd / PAGEMAP_SCAN / libc
            _kernel, _failure = None, str(error)
        return _kernel


def digest(view: memoryview, kind: bytes, compute: Callable[[memoryview], bytes]) -> bytes:
    """``compute(view)``, or the digest remembered for this memory if it has not changed since.

    Args:
        view: a C-contiguous buffer (any format).
        kind: names the digest function, so that two functions over one buffer stay apart.
        compute: the digest function; it must depend on the bytes only.

    Returns:
        What ``compute(view)`` returns now, computed or remembered.
    """
    kernel = _open()
    if kernel is None or view.nbytes == 0:
        return compute(view)
    address = _address(view)
    key = (address, view.nbytes, kind)
    start = address - address % PAGE
    end = -(-(address + view.nbytes) // PAGE) * PAGE
    with kernel.lock:
        known = kernel.entries.pop(key, None)  # back in below when it still holds
    try:
        if known is not None and not kernel.changed(start, end):
            unchanged: bytes | None = known
        elif _private(start, end):
            kernel.protect(start, end)  # before hashing: a write during the hash counts
            unchanged = None
        else:
            return compute(view)
    except OSError:  # a mapping the kernel will not watch (or gone): hash, remember nothing
        return compute(view)
    result = compute(view) if unchanged is None else unchanged
    with kernel.lock:
        kernel.entries[key] = result
        while len(kernel.entries) > LIMIT:
            kernel.entries.pop(next(iter(kernel.entries)))
    return result


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI)."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def _address(view: memoryview) -> int:
    """The address of a buffer's first byte (read-only buffers included)."""
    buffer = _PyBuffer()
    if _get_buffer(view, ctypes.byref(buffer), 0) != 0:  # PyBUF_SIMPLE: contiguous
        raise BufferError("no contiguous buffer")
    try:
        return int(buffer.buf or 0)
    finally:
        _release_buffer(ctypes.byref(buffer))


def _private(start: int, end: int) -> bool:
    """Whether every mapping over ``[start, end)`` is private and anonymous or trusted."""
    covered = start
    for low, high, shared, path in _mappings():
        if high <= start or low >= end:
            continue
        if low > covered or shared or (path and not path.startswith("[")
                                       and not any(path.startswith(t) for t in _trusted)):
            return False
        covered = max(covered, high)
    return covered >= end


def _mappings() -> Iterable[tuple[int, int, bool, str]]:
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, _, high = fields[0].partition("-")
            path = fields[5].rstrip("\n") if len(fields) > 5 else ""
            yield int(low, 16), int(high, 16), fields[1][3] == "s", path
