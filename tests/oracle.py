"""The plain-run oracle: a durable run of some cells must agree with a plain run of the same cells.

Given a list of cells (some start with ``%%durable NAME``, the others are plain) and a list of
probe expressions, :func:`check`

1. runs the cells in a kernel without kitteh_magic, the ``%%durable NAME`` line stripped, and
   evaluates the probes: that is what the notebook means;
2. runs them in a kernel with kitteh_magic loaded: every probe, and each cell's stdout, last
   value and failure, must equal the plain run's;
3. restarts that kernel (a new process on the same store), loads kitteh_magic, runs every cell
   again: the durable cells must replay (marked as replayed, and no ``counter`` file they bump
   grows), and again every probe and every cell's outputs must equal the plain run's;
4. optionally, a kernel started afresh on the same store, as phase 3.

Every disagreement is collected, so one failure names all of them, phase by phase.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel import Kernel, Result, runs

_DURABLE = re.compile(r"%%durable[ \t]+([\w.-]+)")
_COUNTER = re.compile(r"runs-([\w-]+)\.txt")


def durable_name(cell: str) -> str | None:
    """The step name of a ``%%durable NAME`` cell, None for a plain cell."""
    match = _DURABLE.match(cell)
    return match.group(1) if match else None


def plain_source(cell: str) -> str:
    """The cell as a plain run executes it: without its ``%%durable`` line."""
    if durable_name(cell) is None:
        return cell
    return cell.split("\n", 1)[1] if "\n" in cell else ""


@dataclass(frozen=True)
class Outcome:
    """What one cell showed: the part a durable run must reproduce."""

    stdout: str
    value: str
    error: str | None

    @classmethod
    def of(cls, result: Result) -> Outcome:
        error = None
        if result.error:
            error = f"{result.error['ename']}: {result.error['evalue']}"
        return cls(result.stdout, result.text, error)


@dataclass
class Report:
    """What the oracle saw: the plain run's meaning and every disagreement with it."""

    expected: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def run_cells(kernel: Kernel, cells: Sequence[str], *, plain: bool) -> list[Result]:
    """Run the cells in order with stable cell ids (so steps keep their names across runs)."""
    return [kernel.run(plain_source(cell) if plain else cell, cell_id=f"oracle-cell-{i}")
            for i, cell in enumerate(cells)]


def probe(kernel: Kernel, expressions: Sequence[str]) -> dict[str, Any]:
    """Each probe's value (a literal), or the error it raised, as text."""
    values: dict[str, Any] = {}
    for expression in expressions:
        result = kernel.run(f"repr({expression})")
        if result.error:
            values[expression] = f"<{result.error['ename']}: {result.error['evalue']}>"
        else:  # the text/plain of a repr string: quoted once more
            values[expression] = ast.literal_eval(ast.literal_eval(result.text))
    return values


def _counted(cells: Sequence[str]) -> set[str]:
    """Counters bumped by the durable cells (a replay must not bump them)."""
    return {name for cell in cells if durable_name(cell)
            for name in _COUNTER.findall(plain_source(cell))}


def _compare(phase: str, cells: Sequence[str], expected: list[Outcome], results: list[Result],
             values: dict[str, Any], wanted: dict[str, Any], problems: list[str]) -> None:
    for i, (cell, want, result) in enumerate(zip(cells, expected, results, strict=True)):
        got = Outcome.of(result)
        label = durable_name(cell) or f"plain cell {i}"
        for part in ("error", "stdout", "value"):
            if getattr(got, part) != getattr(want, part):
                problems.append(f"{phase}: cell {label!r} {part} is {getattr(got, part)!r}, "
                                f"a plain run gives {getattr(want, part)!r}")
    for expression, value in wanted.items():
        if values[expression] != value:
            problems.append(f"{phase}: {expression} is {values[expression]!r}, "
                            f"a plain run gives {value!r}")


def check(start_kernel: Callable[..., Kernel], tmp_path: Path, cells: Sequence[str],
          probes: Sequence[str], *, replay: Sequence[str] | None = None,
          fresh: bool = False, failing: bool = False) -> Report:
    """Run the oracle on ``cells`` and raise AssertionError naming every disagreement.

    Args:
        start_kernel: the conftest fixture.
        tmp_path: the test's directory (where ``counter`` files are).
        cells: the notebook, in order.
        probes: expressions whose repr is a Python literal, evaluated after each run.
        replay: the steps that must replay after the restart; default every durable cell.
        fresh: also run phase 4, a kernel started afresh on the same store.
        failing: the plain run has failing cells (the durable runs must fail alike); then only
            the ``replay`` steps must replay and keep their bodies from running again.
    """
    report = Report()
    plain_kernel = start_kernel(load=False)
    plain_results = run_cells(plain_kernel, cells, plain=True)
    for i, result in enumerate(plain_results):
        assert failing or not result.error, f"the plain run fails in cell {i}: {result.error}"
    expected = [Outcome.of(r) for r in plain_results]
    report.expected = probe(plain_kernel, probes)

    durable = start_kernel()
    first = run_cells(durable, cells, plain=False)
    _compare("first durable run", cells, expected, first, probe(durable, probes),
             report.expected, report.problems)

    counted = _counted(cells)
    before = {name: runs(tmp_path, name) for name in counted}
    must_replay = set(replay) if replay is not None or failing else {
        name for cell in cells if (name := durable_name(cell))}

    def rerun(phase: str, kernel: Kernel) -> None:
        kernel.ok("%load_ext kitteh_magic")
        again = run_cells(kernel, cells, plain=False)
        for cell, result in zip(cells, again, strict=True):
            name = durable_name(cell)
            if name in must_replay and not result.replayed:
                report.problems.append(f"{phase}: step {name!r} did not replay"
                                       + (f" ({result.stderr.strip()})" if result.stderr else ""))
        _compare(phase, cells, expected, again, probe(kernel, probes), report.expected,
                 report.problems)
        ran = {name: runs(tmp_path, name) - before[name] for name in counted
               if runs(tmp_path, name) != before[name] and (name in must_replay or not failing)}
        if ran:
            report.problems.append(f"{phase}: step bodies ran again (counter: new runs) {ran}")

    durable.restart()
    rerun("after restart", durable)
    if fresh:
        rerun("fresh kernel", start_kernel(load=False))

    assert not report.problems, "durable run disagrees with the plain run:\n" + "\n".join(
        report.problems)
    return report
