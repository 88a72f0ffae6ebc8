"""The runtime side of the rewriter: every call in a durable cell goes through :func:`call`.

Outside a durable step, inside an activity (no nesting) or for a callee that classifies inline,
``call`` is a plain call. For an activity it takes the next position on its branch
(``forks.py``: the step's main line, or the line of a thread, coroutine or map item), checks it
against the journal, and either hands back the recorded outcome or makes the call (with its
retry policy) and journals the outcome before returning it. An inline callee that hands
functions to other threads (``Executor.map``, ``asyncio.to_thread``) or a notebook ``async def``
has a *route*: the functions it hands off, or the coroutine it makes, run on branches of their
own. ``time.sleep`` and ``asyncio.sleep`` are durable timers: their deadline is journaled
before they wait, so a resumed step waits only what was left.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import (
    DamagedRecordError,
    DamagedStoreWarning,
    IncompleteEffectError,
    NondeterminismError,
    UnjournaledWarning,
    UnpicklableWarning,
)
from ..steps import fingerprint
from ..steps.records import JournalEntry
from . import forks
from .classify import Verdict, classify
from .current import INSIDE as _INSIDE
from .current import STEP as _STEP
from .forks import BRANCH, Branch, Handed
from .journal import NOTHING, Journal
from .policy import RetryPolicy, acall_with_policy, call_with_policy
from .results import is_connection, revive, snapshot, snapshot_error

_NO_ARGS = fingerprint.fingerprint(((), []))


def args_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Digest of a call's arguments: the only trace of them that is ever written."""
    if not args and not kwargs:
        return _NO_ARGS  # time.time(), random.random(): the commonest activities
    try:
        return fingerprint.fingerprint((args, sorted(kwargs.items())))
    except fingerprint.Unfingerprintable:
        # Unhashable arguments (a connection, a generator) are identified by their types.
        shape = [type(a).__qualname__ for a in args] + sorted(kwargs)
        return "types:" + fingerprint.fingerprint(shape)


def _receiver(fn: Any) -> Any:
    target = getattr(fn, "__wrapped__", fn)
    return getattr(target, "__self__", None)


def _adopt(receiver: Any, recorded: Any) -> None:
    """Give the live receiver the state it had after the recorded call."""
    if hasattr(recorded, "__dict__") and hasattr(receiver, "__dict__"):
        receiver.__dict__.clear()
        receiver.__dict__.update(recorded.__dict__)
    elif hasattr(receiver, "__setstate__") and hasattr(recorded, "__getstate__"):
        receiver.__setstate__(recorded.__getstate__())


class _Call:
    """Where one call stands: its branch, position there, slot and argument digest."""

    __slots__ = ("branch", "digest", "pos", "slot")

    def __init__(self, branch: str, pos: int, digest: str) -> None:
        self.branch, self.pos, self.digest = branch, pos, digest
        self.slot = f"{branch}:{pos:08d}" if branch else f"{pos:08d}"

    @property
    def label(self) -> str:
        return f"{self.branch}:{self.pos + 1}" if self.branch else str(self.pos + 1)


_RUNNING: StepActivities | None = None
"""The step whose activities are journaled in this process now, seen from any thread (a
thread that no hand-off started has no step in its context: its calls are told about)."""


