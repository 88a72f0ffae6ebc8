"""A notebook's session follows its binding (issue 10, ARCHITECTURE.md): the server extension writes
``<runtime>/kitteh-magic-<kernel id>.json`` (the notebook's current path and its
``kitteh_magic`` metadata), and the kernel, which finds it beside its connection file, runs its
steps in the session the metadata names, re-reading the file when it changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel import Kernel, runs

from kitteh_magic import locate

pytestmark = pytest.mark.kernel


@pytest.fixture
def bound(tmp_path: Path, kernel_env: dict[str, str]) -> Iterator[Callable[[str], Kernel]]:
    """Start a kernel as a Jupyter server would, for the notebook at a path; its binding file is
    ``kernel.binding``."""
    kernels: list[Kernel] = []

    def start(notebook: str) -> Kernel:
        runtime = tmp_path / "runtime"
        runtime.mkdir(exist_ok=True)
        connection = runtime / f"kernel-k{len(kernels)}.json"
        kernel = Kernel(tmp_path, {**kernel_env, "JPY_SESSION_NAME": str(tmp_path / notebook)},
                        connection_file=connection)
        kernels.append(kernel)
        kernel.binding = locate.connection_binding(connection)  # type: ignore[attr-defined]
        kernel.ok("%load_ext kitteh_magic")
        return kernel

    yield start
    for kernel in kernels:
        kernel.shutdown()


def _bind(kernel: Kernel, notebook: Path, session: str) -> None:
    locate.write_binding(kernel.binding, str(notebook),  # type: ignore[attr-defined]
                         {"kitteh_magic": {"session": session}})


def _sessions(kernel: Kernel) -> dict[str, list[str]]:
    """Each session of the store with its steps."""
    code = ("import json\nc = _kitteh_engine_.catalog\n"
            "print(json.dumps({s.name: [p.step for p in c.steps(s.name)] for s in c.sessions()}))")
    return dict(json.loads(kernel.ok(code).stdout))


def test_steps_run_in_the_session_the_binding_names_until_one_is_chosen(
        bound: Callable[[str], Kernel], tmp_path: Path) -> None:
    kernel = bound("a.ipynb")
    kernel.ok("%%durable first\nx = 1")
    _bind(kernel, tmp_path / "moved" / "c.ipynb", "team-x")
    kernel.ok("%%durable second\ny = 2")
    kernel.ok("%durable session mine")  # chosen: the binding no longer moves it
    _bind(kernel, tmp_path / "c.ipynb", "team-y")
    kernel.ok("%%durable third\nz = 3")
    assert _sessions(kernel) == {"a.ipynb": ["first"], "team-x": ["second"], "mine": ["third"]}


def test_a_renamed_notebook_replays_its_steps_after_a_restart(
        bound: Callable[[str], Kernel], tmp_path: Path, counter: Callable[[str], str]) -> None:
    kernel = bound("a.ipynb")
    cell = f"%%durable load\n{counter('load')}\nrows = [1, 2, 3]\nlen(rows)"
    assert kernel.ok(cell).text == "3"
    # File > Rename: the frontend keeps the session in the metadata, the server writes the
    # binding, and Jupyter restarts the kernel with the new path.
    _bind(kernel, tmp_path / "b.ipynb", "a.ipynb")
    kernel.restart(env={"JPY_SESSION_NAME": str(tmp_path / "b.ipynb")})
    kernel.ok("%load_ext kitteh_magic")
    again = kernel.ok(cell)
    assert again.replayed and again.text == "3" and runs(tmp_path, "load") == 1
    assert _sessions(kernel) == {"a.ipynb": ["load"]}
