"""Shared fixtures: isolated stores and keys, and real kernels."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernel import Kernel
from pgserver import PgServer, PgUnavailable

# The server extension's handler tests use pytest-jupyter's jp_fetch (the `test` extra installs
# it); a plugin must be declared in the root conftest.
pytest_plugins = ["pytest_jupyter.jupyter_server"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests skip without Playwright (the `browser` extra), as they do without Chromium,
    so that the `test` extra alone runs `pytest` to the end."""
    if importlib.util.find_spec("playwright") is not None:
        return
    skip = pytest.mark.skip(reason="Playwright is missing: pip install -e '.[test,browser]'")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A signing key of the test's own, so no test touches the user's."""
    path = tmp_path / "config" / "key"
    monkeypatch.setenv("KITTEH_MAGIC_KEY_FILE", str(path))
    return path


@pytest.fixture
def kernel_env(tmp_path: Path, key_file: Path) -> dict[str, str]:
    """Environment of a kernel whose store and key live in the test's directory."""
    return {
        "KITTEH_MAGIC_DIR": str(tmp_path / "store"),
        "KITTEH_MAGIC_KEY_FILE": str(key_file),
        "PYTHONWARNINGS": "default",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }


@pytest.fixture
def start_kernel(tmp_path: Path, kernel_env: dict[str, str]) -> Iterator[Callable[..., Kernel]]:
    """Start kernels (with kitteh_magic loaded) that are shut down after the test."""
    kernels: list[Kernel] = []

    def start(load: bool = True, **env: str) -> Kernel:
        kernel = Kernel(tmp_path, {**kernel_env, **env})
        kernels.append(kernel)
        if load:
            kernel.ok("%load_ext kitteh_magic")
        return kernel

    yield start
    for kernel in kernels:
        kernel.shutdown()


@pytest.fixture
def kernel(start_kernel: Callable[..., Kernel]) -> Kernel:
    """One kernel with kitteh_magic loaded."""
    return start_kernel()


@pytest.fixture
def counter(tmp_path: Path) -> Callable[[str], str]:
    """Code that appends to a file, so a test can count how often a cell body really ran."""
    def code(name: str) -> str:
        path = tmp_path / f"runs-{name}.txt"
        # Closed at once: a file left open would put a ResourceWarning in every kernel's stderr.
        return f"(lambda f: (f.write('x'), f.close()))(open({str(path)!r}, 'a'))"
    return code


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for this test process (each xdist worker starts its own).

    Skipped when PostgreSQL is not installed, except under CI, where that is a failure."""
    try:
        server = PgServer()
    except PgUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(str(err))
        pytest.skip(str(err))
    try:
        server.start()
    except PgUnavailable as err:
        server.stop()
        pytest.fail(str(err))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on :func:`pg_server`: one per test."""
    return pg_server.database()
