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
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .classify import classify
from .cluster import Cluster, is_dask, journaled_on, taken
from .current import INSIDE, STEP

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
    dask = client if is_dask(client) else None
    via = None if client is None or dask is not None else _Remote(client, fn)
    step = STEP.get()
    if step is None or INSIDE.get() or not getattr(step, "active", False):
        return _plain(fn, via, dask, work, concurrency)
    return _durable(step, fn, via, dask, work, concurrency)


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
            failed = Cluster(dask, fn, None).run(list(enumerate(work)), taken, results, bar,
                                                   concurrency)
        else:
            call = fn if via is None else via
            failed = _run([(i, functools.partial(call, item)) for i, item in enumerate(work)],
                          results, concurrency, bar)
    if failed:
        raise failed[min(failed)]
    return results


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
                failed.update(journaled_on(dask, step, fn, verdict, pending, results, bar,
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
