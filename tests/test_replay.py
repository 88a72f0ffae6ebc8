"""Restart replay (DESIGN.md §4.1), restore and the magics, on real kernels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kernel import Kernel, runs

pytestmark = pytest.mark.kernel


def notebook(counter: Callable[[str], str]) -> list[tuple[str, str]]:
    """Three durable cells: a load with output, a transform with a figure, a summary value."""
    return [
        ("c-load", f"%%durable load\n{counter('load')}\n"
                   "import numpy as np\n"
                   "data = np.arange(1_000_000, dtype='float64')\n"
                   "print('loaded', data.size)\n"),
        ("c-plot", f"%%durable plot\n{counter('plot')}\n"
                   "import matplotlib.pyplot as plt\n"
                   "scaled = data * 2\n"
                   "plt.plot(scaled[:10])\n"
                   "plt.title('scaled')\n"),
        ("c-sum", f"%%durable summary\n{counter('summary')}\n"
                  "total = float(scaled.sum())\n"
                  "{'total': total, 'n': len(scaled)}\n"),
    ]


def run_all(kernel: Kernel, cells: list[tuple[str, str]]) -> list:
    return [kernel.ok(code, cell_id=cid) for cid, code in cells]


def test_restart_replays_every_step_without_running_it(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cells = notebook(counter)
    first = run_all(kernel, cells)
    assert "loaded 1000000" in first[0].stdout
    assert any("image/png" in d["data"] for d in first[1].displays)
    total = kernel.value("total")

    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    again = run_all(kernel, cells)

    assert [runs(tmp_path, n) for n in ("load", "plot", "summary")] == [1, 1, 1]
    assert all(r.replayed for r in again)
    assert "loaded 1000000" in again[0].stdout
    assert any("image/png" in d["data"] for d in again[1].displays)
    assert again[2].text == first[2].text
    assert kernel.value("total") == total
    assert kernel.value("float(scaled[3])") == 6.0
    assert kernel.value("bool((data * 2 == scaled).all())") is True


def test_restored_arrays_are_ordinary_writable_values(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = f"%%durable big\n{counter('big')}\nimport numpy as np\nbig = np.ones(40_000_000)\n"
    kernel.ok(cell)  # 320 MB: a blob file
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    again = kernel.ok(cell)
    assert again.replayed and runs(tmp_path, "big") == 1  # the array below is the restored one
    kernel.ok("big[0] = 5.0")
    assert kernel.value("float(big[:2].sum())") == 6.0
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    restored = kernel.ok("%durable restore")  # 320 MB: with a progress bar
    assert "Warning" not in restored.stderr, restored.stderr  # no "IProgress not found"
    assert kernel.value("float(big[:2].sum())") == 2.0  # the store was not written through


def test_restore_brings_back_outputs_in_order_without_running_cells(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    kernel.ok(f"%%durable a\n{counter('a')}\nx = 1\nlabel = 'first'\n")
    kernel.ok(f"%%durable b\n{counter('b')}\nx = x + 10\ndel label\n")
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    out = kernel.ok("%durable restore")
    assert "restored 2 steps" in out.stdout
    assert kernel.value("x") == 11
    assert kernel.value("'label' in globals()") is False
    assert (runs(tmp_path, "a"), runs(tmp_path, "b")) == (1, 1)


def test_status_json_reports_states_runs_and_time_saved(
        kernel: Kernel, counter: Callable[[str], str]) -> None:
    cell = f"%%durable slow\n{counter('slow')}\nimport time\ntime.sleep(0.3)\ny = 2\n"
    kernel.ok(cell)
    kernel.run("%%durable broken\nraise ValueError('nope')\n")
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok(cell)
    status = json.loads(kernel.ok("%durable status --json").stdout)
    rows = {row["step"]: row for row in status["steps"]}
    assert rows["slow"]["state"] == "replayed"
    assert (rows["slow"]["runs"], rows["slow"]["replays"]) == (1, 1)
    # The 0.3 s run minus the replay's own time; a replay on a busy machine took 56 ms.
    assert 0.15 <= rows["slow"]["saved"] <= rows["slow"]["duration"]
    assert rows["broken"]["state"] == "failed"
    assert "ValueError: nope" in rows["broken"]["error"]
    assert status["totals"]["steps"] == 2
    html = kernel.ok("%durable status").displays[0]["data"]["text/html"]
    assert "slow" in html and "replayed" in html


def test_invalidate_reset_and_force_make_steps_run_again(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = f"%%durable work\n{counter('work')}\nz = 3\n"
    kernel.ok(cell)
    kernel.ok(cell)
    assert runs(tmp_path, "work") == 1
    kernel.ok("%durable invalidate work")
    kernel.ok(cell)
    assert runs(tmp_path, "work") == 2
    kernel.ok(cell.replace("%%durable work", "%%durable work --force"))
    assert runs(tmp_path, "work") == 3
    kernel.ok("%durable reset")
    kernel.ok(cell)
    assert runs(tmp_path, "work") == 4
    kernel.ok("%durable invalidate --all")
    kernel.ok(cell)
    assert runs(tmp_path, "work") == 5


def test_sessions_are_separate_executions(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    cell = f"%%durable s\n{counter('s')}\nw = 1\n"
    kernel.ok(cell)
    assert "'default'" in kernel.ok("%durable session").stdout
    kernel.ok("%durable session experiment-2")
    kernel.ok(cell)
    assert runs(tmp_path, "s") == 2
    kernel.ok("%durable session default")
    kernel.ok(cell)
    assert runs(tmp_path, "s") == 2


@pytest.mark.parametrize("line", [
    "%%durable --mode fast", "%%durable --retries -1", "%%durable --bogus", "%%durable a b",
])
def test_bad_cell_arguments_are_usage_errors_and_run_nothing(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str], line: str) -> None:
    result = kernel.run(f"{line}\n{counter('bad')}\n")
    assert "UsageError" in result.stderr and "Usage: %%durable" in result.stderr
    assert runs(tmp_path, "bad") == 0


@pytest.mark.parametrize("line", ["%durable", "%durable frobnicate", "%durable invalidate",
                                  "%durable gc --max-size lots", "%durable invalidate nope"])
def test_bad_line_arguments_are_usage_errors_with_the_usage(kernel: Kernel, line: str) -> None:
    result = kernel.run(line)
    assert "UsageError" in result.stderr and "%durable status" in result.stderr


def test_durable_on_makes_every_cell_a_step(
        kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> None:
    kernel.ok("%durable on")
    kernel.ok(f"{counter('auto')}\nv = [1, 2, 3]\nsum(v)", cell_id="auto-1")
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok("%durable on")
    again = kernel.ok(f"{counter('auto')}\nv = [1, 2, 3]\nsum(v)", cell_id="auto-1")
    assert runs(tmp_path, "auto") == 1
    assert again.replayed and again.text == "6"
    assert kernel.value("v") == [1, 2, 3]
    kernel.ok("%durable off")
    kernel.ok(f"{counter('auto')}\nv = [1, 2, 3]\n")
    assert runs(tmp_path, "auto") == 2


def test_unload_removes_the_magics(kernel: Kernel) -> None:
    kernel.ok("%unload_ext kitteh_magic")
    result = kernel.run("%durable status")
    assert "UsageError: Line magic function `%durable` not found" in result.stderr
