"""Value frames and the diskcache ``Disk`` that keeps small values and metadata in SQLite.

A value is pickled once (protocol 5, out-of-band buffers) into a *frame*. The same layout is a row
of the SQLite index for small values and a file under ``blobs/`` for large ones, so one decoder
verifies both. Little-endian; offsets are from the start of the frame::

    0   magic b"\\x93KMV", version u8, flags u8, reserved u16
    8   n_buffers u32, reserved u32
    16  stream_off u64, stream_len u64
    32  digest (16 bytes: xxh3-128 of the stream and of each buffer's length and xxh3-128)
    48  n_buffers x (offset u64, length u64, xxh3-128 of the buffer)
    ..  checksum: xxh3-128 of the bytes above and the stream       -> reason "checksum"
    ..  mac: HMAC-SHA256 of "km1/val/<digest>", the bytes above the checksum and the stream
    stream_off: the pickle stream; then each buffer at a 64-byte aligned offset (zero padding)

The mac binds the frame to its key, so a frame copied under another digest fails ("signature").
Buffers are raw array bytes that cannot run code; their checksums sit in the signed header.

Metadata documents are JSON text in the same SQLite table, readable without the key. A signed
document is ``"km1-hmac-sha256:<hex>\\n<json>"``: the JSON stays one line away for any reader.
"""

from __future__ import annotations

import json
import pickle
import re
import sqlite3
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import diskcache
import xxhash
from diskcache.core import MODE_RAW, UNKNOWN

from kitteh_magic import writewatch
from kitteh_magic.errors import DamagedRecordError, UnpicklableError
from kitteh_magic.store import identity, notebook
from kitteh_magic.store.signing import MAC_BYTES, Bytes, Signer

MAGIC = b"\x93KMV"
FRAME_VERSION = 1
ALIGN = 64
SIG_PREFIX = "km1-hmac-sha256:"

_FIXED = struct.Struct("<4sBBHIIQQ16s")
_ENTRY = struct.Struct("<QQ16s")
_LENGTH = struct.Struct("<Q")
_HASH_BYTES = 16
#: Buffers at least this large have their checksum remembered (:mod:`kitteh_magic.writewatch`):
#: a value journaled by an activity and then saved as the step's output is hashed once.
WATCHED_BYTES = 64 << 20
_TRAILER = _HASH_BYTES + MAC_BYTES
_UNPICKLABLE = re.compile(r"(?:cannot|can't) pickle '?([\w.<>]+)'? object", re.IGNORECASE)


@dataclass(slots=True)
class Pickled:
    """A value in pickle-5 form: the stream, its out-of-band buffers and their hashes."""

    stream: bytes
    buffers: list[memoryview]
    hashes: list[bytes]
    digest: str
    type_name: str
    refs: frozenset[str] = frozenset()
    """Digests of stored values the stream refers to (see ``identity.py``)."""

    @property
    def payload_size(self) -> int:
        """Bytes of the stream plus all buffers (what decides inline or blob)."""
        return len(self.stream) + sum(buf.nbytes for buf in self.buffers)


@dataclass(slots=True)
class Frame:
    """A verified frame: the pickle stream and the buffers ready for ``pickle.loads``."""

    stream: memoryview
    buffers: list[memoryview]
    checked: bool = True
    """False when the buffers were above the verify limit and only their sizes were checked."""


def qualified_name(tp: type) -> str:
    """``module.QualName`` of a type.

    >>> qualified_name(dict), qualified_name(Frame)
    ('builtins.dict', 'kitteh_magic.store.frames.Frame')
    """
    return f"{tp.__module__}.{tp.__qualname__}"


def pickle_value(obj: object, namespace: dict[str, Any] | None = None, *,
                 known: identity.Known | None = None,
                 members: tuple[object, ...] = ()) -> Pickled:
    """Pickle ``obj`` with cloudpickle, protocol 5, keeping large buffers out of band (no copy).

    Functions defined in ``namespace`` (the notebook's) are saved without their globals and
    re-bound to the namespace they are restored into (see ``notebook.py``). With ``known``
    (and a namespace), objects that stored values hold are written as references to them and
    views of ``members`` stay views (see ``identity.py``).

    Raises:
        UnpicklableError: the pickler failed; ``type_name`` names the innermost offending type
            when the message tells it (``cannot pickle 'generator' object``).
    """
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it into the stream
            return True
        return False

    refs: set[str] = set()
    try:
        if known is not None and namespace is not None:
            stream, refs = identity.dumps(obj, namespace, keep, known, members)
        else:
            stream = notebook.dumps(obj, namespace, keep)
    except Exception as exc:
        found = _UNPICKLABLE.search(str(exc))
        name = found.group(1) if found else qualified_name(type(obj))
        raise UnpicklableError(name, f"{type(exc).__name__}: {exc}") from exc
    hashes = [_buffer_digest(buf) for buf in buffers]
    return Pickled(stream, buffers, hashes, value_digest(stream, buffers, hashes),
                   qualified_name(type(obj)), frozenset(refs))


