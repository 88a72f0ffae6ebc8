"""Invalidate keeps the journal (issue 10): a step run again after ``%durable invalidate`` executes
its cell, and every call it already made is answered from the journal of its last execution, so
a paid API is not paid twice; ``--forget-journal`` and ``--force`` make the calls again.

A local HTTP server counts requests: the counts say which calls were made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, runs

pytestmark = pytest.mark.kernel

VIEW_FIELDS = {"label", "call", "duration", "attempts", "outcome", "from_journal", "finished",
               "branch", "effect", "error", "unsaved"}


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


def _cell(counter: Callable[[str], str]) -> str:
    # ``page`` returns 110 KB: a journaled value of its own, which gc must keep.
    return (f"%%durable fetch\n{counter('fetch')}\nimport json, urllib.request\n"
            "import kitteh_magic as km\n"
            "@km.activity\n"
            "def page(i):\n"
            "    return urllib.request.urlopen(f'{BASE}/item/{i}').read() * 10_000\n"
            "items = [json.loads(urllib.request.urlopen(f'{BASE}/item/{i}').read())['item']"
            " for i in range(3)]\n"
            "big = page(9)\n"
            "(items, len(big))")


def _view(kernel: Kernel) -> list[dict]:
    return json.loads(kernel.ok("import json\nprint(json.dumps(_kitteh_engine_.catalog"
                                ".journal_view(_kitteh_engine_.session, 'fetch')))").stdout)


def _hits(server: CountingServer) -> list[int]:
    return [server.hits[f"/item/{i}"] for i in (0, 1, 2, 9)]


def test_invalidate_keeps_the_journal_forget_and_force_make_the_calls_again(
        kernel: Kernel, server: CountingServer, tmp_path: Path,
        counter: Callable[[str], str]) -> None:
    cell = _cell(counter)
    kernel.ok(f"BASE = {server.url!r}")
    first = kernel.ok(cell)
    assert first.text == "([0, 1, 2], 110000)" and _hits(server) == [1, 1, 1, 1]
    view = _view(kernel)
    assert [c["label"] for c in view] == ["1", "2", "3", "4"]
    assert all(set(c) == VIEW_FIELDS and c["outcome"] == "ok" for c in view)
    assert not any(c["from_journal"] for c in view)

    said = kernel.ok("%durable invalidate fetch").stdout
    assert "come from its journal" in said
    kernel.ok("%durable gc")  # keeps the values the kept journal needs
    kernel.restart()  # the journal lives in the store
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")
    again = kernel.ok(cell)
    assert again.text == first.text and runs(tmp_path, "fetch") == 2, "the cell did not run"
    assert _hits(server) == [1, 1, 1, 1], "a journaled call was made again"
    assert "Warning" not in again.stderr, again.stderr
    assert (again.mark["state"], again.mark["resumed"]) == ("executed", 4)
    assert all(c["from_journal"] for c in _view(kernel))
    log = kernel.ok("%durable log fetch").stdout.splitlines()
    assert sum("(from the journal)" in line for line in log) == 4, log

    assert "every call again" in kernel.ok("%durable invalidate fetch --forget-journal").stdout
    assert kernel.ok(cell).text == first.text and _hits(server) == [2, 2, 2, 2]
    forced = kernel.ok(cell.replace("%%durable fetch", "%%durable fetch --force"))
    assert forced.mark["resumed"] == 0 and _hits(server) == [3, 3, 3, 3]
    assert kernel.ok(cell).replayed and runs(tmp_path, "fetch") == 4
