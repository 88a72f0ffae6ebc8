"""Variants of `kitteh-magic run` and the store commands a papermill user (or a careless one)
types: values that look like options, a misspelt parameter, an `-o` that cannot be written, a
file that is not a notebook, a session that does not exist. One executed notebook serves every
assertion that needs a kernel; the mistakes are caught before any kernel starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_cli import cli


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str],
                                                          subprocess.CompletedProcess[str]]:
    """A notebook run once with awkward -p values, stopped by a bare KeyboardInterrupt."""
    folder = tmp_path_factory.mktemp("variants")
    env = {"KITTEH_MAGIC_KEY_FILE": str(folder / "key"), "KITTEH_MAGIC_DIR": "",
           "NO_COLOR": ""}
    defaults = new_code_cell("x = 0.0\nword = 'w'\nraw = 'r'\nstop = False")
    defaults.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[defaults, new_code_cell("print(repr((x, word, raw)))"),
                             new_code_cell("if stop:\n    raise KeyboardInterrupt")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, folder / "nb.ipynb")
    done = cli("run", "nb.ipynb", "-o", "out.ipynb", "--json", "-p", "x", "-1.5e3",
               "-p", "word", "--yes", "-r", "raw", "-inf", "-p", "stop", "True",
               "-p", "wrod", "1", cwd=folder, env=env)
    return folder, env, done


@pytest.mark.kernel
def test_values_that_look_like_options_are_values_as_in_papermill(
        ran: tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]) -> None:
    folder, _, done = ran
    out = nbformat.read(folder / "out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in out.cells[2].outputs)
    assert printed == "(-1500.0, '--yes', '-inf')\n"
    # A name the parameters cell does not assign is injected all the same, with a warning.
    assert ("kitteh-magic run: the cell tagged 'parameters' does not define 'wrod': it is "
            "injected all the same (a misspelt name?)") in done.stderr.splitlines()


@pytest.mark.kernel
def test_a_bare_keyboard_interrupt_is_named_without_a_dangling_colon(
        ran: tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]) -> None:
    _, _, done = ran
    assert done.returncode == 1, done.stderr
    failed = json.loads(done.stdout)["failed"]
    assert (failed["index"], failed["error"]) == (3, "KeyboardInterrupt")


@pytest.mark.kernel
def test_a_session_the_store_does_not_have_is_a_mistake(
        ran: tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]) -> None:
    folder, env, _ = ran
    for args in (["invalidate", ".", "--all", "--session", "nosuch"],
                 ["log", ".", "some-step", "--session", "nosuch"],
                 ["invalidate", "nb.ipynb", "--all", "--session", "nosuch"]):
        done = cli(*args, cwd=folder, env=env)
        assert done.returncode == 2, (args, done.stdout)
        assert done.stderr.startswith(f"kitteh-magic {args[0]}: no session 'nosuch' in ")
        assert "'nb.ipynb'" in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_output_that_cannot_be_written_stops_the_run_before_it_starts(
        tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell(f"open({str(tmp_path / 'ran')!r}, 'w')")])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    (tmp_path / "folder").mkdir()
    env = {"KITTEH_MAGIC_KEY_FILE": str(tmp_path / "key"), "KITTEH_MAGIC_DIR": ""}
    for output, said in (("missing/out.ipynb", "cannot write -o missing/out.ipynb: No such "
                                               "file or directory"),
                         ("folder", "-o folder is a folder: give the notebook's file name")):
        done = cli("run", "nb.ipynb", "-o", output, cwd=tmp_path, env=env)
        assert (done.returncode, done.stderr) == (2, f"kitteh-magic run: {said}\n")
    assert not (tmp_path / "ran").exists() and not (tmp_path / "missing").exists()


def test_store_commands_refuse_a_file_that_is_not_a_notebook(tmp_path: Path) -> None:
    (tmp_path / ".kitteh" / "index").mkdir(parents=True)  # a store is there: not the reason
    (tmp_path / "bad.ipynb").write_text("{not json")
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    env = {"KITTEH_MAGIC_KEY_FILE": str(tmp_path / "key"), "KITTEH_MAGIC_DIR": ""}
    for name, why in (("bad.ipynb", "it is not JSON"),
                      ("list.ipynb", "it has no nbformat version")):
        for args in (["status", name], ["log", name, "step"], ["clear", name, "--yes"]):
            done = cli(*args, cwd=tmp_path, env=env)
            assert (done.returncode, done.stderr) == (
                2, f"kitteh-magic {args[0]}: {name} is not a notebook: {why}\n"), args


@pytest.mark.kernel
def test_a_reader_that_goes_away_ends_the_command_silently(
        ran: tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]) -> None:
    folder, env, _ = ran
    for args in (["status", "nb.ipynb"], ["status", ".", "--json"]):
        # `kitteh-magic status | head -1`, with the reader gone before the first write.
        proc = subprocess.Popen([sys.executable, "-m", "kitteh_magic.cli", *args], cwd=folder,
                                env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        said = proc.stderr.read()
        assert (proc.wait(timeout=60), said) == (141, ""), args


@pytest.mark.kernel
def test_ctrl_c_interrupts_the_cell_and_stops_the_run_without_a_restart(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    nb = new_notebook(cells=[
        new_code_cell(f"import time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)"),
        new_code_cell(f"open({str(tmp_path / 'after')!r}, 'w').close()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    env = {**os.environ, "KITTEH_MAGIC_KEY_FILE": str(tmp_path / "key"), "KITTEH_MAGIC_DIR": ""}
    # A terminal's Ctrl-C reaches the command only: jupyter_client starts kernels in a session
    # of their own.
    proc = subprocess.Popen([sys.executable, "-m", "kitteh_magic.cli", "run", "nb.ipynb",
                             "-o", "out.ipynb", "--json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the cell never started"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert (summary["signal"], summary["restarts"]) == ("SIGINT", 0)
    assert summary["failed"]["error"] == "KeyboardInterrupt"
    assert not (tmp_path / "after").exists()  # no cell starts after Ctrl-C
    written = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert written.cells[0].outputs[-1]["ename"] == "KeyboardInterrupt"
    status = json.loads(cli("status", "nb.ipynb", "--json", cwd=tmp_path, env=env).stdout)
    assert [row["state"] for row in status[0]["steps"]] == ["interrupted"]
    # nbclient's own handler shut the kernel down under a message being sent, and cleaned up
    # twice: the kernel's and asyncio's complaints ended on stderr.
    assert "[IPKernelApp] ERROR" not in err and "Task exception was never retrieved" not in err


def test_a_timeout_of_0_or_a_notebook_from_stdin_is_a_mistake(tmp_path: Path) -> None:
    done = cli("run", "nb.ipynb", "--timeout", "0", cwd=tmp_path, env={})
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "--timeout: not a whole number of 1 or more: '0'" in done.stderr
    done = cli("run", "-", cwd=tmp_path, env={})
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "kitteh-magic run: a notebook from stdin (-) cannot be run" in done.stderr


def test_a_name_any_parameters_cell_assigns_is_known() -> None:
    from kitteh_magic import parameters

    first, second = new_code_cell("n = 1"), new_code_cell("limit = 2")
    first.metadata["tags"] = second.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[first, new_code_cell("x = n"), second])
    assert parameters.unknown(nb, ["n", "limit", "nn"]) == ["nn"]
    assert parameters.inject(nb, {"n": 2}) == 1  # after the first, as papermill


def test_a_notebook_that_fails_its_schema_is_named_where(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    for name, change, where in (
            ("kernelspec.ipynb", lambda d: d["metadata"].update(kernelspec="python3"),
             "metadata/kernelspec: 'python3' is not of type 'object'"),
            ("source.ipynb", lambda d: d["cells"][0].update(source=5),
             "cells/0/source: 5 is not valid under any of the given schemas")):
        doc = json.loads(nbformat.writes(nb))
        change(doc)
        (tmp_path / name).write_text(json.dumps(doc))
        done = cli("run", name, cwd=tmp_path, env={})
        assert (done.returncode, done.stderr) == (
            2, f"kitteh-magic run: {name} is not a notebook: {where}\n")
