"""``km.map``: call a function on many items in parallel, each item a journaled activity.

The fan-out a notebook does against a paid API (a model asked a thousand questions) is a map.
In a durable step each item is an activity on a branch of its own, named by the map's place in
the step and the item's index (``map0[17]``), so its journaled result answers that item whatever
order the items finished in. A resumed map first takes every finished item from the journal, in
the cell's own thread and without a pool (10,000 items in well under a second), then runs the
rest ``concurrency`` at a time, each journaled the moment it finishes, with the retry policy of
the function's mark (``@km.activity(retries=3)``) or of the cell (``%%durable --retries``).

Outside a durable step (a plain cell, ``--mode step``, inside another activity) it is the same
parallel map without a journal.

Where the items run, by ``client=``:

* None: threads of this kernel, each taking the next item when it finishes one;
* any ``concurrent.futures.Executor`` (a process pool for CPU-bound work): a kernel thread per
  item in flight submits it and waits for its result;
* a ``dask.distributed.Client`` (DESIGN §9): its cluster, with no thread per item. The cell's
  thread keeps at most ``concurrency`` tasks there, takes them as they complete
  (``distributed.as_completed``, in batches: one ``gather`` per batch), submits the next ones
  and journals each result through ``step.live``, the task that came back standing for the
  call's first attempt. A task is ``fn`` and its item, nothing else: workers never see the
  step, the store or the signing key, and a notebook function's rewritten calls find no step
  there and are plain calls. Tasks are submitted with ``pure=False`` (an activity is not
  assumed deterministic: equal items each run) under readable keys,
  ``km.map-<fn>-<index>-<token>``. A failure the policy retries is retried from a kernel thread
  of its own (its backoff waits there, not in the loop that journals the others), each
  attempt a new task ``...-<attempt>``; a policy's timeout is the loop's to enforce, and it
  cancels the task. Ctrl-C cancels the tasks still on the cluster.

Results are always journaled here, in the kernel, as they arrive. The shape is Temporal's:
a workflow starts activities in parallel and records each result in its history as it
completes, and the worker that runs an activity gets its input, not the workflow's state;
Dask's ``as_completed`` is how results are taken from a cluster as they come.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import KittehWarning
from .classify import classify
from .current import INSIDE, STEP
from .policy import ActivityTimeout, RetryPolicy

T = TypeVar("T")
R = TypeVar("R")


def map(fn: Callable[[T], R], items: Iterable[T], /, *, concurrency: int = 8,
        client: Any = None) -> list[R]:
    """``[fn(item) for item in items]``, computed ``concurrency`` items at a time.

    >>> map(len, ["a", "bb", "ccc"], concurrency=2)
    [1, 2, 3]

    Args:
        fn: called once per item, with the item as its only argument.
        items: any iterable; it is read once, up front.
        concurrency: how many items are in flight at once (threads of this kernel, or tasks
            given to ``client`` at once).
        client: None for threads of this kernel; a ``dask.distributed.Client`` to run the items
            on its cluster (only ``fn`` and the item are sent; results are journaled here as
            they arrive); or any executor with ``submit(fn, item)`` returning a future
            (``concurrent.futures.Executor``).

    Returns:
        The results, in item order.

    Raises:
        TypeError: ``fn`` is not callable, or ``client`` has no ``submit``.
        ValueError: ``concurrency`` is not a positive int.
        Exception: the first failing item's exception (by item order), after its retries, once
            the items in flight have finished and been journaled; items not yet started are
            not started. The failed items run again when the cell does; the others come
            from the journal. On a cluster, a task that cannot be sent (``fn`` or an item
            cannot be pickled) raises at once, its pickling error.
        KeyboardInterrupt: Ctrl-C; the tasks still on a cluster are cancelled, and what was
            journaled stays for the next run.

    The idea is a durable fan-out: Temporal workflows start activities in parallel and record
    each result in the workflow's history as it completes; ``Executor.map`` and Dask's
    ``client.map`` give the shape of the call, Dask's ``as_completed`` the way results are
    taken on a cluster.
    """
    if not callable(fn):
        raise TypeError(f"km.map expects a function to call on each item, got "
                        f"{type(fn).__name__} {fn!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"km.map: concurrency must be a positive int (items in flight at "
                         f"once), got {concurrency!r}")
    if client is not None and not callable(getattr(client, "submit", None)):
        raise TypeError(f"km.map: client= takes an executor with a submit() method (a "
                        f"concurrent.futures.Executor or a dask.distributed.Client), got "
                        f"{type(client).__name__}")
    work = list(items)
    if not work:
        return []
    dask = client if _is_dask(client) else None
    via = None if client is None or dask is not None else _Remote(client, fn)
    step = STEP.get()
    if step is None or INSIDE.get() or not getattr(step, "active", False):
        return _plain(fn, via, dask, work, concurrency)
    return _durable(step, fn, via, dask, work, concurrency)


def _is_dask(client: Any) -> bool:
    """Whether ``client`` is a ``distributed.Client``. A client exists only once its module was
    imported, so this never imports distributed (kitteh_magic works without it)."""
    module = sys.modules.get("distributed")
    return module is not None and isinstance(client, module.Client)


class _Remote:
    """Calls ``fn(item)`` on another executor and waits for its result (in a kernel thread,
    which journals it)."""

    def __init__(self, client: Any, fn: Callable[..., Any]) -> None:
        self.client = client
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.client.submit(self.fn, *args).result()


def _progress(total: int, fn: Any, from_journal: int = 0) -> Any:
    """A tqdm bar on stderr (a notebook shows it as it updates), with the items the journal
    answered."""
    from tqdm.std import tqdm

    name = getattr(fn, "__name__", type(fn).__name__)
    bar = tqdm(total=total, initial=from_journal, desc=f"km.map {name}", unit="item",
               file=sys.stderr, disable=False, mininterval=0.2, dynamic_ncols=False)
    if from_journal:
        bar.set_postfix_str(f"{from_journal} from journal", refresh=False)
    return bar


def _plain(fn: Callable[..., Any], via: Any, dask: Any, work: list[Any],
           concurrency: int) -> list[Any]:
    results: list[Any] = [None] * len(work)
    with _progress(len(work), fn) as bar:
        if dask is not None:
            failed = _Cluster(dask, fn, None).run(list(enumerate(work)), _taken, results, bar,
                                                   concurrency)
        else:
            call = fn if via is None else via
            failed = _run([(i, functools.partial(call, item)) for i, item in enumerate(work)],
                          results, concurrency, bar)
    if failed:
        raise failed[min(failed)]
    return results


def _taken(index: int, item: Any, extra: Any, attempt: _Attempt) -> Any:
    """A plain map's item: what the cluster answered (a failure is raised)."""
    return attempt(item)


