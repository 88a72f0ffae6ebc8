"""Remembered digests of large buffers (kitteh_magic.writewatch) never hide a change.

The oracle is the same fingerprint computed with the write watch off: after every way of
changing memory (a write through a view, a read from a file into it, a thread, another process
writing shared memory or a file behind a map, freeing and reallocating it, a fork), a
fingerprint must equal the one computed from scratch.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kitteh_magic import writewatch
from kitteh_magic.steps import digests, fingerprint

pytestmark = pytest.mark.skipif(
    not writewatch.available(),
    reason=f"this kernel cannot watch writes: {writewatch.unavailable_reason()}")

BIG = digests.PARALLEL_BYTES + 4096 * 3 + 8  # watched, and not a whole number of pages


def from_scratch(value: object) -> str:
    """The fingerprint with nothing remembered (the write watch off)."""
    saved = writewatch._kernel, writewatch._failure
    writewatch._kernel, writewatch._failure = None, "off for the oracle"
    try:
        return fingerprint.fingerprint(value)
    finally:
        writewatch._kernel, writewatch._failure = saved


def remembered(value: object) -> str:
    """The fingerprint, computed twice: the second time it comes from memory when it can."""
    fingerprint.fingerprint(value)
    return fingerprint.fingerprint(value)


@pytest.fixture
def big() -> Iterator[np.ndarray[Any, Any]]:
    array = np.arange(BIG // 8, dtype=np.float64)
    yield array


def test_an_unwritten_buffer_is_not_hashed_again(big: np.ndarray[Any, Any]) -> None:
    calls: list[int] = []
    original = digests._pieces

    def counting(view: memoryview) -> bytes:
        calls.append(view.nbytes)
        return original(view)

    digests._pieces = counting
    try:
        first = fingerprint.fingerprint(big)
        big.sum()  # reading is not writing
        second = fingerprint.fingerprint(big)
    finally:
        digests._pieces = original
    assert first == second == from_scratch(big)
    assert len(calls) == 1, "the second fingerprint hashed the buffer again"


WRITES: dict[str, Callable[[np.ndarray[Any, Any], Path], None]] = {
    "element": lambda a, _: a.__setitem__(-1, -1.0),
    "view": lambda a, _: a[1000:2000].__setitem__(5, 7.0),
    "reshaped_view": lambda a, _: a[: (a.size // 2) * 2].reshape(2, -1).__setitem__(
        (1, 3), 9.0),
    "np_copyto": lambda a, _: np.copyto(a[10:12], [3.0, 4.0]),
    "ctypes_memmove": lambda a, _: ctypes.memmove(a.ctypes.data + 4096 * 9, b"\xff" * 8, 8),
    "file_readinto": lambda a, p: _read_into(a, p),
    "os_preadv": lambda a, p: _preadv(a, p),
    "thread": lambda a, _: _in_thread(lambda: a.__setitem__(123_457, 5.0)),
    "last_page_tail": lambda a, _: a.__setitem__(a.size - 1, 1e9),
}


def _read_into(array: np.ndarray[Any, Any], tmp: Path) -> None:
    path = tmp / "bytes"
    path.write_bytes(b"\x01" * 4096)
    with path.open("rb") as source:
        source.readinto(memoryview(array).cast("B")[8192:12288])


def _preadv(array: np.ndarray[Any, Any], tmp: Path) -> None:
    path = tmp / "bytes"
    path.write_bytes(b"\x02" * 64)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [memoryview(array).cast("B")[50_000_000:50_000_064]], 0)
    finally:
        os.close(fd)


def _in_thread(work: Callable[[], None]) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


@pytest.mark.parametrize("how", sorted(WRITES))
def test_every_way_of_writing_is_seen(how: str, big: np.ndarray[Any, Any],
                                      tmp_path: Path) -> None:
    before = remembered(big)
    WRITES[how](big, tmp_path)
    after = fingerprint.fingerprint(big)
    assert after == from_scratch(big)
    assert after != before


def test_a_write_while_hashing_is_not_missed(big: np.ndarray[Any, Any]) -> None:
    # The pages are protected before the hash starts: a write racing it reads as written.
    original = digests._pieces

    def racing(view: memoryview) -> bytes:
        result = original(view)
        big[7] = -3.0
        return result

    digests._pieces = racing
    try:
        fingerprint.fingerprint(big)
    finally:
        digests._pieces = original
    assert fingerprint.fingerprint(big) == from_scratch(big)


def test_a_dataframe_written_in_place(big: np.ndarray[Any, Any]) -> None:
    frame = pd.DataFrame({"x": big, "y": big * 2})
    before = remembered(frame)
    frame.iloc[7, 1] = 3.0
    assert fingerprint.fingerprint(frame) == from_scratch(frame) != before


def test_memory_freed_and_reallocated_at_the_same_place() -> None:
    # Memory unmapped and mapped again is not registered; untouched pages of a new map are
    # holes: neither can pass for the old content.
    for _ in range(5):
        first = np.full(BIG // 8, 1.0)
        remembered(first)
        address = first.ctypes.data
        del first
        second = np.zeros(BIG // 8)
        same_place = second.ctypes.data == address
        assert fingerprint.fingerprint(second) == from_scratch(second)
        del second
        if same_place:
            return
    pytest.skip("the allocator never reused the address (the check above still ran)")


def test_a_resize_in_place() -> None:
    array = np.ones(BIG // 8)
    remembered(array)
    array.resize(BIG // 8 + 1_000_000, refcheck=False)
    array[-1] = 4.0
    assert fingerprint.fingerprint(array) == from_scratch(array)


def test_pages_dropped_by_madvise_read_as_changed() -> None:
    # An allocator that keeps a freed range (jemalloc, mimalloc) drops its pages this way; the
    # range then reads as zeros without a single write.
    region = mmap.mmap(-1, BIG, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    array = np.frombuffer(region, dtype=np.uint8)
    array[:] = 5
    before = remembered(array)
    region.madvise(mmap.MADV_DONTNEED, 4096 * 3, 4096 * 2)
    assert array[4096 * 3] == 0
    assert fingerprint.fingerprint(array) == from_scratch(array) != before


def _bump_shared(name: str) -> None:
    memory = shared_memory.SharedMemory(name=name)
    try:
        view = np.ndarray((BIG // 8,), dtype=np.float64, buffer=memory.buf)
        view[3] += 1.0
        del view
    finally:
        memory.close()


def test_shared_memory_written_by_another_process() -> None:
    memory = shared_memory.SharedMemory(create=True, size=BIG)
    try:
        array = np.ndarray((BIG // 8,), dtype=np.float64, buffer=memory.buf)
        array[:] = 1.0
        before = remembered(array)
        child = multiprocessing.get_context("spawn").Process(target=_bump_shared,
                                                              args=(memory.name,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert array[3] == 2.0
        assert fingerprint.fingerprint(array) == from_scratch(array) != before
        del array
    finally:
        memory.close()
        memory.unlink()


def test_a_file_changed_behind_a_private_map(tmp_path: Path) -> None:
    # An untrusted file's copy-on-write map shows the file's new bytes in unwritten pages.
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(BIG))
    with path.open("r+b") as handle:
        mapped = mmap.mmap(handle.fileno(), BIG, access=mmap.ACCESS_COPY)
    array = np.frombuffer(mapped, dtype=np.uint8)
    before = remembered(array)
    with path.open("r+b") as handle:
        handle.seek(4096 * 5)
        handle.write(b"\x07" * 16)
    assert array[4096 * 5] == 7
    assert fingerprint.fingerprint(array) == from_scratch(array) != before


def test_a_memmap_written_through_another_map(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(BIG))
    shared = np.memmap(path, dtype=np.uint8, mode="r+")
    other = np.memmap(path, dtype=np.uint8, mode="r+")
    before = remembered(shared)
    other[100] = 1
    assert fingerprint.fingerprint(shared) == from_scratch(shared) != before


def test_a_forked_child_writes_its_copy(big: np.ndarray[Any, Any]) -> None:
    remembered(big)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own process, its own watch
        try:
            fresh = remembered(big)
            big[11] = 99.0
            ok = fingerprint.fingerprint(big) == from_scratch(big) != fresh
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
    assert big[11] == 11.0  # the parent's memory is its own
    assert fingerprint.fingerprint(big) == from_scratch(big)


def test_store_checksums_are_remembered_and_see_writes(big: np.ndarray[Any, Any]) -> None:
    import xxhash

    from kitteh_magic.store import frames

    first = frames.pickle_value(big)
    assert first.hashes == [xxhash.xxh3_128_digest(b) for b in first.buffers]
    big[5] = -5.0
    second = frames.pickle_value(big)
    assert second.hashes == [xxhash.xxh3_128_digest(b) for b in second.buffers]
    assert second.digest != first.digest
