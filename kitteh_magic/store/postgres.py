"""A store shared by a team or a cluster, in PostgreSQL (DESIGN §9).

The rows of the embedded store's index live in one table, large values in content-addressed
chunks, and each machine keeps a read-through cache of those (``chunks.py``), so a value is
fetched once per machine and then restored memory-mapped like the embedded store's blobs. What
is signed stays signed with the team's key: the server holds the same frames and documents as a
store folder does, so a server that is read or altered by someone without the key can leak
values but never make a kernel unpickle something it did not write (DESIGN §4.9).

Schema ``kitteh_magic`` in the database the URL names, created on first use (the idea of a
schema owned by the library and a table of applied versions is DBOS's)::

    migrations(version int PK, applied_at timestamptz, description text)
    meta(name text PK, value text)                           -- store_id: names the local cache
    entries(key text COLLATE "C" PK, doc text, frame bytea, written float8)
    blobs(digest text PK, size bigint, chunks text[], written float8)
    chunks(digest text PK, data bytea)                       -- xxh3-128 of data

Keys sort bytewise (``COLLATE "C"``), so a prefix is a range scan of the primary key as in
SQLite. A read-modify-write of one key (the step lease) holds a transaction-level advisory lock
on the key's hash, which also covers keys that have no row yet.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import xxhash

from kitteh_magic import locate
from kitteh_magic.errors import StoreError
from kitteh_magic.store.frames import SignedDoc
from kitteh_magic.store.index import MISSING, Row, encode_row, end, private_dir
from kitteh_magic.store.signing import Signer
from kitteh_magic.store.store import Store

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")
SCHEMA = "kitteh_magic"
_MIGRATE_LOCK = 0x6B6D_0001  # "km" 1: one process migrates at a time
CHUNKS_LOCK = 0x6B6D_0002
"""Shared by writers of blobs, exclusive for removing chunks (see ``chunks.CachedBlobs``)."""

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "entries, blobs, chunks and the store's id", (
        f"CREATE TABLE {SCHEMA}.meta (name text PRIMARY KEY, value text NOT NULL)",
        f"CREATE TABLE {SCHEMA}.entries (key text COLLATE \"C\" PRIMARY KEY, doc text,"
        " frame bytea, written double precision NOT NULL)",
        # Frames and chunks are checksummed pickles and array bytes: compressing them costs
        # CPU on every write and read for little gain.
        f"ALTER TABLE {SCHEMA}.entries ALTER COLUMN frame SET STORAGE EXTERNAL",
        f"CREATE TABLE {SCHEMA}.blobs (digest text COLLATE \"C\" PRIMARY KEY,"
        " size bigint NOT NULL, chunks text[] NOT NULL, written double precision NOT NULL)",
        f"CREATE INDEX blobs_chunks ON {SCHEMA}.blobs USING gin (chunks)",
        f"CREATE TABLE {SCHEMA}.chunks (digest text COLLATE \"C\" PRIMARY KEY,"
        " data bytea NOT NULL)",
        f"ALTER TABLE {SCHEMA}.chunks ALTER COLUMN data SET STORAGE EXTERNAL",
    )),
)
"""Schema versions in order: each one's statements run once, in one transaction, and its row
in ``migrations`` says so. Add a version at the end; never edit one that shipped."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
VALUE_PREFIX = "km1/val/"
IDLE_CHECK = 2.0
"""Seconds after which the main thread's connection is checked before it is used."""
FRAMES_KEPT = 32 * 2**20
"""Bytes of small value frames a process keeps after reading them (see ``PostgresIndex.get``):
a replay then asks the server for the step's pointer and record only."""


@functools.cache
def _modules() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise StoreError("a PostgreSQL store needs psycopg: pip install "
                         "'kitteh_magic[postgresql]'") from exc
    pool_log = logging.getLogger("psycopg.pool")
    if pool_log.level == logging.NOTSET:
        # The pool logs each dead connection it discards as a warning, which a kernel prints
        # into the running cell; the store reports what matters itself (a StoreError, once).
        pool_log.setLevel(logging.ERROR)
    return psycopg, psycopg_pool


