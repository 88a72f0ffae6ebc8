"""Store maintenance: drop records no session uses and trim the store to a size."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .status import human_size
from .steps.catalog import Catalog
from .steps.records import JOURNAL_PREFIX, StepPointer, record_key

if TYPE_CHECKING:
    from .store import Store

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from a size people write.

    >>> parse_size("2GB"), parse_size("512 MiB"), parse_size("1000")
    (2147483648, 536870912, 1000)
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 500MB or 2GB)")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * 1024 ** "_KMGT".index(unit or "_"))


@dataclass
class GcReport:
    """What a collection removed."""

    records: int
    freed: int
    size: int

    def __str__(self) -> str:
        return (f"removed {self.records} records, freed {human_size(self.freed)}; "
                f"the store holds {human_size(self.size)}")


def gc(store: Store, max_size: int | None = None) -> GcReport:
    """Remove records no session references, then the oldest records until under ``max_size``.

    Trimming drops whole versions of steps, oldest finished first; a step whose latest record is
    dropped becomes ``invalidated`` and runs again next time.
    """
    catalog = Catalog(store)
    live = catalog.live_records()
    orphans = [key for key in catalog.all_records() if key not in live]
    for key in orphans:
        store.delete(record_key(key))
    removed = len(orphans)
    freed = store.collect(_digests(catalog, live))
    if max_size is not None and store.values_size() > max_size:
        pointers = [StepPointer.from_doc(d) for d in
                    (store.get_json(k) for k in store.keys("km1/ptr/")) if d]
        versions = sorted(((p.finished, p.session, p.step, key)
                           for p in pointers for key in p.keys), key=lambda v: v[0])
        for _, session, step, key in versions:
            if store.values_size() <= max_size:
                break
            _drop_version(catalog, session, step, key)
            live.discard(key)
            store.delete(record_key(key))
            removed += 1
            freed += store.collect(_digests(catalog, live))
    return GcReport(records=removed, freed=freed, size=store.values_size())


def _digests(catalog: Catalog, live: set[str]) -> set[str]:
    """Values that live records and unfinished journals still reference."""
    digests: set[str] = set()
    for key in live:
        digests |= catalog.record_digests(key)
    for key in catalog.store.keys(JOURNAL_PREFIX):
        doc = catalog.store.get_json(key) or {}
        digests |= {doc[f]["digest"] for f in ("result", "error", "receiver") if doc.get(f)}
    return digests


def _drop_version(catalog: Catalog, session: str, step: str, key: str) -> None:
    def drop(ptr: StepPointer | None) -> StepPointer | None:
        if ptr is None:
            return None
        ptr.keys = [k for k in ptr.keys if k != key]
        if ptr.key == key:
            ptr.state, ptr.key = "invalidated", None
        return ptr

    catalog.update_pointer(session, step, drop)
