"""Forks: the concurrent lines of calls inside one step, and how calls find theirs.

A step's calls are not one sequence once it uses threads or coroutines: eight pool threads
finish their calls in whatever order the network answers. So a call is identified not by a
global position but by its *branch* and its position on that branch (DESIGN §4.12). A branch
is a line of calls made one after another: the step's main line (the cell's own thread), or a
line forked from another branch, named by what runs on it or by where it was forked:

* ``task.fetch(3f2ab1c9d0)#0``: the coroutine of a notebook ``async def`` called with arguments
  of that digest, the first such on its parent branch. A coroutine is a branch as soon as it is
  created; one made out of sight (``map(fetch, urls)``) is forked when it is given to
  ``gather``, ``create_task`` and the like;
* ``thread.get(91ab03c2de)#0``: a function handed to another thread with those arguments
  (``Executor.submit``, ``asyncio.to_thread``, ``loop.run_in_executor``, ``Thread.start``,
  ``Pool.apply_async``). Named by arguments, not by the order of the hand-offs, because a cell
  may hand off in completion order (submitting from ``as_completed``);
* ``thread2[17]``: item 17 of the third mapping hand-off (``Executor.map``, ``Pool.map`` and
  ``starmap``), which is indexed by item, and ``map0[17]`` item 17 of ``km.map``; numbered by
  the order of such forks on the parent branch (a mapping is started in program order);
* ``thread2[<argument digest>#0]``: an invocation of a function handed off to be called any
  number of times (``joblib.delayed``, ``tqdm``'s ``thread_map``), identified by its arguments
  and their occurrence.

Two calls with equal arguments are the same call, so which of them takes occurrence 0 does not
matter. Arguments that cannot be fingerprinted fall back to the fork's number.

Positions on a branch follow its program order, so the determinism check of sequential calls
holds on every branch: a recorded result is handed only to the same callee with the same
arguments at the same place. An invocation of a ``many`` hand-off whose arguments cannot be
fingerprinted cannot be told apart from its siblings: its calls are made live and not
journaled, with a warning, never answered with another invocation's result.

A function handed to a process pool crosses a process boundary by pickle: the wrappers here
pickle as the plain function, so the child calls it plainly (process pools are not journaled;
``km.map(..., client=executor)`` journals their results in the kernel).
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
import threading
import types
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dispatch import StepActivities

Route = Callable[["StepActivities", Any, tuple[Any, ...], dict[str, Any]], Any]
"""How a hand-off is called in a step: ``route(step, callee, args, kwargs)``."""


class Branch:
    """One line of calls made one after another (see the module docstring).

    Used by one thread or coroutine at a time; its counters take a lock all the same, for the
    main line, which a library's own thread may fork from (joblib's dispatcher).

    Attributes:
        owner: the step whose branch it is (a context may outlive its step).
        path: ``""`` for the main line, else ``parent/label``.
        seq: the position the next call on it takes.
        forks: how many branches were forked from it so far.
    """

    __slots__ = ("forks", "lock", "owner", "path", "seen", "seq")

    def __init__(self, owner: object, path: str) -> None:
        self.owner = owner
        self.path = path
        self.seq = 0
        self.forks = 0
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        """For the main line, which a library's own thread may fork from too."""

    def _child(self, label: str) -> str:
        return f"{self.path}/{label}" if self.path else label

    def fork(self, kind: str) -> str:
        """Name the next branch forked from this one by its number among the forks that have
        no better name (``kind`` is ``task``, ``thread``, ``map``)."""
        with self.lock:
            number = self.forks
            self.forks += 1
        return self._child(f"{kind}{number}")

    def occurrence(self, ident: str) -> int:
        """How many calls of identity ``ident`` this branch made before this one."""
        key = "call:" + ident
        with self.lock:
            seen = self.seen.get(key, 0)
            self.seen[key] = seen + 1
        return seen

    def named(self, kind: str, name: str, digest: str) -> str:
        """Name a branch by what runs on it: the function's name, its arguments' digest and
        the occurrence of that pair (``thread.get(3f2ab1c9d0)#0``). Independent of the order
        the parent forks in, which may follow completion order (``as_completed``); arguments
        that cannot be fingerprinted fall back to :meth:`fork`."""
        if digest.startswith(("types:", "iter:")):
            return self.fork(kind)
        label = f"{kind}.{_NAME.sub('_', name)[:40]}({digest[:10]})"
        with self.lock:
            occurrence = self.seen.get(label, 0)
            self.seen[label] = occurrence + 1
        return self._child(f"{label}#{occurrence}")


