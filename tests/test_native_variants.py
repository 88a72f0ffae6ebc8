"""Variants of the kernel-side behaviour of issue 10 that its first tests did not try.

Time saved by a resume is the time the journaled calls took: calls that ran side by side (the
items of a ``km.map``) saved their common time once, or a resume would claim more than the
whole execution it resumes ever took.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel import Kernel

pytestmark = pytest.mark.kernel


def test_a_resumed_map_saves_the_time_its_items_took_side_by_side(kernel: Kernel,
                                                                    tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    cell = ("%%durable fan\nimport os, time\nimport kitteh_magic as km\n"
            "def item(i):\n"
            f"    if i == 4 and not os.path.exists({str(flag)!r}):\n"
            "        raise RuntimeError('item 4 fails until fixed')\n"
            "    time.sleep(0.6)\n"
            "    return i\n"
            "got = km.map(item, range(5), concurrency=5)\n")
    failed = kernel.run(cell)
    assert failed.error is not None and failed.mark["state"] == "failed"
    flag.touch()
    resumed = kernel.ok(cell).mark
    assert (resumed["state"], resumed["resumed"]) == ("executed", 4)
    calls = json.loads(kernel.ok("import json\nprint(json.dumps(_kitteh_engine_.catalog"
                                 ".journal_view(_kitteh_engine_.session, 'fan')))").stdout)
    answered = [call["duration"] for call in calls if call["from_journal"]]
    assert len(answered) == 4 and min(answered) >= 0.6
    # The four items slept side by side: the resume saved about 0.6 s, not 2.4 s. (Spans are
    # epoch seconds, whose last digit is a few 1e-7 s: the longest call, give or take that.)
    assert max(answered) - 1e-3 <= resumed["saved"] < sum(answered) / 2
    status = json.loads(kernel.ok("%durable status --json").stdout)
    row = next(row for row in status["steps"] if row["step"] == "fan")
    assert row["saved"] == pytest.approx(resumed["saved"])
    assert status["totals"]["saved"] == pytest.approx(resumed["saved"])
