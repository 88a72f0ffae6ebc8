"""Where things live: the store directory, the signing key and a notebook's session name.

Pure functions of paths and the environment, shared by the kernel side, the command line and the
Jupyter server extension so that all three agree on which session belongs to which notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

STORE_ENV = "KITTEH_MAGIC_DIR"
KEY_ENV = "KITTEH_MAGIC_KEY_FILE"
STORE_DIRNAME = ".kitteh"
DEFAULT_SESSION = "default"


def store_dir(notebook: str | os.PathLike[str] | None = None,
              env: Mapping[str, str] | None = None) -> Path:
    """The store directory for a notebook.

    ``$KITTEH_MAGIC_DIR`` wins; otherwise ``.kitteh/`` beside the notebook, or in the current
    directory when the notebook is unknown.

    >>> store_dir("/data/nb/analysis.ipynb", env={})
    PosixPath('/data/nb/.kitteh')
    >>> store_dir("/data/nb/analysis.ipynb", env={"KITTEH_MAGIC_DIR": "/tmp/k"})
    PosixPath('/tmp/k')
    """
    env = os.environ if env is None else env
    if env.get(STORE_ENV):
        return Path(env[STORE_ENV]).expanduser().absolute()
    if notebook:
        return Path(notebook).expanduser().absolute().parent / STORE_DIRNAME
    return Path.cwd() / STORE_DIRNAME


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


def session_name(notebook: str | os.PathLike[str] | None, store: Path) -> str:
    """The default session of a notebook: its path relative to the store's parent directory.

    A notebook beside its store is named by its file name, so the name survives moving the
    folder; a notebook elsewhere (a shared ``$KITTEH_MAGIC_DIR``) keeps its absolute path.

    >>> session_name("/data/nb/analysis.ipynb", Path("/data/nb/.kitteh"))
    'analysis.ipynb'
    >>> session_name("/data/nb/analysis.ipynb", Path("/tmp/k"))
    '/data/nb/analysis.ipynb'
    >>> session_name(None, Path("/tmp/k"))
    'default'
    """
    if not notebook:
        return DEFAULT_SESSION
    path = Path(notebook).expanduser().absolute()
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
            env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The store directory and session of a notebook, given its metadata when known.

    The store: ``$KITTEH_MAGIC_DIR``, else the folder the metadata's ``store`` names (when it
    exists), else ``.kitteh/`` beside the notebook. The session: the metadata's ``session``,
    else the name its path gives (:func:`session_name`).

    >>> resolve("/data/nb/renamed.ipynb", {"kitteh_magic": {"session": "analysis.ipynb"}}, env={})
    (PosixPath('/data/nb/.kitteh'), 'analysis.ipynb')
    >>> resolve("/data/nb/renamed.ipynb", {}, env={})
    (PosixPath('/data/nb/.kitteh'), 'renamed.ipynb')
    """
    env = os.environ if env is None else env
    store = (None if env.get(STORE_ENV) else metadata_store(notebook, metadata)) \
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