class PostgresIndex:
    """The :class:`~kitteh_magic.store.index.Index` of a store in PostgreSQL.

    A connection pool (psycopg_pool) of autocommit connections: a lone read or write is one
    round trip; :meth:`transaction` and :meth:`locked` hold one connection for their block, on
    the thread that opened them (other threads use other connections meanwhile). The process's
    main thread (the kernel's, which looks steps up and replays them) keeps one connection of
    the pool for itself: checking one out and back costs about 100 µs, three times the round
    trip of a small query, and a replay makes four (record, pointer, and the pointer's update
    in two).
    """

    def __init__(self, url: locate.StoreURL, signer: Signer, *, max_connections: int = 16,
                 connect_timeout: float = 10.0) -> None:
        """Connect, create or upgrade the schema, and read the store's id.

        Raises:
            StoreError: the server cannot be reached, refuses the user, or holds a schema of a
                newer kitteh_magic.
        """
        self.url = url
        self._signer = signer
        self._max = max_connections
        self._timeout = connect_timeout
        self._local = threading.local()
        self._pool_pid = 0
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._main: psycopg.Connection[Any] | None = None
        self._main_used = 0.0
        self.gone = False
        """Whether the server was lost or its tables were: the owner opens the store anew."""
        self._lock = threading.Lock()
        self._frames: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._frames_size = 0
        try:
            self.store_id = self._start()
        except BaseException:
            self.close()  # the pool would go on trying to connect in the background
            raise

    # -- connections ------------------------------------------------------------------------

    def _connections(self) -> psycopg_pool.ConnectionPool:
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # A forked child never uses its parent's connections (their sockets are shared).
                self._main = None
                _, pools = _modules()
                self._pool = pools.ConnectionPool(
                    self.url.url, min_size=1, max_size=self._max, open=True,
                    timeout=self._timeout, name="kitteh_magic",
                    kwargs={"autocommit": True, "connect_timeout": max(int(self._timeout), 1),
                            "application_name": "kitteh_magic"})
                self._pool_pid = os.getpid()
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of this thread's open transaction, else the main thread's own, else
        one from the pool."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self._checkout() as conn:
            yield conn

    @contextlib.contextmanager
    def _checkout(self) -> Iterator[psycopg.Connection[Any]]:
        """The main thread's own connection, or one from the pool for this block."""
        if threading.current_thread() is threading.main_thread():
            yield self._own()
            return
        with self._connections().connection() as conn:
            yield conn

    def _own(self) -> psycopg.Connection[Any]:
        """The main thread's connection, taken from the pool once (again if it broke).

        After :data:`IDLE_CHECK` seconds unused it is checked with an empty query first (one
        round trip, the cost of a cell run after a pause): a server restarted meanwhile then
        costs a reconnection, not a cell run plain.
        """
        psycopg, _ = _modules()
        pool = self._connections()
        own, now = self._main, time.monotonic()
        if own is not None and not own.broken and not own.closed:
            if now - self._main_used < IDLE_CHECK:
                self._main_used = now
                return own
            try:
                own.execute("")
                self._main_used = now
                return own
            except psycopg.OperationalError:
                pool.check()  # the pool's idle connections died with it
        if own is not None:
            self._main = None
            pool.putconn(own)  # broken: the pool discards it
        self._main = pool.getconn()
        self._main_used = now
        return self._main

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self._retried(lambda conn: conn.execute(sql, args).fetchall())

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        return self._retried(lambda conn: conn.execute(sql, args).fetchone())

    def _count(self, sql: str, args: tuple[object, ...] = ()) -> int:
        """Run a statement; the rows it changed."""
        return self._retried(lambda conn: conn.execute(sql, args).rowcount)

    def _retried(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(connection)``, once more on another connection when the first one turns out
        to be dead (a server restarted since it was opened). Outside a transaction every
        statement here is one upsert, delete or read: running it twice changes nothing."""
        psycopg, _ = _modules()
        in_transaction = getattr(self._local, "conn", None) is not None
        for attempt in (1, 2):
            with self.connection() as conn:
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    if attempt == 2 or in_transaction or not conn.broken:
                        raise
            self._renew()
        raise AssertionError("unreachable")

    def _renew(self) -> None:
        """After a dead connection: drop this thread's own one and have the pool check the
        ones it holds (they all died with the server)."""
        with self._lock:
            own, self._main = (self._main, None) if (
                self._main is not None and self._main.broken) else (None, self._main)
            pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            if own is not None:
                pool.putconn(own)
            pool.check()

    def _start(self) -> str:
        """The store's id, after creating or upgrading the schema when needed."""
        psycopg, _ = _modules()
        try:
            # A connection of its own, not the pool's: a server that refuses is said at once
            # (the pool would retry in the background for its whole timeout).
            with psycopg.connect(self.url.url, autocommit=True, application_name="kitteh_magic",
                                 connect_timeout=max(int(self._timeout), 1)) as conn:
                try:
                    version, store_id = conn.execute(
                        f"SELECT (SELECT max(version) FROM {SCHEMA}.migrations),"
                        f" (SELECT value FROM {SCHEMA}.meta WHERE name = 'store_id')"
                    ).fetchone() or (0, None)
                except psycopg.errors.UndefinedTable:
                    version, store_id = 0, None
                if version != SCHEMA_VERSION or store_id is None:
                    store_id = self._migrate(conn)
        except StoreError:
            raise
        except Exception as exc:
            error = self.failure(exc, "open the store")
            if error is None:
                raise
            raise error from exc
        return str(store_id)

    def _migrate(self, conn: psycopg.Connection[Any]) -> str:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.migrations (version int PRIMARY"
                         " KEY, applied_at timestamptz NOT NULL DEFAULT now(), description text"
                         " NOT NULL)")
            (version,) = conn.execute(
                f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.migrations").fetchone() or (0,)
            if version > SCHEMA_VERSION:
                raise StoreError(f"the store {self.url} was written by a newer kitteh_magic "
                                 f"(schema version {version}; this one knows up to "
                                 f"{SCHEMA_VERSION}): upgrade kitteh_magic")
            for number, description, statements in MIGRATIONS:
                if number <= version:
                    continue
                for sql in statements:
                    conn.execute(sql)
                conn.execute(f"INSERT INTO {SCHEMA}.migrations (version, description)"
                             " VALUES (%s, %s)", (number, description))
            conn.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('store_id', %s)"
                         " ON CONFLICT (name) DO NOTHING", (uuid.uuid4().hex,))
            row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE name = 'store_id'"
                               ).fetchone()
        if row is None:
            raise StoreError(f"the store {self.url} has no id: its table {SCHEMA}.meta was "
                             "altered")
        return str(row[0])

    def check_key(self, signer: Signer) -> None:
        """Check that ``signer`` holds the key this store's records are signed with.

        The store keeps a check value of the team's key (an HMAC of a fixed text: it tells
        keys apart and reveals nothing of them), written by the first machine that signs. A
        machine with another key would find every record "damaged", recompute it and
        overwrite the team's records with its own; it is refused instead, before it reads
        or writes anything.

        Raises:
            StoreError: this machine's key is not the store's.
        """
        mine = signer.mac(b"km1/key-check").hex()[:32]
        try:
            # One round trip, and a write only when the store has no check value yet.
            row = self._one(f"WITH made AS (INSERT INTO {SCHEMA}.meta VALUES ('key_check', %s)"
                            " ON CONFLICT (name) DO NOTHING RETURNING value) SELECT value FROM"
                            f" made UNION ALL SELECT value FROM {SCHEMA}.meta WHERE name ="
                            " 'key_check' LIMIT 1", (mine,))
            if row is None:  # another machine wrote it after this statement's snapshot
                row = self._one(f"SELECT value FROM {SCHEMA}.meta WHERE name = 'key_check'")
        except Exception as exc:
            error = self.failure(exc, "open the store")
            if error is None:
                raise
            raise error from exc
        if row is not None and row[0] != mine:
            raise StoreError(f"the store {self.url} is signed with another key than this "
                             f"machine's ({str(signer.path)!r}): copy the team's key file "
                             f"here, or name it with ${locate.KEY_ENV}. Nothing was read or "
                             "written.")

    # -- the Index surface ------------------------------------------------------------------

    def get(self, key: str, *, fresh: bool = False) -> Row:
        value = key.startswith(VALUE_PREFIX)
        if value and not fresh:
            with self._lock:
                kept = self._frames.get(key)
                if kept is not None:
                    self._frames.move_to_end(key)
                    return kept
        row = self._one(f"SELECT doc, frame FROM {SCHEMA}.entries WHERE key = %s", (key,))
        found = MISSING if row is None else _row(row[0], row[1])
        if value and isinstance(found, bytes):
            self._keep(key, found)
        return found

    def _keep(self, key: str, frame: bytes) -> None:
        """Keep a small value's frame in this process (content-addressed: never stale), the
        least recently used dropped beyond :data:`FRAMES_KEPT` bytes in all."""
        with self._lock:
            if key not in self._frames:
                self._frames[key] = frame
                self._frames_size += len(frame)
            while self._frames_size > FRAMES_KEPT:
                _, dropped = self._frames.popitem(last=False)
                self._frames_size -= len(dropped)

    def _forget(self, key: str | None = None) -> None:
        """Drop the kept frame of ``key`` (None: all): the row changed or is gone."""
        with self._lock:
            if key is None:
                self._frames.clear()
                self._frames_size = 0
            elif (frame := self._frames.pop(key, None)) is not None:
                self._frames_size -= len(frame)

    def set(self, key: str, value: bytes | SignedDoc | Mapping[str, Any]) -> None:
        self._put(key, encode_row(key, value, self._signer))

    def upsert_text(self, key: str, text: str) -> None:
        self._put(key, text)

    def _put(self, key: str, raw: bytes | str) -> None:
        self._forget(key)
        doc, frame = (raw, None) if isinstance(raw, str) else (None, raw)
        self._count(f"INSERT INTO {SCHEMA}.entries (key, doc, frame, written) VALUES"
                      " (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc,"
                      " frame = excluded.frame, written = excluded.written",
                      (key, doc, frame, time.time()))

    def delete(self, key: str) -> bool:
        self._forget(key)
        return self._count(f"DELETE FROM {SCHEMA}.entries WHERE key = %s", (key,)) > 0

    def pop_size(self, key: str) -> int:
        self._forget(key)
        row = self._one(f"DELETE FROM {SCHEMA}.entries WHERE key = %s RETURNING"
                        " coalesce(octet_length(doc), 0) + coalesce(octet_length(frame), 0)",
                        (key,))
        return 0 if row is None else int(row[0])

    def delete_prefix(self, prefix: str) -> int:
        self._forget()
        return self._count(f"DELETE FROM {SCHEMA}.entries WHERE key >= %s AND key < %s",
                           (prefix, end(prefix)))

    def contains(self, key: str) -> bool:
        return self._one(f"SELECT 1 FROM {SCHEMA}.entries WHERE key = %s", (key,)) is not None

    def rows(self, prefix: str) -> list[tuple[str, Row]]:
        found = self._all(f"SELECT key, doc, frame FROM {SCHEMA}.entries WHERE key >= %s"
                          " AND key < %s ORDER BY key", (prefix, end(prefix)))
        return [(key, _row(doc, frame)) for key, doc, frame in found]

    def keys(self, prefix: str) -> list[str]:
        if not prefix:
            return [k for (k,) in self._all(f"SELECT key FROM {SCHEMA}.entries ORDER BY key")]
        return [k for (k,) in self._all(
            f"SELECT key FROM {SCHEMA}.entries WHERE key >= %s AND key < %s ORDER BY key",
            (prefix, end(prefix)))]

    def written(self, prefix: str) -> list[tuple[str, float]]:
        return [(k, float(w)) for k, w in self._all(
            f"SELECT key, written FROM {SCHEMA}.entries WHERE key >= %s AND key < %s",
            (prefix, end(prefix)))]

    def row_bytes(self, prefix: str) -> int:
        (size,), = self._all(
            f"SELECT coalesce(sum(coalesce(octet_length(doc), 0) + coalesce(octet_length(frame),"
            f" 0)), 0) FROM {SCHEMA}.entries WHERE key >= %s AND key < %s",
            (prefix, end(prefix)))
        return int(size)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:  # nested: the outer one commits
            yield
            return
        with self._checkout() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """A transaction holding the advisory lock of ``key`` until it ends.

        In pipeline mode: BEGIN, the lock and the block's first read go to the server in one
        round trip, and its writes with COMMIT in one more (a lease taken or a pointer updated
        costs two round trips, not five). The read still sees what the previous holder
        committed: the server runs the statements in order, and a statement's snapshot is taken
        when it starts, after the lock is granted.
        """
        lock = key_lock(key)
        if getattr(self._local, "conn", None) is not None:
            self._all("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield
            return
        with self._checkout() as conn, conn.pipeline(), conn.transaction():
            self._local.conn = conn
            try:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                yield
            finally:
                self._local.conn = None

    def failure(self, exc: BaseException, action: str) -> StoreError | None:
        psycopg, pools = _modules()
        said = self._scrub(_first_line(exc))
        if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
            self.gone = True  # the database was emptied or made again: open it anew
            return StoreError(f"cannot {action}: the PostgreSQL store {self.url} lost its tables "
                              f"({said}); it is opened again, as a new store, on the next step")
        if isinstance(exc, pools.PoolTimeout | psycopg.OperationalError):
            self.gone = True
            return StoreError(f"cannot {action}: the PostgreSQL store {self.url} cannot be "
                              f"reached ({said}). Check the server, the URL in "
                              f"${locate.STORE_URL_ENV} and the network.")
        if isinstance(exc, psycopg.Error):
            return StoreError(f"cannot {action}: the PostgreSQL store {self.url} answered "
                              f"{said}")
        return None

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's password (libpq quotes parts of a URL it refuses)."""
        for secret in locate.secrets_of(self.url.url):
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            own, self._main = self._main, None
        if pool is not None and self._pool_pid == os.getpid():
            if own is not None:
                pool.putconn(own)
            pool.close()


class PostgresStore(Store):
    """A :class:`~kitteh_magic.store.Store` in PostgreSQL, with this machine's cache of its
    large values (see the module docstring)."""

    def __init__(self, url: locate.StoreURL, *, key_file: Path | None = None,
                 cache: Path | None = None, inline_limit: int = 64 * 1024,
                 verify_limit: int = 256 * 2**20) -> None:
        """Open the store at ``url``, creating its schema in an empty database.

        Args:
            url: ``postgresql://user:password@host:port/database`` (libpq's URL: its query
                parameters, ``$PGPASSWORD`` and ``~/.pgpass`` apply).
            key_file: the team's signing key (default :func:`kitteh_magic.locate.key_file`).
            cache: this machine's cache folder (default :func:`kitteh_magic.locate.cache_dir`);
                the store's values are under ``<cache>/<store id>/``.
            inline_limit, verify_limit: as for the embedded store. (A value is durable once
                the server committed it: there is no ``durability`` to choose.)

        Raises:
            StoreError: psycopg is not installed, the server cannot be reached, or the cache
                folder cannot be written.
        """
        from kitteh_magic.store.chunks import CachedBlobs

        self.location = str(url)
        self.inline_limit = inline_limit
        self.verify_limit = verify_limit
        self._signer = Signer(key_file if key_file is not None else locate.key_file())
        index = PostgresIndex(url, self._signer)
        self._index = index
        try:
            index.check_key(self._signer)
        except BaseException:
            index.close()
            raise
        self.directory = (cache or locate.cache_dir()) / index.store_id
        try:
            for path in (self.directory, self.directory / "blobs", self.directory / "tmp"):
                private_dir(path)
        except OSError as exc:
            index.close()
            raise StoreError(f"cannot use the cache folder {str(self.directory)!r} of the store "
                             f"{self.location}: {exc}. Choose one with ${locate.CACHE_ENV}.") \
                from exc
        self._blobs = CachedBlobs(index, self.directory)
        self._started()

    @property
    def shared(self) -> bool:
        return True

    @property
    def gone(self) -> bool:
        """Whether the server or the store's tables were lost: open the store anew to go on."""
        index = self._index
        return isinstance(index, PostgresIndex) and index.gone


def key_lock(key: str) -> int:
    """The advisory lock number of ``key``: a signed 64-bit hash of it.

    >>> key_lock("km1/lease/s/a") == key_lock("km1/lease/s/a") != key_lock("km1/lease/s/b")
    True
    """
    return xxhash.xxh3_64_intdigest(key.encode()) - 2**63


def _row(doc: str | None, frame: bytes | None) -> Row:
    if doc is not None:
        return doc
    return bytes(frame) if frame is not None else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
