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

The items run on threads of this kernel, or on the executor given as ``client=``: any
``concurrent.futures.Executor`` (a process pool for CPU-bound work), and with the team store a
``dask.distributed.Client`` (DESIGN §9). There the function runs wherever the executor puts it,
and its result is journaled here, in the kernel, as it arrives.
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
from .current import INSIDE, STEP

T = TypeVar("T")
R = TypeVar("R")


def map(fn: Callable[[T], R], items: Iterable[T], /, *, concurrency: int = 8,
        client: Any = None) -> list[R]:
    """``[fn(item) for item in items]``, computed ``concurrency`` items at a time.

    Args:
        fn: called once per item, with the item as its only argument.
        items: any iterable; it is read once, up front.
        concurrency: how many items are in flight at once (threads of this kernel, or tasks
            given to ``client`` at once).
        client: None for threads of this kernel, or an executor with ``submit(fn, item)``
            returning a future (``concurrent.futures.Executor``; a ``dask.distributed.Client``
            fits the same shape).

    Returns:
        The results, in item order.

    Raises:
        TypeError: ``fn`` is not callable, or ``client`` has no ``submit``.
        ValueError: ``concurrency`` is not a positive int.
        Exception: the first failing item's exception (by item order), after its retries, once
            the items in flight have finished and been journaled; items not yet started are
            not started. The failed items run again when the cell does; the others come
            from the journal.

    The idea is a durable fan-out: Temporal workflows start activities in parallel and record
    each result in the workflow's history as it completes; ``Executor.map`` and Dask's
    ``client.map`` give the shape of the call.
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
    via = None if client is None else _Remote(client, fn)
    step = STEP.get()
    if step is None or INSIDE.get() or not getattr(step, "active", False) or not work:
        return _plain(fn, via, work, concurrency)
    return _durable(step, fn, via, work, concurrency)


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


def _plain(fn: Callable[..., Any], via: Any, work: list[Any], concurrency: int) -> list[Any]:
    if not work:
        return []
    call = fn if via is None else via
    results: list[Any] = [None] * len(work)
    with _progress(len(work), fn) as bar:
        failed = _run([(i, functools.partial(call, item)) for i, item in enumerate(work)],
                      results, concurrency, bar)
    if failed:
        raise failed[min(failed)]
    return results


def _durable(step: Any, fn: Callable[..., Any], via: Any, work: list[Any],
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
            jobs = [(i, functools.partial(step.live, fn, verdict, call, (item,), {}, via))
                    for i, item, call in pending]
            failed.update(_run(jobs, results, concurrency, bar))
    elif answered:
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
