"""``%durable restore``: bring every finished step's outputs back without running any cell."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DamagedRecordError
from .steps import analysis, imports, outputs

if TYPE_CHECKING:
    from .steps.engine import Engine

_PROGRESS_BYTES = 256 * 2**20
"""Show a progress bar when a restore has more than this much to load."""


@dataclass
class RestoreReport:
    """What a restore did."""

    steps: int = 0
    names: int = 0
    size: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        from .status import human_seconds, human_size

        text = (f"restored {self.steps} steps ({self.names} names, {human_size(self.size)}) "
                f"in {human_seconds(self.seconds)}")
        return "\n".join([text, *("  " + p for p in self.problems)])


def restore(engine: Engine, progress: bool = True) -> RestoreReport:
    """Apply the outputs of the session's finished steps, in session order.

    A step whose record is damaged or incomplete is reported and skipped (its other outputs
    are still restored); nothing is executed.
    """
    report = RestoreReport()
    started = time.perf_counter()
    plan = []
    for ptr in engine.catalog.steps(engine.session):
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
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc="restoring")
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
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report
