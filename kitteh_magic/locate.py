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
