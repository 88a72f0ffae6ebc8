"""A failed `kitteh-magic run`: exit 1, the cell named, colours only on a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel import runs
from test_cli import bump, cli, in_terminal, write_notebook

pytestmark = pytest.mark.kernel

ESC = "\x1b["


def test_a_failed_cell_is_named_and_piped_output_has_no_colours(tmp_path: Path,
                                                                key_file: Path) -> None:
    env = {"KITTEH_MAGIC_KEY_FILE": str(key_file), "KITTEH_MAGIC_DIR": "", "NO_COLOR": ""}
    nb = write_notebook(tmp_path / "fails.ipynb", [
        "ready = 1",
        "%%durable load\nvalue = ready / 0",
        f"{bump(tmp_path, 'after')}\nafter = 2",
    ])
    piped = cli("run", str(nb), "--json", cwd=tmp_path, env=env)
    assert piped.returncode == 1, piped.stderr
    assert ESC not in piped.stdout and ESC not in piped.stderr
    summary = json.loads(piped.stdout)
    cell_id = summary["failed"]["id"]
    assert summary["failed"] == {"index": 2, "id": cell_id, "step": "load",
                                 "source": "value = ready / 0",
                                 "error": "ZeroDivisionError: division by zero"}
    assert (summary["executed"], summary["replayed"]) == (1, 0)
    assert runs(tmp_path, "after") == 0  # the run stopped there
    # The kernel's traceback goes to stderr, without its colours.
    assert "value = ready / 0" in piped.stderr and "ZeroDivisionError" in piped.stderr
    # Without -o nothing is written, and a line says so.
    assert piped.stderr.rstrip().splitlines()[-1] == (
        "kitteh-magic run: the executed notebook is not written: give -o OUT.ipynb (or -o - "
        "for stdout)")
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == ["fails.ipynb"]

    # On a terminal the traceback keeps the kernel's colours, unless NO_COLOR says otherwise;
    # the summary names the cell (numbered from 1) in one line either way.
    code, coloured, _ = in_terminal("run", str(nb), "-q", cwd=tmp_path, env=env)
    assert code == 1
    assert ESC in coloured
    assert ("failed at cell 3, step 'load' (value = ready / 0): "
            "ZeroDivisionError: division by zero") in coloured
    code, plain, _ = in_terminal("run", str(nb), "-q", cwd=tmp_path,
                                 env={**env, "NO_COLOR": "1"})
    assert code == 1
    assert ESC not in plain and "ZeroDivisionError" in plain
