"""Where a store keeps its metadata documents and small value frames: the index.

:class:`kitteh_magic.store.Store` speaks to an index through the small surface of
:class:`Index`: rows by key (a frame is ``bytes``, a document ``str``), range reads by key
prefix, one-statement upserts, transactions, and a read-modify-write under a lock that holds
across processes and machines. Two implementations:

* :class:`DiskIndex`: diskcache's SQLite table in ``<store>/index/`` (the embedded store);
* :class:`kitteh_magic.store.postgres.PostgresIndex`: a table in PostgreSQL (a team's store).

Large values do not live in the index; they are blobs (``blobs.py``, ``chunks.py``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import diskcache
from diskcache.core import MODE_RAW

from kitteh_magic.errors import DamagedStoreWarning, StoreError
from kitteh_magic.store.frames import SignedDisk, SignedDoc, encode_json
from kitteh_magic.store.signing import Signer

MISSING: Any = object()
"""What :meth:`Index.get` returns for an absent key."""

Row = object
"""A row as stored: ``bytes`` (a value frame), ``str`` (a JSON document, maybe signed) or
``None`` (a row kitteh_magic did not write, which every reader treats as damage)."""


class Index(Protocol):
    """Rows by key for :class:`~kitteh_magic.store.Store` (see the module docstring).

    Every method raises the engine's own errors (``sqlite3.Error``, ``psycopg.Error``, ...);
    the store turns them into :class:`~kitteh_magic.errors.StoreError` through :meth:`failure`.
    """

    def get(self, key: str, *, fresh: bool = False) -> Row:
        """The row at ``key``, or :data:`MISSING`; ``fresh``: as the engine holds it now, not
        from a copy this process keeps (value frames are immutable, so a copy is never stale,
        but it may outlive the row, which a writer deciding whether to write must not see)."""
        ...

    def set(self, key: str, value: bytes | SignedDoc | Mapping[str, Any]) -> None:
        """Store a frame, or a document (signed when wrapped in ``SignedDoc``)."""
        ...

    def upsert_text(self, key: str, text: str) -> None:
        """Store an encoded document in one statement (the write on every activity call)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        ...

    def pop_size(self, key: str) -> int:
        """Remove ``key`` and return the bytes its row held (0 when absent)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix`` in one statement; how many."""
        ...

    def contains(self, key: str) -> bool:
        """Whether ``key`` has a row."""
        ...

    def rows(self, prefix: str) -> list[tuple[str, Row]]:
        """``(key, row)`` of every key under ``prefix``, in key order, in one query."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (``""``: all), sorted."""
        ...

    def written(self, prefix: str) -> list[tuple[str, float]]:
        """``(key, when it was written, epoch seconds)`` of every key under ``prefix``."""
        ...

    def row_bytes(self, prefix: str) -> int:
        """Bytes held by the rows under ``prefix``."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Group writes into one commit (nested: the outer one commits)."""
        ...

    def locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        """A transaction in which no other process can write ``key`` (read-modify-write)."""
        ...

    def failure(self, exc: BaseException, action: str) -> StoreError | None:
        """The :class:`StoreError` for an error of this engine (after any repair it does),
        or ``None`` when ``exc`` is not one of its errors."""
        ...

    def close(self) -> None:
        """Release connections; the index may be used again (it reconnects)."""
        ...


_PINNED: dict[str, Any] = {
    **diskcache.DEFAULT_SETTINGS,
    # The store is not a cache: nothing may be evicted behind a record's back.
    "eviction_policy": "none", "cull_limit": 0, "statistics": False, "tag_index": False,
}
"""Every diskcache setting, given explicitly (see :meth:`DiskIndex._open`)."""


