"""What status says about each step (issue 10): the names it saved, why it is stale, whether its
values are in a kernel; in the theme's colours and in the number's grammar. And what
``%durable restore`` says it did.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kernel import Kernel

pytestmark = pytest.mark.kernel

LOAD = "%%durable load\nx = n * 10\nlabel = 'rows'"
USE = "%%durable use\nz = x + 1"


def _rows(kernel: Kernel) -> dict[str, dict[str, Any]]:
    status = json.loads(kernel.ok("%durable status --json").stdout)
    return {row["step"]: row for row in status["steps"]}


def test_rows_name_the_outputs_the_stale_input_and_whether_values_are_loaded(
        kernel: Kernel) -> None:
    kernel.ok("n = 1")
    kernel.ok(LOAD)
    kernel.ok(USE)
    rows = _rows(kernel)
    assert (rows["load"]["outputs"], rows["use"]["outputs"]) == (["label", "x"], ["z"])
    assert rows["use"]["stale_reason"] is None
    assert rows["load"]["loaded"] and rows["use"]["loaded"]

    kernel.ok("n = 2")
    kernel.ok(LOAD)  # a new x, after `use` read the old one
    rows = _rows(kernel)
    assert rows["use"]["state"] == "stale"
    assert rows["use"]["stale_reason"] == "x changed: step 'load' made a new x after this step ran"
    assert rows["load"]["stale_reason"] is None

    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    rows = _rows(kernel)
    assert not rows["load"]["loaded"] and not rows["use"]["loaded"]  # stored, not in a kernel
    kernel.ok("n = 2")
    assert kernel.ok(LOAD).replayed
    assert _rows(kernel)["load"]["loaded"] and not _rows(kernel)["use"]["loaded"]


def test_status_html_uses_the_theme_colours_and_the_numbers_grammar(kernel: Kernel) -> None:
    kernel.ok("%durable session solo")
    kernel.ok("%%durable only\nq = 1")
    kernel.run("%%durable broken\nraise ValueError('no')")
    [table] = kernel.ok("%durable status").displays
    html = table["data"]["text/html"]
    colours = re.findall(r"color:\s*([^;\"]+)", html)
    assert colours and all(c.startswith("var(--jp-") for c in colours), colours
    assert "2 steps," in html
    kernel.ok("%durable session one")
    kernel.ok("%%durable only\nq = 1")
    assert "1 step," in kernel.ok("%durable status").displays[0]["data"]["text/plain"]


def test_restore_says_which_session_it_restored_and_when_there_was_nothing(
        kernel: Kernel) -> None:
    kernel.ok("%durable session other")
    kernel.ok("%%durable made\nw = 5")
    kernel.ok("%durable session empty")
    said = kernel.ok("%durable restore").stdout
    assert said.strip() == "session 'empty' has no finished steps: nothing was restored"
    kernel.ok("del w")
    said = kernel.ok("%durable restore --session other").stdout
    assert said.startswith("restored 1 step of session 'other' (1 name, ")
    assert kernel.value("w") == 5