class StepActivities:
    """The activities of one running step: its branches, the journal and the cell's policy."""

    def __init__(self, journal: Journal, defaults: RetryPolicy | None = None,
                 warn: Callable[[type[Warning], str], None] | None = None) -> None:
        self.journal = journal
        self.defaults = defaults
        self._warn = warn
        self.main = Branch(self, "")
        self._branches: list[Branch] = [self.main]
        self.active = False
        """True between :meth:`activate` and :meth:`deactivate`: a thread or task that
        outlives its cell makes plain calls after that."""
        self.from_journal: set[str] = set()
        """Slots whose outcome came from the journal in this execution."""
        self._policies: dict[Verdict, RetryPolicy] = {}
        self._failed: dict[str, BaseException] = {}
        self._loaded: dict[str, tuple[Any, Any]] = {}
        """slot -> (result, receiver state) loaded ahead of their replay."""
        self._told: set[str] = set()
        self._thread: threading.Thread | None = None
        self._busy = 0
        """Activities running live on the cell's own thread: threads they start are theirs
        (calls inside an activity are not journaled), not strays."""

    @property
    def count(self) -> int:
        """Activities the step has called so far, on every branch."""
        return sum(branch.seq for branch in self._branches)

    def activate(self) -> object:
        """Make this the running step's journal (returns a token for :meth:`deactivate`)."""
        global _RUNNING
        self.active = True
        self._thread = threading.current_thread()
        _RUNNING = self
        return _STEP.set(self)

    def deactivate(self, token: object) -> None:
        """Undo :meth:`activate`."""
        global _RUNNING
        self.active = False
        if _RUNNING is self:
            _RUNNING = None
        _STEP.reset(token)  # type: ignore[arg-type]

    def log(self) -> list[dict[str, Any]]:
        """The journal's entries without values, each saying whether it came from the journal
        (kept in the step's record)."""
        return [{**doc, "replayed": JournalEntry.from_doc(doc).slot in self.from_journal}
                for doc in self.journal.log()]

    def ended_by(self, exc: BaseException) -> None:
        """The cell failed with ``exc``: if an activity raised it, retry that call next run.

        A failure the cell caught stays journaled and is raised again on replay (DESIGN §4.5).
        """
        chain: list[BaseException] = []
        while exc is not None and exc not in chain:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        for slot, failure in list(self._failed.items()):
            if any(failure is e for e in chain):
                self.journal.drop(slot)
                return

    # -- branches -------------------------------------------------------------------------------
    def branch(self) -> Branch:
        """The branch calls in this context are made on."""
        found = BRANCH.get()
        return found if found is not None and found.owner is self else self.main

    def new_branch(self, path: str) -> Branch:
        branch = Branch(self, path)
        self._branches.append(branch)
        return branch

    def fork(self, kind: str) -> Branch:
        """A new branch forked from this context's branch (``forks.Branch.fork``)."""
        return self.new_branch(self.branch().fork(kind))

    def fork_named(self, kind: str, name: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Branch:
        """A new branch for ``name(*args, **kwargs)``, named by its arguments
        (``forks.Branch.named``)."""
        return self.new_branch(self.branch().named(kind, name, args_digest(args, kwargs)))

    def hand_off(self, fn: Any, given: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
                 many: bool = False) -> Handed:
        """``fn``, wrapped to run on a branch of its own when another thread calls it.

        Args:
            fn: the function handed off.
            given: the arguments it will be called with, when the hand-off says (``submit(fn,
                *args)``): its branch is named by them; else by the fork's number.
            many: it may be called any number of times (``forks.Handed``).
        """
        parent = self.branch()
        if given is None or many:
            path = parent.fork("thread")
        else:
            name = getattr(fn, "__name__", None) or type(fn).__name__
            path = parent.named("thread", name, args_digest(*given))
        return Handed(self, fn, path, contextvars.copy_context(), many)

    def call_on(self, path: str, fn: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """Call ``fn`` as the cell would, on a new branch ``path`` (in a context of its own)."""
        BRANCH.set(self.new_branch(path))
        return self.call(fn, args, kwargs)

    def call(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What :func:`call` does for a call made in this step."""
        verdict = classify(fn)
        if not verdict.activity:
            if verdict.route is None:
                return fn(*args, **kwargs)
            return verdict.route(self, fn, args, kwargs)
        return self.run(fn, verdict, args, kwargs)

    @staticmethod
    def digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """:func:`args_digest` (for ``forks``, which does not import this module)."""
        return args_digest(args, kwargs)

    @staticmethod
    def call_plain(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``fn(*args, **kwargs)`` with none of the calls inside it journaled."""
        token = _INSIDE.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _INSIDE.reset(token)

    def unidentified(self, fn: Any, path: str) -> None:
        """A hand-off's invocation with arguments that cannot be fingerprinted runs plain."""
        self._tell(path, f"the calls of {classify(fn).callee} handed off at {path} cannot be "
                   "told apart (its arguments cannot be fingerprinted), so they are made live "
                   "and not journaled; a resume makes them again. km.map or Executor.map "
                   "identify items by their index instead.")

    def stray(self, fn: Any) -> None:
        """An activity called from a thread that no hand-off of this step started."""
        if self._busy or threading.current_thread() is self._thread:
            return
        verdict = classify(fn)
        if verdict.activity:
            self._tell(verdict.callee, f"{verdict.callee} was called from thread "
                       f"{threading.current_thread().name!r}, which kitteh_magic did not see "
                       "start, so the call is made live and not journaled (a resume makes it "
                       "again). Start threads with Thread.start, an Executor, asyncio.to_thread "
                       "or km.map in the cell.")

    def _tell(self, key: str, text: str) -> None:
        if key in self._told or self._warn is None:
            return
        self._told.add(key)
        self._warn(UnjournaledWarning, f"step {self.journal.step!r}: {text}")

    # -- one call -------------------------------------------------------------------------------
    def begin(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
               kwargs: dict[str, Any], branch: Branch | None = None,
               ) -> tuple[_Call, JournalEntry | None]:
        """Take the next position on ``branch`` (this context's by default) and check it
        against the journal.

        Returns where the call stands and the entry to replay (or a timer's to resume), or
        None when the call must be made (then an effect is noted as started first: at most
        once).
        """
        if branch is None:
            branch = self.branch()
        position = branch.seq
        branch.seq = position + 1
        call = _Call(branch.path, position, args_digest(args, kwargs))
        entry = self.journal.get(call.slot)
        if entry is not None:
            self._check(entry, verdict, call)
            if entry.state == "started":
                return call, entry  # a durable timer that was waiting (``_check`` refused effects)
            # A result that could not be saved, or is damaged now: the call is made again.
            if entry.unsaved or not self._outcome_loads(entry):
                entry = None
        if entry is None and verdict.effect:
            self.journal.started(call.branch, call.pos, verdict.callee, call.digest)
        return call, entry

    def _check(self, entry: JournalEntry, verdict: Verdict, call: _Call) -> None:
        """A journaled slot replays only for the same call, and never a half-run effect."""
        if entry.callee != verdict.callee or entry.args != call.digest:
            raise NondeterminismError(
                f"step {self.journal.step!r}: activity #{call.label} was journaled as "
                f"{entry.callee}(arguments {entry.args[:12]}) but the cell now calls "
                f"{verdict.callee}(arguments {call.digest[:12]}). A recorded result is never "
                "handed to a different call. If the change is intended, run the cell with "
                f"`%%durable --force` (or `%durable invalidate {self.journal.step}`) to discard "
                "the journal; otherwise make the calls before it deterministic.")
        if entry.state == "started" and (entry.effect or not entry.deadline):
            raise IncompleteEffectError(
                f"step {self.journal.step!r}: the effect {entry.callee} (activity "
                f"#{call.label}) started but never finished: the kernel died while it ran, "
                "so it may or may not have happened. If it happened, run "
                f"`%durable effect {self.journal.step} {call.label} done`; to run it again, "
                f"`%durable effect {self.journal.step} {call.label} redo`.")

    def _outcome_loads(self, entry: JournalEntry) -> bool:
        """Load a journaled result and receiver state ahead of replaying them.

        A damaged one (a lost blob, a failed checksum) is dropped from the store, so that the
        call, made again now, rewrites it: one recompute heals (DESIGN §4.14). An effect is
        never made again for that: its result is lost, so it is reported as interrupted.
        """
        if entry.state != "done":
            return True
        try:
            self._loaded[entry.slot] = (
                self.journal.load(entry.result) if entry.result is not None else None,
                self.journal.load(entry.receiver) if entry.receiver is not None else NOTHING)
        except DamagedRecordError as err:
            refs = [r for r in (entry.result, entry.receiver) if r is not None]
            self.journal.store.heal({r["digest"] for r in refs if "digest" in r})
            where = f"{entry.callee} (activity #{entry.label})"
            if entry.effect:
                raise IncompleteEffectError(
                    f"step {self.journal.step!r}: the journaled result of the effect {where} "
                    f"is damaged ({err}). The effect happened; to accept that, run "
                    f"`%durable effect {self.journal.step} {entry.label} done`; to run it "
                    f"again, `%durable effect {self.journal.step} {entry.label} redo`."
                ) from None
            if self._warn is not None:
                self._warn(DamagedStoreWarning, f"step {self.journal.step!r}: the journaled "
                           f"result of {where} is damaged ({err}); the call is made again and "
                           "its result journaled anew.")
            return False
        return True

    def replayed(self, fn: Any, entry: JournalEntry) -> Any:
        """The recorded outcome: the result, or the recorded exception raised again."""
        slot = entry.slot
        self.from_journal.add(slot)
        if entry.state == "error":
            failure = self.journal.failure(entry)
            # Like a live failure: if it ends the cell, the call is made again next run.
            self._failed[slot] = failure
            raise failure
        result, receiver = self._loaded.pop(slot, (None, NOTHING))
        if receiver is not NOTHING:
            _adopt(_receiver(fn), receiver)
        return revive(result, fn) if entry.result is not None else None

    def _record(self, fn: Any, verdict: Verdict, call: _Call, started: float,
                attempts: int, result: Any = NOTHING, error: BaseException | None = None,
                awaitable: bool = False) -> None:
        entry = JournalEntry(pos=call.pos, callee=verdict.callee, args=call.digest,
                             state="error" if error is not None else "done",
                             effect=verdict.effect, duration=time.perf_counter() - started,
                             attempts=attempts, awaitable=awaitable, branch=call.branch)
        receiver = _receiver(fn) if verdict.records_receiver and error is None else NOTHING
        entry = self.journal.record(entry, result=result, error=error, receiver=receiver)
        if error is not None:
            self._failed[call.slot] = error
        if entry.unsaved and self._warn is not None and not is_connection(result):
            # A connection is a handle, not a result: opening it again on replay loses nothing.
            self._warn(UnpicklableWarning, (
                f"step {self.journal.step!r}: the result of {verdict.callee} (activity "
                f"#{call.label}) is a {entry.unsaved} that cannot be saved; on replay that "
                "call runs again."))

    def _policy(self, verdict: Verdict) -> RetryPolicy:
        policy = self._policies.get(verdict)
        if policy is None:
            policy = self._policies[verdict] = (verdict.policy or RetryPolicy()).merged(
                self.defaults)
        return policy

    def _journal_failure(self, fn: Any, verdict: Verdict, call: _Call, started: float,
                         live: Exception, attempts: int, awaitable: bool = False) -> Exception:
        """Journal a live failure; returns the exception to raise (a replayable snapshot)."""
        err = snapshot_error(live)
        self._record(fn, verdict, call, started, attempts, error=err, awaitable=awaitable)
        return err

    def _journal_result(self, fn: Any, verdict: Verdict, call: _Call, started: float,
                        result: Any, attempts: int, awaitable: bool = False) -> Any:
        """Journal a live result; returns what the cell gets (a replayable snapshot)."""
        kept, given = snapshot(result, fn)
        self._record(fn, verdict, call, started, attempts, result=kept, awaitable=awaitable)
        return given

    def run(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any:
        """Replay or make one synchronous activity call."""
        call, entry = self.begin(fn, verdict, args, kwargs)
        timer = _TIMERS.get(fn)
        if timer is not None:
            if timer == "async":  # asyncio.sleep(...) made now, awaited later (gather)
                return self._atimer(fn, verdict, call, entry, args, kwargs)
            return self._timer(fn, verdict, call, entry, args)
        if entry is not None:
            return self._replay_later(fn, entry) if entry.awaitable else self.replayed(fn, entry)
        return self.live(fn, verdict, call, args, kwargs)

    def live(self, fn: Any, verdict: Verdict, call: _Call, args: tuple[Any, ...],
              kwargs: dict[str, Any], via: Any = None) -> Any:
        """Make the call (through ``via`` when given: another executor) and journal it."""
        started = time.perf_counter()
        token = _INSIDE.set(True)
        mine = threading.current_thread() is self._thread
        if mine:
            self._busy += 1
        try:
            outcome = call_with_policy(fn if via is None else via, args, kwargs,
                                       self._policy(verdict), name=verdict.callee)
        except Exception as live:
            err = self._journal_failure(fn, verdict, call, started, live,
                                        getattr(live, "kitteh_attempts", 1))
            if err is live:
                raise
            raise err from None
        finally:
            _INSIDE.reset(token)
            if mine:
                self._busy -= 1
        if inspect.isawaitable(outcome.result):
            # A coroutine made by a sync call (asyncio.gather(client.get(...))): journal it when
            # it is awaited, at the slot it was called at.
            return self._await_later(fn, verdict, call, started, outcome.result)
        return self._journal_result(fn, verdict, call, started, outcome.result,
                                    outcome.attempts)

    async def _replay_later(self, fn: Any, entry: JournalEntry) -> Any:
        return self.replayed(fn, entry)

    async def _await_later(self, fn: Any, verdict: Verdict, call: _Call, started: float,
                           awaitable: Awaitable[Any]) -> Any:
        try:
            result = await awaitable
        except Exception as live:
            err = self._journal_failure(fn, verdict, call, started, live, 1, awaitable=True)
            if err is live:
                raise
            raise err from None
        return self._journal_result(fn, verdict, call, started, result, 1, awaitable=True)

    async def arun(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        """Replay or make one awaited activity call."""
        call, entry = self.begin(fn, verdict, args, kwargs)
        if _TIMERS.get(fn) == "async":
            return await self._atimer(fn, verdict, call, entry, args, kwargs)
        if entry is not None:
            return self.replayed(fn, entry)
        started = time.perf_counter()
        token = _INSIDE.set(True)
        try:
            outcome = await acall_with_policy(fn, args, kwargs, self._policy(verdict),
                                              name=verdict.callee)
        except Exception as live:
            err = self._journal_failure(fn, verdict, call, started, live,
                                        getattr(live, "kitteh_attempts", 1))
            if err is live:
                raise
            raise err from None
        finally:
            _INSIDE.reset(token)
        return self._journal_result(fn, verdict, call, started, outcome.result,
                                    outcome.attempts)

    # -- durable timers -------------------------------------------------------------------------
    def _deadline(self, verdict: Verdict, call: _Call, entry: JournalEntry | None,
                  seconds: Any) -> float | None:
        """The timer's deadline (epoch seconds), journaled before it waits; None when it
        already finished (then the entry replays)."""
        if entry is not None and entry.state != "started":
            return None
        if entry is not None:
            self.from_journal.add(call.slot)
            return entry.deadline
        try:
            wait = max(float(seconds), 0.0)
        except (TypeError, ValueError):
            wait = 0.0  # the sleep call itself raises the user's error below
        deadline = time.time() + wait
        self.journal.started(call.branch, call.pos, verdict.callee, call.digest, effect=False,
                             deadline=deadline)
        return deadline

    def _timer(self, fn: Any, verdict: Verdict, call: _Call, entry: JournalEntry | None,
               args: tuple[Any, ...]) -> Any:
        """``time.sleep(seconds)``: waits until its journaled deadline."""
        deadline = self._deadline(verdict, call, entry, args[0] if args else 0)
        if deadline is None:
            assert entry is not None
            return self.replayed(fn, entry)
        started = time.perf_counter()
        if entry is None:
            fn(*args)  # the user's own arguments: a bad one raises as in a plain cell
        else:
            fn(max(deadline - time.time(), 0.0))
        self._record(fn, verdict, call, started, 1, result=None)
        return None

    async def _atimer(self, fn: Any, verdict: Verdict, call: _Call,
                      entry: JournalEntry | None, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """``asyncio.sleep(delay, result)``: awaits until its journaled deadline."""
        delay = args[0] if args else kwargs.get("delay", 0)
        deadline = self._deadline(verdict, call, entry, delay)
        if deadline is None:
            assert entry is not None
            return self.replayed(fn, entry)
        started = time.perf_counter()
        if entry is None:
            result = await fn(*args, **kwargs)
        else:
            rest = {k: v for k, v in kwargs.items() if k != "delay"}
            result = await fn(max(deadline - time.time(), 0.0), *args[1:], **rest)
        return self._journal_result(fn, verdict, call, started, result, 1, awaitable=True)


_TIMERS: dict[Any, str] = {time.sleep: "sync", asyncio.sleep: "async"}
"""Durable timers: a resumed step waits only what was left of them."""


def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``f(...)`` in a durable cell becomes: ``_kitteh_call_(f, ...)``."""
    step = _STEP.get()
    if step is None or _INSIDE.get() or not step.active:
        if step is None and _RUNNING is not None:
            _RUNNING.stray(fn)
        return fn(*args, **kwargs)
    verdict = classify(fn)
    if not verdict.activity:
        if verdict.route is None:
            return fn(*args, **kwargs)
        return verdict.route(step, fn, args, kwargs)
    return step.run(fn, verdict, args, kwargs)


async def acall(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``await f(...)`` in a durable cell becomes: ``await _kitteh_acall_(f, ...)``."""
    step = _STEP.get()
    if step is None or _INSIDE.get() or not step.active:
        return await fn(*args, **kwargs)
    verdict = classify(fn)
    if not verdict.activity:
        # Awaited at once, a notebook coroutine runs in its caller's order: no branch needed.
        if verdict.route is None or verdict.route is forks.fork_coroutine:
            return await fn(*args, **kwargs)
        return await verdict.route(step, fn, args, kwargs)
    return await step.arun(fn, verdict, args, kwargs)
