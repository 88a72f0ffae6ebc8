"""``km.map`` on a Dask cluster (DESIGN §9, issue 11): items as tasks, results journaled here.

The cell's thread keeps at most ``concurrency`` tasks on the cluster, takes them as they
complete (``distributed.as_completed``, in batches: one ``gather`` per batch), submits the next
ones and journals each result through ``step.live``, the task that came back standing for the
call's first attempt (see ``mapping.py`` for the whole map). ``distributed`` is never imported
here: a client exists only once its module was.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import re
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import KittehWarning
from .current import INSIDE
from .policy import ActivityTimeout, RetryPolicy


def is_dask(client: Any) -> bool:
    """Whether ``client`` is a ``distributed.Client``. A client exists only once its module was
    imported, so this never imports distributed (kitteh_magic works without it)."""
    module = sys.modules.get("distributed")
    return module is not None and isinstance(client, module.Client)


def taken(index: int, item: Any, extra: Any, attempt: _Attempt) -> Any:
    """A plain map's item: what the cluster answered (a failure is raised)."""
    return attempt(item)


def journaled_on(client: Any, step: Any, fn: Callable[..., Any], verdict: Any,
                  pending: list[tuple[int, Any, Any]], results: list[Any], bar: Any,
                  concurrency: int) -> dict[int, BaseException]:
    """The durable map's live items on the cluster, each journaled through ``step.live`` as it
    arrives: the attempt that came back is the call's first attempt, and the policy (as
    ``step.live`` merges it) retries it with new tasks."""
    policy = (verdict.policy or RetryPolicy()).merged(step.defaults)
    cluster = Cluster(client, fn, policy.timeout, verdict.callee)

    def journal(index: int, item: Any, call: Any, attempt: _Attempt) -> Any:
        live = functools.partial(step.live, fn, verdict, call, (item,), {}, attempt,
                                 started=attempt.submitted)
        error = attempt.error
        if error is not None and policy.retries and policy.retries_on(error):
            return cluster.retry(index, live)
        return live()

    return cluster.run(pending, journal, results, bar, concurrency)


_LATER: Any = object()
"""What an arrival handler returns for an item retried in a thread of its own."""


@dataclasses.dataclass(eq=False)
class _Attempt:
    """``fn(item)`` as the policy calls it: the first call hands over the task that came back
    from the cluster (its result, or its failure raised); a retry runs a new task and waits."""

    cluster: Cluster
    index: int
    submitted: float
    """When the item's first task was submitted (``perf_counter``): the call's start."""
    value: Any = None
    error: BaseException | None = None
    taken: bool = False

    def __call__(self, item: Any) -> Any:
        if not self.taken:
            self.taken = True
            if self.error is not None:
                raise self.error
            return self.value
        return self.cluster.again(self.index, item)


