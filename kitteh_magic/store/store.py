"""The store: values by content address, JSON metadata by key.

Two engines behind one class (see ARCHITECTURE.md): the embedded store, one private directory::

    <store>/          0700
      index/          diskcache (SQLite, WAL): JSON documents and small value frames
      blobs/ab/<dg>   large value frames, immutable once renamed into place
      tmp/            blob files being written

and a team's store in PostgreSQL (``postgres.py``): the same rows in a table, large values in
content-addressed chunks, and each machine's read-through cache of them under
``$XDG_CACHE_HOME/kitteh_magic/<store id>/`` (``blobs/`` and ``tmp/`` as above).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from kitteh_magic import locate
from kitteh_magic.errors import DamagedRecordError, StoreError
from kitteh_magic.store import identity
from kitteh_magic.store.blobs import BlobFiles, Durability
from kitteh_magic.store.frames import (
    Pickled,
    SignedDoc,
    decode_json,
    encode_json,
    frame_parts,
    open_frame,
    pickle_value,
)
from kitteh_magic.store.identity import Known, Resolve
from kitteh_magic.store.index import MISSING, DiskIndex, Index, disk_full, explain, private_dir
from kitteh_magic.store.notebook import restoring_into
from kitteh_magic.store.signing import Bytes, Signer

STORE_FORMAT = 1
KEY_PREFIX = "km1/"
VALUE_PREFIX = KEY_PREFIX + "val/"

_DIGEST = re.compile(r"[0-9a-f]{32}")
_MISSING = MISSING
_DISCARD = frozenset({"truncated", "checksum", "format", "signature", "version", "unreadable"})
"""Damage that is dropped on detection, so that the next ``put_value`` (which skips digests that
exist) writes the value again. A frame of a newer format is dropped too: the value it holds is
rewritten in this version's format, which a newer reader also reads."""


class ValueRef(TypedDict):
    """Where a stored value is, as kept in step records (JSON)."""

    digest: str
    size: int
    kind: Literal["inline", "blob", "embedded"]
    type: str
    frame: NotRequired[str]
    """Only for ``embedded``: the signed frame itself, base64 (see :meth:`Store.put_value`)."""
    refs: NotRequired[list[str]]
    """Digests of the stored values this one refers to (identity kept across values)."""


class Blobs(Protocol):
    """Where large value frames live: :class:`~kitteh_magic.store.blobs.BlobFiles` (the
    embedded store's files) or ``chunks.CachedBlobs`` (chunks in PostgreSQL, read through a
    local cache of the same files)."""

    def exists(self, digest: str) -> bool: ...
    def size(self, digest: str) -> int | None: ...
    def write(self, digest: str, parts: Iterable[Bytes]) -> int: ...
    def read(self, digest: str) -> memoryview: ...
    def remove(self, digest: str) -> int: ...
    def refetch(self, digest: str) -> bool: ...
    def where(self, digest: str) -> str: ...
    def entries(self) -> Iterator[tuple[str, int]]: ...
    def written(self, digest: str) -> float: ...
    def sweep_tmp(self) -> int: ...
    def prune(self, live: set[str], before: float) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def value_key(digest: str) -> str:
    """The index key of a small value.

    >>> value_key("0" * 32)
    'km1/val/00000000000000000000000000000000'
    """
    return VALUE_PREFIX + digest


