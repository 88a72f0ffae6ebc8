"""The store: the only part of kitteh_magic that imports diskcache and cloudpickle.

Values are saved by content (:meth:`Store.put_value` returns a :class:`ValueRef` to keep in a
record) and verified before they are unpickled; metadata documents are JSON under ``km1/`` keys,
readable without the signing key.
"""

from kitteh_magic.store.store import KEY_PREFIX, STORE_FORMAT, Store, ValueRef, value_key

__all__ = ["KEY_PREFIX", "STORE_FORMAT", "Store", "ValueRef", "value_key"]
