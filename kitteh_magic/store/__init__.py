"""The store: the only part of kitteh_magic that imports diskcache and cloudpickle.

Values are saved by content (:meth:`Store.put_value` returns a :class:`ValueRef` to keep in a
record) and verified before they are unpickled; metadata documents are JSON under ``km1/`` keys,
readable without the signing key. :func:`open_store` opens either engine: a folder (the
embedded store) or a PostgreSQL URL (a team's store, ``postgres.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitteh_magic.locate import Location, StoreURL
from kitteh_magic.store.store import KEY_PREFIX, STORE_FORMAT, Store, ValueRef, value_key

__all__ = ["KEY_PREFIX", "STORE_FORMAT", "Store", "ValueRef", "open_store", "value_key"]


def open_store(location: Location | str, **options: Any) -> Store:
    """The store at ``location``: a folder, or a ``postgresql://`` URL.

    ``options`` are :class:`Store`'s (``key_file``, ``inline_limit``, ...); a PostgreSQL store
    also takes ``cache`` (this machine's cache folder).

    Raises:
        StoreURLError: a string naming an unsupported ``scheme://``.
        StoreError: the store cannot be opened (or psycopg is missing for a URL).
    """
    if isinstance(location, str):
        from kitteh_magic.locate import parse_store

        location = parse_store(location)
    if isinstance(location, StoreURL):
        from kitteh_magic.store.postgres import PostgresStore

        return PostgresStore(location, **options)
    return Store(Path(location), **options)