class Cluster:
    """Items on a Dask cluster: at most ``concurrency`` tasks in flight, taken as they complete.

    The cell's thread does everything but retries: it submits tasks (in batches, one graph each,
    so ``fn`` is pickled once per batch), waits on ``distributed.as_completed``, submits the
    next items as soon as tasks complete, gathers each batch of finished tasks in one request,
    journals them, and cancels what is left on Ctrl-C. A taker thread that gathered and
    journaled while the cell's thread only submitted was measured too: no faster on a local
    cluster (what limits it there is CPU, not the gather's round trip), and one more thread
    to stop on Ctrl-C.
    """

    def __init__(self, client: Any, fn: Callable[..., Any], timeout: float | None,
                 callee: str | None = None) -> None:
        self.distributed = sys.modules["distributed"]
        self.client = client
        self.fn = fn
        self.task = fn if not _in_process(client) else functools.partial(_inside, fn)
        """What a task calls: ``fn`` itself; on workers in this process (which may carry the
        cell's context), ``fn`` inside an activity, so that its calls are plain ones."""
        self.timeout = timeout
        self.callee: str = callee or str(getattr(fn, "__name__", "fn"))
        name = re.sub(r"[^\w.]+", "_", getattr(fn, "__name__", "") or type(fn).__name__)
        self.prefix = f"km.map-{name.strip('_') or 'fn'}-"
        self.token = secrets.token_hex(4)
        self.flight: dict[Any, tuple[int, Any, Any, float]] = {}
        """future -> (item index, item, the job's extra, when its item was first submitted)."""
        self.lock = threading.Lock()
        self.retries: dict[int, Any] = {}
        """item index -> the task of its retry in flight (a retry thread's)."""
        self.retrying = 0
        self.wake = threading.Event()
        self.interrupted = False
        self.outcomes: list[tuple[int, Any, BaseException | None]] = []
        """What the retry threads ended with, for the cell's thread to take."""
        self.tries: dict[int, int] = {}
        self.expired: set[Any] = set()
        """Tasks cancelled for running past the policy's timeout."""
        self.completed = self.distributed.as_completed(loop=client.loop)

    def key(self, index: int) -> str:
        attempt = self.tries[index] = self.tries.get(index, 0) + 1
        again = f"-{attempt}" if attempt > 1 else ""
        return f"{self.prefix}{index}-{self.token}{again}"

    def run(self, jobs: Sequence[tuple[Any, ...]],
            arrived: Callable[[int, Any, Any, _Attempt], Any], results: list[Any], bar: Any,
            concurrency: int) -> dict[int, BaseException]:
        """Run ``jobs`` (item index, item, and what ``arrived`` needs) on the cluster;
        ``arrived`` turns each task that comes back into the item's result (or raises).

        Returns:
            The failures, by item index.
        """
        failed: dict[int, BaseException] = {}
        todo = iter(jobs)
        try:
            self._submit(todo, concurrency)
            # A retry thread ends its count and hands its outcome over at once (under the lock).
            while self.flight or self.retrying or self.outcomes:
                batch = self._arrivals()
                # A task cancelled for its timeout comes back from as_completed once more.
                came = [(future, *self.flight.pop(future)) for future in dict.fromkeys(batch)
                        if future in self.flight]
                if not failed and all(future.status == "finished" for future, *_ in came):
                    self._submit(todo, concurrency)
                for index, attempt, extra, item in self._outcomes(came):
                    try:
                        result = arrived(index, item, extra, attempt)
                    except Exception as err:  # raised after the tasks in flight come back
                        failed[index] = err
                        continue
                    if result is not _LATER:
                        results[index] = result
                        bar.update(1)
                with self.lock:
                    ended, self.outcomes = self.outcomes, []
                for index, result, error in ended:
                    if error is None:
                        results[index] = result
                        bar.update(1)
                    else:
                        failed[index] = error
                if not failed:
                    self._submit(todo, concurrency)
        except BaseException:
            self._cancel()
            raise
        return failed

    def _submit(self, todo: Iterator[tuple[Any, ...]], concurrency: int) -> None:
        room = concurrency - len(self.flight) - self.retrying
        batch = [job for _, job in zip(range(room), todo, strict=False)] if room > 0 else []
        if not batch:
            return
        keys = [self.key(job[0]) for job in batch]
        futures = self.client.map(self.task, [job[1] for job in batch], key=keys, pure=False)
        now = time.perf_counter()
        for future, (index, item, *extra) in zip(futures, batch, strict=True):
            self.flight[future] = (index, item, extra[0] if extra else None, now)
        self.completed.update(futures)

    def _arrivals(self) -> list[Any]:
        """The tasks that came back: at least one, unless a retry thread ended or a task ran
        past its timeout (then it is cancelled and comes back as an ActivityTimeout)."""
        if self.flight and not self.retrying and not self.outcomes and self.timeout is None:
            return list(self.completed.next_batch(block=True))
        while True:
            batch = list(self.completed.next_batch(block=False))
            late = self._late()
            if batch or late or self.wake.is_set():
                self.wake.clear()
                return batch + late
            self.wake.wait(0.02)

    def _late(self) -> list[Any]:
        if self.timeout is None:
            return []
        now = time.perf_counter()
        late = [f for f, (*_, submitted) in self.flight.items()
                if now - submitted > self.timeout]
        if late:
            self.expired.update(late)
            self.client.cancel(late)
        return late

    def _outcomes(self, came: list[tuple[Any, ...]],
                  ) -> Iterator[tuple[int, _Attempt, Any, Any]]:
        """Each task that came back as an attempt: the finished ones' results gathered in one
        request, the failures with their remote traceback."""
        finished = [future for future, *_ in came if future.status == "finished"]
        values = dict(zip(finished, self.client.gather(finished), strict=True)) if finished \
            else {}
        for future, index, item, extra, submitted in came:
            attempt = _Attempt(self, index, submitted)
            if future in values:
                attempt.value = values[future]
            elif future in self.expired:
                self.expired.discard(future)
                attempt.error = ActivityTimeout(self.callee, self.timeout or 0.0)
            else:
                attempt.error = _failure(future)
            future.release()
            yield index, attempt, extra, item

    def retry(self, index: int, live: Callable[[], Any]) -> Any:
        """Make ``live`` (the item's call under its policy) in a thread of its own; its
        outcome is taken by the cell's thread. Returns :data:`_LATER`."""
        def attempt() -> None:
            try:
                outcome: tuple[int, Any, BaseException | None] = (index, live(), None)
            except BaseException as err:  # the map raises it, once every item came back
                outcome = (index, None, err)
            with self.lock:
                self.retrying -= 1
                self.outcomes.append(outcome)
                leftover = self.retries.pop(index, None)
            if leftover is not None:  # an attempt the policy's timeout gave up on
                leftover.cancel()
            self.wake.set()

        with self.lock:
            self.retrying += 1
        threading.Thread(target=contextvars.copy_context().run, args=(attempt,),
                         name=f"km.map-retry-{index}", daemon=True).start()
        return _LATER

    def again(self, index: int, item: Any) -> Any:
        """One more attempt of item ``index``, as a new task (from its retry thread)."""
        with self.lock:  # against _cancel: a task submitted after it would never be cancelled
            if self.interrupted:
                raise KeyboardInterrupt("km.map was interrupted")
            future = self.client.submit(self.task, item, key=self.key(index), pure=False)
            previous, self.retries[index] = self.retries.get(index), future
        if previous is not None:
            previous.cancel()
        self.distributed.wait([future])
        if future.status == "finished":
            return future.result()
        if self.interrupted:  # not a failure of the item: nothing is journaled for it
            raise KeyboardInterrupt("km.map was interrupted")
        raise _failure(future)

    def _cancel(self) -> None:
        """Ctrl-C, or a task that could not be sent: cancel every task still on the cluster."""
        with self.lock:
            self.interrupted = True
            futures = [*self.flight, *self.retries.values()]
        if not futures:
            return
        try:
            self.client.cancel(futures)
        except Exception as err:  # the cluster is gone: it forgets them with the client
            warnings.warn(f"km.map {self.callee}: {len(futures)} tasks could not be cancelled "
                          f"on the cluster ({type(err).__name__}: {err}); they may still "
                          "run there, and their results are not journaled.",
                          KittehWarning, stacklevel=2)


def _failure(future: Any) -> BaseException:
    """What a task that did not finish raised, with its traceback from the worker (the user's
    frames, not the client's), or its cancellation."""
    error: BaseException = future.exception()
    if future.status == "error":
        error = error.with_traceback(future.traceback())
    return error


def _in_process(client: Any) -> bool:
    """Whether the client's workers are threads of this process (``Client(processes=False)``)."""
    return str(getattr(client.scheduler, "address", "")).startswith("inproc://")


def _inside(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)`` as an activity's body: on an in-process worker thread, whatever context it
    carries, the calls ``fn`` makes are not journaled on their own (no nesting)."""
    token = INSIDE.set(True)
    try:
        return fn(item)
    finally:
        INSIDE.reset(token)
