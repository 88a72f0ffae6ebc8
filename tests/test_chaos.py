"""The fault campaign of issue 8 (``scripts/chaos.py``), a few trials of each part.

Real kernels, real SIGKILLs, a damaged store, tampering and a leftover journal, judged against
DESIGN.md sections 4.2, 4.7, 4.9 and 4.14: no wrong value, no completed call made again, no
effect run twice, no stale record or journal entry replayed, no traceback through kitteh_magic,
no cell broken, no garbage left after ``gc``, every damage healed by one recompute, no
maintenance command crashing, nothing unpickled from a planted row. Two kernels running one step
at once (issue 9) must run it once. ``python scripts/chaos.py`` runs the full campaign.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import chaos

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[chaos.Campaign]:
    """One server, key and baseline (plain run and clean durable run) for every part."""
    with chaos.campaign(tmp_path_factory.mktemp("chaos")) as c:
        yield c


def run_part(c: chaos.Campaign, part: str, trials: int = 2) -> list[chaos.Outcome]:
    """The outcomes the quick version of ``part`` adds."""
    first = len(c.outcomes)
    chaos.run_parts(c, [part], trials, quick=True)
    outcomes = c.outcomes[first:]
    print(chaos.report(outcomes))
    return outcomes


def assert_contract(outcomes: list[chaos.Outcome]) -> None:
    assert outcomes, "the part ran no trial"
    assert not chaos.problems(outcomes), "the harness failed:\n" + "\n".join(
        chaos.problems(outcomes))
    failures = chaos.failures(outcomes)
    assert not failures, ("\n" + chaos.table(outcomes) + "\n\n" + "\n".join(failures))


def test_clean_run_then_replay(campaign: chaos.Campaign) -> None:
    """The campaign's baseline: the durable step gives the plain run's values and replays."""
    baseline = [o for o in campaign.outcomes if o.part == "baseline"]
    print(chaos.report(baseline))
    assert campaign.expected is not None
    assert_contract(baseline)


def test_random_kills_and_commit_points(campaign: chaos.Campaign) -> None:
    outcomes = run_part(campaign, "random", trials=3)  # the third kills its resume too
    assert_contract(outcomes)
    assert len(outcomes) == 3 + len(chaos.QUICK_POINTS)


def test_damage_heals_with_one_recompute(campaign: chaos.Campaign) -> None:
    outcomes = run_part(campaign, "damage")
    assert_contract(outcomes)
    cases = [o for o in outcomes if not o.kind.startswith("template")]
    assert {o.kind for o in cases} == set(chaos.QUICK_DAMAGES)
    assert all(not n.startswith("not applicable") for o in cases for n in o.notes), \
        chaos.table(cases)


def test_tampered_and_rolled_back_records_are_refused(campaign: chaos.Campaign) -> None:
    outcomes = run_part(campaign, "tamper")
    assert_contract(outcomes)
    assert {o.kind for o in outcomes} == set(chaos.TAMPERS)


def test_a_leftover_journal_never_answers_an_edited_cell(campaign: chaos.Campaign) -> None:
    outcomes = run_part(campaign, "journal", trials=1)
    assert_contract(outcomes)


def test_two_kernels_on_one_step_run_it_once(campaign: chaos.Campaign) -> None:
    """Issue 9's lease: one kernel executes, the other waits and replays."""
    outcomes = run_part(campaign, "two", trials=1)
    assert_contract(outcomes)
