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
import dataclasses
import functools
import hashlib
import inspect
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
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
from ..steps.records import JournalEntry, slot_of
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
    """Digest of a call's arguments: the only trace of them that is ever written.

    Prefixed ``iter:`` when an argument is an iterator (a generator, an open file: the call
    consumes it, and its content is not known), and ``types:`` when every argument counts by
    its type only (locks, connections): such a digest does not tell two calls apart.
    """
    if not args and not kwargs:
        return _NO_ARGS  # time.time(), random.random(): the commonest activities
    values = (*args, *kwargs.values())
    found = fingerprint.describe((args, sorted(kwargs.items())))
    if any(isinstance(value, Iterator) for value in values):
        return "iter:" + found.digest
    if found.leaves and len(found.leaves) >= len(values) and all(
            _TOP.fullmatch(leaf.path or "") for leaf in found.leaves):
        return "types:" + found.digest
    return found.digest


_TOP = re.compile(r"\[0\]\[\d+\]|\[1\]\[\d+\]\[1\]")
"""Paths of whole arguments inside ``(args, sorted(kwargs.items()))``."""


def weak(digest: str) -> bool:
    """Whether an argument digest fails to tell calls apart (see :func:`args_digest`)."""
    return digest.startswith(("iter:", "types:"))


def effective_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                   ) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The callee and arguments a call really makes: ``partial(f, a)(b)`` is ``f(a, b)``."""
    while type(fn) is functools.partial:
        args, kwargs, fn = (*fn.args, *args), {**fn.keywords, **kwargs}, fn.func
    return fn, args, kwargs


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
    """Where one call stands: its branch and position there, argument digest and identity."""

    __slots__ = ("branch", "digest", "ident", "occ", "pos", "slot")

    def __init__(self, branch: str, pos: int, digest: str, ident: str, occ: int) -> None:
        self.branch, self.pos, self.digest, self.ident, self.occ = branch, pos, digest, ident, occ
        self.slot = slot_of(branch, ident, occ)

    @property
    def label(self) -> str:
        return f"{self.branch}:{self.pos + 1}" if self.branch else str(self.pos + 1)

    def entry(self, verdict: Verdict, **fields: Any) -> JournalEntry:
        return JournalEntry(pos=self.pos, callee=verdict.callee, args=self.digest,
                            effect=verdict.effect, branch=self.branch, ident=self.ident,
                            occ=self.occ, **fields)


def call_ident(callee: str, digest: str) -> str:
    """A call's identity in its journal: a short digest of callee and argument digest."""
    return hashlib.blake2b(f"{callee}\0{digest}".encode(), digest_size=8).hexdigest()


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
        self._saved: list[tuple[float, float]] = []
        """When each call answered from the journal ran (epoch seconds, start and end), an
        append being atomic, so threads need no lock."""
        self._policies: dict[Verdict, RetryPolicy] = {}
        self._failed: dict[str, BaseException] = {}
        self._loaded: dict[str, tuple[Any, Any]] = {}
        """slot -> (result, receiver state) loaded ahead of their replay."""
        self._told: set[str] = set()
        self._escaped: list[BaseException] = []
        self._made: dict[int, tuple[Any, str]] = {}
        """id -> (object, slot) of what activities returned in this execution: a method called
        on such an object is identified by where it came from (``r.json()`` of which ``get``)."""
        self.concurrent = False
        """Whether the step has forked a branch yet. Before that its calls are one sequence in
        program order, and a different call at a recorded position is a NondeterminismError;
        after, the main line's order may follow completion order (``as_completed``), and
        calls are matched by identity alone."""
        self._thread: threading.Thread | None = None
        self._busy = 0
        """Activities running live: threads they start are theirs (calls inside an activity
        are not journaled), not strays."""
        self._busy_lock = threading.Lock()

    @property
    def count(self) -> int:
        """Activities the step has called so far, on every branch."""
        return sum(branch.seq for branch in self._branches)

    @property
    def saved(self) -> float:
        """Seconds of calls this run took from the journal instead of making them: the time
        their recorded runs took (for a timer resumed mid-wait, the part already waited), calls
        that ran at the same time (``km.map`` items, a thread pool's) counted once: eight
        items that each took 20 s side by side saved 20 s, not 160 (the replay of the whole
        step after them saves its 20 s of wall time too)."""
        return _covered(self._saved)

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
        self._made.clear()  # the results it held on to, for provenance only
        if _RUNNING is self:
            _RUNNING = None
        _STEP.reset(token)  # type: ignore[arg-type]

    def log(self) -> list[dict[str, Any]]:
        """The journal's entries without values, each saying whether it came from the journal
        (kept in the step's record)."""
        return [{**doc, "replayed": slot_of(doc["branch"], doc["ident"], doc["occ"])
                 in self.from_journal} for doc in self.journal.log()]

    def ended_by(self, exc: BaseException) -> None:
        """The cell failed with ``exc``: if an activity raised it, retry that call next run.

        A failure the cell caught stays journaled and is raised again on replay (DESIGN §4.5).
        """
        chain: list[BaseException] = []
        while exc is not None and exc not in chain:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        # Failures that escaped a branch (a pool item, a task) are never seen by the cell when
        # another one ends it first: they are made again too, as km.map's are.
        ended = {id(e) for e in chain} | {id(e) for e in self._escaped}
        for slot, failure in list(self._failed.items()):
            if id(failure) in ended:
                self.journal.drop(slot)

    def escaped(self, failure: BaseException) -> None:
        """``failure`` ended a branch (a handed-off function or a coroutine raised it)."""
        self._escaped.append(failure)

    def failed_with(self, slots: list[str], failure: BaseException) -> None:
        """Calls whose failures ``failure`` stands for (``km.map`` raises one of its items'):
        if it ends the cell, they are all made again next run."""
        for slot in slots:
            self._failed[slot] = failure

    # -- branches -------------------------------------------------------------------------------
    def branch(self) -> Branch:
        """The branch calls in this context are made on."""
        found = BRANCH.get()
        return found if found is not None and found.owner is self else self.main

    def new_branch(self, path: str) -> Branch:
        """A branch of this step (forked from the current one, by the caller's naming)."""
        self.concurrent = True
        branch = Branch(self, path)
        self._branches.append(branch)
        return branch

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
        context = contextvars.copy_context()
        if context.get(_STEP) is not self:  # a hand-off made on a thread without the step
            context.run(_STEP.set, self)
        return Handed(self, fn, path, context, many)

    def call_on(self, path: str, fn: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """Call ``fn`` as the cell would, on a new branch ``path`` (in a context of its own)."""
        BRANCH.set(self.new_branch(path))
        try:
            return self.call(fn, args, kwargs)
        except BaseException as failure:
            self.escaped(failure)
            raise

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

    def stray(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call from a thread that no hand-off of this step started (a library's own, such
        as joblib's dispatcher). A hand-off made there still puts what it hands off on a
        branch of this step; an activity is made live, not journaled, with a warning (none
        while an activity runs: threads it starts are its own)."""
        verdict = classify(fn)
        if verdict.route is not None and verdict.route is not forks.fork_coroutine:
            return verdict.route(self, fn, args, kwargs)
        if verdict.activity and not self._busy and threading.current_thread() is not self._thread:
            self._tell(verdict.callee, f"{verdict.callee} was called from thread "
                       f"{threading.current_thread().name!r}, which kitteh_magic did not see "
                       "start, so the call is made live and not journaled (a resume makes it "
                       "again). Start threads with Thread.start, an Executor, asyncio.to_thread "
                       "or km.map in the cell.")
        return fn(*args, **kwargs)

    def _tell(self, key: str, text: str) -> None:
        if key in self._told or self._warn is None:
            return
        self._told.add(key)
        self._warn(UnjournaledWarning, f"step {self.journal.step!r}: {text}")

    # -- one call -------------------------------------------------------------------------------
    def begin(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
              kwargs: dict[str, Any], branch: Branch | None = None,
              ) -> tuple[_Call, JournalEntry | None]:
        """Identify the call on ``branch`` (this context's by default) and find its entry.

        Returns where the call stands and the entry to replay (or a timer's to resume), or
        None when the call must be made (then an effect is noted as started first: at most
        once).

        Raises:
            NondeterminismError: in the step's sequential part, the call recorded at this
                position was another one.
            IncompleteEffectError: the effect started and never finished.
        """
        if branch is None:
            branch = self.branch()
        position = branch.seq
        branch.seq = position + 1
        digest = self._digest(fn, args, kwargs)
        ident = call_ident(verdict.callee, digest)
        call = _Call(branch.path, position, digest, ident, branch.occurrence(ident))
        entry = self.journal.get(call.slot)
        if entry is None and not self.concurrent:
            recorded = self.journal.at(call.branch, position)
            if recorded is not None:
                self._diverged(recorded, verdict, call)
        elif entry is not None and weak(digest) and self.concurrent:
            # Calls told apart only by their order, in a step whose order may follow
            # completion order: a recorded result could belong to a sibling. Made again.
            self._tell(verdict.callee, f"the calls of {verdict.callee} cannot be told apart "
                       "(their arguments cannot be fingerprinted: "
                       f"{'an iterator' if digest.startswith('iter:') else 'handles'}) in a "
                       "step that runs calls concurrently, so they are made again on resume.")
            entry = None
        if entry is not None:
            self._check(entry, verdict, call)
            if entry.state == "started":
                return call, entry  # a durable timer that was waiting (``_check`` refused effects)
            # A result that could not be saved, or is damaged now: the call is made again.
            if entry.unsaved or not self._outcome_loads(entry):
                entry = None
        if entry is None and verdict.effect:
            self.journal.started(call.entry(verdict))
        return call, entry

    def _digest(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The call's argument digest: of what a ``partial`` binds too, and of where its
        receiver came from when an activity of this step returned it."""
        target, args, kwargs = effective_call(fn, args, kwargs)
        digest = args_digest(args, kwargs)
        receiver = getattr(getattr(target, "__wrapped__", target), "__self__", None)
        if receiver is not None and self._made:
            made = self._made.get(id(receiver))
            if made is not None and made[0] is receiver:
                digest = f"{digest}@{made[1]}"
        return digest

    def _remember_made(self, value: Any, slot: str) -> Any:
        """Note that the call at ``slot`` returned ``value`` (see ``_made``); returns it."""
        if type(value) not in _PLAIN_RESULTS:
            self._made[id(value)] = (value, slot)
        return value

    def _diverged(self, recorded: JournalEntry, verdict: Verdict, call: _Call) -> None:
        raise NondeterminismError(
            f"step {self.journal.step!r}: activity #{call.label} was journaled as "
            f"{recorded.callee}(arguments {recorded.args[:12]}) but the cell now calls "
            f"{verdict.callee}(arguments {call.digest[:12]}). A recorded result is never "
            "handed to a different call. If the change is intended, run the cell with "
            f"`%%durable --force` (or `%durable invalidate {self.journal.step}`) to discard "
            "the journal; otherwise make the calls before it deterministic.")

    def _check(self, entry: JournalEntry, verdict: Verdict, call: _Call) -> None:
        """A journaled slot replays only for the same call, and never a half-run effect."""
        if entry.callee != verdict.callee or entry.args != call.digest:
            self._diverged(entry, verdict, call)
        if entry.state == "started" and (entry.effect or not entry.deadline):
            raise IncompleteEffectError(
                f"step {self.journal.step!r}: the effect {entry.callee} (activity "
                f"#{entry.label}) started but never finished: the kernel died while it ran, "
                "so it may or may not have happened. If it happened, run "
                f"`%durable effect {self.journal.step} {entry.label} done`; to run it again, "
                f"`%durable effect {self.journal.step} {entry.label} redo`.")

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
        self._saved.append((entry.finished - entry.duration, entry.finished))
        if entry.state == "error":
            failure = self.journal.failure(entry)
            # Like a live failure: if it ends the cell, the call is made again next run.
            self._failed[slot] = failure
            raise failure
        result, receiver = self._loaded.pop(slot, (None, NOTHING))
        if receiver is not NOTHING:
            _adopt(_receiver(fn), receiver)
        return self._remember_made(revive(result, fn), slot) if entry.result is not None else None

    def _record(self, fn: Any, verdict: Verdict, call: _Call, started: float,
                attempts: int, result: Any = NOTHING, error: BaseException | None = None,
                awaitable: bool = False) -> None:
        entry = call.entry(verdict, state="error" if error is not None else "done",
                           duration=time.perf_counter() - started, attempts=attempts,
                           awaitable=awaitable)
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
        return self._remember_made(given, call.slot)

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
              kwargs: dict[str, Any], via: Any = None, started: float | None = None) -> Any:
        """Make the call (through ``via`` when given: another executor) and journal it;
        ``started`` (``perf_counter``) is when the call began, if before now (a task that a
        cluster ran before its result came back here)."""
        if started is None:
            started = time.perf_counter()
        token = _INSIDE.set(True)
        with self._busy_lock:
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
            with self._busy_lock:
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
            # The resume does not wait again what the timer has waited by now.
            self._saved.append((entry.finished, entry.finished + _waited(entry)))
            return entry.deadline
        try:
            wait = max(float(seconds), 0.0)
        except (TypeError, ValueError):
            wait = 0.0  # the sleep call itself raises the user's error below
        deadline = time.time() + wait
        self.journal.started(dataclasses.replace(call.entry(verdict), effect=False),
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
            started -= _waited(entry)  # the record keeps the whole wait
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
            started -= _waited(entry)
            rest = {k: v for k, v in kwargs.items() if k != "delay"}
            result = await fn(max(deadline - time.time(), 0.0), *args[1:], **rest)
        return self._journal_result(fn, verdict, call, started, result, 1, awaitable=True)


_TIMERS: dict[Any, str] = {time.sleep: "sync", asyncio.sleep: "async"}
"""Durable timers: a resumed step waits only what was left of them."""


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of time spans (start, end), overlaps counted once.

    >>> _covered([(0.0, 20.0), (1.0, 21.0), (30.0, 31.0), (5.0, 6.0)])
    22.0
    """
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def _waited(entry: JournalEntry) -> float:
    """Seconds a journaled timer that started (``entry.finished`` holds when) has waited by now,
    the time the kernel was down included."""
    return max(min(entry.deadline, time.time()) - entry.finished, 0.0)


_PLAIN_RESULTS = frozenset({type(None), bool, int, float, complex, str, bytes})
"""Results whose methods are never activities: no need to remember where they came from."""


def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``f(...)`` in a durable cell becomes: ``_kitteh_call_(f, ...)``."""
    __tracebackhide__ = True  # IPython hides this frame (a step unlinks it: steps/tracebacks.py)
    step = _STEP.get()
    if step is None:
        # A thread inside an activity but without the step (a km.map item on an in-process
        # Dask worker) is no stray: the activity's own calls are plain.
        if _RUNNING is not None and not _INSIDE.get():
            return _RUNNING.stray(fn, args, kwargs)
        return fn(*args, **kwargs)
    if _INSIDE.get() or not step.active:
        return fn(*args, **kwargs)
    verdict = classify(fn)
    if not verdict.activity:
        if verdict.route is None:
            return fn(*args, **kwargs)
        return verdict.route(step, fn, args, kwargs)
    return step.run(fn, verdict, args, kwargs)


async def acall(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``await f(...)`` in a durable cell becomes: ``await _kitteh_acall_(f, ...)``."""
    __tracebackhide__ = True
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
