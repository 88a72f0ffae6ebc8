"""Lineage: what the kernel knows about values that came out of a durable step.

A step's output ``x`` gets the token ``value_token(step_key, "x")``. While the namespace still
holds that very object and nothing has changed it, the token stands for its content, so a
downstream step's key costs nothing to compute however large ``x`` is. Any doubt drops the
token and the value is fingerprinted by content instead; a wrong token would replay stale data,
a dropped one only costs a hash.

Each entry also remembers where the value is stored (the group value's digest and the member
name), so a later step that holds the same object stores a reference, not a copy, and a restore
resolves that reference to this very object; and, once computed, the value's content
fingerprint, which is the "before" state when a step that may change it runs
(:mod:`.observe`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    """What is known about one name: checked against the object it was recorded with."""

    token: str
    ident: int
    stored: tuple[str, str] | None = None
    """``(digest, member)`` of the stored group value that holds it."""
    content: str | None = None
    """Its content fingerprint, when one was computed since it was produced."""
    refs: tuple[str, ...] = ()
    """Digests of the values its group refers to, transitively (they must outlive it)."""


class Lineage:
    """Tokens of the current kernel's namespace, keyed by name and checked by object identity."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def set(self, name: str, token: str, value: object,
            stored: tuple[str, str] | None = None, content: str | None = None,
            refs: tuple[str, ...] = ()) -> None:
        """Record that ``name`` holds ``value``, produced as ``token`` (and stored there)."""
        self._entries[name] = Entry(token, id(value), stored, content, refs)

    def entry(self, name: str, value: object) -> Entry | None:
        """What is known of ``name`` if it still holds the object it was recorded with."""
        entry = self._entries.get(name)
        if entry is None or entry.ident != id(value):
            return None
        return entry

    def get(self, name: str, value: object) -> str | None:
        """The token of ``name`` if it still holds the object it was produced with.

        >>> lineage = Lineage(); data = [1, 2]
        >>> lineage.set("data", "t1", data)
        >>> lineage.get("data", data), lineage.get("data", [1, 2])
        ('t1', None)
        """
        entry = self.entry(name, value)
        return None if entry is None else entry.token

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Every entry (the caller checks each against the namespace)."""
        return iter(list(self._entries.items()))

    def drop(self, names: Iterable[str]) -> None:
        """Forget names a plain cell touched: it may have changed them in place."""
        for name in names:
            self._entries.pop(name, None)

    def forget_stored(self, digests: AbstractSet[str]) -> None:
        """Forget where values are stored when their group, or a value it refers to, is one
        of ``digests`` (removed from the store): their tokens stay, their objects are stored
        by value again the next time a step saves them."""
        for entry in self._entries.values():
            if entry.stored is not None and (entry.stored[0] in digests
                                             or not digests.isdisjoint(entry.refs)):
                entry.stored, entry.refs = None, ()

    def clear(self) -> None:
        """Forget everything (a session switch or reset)."""
        self._entries.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._entries
