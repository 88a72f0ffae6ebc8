"""Large values: content-addressed, immutable frame files under ``blobs/<ab>/<digest>``.

A blob is written into ``tmp/`` straight from the value's buffers (no intermediate copy), then
renamed into place, so readers only ever see complete files and two processes writing the same
digest both succeed. Restoring maps the file copy-on-write (``mmap.ACCESS_COPY``): arrays come
back writable, pages load on first touch and nothing is ever written back to the store.

A temporary file's name says who writes it (pid, process start, host), so the file of a writer
that died mid-write (a kernel killed while saving 2 GB) is recognised and swept at once, not an
hour later (:func:`sweep`).
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from kitteh_magic import writewatch
from kitteh_magic.store.signing import Bytes

Durability = Literal["process", "machine", "copy"]

# Below this, reading into a bytearray beats mapping: it costs no file descriptor per live value
# (mmap keeps a dup'ed descriptor until Python 3.13's trackfd=False) and no page-fault overhead.
MAP_THRESHOLD = 4 * 2**20
_DIGEST = re.compile(r"[0-9a-f]{32}")
# <digest>.<pid>.<start>.<host>.<random>.tmp, start in whole seconds since the epoch and host a
# CRC of the host name; files written before the writer was named carry only the pid.
_TMP_NAME = re.compile(r"[0-9a-f]{32}\.(?P<pid>\d{1,10})"
                       r"(?:\.(?P<start>\d{1,12})\.(?P<host>[0-9a-f]{8}))?\.[0-9a-f]{8}\.tmp")
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
# Process start times are derived from the boot time, which the kernel reports in whole seconds.
_START_SLACK = 2.0
TMP_MAX_AGE = 3600.0
"""Temporary files of live writers (and of writers that cannot be identified) older than this
are swept too: no write takes an hour between two of its writes."""

_writing: set[str] = set()
"""Names of the temporary files this process is writing (whatever store): never swept."""
_writing_lock = threading.Lock()


class BlobFiles:
    """The ``blobs/`` and ``tmp/`` directories of one store."""

    def __init__(self, root: Path, tmp: Path, durability: Durability) -> None:
        """Use existing directories ``root`` (blobs) and ``tmp`` on the same file system.

        Args:
            root: where committed blobs live.
            tmp: where blobs are written before the rename.
            durability: ``"process"`` fsyncs in a background thread after the rename (a killed
                kernel loses nothing, a power cut may lose the last blobs); ``"machine"`` fsyncs
                the file before and the directory after the rename; ``"copy"`` never fsyncs:
                the files are copies of values kept elsewhere (a shared store's cache), and a
                copy a power cut tore fails its checksum and is fetched again.
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
        """Whether the blob of ``digest`` is committed: a file (not a directory or a link that
        stands in its place, which no read can use)."""
        try:
            return stat.S_ISREG(os.lstat(self.path(digest)).st_mode)
        except OSError:
            return False

    def write(self, digest: str, parts: Iterable[Bytes]) -> int:
        """Commit ``parts`` (written back to back) as the blob of ``digest``; return its size.

        Raises:
            OSError: writing failed (disk full, permissions); no file is left behind.
        """
        final = self.path(digest)
        name = f"{digest}.{_writer_name()}.{secrets.token_hex(4)}.tmp"
        tmp = self.tmp / name
        with _in_flight(name):
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
        elif self.durability == "copy":
            os.close(fd)
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

    def size(self, digest: str) -> int | None:
        """The size of the committed blob of ``digest``, or ``None`` when there is none; a
        directory or a link standing in its place is removed (no read could use it)."""
        path = self.path(digest)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISREG(info.st_mode):
            return info.st_size
        self.remove(digest)
        return None

    def where(self, digest: str) -> str:
        """Where the blob of ``digest`` is looked for, for messages."""
        return f"blob file {str(self.path(digest))!r}"

    def refetch(self, digest: str) -> bool:
        """Whether a damaged copy can be fetched again from elsewhere (never: this is the
        only copy; see ``chunks.CachedBlobs``)."""
        return False

    def remove(self, digest: str) -> int:
        """Delete the blob of ``digest`` (or a directory in its place); return the bytes freed
        (0 if it was already gone)."""
        path = self.path(digest)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            return 0
        try:
            size = path.lstat().st_size
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

    def written(self, digest: str) -> float:
        """When the blob of ``digest`` was committed (its modification time); 0 if it is gone."""
        try:
            return self.path(digest).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def prune(self, live: set[str], before: float) -> int:
        """Nothing: these files are the store itself, removed one by one (``Store.collect``);
        a cache of a shared store prunes its copies (``chunks.CachedBlobs.prune``)."""
        return 0

    def sweep_tmp(self, max_age: float = TMP_MAX_AGE) -> int:
        """Delete the temporary files of dead writers (see :func:`sweep`); return bytes freed."""
        return sweep(self.tmp, max_age)

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


def sweep(tmp: Path, max_age: float = TMP_MAX_AGE) -> int:
    """Delete the temporary files in ``tmp`` that nobody will finish; return the bytes freed.

    A file is abandoned when its writer is gone (no process has its pid, or the one that has it
    started at another time, or is a zombie) or, whoever wrote it, when it was not written to for
    ``max_age`` seconds. Files this process is writing are never touched, and the files of
    another host (a store on a shared file system) go by age only: their pids mean nothing here.
    Errors are skipped, not raised: what cannot be removed now is tried again next time. An empty
    ``tmp`` costs one ``scandir``, so opening a store can afford it.
    """
    return sum(size for path, size in abandoned(tmp, max_age) if _unlink(path))


def abandoned(tmp: Path, max_age: float = TMP_MAX_AGE) -> list[tuple[Path, int]]:
    """``(path, size)`` of the temporary files :func:`sweep` would delete."""
    found: list[tuple[Path, int]] = []
    now = time.time()
    starts: dict[int, float | None] = {}
    for entry in _listed(tmp):
        with _writing_lock:
            if entry.name in _writing:
                continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if now - info.st_mtime > max_age or _writer_gone(entry.name, starts):
            found.append((Path(entry.path), info.st_size))
    return found


def temporary_bytes(tmp: Path) -> int:
    """Bytes held by every temporary file in ``tmp`` (being written or abandoned)."""
    total = 0
    for entry in _listed(tmp):
        with contextlib.suppress(OSError):
            total += entry.stat(follow_symlinks=False).st_size
    return total


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when there is none.

    A zombie counts as gone (it runs no code); a process that may not be inspected counts as
    started long ago (0.0), which callers read as "alive, start unknown".
    """
    import psutil  # only when a file or a pointer names a process: opening a store stays cheap

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, ValueError, OverflowError):
        return 0.0


def _writer_gone(name: str, starts: dict[int, float | None]) -> bool:
    match = _TMP_NAME.fullmatch(name)
    if match is None:
        return False  # not ours to judge: the age rule alone applies
    if match["host"] is not None and match["host"] != _HOST:
        return False
    pid = int(match["pid"])
    if pid not in starts:
        starts[pid] = process_start(pid)
    started = starts[pid]
    if started is None:
        return True
    if not int(match["start"] or 0) or started == 0.0:
        return False  # alive, and whether it is the writer cannot be told: the age rule applies
    # The pid was reused when the process that has it now started at another time.
    return abs(started - int(match["start"])) > _START_SLACK


@contextlib.contextmanager
def _in_flight(name: str) -> Iterator[None]:
    with _writing_lock:
        _writing.add(name)
    try:
        yield
    finally:
        with _writing_lock:
            _writing.discard(name)


def _writer_name() -> str:
    """``<pid>.<start>.<host>`` of this process (a forked child is another writer)."""
    return _writer_of(os.getpid())


@functools.cache
def _writer_of(pid: int) -> str:
    return f"{pid}.{int(process_start(pid) or 0)}.{_HOST}"


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


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


def _listed(tmp: Path) -> list[os.DirEntry[str]]:
    """The entries of ``tmp``; none when it cannot be read (sweeping is never an error)."""
    try:
        return _scandir(tmp)
    except OSError:
        return []


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []
