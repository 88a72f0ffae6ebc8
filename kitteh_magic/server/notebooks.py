"""Which store and session belong to a notebook the server was asked about.

Path logic with no ``jupyter_server`` import, so it is unit-testable on its own. The kernel
learns its notebook from the binding the server writes for it (``binding.py``), else from
``$JPY_SESSION_NAME``, which Jupyter Server builds by joining its root directory with the
notebook's API path; :func:`resolve` builds the same string and hands it, with the notebook's
``kitteh_magic`` metadata, to :func:`kitteh_magic.locate.resolve`, so the sidebar and the kernel
name the same store and session. :func:`real_store` then follows the links on the way to the
store, so that nothing a request opens lies outside the server root; a store that the metadata
names outside the root is refused before that (the metadata is the client's word).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kitteh_magic import locate

NAME_MAX = 255
"""Longest file name in bytes (Linux, macOS): a longer segment cannot name anything."""
PATH_MAX = 4096
"""Longest path in bytes (Linux): a longer one fails every system call with ENAMETOOLONG."""


class PathRefused(ValueError):
    """An API path that names no notebook (empty, not ``.ipynb``, too long, not text)."""


class PathOutside(PathRefused):
    """An API path, or the store it leads to, outside the server's root (``..``, symlinks)."""


@dataclass(frozen=True)
class NotebookStore:
    """A notebook's store (a folder, or a server's URL) and its default session name."""

    notebook: str
    """The notebook's OS path, as the kernel sees it in ``$JPY_SESSION_NAME``."""
    store: locate.Location
    session: str
    within: Path
    """The real directory a store folder must lie in: the server root, or the store itself
    when ``$KITTEH_MAGIC_STORE`` or ``$KITTEH_MAGIC_DIR`` names it (the server's own
    configuration, not a client's choice)."""
    configured: bool = False
    """Whether the environment named the store."""


def _shown(api_path: str) -> str:
    """The API path for a message: quoted, and cut when absurdly long."""
    if len(api_path) <= 120:
        return repr(api_path)
    return f"{api_path[:100]!r}... ({len(api_path)} chars)"


def os_path(api_path: str, root_dir: str) -> str:
    """The OS path of an API path, refusing anything that leaves ``root_dir``.

    Args:
        api_path: A path relative to the server root, ``/``-separated, as the frontend sends it.
        root_dir: The server's root directory.

    Returns:
        The normalised OS path (symlinks kept, as Jupyter Server gives it to kernels).

    Raises:
        PathOutside: The path is outside the root (also via symlinks).
        PathRefused: The path is empty, not a notebook, too long or not encodable.

    >>> os_path("sub/a.ipynb", "/srv/root")
    '/srv/root/sub/a.ipynb'
    >>> os_path("../etc/a.ipynb", "/srv/root")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    PathOutside: '../etc/a.ipynb' is outside the server root
    >>> os_path("a/" * 3000 + "b.ipynb", "/srv/root")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    PathRefused: 'a/a/a/...'... (6007 chars) is too long for a file path (...)
    """
    if not api_path or not api_path.endswith(".ipynb"):
        raise PathRefused(
            f"{_shown(api_path)} is not a notebook path (expected a path ending in .ipynb)")
    parts = [part for part in api_path.strip("/").split("/") if part]
    if any(part in ("..", ".") for part in parts) or "\\" in api_path or "\0" in api_path:
        raise PathOutside(f"{_shown(api_path)} is outside the server root")
    root = os.path.normpath(os.path.abspath(root_dir))
    path = os.path.normpath(os.path.join(root, *parts))
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        raise PathRefused(f"{_shown(api_path)} is not a file name this system can encode") from None
    # Checked before any system call sees the path: those fail with ENAMETOOLONG (an OSError
    # that would otherwise surface as a server error) or walk thousands of segments.
    if len(encoded) >= PATH_MAX or any(len(os.fsencode(part)) > NAME_MAX for part in parts):
        raise PathRefused(f"{_shown(api_path)} is too long for a file path (at most {PATH_MAX} "
                          f"bytes in all and {NAME_MAX} per name)")
    real_root = os.path.realpath(root)
    if not _inside(real_root, os.path.realpath(path)):
        raise PathOutside(f"{_shown(api_path)} is outside the server root")
    return path