class DiskIndex:
    """The embedded store's index: diskcache's SQLite table under ``<store>/index/``.

    Rows are written by :class:`~kitteh_magic.store.frames.SignedDisk` (never pickled). A
    damaged database is moved aside to ``index.damaged-<time>-<pid>`` and a new one started.
    """

    def __init__(self, directory: Path, signer: Signer) -> None:
        """Open (creating) the index in ``directory / "index"``.

        Raises:
            sqlite3.Error, OSError: the index cannot be opened (not damage: locks, permissions).
        """
        self.directory = directory
        self._signer = signer
        self._inode: int | None = None
        self._cache = self._open()

    def _open(self) -> diskcache.Cache:
        """Open the SQLite index; one that is not a database is moved aside for a new one.

        Every diskcache setting is passed, so none is read from the index's ``Settings`` table:
        a value written there (``sqlite_journal_mode``, ``disk_min_file_size``) cannot change
        how the store works.
        """
        index = self.directory / "index"
        for attempt in (1, 2):
            try:
                private_dir(index)
                if not index.is_dir():
                    raise NotADirectoryError(f"{str(index)!r} is not a directory")
                db = index / "cache.db"
                if db.exists() and not db.is_file():
                    raise IsADirectoryError(f"{str(db)!r} is not a file")
                _pin_settings(db)
                cache = diskcache.Cache(str(index), disk=SignedDisk, timeout=60, **_PINNED)
                cache.disk.signer = self._signer
                self._inode = os.stat(db).st_ino
                return cache
            except (sqlite3.DatabaseError, FileExistsError, NotADirectoryError,
                    IsADirectoryError) as exc:
                # Damage only: not a directory, or a file SQLite says is not a sound database
                # (a lock, a full disk or a permission is not damage, and is raised).
                if attempt == 2 or (isinstance(exc, sqlite3.DatabaseError)
                                    and not corrupt(exc)):
                    raise
                aside = _move_aside(index)
                warnings.warn(f"the store's index {str(index)!r} is damaged ({exc}); it was "
                              f"moved to {aside.name!r} and a new one started: steps run "
                              "again once and rewrite their records.", DamagedStoreWarning,
                              stacklevel=5)
        raise AssertionError("unreachable")

    def get(self, key: str, *, fresh: bool = False) -> Row:
        return self._cache.get(key, MISSING, retry=True)

    def set(self, key: str, value: bytes | SignedDoc | Mapping[str, Any]) -> None:
        self._cache.set(key, value, retry=True)

    def upsert_text(self, key: str, text: str) -> None:
        # diskcache's ``set`` costs a transaction of three statements; an upsert on its table is
        # one, and its triggers keep the table's count and size settings right. The row is what
        # ``set`` would write, so every reader sees no difference.
        now = time.time()
        self._cache._sql(
            "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, ?,"
            " NULL, ?) ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time,"
            " access_time = excluded.access_time, mode = excluded.mode,"
            " filename = NULL, value = excluded.value",
            (key, now, now, MODE_RAW, text))

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key, retry=True))

    def pop_size(self, key: str) -> int:
        with self._cache.transact(retry=True):
            size = self.row_bytes(key, exact=True)
            return size if self._cache.delete(key) else 0

    def delete_prefix(self, prefix: str) -> int:
        # One range DELETE (diskcache's triggers keep its counters); documents and small values
        # own no files, so nothing else needs removing.
        cursor = self._cache._sql("DELETE FROM Cache WHERE key >= ? AND key < ? AND raw = 1",
                                  (prefix, end(prefix)))
        return int(cursor.rowcount)

    def contains(self, key: str) -> bool:
        return key in self._cache

    def rows(self, prefix: str) -> list[tuple[str, Row]]:
        found = self._cache._sql(
            "SELECT key, mode, filename, value FROM Cache WHERE key >= ? AND key < ? AND raw = 1"
            " ORDER BY key", (prefix, end(prefix))).fetchall()
        fetch = self._cache.disk.fetch
        return [(key, fetch(mode, filename, value, False)) for key, mode, filename, value in found]

    def keys(self, prefix: str) -> list[str]:
        # diskcache has no prefix query; its unique (key, raw) index makes this a range scan.
        if prefix:
            found = self._cache._sql("SELECT key FROM Cache WHERE key >= ? AND key < ? AND"
                                     " raw = 1 ORDER BY key", (prefix, end(prefix))).fetchall()
        else:
            found = self._cache._sql("SELECT key FROM Cache WHERE raw = 1 ORDER BY key").fetchall()
        return [key for (key,) in found if isinstance(key, str)]

    def written(self, prefix: str) -> list[tuple[str, float]]:
        found = self._cache._sql("SELECT key, store_time FROM Cache WHERE key >= ? AND key < ?"
                                 " AND raw = 1", (prefix, end(prefix))).fetchall()
        return [(key, float(stored or 0)) for key, stored in found]

    def row_bytes(self, prefix: str, *, exact: bool = False) -> int:
        sql, args = (("key = ?", (prefix,)) if exact
                     else ("key >= ? AND key < ?", (prefix, end(prefix))))
        (size,), = self._cache._sql(
            f"SELECT COALESCE(SUM(LENGTH(value)), 0) FROM Cache WHERE raw = 1 AND {sql}",
            args).fetchall()
        return int(size)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._cache.transact(retry=True)  # type: ignore[no-any-return]

    def locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        # BEGIN IMMEDIATE: one writer at a time across processes, for the whole update.
        return self._cache.transact(retry=True)  # type: ignore[no-any-return]

    def failure(self, exc: BaseException, action: str) -> StoreError | None:
        if not isinstance(exc, OSError | sqlite3.Error | diskcache.Timeout):
            return None
        if corrupt(exc):
            self._set_aside()
            return StoreError(f"cannot {action}: the store's index in "
                              f"{str(self.directory)!r} is damaged ({exc}). It was moved "
                              "aside and a new one started; steps run again once.")
        return StoreError(f"cannot {action} in the store {str(self.directory)!r}: "
                          f"{explain(exc)}")

    def close(self) -> None:
        self._cache.close()

    def _set_aside(self) -> None:
        """Move a damaged index aside and open a new one (unless another process already did)."""
        index = self.directory / "index"
        with contextlib.suppress(OSError, sqlite3.Error):
            self._cache.close()
        try:
            now = os.stat(index / "cache.db").st_ino
        except OSError:
            now = None
        if now is not None and now == self._inode:
            with contextlib.suppress(FileNotFoundError):
                _move_aside(index)
        self._cache = self._open()


