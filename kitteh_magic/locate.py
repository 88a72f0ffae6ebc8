"""Where things live: the store, the signing key, the local cache and a notebook's session name.

Pure functions of paths and the environment, shared by the kernel side, the command line and the
Jupyter server extension so that all three agree on which session belongs to which notebook.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kitteh_magic.errors import StoreURLError

STORE_URL_ENV = "KITTEH_MAGIC_STORE"
"""The store: a folder path or a ``postgresql://`` URL (wins over :data:`STORE_ENV`)."""
STORE_ENV = "KITTEH_MAGIC_DIR"
"""The older, folder-only name of the store's variable."""
KEY_ENV = "KITTEH_MAGIC_KEY_FILE"
CACHE_ENV = "KITTEH_MAGIC_CACHE"
STORE_DIRNAME = ".kitteh"
DEFAULT_SESSION = "default"
SCHEMES = ("postgresql", "postgres")
"""The URL schemes of shared stores (PostgreSQL's own two names, as libpq accepts them)."""
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class StoreURL:
    """A store on a server, named by its URL (``postgresql://user:password@host:port/db``).

    ``str()`` and ``repr()`` never show the password: the URL is printed in status lines,
    warnings and logs.

    >>> url = StoreURL("postgresql://ann:s3cret@db.example:5432/team")
    >>> str(url)
    'postgresql://ann:***@db.example:5432/team'
    >>> url
    StoreURL('postgresql://ann:***@db.example:5432/team')
    """

    url: str = field(repr=False)

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"StoreURL({str(self)!r})"


Location = Path | StoreURL
"""Where a store is: a folder (the embedded store) or a server's URL (a shared store)."""


