"""The step mark and the one definition of time saved (issue 10, ARCHITECTURE.md).

A replayed notebook keeps its first run's outputs: what says "replayed" is an IOPub message that
no frontend turns into an output. Time saved is one figure: the marks, the step pointers and the
status totals agree, and each is the recorded run time minus the replay's own time, or the
recorded durations of the calls taken from the journal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from http_server import CountingServer, counting_server
from kernel import MARK_ID, MARK_MIME, Kernel, ipc_config
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

CELLS = [
    "%%durable greet\nprint('hello')\nx = 41",
    "%%durable show\nfrom IPython.display import HTML, display\n"
    "display(HTML('<b>bold</b>'))\nx + 1",
    "import sys\nprint('plain', file=sys.stderr)",
]


class _Listening(NotebookClient):  # type: ignore[misc]
    """nbclient as ``kitteh-magic run`` uses it, noting the step marks it is sent."""

    marks: list[dict[str, Any]]

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        content = msg.get("content", {})
        if (msg.get("msg_type") == "update_display_data"
                and (content.get("transient") or {}).get("display_id") == MARK_ID):
            self.marks.append(content["data"][MARK_MIME])
        return super().process_message(msg, cell, cell_index)


def _execute(cells: list[str], folder: Path) -> tuple[list[list[dict[str, Any]]], list[dict]]:
    """Run a notebook of ``cells`` headless; its code cells' outputs and the marks sent."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    client = _Listening(nb, kernel_name="python3", timeout=120,
                        resources={"metadata": {"path": str(folder)}}, config=ipc_config())
    client.marks = []
    client.execute()
    outputs = [[{k: v for k, v in out.items() if k != "execution_count"} for out in cell.outputs]
               for cell in nb.cells]
    return outputs, client.marks


def test_a_replayed_notebook_keeps_its_first_runs_outputs_in_nbclient(
        tmp_path: Path, kernel_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in kernel_env.items():
        monkeypatch.setenv(name, value)
    plain, _ = _execute([c.split("\n", 1)[1] if c.startswith("%%") else c for c in CELLS],
                        tmp_path)
    durable = ["%load_ext kitteh_magic", *CELLS]
    first, first_marks = _execute(durable, tmp_path)
    again, again_marks = _execute(durable, tmp_path)  # a new kernel: every step replays

    assert first[1:] == plain and again[1:] == plain, "the outputs differ from a plain run's"
    assert [(m["step"], m["state"]) for m in first_marks] == [
        ("greet", "executed"), ("show", "executed")]
    assert [(m["step"], m["state"]) for m in again_marks] == [
        ("greet", "replayed"), ("show", "replayed")]


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


def _timed(kernel: Kernel, cell: str) -> tuple[Any, float]:
    began = time.perf_counter()
    result = kernel.ok(cell)
    return result, time.perf_counter() - began


def test_time_saved_is_one_figure_in_marks_pointers_and_status(
        kernel: Kernel, server: CountingServer) -> None:
    kernel.ok(f"BASE = {server.url!r}")
    cells = {
        "slow": "%%durable slow\nimport time\ntime.sleep(0.4)\na = 1",
        "calls": ("%%durable calls\nimport json, urllib.request\n"
                  "r = [json.loads(urllib.request.urlopen(f'{BASE}/gate/g{i}?ms=150').read())"
                  " for i in range(3)]"),
        "quick": "%%durable quick\nb = a + 1",
    }
    first = {name: kernel.ok(cell).mark for name, cell in cells.items()}
    assert all(m["state"] == "executed" and m["saved"] == 0 for m in first.values())

    kernel.restart()
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    replays = {}
    for name, cell in cells.items():
        result, wall = _timed(kernel, cell)
        mark = replays[name] = result.mark
        assert mark["state"] == "replayed" and mark["duration"] == first[name]["duration"]
        assert 0 < mark["elapsed"] <= wall
        assert mark["saved"] == max(first[name]["duration"] - mark["elapsed"], 0.0)
    assert replays["slow"]["saved"] >= 0.3 and replays["calls"]["saved"] >= 0.35

    # The journal is kept: after an invalidate the cell runs, and its calls come from it.
    kernel.ok("%durable invalidate calls")
    resumed = kernel.ok(cells["calls"]).mark
    calls = json.loads(kernel.ok("import json\nprint(json.dumps(_kitteh_engine_.catalog"
                                 ".journal_view(_kitteh_engine_.session, 'calls')))").stdout)
    assert (resumed["state"], resumed["resumed"]) == ("executed", 3)
    assert all(call["from_journal"] for call in calls) and len(calls) == 3
    assert resumed["saved"] == pytest.approx(sum(call["duration"] for call in calls))
    assert resumed["saved"] >= 0.4 and server.hits["/gate/g0"] == 1

    status = json.loads(kernel.ok("%durable status --json").stdout)
    rows = {row["step"]: row for row in status["steps"]}
    for name in ("slow", "quick"):
        assert rows[name]["saved"] == pytest.approx(replays[name]["saved"])
    assert rows["calls"]["saved"] == pytest.approx(replays["calls"]["saved"] + resumed["saved"])
    every = [*replays.values(), resumed]
    assert status["totals"]["saved"] == pytest.approx(sum(m["saved"] for m in every))


def test_a_terminal_prints_one_line_for_a_replay(
        tmp_path: Path, kernel_env: dict[str, str]) -> None:
    code = ("ip = get_ipython(); ip.run_line_magic('load_ext', 'kitteh_magic')\n"
            "for _ in range(2): ip.run_cell('%%durable t\\nx = 1\\n')\n")
    done = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "-c",
                           code], cwd=tmp_path, env={**os.environ, **kernel_env},
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if "step 't'" in line]
    assert len(lines) == 1, done.stdout
    # A replay as slow as the 1 ms run saves nothing: human_seconds writes that "0 s".
    assert re.fullmatch(r"↻ replayed step 't' \(ran \d+ ms, replayed in \d+ ms: "
                        r"saved (\d+ ms|0 s)\)", lines[0]), lines[0]
