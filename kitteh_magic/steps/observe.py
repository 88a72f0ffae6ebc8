"""What a step changed, observed rather than guessed from its code.

A step may change a value without any sign in its text: a notebook function appends to a list
it was given, ``rng.shuffle(arr)`` shuffles in place, a write through a view (``v[0] = 9``)
changes the array it views, a method nobody listed mutates its receiver. After such a step the
changed value must be saved as its output, or a replay hands back the old one.

So, as Kishu does (VLDB 2025: the state reachable from the variables, by identity and content,
compared before and after a cell), the step records the state of every value it could touch
before it runs and compares it after:

* the values it *could touch* are those of the names it reads (its inputs, mutated names, the
  globals its notebook functions read) and of every other name whose object graph shares an
  object with theirs (an alias ``b = a``, a view of an array, a pipeline that holds a model);
  sharing is found by walking object graphs by identity (:func:`reach`), bounded per value;
* the *state* of a value is its content fingerprint. The "before" fingerprint is usually free:
  an input's fingerprint was computed for the step's key, and a step output's is remembered
  in its lineage entry once computed. The "after" fingerprint is one hash pass (xxh3, GB/s).

The code-shape analysis (``mutations.py``) stays as a fast path that adds names, never removes
them: a value that cannot be fingerprinted (a connection) counts as changed when the code
visibly mutates it.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, islice
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any, Final

from . import fingerprint

#: Objects visited per value when looking for shared objects (about 2 ms at most); sharing
#: deeper in a value than this many objects is not seen.
REACH_BUDGET: Final = 4096

_ATOMS: Final[frozenset[type]] = frozenset(
    {int, float, complex, bool, str, bytes, type(None), range, slice})
_OPAQUE: Final = (type, ModuleType, BuiltinFunctionType, CodeType)


def reach(value: object, budget: int = REACH_BUDGET) -> set[int]:
    """Ids of the mutable objects ``value`` holds, itself included, by identity.

    Containers, instances (through their ``__dict__`` and slots), a bound method's instance, a
    function's closure and defaults (not its globals) and arrays count; an array also counts as
    every object its memory belongs to (its bases, a ``bytearray`` it views), so a view and its
    base meet. Atoms (numbers, strings), classes, builtins and modules are not walked: they are
    shared by everything and changing them is not a change of a value.

    >>> inner = [1]; outer = {"k": inner}
    >>> id(inner) in reach(outer), id(inner) in reach([2])
    (True, False)
    """
    seen: set[int] = set()
    stack: list[object] = [value]
    visits = 0
    while stack and visits < budget:
        obj = stack.pop()
        visits += 1
        kind = type(obj)
        if kind in _ATOMS or id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        room = budget - visits
        if kind is list or kind is tuple:
            stack.extend(obj[:room])  # type: ignore[index]
        elif kind is dict:
            items: Any = obj
            stack.extend(islice(chain(items.values(), items.keys()), room))
        elif kind is MethodType:
            stack.append(obj.__self__)  # type: ignore[attr-defined]
        elif kind is FunctionType:
            fn: Any = obj
            stack.extend(_function_state(fn))
        elif _is_array(obj):
            seen.update(_memory_owners(obj))
            if kind.__name__ == "ndarray" and not obj.dtype.hasobject:  # type: ignore[attr-defined]
                continue  # a plain array of numbers holds nothing else
            stack.extend(islice(gc.get_referents(obj), room))
        else:
            stack.extend(islice(gc.get_referents(obj), room))
    return seen


def _function_state(fn: FunctionType) -> list[object]:
    """What a function carries besides its code and globals: closure, defaults, attributes."""
    held: list[object] = []
    for cell in fn.__closure__ or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    held.extend(fn.__defaults__ or ())
    held.extend((fn.__kwdefaults__ or {}).values())
    held.extend(fn.__dict__.values())
    return held


def _is_array(obj: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _memory_owners(array: Any) -> list[int]:
    """Ids of the objects an array's memory belongs to: its bases, down to the buffer."""
    owners: list[int] = []
    base = array.base
    while base is not None and len(owners) < 64:
        owners.append(id(base))
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return owners


