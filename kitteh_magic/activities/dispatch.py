"""The runtime side of the rewriter: every call in a durable cell goes through :func:`call`.

Outside a durable step, inside an activity (no nesting) or for a callee that classifies inline,
``call`` is a plain call. For an activity it takes the next position in the step, checks it
against the journal, and either hands back the recorded outcome or makes the call (with its
retry policy) and journals the outcome before returning it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import (
    DamagedRecordError,
    DamagedStoreWarning,
    IncompleteEffectError,
    NondeterminismError,
    UnpicklableWarning,
)
from ..steps import fingerprint
from ..steps.records import JournalEntry
from .classify import Verdict, classify
from .current import INSIDE as _INSIDE
from .current import STEP as _STEP
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


class StepActivities:
    """The activities of one running step: positions, the journal and the cell's policy."""

    def __init__(self, journal: Journal, defaults: RetryPolicy | None = None,
                 warn: Callable[[type[Warning], str], None] | None = None) -> None:
        self.journal = journal
        self.defaults = defaults
        self._warn = warn
        self.position = 0
        self.from_journal: set[int] = set()
        self._policies: dict[Verdict, RetryPolicy] = {}
        """Positions whose outcome came from the journal in this execution."""
        self._failed: dict[int, BaseException] = {}
        self._loaded: dict[int, tuple[Any, Any]] = {}
        """position -> (result, receiver state) loaded ahead of their replay."""

    @property
    def count(self) -> int:
        """Activities the step has called so far."""
        return self.position

    def activate(self) -> object:
        """Make this the running step's journal (returns a token for :meth:`deactivate`)."""
        return _STEP.set(self)

    @staticmethod
    def deactivate(token: object) -> None:
        """Undo :meth:`activate`."""
        _STEP.reset(token)  # type: ignore[arg-type]

    def ended_by(self, exc: BaseException) -> None:
        """The cell failed with ``exc``: if an activity raised it, retry that call next run.

        A failure the cell caught stays journaled and is raised again on replay (DESIGN §4.5).
        """
        chain: list[BaseException] = []
        while exc is not None and exc not in chain:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        for pos, failure in self._failed.items():
            if any(failure is e for e in chain):
                self.journal.drop(pos)
                return

    # -- one call -------------------------------------------------------------------------------
    def _begin(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[int, str, JournalEntry | None]:
        """Take the next position and check it against the journal.

        Returns the position, the argument digest and the entry to replay, or None when the call
        must be made (then an effect is noted as started first: at most once).
        """
        position = self.position
        self.position += 1
        digest = args_digest(args, kwargs)
        entry = self.journal.get(position)
        if entry is not None:
            self._check(entry, verdict, position, digest)
            # A result that could not be saved, or is damaged now: the call is made again.
            if entry.unsaved or not self._outcome_loads(entry):
                entry = None
        if entry is None and verdict.effect:
            self.journal.started(position, verdict.callee, digest)
        return position, digest, entry

    def _check(self, entry: JournalEntry, verdict: Verdict, position: int, digest: str) -> None:
        """A journaled position replays only for the same call, and never a half-run effect."""
        if entry.callee != verdict.callee or entry.args != digest:
            raise NondeterminismError(
                f"step {self.journal.step!r}: activity #{position + 1} was journaled as "
                f"{entry.callee}(arguments {entry.args[:12]}) but the cell now calls "
                f"{verdict.callee}(arguments {digest[:12]}). A recorded result is never handed "
                "to a different call. If the change is intended, run the cell with "
                f"`%%durable --force` (or `%durable invalidate {self.journal.step}`) to discard "
                "the journal; otherwise make the calls before it deterministic.")
        if entry.state == "started":
            raise IncompleteEffectError(
                f"step {self.journal.step!r}: the effect {entry.callee} (activity "
                f"#{position + 1}) started but never finished: the kernel died while it ran, "
                "so it may or may not have happened. If it happened, run "
                f"`%durable effect {self.journal.step} {position + 1} done`; to run it again, "
                f"`%durable effect {self.journal.step} {position + 1} redo`.")

    def _outcome_loads(self, entry: JournalEntry) -> bool:
        """Load a journaled result and receiver state ahead of replaying them.

        A damaged one (a lost blob, a failed checksum) is dropped from the store, so that the
        call, made again now, rewrites it: one recompute heals (DESIGN §4.14). An effect is
        never made again for that: its result is lost, so it is reported as interrupted.
        """
        if entry.state != "done":
            return True
        try:
            self._loaded[entry.pos] = (
                self.journal.load(entry.result) if entry.result is not None else None,
                self.journal.load(entry.receiver) if entry.receiver is not None else NOTHING)
        except DamagedRecordError as err:
            refs = [r for r in (entry.result, entry.receiver) if r is not None]
            self.journal.store.heal({r["digest"] for r in refs if "digest" in r})
            where = f"{entry.callee} (activity #{entry.pos + 1})"
            if entry.effect:
                raise IncompleteEffectError(
                    f"step {self.journal.step!r}: the journaled result of the effect {where} "
                    f"is damaged ({err}). The effect happened; to accept that, run "
                    f"`%durable effect {self.journal.step} {entry.pos + 1} done`; to run it "
                    f"again, `%durable effect {self.journal.step} {entry.pos + 1} redo`."
                ) from None
            if self._warn is not None:
                self._warn(DamagedStoreWarning, f"step {self.journal.step!r}: the journaled "
                           f"result of {where} is damaged ({err}); the call is made again and "
                           "its result journaled anew.")
            return False
        return True

    def _replayed(self, fn: Any, entry: JournalEntry) -> Any:
        """The recorded outcome: the result, or the recorded exception raised again."""
        self.from_journal.add(entry.pos)
        if entry.state == "error":
            failure = self.journal.failure(entry)
            # Like a live failure: if it ends the cell, the call is made again next run.
            self._failed[entry.pos] = failure
            raise failure
        result, receiver = self._loaded.pop(entry.pos, (None, NOTHING))
        if receiver is not NOTHING:
            _adopt(_receiver(fn), receiver)
        return revive(result, fn) if entry.result is not None else None

    def _record(self, fn: Any, verdict: Verdict, position: int, digest: str, started: float,
                attempts: int, result: Any = NOTHING, error: BaseException | None = None,
                awaitable: bool = False) -> None:
        entry = JournalEntry(pos=position, callee=verdict.callee, args=digest,
                             state="error" if error is not None else "done",
                             effect=verdict.effect, duration=time.perf_counter() - started,
                             attempts=attempts, awaitable=awaitable)
        receiver = _receiver(fn) if verdict.records_receiver and error is None else NOTHING
        entry = self.journal.record(entry, result=result, error=error, receiver=receiver)
        if error is not None:
            self._failed[position] = error
        if entry.unsaved and self._warn is not None and not is_connection(result):
            # A connection is a handle, not a result: opening it again on replay loses nothing.
            self._warn(UnpicklableWarning, (
                f"step {self.journal.step!r}: the result of {verdict.callee} (activity "
                f"#{position + 1}) is a {entry.unsaved} that cannot be saved; on replay that "
                "call runs again."))

    def _policy(self, verdict: Verdict) -> RetryPolicy:
        policy = self._policies.get(verdict)
        if policy is None:
            policy = self._policies[verdict] = (verdict.policy or RetryPolicy()).merged(
                self.defaults)
        return policy

    def _journal_failure(self, fn: Any, verdict: Verdict, position: int, digest: str,
                         started: float, live: Exception, attempts: int,
                         awaitable: bool = False) -> Exception:
        """Journal a live failure; returns the exception to raise (a replayable snapshot)."""
        err = snapshot_error(live)
        self._record(fn, verdict, position, digest, started, attempts, error=err,
                     awaitable=awaitable)
        return err

    def _journal_result(self, fn: Any, verdict: Verdict, position: int, digest: str,
                        started: float, result: Any, attempts: int,
                        awaitable: bool = False) -> Any:
        """Journal a live result; returns what the cell gets (a replayable snapshot)."""
        kept, given = snapshot(result, fn)
        self._record(fn, verdict, position, digest, started, attempts, result=kept,
                     awaitable=awaitable)
        return given

    def run(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any:
        """Replay or make one synchronous activity call."""
        position, digest, entry = self._begin(fn, verdict, args, kwargs)
        if entry is not None:
            return self._replay_later(fn, entry) if entry.awaitable else self._replayed(fn, entry)
        started = time.perf_counter()
        token = _INSIDE.set(True)
        try:
            outcome = call_with_policy(fn, args, kwargs, self._policy(verdict),
                                       name=verdict.callee)
        except Exception as live:
            err = self._journal_failure(fn, verdict, position, digest, started, live,
                                        getattr(live, "kitteh_attempts", 1))
            if err is live:
                raise
            raise err from None
        finally:
            _INSIDE.reset(token)
        if inspect.isawaitable(outcome.result):
            # A coroutine made by a sync call (asyncio.gather(client.get(...))): journal it when
            # it is awaited, at the position it was called at.
            return self._await_later(fn, verdict, position, digest, started, outcome.result)
        return self._journal_result(fn, verdict, position, digest, started, outcome.result,
                               outcome.attempts)

    async def _replay_later(self, fn: Any, entry: JournalEntry) -> Any:
        return self._replayed(fn, entry)

    async def _await_later(self, fn: Any, verdict: Verdict, position: int, digest: str,
                           started: float, awaitable: Awaitable[Any]) -> Any:
        try:
            result = await awaitable
        except Exception as live:
            err = self._journal_failure(fn, verdict, position, digest, started, live, 1,
                                        awaitable=True)
            if err is live:
                raise
            raise err from None
        return self._journal_result(fn, verdict, position, digest, started, result, 1,
                               awaitable=True)

    async def arun(self, fn: Any, verdict: Verdict, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        """Replay or make one awaited activity call."""
        position, digest, entry = self._begin(fn, verdict, args, kwargs)
        if entry is not None:
            return self._replayed(fn, entry)
        started = time.perf_counter()
        token = _INSIDE.set(True)
        try:
            outcome = await acall_with_policy(fn, args, kwargs, self._policy(verdict),
                                              name=verdict.callee)
        except Exception as live:
            err = self._journal_failure(fn, verdict, position, digest, started, live,
                                        getattr(live, "kitteh_attempts", 1))
            if err is live:
                raise
            raise err from None
        finally:
            _INSIDE.reset(token)
        return self._journal_result(fn, verdict, position, digest, started, outcome.result,
                               outcome.attempts)


def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``f(...)`` in a durable cell becomes: ``_kitteh_call_(f, ...)``."""
    step = _STEP.get()
    if step is None or _INSIDE.get():
        return fn(*args, **kwargs)
    verdict = classify(fn)
    if not verdict.activity:
        return fn(*args, **kwargs)
    return step.run(fn, verdict, args, kwargs)


async def acall(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """What ``await f(...)`` in a durable cell becomes: ``await _kitteh_acall_(f, ...)``."""
    step = _STEP.get()
    if step is None or _INSIDE.get():
        return await fn(*args, **kwargs)
    verdict = classify(fn)
    if not verdict.activity:
        return await fn(*args, **kwargs)
    return await step.arun(fn, verdict, args, kwargs)
