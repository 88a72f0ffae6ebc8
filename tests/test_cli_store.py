"""`kitteh-magic log`, `invalidate`, `clear` and `gc --max-size` on a store a real run wrote.

One notebook is run once per module; each test works on a copy of its folder (the notebook,
its store, its counters), so that what one test deletes another still has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kernel import runs
from test_cli import cli, in_terminal, write_notebook

from kitteh_magic.maintenance import EVICTED
from kitteh_magic.store import Store

pytestmark = pytest.mark.kernel


def bump(name: str) -> str:
    """A counter relative to the notebook's folder (the kernel's working directory), so that
    a copy of the folder counts for itself."""
    return f"open('runs-{name}.txt', 'a').write('x')"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A folder whose notebook ran once: steps 'fetch' (3 activity calls), 'big', and one
    named by its cell."""
    folder = tmp_path_factory.mktemp("ran")
    env = {"KITTEH_MAGIC_KEY_FILE": str(folder.parent / f"{folder.name}-key"),
           "KITTEH_MAGIC_DIR": ""}
    write_notebook(folder / "pipeline.ipynb", [
        "%%durable fetch\nimport kitteh_magic as km\n\n@km.activity\ndef get(i):\n"
        f"    {bump('call')}\n    return i * 2\n\nvalues = [get(i) for i in range(3)]\n"
        f"{bump('fetch')}",
        f"%%durable big\nbig = list(range(50_000))\n{bump('big')}",
        f"{bump('total')}\ntotal = sum(values) + len(big)\ntotal",
    ])
    result = cli("run", "pipeline.ipynb", cwd=folder, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [runs(folder, n) for n in ("call", "fetch", "big", "total")] == [3, 1, 1, 1]
    return folder, env


@pytest.fixture
def copy(ran: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(ran[0], tmp_path / "copy"))


def steps(folder: Path, env: dict[str, str]) -> dict[str, dict[str, object]]:
    status = cli("status", "pipeline.ipynb", "--json", cwd=folder, env=env)
    assert status.returncode == 0, status.stderr
    return {row["step"]: row for row in json.loads(status.stdout)[0]["steps"]}


def test_log_lists_the_calls_of_a_step(ran: tuple[Path, dict[str, str]]) -> None:
    folder, env = ran
    text = cli("log", "pipeline.ipynb", "fetch", cwd=folder, env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("step 'fetch': 3 activities")
    assert sum(".get" in line and " ok" in line for line in lines) == 3
    as_json = json.loads(cli("log", "pipeline.ipynb", "fetch", "--json", cwd=folder,
                             env=env).stdout)
    assert (as_json["session"], as_json["step"]) == ("pipeline.ipynb", "fetch")
    assert [c["outcome"] for c in as_json["calls"]] == ["ok"] * 3
    assert all(c["call"].endswith("get") for c in as_json["calls"])
    # A store holds many sessions: the session is named; a wrong step names the right ones.
    store = cli("log", ".kitteh", "fetch", "--session", "pipeline.ipynb", cwd=folder, env=env)
    assert store.stdout == text.stdout
    for args, says in ((["log", ".", "fetch"], "is a store: name the session with --session "
                                               "(sessions: 'pipeline.ipynb')"),
                       (["log", "pipeline.ipynb", "fech"], "no step 'fech' in session "
                                                           "'pipeline.ipynb' (steps: fetch, big")):
        wrong = cli(*args, cwd=folder, env=env)
        assert wrong.returncode == 2
        [line] = wrong.stderr.splitlines()
        assert says in line, line


def test_invalidate_makes_the_next_run_execute(copy: Path,
                                               ran: tuple[Path, dict[str, str]]) -> None:
    env = ran[1]
    said = cli("invalidate", "pipeline.ipynb", "fetch", cwd=copy, env=env)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("invalidated step 'fetch' of session 'pipeline.ipynb'")
    assert steps(copy, env)["fetch"]["state"] == "invalidated"
    assert cli("run", "pipeline.ipynb", "-q", cwd=copy, env=env).returncode == 0
    # The step ran again; its calls were answered from the journal it kept; the rest replayed.
    assert [runs(copy, n) for n in ("fetch", "call", "big", "total")] == [2, 3, 1, 1]

    said = cli("invalidate", "pipeline.ipynb", "--all", "--forget-journal", cwd=copy, env=env)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("invalidated 3 steps of session 'pipeline.ipynb'")
    assert cli("run", "pipeline.ipynb", "-q", cwd=copy, env=env).returncode == 0
    assert [runs(copy, n) for n in ("fetch", "call", "big", "total")] == [3, 6, 2, 2]
    mistake = cli("invalidate", "pipeline.ipynb", cwd=copy, env=env)
    assert (mistake.returncode, mistake.stderr) == (
        2, "kitteh-magic invalidate: give a STEP or --all (not both)\n")


def test_clear_asks_first_and_needs_yes_without_a_terminal(
        copy: Path, ran: tuple[Path, dict[str, str]]) -> None:
    env = ran[1]
    refused = subprocess.run([sys.executable, "-m", "kitteh_magic.cli", "clear", "."],
                             cwd=copy, env={**os.environ, **env},
                             stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert line.startswith("kitteh-magic clear: this would delete 1 session (3 steps, ")
    assert line.endswith("add --yes to confirm (stdin is not a terminal, so it cannot ask)")
    assert len(steps(copy, env)) == 3

    code, out, err = in_terminal("clear", ".", cwd=copy, env=env, answer="n\n")
    assert code == 1 and out == ""
    assert err.startswith("delete 1 session (3 steps, ")
    assert f" in {copy / '.kitteh'}? [y/N] " in err
    assert err.endswith("kitteh-magic clear: not confirmed: nothing deleted\n")
    assert len(steps(copy, env)) == 3

    code, out, err = in_terminal("clear", "pipeline.ipynb", cwd=copy, env=env, answer="y\n")
    assert code == 0, err
    assert out == "cleared 1 session (3 steps)\n"
    assert steps(copy, env) == {}
    assert cli("clear", ".", "--yes", cwd=copy, env=env).stdout == (
        f"no sessions in {copy / '.kitteh'}: nothing to clear\n")


def test_gc_max_size_says_which_steps_it_evicted(copy: Path,
                                                 ran: tuple[Path, dict[str, str]]) -> None:
    env = ran[1]
    trimmed = cli("gc", ".", "--max-size", "1KB", cwd=copy, env=env)
    assert trimmed.returncode == 0, trimmed.stderr
    rows = steps(copy, env)
    evicted = sorted(name for name, row in rows.items() if row["state"] != "done")
    assert "big" in evicted and len(evicted) < 3
    for name in evicted:
        assert (rows[name]["state"], rows[name]["error"], rows[name]["size"]) == (
            "invalidated", EVICTED, 0)
        assert (f"evicted step {name!r} of session 'pipeline.ipynb': its record was trimmed "
                "to fit --max-size 1.0 KB; it runs again on its next run") in trimmed.stdout
    assert "invalidated" not in trimmed.stdout
    assert trimmed.stdout.splitlines()[-1].startswith(f"removed {len(evicted)} record")
    # Status totals are what the store holds.
    status = json.loads(cli("status", "pipeline.ipynb", "--json", cwd=copy, env=env).stdout)
    store = Store(copy / ".kitteh")
    try:
        assert 0 < status[0]["totals"]["size"] <= store.values_size() <= 1024
    finally:
        store.close()
    text = cli("status", "pipeline.ipynb", cwd=copy, env=env).stdout
    assert f"step 'big' invalidated: {EVICTED}" in text