def redact(url: str) -> str:
    """``url`` without its password (a ``password=`` query parameter too).

    >>> redact("postgresql://u:p@h/db?sslmode=require&password=x")
    'postgresql://u:***@h/db?sslmode=require&password=***'
    >>> redact("postgresql://h/db")
    'postgresql://h/db'
    >>> redact("postgresql://ann:pw@[::1:5432/team")  # not even a URL: no password either
    'postgresql://ann:***@[::1:5432/team'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unbalanced "[": cut the text between "://" and "@" instead
        scheme, sep, rest = url.partition("://")
        user, at, host = rest.rpartition("@")
        if at and ":" in user:
            user = user.partition(":")[0] + ":***"
        return f"{scheme}{sep}{user}{at}{host}" if at else url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.partition(":")[0] + ":***"
        netloc = f"{user}@{host}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_store(value: str, source: str = "the store") -> Location:
    """A store location as the user wrote it: a folder path, ``file://PATH``, or a
    ``postgresql://`` (``postgres://``) URL.

    Raises:
        StoreURLError: any other ``scheme://`` (one line naming it and the supported ones).

    >>> parse_store("~/work/.kitteh") == Path("~/work/.kitteh").expanduser().absolute()
    True
    >>> parse_store("postgres://kitteh@127.0.0.1/team")
    StoreURL('postgres://kitteh@127.0.0.1/team')
    >>> parse_store("redis://127.0.0.1:6379/0", "$KITTEH_MAGIC_STORE")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    kitteh_magic.errors.StoreURLError: $KITTEH_MAGIC_STORE is 'redis://127.0.0.1:6379/0': ...
    """
    found = _SCHEME.match(value.strip())
    if found is None:
        return Path(value).expanduser().absolute()
    scheme = found.group(1).lower()
    if scheme in SCHEMES:
        try:
            parts = urllib.parse.urlsplit(value.strip())
            parts.port  # noqa: B018 -- a port that is not a number raises here
        except ValueError as exc:
            raise StoreURLError(f"{source} is {redact(value)!r}: not a valid URL ({exc}); "
                                "write postgresql://user:password@host:port/database") from None
        if not (parts.hostname or parts.path.strip("/") or parts.query):
            raise StoreURLError(f"{source} is {redact(value)!r}: a PostgreSQL URL names a "
                                "server and a database (postgresql://user:password@host:port/"
                                "database)")
        return StoreURL(value.strip())
    if scheme == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(value).path)).absolute()
    raise StoreURLError(f"{source} is {redact(value)!r}: kitteh_magic cannot keep a store in "
                        f"{scheme!r}; use a folder path or a PostgreSQL URL "
                        "(postgresql://user:password@host:port/database)")


def secrets_of(url: str) -> list[str]:
    """The texts of ``url`` that are its password, as written and percent-decoded (what a
    message must never show).

    >>> secrets_of("postgresql://ann:50%off!@h/db?password=a%20b")
    ['50%off!', 'a b', 'a%20b']
    """
    found: set[str] = set()
    head = url.partition("://")[2].partition("/")[0]
    user, at, _ = head.rpartition("@")
    if at and ":" in user:
        found.add(user.partition(":")[2])
    found.update(re.findall(r"(?:^|[?&])password=([^&]*)", url.partition("?")[2]))
    found |= {urllib.parse.unquote(text) for text in found}
    return sorted(text for text in found if text)


def configured_store(env: Mapping[str, str] | None = None) -> Location | None:
    """The store the environment names, if any: ``$KITTEH_MAGIC_STORE`` (a folder or a URL),
    else ``$KITTEH_MAGIC_DIR`` (a folder).

    Raises:
        StoreURLError: either variable names an unsupported ``scheme://``.

    >>> configured_store({"KITTEH_MAGIC_STORE": "postgresql://h/db", "KITTEH_MAGIC_DIR": "/k"})
    StoreURL('postgresql://h/db')
    >>> configured_store({"KITTEH_MAGIC_DIR": "/k"})
    PosixPath('/k')
    >>> configured_store({}) is None
    True
    """
    env = os.environ if env is None else env
    if env.get(STORE_URL_ENV, "").strip():
        return parse_store(env[STORE_URL_ENV], f"${STORE_URL_ENV}")
    if env.get(STORE_ENV, "").strip():
        found = parse_store(env[STORE_ENV], f"${STORE_ENV}")
        if isinstance(found, StoreURL):
            raise StoreURLError(f"${STORE_ENV} names folders only; put the URL "
                                f"{str(found)!r} in ${STORE_URL_ENV}")
        return found
    return None


def store_dir(notebook: str | os.PathLike[str] | None = None,
              env: Mapping[str, str] | None = None) -> Location:
    """The store for a notebook.

    ``$KITTEH_MAGIC_STORE`` (a folder or a URL), else ``$KITTEH_MAGIC_DIR``, wins; otherwise
    ``.kitteh/`` beside the notebook, or in the current directory when the notebook is unknown.

    Raises:
        StoreURLError: a variable names an unsupported ``scheme://``.

    >>> store_dir("/data/nb/analysis.ipynb", env={})
    PosixPath('/data/nb/.kitteh')
    >>> store_dir("/data/nb/analysis.ipynb", env={"KITTEH_MAGIC_DIR": "/tmp/k"})
    PosixPath('/tmp/k')
    """
    configured = configured_store(env)
    if configured is not None:
        return configured
    if notebook:
        return Path(notebook).expanduser().absolute().parent / STORE_DIRNAME
    return Path.cwd() / STORE_DIRNAME


def store_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment names the store (either variable, even a bad value)."""
    env = os.environ if env is None else env
    return bool(env.get(STORE_URL_ENV, "").strip() or env.get(STORE_ENV, "").strip())


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """This machine's cache of a shared store's large values.

    >>> cache_dir({"KITTEH_MAGIC_CACHE": "/scratch/km"})
    PosixPath('/scratch/km')
    >>> cache_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"})
    PosixPath('/c/kitteh_magic')
    >>> cache_dir({"HOME": "/h"})
    PosixPath('/h/.cache/kitteh_magic')
    """
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser().absolute()
    cache_home = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")) / ".cache")
    return Path(cache_home).expanduser() / "kitteh_magic"


