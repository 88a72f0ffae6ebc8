"""One run of a durable step: replay its record, or execute it and save what it produced."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import faults
from ..errors import (
    DamagedRecordError,
    DamagedStoreWarning,
    InternalWarning,
    StepBusyError,
    StoreError,
    StoreUnavailableWarning,
    StoreWriteWarning,
    UnpicklableError,
    UnpicklableWarning,
)
from ..status import HOST
from . import analysis, capture, imports, keys, mark, observe, outputs, tracebacks
from .fingerprint import type_name
from .lease import HEARTBEAT, SKEW, Lease, Party, WaitNotice, acquire, kernel_id
from .records import OutputEntry, StepPointer, StepRecord, ValueRef, record_key

if TYPE_CHECKING:
    from ..activities.dispatch import StepActivities
    from .engine import Engine


def run_step(engine: Engine, spec: StepSpec, execute: Callable[[], Any]) -> Any:
    """Replay the step if its record exists, else execute it and save what it produced.

    Returns the value of the cell's last expression (executed or replayed).
    """
    run = StepRun(engine, spec)
    if run.replay():
        return run.value
    with run:
        run.value = execute()
    return run.value


@dataclass
class StepSpec:
    """What the user asked for: one cell to run as a durable step."""

    source: str
    """The cell body after IPython's input transformation (plain Python)."""
    name: str | None = None
    cell_id: str | None = None
    mode: str = "durable"
    force: bool = False
    session: str | None = None
    """Run in this session instead of the engine's (``--session``)."""
    retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None
    """Default retry policy of the step's activities (``--retries/--backoff/--timeout``)."""
    wait: float | None = None
    """Seconds to wait at most for another kernel running the step (``--wait``); None: as
    long as it runs it."""


