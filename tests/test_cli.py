"""`kitteh-magic run` and `status`: headless runs through nbclient, the way a user calls them.

The oracle of a run is a plain nbclient run of the same notebook (no kitteh_magic): a durable
run, executed or replayed, must leave the same outputs; the counters say what really ran.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel import ipc_config, runs
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kitteh_magic.maintenance import parse_size

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


def plain_run(path: Path) -> Any:
    """The oracle: the notebook executed by nbclient alone, in its folder."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   config=ipc_config()).execute()
    return nb


def outputs(nb: Any) -> list[tuple[Any, list[Any]]]:
    """What a reader of the notebook sees of each code cell: its count and its outputs."""
    return [(c.get("execution_count"), c.get("outputs")) for c in nb.cells
            if c.cell_type == "code"]


def saved(tmp_path: Path, nb: Path, env: dict[str, str]) -> float:
    status = cli("status", str(nb), "--json", cwd=tmp_path, env=env)
    return float(json.loads(status.stdout)[0]["totals"]["saved"])


def test_run_twice_executes_then_replays(tmp_path: Path, env: dict[str, str]) -> None:
    nb = write_notebook(tmp_path / "flow.ipynb", [
        f"{bump(tmp_path, 'one')}\nimport time\ntime.sleep(0.4)\nnumbers = list(range(10))\n"
        "print('loaded', len(numbers))",
        f"{bump(tmp_path, 'two')}\ntotal = sum(numbers)\ntotal",
        "!echo plain cell",
        f"{bump(tmp_path, 'three')}\nimport sys\nfrom IPython.display import HTML, display\n"
        "display(HTML('<b>bold</b>'))\nprint('to stderr', file=sys.stderr)\ntotal * 2",
    ])
    first = cli("run", str(nb), "-o", str(tmp_path / "out.ipynb"), "--json", "--progress",
                cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert [runs(tmp_path, n) for n in ("one", "two", "three")] == [1, 1, 1]
    assert (summary["executed"], summary["replayed"], summary["plain"]) == (3, 0, 1)
    assert (summary["restarts"], summary["failed"], summary["resumed"]) == (0, None, 0)
    assert summary["output"] == str(tmp_path / "out.ipynb")
    assert summary["session"] == "flow.ipynb"
    assert summary["seconds"] > 0.4
    # The bar counts the 4 code cells: not the runner's setup cell, not the markdown cell.
    bar = first.stderr.replace("\r", "\n").splitlines()
    assert any("4/4" in line for line in bar), first.stderr
    assert not any("5/4" in line or re.search(r"cell \d", line) for line in bar), first.stderr
    assert (tmp_path / ".kitteh").is_dir()  # the store sits beside the notebook

    # A renamed copy (the executed notebook) keeps its session from its metadata: it replays.
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.metadata["kitteh_magic"]["session"] == "flow.ipynb"
    before = saved(tmp_path, nb, env)
    second = cli("run", str(tmp_path / "out.ipynb"), "-o", str(tmp_path / "again.ipynb"),
                 "--json", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert [runs(tmp_path, n) for n in ("one", "two", "three")] == [1, 1, 1]
    assert (summary["executed"], summary["replayed"], summary["plain"]) == (0, 3, 1)
    assert summary["session"] == "flow.ipynb"
    # Time saved is what the run added to the session's figure (one definition).
    assert summary["saved"] == pytest.approx(saved(tmp_path, nb, env) - before, abs=1e-6)
    assert summary["saved"] > 0.3
    assert [c["state"] for c in summary["cells"]] == ["replayed"] * 3

    # Clean exports: both executed notebooks have exactly the outputs of a plain run; the
    # facts of each durable cell are in its metadata, not in an output.
    oracle = outputs(plain_run(nb))
    for name, state in (("out.ipynb", "executed"), ("again.ipynb", "replayed")):
        executed = nbformat.read(tmp_path / name, as_version=4)
        assert outputs(executed) == oracle, name
        facts = [c.metadata.get("kitteh_magic") for c in executed.cells if c.cell_type == "code"]
        assert facts[2] is None  # the plain cell ran as itself
        durable = [f for f in facts if f is not None]
        assert [f["state"] for f in durable] == [state] * 3, name
        assert {"step", "state", "duration", "saved"} <= set(durable[0])
        assert durable[0]["duration"] >= 0.4

    status = cli("status", str(nb), "--json", cwd=tmp_path, env=env)
    report = json.loads(status.stdout)[0]
    assert report["session"] == "flow.ipynb"
    assert [row["state"] for row in report["steps"]] == ["replayed"] * 3
    assert report["steps"][0]["cell_id"] == out.cells[1]["id"]  # steps carry the cell ids
    assert [row["step"] for row in report["steps"]] == [f["step"] for f in durable]


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
    # papermill's convention: "-o -" writes the executed notebook to stdout (the summary then
    # goes to stderr).
    result = cli("run", str(nb), "-o", "-", "--max-restarts", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kernel restart," in result.stderr
    assert "2 steps executed, 1 replayed" in result.stderr
    assert [runs(tmp_path, n) for n in ("before", "crash", "after")] == [1, 2, 1]
    out = nbformat.reads(result.stdout, as_version=4)
    assert out.cells[-1].outputs[-1]["data"]["text/plain"] == "60"
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == ["crash.ipynb"]


def test_run_gives_up_after_max_restarts(tmp_path: Path, env: dict[str, str]) -> None:
    nb = write_notebook(tmp_path / "doomed.ipynb", [
        "ready = True", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    result = cli("run", str(nb), "--max-restarts", "1", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["restarts"] == 1
    assert summary["failed"]["index"] == 2  # the cell the kernel died in (0: the markdown)
    assert summary["failed"]["source"] == "import os, signal"
    assert summary["failed"]["error"] == ("the kernel died and no restart is left "
                                          "(--max-restarts 1)")


@pytest.mark.parametrize(("args", "says"), [
    (["run", "nope.ipynb"], "kitteh-magic run: no notebook at nope.ipynb"),
    (["run", "broken.ipynb"], "kitteh-magic run: broken.ipynb is not a notebook: Notebook does "
                              "not appear to be JSON"),
    (["run", "empty.ipynb"], "kitteh-magic run: empty.ipynb is not a notebook"),
    (["run", "ok.ipynb", "-p", "2x", "1"], "kitteh-magic run: parameter name '2x' is not a "
                                           "Python variable name"),
    (["run", "ok.ipynb", "-y", "[1, 2]"], "kitteh-magic run: -y must be a mapping of names"),
    (["run", "ok.ipynb", "-y", "a: [1"], "kitteh-magic run: -y is not valid YAML"),
    (["run", "ok.ipynb", "-f", "none.yaml"], "kitteh-magic run: cannot read the parameters "
                                             "file none.yaml: No such file or directory"),
    (["run", "ok.ipynb", "-o", "-", "--json"], "kitteh-magic run: -o - and --json both write"),
    (["run", "ok.ipynb", "--max-restarts", "many"], "kitteh-magic run: argument --max-restarts: "
                                                    "not a whole number of 0 or more: 'many'"),
    (["run", "ok.ipynb", "-p", "n"], "kitteh-magic run: argument -p/--parameters: expected 2 "),
    (["status", "gone.ipynb"], "kitteh-magic status: no such file or folder: gone.ipynb"),
    (["status", "gone"], "kitteh-magic status: no such file or folder: gone"),
    (["verify", "."], "kitteh-magic verify: no store at"),
    (["gc", "--max-size", "lots"], "kitteh-magic gc: argument --max-size: not a size: 'lots'"),
    (["clear", "a", "b"], "kitteh-magic: unrecognized arguments: b"),
    (["frobnicate"], "kitteh-magic: argument command: invalid choice: 'frobnicate'"),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path: Path, env: dict[str, str], args: list[str],
                                          says: str) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    (tmp_path / "empty.ipynb").write_text("{}")
    write_notebook(tmp_path / "ok.ipynb", ["x = 1"])
    result = cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(says), line
    assert "Traceback" not in result.stderr and "parse_size" not in line
    assert not list(tmp_path.glob(".kitteh"))  # nothing ran


def in_terminal(*args: str, cwd: Path, env: dict[str, str], answer: str | None = None,
                ) -> tuple[int, str, str]:
    """Run the command line with a terminal: for its stdin alone when ``answer`` is given (it
    is typed there; stdout and stderr are piped and returned), else for all three (returned as
    one text, second element)."""
    master, slave = pty.openpty()
    piped = answer is not None
    proc = subprocess.Popen([sys.executable, "-m", "kitteh_magic.cli", *args], cwd=cwd,
                            env={**os.environ, **env}, stdin=slave,
                            stdout=subprocess.PIPE if piped else slave,
                            stderr=subprocess.PIPE if piped else slave)
    os.close(slave)
    try:
        if piped:
            os.write(master, answer.encode())
            out, err = proc.communicate(timeout=300)
            return proc.returncode, out.decode(), err.decode()
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has gone
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(timeout=300), b"".join(chunks).decode(), ""
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_a_bad_size_reads_the_same_wherever_argparse_meets_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`%durable gc --max-size` parses sizes with the same function: argparse must show its
    message, not "invalid parse_size value"."""
    parser = argparse.ArgumentParser(prog="%durable gc")
    parser.add_argument("--max-size", type=parse_size)
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-size", "lots"])
    [*_, line] = capsys.readouterr().err.splitlines()
    assert line == "%durable gc: error: argument --max-size: not a size: 'lots' (try 500MB or 2GB)"