def key_file(env: Mapping[str, str] | None = None) -> Path:
    """The signing key's file: kept outside every store so a copied store cannot forge records.

    >>> key_file(env={"KITTEH_MAGIC_KEY_FILE": "/secrets/k"})
    PosixPath('/secrets/k')
    """
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return Path(env[KEY_ENV]).expanduser()
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")) / ".config")
    return Path(config_home).expanduser() / "kitteh_magic" / "key"


def session_name(notebook: str | os.PathLike[str] | None, store: Location) -> str:
    """The default session of a notebook: its path relative to the store's parent directory.

    A notebook beside its store is named by its file name, so the name survives moving the
    folder; a notebook elsewhere (a shared ``$KITTEH_MAGIC_DIR``) keeps its absolute path. In
    a store on a server, shared by machines whose folders differ, it is the file name.

    >>> session_name("/data/nb/analysis.ipynb", Path("/data/nb/.kitteh"))
    'analysis.ipynb'
    >>> session_name("/data/nb/analysis.ipynb", Path("/tmp/k"))
    '/data/nb/analysis.ipynb'
    >>> session_name("/home/ann/nb/analysis.ipynb", StoreURL("postgresql://h/team"))
    'analysis.ipynb'
    >>> session_name(None, Path("/tmp/k"))
    'default'
    """
    if not notebook:
        return DEFAULT_SESSION
    path = Path(notebook).expanduser().absolute()
    if isinstance(store, StoreURL):
        return path.name
    try:
        return path.relative_to(store.parent).as_posix()
    except ValueError:
        return path.as_posix()


def notebook_path(user_ns: Mapping[str, object],
                  env: Mapping[str, str] | None = None) -> str | None:
    """The notebook a kernel runs, as Jupyter says (``__session__`` or ``$JPY_SESSION_NAME``)."""
    env = os.environ if env is None else env
    value = user_ns.get("__session__") or env.get("JPY_SESSION_NAME")
    if isinstance(value, str) and value.endswith(".ipynb"):
        return value
    return None


# -- a notebook's session, kept in its metadata (DESIGN §8: it survives a rename or a move) -----

METADATA_KEY = "kitteh_magic"
"""The notebook-level metadata key: ``{"session": NAME, "store": RELATIVE_DIR}`` (both optional).

``session`` is given once, when the notebook first has durable steps, and is the name the path
gave then, so stores written before it existed keep their sessions. ``store`` is written only when
a notebook moves away from its store's folder: the store's path relative to the notebook's folder.
"""


def metadata_session(metadata: Mapping[str, object] | None) -> str | None:
    """The session a notebook's metadata names, or None (absent, or not a non-empty string).

    >>> metadata_session({"kitteh_magic": {"session": "analysis.ipynb"}})
    'analysis.ipynb'
    >>> metadata_session({"kitteh_magic": {"session": ""}}), metadata_session(None)
    (None, None)
    """
    own = (metadata or {}).get(METADATA_KEY)
    value = own.get("session") if isinstance(own, Mapping) else None
    return value if isinstance(value, str) and value.strip() and len(value) <= 1024 else None


def metadata_store(notebook: str | os.PathLike[str] | None,
                   metadata: Mapping[str, object] | None) -> Path | None:
    """The store folder a notebook's metadata points to, when that folder exists; else None.

    >>> metadata_store("/nb/a.ipynb", {"kitteh_magic": {"store": "x" * 5000}}) is None
    True
    """
    own = (metadata or {}).get(METADATA_KEY)
    value = own.get("store") if isinstance(own, Mapping) else None
    if not notebook or not isinstance(value, str) or not value.strip():
        return None
    found = (Path(notebook).expanduser().absolute().parent / value)
    try:
        exists = found.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL: no folder a notebook could name
        exists = False
    return Path(os.path.normpath(found)) if exists else None