class StepRun:
    """One run of a step: ``replay()``, else ``with run: <body>`` executes and saves it.

    The split lets the ``%%durable`` magic and the ``%durable on`` transformer share it: the
    transformer generates ``if not run.replay(): with run: ...`` around the cell body.
    """

    def __init__(self, engine: Engine, spec: StepSpec) -> None:
        self.engine = engine
        self.spec = spec
        self.value: Any = None
        self.key: str | None = None
        self.name = spec.name or ""
        engine.follow_binding()  # the notebook may have been renamed: a stat
        self.session = spec.session or engine.session
        self._facts: analysis.CellAnalysis | None = None
        self._inputs: dict[str, str] = {}
        self._reached: set[str] = set()
        """Globals the step's notebook functions read (and so may mutate): watched too."""
        self._capture: capture.Capture | None = None
        self._before: dict[str, int] = {}
        self._observation: observe.Observation | None = None
        self._known: dict[int, tuple[object, str, str, str]] = {}
        self._modules: set[str] = set()
        self._started = 0.0
        self._activities: StepActivities | None = None
        self._activities_token: object = None
        self._execution = ""
        """The id of this run's execution (the pointer keeps it until the step finishes)."""
        self._seen_revision = 0
        """The revision of this key's record the step's pointer had seen when the run began."""
        self._lease: Lease | None = None
        """The step's lease while this run holds it (taken by ``replay``, released on exit)."""
        self._began = 0.0
        """When the run began (``perf_counter``): a replay's own time counts from there."""

    # lookup and replay ------------------------------------------------------------------------
    def replay(self) -> bool:
        """Compute the step's key and restore its record if there is one. True when replayed.

        Without a record to replay, the step's lease is taken (``lease.py``; a replay never
        touches it): while another kernel runs the step, this one waits, then replays the
        record that kernel left, or executes the step if it left none.

        Raises:
            StepBusyError: ``--wait`` ran out while another kernel ran the step.
            KeyboardInterrupt: interrupted while waiting for it.
        """
        self._began = time.perf_counter()
        try:
            return self._lookup()
        except BaseException as exc:
            tracebacks.user_frames(exc)
            raise

    def _lookup(self) -> bool:
        looked_up = time.time()
        if self._guarded(self._find_record):
            return True
        if self.key is None:
            return False
        again = self._take_lease(looked_up)
        if self._lease is None:
            return False
        try:
            faults.point("lease-taken")
            # Another kernel ran the step since the lookup: replay the record it left.
            if again and self._guarded(self._replay_record):
                self._release_lease()
                return True
        except BaseException:
            self._release_lease()
            raise
        return False

    def _guarded(self, lookup: Callable[[], bool]) -> bool:
        """``lookup()``; a damaged record is healed and a failure leaves a plain cell (False)."""
        engine = self.engine
        try:
            return lookup()
        except DamagedRecordError as err:
            engine.warn(DamagedStoreWarning, f"step {self.name!r}: {err}; it will run again and "
                        "its record will be rewritten.")
            self._heal()
        except StoreError as err:  # the store cannot be opened or reached: said as it is
            self.key = None
            engine.warn(StoreUnavailableWarning, f"step {self.name!r} runs as a plain cell: "
                        f"{err}")
        except Exception as err:  # never let the cache break the cell
            self.key = None
            engine.warn(InternalWarning, f"kitteh_magic could not look up step {self.name!r} "
                        f"({type(err).__name__}: {err}); it runs as a plain cell.")
        return False

    def _find_record(self) -> bool:
        engine = self.engine
        facts = self._facts = analysis.analyse_source(self.spec.source)
        self.name = self.spec.name or _default_name(self.spec.cell_id or engine.cell_id,
                                                    facts.normalized)
        self._inputs = engine.inputs(facts, self._reached)
        self.key = keys.step_key(self.session, facts.normalized, self._inputs)
        return self._replay_record()

    def _replay_record(self) -> bool:
        assert self.key is not None
        if self.spec.force:
            return False
        record = self.engine.catalog.record(self.key)
        if record is None:
            return False
        self._check_revision(record)
        if not record.complete:
            return False
        replayed = self._restore(record)
        self._report_damage()
        return replayed

    def _take_lease(self, looked_up: float) -> bool:
        """Take the step's lease before executing it, waiting while another kernel holds it.

        A store that fails here is a warning, and the step runs without the lease (as it did
        before leases existed).

        Returns:
            Whether another kernel may have recorded the step since ``looked_up``: it held the
            lease meanwhile, or released it after that (give or take clock skew).
        """
        engine = self.engine
        me = Party(pid=os.getpid(), host=HOST, proc_start=engine._proc_start,
                   kernel=kernel_id(), key=self.key or "")
        lease = Lease(engine.store, self.session, self.name, me, self._lease_trouble)
        try:
            taken = acquire(lease, wait=self.spec.wait,
                            notice=WaitNotice(engine.display_pub, self.name))
        except StepBusyError:
            raise
        except Exception as err:
            engine.warn(StoreWriteWarning, f"step {self.name!r}: its lease could not be taken "
                        f"({type(err).__name__}: {err}); it runs without it, so a kernel "
                        "running it at the same time would run it too.")
            return False
        finally:
            engine.catalog.damaged.extend(lease.damaged)  # reported with the run's damage
        self._lease = lease
        lease.hold()
        return taken.holder is not None or taken.released >= looked_up - SKEW

    def _lease_trouble(self, text: str) -> None:
        self.engine.warn(StoreWriteWarning, f"step {self.name!r}: {text}.")

    def _release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            lease.release()
        except Exception as err:
            self.engine.warn(StoreWriteWarning, f"step {self.name!r}: its lease could not be "
                             f"released ({type(err).__name__}: {err}); this kernel tries again "
                             f"every {HEARTBEAT:.0f} s, and kernels waiting for it wait until "
                             "then.")

    def _check_revision(self, record: StepRecord) -> None:
        """Refuse a record older than the one this step last saw under its key (written back).

        Raises:
            DamagedRecordError: the record was rolled back; it is dropped.
        """
        ptr = self.engine.catalog.pointer(self.session, self.name)
        if ptr is not None and ptr.key == record.key and record.revision < ptr.revision:
            self.engine.store.delete(record_key(record.key))
            raise DamagedRecordError(record_key(record.key), "rollback",
                                     f"revision {record.revision} is older than revision "
                                     f"{ptr.revision}, which this step last saw")

    def _report_damage(self) -> None:
        """Warn about the damaged metadata this run met (its pointer, its session): the run
        rewrites them, so they heal."""
        for err in self.engine.take_damaged():
            self.engine.warn(DamagedStoreWarning, f"step {self.name!r}: {err}; this run "
                             "rewrites it.")

    def _heal(self) -> None:
        """Drop every damaged value of the record, so that one recompute rewrites them all."""
        if self.key is None:
            return
        try:
            self.engine.store.heal(self.engine.catalog.record_digests(self.key))
        except Exception as err:
            self.engine.warn(InternalWarning, f"step {self.name!r}: its damaged values could "
                             f"not all be checked ({type(err).__name__}: {err}); another "
                             "recompute may be needed.")

    def _restore(self, record: StepRecord) -> bool:
        engine, store = self.engine, self.engine.store
        started = time.perf_counter()
        assert self._facts is not None
        imports.replay([*self._facts.imports, *record.imports], engine.warn, self.name)
        # Load everything before touching the namespace, so a damaged value leaves it untouched.
        loader = outputs.Loader(engine)
        values = {name: loader.value(entry) for name, entry in record.outputs.items()}
        value = loader.value(record.value) if record.value else None
        events = store.get_value(record.events) if record.events else []
        for name in record.deleted:
            engine.namespace.pop(name, None)
        engine.namespace.update(values)
        for name, entry in record.outputs.items():
            outputs.note_restored(engine, name, entry, values[name])
        self.value = value
        capture.replay(events, engine.display_pub)  # type: ignore[arg-type]
        # The replay's own time: from the step's lookup (fingerprints, reading the record, any
        # wait for another kernel) to its last output, imports it made again included.
        elapsed = time.perf_counter() - (self._began or started)
        saved = max(record.duration - elapsed, 0.0)

        def replayed(ptr: StepPointer | None) -> StepPointer:
            ptr = ptr or self._new_pointer()
            ptr.state, ptr.last, ptr.key = "done", "replayed", record.key
            ptr.replays += 1
            ptr.saved += saved
            ptr.pid, ptr.host, ptr.proc_start = os.getpid(), HOST, engine._proc_start
            ptr.duration, ptr.size, ptr.activities = record.duration, record.size, record.activities
            ptr.inputs, ptr.finished, ptr.error = dict(record.inputs), time.time(), None
            ptr.outputs = {n: e["token"] for n, e in record.outputs.items()}
            ptr.revision = record.revision
            if record.key not in ptr.keys:
                ptr.keys.append(record.key)
            ptr.cell_id = self.spec.cell_id or engine.cell_id or ptr.cell_id
            return ptr

        engine.catalog.update_pointer(self.session, self.name, replayed)
        self._tell(mark.Mark(step=self.name, session=self.session, state="replayed",
                             duration=record.duration, elapsed=elapsed, saved=saved,
                             activities=record.activities, resumed=0))
        store.verify_in_background(self._damaged_after_restore)
        return True

    def _damaged_after_restore(self, digest: str, err: DamagedRecordError) -> None:
        """A value this replay restored failed its background check (on the checker's thread)."""
        self.engine.warn(DamagedStoreWarning, f"step {self.name!r}: a value it restored "
                         f"failed its background check ({err}); the copy in the kernel may "
                         "be wrong. The step is invalidated: run it again.")
        try:
            self.engine.catalog.invalidate(self.session, self.name)
        except Exception as again:  # on a background thread: tell, never raise
            self.engine.warn(InternalWarning, f"step {self.name!r} could not be invalidated "
                             f"({type(again).__name__}: {again}); run it with --force.")

    # execution ---------------------------------------------------------------------------------
    def __enter__(self) -> StepRun:
        try:
            return self._enter()
        except BaseException as exc:
            self._release_lease()  # no __exit__ follows a failed __enter__
            tracebacks.user_frames(exc)
            raise

    def _enter(self) -> StepRun:
        engine = self.engine
        # Identities only: filtering hidden names here would cost a check per namespace name per
        # cell; the few names that changed are filtered after.
        self._before = {k: id(v) for k, v in engine.namespace.items()}
        self._modules = set(sys.modules)
        self._observe()
        self._started = time.time()
        if self.key is not None:
            try:
                self._mark_running()
            except Exception as err:
                self.key = None
                engine.warn(StoreWriteWarning, f"step {self.name!r} will not be saved: the store "
                            f"could not be written ({type(err).__name__}: {err}).")
        if self.key is not None and self.spec.mode == "durable":
            self._start_journal()
        self._capture = capture.Capture(engine.display_pub, capture.inline_figure_flusher())
        self._capture.__enter__()
        return self

    def _observe(self) -> None:
        """Take the state of what the step could change (see ``observe.py``)."""
        engine, facts = self.engine, self._facts
        if self.key is None or facts is None:
            return
        inputs = self._inputs

        def known(name: str, value: object) -> str | None:
            fp = inputs.get(name, "")
            if fp.startswith("v:"):
                return fp[2:]
            entry = engine.lineage.entry(name, value)
            return entry.content if entry is not None else None

        self._known = outputs.known_objects(engine)
        names = facts.reads | facts.mutates | facts.global_writes | self._reached
        others = [n for n in engine.namespace if not engine.hidden(n)]
        try:
            self._observation = observe.Observation(engine.namespace, names, others, known)
        except Exception as err:  # the step still runs; code shape alone decides its outputs
            engine.warn(InternalWarning, f"step {self.name!r}: kitteh_magic could not observe "
                        f"its inputs ({type(err).__name__}: {err}); only the changes its code "
                        "shows are saved.")

    def _start_journal(self) -> None:
        from ..activities.dispatch import StepActivities
        from ..activities.journal import Journal
        from ..activities.policy import RetryPolicy

        spec, engine = self.spec, self.engine
        try:
            assert self.key is not None
            journal = Journal(engine.store, self.session, self.name, engine.namespace,
                              version=self.key, execution=self._execution)
            if spec.force:
                journal.restart(self.key, self._execution)
        except Exception as err:
            engine.warn(StoreWriteWarning, f"step {self.name!r}: its activities will not be "
                        f"journaled ({type(err).__name__}: {err}).")
            return
        defaults = None
        if (spec.retries, spec.backoff, spec.timeout) != (None, None, None):
            defaults = RetryPolicy(retries=spec.retries or 0,
                                   backoff=1.0 if spec.backoff is None else spec.backoff,
                                   timeout=spec.timeout)
        self._activities = StepActivities(journal, defaults, engine.warn)
        self._activities_token = self._activities.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            tracebacks.user_frames(exc)  # what leaves the cell shows the user's frames only
        try:
            self._finish(exc_type, exc, tb)
        except BaseException as err:
            tracebacks.user_frames(err)
            raise
        finally:
            self._known, self._observation = {}, None  # release the objects they held
            self._release_lease()  # after the record: a waiting kernel replays it
            self._report_damage()

    def _finish(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                tb: TracebackType | None) -> None:
        engine = self.engine
        assert self._capture is not None
        self._capture.__exit__(exc_type, exc, tb)
        activities = self._activities
        if activities is not None:
            activities.deactivate(self._activities_token)
            try:
                if exc is not None:
                    activities.ended_by(exc)
                activities.journal.note_run(activities.from_journal)
            except Exception as err:
                engine.warn(InternalWarning, f"step {self.name!r}: the journal could not "
                            f"record how it ended ({type(err).__name__}: {err}).")
        if self.key is None or exc is not None:
            # Not saved: what it changed must not keep the lineage tokens of its old content.
            engine.note_plain_cell(self.spec.source)
        if self.key is None:
            return
        duration = time.time() - self._started
        saved = activities.saved if activities is not None else 0.0
        try:
            if exc is None:
                self._save(duration, saved)
            else:
                self._mark_failed(exc, duration, saved)
        except KeyboardInterrupt:
            # Ctrl-C while a large value was being written: nothing half-written is visible
            # (blobs are renamed into place), the step is marked as not saved, and the
            # interrupt still stops a Run All, without a traceback from our internals.
            engine.note_plain_cell(self.spec.source)
            try:
                self._mark_unsaved("saving was interrupted", saved)
            except Exception as again:
                engine.warn(InternalWarning, f"step {self.name!r}: its state could not be "
                            f"marked unsaved ({type(again).__name__}: {again}).")
            raise KeyboardInterrupt(f"saving step {self.name!r} was interrupted: its body ran, "
                                    "its outputs are in the kernel, and it runs again next "
                                    "time") from None
        except Exception as err:
            problem = f"could not be saved ({type(err).__name__}: {err})"
            engine.warn(StoreWriteWarning, f"step {self.name!r} ran but {problem}; it will "
                        "run again next time.")
            engine.note_plain_cell(self.spec.source)
            try:
                self._mark_unsaved(problem, saved)
            except Exception as again:
                engine.warn(InternalWarning, f"step {self.name!r}: its state could not be "
                            f"marked unsaved ({type(again).__name__}: {again}).")
        self._tell(mark.Mark(
            step=self.name, session=self.session, state=mark.state_of(exc), duration=duration,
            elapsed=duration, saved=saved,
            activities=activities.count if activities is not None else 0,
            resumed=len(activities.from_journal) if activities is not None else 0))

    def _tell(self, what: mark.Mark) -> None:
        """Publish the step's mark; a failure to is a warning (the step itself is done)."""
        try:
            mark.publish(self.engine.display_pub, what)
        except Exception as err:
            self.engine.warn(InternalWarning, f"step {self.name!r}: the frontend could not be "
                             f"told how it ended ({type(err).__name__}: {err}); its badge "
                             "follows at the next status poll.")

    def _new_pointer(self) -> StepPointer:
        engine = self.engine
        seq = engine.catalog.claim_seq(self.session, engine.notebook)
        return StepPointer(session=self.session, step=self.name, seq=seq)

    def _mark_running(self) -> None:
        engine = self.engine
        existing = engine.catalog.pointer(self.session, self.name)
        fresh = None if existing else self._new_pointer()

        def running(ptr: StepPointer | None) -> StepPointer:
            ptr = ptr or fresh or self._new_pointer()
            # One execution per step version: the unfinished one resumes (its journal), any
            # other version or a forced run starts a new one (journal.py).
            if not ptr.execution or ptr.execution_version != self.key or self.spec.force:
                ptr.execution, ptr.execution_version = secrets.token_hex(16), self.key or ""
            self._execution = ptr.execution
            self._seen_revision = ptr.revision if ptr.key == self.key else 0
            ptr.state, ptr.started, ptr.error = "running", self._started, None
            ptr.pid, ptr.host, ptr.proc_start = os.getpid(), HOST, engine._proc_start
            ptr.cell_id = self.spec.cell_id or engine.cell_id or ptr.cell_id
            return ptr

        engine.catalog.update_pointer(self.session, self.name, running)

    def _mark_unsaved(self, problem: str, saved: float) -> None:
        def unsaved(ptr: StepPointer | None) -> StepPointer:
            ptr = ptr or self._new_pointer()
            ptr.state, ptr.last, ptr.error = "invalidated", "executed", problem
            ptr.runs += 1
            ptr.saved += saved
            ptr.finished = time.time()
            return ptr

        self.engine.catalog.update_pointer(self.session, self.name, unsaved)

    def _mark_failed(self, exc: BaseException, duration: float, saved: float) -> None:
        """Ctrl-C (``KeyboardInterrupt``) is "interrupted", anything else "failed"."""
        def failed(ptr: StepPointer | None) -> StepPointer:
            ptr = ptr or self._new_pointer()
            ptr.state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            ptr.last, ptr.duration = "executed", duration
            ptr.runs += 1
            ptr.saved += saved
            ptr.activities = self._activities.count if self._activities else 0
            ptr.finished, ptr.error = time.time(), f"{type(exc).__name__}: {exc}"
            return ptr

        self.engine.catalog.update_pointer(self.session, self.name, failed)

    def _outputs(self) -> tuple[list[str], list[str], set[int], dict[str, str]]:
        """Names the step bound or changed, names it deleted, objects changed in place, states.

        Returns:
            Output names, deleted names, the ids of the objects the step changed in place
            (observed, or shown by the code), and fingerprints after the step.
        """
        engine, facts = self.engine, self._facts
        assert facts is not None
        ns = engine.namespace
        rebound = {k for k, v in ns.items() if self._before.get(k) != id(v)}
        mutated: set[str] = set(facts.mutates)
        changed_ids: set[int] = set()
        after: dict[str, str] = {}
        if self._observation is not None:
            observed, changed_ids, after = self._observation.changed()
            mutated |= observed
        touched = (facts.binds | mutated | facts.global_writes) & ns.keys()
        bound = sorted(n for n in rebound | touched
                       if not engine.hidden(n) and not outputs.is_closed_resource(ns[n]))
        deleted = sorted(k for k in self._before if k not in ns and not engine.hidden(k))
        changed_ids.update(id(ns[n]) for n in mutated & ns.keys())
        return bound, deleted, changed_ids, after

    def _unpicklable(self, unsaved: dict[str, str]) -> Callable[[str, object,
                                                                  UnpicklableError], None]:
        def warn(name: str, value: object, err: UnpicklableError) -> None:
            unsaved[name] = err.type_name
            if name == outputs.VALUE_MEMBER:
                return  # the value is shown again by re-running; no name is lost
            self.engine.warn(UnpicklableWarning, (
                f"step {self.name!r}: cannot save {name!r} ({type_name(value)}): {err.cause}. "
                "The step will run again when replayed; %durable restore brings back its "
                "other outputs."))
        return warn

    def _save(self, duration: float, time_saved: float) -> None:
        engine, key = self.engine, self.key
        assert key is not None and self._capture is not None
        bound, deleted, mutated, after = self._outputs()
        ns = engine.namespace
        unsaved: dict[str, str] = {}
        values = {name: ns[name] for name in bound}
        if self.value is not None:
            values[outputs.VALUE_MEMBER] = self.value
        ref, saved = outputs.save_group(engine, values, self._known, mutated,
                                        self._unpicklable(unsaved))
        self._known, self._observation = {}, None  # release the objects they held
        group: ValueRef | None = dict(ref) if ref is not None else None
        size = group["size"] if group is not None else 0

        def entry(name: str) -> dict[str, Any]:
            kept = group is not None and name in saved
            return OutputEntry(ref=group if kept else None, token=keys.value_token(key, name),
                               type=type_name(values[name]), size=size if kept else 0,
                               member=saved.get(name)).to_doc()

        entries = {name: entry(name) for name in bound}
        value = entry(outputs.VALUE_MEMBER) if self.value is not None else None
        try:
            events: ValueRef | None = dict(engine.store.put_value(self._capture.events))
        except UnpicklableError:
            events = None
        record = StepRecord(
            key=key, session=self.session, step=self.name, code=self.spec.source,
            mode=self.spec.mode, cell_id=self.spec.cell_id or engine.cell_id,
            inputs=self._inputs, outputs=entries, deleted=deleted, value=value, events=events,
            complete=not unsaved, unsaved=unsaved, started=self._started, finished=time.time(),
            duration=duration, size=size,
            imports=imports.loaded_since(self._modules, ns))
        record.revision = 1 + max(engine.catalog.revision(key), self._seen_revision)
        activities = self._activities
        if activities is not None:
            record.activities = activities.count
            record.resumed = len(activities.from_journal)
            record.journal = activities.log()
        engine.catalog.put_record(record)
        faults.point("record-written")
        # The journal is kept (a run after ``invalidate`` takes its calls from it): the
        # pointer keeps naming its execution.

        def done(ptr: StepPointer | None) -> StepPointer:
            ptr = ptr or self._new_pointer()
            ptr.state, ptr.last, ptr.key = "done", "executed", key
            ptr.runs += 1
            ptr.saved += time_saved
            ptr.duration, ptr.size, ptr.finished = duration, size, record.finished
            ptr.activities, ptr.resumed = record.activities, record.resumed
            ptr.inputs, ptr.error = dict(self._inputs), None
            ptr.outputs = {n: e["token"] for n, e in entries.items()}
            ptr.revision = record.revision
            if key not in ptr.keys:
                ptr.keys.append(key)
            return ptr

        engine.catalog.update_pointer(self.session, self.name, done)
        outputs.note_saved(engine, entries, after)


def _default_name(cell_id: str | None, normalized: str) -> str:
    """A step without a name is named by its cell, else by its code."""
    if cell_id:
        return f"cell-{cell_id[:8]}"
    return f"step-{keys.code_digest(normalized)[:8]}"
