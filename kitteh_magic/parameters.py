"""Notebook parameters as papermill takes them: typed from the command line, injected as a cell.

papermill's conventions, which ``kitteh-magic run`` follows so that its users need learn nothing:

* ``-p NAME VALUE`` types the value: ``True``/``False``, ``None``, an int, a float, else the
  string itself; ``-r NAME VALUE`` keeps it a string; ``-y YAML`` and ``-f FILE.yaml`` give a
  mapping of names to values, read as YAML (dates stay strings, as papermill's loader keeps
  them). Later sources win: files, then YAML strings, then ``-p``, then ``-r``.
* The values are assigned in a new code cell tagged ``injected-parameters``, inserted after the
  cell tagged ``parameters`` (whose assignments are the defaults), or at the top when no cell
  has that tag. An ``injected-parameters`` cell left by an earlier run is replaced.

Under ``kitteh-magic run`` the injected cell is a durable step like any other: new values
change its code, so it and the steps that read the parameters execute, and values seen before
replay. Its cell id is fixed (``injected-parameters``), so it is always the same step.
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
INJECTED_ID = "injected-parameters"


class ParameterError(ValueError):
    """A parameter that cannot be used: its message names it and what was expected."""


def typed(text: str) -> object:
    """A ``-p`` value as papermill types it.

    >>> typed("5"), typed("0.5"), typed("True"), typed("None"), typed("1e3"), typed("five")
    (5, 0.5, True, None, 1000.0, 'five')
    """
    special: dict[str, object] = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


class _NoDates(yaml.SafeLoader):
    """YAML's safe loader without implicit timestamps: ``2024-01-31`` stays a string."""


_NoDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def from_yaml(text: str, source: str) -> dict[str, object]:
    """The mapping a YAML document gives.

    >>> from_yaml("n: 5\\nday: 2024-01-31\\nrates: [0.1, 0.2]", "-y")
    {'n': 5, 'day': '2024-01-31', 'rates': [0.1, 0.2]}

    Raises:
        ParameterError: the text is not YAML, or not a mapping of names to values; ``source``
            (``-y`` or the file's name) says where it came from.
    """
    try:
        found = yaml.load(text, Loader=_NoDates)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ParameterError(f"{source} is not valid YAML{at}: {problem}") from exc
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ParameterError(f"{source} must be a mapping of names to values "
                             f"(NAME: VALUE), not a {type(found).__name__}")
    return {str(name): value for name, value in found.items()}


def from_file(path: Path) -> dict[str, object]:
    """The parameters of a YAML file (``-f``).

    Raises:
        ParameterError: the file cannot be read, or :func:`from_yaml` refuses it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ParameterError(f"cannot read the parameters file {path}: {reason}") from exc
    return from_yaml(text, str(path))


def collect(files: Iterable[Path] = (), yamls: Iterable[str] = (),
            typed_pairs: Iterable[tuple[str, str]] = (),
            raw_pairs: Iterable[tuple[str, str]] = ()) -> dict[str, object]:
    """Every source of parameters merged, later sources winning as in papermill: files, YAML
    strings, ``-p`` pairs (typed), ``-r`` pairs (strings).

    >>> collect(yamls=["n: 1\\nname: a"], typed_pairs=[("n", "2")], raw_pairs=[("tag", "3")])
    {'n': 2, 'name': 'a', 'tag': '3'}

    Raises:
        ParameterError: a source cannot be read, or a name is not a Python identifier.
    """
    merged: dict[str, object] = {}
    for path in files:
        merged.update(from_file(path))
    for text in yamls:
        merged.update(from_yaml(text, "-y"))
    merged.update((name, typed(value)) for name, value in typed_pairs)
    merged.update(raw_pairs)
    for name in merged:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ParameterError(f"parameter name {name!r} is not a Python variable name")
    return merged


def literal(value: object) -> str:
    """Python source that evaluates to ``value`` (what YAML and ``-p`` can give).

    >>> literal({"a": [1, 2.5, None]}), literal(float("inf")), literal("it's")
    ("{'a': [1, 2.5, None]}", "float('inf')", '"it\\'s"')

    Values of other types (a YAML ``!!timestamp``) are given as their text.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, bool | int | float | str | bytes) or value is None:
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        items = ", ".join(literal(v) for v in value)
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) \
            else f"[{items}]"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(literal(v) for v in value) + "}" if value else "set()"
    return repr(str(value))


def source(parameters: Mapping[str, object]) -> str:
    """The injected cell's code.

    >>> print(source({"n": 5, "name": "x"}))
    # Parameters
    n = 5
    name = 'x'
    """
    return "\n".join(["# Parameters", *(f"{k} = {literal(v)}" for k, v in parameters.items())])


def inject(nb: Any, parameters: Mapping[str, object]) -> int | None:
    """Insert the ``injected-parameters`` cell into ``nb`` (an nbformat v4 notebook, changed in
    place); returns its index, or None when there are no parameters (nothing is changed).

    A cell left by an earlier run (tagged ``injected-parameters``) is removed first, and the new
    one goes where papermill puts it: after the first cell tagged ``parameters``, else first.
    """
    if not parameters:
        return None
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    position = next((i + 1 for i, c in enumerate(nb.cells)
                     if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), 0)
    cell = nbformat.v4.new_code_cell(source(parameters))
    # A fixed id makes it one step whatever the values; notebooks older than nbformat 4.5 have
    # no cell ids at all (the step is then named by its code).
    if nb.get("nbformat_minor", 5) >= 5:
        cell["id"] = INJECTED_ID
    else:
        cell.pop("id", None)
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(position, cell)
    return position


def has_parameters_cell(nb: Any) -> bool:
    """Whether a cell is tagged ``parameters`` (papermill warns when none is)."""
    return any(PARAMETERS_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def unknown(nb: Any, parameters: Iterable[str]) -> list[str]:
    """The parameters no cell tagged ``parameters`` assigns (papermill warns of them: a
    misspelt name is otherwise a silent default). [] when no cell is tagged or a tagged cell's
    code is not plain Python (magics), since nothing can be said then.

    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("n = 1\\nalpha: float = 0.5\\na, b = 1, 2")
    >>> cell.metadata["tags"] = ["parameters"]
    >>> unknown(nbformat.v4.new_notebook(cells=[cell]), ["n", "alpha", "b", "nn"])
    ['nn']
    """
    tagged = [c for c in nb.cells if c.get("cell_type") == "code"
              and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    assigned: set[str] = set()
    for cell in tagged:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            return []
        assigned.update(node.id for node in ast.walk(tree)
                        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store))
    return [name for name in parameters if name not in assigned] if tagged else []
