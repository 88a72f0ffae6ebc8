"""A notebook's store, opened for one request.

A fresh handle per request (a few milliseconds) rather than a cached one: a store that was deleted,
replaced or repaired between two polls is then always read as it is now. A missing store is never
created: opening a notebook in the sidebar must not leave a ``.kitteh/`` folder behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kitteh_magic.server.notebooks import NotebookStore, real_store

if TYPE_CHECKING:
    from kitteh_magic.store import Store

T = TypeVar("T")


class StoreUnreadable(Exception):
    """The store exists but cannot be read (corrupt index, foreign files, permissions)."""


@contextmanager
def _opened(found: NotebookStore, real: Path) -> Iterator[Store]:
    """Open a store at its checked real path, closing it afterwards."""
    from kitteh_magic.store import Store

    try:
        store = Store(real)
    except Exception as exc:  # any failure to open is the same answer to the user
        raise StoreUnreadable(_unreadable(found.store, exc)) from exc
    try:
        yield store
    finally:
        store.close()


def _unreadable(directory: Path, exc: BaseException) -> str:
    return (f"the store at {directory} cannot be read ({type(exc).__name__}: {exc}); "
            "move it aside or run `kitteh-magic clear` to start a fresh one")


def with_store(found: NotebookStore, work: Callable[[Store], T], empty: T) -> T:
    """Run ``work(store)``, or return ``empty`` when the notebook has no store yet.

    Raises:
        PathOutside: The store leads outside the server root (:func:`real_store`).
        StoreUnreadable: The store cannot be opened or read.
    """
    try:
        real = real_store(found)
        if not real.is_dir():
            return empty
    except OSError as exc:
        raise StoreUnreadable(_unreadable(found.store, exc)) from exc
    with _opened(found, real) as store:
        try:
            return work(store)
        except StoreUnreadable:
            raise
        except Exception as exc:
            raise StoreUnreadable(_unreadable(found.store, exc)) from exc
