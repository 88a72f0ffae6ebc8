"""Journaled results come back as what the call returned: exact types, any string.

Small JSON results travel as the entry's own JSON and other results as pickled frames; the
oracle is the live value itself (equal, same type, down to the items)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import kitteh_magic as km
from kitteh_magic.activities.dispatch import StepActivities, call
from kitteh_magic.activities.journal import Journal
from kitteh_magic.store import Store

VALUES: list[Any] = [
    None, True, 0, -(10**30), 1.5, "plain", "é and 漢字", "a\ud800b", {"k\udc00": 1},
    [1, "two", {"three": [None, False]}], (1, 2), {1: "int key"}, {"nested": (1,)},
    ["x" * 5000], b"bytes", {"a", "b"},
]


def _typed(value: Any) -> Any:
    """A value with its types spelled out, so that 1 == 1.0 == True do not pass for each other."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, set):
        return ("set", sorted(map(repr, value)))
    return (type(value).__name__, value)


# Ids by position and type: a set's repr changes with the hash seed of each process.
IDS = [f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)]


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_a_journaled_result_replays_as_the_live_one(tmp_path: Path, key_file: Path,
                                                      value: Any) -> None:
    @km.activity
    def fetch(x: Any) -> Any:
        return x

    fetch.__module__ = "__main__"
    store = Store(tmp_path / "store")
    got = []
    for _ in range(2):  # live, then from the journal (the step never finished)
        journal = Journal(store, "s", "step", {}, version="v1", execution="e1")
        activities = StepActivities(journal)
        token = activities.activate()
        try:
            got.append(call(fetch, value))
        finally:
            activities.deactivate(token)
    assert len(activities.from_journal) == 1
    assert _typed(got[1]) == _typed(got[0]) == _typed(value)


def test_nan_survives_the_journal(tmp_path: Path, key_file: Path) -> None:
    @km.activity
    def measure() -> list[float]:
        return [math.nan, math.inf]

    measure.__module__ = "__main__"
    store = Store(tmp_path / "store")
    for _ in range(2):
        journal = Journal(store, "s", "step", {}, version="v1", execution="e1")
        activities = StepActivities(journal)
        token = activities.activate()
        try:
            result = call(measure)
        finally:
            activities.deactivate(token)
    assert math.isnan(result[0]) and result[1] == math.inf
    assert len(activities.from_journal) == 1