def _durable(step: Any, fn: Callable[..., Any], via: Any, dask: Any, work: list[Any],
             concurrency: int) -> list[Any]:
    verdict = classify(fn)
    if not verdict.activity:
        # A notebook function mapped is an activity per item: its result is what is journaled.
        verdict = dataclasses.replace(verdict, activity=True, route=None, reason="km.map item")
    # Named by the function and the items (a map started from an as_completed loop is found
    # again whatever the order); items that cannot be fingerprinted number it instead.
    prefix = step.branch().named("map", getattr(fn, "__name__", "fn"),
                                 step.digest((work,), {}))
    results: list[Any] = [None] * len(work)
    pending: list[tuple[int, Any, Any]] = []
    failed: dict[int, BaseException] = {}
    slots: dict[int, str] = {}
    answered = 0
    for i, item in enumerate(work):
        branch = step.new_branch(f"{prefix}[{i}]")
        call, entry = step.begin(fn, verdict, (item,), {}, branch)
        slots[i] = call.slot
        if entry is None or entry.state == "started":
            pending.append((i, item, call))
            continue
        answered += 1
        try:
            results[i] = step.replayed(fn, entry)
        except Exception as err:  # a journaled failure: raised after the other items ran
            failed[i] = err
    if pending:
        with _progress(len(work), fn, answered) as bar:
            if dask is not None:
                failed.update(_journaled_on(dask, step, fn, verdict, pending, results, bar,
                                            concurrency))
            else:
                jobs = [(i, functools.partial(step.live, fn, verdict, call, (item,), {}, via))
                        for i, item, call in pending]
                failed.update(_run(jobs, results, concurrency, bar))
    else:
        _progress(len(work), fn, answered).close()
    if failed:
        first = failed[min(failed)]
        # If it ends the cell, every failed item is made again next run, not only this one.
        step.failed_with([slots[i] for i in failed], first)
        raise first
    return results


def _run(jobs: Sequence[tuple[int, Callable[[], Any]]], results: list[Any], concurrency: int,
         bar: Any) -> dict[int, BaseException]:
    """Run ``jobs`` (item index, call) ``concurrency`` at a time on threads of this kernel,
    putting each result at its index. Threads take the next job when they finish one (no
    future per item: the hand-over costs more than a journaled call). After a failure, or
    Ctrl-C in the cell, no more jobs start and the running ones finish (and are journaled).

    Returns:
        The failures, by item index.
    """
    failed: dict[int, BaseException] = {}
    lock = threading.Lock()
    todo = iter(jobs)
    stop = threading.Event()
    done = [0]

    def work() -> None:
        while not stop.is_set():
            with lock:
                job = next(todo, None)
            if job is None:
                return
            index, call = job
            try:
                results[index] = call()
            except BaseException as err:  # the map raises it, after the running items end
                with lock:
                    failed[index] = err
                stop.set()
                continue
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work,),
                                name=f"km.map-{n}", daemon=True)
               for n in range(min(concurrency, len(jobs)))]
    for thread in threads:
        thread.start()
    shown = 0
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
                count = done[0]
                bar.update(count - shown)
                shown = count
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    bar.update(done[0] - shown)
    return failed


# -- a Dask cluster ------------------------------------------------------------------------------

def _journaled_on(client: Any, step: Any, fn: Callable[..., Any], verdict: Any,
                  pending: list[tuple[int, Any, Any]], results: list[Any], bar: Any,
                  concurrency: int) -> dict[int, BaseException]:
    """The durable map's live items on the cluster, each journaled through ``step.live`` as it
    arrives: the attempt that came back is the call's first attempt, and the policy (as
    ``step.live`` merges it) retries it with new tasks."""
    policy = (verdict.policy or RetryPolicy()).merged(step.defaults)
    cluster = _Cluster(client, fn, policy.timeout, verdict.callee)

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

    cluster: _Cluster
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


class _Cluster:
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
