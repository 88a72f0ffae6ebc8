"""Tracebacks of durable cells show the user's code (issue 10, STYLE.md principle 11).

The oracle is the same cell run plain, its ``%%durable`` line turned into a comment so that the
line numbers agree: the durable traceback must be the plain one, frame for frame, with the cell's
first line shown as typed. Ctrl-C (a real SIGINT through the kernel manager) is recorded as
"interrupted", in the step's status and in its mark.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, Result

pytestmark = pytest.mark.kernel

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _traceback(result: Result) -> str:
    assert result.error is not None, "the cell did not fail"
    text = _ANSI.sub("", "\n".join(result.error["traceback"]))
    return re.sub(r"In\[\d+\]", "In[#]", text).replace("# %%durable", "%%durable")


def _both(start_kernel: Callable[..., Kernel], cell: str,
          run: Callable[[Kernel, str], Result]) -> tuple[Result, Result, Kernel]:
    """The cell run plain (its first line a comment) and durable, each in its own kernel;
    the durable run's kernel."""
    plain = run(start_kernel(load=False), "# " + cell)
    kernel = start_kernel()
    return plain, run(kernel, cell), kernel


def _state(kernel: Kernel, step: str) -> str:
    rows = json.loads(kernel.ok("%durable status --json").stdout)["steps"]
    return str(next(row["state"] for row in rows if row["step"] == step))


def test_a_failing_cell_shows_the_typed_line_and_the_users_frames(
        start_kernel: Callable[..., Kernel]) -> None:
    cell = "%%durable boom\ndef parse(text):\n    return int(text)\nparse('nope')\n"
    plain, durable, _ = _both(start_kernel, cell, lambda k, c: k.run(c))
    assert _traceback(durable) == _traceback(plain)
    assert "%%durable boom" in _traceback(durable) and "_kitteh" not in _traceback(durable)
    assert durable.mark["state"] == "failed"


def _interrupted(ready: Path) -> Callable[[Kernel, str], Result]:
    def run(kernel: Kernel, cell: str) -> Result:
        ready.unlink(missing_ok=True)
        msg_id = kernel.send(cell)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline, "the cell never reached its wait"
            time.sleep(0.02)
        time.sleep(0.2)  # inside the blocking call now
        kernel.manager.interrupt_kernel()
        return kernel.collect(msg_id)
    return run


def test_ctrl_c_in_a_sleep_is_an_interrupted_step_with_the_users_traceback(
        start_kernel: Callable[..., Kernel], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    cell = (f"%%durable nap\nimport time\nopen({str(ready)!r}, 'w').close()\n"
            "time.sleep(60)\n")
    plain, durable, kernel = _both(start_kernel, cell, _interrupted(ready))
    assert _traceback(durable) == _traceback(plain)
    assert durable.error is not None and durable.error["ename"] == "KeyboardInterrupt"
    assert durable.mark["state"] == "interrupted" and _state(kernel, "nap") == "interrupted"


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


def test_ctrl_c_in_an_http_call_shows_no_frames_of_kitteh_magic(
        start_kernel: Callable[..., Kernel], server: CountingServer) -> None:
    cell = (f"%%durable fetch\nimport urllib.request\n"
            f"urllib.request.urlopen({server.url + '/hold/a'!r}).read()\n")

    def run(kernel: Kernel, code: str) -> Result:
        server.holding.clear()
        msg_id = kernel.send(code)
        assert server.holding.wait(30), "the call never reached the server"
        time.sleep(0.2)
        kernel.manager.interrupt_kernel()
        return kernel.collect(msg_id)

    plain, durable, kernel = _both(start_kernel, cell, run)
    shown = _traceback(durable)
    assert shown == _traceback(plain)
    assert "kitteh_magic" not in shown and "dispatch.py" not in shown and "policy" not in shown
    assert _state(kernel, "fetch") == "interrupted"