def resolve(api_path: str, root_dir: str,
            metadata: Mapping[str, object] | None = None) -> NotebookStore:
    """The store and default session of the notebook at ``api_path``.

    Args:
        api_path: The notebook's API path.
        root_dir: The server's root directory.
        metadata: The notebook's metadata (only its ``kitteh_magic`` key is read): the session
            it names, and the store it names relative to its folder (:func:`locate.resolve`).

    Returns:
        Where the notebook's kernel keeps its steps, and under which session name.

    Raises:
        PathOutside: The path, or the store its metadata names, is outside the root.
        PathRefused: See :func:`os_path`.

    >>> found = resolve("sub/a.ipynb", "/srv/root")
    >>> str(found.store), found.session
    ('/srv/root/sub/.kitteh', 'a.ipynb')
    >>> resolve("sub/b.ipynb", "/srv/root", {"kitteh_magic": {"session": "a.ipynb"}}).session
    'a.ipynb'
    >>> resolve("a.ipynb", "/srv/root", {"kitteh_magic": {"store": "../x"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    kitteh_magic.server.notebooks.PathOutside: the store '../x' that 'a.ipynb' names ...
    """
    notebook = os_path(api_path, root_dir)
    configured = locate.store_configured()
    if not configured:  # the server's own store wins over the metadata's (locate.resolve)
        _check_metadata_store(api_path, notebook, root_dir, metadata)
    store, session = locate.resolve(notebook, metadata)
    within = os.path.realpath(store if configured and isinstance(store, Path) else root_dir)
    return NotebookStore(notebook, store, session, Path(within), configured)


def _check_metadata_store(api_path: str, notebook: str, root_dir: str,
                          metadata: Mapping[str, object] | None) -> None:
    """Refuse a ``store`` in the metadata that leaves the root, whether or not it exists now."""
    own = (metadata or {}).get(locate.METADATA_KEY)
    value = own.get("store") if isinstance(own, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        return
    root = os.path.normpath(os.path.abspath(root_dir))
    named = os.path.normpath(os.path.join(os.path.dirname(notebook), value))
    if not (_inside(root, named) and _inside(os.path.realpath(root), os.path.realpath(named))):
        raise PathOutside(f"the store {value!r} that {_shown(api_path)} names in its metadata "
                          "is outside the server root; refusing it: keep the store inside the "
                          "root, or remove metadata.kitteh_magic.store")


def moved(old_path: str, new_path: str, root_dir: str,
          metadata: Mapping[str, object] | None) -> tuple[dict[str, object], bool]:
    """The ``kitteh_magic`` metadata a notebook needs after moving from ``old_path``.

    The notebook keeps its session: the one its metadata names, else the name its old path gave.
    Its store stays where it was: when the old store exists and is not the one the new place
    gives by default, ``store`` is the old store's path relative to the notebook's new folder;
    otherwise there is no ``store``.

    Returns:
        The new ``kitteh_magic`` metadata, and whether the old store exists.

    Raises:
        PathOutside, PathRefused: Either path is refused (:func:`os_path`), or the metadata's store
            is outside the root.

    >>> moved("a/nb.ipynb", "b/nb.ipynb", "/nonexistent", None)
    ({'session': 'nb.ipynb'}, False)
    """
    old = resolve(old_path, root_dir, metadata)
    notebook = os_path(new_path, root_dir)
    own = (metadata or {}).get(locate.METADATA_KEY)
    result: dict[str, object] = dict(own) if isinstance(own, Mapping) else {}
    result["session"] = old.session
    if old.configured or not isinstance(old.store, Path):
        return result, not isinstance(old.store, Path) or old.store.is_dir()
    found = old.store.is_dir()
    result.pop("store", None)
    if found and (os.path.realpath(old.store)
                  != os.path.realpath(str(locate.store_dir(notebook, env={})))):
        result["store"] = Path(os.path.relpath(old.store, os.path.dirname(notebook))).as_posix()
    return result, found


STORE_PARTS = ("index",)
"""Directories of a store whose entries opening it touches, besides the store's own entries:
``Store`` creates and chmods ``index/``, ``blobs/`` and ``tmp/``; SQLite opens, and follows
links in, ``index/cache.db*``. The blob files are not opened for metadata."""


def real_store(found: NotebookStore) -> locate.Location:
    """The real path of the notebook's store, refusing a store that leads outside its bounds.

    A ``.kitteh`` that is a symlink, or a store whose ``index`` (or its database) is one, would
    make a request read or reset another directory's store; every link on the way to what a
    request opens must end inside ``found.within``. The caller opens the returned real path, so
    a ``.kitteh`` link replaced after the check does not redirect it (a link swapped inside the
    store in between still would: a race only someone who can write the store can run).

    Raises:
        PathOutside: The store, or one of its entries, leads outside ``found.within``.
        OSError: A directory of the store cannot be listed (permissions).
    """
    if not isinstance(found.store, Path):
        return found.store  # a server the server's own environment names: no path to check
    within = str(found.within)
    real = os.path.realpath(found.store)
    paths = [real]
    for directory in (real, *(os.path.join(real, part) for part in STORE_PARTS)):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), \
                os.scandir(directory) as entries:
            paths.extend(os.path.realpath(entry.path) for entry in entries)
    if not all(_inside(within, path) for path in paths):
        bounds, fix = (("the store the server's environment names",
                        "replace the link by the directory itself")
                       if found.configured else
                       ("the server root", "keep the notebook's store inside the server root"))
        raise PathOutside(f"the store {str(found.store)!r} is a link, or holds one, that leads "
                          f"outside {bounds}; refusing to open it: {fix}")
    return Path(real)


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root
