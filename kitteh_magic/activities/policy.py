"""Retry policies: how an activity is retried, backed off and timed out.

A policy comes from two places: the activity's own mark (``@km.activity(retries=3)``) and the
cell's defaults (``%%durable --retries 3``). :meth:`RetryPolicy.merged` combines them, and
:func:`call_with_policy` / :func:`acall_with_policy` make the call under the result.

>>> RetryPolicy(retries=3).merged(RetryPolicy(retries=1, timeout=5.0))
RetryPolicy(retries=3, backoff=1.0, timeout=5.0, retry_on=(<class 'Exception'>,))
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from ..errors import KittehError

# Never retried, whatever ``retry_on`` says: the user (or the runtime) asked to stop.
_NEVER_RETRIED = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class RetryPolicy:
    """How an activity is retried.

    Attributes:
        retries: extra attempts after the first (0: the call is made once).
        backoff: seconds before the first retry; the n-th retry waits ``backoff * 2**(n-1)``.
        timeout: seconds one attempt may take, or None for no limit.
        retry_on: the exception classes that are retried; others propagate at once.

    Raises:
        ValueError: a negative ``retries`` or ``backoff``, a ``timeout`` that is not positive.
        TypeError: ``retry_on`` holds something that is not an exception class.
    """

    retries: int = 0
    backoff: float = 1.0
    timeout: float | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise TypeError(f"retries must be an int, got {self.retries!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more (extra attempts), got {self.retries}")
        if not _is_number(self.backoff) or not math.isfinite(self.backoff) or self.backoff < 0:
            raise ValueError(f"backoff must be a finite number of seconds >= 0, "
                             f"got {self.backoff!r}")
        if self.timeout is not None and (not _is_number(self.timeout) or not self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, "
                             f"got {self.timeout!r}")
        retry_on: Any = self.retry_on
        if isinstance(retry_on, type):
            # A single class is the common slip for a one-element tuple; accept it.
            retry_on = (retry_on,)
        if not isinstance(retry_on, tuple) or not all(
                isinstance(c, type) and issubclass(c, BaseException) for c in retry_on):
            raise TypeError(f"retry_on must be a tuple of exception classes, "
                            f"got {self.retry_on!r}")
        object.__setattr__(self, "retry_on", retry_on)

    def merged(self, defaults: RetryPolicy | None) -> RetryPolicy:
        """This policy with the cell's defaults filling what it left open.

        The rule is by value: a field still at its class default (``retries=0``,
        ``backoff=1.0``, ``timeout=None``, ``retry_on=(Exception,)``) takes the cell's value;
        a field set to anything else is the activity's own choice and wins. The one thing it
        cannot express is an activity insisting on a default value against a cell that says
        otherwise (``@km.activity(retries=0)`` in a ``--retries 3`` cell still retries 3 times).

        Args:
            defaults: the cell's policy, or None when the cell set none.

        Returns:
            The policy to call with (``self`` when there is nothing to merge).

        >>> RetryPolicy(timeout=2.0).merged(RetryPolicy(retries=2, timeout=9.0)).timeout
        2.0
        """
        if defaults is None or defaults == _DEFAULT:
            return self
        values = {}
        for f in fields(self):
            own = getattr(self, f.name)
            values[f.name] = own if own != getattr(_DEFAULT, f.name) else getattr(defaults, f.name)
        return RetryPolicy(**values)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        return float(self.backoff * 2 ** (retry - 1))

    def retries_on(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this policy retries (interrupts and exits never are)."""
        return isinstance(exc, self.retry_on) and not isinstance(exc, _NEVER_RETRIED)


_DEFAULT = RetryPolicy()


class ActivityTimeout(KittehError, TimeoutError):
    """One attempt of an activity ran longer than its policy's ``timeout``.

    It is a :class:`TimeoutError` (so ``except TimeoutError`` catches it, and the default
    ``retry_on`` retries it) and a ``KittehError``.
    """

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(
            f"activity {name} did not finish within its timeout of {timeout:g} s; raise the "
            f"timeout (@km.activity(timeout=...) or %%durable --timeout) if it is just slow")

    def __reduce__(self) -> tuple[type[ActivityTimeout], tuple[str, float]]:
        return (type(self), (self.name, self.timeout))


