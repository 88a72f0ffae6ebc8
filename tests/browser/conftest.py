"""A real JupyterLab with kitteh_magic's extensions, and headless Chromium driven by Playwright.

JupyterLab runs as a subprocess in its own process group, with every Jupyter directory isolated
in a temporary folder; the prebuilt extension from the work tree is linked into that data
directory, so the tests need no install step and always see the committed build.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass
class Lab:
    """A running JupyterLab."""

    url: str
    token: str
    root: Path
    env: dict[str, str]

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Call the server's REST API with the token."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def page_url(self, notebook: str) -> str:
        # A workspace per notebook: no tabs left open by an earlier test, and no reload
        # (``?reset`` reloads the page while the first kernel session is starting).
        workspace = notebook.replace("/", "-").removesuffix(".ipynb")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def write_notebook(self, name: str, cells: list[tuple[str, str]]) -> Path:
        """Write a notebook of code cells ``(cell id, source)`` with kernelspec metadata."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        notebook = {
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
            "cells": [{"cell_type": "code", "id": cell_id, "metadata": {}, "source": source,
                       "outputs": [], "execution_count": None} for cell_id, source in cells],
        }
        path.write_text(json.dumps(notebook))
        return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_settings(directory: Path) -> None:
    settings = {
        # No news toast and no update check: they would cover the panel in screenshots.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/apputils-extension/themes.jupyterlab-settings":
            {"theme": "JupyterLab Light"},
    }
    for name, value in settings.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


# Module scope, not session: Playwright's sync API keeps an event loop running until it is
# closed, which would break the asyncio-based server tests that run after these.
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a temporary root, with kitteh_magic's lab and server extensions."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-chromium.sh for browser tests")
    base = tmp_path_factory.mktemp("lab")
    root, data, config = base / "root", base / "data", base / "config"
    for path in (root, data / "labextensions", config):
        path.mkdir(parents=True)
    (data / "labextensions" / "kitteh_magic").symlink_to(ROOT / "kitteh_magic" / "labextension")
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"kitteh_magic": True}}}))
    _user_settings(base / "settings")
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(data),
        # Those folders before the environment's: in a virtualenv Jupyter looks in its
        # share/jupyter first, where `pip install -e` copied the build of that day.
        "JUPYTER_PREFER_ENV_PATH": "0",
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "IPYTHONDIR": str(base / "ipython"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "KITTEH_MAGIC_KEY_FILE": str(base / "key"),
    }
    env.pop("KITTEH_MAGIC_DIR", None)
    log = (base / "lab.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={base / 'settings'}",
         f"--LabApp.workspaces_dir={base / 'workspaces'}", "--LabApp.expose_app_in_browser=True"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, env)
    deadline = time.monotonic() + 60
    while True:
        try:
            lab.request("GET", "/api/status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError(
                    "JupyterLab did not start:\n" + (base / "lab.log").read_text()) from None
            time.sleep(0.25)
    try:
        yield lab
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    """Headless Debian Chromium (Playwright cannot download its own browsers here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; a failing test leaves a screenshot in test-artifacts/."""
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    failed = ARTIFACTS / f"failed-{request.node.name}.png"
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(failed))
    else:
        failed.unlink(missing_ok=True)  # an earlier failure's picture would mislead
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Replace pytest-jupyter's autouse loop fixture here (``tests/test_server.py`` loads the
    plugin for the whole run): it closes the thread's current loop, which is Playwright's."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """Replace pytest-jupyter's autouse cleanup of the in-process ``ServerApp`` too: these tests
    start none (JupyterLab runs in a subprocess), and its ``run_until_complete`` cannot run inside
    Playwright's running loop (it left an un-awaited ``ServerApp._cleanup`` coroutine warning)."""
    yield