def state(value: object) -> str | None:
    """The content fingerprint of a value, or None when it has none (a socket, a lock)."""
    try:
        return fingerprint.fingerprint(value)
    except fingerprint.Unfingerprintable:
        return None


def is_data(value: object) -> bool:
    """Values whose content can be a step's output: not modules, classes or builtins, and a
    function only when it carries state (a closure, defaults, attributes)."""
    if isinstance(value, (*_OPAQUE, MethodType)):
        return False
    if isinstance(value, FunctionType):
        return bool(_function_state(value))
    return True


def sharing(namespace: Mapping[str, object], names: Iterable[str],
            candidates: Iterable[str]) -> set[str]:
    """The ``candidates`` whose objects share an object with those of ``names``.

    A change through one name is a change through the others (``b = a``, a view of an array, a
    container holding it, a bound method's instance). Found by :func:`reach` on both sides.

    >>> ns = {"a": [1], "b": None, "c": [2]}; ns["b"] = {"k": ns["a"]}
    >>> sorted(sharing(ns, ["a"], ["b", "c"]))
    ['b']
    """
    touched: set[int] = set()
    for name in names:
        value = namespace.get(name, _GONE)
        if value is not _GONE and (is_data(value) or isinstance(value, MethodType)):
            touched |= reach(value)
    if not touched:
        return set()
    found: set[str] = set()
    for name in candidates:
        value = namespace.get(name, _GONE)
        if value is not _GONE and (id(value) in touched or not touched.isdisjoint(reach(value))):
            found.add(name)
    return found


def is_iterator(value: object) -> bool:
    """Whether reading the value consumes it (a generator, an iterator, an open file)."""
    return hasattr(type(value), "__next__")


class Observation:
    """The state of the values a step could touch, taken before it runs.

    Args:
        namespace: the notebook namespace.
        names: the names the step reads or mutates (they exist in ``namespace`` or not).
        others: every other user name of the namespace (candidates for sharing).
        known: ``name -> fingerprint`` already computed (an input's ``v:`` fingerprint, or
            a content fingerprint remembered by lineage); the rest are computed now.
    """

    def __init__(self, namespace: Mapping[str, object], names: Iterable[str],
                 others: Iterable[str], known: Callable[[str, object], str | None]) -> None:
        self._namespace = namespace
        present = [n for n in names if n in namespace]
        watched = {n for n in present if is_data(namespace[n])}
        watched |= sharing(namespace, present, [
            n for n in others if n not in watched and namespace.get(n) is not None
            and is_data(namespace[n])])
        self.before: dict[str, tuple[object, str | None]] = {}
        """name -> (the object, its fingerprint before the step); held until the step ends."""
        for name in sorted(watched):
            value = namespace[name]
            self.before[name] = (value, known(name, value) or state(value))

    def changed(self) -> tuple[set[str], set[int], dict[str, str]]:
        """What the step changed in place.

        Returns:
            The names still bound to their object whose content changed; the ids of every
            watched object whose content changed, bound or not (``old = model; model = {}``
            then ``old["w"] = 9`` changes the object ``model`` held); and ``name ->
            fingerprint after`` for every watched name that still holds its object and has a
            fingerprint (lineage remembers them).
        """
        changed: set[str] = set()
        changed_ids: set[int] = set()
        after: dict[str, str] = {}
        for name, (obj, before) in self.before.items():
            now = state(obj)
            still = self._namespace.get(name, _GONE) is obj
            if now is None:
                # No content to compare: an iterator the step could touch may have advanced
                # (it counts as changed); for anything else (a connection) the code decides.
                if still and is_iterator(obj):
                    changed.add(name)
                    changed_ids.add(id(obj))
                continue
            if still:
                after[name] = now
            if now != before:
                changed_ids.add(id(obj))
                if still:
                    changed.add(name)
        return changed, changed_ids, after


_GONE: Final = object()
