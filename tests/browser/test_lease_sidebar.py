"""The Durable sidebar names the kernel that runs a step and the ones waiting for it (§4.13)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Lab
from test_sidebar import PANEL, open_notebook, row

from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.lease import HOST, LeaseDoc, Party, lease_key
from kitteh_magic.steps.records import StepPointer, pointer_key
from kitteh_magic.store import Store

pytestmark = pytest.mark.browser


@pytest.fixture
def holder() -> Iterator[psutil.Process]:
    """A live process standing in for the kernel that runs the step."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_the_running_steps_kernel_and_its_waiter_are_shown(
        page: Any, lab: Lab, holder: psutil.Process) -> None:
    notebook = "lease/busy.ipynb"
    lab.write_notebook(notebook, [("cell-job", "%%durable job\npass")])
    directory = lab.root / "lease" / ".kitteh"
    now = time.time()
    running = Party(pid=holder.pid, host=HOST, proc_start=holder.create_time(), token="t",
                    since=now - 5, heartbeat=now)
    waiter = Party(pid=os.getpid(), host=HOST, proc_start=psutil.Process().create_time(),
                   since=now - 2, heartbeat=now)
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        seq = Catalog(store).claim_seq("busy.ipynb", str(lab.root / notebook))
        store.put_json(pointer_key("busy.ipynb", "job"), StepPointer(
            session="busy.ipynb", step="job", seq=seq, cell_id="cell-job", state="running",
            started=now - 5, pid=holder.pid, host=HOST, proc_start=holder.create_time(),
        ).to_doc())
        store.put_json(lease_key("busy.ipynb", "job"),
                       LeaseDoc(holder=running, waiters=[waiter]).to_doc())

    open_notebook(page, lab, notebook)
    fact = row(page, "job", "running").locator(".km-Step-lease")
    fact.wait_for()
    assert fact.inner_text() == f"kernel {holder.pid} on {HOST} · 1 waiting"
    title = fact.get_attribute("title")
    assert f"kernel {holder.pid} on {HOST} runs this step" in title
    assert f"kernel {os.getpid()} on {HOST}" in title

    # The holder releases the lease: the fact goes with the next poll.
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        store.put_json(lease_key("busy.ipynb", "job"), LeaseDoc(released=time.time()).to_doc())
    page.wait_for_function(
        f"document.querySelectorAll('{PANEL} .km-Step-lease').length === 0", timeout=10_000)
