"""Lineage tokens: O(1) fingerprints for values that came out of a durable step.

A step's output ``x`` gets the token ``value_token(step_key, "x")``. While the namespace still
holds that very object and no plain cell has touched the name, the token stands for its content,
so a downstream step's key costs nothing to compute however large ``x`` is. Any doubt drops the
token and the value is fingerprinted by content instead; a wrong token would replay stale data,
a dropped one only costs a hash.
"""

from __future__ import annotations

from collections.abc import Iterable


class Lineage:
    """Tokens of the current kernel's namespace, keyed by name and checked by object identity."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, int]] = {}

    def set(self, name: str, token: str, value: object) -> None:
        """Record that ``name`` holds ``value``, produced as ``token``."""
        self._tokens[name] = (token, id(value))

    def get(self, name: str, value: object) -> str | None:
        """The token of ``name`` if it still holds the object it was produced with.

        >>> lineage = Lineage(); data = [1, 2]
        >>> lineage.set("data", "t1", data)
        >>> lineage.get("data", data), lineage.get("data", [1, 2])
        ('t1', None)
        """
        entry = self._tokens.get(name)
        if entry is None or entry[1] != id(value):
            return None
        return entry[0]

    def drop(self, names: Iterable[str]) -> None:
        """Forget names a plain cell touched: it may have changed them in place."""
        for name in names:
            self._tokens.pop(name, None)

    def clear(self) -> None:
        """Forget everything (a session switch or reset)."""
        self._tokens.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._tokens