class Store:
    """A kitteh_magic store directory; safe to share between processes and threads."""

    def __init__(self, directory: str | os.PathLike[str], *, key_file: Path | None = None,
                 inline_limit: int = 64 * 1024, verify_limit: int = 256 * 2**20,
                 durability: Durability = "process") -> None:
        """Open (creating if needed) the embedded store in ``directory``.

        Args:
            directory: the store directory; created 0700.
            key_file: the signing key (default :func:`kitteh_magic.locate.key_file`); read or
                created only when a value or signed document is written or read.
            inline_limit: values whose stream and buffers take at most this many bytes live in
                the index; larger ones are blobs.
            verify_limit: buffers of a value are checksummed on restore up to this many bytes;
                above it only their sizes are checked, so restoring stays O(1).
            durability: ``"process"`` (fsync in the background) or ``"machine"`` (fsync before
                a blob is visible).

        Raises:
            StoreError: the directory cannot be created or written.
        """
        self.directory = Path(directory).expanduser().absolute()
        """Where this machine keeps the store's files (the store itself, or its local cache)."""
        self.location = str(self.directory)
        """What the store is called in messages and ``status`` (a folder, or a URL without its
        password)."""
        self.inline_limit = inline_limit
        self.verify_limit = verify_limit
        self._signer = Signer(key_file if key_file is not None else locate.key_file())
        try:
            for path in (self.directory, self.directory / "blobs", self.directory / "tmp"):
                private_dir(path)
            self._index: Index = DiskIndex(self.directory, self._signer)
        except (OSError, sqlite3.Error) as exc:
            if disk_full(exc):
                raise StoreError(f"cannot open the store {str(self.directory)!r}: the disk is "
                                 f"full ({exc}). Free some space.") from exc
            raise StoreError(
                f"cannot open the store {str(self.directory)!r}: {exc}. Choose a writable "
                f"directory with ${locate.STORE_ENV}."
            ) from exc
        self._blobs: Blobs = BlobFiles(self.directory / "blobs", self.directory / "tmp",
                                       durability)
        self._started()

    def _started(self) -> None:
        """What every engine does once its index and blobs are open."""
        self._blobs.sweep_tmp()  # dead writers' temporary files: one scandir when there are none
        self._unverified: list[str] = []
        """Digests of values restored without their buffers' checksums (above the limit)."""
        self._verifier: ThreadPoolExecutor | None = None

    @property
    def shared(self) -> bool:
        """Whether the store is shared with other machines (a server), not a local folder."""
        return False

    @property
    def gone(self) -> bool:
        """Whether this handle can no longer be used and the store must be opened anew (a
        server restarted or emptied under it); a folder's store never is."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- values -------------------------------------------------------------------------------

    def put_value(self, obj: object, *, namespace: dict[str, Any] | None = None,
                  embed: int = 0, known: Known | None = None,
                  members: tuple[object, ...] = ()) -> ValueRef:
        """Save ``obj`` by content; a digest that is already stored writes nothing.

        Args:
            obj: the value.
            namespace: functions whose globals are this dict are saved without them (see
                ``notebook.py``).
            embed: a value whose pickle is at most this many bytes is not written at all: the
                ref carries its signed frame (``kind="embedded"``), for a caller that keeps
                the ref in a document of its own (the activity journal: one write per call).
            known: objects that stored values hold, written as references to those values
                (``identity.py``); the ref lists their digests in ``refs``.
            members: top-level objects of ``obj`` whose array views stay views.

        Raises:
            UnpicklableError: ``obj`` cannot be pickled (names the offending type).
            StoreError: writing failed; nothing half-written is left visible.
        """
        value = pickle_value(obj, namespace, known=known, members=members)
        ref = self._put_pickled(value, embed)
        if value.refs:
            ref["refs"] = sorted(value.refs)
        return ref

    def check_picklable(self, obj: object, *, namespace: dict[str, Any] | None = None,
                        known: Known | None = None) -> None:
        """Pickle ``obj`` as :meth:`put_value` would, writing nothing.

        Raises:
            UnpicklableError: ``obj`` cannot be pickled (names the offending type).
        """
        pickle_value(obj, namespace, known=known)

    def _put_pickled(self, value: Pickled, embed: int) -> ValueRef:
        digest = value.digest
        if value.payload_size <= embed:
            frame = b"".join(frame_parts(value, self._signer)[0])
            return ValueRef(digest=digest, size=len(frame), kind="embedded",
                            type=value.type_name, frame=base64.b64encode(frame).decode())
        with self._failing("save value " + digest):
            if value.payload_size <= self.inline_limit:
                key = value_key(digest)
                row = self._index.get(key, fresh=True)
                if isinstance(row, bytes):
                    size = len(row)
                else:  # absent, or a foreign row to replace
                    parts, _ = frame_parts(value, self._signer)
                    frame = b"".join(parts)
                    self._index.set(key, frame)
                    size = len(frame)
                return ValueRef(digest=digest, size=size, kind="inline", type=value.type_name)
            found = self._blobs.size(digest)
            if found is None:
                parts, _ = frame_parts(value, self._signer)
                found = self._blobs.write(digest, parts)
            size = found
            return ValueRef(digest=digest, size=size, kind="blob", type=value.type_name)

    def get_value(self, ref: Mapping[str, Any], *,
                  namespace: dict[str, Any] | None = None,
                  resolve: Resolve | None = None) -> object:
        """The value ``ref`` points to, verified before it is unpickled.

        Notebook functions in it are bound to ``namespace`` (the one it is restored into).
        A reference to another stored value (``identity.py``) is given to ``resolve``
        (``(digest, member, token) -> object``, the object the namespace holds); without it,
        the referenced value is loaded from the store.

        Large arrays come back as ordinary writable arrays over a copy-on-write mapping of the
        blob file (O(1), pages load on first touch).

        Raises:
            DamagedRecordError: the record is missing, truncated, altered, foreign or from a
                newer format; a damaged record is dropped so that saving it again repairs it.
        """
        digest = _digest_of(ref)
        if ref.get("kind") == "embedded":
            try:
                data = base64.b64decode(ref["frame"], validate=True)
            except (KeyError, TypeError, ValueError) as exc:
                raise DamagedRecordError(value_key(digest), "format", "bad embedded value") from exc
            frame = open_frame(memoryview(data), value_key(digest), digest, self._signer,
                               verify_limit=self.verify_limit, copy_buffers=True)
            return self._unpickle(frame, namespace, resolve)
        try:
            frame = self._open(digest, ref.get("kind") == "blob", verify_limit=self.verify_limit)
        except DamagedRecordError as exc:
            if exc.reason in _DISCARD:
                with contextlib.suppress(StoreError):
                    self._drop(digest)
            raise
        if not frame.checked:
            self._unverified.append(digest)
        return self._unpickle(frame, namespace, resolve)

    def verify_in_background(self, damaged: Callable[[str, DamagedRecordError], None]) -> None:
        """Check the buffers of the values restored without their checksums, in a thread.

        Restoring a value above ``verify_limit`` checks its header, signature and sizes only,
        so that it stays O(1) (DESIGN §7); its data is hashed here, after the restore, on one
        background thread. A value that fails is dropped from the store and given, with its
        error, to ``damaged`` (called on that thread), which tells the user and invalidates
        the step that restored it (DESIGN §4.14).
        """
        digests, self._unverified = self._unverified, []
        if not digests:
            return
        if self._verifier is None:
            self._verifier = ThreadPoolExecutor(1, thread_name_prefix="kitteh-verify")

        def check() -> None:
            for digest in dict.fromkeys(digests):
                try:
                    self._open(digest, True, verify_limit=None)
                except DamagedRecordError as err:
                    with contextlib.suppress(StoreError):
                        self._drop(digest)
                    damaged(digest, err)

        self._verifier.submit(check)

    def _unpickle(self, frame: Any, namespace: dict[str, Any] | None,
                  resolve: Resolve | None) -> object:
        def from_store(digest: str, member: str, token: str) -> object:
            # A reference names a stored value and a member of it ("": the value itself).
            group = self.get_value({"digest": digest, "kind": "inline"}, namespace=namespace,
                                   resolve=resolve)
            if member == "":
                return group
            if not isinstance(group, dict) or member not in group:
                raise DamagedRecordError(value_key(digest), "format",
                                         f"referenced value has no member {member!r}")
            return group[member]

        with restoring_into(namespace):
            return identity.loads(frame.stream, frame.buffers, resolve or from_store)

    def has_value(self, ref: Mapping[str, Any]) -> bool:
        """Whether the value of ``ref`` is stored (not verified)."""
        digest = _digest_of(ref)
        with self._failing("look up value " + digest):
            return self._blobs.exists(digest) or self._index.contains(value_key(digest))

    def missing(self, digests: set[str]) -> set[str]:
        """The ``digests`` whose values the store does not hold (not verified); empty when
        ``digests`` is."""
        return {digest for digest in digests
                if not self.has_value({"digest": digest, "kind": "inline"})}

    # -- documents ----------------------------------------------------------------------------

    def get_json(self, key: str, *, signed: bool = False) -> dict[str, Any] | None:
        """The JSON document at ``key``, or ``None``.

        Args:
            key: a key starting with ``km1/``.
            signed: require a valid signature (written by ``put_json(sign=True)``). Without it
                the document is returned without touching the key, signed or not.

        Raises:
            DamagedRecordError: not a JSON document, or a bad or missing signature.
        """
        with self._failing("read " + key):
            raw = self._index.get(key)
        if raw is _MISSING:
            return None
        return decode_json(key, raw, self._signer if signed else None)

    def put_json(self, key: str, doc: Mapping[str, Any], *, sign: bool = False) -> None:
        """Store ``doc`` (JSON-serialisable) at ``key``, signed when ``sign``."""
        with self._failing("write " + key):
            self._index.set(key, SignedDoc(doc) if sign else doc)

    def write_json(self, key: str, doc: Mapping[str, Any], *, sign: bool = False) -> None:
        """:meth:`put_json` in one SQL statement, for the write on every activity call.

        The row is what ``put_json`` would write, so every reader sees no difference.
        """
        text = encode_json(key, doc, self._signer if sign else None)
        with self._failing("write " + key):
            self._index.upsert_text(key, text)

    def update_json(self, key: str,
                    fn: Callable[[dict[str, Any] | None], dict[str, Any] | None], *,
                    damaged: Callable[[DamagedRecordError], None] | None = None,
                    ) -> dict[str, Any] | None:
        """Atomically replace the document at ``key`` by ``fn(current)`` across processes.

        ``fn`` may run while other writers wait, so keep it short; it returns ``None`` to delete
        the key. The new document is stored unsigned. Returns what ``fn`` returned. A current
        document that is not JSON is given to ``damaged`` and ``fn`` sees None: it is replaced.
        """
        with self._failing("update " + key), self._index.locked(key):
            raw = self._index.get(key)
            try:
                current = None if raw is _MISSING else decode_json(key, raw, None)
            except DamagedRecordError as err:
                if damaged is None:
                    raise
                damaged(err)
                current = None
            new = fn(current)
            if new is None:
                self._index.delete(key)
            else:
                self._index.set(key, new)
        return new

    def delete(self, key: str) -> None:
        """Remove ``key`` (a document or a small value); absent keys are fine."""
        with self._failing("delete " + key):
            self._index.delete(key)

    def json_items(self, prefix: str, *, signed: bool = False,
                   ) -> list[tuple[str, dict[str, Any] | DamagedRecordError]]:
        """Every document under ``prefix`` in key order, read with one range query.

        A document that fails its check is returned as its ``DamagedRecordError``, so one bad
        entry does not hide the others.
        """
        with self._failing("read " + prefix):
            rows = self._index.rows(prefix)
        items: list[tuple[str, dict[str, Any] | DamagedRecordError]] = []
        for key, raw in rows:
            try:
                items.append((key, decode_json(key, raw, self._signer if signed else None)))
            except DamagedRecordError as err:
                items.append((key, err))
        return items

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix`` in one transaction; returns how many."""
        with self._failing("delete " + prefix):
            return self._index.delete_prefix(prefix)

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted (an index range scan)."""
        with self._failing("list " + prefix):
            return self._index.keys(prefix)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group index writes (small values, documents) into one commit.

        A commit costs tens of microseconds on its own (a round trip to a server); a step that
        saves several outputs, its record and its pointer pays it once. Other writers wait
        meanwhile, so keep it short.
        """
        with self._failing("write a transaction"), self._index.transaction():
            yield

    # -- housekeeping -------------------------------------------------------------------------

    def collect(self, live_digests: set[str], *, keep_after: float | None = None) -> int:
        """Delete values whose digest is not in ``live_digests``, and dead writers' temporary
        files.

        Args:
            live_digests: the values some record or journal entry needs.
            keep_after: values written at or after this time (seconds since the epoch) are
                kept even when nothing names them yet: a kernel saving a step writes its values
                before the record and the journal entries that name them, so ``gc`` passes the
                start of the oldest step running in a live kernel.

        Returns:
            The bytes freed.
        """
        freed = 0
        young = float("inf") if keep_after is None else keep_after
        with self._failing("collect garbage"):
            dead = [key for key, stored in self._index.written(VALUE_PREFIX)
                    if key[len(VALUE_PREFIX):] not in live_digests and stored < young]
            for key in dead:
                freed += self._index.pop_size(key)
            for digest, _ in list(self._blobs.entries()):
                if digest not in live_digests and self._blobs.written(digest) < young:
                    freed += self._blobs.remove(digest)
            freed += self._blobs.sweep_tmp()
            self._blobs.prune(live_digests, young)
        return freed

    def values_size(self) -> int:
        """Bytes used by values, small (index rows) and large (blob files)."""
        with self._failing("measure values"):
            inline = self._index.row_bytes(VALUE_PREFIX)
            return inline + sum(size for _, size in self._blobs.entries())

    def heal(self, digests: set[str]) -> list[str]:
        """Verify each value fully and drop the damaged ones; returns the digests dropped.

        A step whose record failed to load calls it on every value the record names, so that
        the one recompute that follows rewrites all of them (a damaged value whose digest is
        still present would otherwise be kept by :meth:`put_value`, which skips digests that
        exist, and fail the next replay).
        """
        dropped: list[str] = []
        for digest in sorted(digests):
            if not _DIGEST.fullmatch(digest):
                continue
            try:
                self._open(digest, self._blobs.exists(digest), verify_limit=None)
            except DamagedRecordError as exc:
                if exc.reason != "missing-blob":
                    self._drop(digest)
                    dropped.append(digest)
        return dropped

    def verify_all(self) -> list[DamagedRecordError]:
        """Check every value fully (buffers included, whatever their size); report, not repair."""
        damaged: list[DamagedRecordError] = []
        with self._failing("verify values"):
            digests = [(key[len(VALUE_PREFIX):], False) for key in self._index.keys(VALUE_PREFIX)]
            digests += [(digest, True) for digest, _ in self._blobs.entries()]
        for digest, blob in digests:
            try:
                self._open(digest, blob, verify_limit=None, fallback=False)
            except DamagedRecordError as exc:
                damaged.append(exc)
        return damaged

    def flush(self) -> None:
        """Wait for pending background fsyncs of blob files."""
        self._blobs.flush()

    def close(self) -> None:
        """Flush and release the SQLite connections; the store may be reopened later."""
        if self._verifier is not None:
            self._verifier.shutdown(wait=True)  # a check in flight reads the store
            self._verifier = None
        self._blobs.close()
        self._index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _open(self, digest: str, blob: bool, *, verify_limit: int | None,
              fallback: bool = True) -> Any:
        """Verify the frame of ``digest``, looking where the ref says first.

        A value may live in either place: another process may have used another inline limit.
        """
        key = value_key(digest)
        for in_blob in (blob, not blob) if fallback else (blob,):
            if in_blob:
                try:
                    data = self._blobs.read(digest)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # a directory in its place, a permission taken away
                    raise DamagedRecordError(key, "unreadable", str(exc)) from exc
                try:
                    return open_frame(data, key, digest, self._signer,
                                      verify_limit=verify_limit, copy_buffers=False)
                except DamagedRecordError as exc:
                    # A damaged local copy of a shared store's blob is dropped and fetched
                    # again, once; a damaged original is the caller's to drop.
                    if exc.reason not in _DISCARD or not self._blobs.refetch(digest):
                        raise
                return open_frame(self._blobs.read(digest), key, digest, self._signer,
                                  verify_limit=verify_limit, copy_buffers=False)
            with self._failing("read " + key):
                raw = self._index.get(key)
            if raw is _MISSING:
                continue
            if not isinstance(raw, bytes):
                raise DamagedRecordError(key, "format", "not a value frame")
            # Frames from SQLite are immutable bytes; buffers are copied (they are small) so
            # that restored arrays are writable like the originals.
            return open_frame(memoryview(raw), key, digest, self._signer,
                              verify_limit=verify_limit, copy_buffers=True)
        raise DamagedRecordError(key, "missing-blob",
                                 f"no {self._blobs.where(digest)} and no index row")

    def _drop(self, digest: str) -> None:
        with self._failing("drop damaged value " + digest):
            self._index.delete(value_key(digest))
            self._blobs.remove(digest)

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            error = self._index.failure(exc, action)
            if error is None and isinstance(exc, OSError):  # a blob file
                error = StoreError(f"cannot {action} in the store {self.location!r}: "
                                   f"{explain(exc)}")
            if error is None:
                raise
            raise error from exc


def _digest_of(ref: Mapping[str, Any]) -> str:
    digest = ref.get("digest")
    # The digest becomes a file name: anything but 32 hex digits is refused before any I/O.
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise DamagedRecordError(f"{VALUE_PREFIX}{digest!r}", "format", "invalid value digest")
    return digest