def end(prefix: str) -> str:
    """The first key after every key that starts with ``prefix`` (a range query's bound).

    >>> end("km1/val/")
    'km1/val0'
    """
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def corrupt(exc: BaseException) -> bool:
    """Whether SQLite says the index file itself is damaged (not locked, full or unwritable)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        words in text for words in ("malformed", "not a database", "file is encrypted"))


def disk_full(exc: BaseException) -> bool:
    """Whether the error is the disk (or SQLite's database) being full."""
    import errno

    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "is full" in str(exc)


def explain(exc: BaseException) -> str:
    """What went wrong and what to do, in the user's terms."""
    if disk_full(exc):
        return f"the disk is full ({exc}). Free some space (`kitteh-magic gc` trims the store)."
    return f"{exc}. Check free space and permissions."


def private_dir(path: Path) -> None:
    """Create ``path`` (and its missing parents) 0700, or make it so; check it is writable."""
    from kitteh_magic.store.signing import private_parents

    private_parents(path)  # every directory it creates is 0700, whatever the umask
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.chmod(path, 0o700)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"{str(path)!r} is not writable")


def encode_row(key: str, value: bytes | SignedDoc | Mapping[str, Any],
               signer: Signer | None) -> bytes | str:
    """A frame as is, or a document as its JSON text (signed when wrapped in ``SignedDoc``)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, SignedDoc):
        if signer is None:
            raise TypeError("a signed document needs the signer")
        return encode_json(key, value.doc, signer)
    return encode_json(key, value, None)


def _move_aside(index: Path) -> Path:
    """Rename a damaged index to ``index.damaged-<time>-<pid>`` beside it; returns the new path."""
    aside = index.with_name(f"index.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.rename(index, aside)
    return aside


def _pin_settings(db: Path) -> None:
    """Put the pinned settings back into an existing index's ``Settings`` table.

    diskcache applies the ``sqlite_*`` settings it finds in the table to every connection it
    opens, before the values given to its constructor are written, so a value written there
    (``sqlite_journal_mode = "x'"``) would break or change every connection: it is corrected
    first, with a plain connection that applies nothing.
    """
    if not db.is_file():
        return
    with contextlib.closing(sqlite3.connect(db, timeout=60, isolation_level=None)) as con:
        try:
            found = dict(con.execute("SELECT key, value FROM Settings").fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return
            raise
        wrong = [(value, key) for key, value in _PINNED.items()
                 if key in found and found[key] != value]
        if wrong:
            con.executemany("UPDATE Settings SET value = ? WHERE key = ?", wrong)
            warnings.warn(f"the store's index settings {sorted(k for _, k in wrong)} were changed "
                          "on disk; they were set back.", DamagedStoreWarning, stacklevel=6)
