"""A notebook's store, opened for one request.

A store folder gets a fresh handle per request (a few milliseconds) rather than a cached one: a
store that was deleted, replaced or repaired between two polls is then always read as it is now.
A missing store is never created: opening a notebook in the sidebar must not leave a
``.kitteh/`` folder behind. A store on a server (``$KITTEH_MAGIC_STORE=postgresql://...`` in the
server's environment) is opened once per URL and kept: its connection pool is the costly part,
and every read asks the server, so it is never stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kitteh_magic import locate
from kitteh_magic.server.notebooks import NotebookStore, real_store

if TYPE_CHECKING:
    from kitteh_magic.store import Store

T = TypeVar("T")


class StoreUnreadable(Exception):
    """The store exists but cannot be read (corrupt index, foreign files, permissions)."""


_shared: dict[str, Store] = {}
_shared_lock = threading.Lock()


@contextmanager
def _opened(found: NotebookStore, real: locate.Location) -> Iterator[Store]:
    """Open a store at its checked real path, closing it afterwards (a shared store stays
    open for the next request)."""
    from kitteh_magic.store import Store, open_store

    if isinstance(real, locate.StoreURL):
        try:
            with _shared_lock:
                store = _shared.get(real.url)
                if store is not None and store.gone:  # its server restarted or was emptied
                    _shared.pop(real.url).close()
                    store = None
                if store is None:
                    store = _shared[real.url] = open_store(real)
        except Exception as exc:
            raise StoreUnreadable(_unreadable(found.store, exc)) from exc
        yield store
        return
    try:
        store = Store(real)
    except Exception as exc:  # any failure to open is the same answer to the user
        raise StoreUnreadable(_unreadable(found.store, exc)) from exc
    try:
        yield store
    finally:
        store.close()


def _unreadable(where: locate.Location, exc: BaseException) -> str:
    if isinstance(where, locate.StoreURL):
        return f"the store {where} cannot be read ({type(exc).__name__}: {exc})"
    return (f"the store at {where} cannot be read ({type(exc).__name__}: {exc}); "
            "move it aside or run `kitteh-magic clear` to start a fresh one")


def with_store(found: NotebookStore, work: Callable[[Store], T], empty: T) -> T:
    """Run ``work(store)``, or return ``empty`` when the notebook has no store yet.

    Raises:
        PathOutside: The store leads outside the server root (:func:`real_store`).
        StoreUnreadable: The store cannot be opened or read.
    """
    try:
        real = real_store(found)
        if isinstance(real, Path) and not real.is_dir():
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
