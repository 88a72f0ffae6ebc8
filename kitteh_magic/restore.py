"""``%durable restore``: bring every finished step's outputs back without running any cell."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DamagedRecordError
from .status import HOST, count, human_seconds, human_size
from .steps import analysis, imports, outputs
from .steps.records import StepPointer

if TYPE_CHECKING:
    from .steps.engine import Engine

_PROGRESS_BYTES = 256 * 2**20
"""Show a progress bar when a restore has more than this much to load."""


@dataclass
class RestoreReport:
    """What a restore did, in which session."""

    session: str = ""
    steps: int = 0
    names: int = 0
    size: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        """What was restored, from which session, or that there was nothing to restore.

        >>> str(RestoreReport("a.ipynb"))
        "session 'a.ipynb' has no finished steps: nothing was restored"
        >>> str(RestoreReport("a.ipynb", steps=1, names=2, size=2048, seconds=0.5))
        "restored 1 step of session 'a.ipynb' (2 names, 2.0 KB) in 500 ms"
        """
        if not self.steps and not self.problems:
            text = f"session {self.session!r} has no finished steps: nothing was restored"
        else:
            text = (f"restored {count(self.steps, 'step')} of session {self.session!r} "
                    f"({count(self.names, 'name')}, {human_size(self.size)}) "
                    f"in {human_seconds(self.seconds)}")
        return "\n".join([text, *("  " + p for p in self.problems)])


def restore(engine: Engine, progress: bool = True, session: str | None = None) -> RestoreReport:
    """Apply the outputs of a session's finished steps, in session order.

    A step whose record is damaged or incomplete is reported and skipped (its other outputs
    are still restored); nothing is executed. Each restored step's pointer then names this
    kernel, so status says its values are loaded.

    Args:
        engine: the kernel's engine.
        progress: show a progress bar when more than 256 MiB are loaded.
        session: the session whose steps to restore; default the engine's.
    """
    session = session or engine.session
    report = RestoreReport(session)
    started = time.perf_counter()
    plan = []
    for ptr in engine.catalog.steps(session):
        if ptr.state != "done" or not ptr.key:
            continue
        try:
            record = engine.catalog.record(ptr.key)
        except DamagedRecordError as err:
            report.problems.append(f"{ptr.step}: {err}")
            continue
        if record is not None:
            plan.append(record)
    total = sum(r.size for r in plan)
    bar: Any = None
    if progress and total > _PROGRESS_BYTES:
        bar = _progress_bar(total)
    for record in plan:
        restored = 0
        imports.replay([*analysis.analyse_source(record.code).imports, *record.imports],
                       engine.warn, record.step)
        loader = outputs.Loader(engine)  # one per step: it resolves references to earlier ones
        sizes: dict[str, int] = {}
        for name, entry in record.outputs.items():
            if entry.get("ref") is None:
                report.problems.append(f"{record.step}: {name!r} ({entry['type']}) was not "
                                       "saved; run the step to recreate it")
                continue
            try:
                value = loader.value(entry)
            except DamagedRecordError as err:
                report.problems.append(f"{record.step}: {name!r}: {err}")
                continue
            engine.namespace[name] = value
            outputs.note_restored(engine, name, entry, value)
            restored += 1
            sizes[entry["ref"]["digest"]] = entry.get("size", 0)
        report.size += sum(sizes.values())
        if bar is not None:
            bar.update(sum(sizes.values()))
        for name in record.deleted:
            engine.namespace.pop(name, None)
        report.names += restored
        report.steps += 1
        _loaded_here(engine, session, record.step, report)
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _progress_bar(total: int) -> Any:
    """A widget bar in a kernel with ipywidgets, else tqdm's text bar (tqdm's own choice,
    ``tqdm.auto``, warns "IProgress not found" in a kernel without ipywidgets)."""
    if "ipykernel" in sys.modules and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc="restoring")


def _loaded_here(engine: Engine, session: str, step: str, report: RestoreReport) -> None:
    """Note in the step's pointer that this kernel holds its values now (status: loaded)."""
    def here(ptr: StepPointer | None) -> StepPointer | None:
        if ptr is not None:
            ptr.pid, ptr.host, ptr.proc_start = os.getpid(), HOST, engine._proc_start
        return ptr

    try:
        engine.catalog.update_pointer(session, step, here)
    except Exception as err:  # the values are restored; only the status lags
        report.problems.append(f"{step}: restored, but its status could not say so "
                               f"({type(err).__name__}: {err})")
