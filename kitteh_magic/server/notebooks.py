"""Which store and session belong to a notebook the server was asked about.

Pure path logic with no ``jupyter_server`` import, so it is unit-testable on its own. The kernel
learns its notebook from ``$JPY_SESSION_NAME``, which Jupyter Server builds by joining its root
directory with the notebook's API path; :func:`resolve` builds the same string and hands it to
:mod:`kitteh_magic.locate`, so the sidebar and the kernel name the same store and session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kitteh_magic import locate


class PathRefused(ValueError):
    """An API path that names nothing inside the server's root (``..``, absolute, symlinked out)."""


@dataclass(frozen=True)
class NotebookStore:
    """A notebook's store directory and its default session name."""

    notebook: str
    """The notebook's OS path, as the kernel sees it in ``$JPY_SESSION_NAME``."""
    store: Path
    session: str


def os_path(api_path: str, root_dir: str) -> str:
    """The OS path of an API path, refusing anything that leaves ``root_dir``.

    Args:
        api_path: A path relative to the server root, ``/``-separated, as the frontend sends it.
        root_dir: The server's root directory.

    Returns:
        The normalised OS path (symlinks kept, as Jupyter Server gives it to kernels).

    Raises:
        PathRefused: The path is empty, not a notebook, or outside the root (also via symlinks).

    >>> os_path("sub/a.ipynb", "/srv/root")
    '/srv/root/sub/a.ipynb'
    >>> os_path("../etc/a.ipynb", "/srv/root")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    PathRefused: '../etc/a.ipynb' is outside the server root
    """
    if not api_path or not api_path.endswith(".ipynb"):
        raise PathRefused(f"{api_path!r} is not a notebook path (expected a path ending in .ipynb)")
    parts = [part for part in api_path.strip("/").split("/") if part]
    if any(part in ("..", ".") for part in parts) or "\\" in api_path or "\0" in api_path:
        raise PathRefused(f"{api_path!r} is outside the server root")
    root = os.path.normpath(os.path.abspath(root_dir))
    path = os.path.normpath(os.path.join(root, *parts))
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise PathRefused(f"{api_path!r} is outside the server root")
    return path


def resolve(api_path: str, root_dir: str) -> NotebookStore:
    """The store and default session of the notebook at ``api_path``.

    Args:
        api_path: The notebook's API path.
        root_dir: The server's root directory.

    Returns:
        Where the notebook's kernel keeps its steps, and under which session name.

    Raises:
        PathRefused: See :func:`os_path`.

    >>> found = resolve("sub/a.ipynb", "/srv/root")
    >>> str(found.store), found.session
    ('/srv/root/sub/.kitteh', 'a.ipynb')
    """
    notebook = os_path(api_path, root_dir)
    store = locate.store_dir(notebook)
    return NotebookStore(notebook, store, locate.session_name(notebook, store))
