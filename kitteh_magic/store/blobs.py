"""Large values: content-addressed, immutable frame files under ``blobs/<ab>/<digest>``.

A blob is written into ``tmp/`` straight from the value's buffers (no intermediate copy), then
renamed into place, so readers only ever see complete files and two processes writing the same
digest both succeed. Restoring maps the file copy-on-write (``mmap.ACCESS_COPY``): arrays come
back writable, pages load on first touch and nothing is ever written back to the store.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from kitteh_magic import writewatch
from kitteh_magic.store.signing import Bytes

Durability = Literal["process", "machine"]

# Below this, reading into a bytearray beats mapping: it costs no file descriptor per live value
# (mmap keeps a dup'ed descriptor until Python 3.13's trackfd=False) and no page-fault overhead.
MAP_THRESHOLD = 4 * 2**20
_DIGEST = re.compile(r"[0-9a-f]{32}")


class BlobFiles:
    """The ``blobs/`` and ``tmp/`` directories of one store."""

    def __init__(self, root: Path, tmp: Path, durability: Durability) -> None:
        """Use existing directories ``root`` (blobs) and ``tmp`` on the same file system.

        Args:
            root: where committed blobs live.
            tmp: where blobs are written before the rename.
            durability: ``"process"`` fsyncs in a background thread after the rename (a killed
                kernel loses nothing, a power cut may lose the last blobs); ``"machine"`` fsyncs
                the file before and the directory after the rename.
        """
        self.root = root
        self.tmp = tmp
        writewatch.trust(root)  # blobs are immutable: their copy-on-write maps can be watched
        self.durability = durability
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0

    def path(self, digest: str) -> Path:
        """Where the blob of ``digest`` lives."""
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        """Whether the blob of ``digest`` is committed."""
        return os.path.exists(self.path(digest))

    def write(self, digest: str, parts: Sequence[Bytes]) -> int:
        """Commit ``parts`` (written back to back) as the blob of ``digest``; return its size.

        Raises:
            OSError: writing failed (disk full, permissions); no file is left behind.
        """
        final = self.path(digest)
        tmp = self.tmp / f"{digest}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        size = 0
        try:
            for part in parts:
                size += _write_all(fd, part)
            if self.durability == "machine":
                os.fsync(fd)
            final.parent.mkdir(mode=0o700, exist_ok=True)
            os.rename(tmp, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.durability == "machine":
            os.close(fd)
            _fsync_dir(final.parent)
        else:
            self._submit(fd)
        return size

    def read(self, digest: str) -> memoryview:
        """The whole blob as a writable view that never writes back (mapped when large).

        Raises:
            FileNotFoundError: there is no such blob.
        """
        fd = os.open(self.path(digest), os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < MAP_THRESHOLD:
                data = bytearray(size)
                view = memoryview(data)
                done = 0
                while done < size:
                    n = os.readv(fd, [view[done:]])
                    if n == 0:  # shrunk under us: the frame check reports the truncation
                        return view[:done]
                    done += n
                return view
            if sys.version_info >= (3, 13):
                mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY, trackfd=False)
            else:
                mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
            return memoryview(mapped)
        finally:
            os.close(fd)

    def remove(self, digest: str) -> int:
        """Delete the blob of ``digest``; return the bytes freed (0 if it was already gone)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def entries(self) -> Iterator[tuple[str, int]]:
        """``(digest, size)`` of every committed blob (files with other names are skipped)."""
        for shard in _scandir(self.root):
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in _scandir(Path(shard.path)):
                if _DIGEST.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        yield entry.name, entry.stat(follow_symlinks=False).st_size

    def sweep_tmp(self, max_age: float) -> int:
        """Delete temporary files older than ``max_age`` seconds (left by dead writers)."""
        freed = 0
        cutoff = time.time() - max_age
        for entry in _scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime < cutoff:
                    os.unlink(entry.path)
                    freed += info.st_size
        return freed

    def flush(self) -> None:
        """Wait until every background fsync has finished."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Flush and stop the fsync thread."""
        self.flush()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._executor_pid == os.getpid():
            executor.shutdown(wait=True)

    def _submit(self, fd: int) -> None:
        with self._lock:
            # A forked child inherits the executor object but not its thread.
            if self._executor is None or self._executor_pid != os.getpid():
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="kitteh-fsync")
                self._executor_pid = os.getpid()
                self._pending = []
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._executor.submit(_fsync_close, fd))


def _write_all(fd: int, data: Bytes) -> int:
    view = memoryview(data).cast("B")
    total = view.nbytes
    while view.nbytes:
        # os.write is looked up per call (not bound at import) so tests can simulate ENOSPC.
        written = os.write(fd, view)
        view = view[written:]
    return total


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []
