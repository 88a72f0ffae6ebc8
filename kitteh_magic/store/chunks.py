"""Large values of a shared store: chunks on the server, a read-through cache on this machine.

A large value is one frame (``frames.py``), as in the embedded store. On the server it is a row
of ``blobs`` naming its chunks in order, and each chunk (:data:`CHUNK_BYTES` of the frame) is a
row of ``chunks`` named by the xxh3-128 of its bytes, so a chunk two values share is stored once.
On this machine the frame is a file of the cache folder, the same file the embedded store
writes under ``blobs/``: saving writes it there first, then uploads it; restoring a value this
machine has not seen fetches its chunks once, checking each against its name, into that file,
and then maps it copy-on-write like any blob (O(1) restores from then on). Content addressing
means a cached file is never stale: a digest names one content forever.

A blob row is written in the transaction that writes its missing chunks, so a reader sees a
blob only with all its chunks. Removing a blob removes the chunks no other blob names, under an
exclusive advisory lock that writers take shared, so a chunk a writer is about to reuse is
never removed under it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import xxhash

from kitteh_magic.errors import DamagedRecordError, StoreError
from kitteh_magic.store.blobs import BlobFiles
from kitteh_magic.store.index import explain, private_dir
from kitteh_magic.store.postgres import CHUNKS_LOCK, SCHEMA, PostgresIndex
from kitteh_magic.store.signing import Bytes

CHUNK_BYTES = 8 * 2**20
"""Bytes per chunk: large enough that a round trip per chunk is a small part of its transfer,
small enough that a chunk is cheap to hold twice (psycopg's buffer and the file write)."""


class CachedBlobs:
    """The ``Blobs`` of :class:`~kitteh_magic.store.postgres.PostgresStore`."""

    def __init__(self, index: PostgresIndex, directory: Path) -> None:
        """Chunks through ``index``'s connections; this machine's copies under ``directory``
        (``blobs/`` and ``tmp/``, created 0700). A value is durable once the server committed
        it; the copies are never fsynced."""
        self.index = index
        for path in (directory / "blobs", directory / "tmp"):
            private_dir(path)
        # Copies: the server holds the values, so the cache never waits for the disk (a
        # background fsync of each fetched value competed with the next one's download).
        self.local = BlobFiles(directory / "blobs", directory / "tmp", "copy")

    def exists(self, digest: str) -> bool:
        """Whether the server holds the blob (the server is the truth; the cache a copy)."""
        return self.size(digest) is not None

    def size(self, digest: str) -> int | None:
        """The blob's size on the server, or ``None`` when the server has none."""
        row = self.index._one(f"SELECT size FROM {SCHEMA}.blobs WHERE digest = %s", (digest,))
        return None if row is None else int(row[0])

    def write(self, digest: str, parts: Iterable[Bytes]) -> int:
        """Write the frame into the cache, then upload what the server lacks; returns its
        size. (Called when the server has no such blob: a copy this machine has is written
        again from ``parts``, the value itself, so a damaged copy is never uploaded.)

        Raises:
            OSError: the cache cannot be written. ``psycopg.Error``: the upload failed.
        """
        if self.local.size(digest) is not None:
            self.local.remove(digest)
        self.local.write(digest, parts)
        data = self.local.read(digest)
        size = data.nbytes
        names = [xxhash.xxh3_128_hexdigest(data[at:at + CHUNK_BYTES])
                 for at in range(0, size, CHUNK_BYTES)]
        with self.index.transaction(), self.index.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (CHUNKS_LOCK,))
            have = {name for (name,) in conn.execute(
                f"SELECT digest FROM {SCHEMA}.chunks WHERE digest = ANY(%s)", (names,))}
            with conn.cursor() as cur:
                for number, name in enumerate(names):
                    if name in have:
                        continue
                    have.add(name)
                    at = number * CHUNK_BYTES
                    cur.execute(f"INSERT INTO {SCHEMA}.chunks (digest, data) VALUES (%s, %b)"
                                " ON CONFLICT (digest) DO NOTHING",
                                (name, data[at:at + CHUNK_BYTES]))
            conn.execute(f"INSERT INTO {SCHEMA}.blobs (digest, size, chunks, written) VALUES"
                         " (%s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING",
                         (digest, size, names, time.time()))
        return size

    def read(self, digest: str) -> memoryview:
        """The frame, from the cache, fetched into it first when this machine lacks it.

        Raises:
            FileNotFoundError: the server has no such blob.
            DamagedRecordError: a chunk is missing or its bytes do not match its name
                (``checksum``), or the chunks do not add up to the blob's size
                (``truncated``); the caller drops the value, so its step recomputes it.
            StoreError: this machine's cache cannot hold it (a full disk, permissions): the
                server's value is fine and stays.
        """
        try:
            return self.local.read(digest)
        except FileNotFoundError:
            pass  # not cached on this machine yet: fetched from the server below
        except OSError:  # a folder in its place, a permission: this machine's copy only
            self._mend(digest)
        row = self.index._one(f"SELECT size, chunks FROM {SCHEMA}.blobs WHERE digest = %s",
                              (digest,))
        if row is None:
            raise FileNotFoundError(f"no blob {digest} on the server")
        size, names = int(row[0]), list(row[1])
        try:
            written = self.local.write(digest, self._fetch(digest, names))
        except OSError as exc:
            raise StoreError(f"cannot keep value {digest} in this machine's cache "
                             f"{str(self.local.root)!r}: {explain(exc)} The value stays on "
                             "the server.") from exc
        if written != size:
            self.local.remove(digest)
            raise DamagedRecordError(_key(digest), "truncated", f"its chunks hold {written} "
                                     f"bytes, the blob {size}")
        try:
            return self.local.read(digest)
        except OSError as exc:
            raise StoreError(f"cannot read value {digest} from this machine's cache "
                             f"{str(self.local.root)!r}: {explain(exc)}") from exc

    def _fetch(self, digest: str, names: list[str]) -> Iterator[bytes]:
        """Each chunk's bytes in order, checked against its name, in binary (no hex text).

        One thread fetches the next chunk while the caller writes this one to the cache file:
        both wait on I/O (the network, the disk) with the GIL released, so a first restore
        takes about the longer of the two, not their sum.
        """
        if not names:
            return
        with self.index.connection() as conn, conn.cursor(binary=True) as cur, \
                ThreadPoolExecutor(1, thread_name_prefix="kitteh-fetch") as ahead:

            def get(name: str) -> bytes:
                found = cur.execute(f"SELECT data FROM {SCHEMA}.chunks WHERE digest = %s",
                                    (name,)).fetchone()
                if found is None:
                    raise DamagedRecordError(_key(digest), "truncated",
                                             f"its chunk {name} is missing on the server")
                data: bytes = found[0]
                if xxhash.xxh3_128_hexdigest(data) != name:
                    raise DamagedRecordError(_key(digest), "checksum",
                                             f"its chunk {name} on the server was altered")
                return data

            coming: Future[bytes] = ahead.submit(get, names[0])
            for following in [*names[1:], None]:
                data = coming.result()
                if following is not None:
                    coming = ahead.submit(get, following)
                yield data

    def refetch(self, digest: str) -> bool:
        """Drop this machine's copy so that the next read fetches the server's again; whether
        the server has one (a damaged cached file then costs a download, not a recompute)."""
        if self.local.size(digest) is None:
            return False
        self._mend(digest)
        return self.exists(digest)

    def _mend(self, digest: str) -> None:
        """Remove what stands where this machine's copy of ``digest`` should be.

        Raises:
            StoreError: it cannot be removed (the cache folder is not writable).
        """
        try:
            self.local.remove(digest)
        except OSError as exc:
            raise StoreError(f"cannot replace {str(self.local.path(digest))!r} in this "
                             f"machine's cache: {explain(exc)}") from exc

    def where(self, digest: str) -> str:
        return f"blob {digest} in {self.index.url} (cached as {str(self.local.path(digest))!r})"

    def remove(self, digest: str) -> int:
        """Remove the blob from the server (with the chunks no other blob names) and from
        this machine's cache; the bytes freed on the server."""
        with contextlib.suppress(FileNotFoundError):
            self._mend(digest)
        with self.index.transaction(), self.index.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHUNKS_LOCK,))
            row = conn.execute(f"DELETE FROM {SCHEMA}.blobs WHERE digest = %s RETURNING"
                               " size, chunks", (digest,)).fetchone()
            if row is None:
                return 0
            conn.execute(f"DELETE FROM {SCHEMA}.chunks c WHERE c.digest = ANY(%s) AND NOT"
                         f" EXISTS (SELECT 1 FROM {SCHEMA}.blobs b WHERE b.chunks @>"
                         " ARRAY[c.digest]::text[])", (list(row[1]),))
        return int(row[0])

    def entries(self) -> Iterator[tuple[str, int]]:
        """``(digest, size)`` of every blob on the server."""
        yield from ((d, int(s)) for d, s in self.index._all(
            f"SELECT digest, size FROM {SCHEMA}.blobs ORDER BY digest"))

    def written(self, digest: str) -> float:
        row = self.index._one(f"SELECT written FROM {SCHEMA}.blobs WHERE digest = %s",
                              (digest,))
        return 0.0 if row is None else float(row[0])

    def cached(self) -> Iterator[tuple[str, int]]:
        """``(digest, size)`` of this machine's cached copies."""
        return self.local.entries()

    def sweep_tmp(self) -> int:
        return self.local.sweep_tmp()

    def prune(self, live: set[str], before: float) -> int:
        """Remove this machine's copies of values no record needs any more (written before
        ``before``); the bytes freed on this machine."""
        freed = 0
        for digest, _ in list(self.local.entries()):
            if digest not in live and self.local.written(digest) < before:
                freed += self.local.remove(digest)
        return freed

    def flush(self) -> None:
        self.local.flush()

    def close(self) -> None:
        self.local.close()


def _key(digest: str) -> str:
    return f"km1/val/{digest}"
