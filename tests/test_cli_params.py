"""`kitteh-magic run -p/-r/-y/-f`: parameters as papermill injects and types them.

The kernel says what it received (the cell prints ``repr`` of every parameter); counters say
which steps ran again when a parameter changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from kernel import runs
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from test_cli import bump, cli

from kitteh_magic import parameters

DEFAULTS = ("n = 1\nratio = 1.0\nflag = False\nnothing = 'default'\nword = 'w'\nraw = 'r'\n"
            "items = []\nday = 'x'\nlimit = 0")


def notebook(path: Path, tagged: bool = True) -> Path:
    defaults = new_code_cell(DEFAULTS)
    if tagged:
        defaults.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        new_markdown_cell("# report"), defaults,
        new_code_cell(f"{bump(path.parent, 'report')}\n"
                      "print(repr((n, ratio, flag, nothing, word, raw, items, day, limit)))"),
        new_code_cell(f"{bump(path.parent, 'square')}\nsquared = n * n\nsquared"),
        new_code_cell(f"{bump(path.parent, 'fixed')}\nfixed = 'const'"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.kernel
def test_parameters_are_typed_injected_and_change_what_depends_on_them(
        tmp_path: Path, key_file: Path) -> None:
    env = {"KITTEH_MAGIC_KEY_FILE": str(key_file), "KITTEH_MAGIC_DIR": ""}
    nb = notebook(tmp_path / "report.ipynb")
    (tmp_path / "params.yaml").write_text("limit: 10\nn: 2\n")
    first = cli("run", str(nb), "-o", "out.ipynb", "--json", "-f", "params.yaml",
                "-y", "items: [1, two]\nday: 2024-01-31",
                "-p", "n", "5", "-p", "ratio", "0.5", "-p", "flag", "True", "-p", "nothing", "None",
                "-p", "word", "hi", "-r", "raw", "5", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    # After the cell tagged "parameters", a cell tagged "injected-parameters", as papermill.
    injected = out.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source.splitlines()[0] == "# Parameters"
    # -p typed as papermill types it, -r a string, YAML typed by YAML (dates kept strings);
    # -p wins over -f.
    printed = "".join(o.get("text", "") for o in out.cells[3].outputs)
    assert printed == "(5, 0.5, True, None, 'hi', '5', [1, 'two'], '2024-01-31', 10)\n"
    assert out.cells[4].outputs[-1]["data"]["text/plain"] == "25"
    summary = json.loads(first.stdout)
    assert (summary["executed"], summary["replayed"]) == (5, 0)
    assert [c["index"] for c in summary["cells"]] == [1, 2, 3, 4, 5]

    # Run the executed notebook with another n: its injected cell is replaced, not added to;
    # the steps that read n execute, the others replay.
    second = cli("run", "out.ipynb", "-o", "again.ipynb", "-p", "n", "6", "--json",
                 cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    again = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    tagged = [c for c in again.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert [c.source for c in tagged] == ["# Parameters\nn = 6"]
    assert again.cells[4].outputs[-1]["data"]["text/plain"] == "36"
    assert [runs(tmp_path, name) for name in ("report", "square", "fixed")] == [2, 2, 1]
    states = {c["index"]: c["state"] for c in json.loads(second.stdout)["cells"]}
    assert states == {1: "replayed", 2: "executed", 3: "executed", 4: "executed", 5: "replayed"}


def test_without_a_parameters_cell_they_go_first_and_replace_an_earlier_injection(
        tmp_path: Path) -> None:
    nb = nbformat.read(notebook(tmp_path / "plain.ipynb", tagged=False), as_version=4)
    assert parameters.inject(nb, {"n": 3}) == 0
    assert parameters.inject(nb, {"n": 4, "names": ["a"]}) == 0
    tagged = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert [c.source for c in tagged] == ["# Parameters\nn = 4\nnames = ['a']"]
    assert nb.cells[0] is tagged[0]
    assert parameters.inject(nb, {}) is None  # nothing to inject: the notebook is unchanged
    assert len(nb.cells) == 6


@pytest.mark.parametrize(("text", "value"), [
    ("5", 5), ("-3", -3), ("0.5", 0.5), ("1e3", 1000.0), ("True", True), ("False", False),
    ("None", None), ("true", "true"), ("hello", "hello"), ("", ""), ("nan", float("nan")),
])
def test_p_values_are_typed_as_papermill_types_them(text: str, value: object) -> None:
    got = parameters.typed(text)
    assert type(got) is type(value)
    assert got == value or (isinstance(got, float) and got != got)  # nan is not nan
    source = parameters.source({"x": got})
    namespace: dict[str, object] = {}
    exec(source, namespace)  # the injected code gives the value back
    assert repr(namespace["x"]) == repr(got)
