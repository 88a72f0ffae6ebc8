"""The signing key and HMAC-SHA256 signatures of pickled records.

The key lives outside every store (``~/.config/kitteh_magic/key`` by default, 0600) so that a store
copied to another machine, or written by someone else, cannot forge records that this user will
unpickle. It is loaded lazily: a process that only reads metadata (the Jupyter server extension)
never needs it and never creates it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

from kitteh_magic.errors import StoreError

KEY_BYTES = 32
MAC_BYTES = 32

Bytes = bytes | bytearray | memoryview


class Signer:
    """HMAC-SHA256 over several byte strings, keyed by a key file created on first use.

    >>> import tempfile, pathlib
    >>> signer = Signer(pathlib.Path(tempfile.mkdtemp()) / "key")
    >>> mac = signer.mac(b"header", b"stream")
    >>> signer.verify(mac, b"header", b"stream"), signer.verify(mac, b"header", b"stre4m")
    (True, False)
    """

    def __init__(self, path: Path) -> None:
        """Remember where the key is; nothing is read or created yet.

        Args:
            path: the key file.
        """
        self.path = path
        self._base: hmac.HMAC | None = None

    def mac(self, *parts: Bytes) -> bytes:
        """The signature of the concatenation of ``parts``, hashed piecewise (no copy)."""
        base = self._base if self._base is not None else self._load()
        # Copying a keyed HMAC skips re-deriving the inner and outer pads for every record.
        mac = base.copy()
        for part in parts:
            mac.update(part)
        return mac.digest()

    def verify(self, mac: Bytes, *parts: Bytes) -> bool:
        """Whether ``mac`` signs ``parts`` under this key (constant-time comparison)."""
        return hmac.compare_digest(self.mac(*parts), bytes(mac))

    def _load(self) -> hmac.HMAC:
        key = load_or_create_key(self.path)
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        return self._base


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, creating it with 32 random bytes (0600) when absent.

    Every directory created on the way to it is 0700, whatever the umask.

    Two processes creating the key at once agree on one: each writes a private temporary file and
    hard-links it into place, and the loser reads the winner's key. A plain ``open("x")`` would let
    the loser read a half-written file.

    Raises:
        StoreError: the key cannot be read or created, or is too short to be one of ours.
    """
    try:
        key = _read_key(path)
        if key is None:
            key = _create_key(path)
    except OSError as exc:
        raise StoreError(
            f"cannot read or create the signing key {str(path)!r}: {exc}. Make its directory "
            "writable, or point $KITTEH_MAGIC_KEY_FILE at a private file."
        ) from exc
    if len(key) < 16:
        raise StoreError(
            f"the signing key {str(path)!r} has {len(key)} bytes, expected {KEY_BYTES}. Delete it "
            "to get a new key (records signed with the old one will be recomputed)."
        )
    return key


def _read_key(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        # A key others can read protects nothing; tighten it when it is ours to tighten.
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _create_key(path: Path) -> bytes:
    parent = path.parent
    private_parents(parent)
    key = secrets.token_bytes(KEY_BYTES)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".key-")
    try:
        try:
            # mkstemp asks for 0600, which a umask can still narrow (0400 under umask 277).
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = _read_key(path)
            if existing is None:
                raise
            return existing
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return key


def private_parents(directory: Path) -> None:
    """Create ``directory`` and each missing ancestor 0700, whatever the umask.

    ``Path.mkdir(mode=0o700, parents=True)`` gives the ancestors it creates 0777 minus the umask
    (0777 under umask 000), and a mode is always masked, so each directory is made on its own and
    then set with ``chmod``, which the umask does not touch. Directories that already exist are
    the user's and are left as they are; one that another process creates meanwhile is its.

    >>> import stat, tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> private_parents(base / "a" / "b")
    >>> [oct(stat.S_IMODE((base / p).stat().st_mode)) for p in ("a", "a/b")]
    ['0o700', '0o700']
    """
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)