_NAME = re.compile(r"[^A-Za-z0-9_.<>]")

BRANCH: ContextVar[Branch | None] = ContextVar("kitteh_branch", default=None)
"""The branch calls in this context are made on; None is the running step's main line."""


def _identity(fn: Any) -> Any:
    return fn


class Handed:
    """A function handed off to run elsewhere, called on a branch of its own.

    Args:
        step: the running step's activities.
        fn: the function handed off.
        path: the branch name the hand-off forked (``thread.get(91ab03c2de)#0``, ``thread2``).
        context: the hand-off's context (the step, not inside an activity).
        many: the function may be called any number of times, by a library that says
            nothing about which call is which: invocations are told apart by their arguments.
    """

    def __init__(self, step: StepActivities, fn: Any, path: str,
                 context: contextvars.Context, many: bool = False) -> None:
        # First: it copies the function's attributes, which must not shadow the ones below.
        try:
            functools.update_wrapper(self, fn)
        except (AttributeError, TypeError):  # a callable instance without a name
            self.__wrapped__ = fn
        self.step = step
        self.fn = fn
        self.path = path
        self.context = context
        self.many = many
        self._calls = 0
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.many:
            return self._by_arguments(args, kwargs)
        with self._lock:
            calls, self._calls = self._calls, self._calls + 1
        # A single hand-off runs its function once; a second call is a branch of its own.
        return self.call(self.path if calls == 0 else f"{self.path}.{calls}", args, kwargs)

    def _by_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        digest = self.step.digest(args, kwargs)
        if digest.startswith(("types:", "iter:")):
            self.step.unidentified(self.fn, self.path)
            return self.context.copy().run(self.step.call_plain, self.fn, args, kwargs)
        with self._lock:
            occurrence = self._seen.get(digest, 0)
            self._seen[digest] = occurrence + 1
        return self.call(f"{self.path}[{digest[:16]}#{occurrence}]", args, kwargs)

    def call(self, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the function on the branch ``path``, in a copy of the hand-off's context.

        After the step ended (a thread that outlived its cell) it is a plain call.
        """
        if not self.step.active:
            return self.fn(*args, **kwargs)
        return self.context.copy().run(self.step.call_on, path, self.fn, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # To another process (a process pool): the plain function, called plainly there.
        return (_identity, (self.fn,))


class _Item:
    """``Executor.map``'s and ``Pool.starmap``'s function: ``(index, *args)``."""

    def __init__(self, handed: Handed) -> None:
        self.handed = handed

    def __call__(self, index: int, *args: Any) -> Any:
        return self.handed.call(f"{self.handed.path}[{index}]", args, {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Unindexed, (self.handed.fn,))


class _Pair:
    """``Pool.map``'s function: one ``(index, item)`` pair."""

    def __init__(self, handed: Handed) -> None:
        self.handed = handed

    def __call__(self, pair: tuple[int, Any]) -> Any:
        index, item = pair
        return self.handed.call(f"{self.handed.path}[{index}]", (item,), {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Unpaired, (self.handed.fn,))


class _Unindexed:
    """:class:`_Item` in another process: the index dropped, the function called plainly."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, index: int, *args: Any) -> Any:
        return self.fn(*args)


class _Unpaired:
    """:class:`_Pair` in another process."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, pair: tuple[int, Any]) -> Any:
        return self.fn(pair[1])


# -- the hand-offs ------------------------------------------------------------------------------

def _take(args: tuple[Any, ...], kwargs: dict[str, Any], at: int, name: str,
          ) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    """The function argument at position ``at`` (or keyword ``name``) and the rest."""
    if len(args) > at:
        return args[at], args[:at] + args[at + 1:], kwargs
    if name in kwargs:
        rest = dict(kwargs)
        return rest.pop(name), args, rest
    return None


def _given(callee: Any, rest: tuple[Any, ...], kwargs: dict[str, Any],
           ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments a single hand-off passes to its function: those after it, except for
    ``Pool.apply(func, args, kwds)``, which takes them as two arguments."""
    name = getattr(callee, "__name__", "")
    if name in ("apply", "apply_async") and isinstance(getattr(callee, "__self__", None),
                                                        _pool_type()):
        args = rest[0] if rest else kwargs.get("args", ())
        kwds = rest[1] if len(rest) > 1 else kwargs.get("kwds", {})
        return tuple(args), dict(kwds or {})
    return rest, {k: v for k, v in kwargs.items() if k not in _HAND_OFF_KEYWORDS}


_HAND_OFF_KEYWORDS = frozenset({"callback", "error_callback"})


def _pool_type() -> type:
    from multiprocessing.pool import Pool

    return Pool


def _out_of_process(callee: Any) -> bool:
    """Whether a hand-off's receiver runs functions in other processes (not journaled here)."""
    receiver = getattr(callee, "__self__", None)
    if receiver is None:
        return False
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.pool import Pool, ThreadPool

    if isinstance(receiver, ProcessPoolExecutor):
        return True
    return isinstance(receiver, Pool) and not isinstance(receiver, ThreadPool)


def single(at: int, name: str, many: bool = False) -> Route:
    """A hand-off that calls the function at argument ``at`` (keyword ``name``) elsewhere."""
    def route(step: StepActivities, callee: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        taken = _take(args, kwargs, at, name)
        if taken is None or not callable(taken[0]) or _out_of_process(callee):
            return callee(*args, **kwargs)
        fn, rest, kw = taken
        given = _given(callee, rest[at:], kw)
        handed = step.hand_off(fn, given, many=many)
        if name in kwargs:
            return callee(*rest, **{**kw, name: handed})
        return callee(*rest[:at], handed, *rest[at:], **kw)
    return route


def _executor_map(step: StepActivities, callee: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
    """``Executor.map(fn, *iterables, ...)``: each item on a branch named by its index."""
    if not args or not callable(args[0]) or _out_of_process(callee):
        return callee(*args, **kwargs)
    handed = step.hand_off(args[0], _listed(args[1:]))
    return callee(_Item(handed), itertools.count(), *args[1:], **kwargs)


def _listed(iterables: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """A mapping's items as arguments to name its branch by, when they can be read without
    consuming them (lists, tuples, ranges); else None (the fork's number names it)."""
    if iterables and all(type(it) in (list, tuple, range) for it in iterables):
        return iterables, {}
    return None


def _pool_map(star: bool) -> Route:
    """``Pool.map/imap/imap_unordered/map_async`` (``star``: ``starmap``/``starmap_async``)."""
    def route(step: StepActivities, callee: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        if len(args) < 2 or not callable(args[0]) or _out_of_process(callee):
            return callee(*args, **kwargs)
        handed = step.hand_off(args[0], _listed(args[1:2]))
        items: Iterable[Any] = args[1]
        if star:
            return callee(_Item(handed), [(i, *a) for i, a in enumerate(items)], *args[2:],
                          **kwargs)
        return callee(_Pair(handed), enumerate(items), *args[2:], **kwargs)
    return route


def _thread_start(step: StepActivities, callee: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
    """``Thread.start()``: its target (or, in a subclass, its ``run``) runs on a branch."""
    thread = getattr(callee, "__self__", None)
    if isinstance(thread, threading.Thread):
        state = vars(thread)
        target = state.get("_target")  # CPython's name for Thread(target=...), 3.8 to 3.14
        if target is not None and not isinstance(target, Handed):
            given = (tuple(state.get("_args", ())), dict(state.get("_kwargs", {})))
            state["_target"] = step.hand_off(target, given)
        elif target is None and not isinstance(state.get("run"), Handed):
            thread.run = step.hand_off(thread.run)  # type: ignore[method-assign]
    return callee(*args, **kwargs)


def _coroutines(first_only: bool = False, iterable: bool = False) -> Route:
    """An asyncio function that schedules coroutines (``gather``, ``create_task``): each
    coroutine argument not yet on a branch of its own gets one, forked in argument order.

    Notebook coroutines made by a call in a durable cell are forked when made
    (:func:`fork_coroutine`); these catch the ones made elsewhere, as by
    ``asyncio.gather(*map(fetch, urls))``, which would otherwise share their parent's branch
    and interleave their calls on it."""
    def route(step: StepActivities, callee: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        if not args:
            return callee(*args, **kwargs)
        if iterable:
            return callee([_forked(step, a) for a in args[0]], *args[1:], **kwargs)
        if first_only:
            return callee(_forked(step, args[0]), *args[1:], **kwargs)
        return callee(*(_forked(step, a) for a in args), **kwargs)
    return route


def _forked(step: StepActivities, awaitable: Any) -> Any:
    if type(awaitable) is types.CoroutineType and awaitable.cr_code is not _on_branch.__code__:
        frame = awaitable.cr_frame  # not started: its locals are its arguments
        arguments = dict(frame.f_locals) if frame is not None else {}
        return _on_branch(step.fork_named("task", awaitable.cr_code.co_name, (), arguments),
                          awaitable)
    return awaitable


ROUTES: dict[str, Route] = {
    "asyncio.tasks.gather": _coroutines(),
    "asyncio.tasks.ensure_future": _coroutines(first_only=True),
    "asyncio.tasks.create_task": _coroutines(first_only=True),
    "asyncio.tasks.shield": _coroutines(first_only=True),
    "asyncio.tasks.wait_for": _coroutines(first_only=True),
    "asyncio.tasks.as_completed": _coroutines(iterable=True),
    "asyncio.taskgroups.TaskGroup.create_task": _coroutines(first_only=True),
    "asyncio.events.AbstractEventLoop.create_task": _coroutines(first_only=True),
    "concurrent.futures._base.Executor.submit": single(0, "fn"),
    "concurrent.futures._base.Executor.map": _executor_map,
    "asyncio.threads.to_thread": single(0, "func"),
    "asyncio.events.AbstractEventLoop.run_in_executor": single(1, "func"),
    "threading.Thread.start": _thread_start,
    "multiprocessing.pool.Pool.apply": single(0, "func"),
    "multiprocessing.pool.Pool.apply_async": single(0, "func"),
    "multiprocessing.pool.Pool.map": _pool_map(False),
    "multiprocessing.pool.Pool.map_async": _pool_map(False),
    "multiprocessing.pool.Pool.imap": _pool_map(False),
    "multiprocessing.pool.Pool.imap_unordered": _pool_map(False),
    "multiprocessing.pool.Pool.starmap": _pool_map(True),
    "multiprocessing.pool.Pool.starmap_async": _pool_map(True),
    "anyio.to_thread.run_sync": single(0, "func"),
    "joblib.parallel.delayed": single(0, "function", many=True),
    "tqdm.contrib.concurrent.thread_map": single(0, "fn", many=True),
}
"""Hand-offs by the qualified name of the function or of a method of a class in the
receiver's MRO (so a subclass of ``Executor`` is a hand-off too)."""


def route_for(fn: Any, names: Iterable[str]) -> Route | None:
    """The route of a callee that hands functions to other threads, or None.

    Args:
        fn: the callee.
        names: its qualified names (``names.describe``).
    """
    for name in names:
        found = ROUTES.get(name)
        if found is not None:
            return found
    receiver = getattr(fn, "__self__", None)
    method = getattr(fn, "__name__", None)
    if receiver is None or not isinstance(method, str) or type(receiver).__name__ == "module":
        return None
    owner = receiver if isinstance(receiver, type) else type(receiver)
    for cls in owner.__mro__:
        found = ROUTES.get(f"{cls.__module__}.{cls.__qualname__}.{method}")
        if found is not None:
            return found
    return None


def fork_coroutine(step: StepActivities, fn: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    """A notebook ``async def`` called: its coroutine runs on a branch forked now."""
    branch = step.fork_named("task", getattr(fn, "__name__", "coroutine"), args, kwargs)
    return _on_branch(branch, fn(*args, **kwargs))


async def _on_branch(branch: Branch, coroutine: Any) -> Any:
    """Await ``coroutine`` with ``branch`` as its calls' branch."""
    # Awaited directly, this runs in the caller's context: put its branch back after.
    token = BRANCH.set(branch)
    try:
        return await coroutine
    except BaseException as failure:
        branch.owner.escaped(failure)  # type: ignore[attr-defined]
        raise
    finally:
        BRANCH.reset(token)
