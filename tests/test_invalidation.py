"""Invalidation (DESIGN.md §4.3): what re-runs a step and what still replays, on a real kernel.

Each case runs a small notebook, changes one thing, runs it again in the same kernel or after a
restart, and counts which bodies executed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kernel import Kernel, runs

pytestmark = pytest.mark.kernel


@pytest.fixture
def nb(kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]):  # type: ignore[no-untyped-def]
    """Run cells by name; returns a function giving how often each body ran."""
    def step(name: str, body: str, *, magic: str | None = None) -> None:
        kernel.ok(f"{magic or '%%durable ' + name}\n{counter(name)}\n{body}", cell_id=name)

    def counts(*names: str) -> tuple[int, ...]:
        return tuple(runs(tmp_path, n) for n in names)

    step.counts = counts  # type: ignore[attr-defined]
    return step


def test_code_edit_reruns_but_whitespace_and_comments_replay(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    nb("a", "x = 1 + 1")
    nb("a", "x  =  1+1   # same thing\n\n")
    assert nb.counts("a") == (1,)
    nb("a", "x = 1 + 2")
    assert nb.counts("a") == (2,)
    assert kernel.value("x") == 3


def test_a_step_that_uses_its_own_names_replays_in_the_same_kernel(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    body = "import numpy as np\nvalues = np.arange(10)\nvalues.sort()\ntotal = int(values.sum())"
    nb("own", body)
    nb("own", body)
    nb("own", body)
    assert nb.counts("own") == (1,)
    assert kernel.value("total") == 45


def test_upstream_change_reruns_downstream_only(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    nb("src", "base = [1, 2, 3]")
    nb("other", "unrelated = 'u'")
    nb("down", "doubled = [v * 2 for v in base]")
    nb("src", "base = [1, 2, 4]")   # new content for base
    nb("other", "unrelated = 'u'")
    nb("down", "doubled = [v * 2 for v in base]")
    assert nb.counts("src", "other", "down") == (2, 1, 2)
    assert kernel.value("doubled") == [2, 4, 8]
    nb("src", "base = [1, 2, 3]")   # back to the first version: both replay
    nb("down", "doubled = [v * 2 for v in base]")
    assert nb.counts("src", "down") == (2, 2)
    assert kernel.value("doubled") == [2, 4, 6]


def test_plain_cell_value_change_reruns_reader(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    kernel.ok("threshold = 10")
    nb("use", "above = [v for v in range(20) if v > threshold]")
    kernel.ok("threshold = 15")
    nb("use", "above = [v for v in range(20) if v > threshold]")
    assert nb.counts("use") == (2,)
    assert kernel.value("len(above)") == 4


def test_helper_function_edit_and_its_global_rerun(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    kernel.ok("scale = 2\ndef helper(v):\n    return v * scale")
    nb("call", "result = helper(21)")
    nb("call", "result = helper(21)")
    assert nb.counts("call") == (1,)
    kernel.ok("def helper(v):\n    # a comment only\n    return v * scale")
    nb("call", "result = helper(21)")
    assert nb.counts("call") == (1,)
    kernel.ok("def helper(v):\n    return v * scale + 1")
    nb("call", "result = helper(21)")
    assert nb.counts("call") == (2,)
    kernel.ok("scale = 3")   # a global the helper reads, not named in the step
    nb("call", "result = helper(21)")
    assert nb.counts("call") == (3,)
    assert kernel.value("result") == 64


def test_in_place_mutation_by_a_plain_cell_reruns_reader(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    nb("make", "items = [3, 1, 2]")
    nb("read", "biggest = max(items)")
    kernel.ok("items.append(10)")       # same object, new content
    nb("read", "biggest = max(items)")
    assert nb.counts("make", "read") == (1, 2)
    assert kernel.value("biggest") == 10


def test_mutation_inside_a_step_is_an_output(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    nb("make", "table = {'a': 1}")
    nb("grow", "table['b'] = 2\nrows = [1]\nrows.append(2)")
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    nb("make", "table = {'a': 1}")
    nb("grow", "table['b'] = 2\nrows = [1]\nrows.append(2)")
    assert nb.counts("make", "grow") == (1, 1)
    assert kernel.value("table") == {"a": 1, "b": 2}
    assert kernel.value("rows") == [1, 2]


def test_changes_survive_a_restart(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    """Lineage tokens are stable across restarts; an edit after the restart still re-runs."""
    cells = [("load", "import pandas as pd\ndf = pd.DataFrame({'a': range(1000)})"),
             ("feat", "df['b'] = df['a'] * 2"),
             ("agg", "total = int(df['b'].sum())")]
    for name, body in cells:
        nb(name, body)
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    for name, body in cells:
        nb(name, body)
    assert nb.counts("load", "feat", "agg") == (1, 1, 1)
    assert kernel.value("total") == 999000
    nb("feat", "df['b'] = df['a'] * 3")
    nb("agg", "total = int(df['b'].sum())")
    assert nb.counts("load", "feat", "agg") == (1, 2, 2)
    assert kernel.value("total") == 1498500


def test_a_global_mutated_by_a_helper_inside_a_step_is_restored(nb, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    kernel.ok("def remember(v):\n    seen.append(v)")
    nb("init", "seen = []")
    nb("add", "remember(7)")
    nb("read", "count = len(seen)")
    kernel.restart()
    kernel.ok("%load_ext kitteh_magic")
    kernel.ok("def remember(v):\n    seen.append(v)")
    nb("init", "seen = []")
    nb("add", "remember(7)")
    nb("read", "count = len(seen)")
    assert nb.counts("init", "add", "read") == (1, 1, 1)
    assert kernel.value("seen") == [7]
    assert kernel.value("count") == 1
