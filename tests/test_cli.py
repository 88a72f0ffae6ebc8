"""`kitteh-magic run` and `status`: headless runs through nbclient, the way a user calls them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from kernel import runs
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = pytest.mark.kernel


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitteh_magic.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# pipeline")] + [new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def env(tmp_path: Path, key_file: Path) -> dict[str, str]:
    """Store beside the notebook (the default), key of the test's own."""
    return {"KITTEH_MAGIC_KEY_FILE": str(key_file), "KITTEH_MAGIC_DIR": ""}


def bump(tmp_path: Path, name: str) -> str:
    return f"open({str(tmp_path / f'runs-{name}.txt')!r}, 'a').write('x')"


def test_run_twice_executes_then_replays(tmp_path: Path, env: dict[str, str]) -> None:
    nb = write_notebook(tmp_path / "flow.ipynb", [
        f"{bump(tmp_path, 'one')}\nimport time\ntime.sleep(0.5)\nnumbers = list(range(10))",
        f"{bump(tmp_path, 'two')}\ntotal = sum(numbers)\nprint('total', total)",
        "%%durable named\n" + bump(tmp_path, "three") + "\ntotal * 2",
    ])
    first = cli("run", str(nb), "-o", str(tmp_path / "out.ipynb"), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "3 steps executed, 0 replayed" in first.stdout
    second = cli("run", str(nb), "-o", str(tmp_path / "out.ipynb"), cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "0 steps executed, 3 replayed" in second.stdout
    assert [runs(tmp_path, n) for n in ("one", "two", "three")] == [1, 1, 1]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    code_cells = [c for c in out.cells if c.cell_type == "code"]
    assert len(code_cells) == 3
    assert any("total 45" in o.get("text", "") for o in code_cells[1].outputs)
    assert code_cells[2].outputs[-1]["data"]["text/plain"] == "90"
    assert (tmp_path / ".kitteh").is_dir()  # the store sits beside the notebook

    status = cli("status", str(nb), "--json", cwd=tmp_path, env=env)
    report = json.loads(status.stdout)[0]
    assert report["session"] == "flow.ipynb"
    assert [row["state"] for row in report["steps"]] == ["replayed"] * 3
    assert report["steps"][0]["cell_id"] == code_cells[0]["id"]  # steps carry the cell ids
    assert report["totals"]["saved"] >= 0.4
    text = cli("status", str(tmp_path), cwd=tmp_path, env=env).stdout
    assert "flow.ipynb" in text and "named" in text


def test_run_resumes_after_the_kernel_dies(tmp_path: Path, env: dict[str, str]) -> None:
    flag = tmp_path / "died-once"
    nb = write_notebook(tmp_path / "crash.ipynb", [
        f"{bump(tmp_path, 'before')}\nprepared = [1, 2, 3]",
        (f"{bump(tmp_path, 'crash')}\nimport os, signal, pathlib\n"
         f"flag = pathlib.Path({str(flag)!r})\n"
         "if not flag.exists():\n    flag.touch()\n    os.kill(os.getpid(), signal.SIGKILL)\n"
         "survived = sum(prepared)"),
        f"{bump(tmp_path, 'after')}\nsurvived * 10",
    ])
    result = cli("run", str(nb), "-o", str(tmp_path / "out.ipynb"), "--max-restarts", "2",
                 cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kernel restart," in result.stdout
    assert "2 steps executed, 1 replayed" in result.stdout
    assert [runs(tmp_path, n) for n in ("before", "crash", "after")] == [1, 2, 1]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[-1]["data"]["text/plain"] == "60"


def test_run_gives_up_after_max_restarts(tmp_path: Path, env: dict[str, str]) -> None:
    nb = write_notebook(tmp_path / "doomed.ipynb", [
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    result = cli("run", str(nb), "--max-restarts", "1", "-q", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "no restart is left (--max-restarts 1)" in result.stdout


def test_missing_notebook_is_a_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    result = cli("run", str(tmp_path / "nope.ipynb"), cwd=tmp_path, env=env)
    assert result.returncode == 2 and "no notebook at" in result.stderr
    result = cli("status", str(tmp_path), cwd=tmp_path, env=env)
    assert result.returncode == 2 and "no store at" in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["run", "nope.ipynb"], "kitteh-magic run: no notebook at nope.ipynb"),
    (["verify", "."], "kitteh-magic verify: no store at"),
    (["gc", "--max-size", "lots"], "kitteh-magic gc: argument --max-size: not a size: 'lots'"),
    (["clear", "a", "b"], "kitteh-magic: unrecognized arguments: b"),
    (["frobnicate"], "kitteh-magic: argument command: invalid choice: 'frobnicate'"),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path: Path, env: dict[str, str], args: list[str],
                                          says: str) -> None:
    result = cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(says), line