def _buffer_digest(buf: memoryview) -> bytes:
    """xxh3-128 of a buffer; remembered for large ones while their memory is not written."""
    if buf.nbytes < WATCHED_BYTES:
        return xxhash.xxh3_128_digest(buf)
    return writewatch.digest(buf.cast("B") if buf.format != "B" else buf, b"xxh3-128",
                             xxhash.xxh3_128_digest)


def value_digest(stream: Bytes, buffers: list[memoryview], hashes: list[bytes]) -> str:
    """The content address: xxh3-128 of the stream, then each buffer's length and hash.

    Hashing buffer hashes (not buffer bytes again) keeps it to one pass over the data, and the
    lengths make it unambiguous where one buffer ends and the next begins.

    >>> value_digest(b"stream", [], [])
    '9fa9230bb75f3538e79d72ed8f366f95'
    """
    hasher = xxhash.xxh3_128(stream)
    for buf, digest in zip(buffers, hashes, strict=True):
        hasher.update(_LENGTH.pack(buf.nbytes))
        hasher.update(digest)
    return hasher.hexdigest()


def frame_parts(value: Pickled, signer: Signer) -> tuple[list[Bytes], int]:
    """The pieces of a frame in file order (buffers as views, not copies) and the total size."""
    n = len(value.buffers)
    stream_off = _FIXED.size + n * _ENTRY.size + _TRAILER
    end = stream_off + len(value.stream)
    entries: list[bytes] = []
    tail: list[Bytes] = []
    for buf, digest in zip(value.buffers, value.hashes, strict=True):
        offset = -(-end // ALIGN) * ALIGN
        if offset > end:
            tail.append(bytes(offset - end))
        tail.append(buf)
        entries.append(_ENTRY.pack(offset, buf.nbytes, digest))
        end = offset + buf.nbytes
    head = _FIXED.pack(MAGIC, FRAME_VERSION, 0, 0, n, 0, stream_off, len(value.stream),
                       bytes.fromhex(value.digest)) + b"".join(entries)
    checksum = xxhash.xxh3_128(head)
    checksum.update(value.stream)
    mac = signer.mac(_bind(value.digest), head, value.stream)
    return [head + checksum.digest() + mac, value.stream, *tail], end


def open_frame(data: memoryview, key: str, digest: str, signer: Signer, *,
               verify_limit: int | None, copy_buffers: bool) -> Frame:
    """Verify a frame before anything is unpickled and slice it into stream and buffers.

    Args:
        data: the whole frame (a SQLite value, or a mapped or read blob file).
        key: the store key, for error messages.
        digest: the digest the caller expects (the key's); the mac binds the frame to it.
        signer: the signing key.
        verify_limit: buffers are checked against their checksums when they total at most this
            many bytes (``None``: always); above it only their sizes are (restore stays O(1)).
        copy_buffers: hand out writable copies (for frames held in immutable ``bytes``).

    Raises:
        DamagedRecordError: reason ``truncated``, ``format``, ``version``, ``checksum`` or
            ``signature``.
    """
    size = data.nbytes
    if size < len(MAGIC):
        raise DamagedRecordError(key, "truncated", f"{size} bytes, not even a header")
    if data[:len(MAGIC)] != MAGIC:
        raise DamagedRecordError(key, "format", "not a kitteh_magic value frame (bad magic)")
    if size < _FIXED.size:
        raise DamagedRecordError(key, "truncated", f"header cut at {size} bytes")
    _, version, _, _, n, _, stream_off, stream_len, raw_digest = _FIXED.unpack_from(data)
    if version > FRAME_VERSION:
        raise DamagedRecordError(key, "version", f"frame version {version} is newer than "
                                 f"{FRAME_VERSION}; upgrade kitteh_magic to read it")
    if version != FRAME_VERSION:
        raise DamagedRecordError(key, "format", f"unknown frame version {version}")
    table_end = _FIXED.size + n * _ENTRY.size
    if stream_off != table_end + _TRAILER:
        raise DamagedRecordError(key, "format", "inconsistent header length")
    if size < stream_off:
        raise DamagedRecordError(key, "truncated", f"header cut at {size} of {stream_off} bytes")
    entries = [_ENTRY.unpack_from(data, _FIXED.size + i * _ENTRY.size) for i in range(n)]
    end = stream_off + stream_len
    for offset, length, _ in entries:
        if offset < end or offset % ALIGN or offset - end >= ALIGN:
            raise DamagedRecordError(key, "format", "buffer table out of order")
        end = offset + length
    if size < end:
        raise DamagedRecordError(key, "truncated", f"{size} of {end} bytes")
    if size > end:
        raise DamagedRecordError(key, "format", f"{size - end} bytes after the last buffer")
    head = data[:table_end]
    stream = data[stream_off:stream_off + stream_len]
    checksum = xxhash.xxh3_128(head)
    checksum.update(stream)
    if checksum.digest() != data[table_end:table_end + _HASH_BYTES]:
        raise DamagedRecordError(key, "checksum", "header or pickle stream altered")
    mac = data[table_end + _HASH_BYTES:stream_off]
    if raw_digest.hex() != digest or not signer.verify(mac, _bind(digest), head, stream):
        raise DamagedRecordError(key, "signature", "not signed by this user's key for this "
                                 f"digest (key file {str(signer.path)!r})")
    buffers = [data[offset:offset + length] for offset, length, _ in entries]
    total = sum(length for _, length, _ in entries)
    checked = verify_limit is None or total <= verify_limit
    if checked:
        for i, (buf, (_, _, expected)) in enumerate(zip(buffers, entries, strict=True)):
            if xxhash.xxh3_128_digest(buf) != expected:
                raise DamagedRecordError(key, "checksum", f"buffer {i} of {n} altered")
    if copy_buffers:
        buffers = [memoryview(bytearray(buf)) for buf in buffers]
    return Frame(stream, buffers, checked)


def _bind(digest: str) -> bytes:
    return b"km1/val/" + digest.encode()


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Built once: ``json.dumps`` with non-default options builds an encoder per call."""


def encode_json(key: str, doc: Mapping[str, Any], signer: Signer | None) -> str:
    """A document as one line of JSON, preceded by a signature line when ``signer`` is given."""
    text = _ENCODER.encode(doc)
    if signer is None:
        return text
    return f"{SIG_PREFIX}{_json_mac(signer, key, text).hex()}\n{text}"


def decode_json(key: str, raw: object, signer: Signer | None) -> dict[str, Any]:
    """The document stored at ``key``; checks its signature when ``signer`` is given.

    Raises:
        DamagedRecordError: not JSON text (``format``), or unsigned or badly signed while a
            signature was asked for (``signature``).
    """
    if not isinstance(raw, str):
        raise DamagedRecordError(key, "format", "not a JSON document")
    mac_hex = None
    if raw.startswith(SIG_PREFIX):
        mac_hex, _, raw = raw[len(SIG_PREFIX):].partition("\n")
    if signer is not None:
        try:
            valid = mac_hex is not None and signer.verify(bytes.fromhex(mac_hex),
                                                          *_json_parts(key, raw))
        except ValueError:
            valid = False
        if not valid:
            raise DamagedRecordError(key, "signature", "unsigned or signed with another key "
                                     f"(key file {str(signer.path)!r})")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise DamagedRecordError(key, "format", f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DamagedRecordError(key, "format", f"JSON {type(doc).__name__}, expected an object")
    return doc


def _json_parts(key: str, text: str) -> tuple[bytes, bytes, bytes]:
    return b"km1/json\0", key.encode() + b"\0", text.encode()


def _json_mac(signer: Signer, key: str, text: str) -> bytes:
    return signer.mac(*_json_parts(key, text))


@dataclass(frozen=True, slots=True)
class SignedDoc:
    """A document to be stored with a signature line (see :class:`SignedDisk`)."""

    doc: Mapping[str, Any]


class SignedDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache serialisation for the index: frames as BLOBs, documents as JSON TEXT.

    Unlike ``diskcache.Disk`` it never pickles and never unpickles: a row it did not write (a
    pickled value, a file reference) reads as ``None``, so a tampered index cannot run code
    through ``Cache.get``. Every row stays in SQLite (no ``*.val`` files): frames are small and
    large values are content-addressed blobs of our own. Frames arrive signed; documents wrapped
    in :class:`SignedDoc` are signed here because only ``store`` knows the key they go under.

    The signer is set as an attribute after diskcache builds the disk: disk keyword arguments
    are persisted in the store's Settings table, and the key's location belongs to the user.
    """

    signer: Signer | None = None

    def store(self, value: object, read: bool,
              key: object = UNKNOWN) -> tuple[int, int, None, object]:
        """The (size, mode, filename, value) columns for ``value``."""
        if isinstance(value, bytes | bytearray) and not read:
            return 0, MODE_RAW, None, sqlite3.Binary(value)
        if isinstance(value, SignedDoc) and isinstance(key, str) and self.signer is not None:
            return 0, MODE_RAW, None, encode_json(key, value.doc, self.signer)
        if isinstance(value, Mapping) and isinstance(key, str):
            return 0, MODE_RAW, None, encode_json(key, value, None)
        raise TypeError(f"SignedDisk stores frames and JSON documents, not {type(value)!r}")

    def fetch(self, mode: int, filename: str | None, value: object, read: bool) -> object:
        """The stored frame (bytes) or document text (str); ``None`` for a foreign row."""
        if mode != MODE_RAW or filename is not None or read:
            return None
        return value if isinstance(value, bytes | str) else None
