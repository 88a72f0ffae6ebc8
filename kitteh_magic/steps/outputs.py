"""A step's outputs saved as one group and restored with the identity of what they share.

The outputs of one run (and its last value) are pickled together into one stored value, a dict
``name -> value`` (or the object alone when they are all one object, the common case of one
output: then it is stored by its own content, once, whoever else stored it), so that objects
they share (``b = a``, an array and its view, a model and the
pipeline holding it) are one object after a restore, as pickle's memo keeps them. Objects that an
earlier step's stored outputs hold, and that this step did not change, are written as references
to those values (``store/identity.py``); on restore a reference resolves to the object the
namespace holds for it (found through lineage), so a later step's output that contains an earlier
output points at the same object, as in a plain run.

A group that cannot be pickled is split: each output is tried alone, those that fail are named
in a warning, and the rest are saved as the group. A resource that is closed when the step ends
(the executor or file of a ``with ... as`` block, see :func:`is_closed_resource`) is not an
output at all: there is nothing in it to restore.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DamagedRecordError, UnpicklableError
from ..store import ValueRef
from ..store.identity import Known
from .picklers import cluster_handle

if TYPE_CHECKING:
    from .engine import Engine

VALUE_MEMBER = "__value__"
"""The member that holds the step's last value (dunder: never a user's output name)."""


def is_closed_resource(value: object) -> bool:
    """Whether ``value`` is a handle on a resource that was closed or on work that is over:
    dead, not data.

    ``with ThreadPoolExecutor() as ex:`` and ``with open(path) as f:`` leave the name bound to
    a shut-down executor or a closed file after the block; ``futures = [ex.submit(...)]``,
    ``{ex.submit(get, url): url ...}`` (the ``concurrent.futures`` documentation's idiom),
    ``threads = [Thread(...)]``, ``cf.wait(...)`` and ``async with TaskGroup() as tg`` leave
    finished futures, threads and task groups; ``loop = asyncio.get_running_loop()`` is the
    kernel's own event loop. None of them can be pickled and none holds anything a replay could
    give back, so they must not make a finished step unsaveable. Recognised: a shut-down
    executor or ``multiprocessing`` pool; a finished future, task, thread, coroutine or task
    group; an event loop; a Dask client or cluster (``client = Client(address)`` in one cell,
    ``km.map(..., client=client)`` in a step); any object with a ``close()`` or ``aclose()``
    method whose ``closed`` or ``is_closed`` attribute is ``True`` (files, sockets' streams,
    HTTP responses, ``httpx``/``aiohttp`` clients); and a non-empty list, tuple (named tuples
    too), set or dict whose items (for a dict: keys or values) are all such, one level of
    nesting deep. An object that merely has a ``closed`` field (a closed order) has no
    ``close()`` and stays an output.
    """
    return bool(_dead_handles(value, depth=2))


def _dead_handles(value: object, depth: int) -> int:
    """How many dead handles ``value`` is or holds when it holds nothing else (empty
    containers inside count as nothing, ``cf.wait``'s ``not_done`` set), else 0."""
    if isinstance(value, dict):
        if depth == 0:
            return 0
        return (_all_dead(value.keys(), depth - 1)
                or _all_dead(value.values(), depth - 1))
    if isinstance(value, list | tuple | set | frozenset):
        return _all_dead(value, depth - 1) if depth > 0 else 0
    return 1 if _dead(value) else 0


def _all_dead(items: Iterable[object], depth: int) -> int:
    found = 0
    for item in items:
        if isinstance(item, list | tuple | set | frozenset | dict) and not item:
            continue
        count = _dead_handles(item, depth)
        if not count:
            return 0
        found += count
    return found


def _dead(value: object) -> bool:
    if isinstance(value, concurrent.futures.Executor):
        # ThreadPoolExecutor sets _shutdown, ProcessPoolExecutor _shutdown_thread.
        return bool(getattr(value, "_shutdown", False) or getattr(value, "_shutdown_thread",
                                                                   False))
    if isinstance(value, concurrent.futures.Future | asyncio.Future):
        return value.done()
    if isinstance(value, threading.Thread):
        return value.ident is not None and not value.is_alive()
    if isinstance(value, asyncio.AbstractEventLoop) or cluster_handle(type(value)):
        return True  # the kernel's loop; a Dask client or cluster: connections, not data
    if isinstance(value, asyncio.TaskGroup):
        return bool(getattr(value, "_exiting", False)) and not getattr(value, "_tasks", None)
    if isinstance(value, types.CoroutineType):
        return value.cr_frame is None  # finished or closed
    kind = type(value)
    if kind.__module__ == "multiprocessing.pool":
        return getattr(value, "_state", None) in ("CLOSE", "TERMINATE")
    if not (callable(getattr(kind, "close", None)) or callable(getattr(kind, "aclose", None))):
        return False
    try:
        return getattr(value, "closed", None) is True or getattr(value, "is_closed", None) is True
    except Exception:  # a property that fails on a dead object: nothing to tell from it
        return False


def known_objects(engine: Engine) -> dict[int, tuple[object, str, str, str]]:
    """Objects of the namespace that stored values hold (by lineage).

    Taken when a step starts and held until it ends: the step may rebind the names (``old =
    model; model = {}``) and a later output may still be the object an earlier group holds.
    """
    known: dict[int, tuple[object, str, str, str]] = {}
    namespace = engine.namespace
    for name, entry in engine.lineage.items():
        value = namespace.get(name, _GONE)
        if entry.stored is not None and id(value) == entry.ident:
            known[id(value)] = (value, *entry.stored, entry.token)
    return known


def save_group(engine: Engine, values: Mapping[str, object],
               before: Mapping[int, tuple[object, str, str, str]], changed: set[int],
               unpicklable: Callable[[str, object, UnpicklableError], None],
               ) -> tuple[ValueRef | None, dict[str, str | None]]:
    """Save ``values`` as one group; returns its ref and each saved name's member in it.

    A member is the name's key in the stored dict, or None when the stored value is the object
    itself (every saved name holds that one object). ``before`` is :func:`known_objects` at the
    step's start; the objects the step ``changed`` (ids) are saved by value, the others as
    references. ``unpicklable(name, value, error)`` is told about each value that cannot be
    saved.
    """
    namespace = engine.namespace
    known = {ident: entry for ident, entry in before.items() if ident not in changed}
    group = dict(values)
    try:
        return _put(engine, group, known)
    except UnpicklableError:
        pass  # find which values fail, below; the others are saved together
    for name, value in values.items():
        try:
            engine.store.check_picklable(value, namespace=namespace, known=known)
        except UnpicklableError as err:
            unpicklable(name, value, err)
            del group[name]
    if not group:
        return None, {}
    return _put(engine, group, known)


def _put(engine: Engine, group: dict[str, object], known: Known,
         ) -> tuple[ValueRef, dict[str, str | None]]:
    """Store ``group``; objects in ``known`` become references to the values holding them.

    A reference must name a value the store still has: ``gc --max-size`` (or another
    kernel's gc) may have removed an earlier step's values while this kernel still holds
    their objects. The referenced values are looked up once the group is written; when one is
    gone, its objects are forgotten as stored (lineage) and the group is written again with
    them inside it, so a record never points at nothing (DESIGN §4.14).
    """
    while True:
        ref, members = _put_once(engine, group, known)
        missing = engine.store.missing(set(ref.get("refs", ())))
        if not missing:
            return ref, members
        gone = {ident for ident, entry in known.items() if entry[1] in missing}
        known = {ident: entry for ident, entry in known.items() if ident not in gone}
        engine.lineage.forget_stored(missing)


def _put_once(engine: Engine, group: dict[str, object], known: Known,
              ) -> tuple[ValueRef, dict[str, str | None]]:
    objects = {id(value): value for value in group.values()}
    if len(objects) == 1:
        # One object: stored as itself, so its digest is its content's (a value an activity
        # journaled, or another step stored, is not written again).
        [single] = objects.values()
        ref = engine.store.put_value(single, namespace=engine.namespace, known=known,
                                     members=(single,))
        members: dict[str, str | None] = dict.fromkeys(group)
    else:
        ref = engine.store.put_value(group, namespace=engine.namespace, known=known,
                                     members=tuple(group.values()))
        members = {name: name for name in group}
    direct = ref.get("refs", [])
    if direct:
        # The values referred to may refer to others: keep the closure, so that garbage
        # collection keeps every value a restore of this group needs.
        closure = set(direct)
        for _, entry in engine.lineage.items():
            if entry.stored is not None and entry.stored[0] in closure:
                closure.update(entry.refs)
        ref["refs"] = sorted(closure)
    return ref, members


class Loader:
    """Loads the values of records, resolving references to objects the namespace holds.

    One loader per restore: a group referenced twice is loaded once, so what two values share
    stays shared.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._groups: dict[str, dict[str, Any]] = {}
        self._wholes: dict[str, object] = {}
        held: dict[str, object] = {}  # by token: equal contents share a digest, not a token
        for name, entry in engine.lineage.items():
            value = engine.namespace.get(name, _GONE)
            if entry.stored is not None and id(value) == entry.ident:
                held[entry.token] = value
        self._held = held

    def group(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        """The group value of ``ref`` (loaded once)."""
        digest = ref["digest"]
        group = self._groups.get(digest)
        if group is None:
            loaded = self._engine.store.get_value(ref, namespace=self._engine.namespace,
                                                  resolve=self.resolve)
            if not isinstance(loaded, dict):
                raise DamagedRecordError(f"value {digest}", "format", "not a group of outputs")
            group = self._groups[digest] = loaded
        return group

    def value(self, entry: Mapping[str, Any]) -> object:
        """The value of one output entry (a member of a group, or an older single value)."""
        ref = entry.get("ref")
        if ref is None:
            raise DamagedRecordError("output", "format", "output has no saved value")
        member = entry.get("member")
        if member is None:  # the stored value is the object itself
            return self.whole(ref)
        group = self.group(ref)
        if member not in group:
            raise DamagedRecordError(f"value {ref['digest']}", "format",
                                     f"the group has no member {member!r}")
        return group[member]

    def whole(self, ref: Mapping[str, Any]) -> object:
        """The value of ``ref`` itself (loaded once)."""
        digest = ref["digest"]
        value = self._wholes.get(digest, _GONE)
        if value is _GONE:
            value = self._wholes[digest] = self._engine.store.get_value(
                ref, namespace=self._engine.namespace, resolve=self.resolve)
        return value

    def resolve(self, digest: str, member: str, token: str) -> object:
        """The object a reference names (``member`` "" is the whole value): the one the
        namespace holds, else loaded."""
        held = self._held.get(token, _GONE)
        if held is not _GONE:
            return held
        if member == "":  # loaded for this token: another token of equal content is another object
            value = self._engine.store.get_value({"digest": digest, "kind": "inline"},
                                                 namespace=self._engine.namespace,
                                                 resolve=self.resolve)
        else:
            group = self.group({"digest": digest, "kind": "inline"})
            if member not in group:
                raise DamagedRecordError(f"value {digest}", "format",
                                         f"referenced group has no member {member!r}")
            value = group[member]
        self._held[token] = value
        return value


_GONE: Any = object()


def note_saved(engine: Engine, entries: Mapping[str, Mapping[str, Any]],
               after: Mapping[str, str]) -> None:
    """Lineage of a step's saved outputs; fresh states of the values it left unchanged."""
    namespace = engine.namespace
    for name, entry in entries.items():
        if entry.get("ref") is None:
            # Not saved (a generator, a connection): no token may stand for its content, or a
            # later step reading it would replay after it changed.
            engine.lineage.drop([name])
            continue
        _note(engine, name, entry, namespace[name], after.get(name))
    for name, content in after.items():
        if name not in entries:
            known = engine.lineage.entry(name, namespace.get(name, _GONE))
            if known is not None:
                known.content = content


def note_restored(engine: Engine, name: str, entry: Mapping[str, Any], value: object) -> None:
    """Lineage of one restored output, with where it is stored."""
    _note(engine, name, entry, value, None)


def _note(engine: Engine, name: str, entry: Mapping[str, Any], value: object,
          content: str | None) -> None:
    ref, member = entry.get("ref"), entry.get("member")
    stored = (ref["digest"], member or "") if ref is not None else None
    refs = tuple(ref.get("refs", ())) if ref is not None else ()
    engine.lineage.set(name, entry["token"], value, stored, content, refs)