def resolve(notebook: str | os.PathLike[str] | None,
            metadata: Mapping[str, object] | None = None,
            env: Mapping[str, str] | None = None) -> tuple[Location, str]:
    """The store and session of a notebook, given its metadata when known.

    The store: ``$KITTEH_MAGIC_STORE`` or ``$KITTEH_MAGIC_DIR``, else the folder the metadata's
    ``store`` names (when it exists), else ``.kitteh/`` beside the notebook. The session: the
    metadata's ``session``, else the name its path gives (:func:`session_name`).

    Raises:
        StoreURLError: a variable names an unsupported ``scheme://``.

    >>> resolve("/data/nb/renamed.ipynb", {"kitteh_magic": {"session": "analysis.ipynb"}}, env={})
    (PosixPath('/data/nb/.kitteh'), 'analysis.ipynb')
    >>> resolve("/data/nb/renamed.ipynb", {}, env={})
    (PosixPath('/data/nb/.kitteh'), 'renamed.ipynb')
    """
    env = os.environ if env is None else env
    store = (None if store_configured(env) else metadata_store(notebook, metadata)) \
        or store_dir(notebook, env)
    return store, metadata_session(metadata) or session_name(notebook, store)


def read_metadata(notebook: str | os.PathLike[str]) -> dict[str, object]:
    """A notebook file's top-level metadata, or {} when it cannot be read as a notebook."""
    import json

    try:
        with open(notebook, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    return metadata if isinstance(metadata, dict) else {}


# -- the binding of a running kernel to its notebook, written by the server extension ---------

BINDING_PREFIX = "kitteh-magic-"


def binding_file(runtime_dir: str | os.PathLike[str], kernel_id: str) -> Path:
    """Where the server extension tells a kernel which notebook it runs now.

    Jupyter starts a kernel with ``$JPY_SESSION_NAME`` set to the notebook's path *at start*, and
    keeps that value across renames and restarts. The frontend knows better: it sends the
    notebook's current path and metadata to the server extension, which writes them here, in
    the runtime folder beside the kernel's connection file, named by the kernel id (which a
    restart keeps).

    >>> binding_file("/run/jupyter", "1f2e")
    PosixPath('/run/jupyter/kitteh-magic-1f2e.json')
    """
    return Path(runtime_dir) / f"{BINDING_PREFIX}{kernel_id}.json"


def connection_binding(connection_file: str | os.PathLike[str]) -> Path | None:
    """The binding file of the kernel whose connection file is given, None when the file is
    not named as Jupyter names them (``<runtime>/kernel-<id>.json``).

    >>> connection_binding("/run/jupyter/kernel-1f2e.json")
    PosixPath('/run/jupyter/kitteh-magic-1f2e.json')
    >>> connection_binding("/tmp/tmpw3j39fpj.json") is None
    True
    """
    path = Path(connection_file)
    name = path.name
    if not (name.startswith("kernel-") and name.endswith(".json")) or len(name) <= 12:
        return None
    return binding_file(path.parent, name[len("kernel-"):-len(".json")])


def write_binding(path: Path, notebook: str, metadata: Mapping[str, object]) -> None:
    """Write a binding atomically: ``{"notebook": OS path, "metadata": {"kitteh_magic": ...}}``."""
    import json
    import secrets

    own = metadata.get(METADATA_KEY)
    doc = {"notebook": notebook,
           "metadata": {METADATA_KEY: dict(own)} if isinstance(own, Mapping) else {}}
    # A temporary name of its own per write: the server writes bindings from several threads
    # (a kernel that died and restarts is bound twice at once), and a name shared by the
    # process had one writer's os.replace find the file already moved by the other.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_binding(path: Path) -> tuple[str, dict[str, object]] | None:
    """A binding's notebook path and metadata, or None when absent or unreadable."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("notebook"), str):
        return None
    metadata = doc.get("metadata")
    return doc["notebook"], metadata if isinstance(metadata, dict) else {}
