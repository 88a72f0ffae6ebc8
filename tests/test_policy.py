"""Retry policies: retries with doubling backoff, retry_on, timeouts, attempts, merging."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from kitteh_magic.activities import policy
from kitteh_magic.activities.policy import (
    ActivityTimeout,
    RetryPolicy,
    acall_with_policy,
    call_with_policy,
)
from kitteh_magic.errors import KittehError


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then returns the call count."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[int, tuple[Any, ...], dict[str, Any]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls, args, kwargs


def recorder() -> tuple[list[float], Callable[[float], None]]:
    delays: list[float] = []
    return delays, delays.append


class Clock:
    """The policy module's ``time``, replaced: it moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(policy, "time", fake)
    return fake


class Timer:
    """Stands in for the wait on a timed attempt (the policy module's ``threading.Event``): the
    first ``expire`` waits end at once, as when the timeout passes with the attempt still
    running; later waits last until the attempt ends. No test then depends on how fast the
    machine is, and the timeouts the policy asked for are recorded."""

    def __init__(self, expire: int) -> None:
        self.expire = expire
        self.timeouts: list[float | None] = []

    def event(self) -> threading.Event:
        timer = self

        class Event(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                timer.timeouts.append(timeout)
                if len(timer.timeouts) <= timer.expire:
                    return False
                return super().wait()

        return Event()


@pytest.fixture
def timer(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Timer]:
    def install(expire: int) -> Timer:
        fake = Timer(expire)
        monkeypatch.setattr(policy, "threading",
                            SimpleNamespace(Event=fake.event, Thread=threading.Thread))
        return fake
    return install


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds timed-out attempts until the test ends, then lets their threads finish."""
    release = threading.Event()
    yield release
    release.set()


# --- synchronous ------------------------------------------------------------------------------


def test_no_policy_calls_once_with_the_arguments() -> None:
    fn = Flaky(0)
    done = call_with_policy(fn, (1, 2), {"k": 3}, RetryPolicy(), name="f")
    assert done.result == (1, (1, 2), {"k": 3})
    assert (done.attempts, fn.calls) == (1, 1)


def test_duration_spans_every_attempt_and_the_waits_between_them(clock: Clock) -> None:
    flaky = Flaky(2)

    def slow_flaky() -> Any:
        clock.now += 0.25  # each attempt takes a quarter of a second
        return flaky()

    done = call_with_policy(slow_flaky, (), {}, RetryPolicy(retries=2, backoff=0.5), name="f",
                            sleep=clock.sleep)
    assert done.attempts == 3
    assert done.duration == 3 * 0.25 + 0.5 + 1.0


def test_failures_are_retried_with_doubling_backoff() -> None:
    fn = Flaky(3)
    delays, sleep = recorder()
    done = call_with_policy(fn, (), {}, RetryPolicy(retries=4, backoff=0.5), name="f",
                            sleep=sleep)
    assert fn.calls == 4
    assert done.attempts == 4
    assert delays == [0.5, 1.0, 2.0]


def test_the_last_failure_is_raised_with_the_attempt_count() -> None:
    fn = Flaky(10)
    delays, sleep = recorder()
    with pytest.raises(ConnectionError, match="failure 3") as info:
        call_with_policy(fn, (), {}, RetryPolicy(retries=2, backoff=2.0), name="f", sleep=sleep)
    assert fn.calls == 3
    assert info.value.kitteh_attempts == 3  # type: ignore[attr-defined]
    assert delays == [2.0, 4.0]


def test_a_first_failure_without_retries_counts_one_attempt() -> None:
    with pytest.raises(ConnectionError) as info:
        call_with_policy(Flaky(1), (), {}, RetryPolicy(), name="f")
    assert info.value.kitteh_attempts == 1  # type: ignore[attr-defined]


def test_only_exceptions_in_retry_on_are_retried() -> None:
    fn = Flaky(1, ValueError)
    with pytest.raises(ValueError):
        call_with_policy(fn, (), {}, RetryPolicy(retries=3, retry_on=(OSError,)), name="f",
                         sleep=lambda s: None)
    assert fn.calls == 1
    fn = Flaky(2, ConnectionError)  # an OSError subclass
    done = call_with_policy(fn, (), {}, RetryPolicy(retries=3, retry_on=(OSError,)), name="f",
                            sleep=lambda s: None)
    assert (fn.calls, done.attempts) == (3, 3)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_interrupts_and_exits_are_never_retried(error: type[BaseException]) -> None:
    fn = Flaky(1, error)
    with pytest.raises(error):
        call_with_policy(fn, (), {}, RetryPolicy(retries=5, retry_on=(BaseException,)),
                         name="f", sleep=lambda s: None)
    assert fn.calls == 1


def test_a_slow_attempt_times_out_while_it_still_runs(
        timer: Callable[[int], Timer], gate: threading.Event) -> None:
    waits = timer(1)
    ended: list[str] = []

    def slow_call() -> str:
        gate.wait()
        ended.append("late")
        return "late"

    with pytest.raises(ActivityTimeout, match=r"slow_call .*0\.2 s") as info:
        call_with_policy(slow_call, (), {}, RetryPolicy(timeout=0.2), name="slow_call")
    assert waits.timeouts == [0.2]
    assert ended == []  # the caller stopped waiting; the attempt had not returned
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, KittehError)
    assert info.value.kitteh_attempts == 1  # type: ignore[attr-defined]
    [worker] = [t for t in threading.enumerate() if t.name == "kitteh-activity slow_call"]
    assert worker.daemon  # abandoned, it cannot keep the kernel from exiting
    gate.set()
    worker.join()
    assert ended == ["late"]  # it ended by itself, and its result went nowhere


def test_timed_out_attempts_are_retried(
        timer: Callable[[int], Timer], gate: threading.Event) -> None:
    waits = timer(1)
    calls = []

    def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) == 1:
            gate.wait()  # the first attempt hangs until the test ends
        return "ok"

    done = call_with_policy(slow_then_fast, (), {}, RetryPolicy(retries=1, timeout=0.1),
                            name="f", sleep=lambda s: None)
    assert (done.result, done.attempts, len(calls)) == ("ok", 2, 2)
    assert waits.timeouts == [0.1, 0.1]


def test_a_timed_attempt_returns_results_and_raises_errors_of_its_thread() -> None:
    policy = RetryPolicy(timeout=5)
    assert call_with_policy(lambda x: x * 2, (21,), {}, policy, name="f").result == 42
    with pytest.raises(ZeroDivisionError):
        call_with_policy(lambda: 1 / 0, (), {}, policy, name="f")


def test_a_timed_attempt_sees_the_callers_context_variables() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    token = var.set("inside")
    try:
        done = call_with_policy(var.get, (), {}, RetryPolicy(timeout=5), name="f")
    finally:
        var.reset(token)
    assert done.result == "inside"


def test_activity_timeout_pickles() -> None:
    error = pickle.loads(pickle.dumps(ActivityTimeout("api.get", 3.0)))
    assert (error.name, error.timeout) == ("api.get", 3.0)
    assert "api.get" in str(error) and "3 s" in str(error)


# --- asynchronous -----------------------------------------------------------------------------


def test_async_failures_are_retried_with_backoff() -> None:
    calls = []
    delays: list[float] = []

    async def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionError("down")
        return x + 1

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    done = asyncio.run(acall_with_policy(flaky, (1,), {}, RetryPolicy(retries=3, backoff=0.1),
                                         name="f", sleep=sleep))
    assert (done.result, done.attempts, len(calls)) == (2, 3, 3)
    assert delays == [0.1, 0.2]


def test_async_last_failure_carries_attempts() -> None:
    async def down() -> None:
        raise ConnectionError("down")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(ConnectionError) as info:
        asyncio.run(acall_with_policy(down, (), {}, RetryPolicy(retries=2), name="f",
                                      sleep=sleep))
    assert info.value.kitteh_attempts == 3  # type: ignore[attr-defined]


def test_async_timeout_cancels_the_attempt() -> None:
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(ActivityTimeout, match="slow"):
        asyncio.run(acall_with_policy(slow, (), {}, RetryPolicy(timeout=0.1), name="slow"))
    assert cancelled == [True]  # the attempt was cancelled, not waited for


def test_async_own_timeout_error_is_not_mistaken_for_the_policys() -> None:
    async def raises_timeout() -> None:
        raise TimeoutError("the server's own")

    with pytest.raises(TimeoutError, match="the server's own") as info:
        asyncio.run(acall_with_policy(raises_timeout, (), {}, RetryPolicy(timeout=5), name="f"))
    assert not isinstance(info.value, ActivityTimeout)


# --- the policy itself ------------------------------------------------------------------------


def test_the_activitys_own_values_win_and_defaults_fill_the_rest() -> None:
    cell = RetryPolicy(retries=3, backoff=2.0, timeout=30.0, retry_on=(OSError,))
    own = RetryPolicy(retries=5, timeout=1.0)
    assert own.merged(cell) == RetryPolicy(retries=5, backoff=2.0, timeout=1.0,
                                           retry_on=(OSError,))
    assert RetryPolicy().merged(cell) == cell
    assert own.merged(None) is own


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"retries": -1}, ValueError, "retries must be 0 or more"),
    ({"retries": 1.5}, TypeError, "retries must be an int"),
    ({"backoff": -0.1}, ValueError, "backoff must be"),
    ({"backoff": float("inf")}, ValueError, "backoff must be"),
    ({"timeout": -1}, ValueError, "timeout must be a positive"),
    ({"timeout": 0}, ValueError, "timeout must be a positive"),
    ({"retry_on": (ValueError, "IOError")}, TypeError, "retry_on must be a tuple of exception"),
    ({"retry_on": (int,)}, TypeError, "retry_on must be a tuple of exception"),
])
def test_bad_values_are_refused(kwargs: dict[str, Any], error: type[Exception],
                                message: str) -> None:
    with pytest.raises(error, match=message):
        RetryPolicy(**kwargs)


def test_a_single_exception_class_is_accepted_for_retry_on() -> None:
    assert RetryPolicy(retry_on=OSError).retry_on == (OSError,)  # type: ignore[arg-type]