@dataclass
class Attempted:
    """A successful call made under a policy.

    Attributes:
        result: what the call returned.
        attempts: how many attempts it took (1 when the first one succeeded).
        duration: seconds from the first attempt to the end, waits between retries included.
    """

    result: Any
    attempts: int
    duration: float


def call_with_policy(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                     policy: RetryPolicy, *, name: str,
                     sleep: Callable[[float], object] = time.sleep) -> Attempted:
    """Call ``fn(*args, **kwargs)``, retrying and timing out as ``policy`` says.

    With a ``timeout``, each attempt runs in a daemon worker thread (in a copy of the caller's
    context, so context variables such as "inside an activity" still hold there) and the caller
    stops waiting after ``timeout`` seconds. A Python thread cannot be killed: a timed-out
    attempt keeps running in the background until it returns by itself, and its result is
    dropped. Without a timeout there is no thread and no overhead beyond a ``try``.

    Args:
        fn: the callee.
        args: positional arguments.
        kwargs: keyword arguments.
        policy: the retry policy, already merged with the cell's defaults.
        name: the callee's name, for messages.
        sleep: waits between retries (tests pass a recorder).

    Returns:
        The result with the number of attempts and the total duration.

    Raises:
        BaseException: the last attempt's exception, with ``kitteh_attempts`` (int) set on it;
            :class:`ActivityTimeout` when the last attempt timed out.
    """
    start = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            if policy.timeout is None:
                result = fn(*args, **kwargs)
            else:
                result = _call_in_thread(fn, args, kwargs, policy.timeout, name)
        except BaseException as exc:
            if attempt > policy.retries or not policy.retries_on(exc):
                _note_attempts(exc, attempt)
                raise
            sleep(policy.delay(attempt))
            continue
        return Attempted(result, attempt, time.perf_counter() - start)


async def acall_with_policy(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                            kwargs: dict[str, Any], policy: RetryPolicy, *, name: str,
                            sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                            ) -> Attempted:
    """Await ``fn(*args, **kwargs)``, retrying and timing out as ``policy`` says.

    ``fn`` is called again for every attempt (a coroutine can be awaited only once). A timeout
    cancels the attempt, which asyncio can do, unlike a thread. ``asyncio.timeout`` is used
    rather than ``asyncio.wait_for`` because it tells its own expiry apart from a
    ``TimeoutError`` that the awaited code raised itself.

    Args:
        fn: the callee; calling it returns an awaitable.
        args: positional arguments.
        kwargs: keyword arguments.
        policy: the retry policy, already merged with the cell's defaults.
        name: the callee's name, for messages.
        sleep: awaited between retries (tests pass a recorder).

    Returns:
        The result with the number of attempts and the total duration.

    Raises:
        BaseException: as :func:`call_with_policy`.
    """
    start = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            if policy.timeout is None:
                result = await fn(*args, **kwargs)
            else:
                scope = asyncio.timeout(policy.timeout)
                try:
                    async with scope:
                        result = await fn(*args, **kwargs)
                except TimeoutError:
                    if scope.expired():
                        raise ActivityTimeout(name, policy.timeout) from None
                    raise
        except BaseException as exc:
            if attempt > policy.retries or not policy.retries_on(exc):
                _note_attempts(exc, attempt)
                raise
            await sleep(policy.delay(attempt))
            continue
        return Attempted(result, attempt, time.perf_counter() - start)


def _note_attempts(exc: BaseException, attempts: int) -> None:
    # An exception class with __slots__ and no __dict__ cannot take the attribute.
    with contextlib.suppress(AttributeError, TypeError):
        exc.kitteh_attempts = attempts  # type: ignore[attr-defined]


def _call_in_thread(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                    timeout: float, name: str) -> Any:
    outcome: list[Any] = []
    failure: list[BaseException] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            outcome.append(context.run(fn, *args, **kwargs))
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=attempt, name=f"kitteh-activity {name}", daemon=True)
    worker.start()
    if not done.wait(timeout):
        raise ActivityTimeout(name, timeout)
    if failure:
        raise failure[0]
    return outcome[0]
