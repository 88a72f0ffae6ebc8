"""Variants of issue 10's JupyterLab scenarios that once failed, in Chromium: one duration format
and one time-saved figure in every place (panel, badge, status bar, the same text as Python's
``human_seconds``), the cell context menu over a selection of several durable cells, and a cell
whose step name is edited."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Lab
from test_native import STATUS, cell
from test_sidebar import (
    PANEL,
    accept_dialog,
    badge,
    open_notebook,
    row,
    seed,
    set_theme,
)

from kitteh_magic.status import HOST, human_seconds
from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.records import StepPointer, pointer_key
from kitteh_magic.store import Store

pytestmark = pytest.mark.browser


def test_one_duration_format_and_invalidating_a_selection(
        page: Any, lab: Lab, artifacts: Path) -> None:
    notebook, directory = seed(lab, "variants")
    # A step resumed from the journal of an interrupted run: "done", and 3.7 s saved by the
    # calls the journal answered. Its badge said "durable · 827 ms · 5 calls", no time saved,
    # beside the panel's "saved 3.7 s".
    path = lab.root / notebook
    doc = json.loads(path.read_text())
    doc["cells"].append({"cell_type": "code", "id": "cell-fit", "metadata": {},
                         "source": "%%durable fit\npass", "outputs": [], "execution_count": None})
    path.write_text(json.dumps(doc))
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        now = time.time()
        ptr = StepPointer(session="pipeline.ipynb", step="fit", cell_id="cell-fit",
                          seq=Catalog(store).claim_seq("pipeline.ipynb", str(path)),
                          state="done", duration=0.827, saved=3.7, activities=5, resumed=5,
                          runs=1, started=now - 5, finished=now - 4, pid=os.getpid(),
                          proc_start=psutil.Process().create_time(), host=HOST)
        store.put_json(pointer_key("pipeline.ipynb", "fit"), ptr.to_doc())
    open_notebook(page, lab, notebook)
    row(page, "clean").wait_for()

    # The panel once said "2m 06s" and "42.0s" where the badge said "2 min 06 s" and
    # `%durable status` "2 min 6 s": every place now writes human_seconds' text.
    saved, clean_run, load_run = human_seconds(126.0), human_seconds(42.0), human_seconds(12.3)
    assert row(page, "clean").locator(".km-Step-saved").inner_text() == f"saved {saved}"
    assert row(page, "clean").locator(".km-Step-duration").inner_text() == clean_run
    assert row(page, "load").locator(".km-Step-duration").inner_text() == load_run
    assert f"replayed · saved {saved}" in badge(page, "clean").inner_text()
    assert f"stored · {load_run}" in badge(page, "load").inner_text()
    total = human_seconds(126.0 + 3.7)
    assert page.inner_text(f"{PANEL} .km-Total-saved .km-Total-value") == total
    assert page.inner_text(STATUS) == f"1 replayed · saved {total}"
    assert row(page, "fit").locator(".km-Step-saved").inner_text() == "saved 3.7 s"
    assert badge(page, "fit").inner_text().endswith("durable · 827 ms · saved 3.7 s · 5 calls")
    # ... and no value ends in an ellipsis in the narrow panel ("2 min…" once).
    clipped = page.evaluate(f"""() => [...document.querySelectorAll('{PANEL} .km-Total-value')]
      .filter(v => v.scrollWidth > v.clientWidth).map(v => v.textContent)""")
    assert clipped == []
    page.screenshot(path=str(artifacts / "variants-formats-light.png"))
    set_theme(page, lab, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "variants-formats-dark.png"))
    set_theme(page, lab, "JupyterLab Light")

    # Two durable cells and a plain one selected: the context menu invalidates both steps
    # (it once invalidated the active cell's only), with one dialog that names them.
    cell(page, "clean").locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+ArrowDown")
    page.wait_for_function("window.jupyterapp.shell.currentWidget.content.widgets"
                           ".filter(c => window.jupyterapp.shell.currentWidget.content"
                           ".isSelectedOrActive(c)).length === 2")
    cell(page, "features").locator(".jp-InputArea-editor").click(button="right")
    item = page.locator('.lm-Menu-itemLabel:text-is("Invalidate durable steps")')
    item.wait_for()
    item.click()
    dialog = page.locator(".jp-Dialog")
    dialog.filter(has_text="Invalidate 2 durable steps?").wait_for()
    assert "“clean”, “features”" in dialog.inner_text()
    accept_dialog(page)
    row(page, "clean", "invalidated").wait_for()
    row(page, "features", "invalidated").wait_for()
    assert page.locator(f'{PANEL} .km-Step[data-state="invalidated"]').count() == 3  # + report

    # A cell whose step name is edited is no longer its old step: the new name is listed as
    # not run, and the cell's badge no longer shows the old step's "failed" (it did, and the
    # context menu invalidated the old step).
    page.evaluate("""() => {
      const notebook = window.jupyterapp.shell.currentWidget.content;
      const index = notebook.widgets.findIndex(c => c.model.id === 'cell-train');
      notebook.model.cells.get(index).sharedModel.setSource('%%durable train_v2\\npass');
    }""")
    row(page, "train_v2", "not-run").wait_for()
    row(page, "train", "failed").wait_for()  # the session's old step is still there
    page.wait_for_function("""() => !document.querySelector('.jp-Cell[data-km-step="train"]')""")
    assert "failed" not in page.locator(".jp-Cell").nth(3).inner_text()


def test_a_kernel_that_dies_is_bound_again_without_a_warning(page: Any, lab: Lab) -> None:
    """kill -9 of the kernel: JupyterLab restarts it and the notebook's keeper binds the new one
    (status and kernel change, at once). The two writes of the binding shared a temporary file
    name, one failed with a 500, and the user read "could not tell the kernel ... where its steps
    are"."""
    lab.write_notebook("dead/nb.ipynb", [("d0", "%load_ext kitteh_magic"),
                                         ("d1", "%%durable a\nx = 1")])
    open_notebook(page, lab, "dead/nb.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    row(page, "a", "done").wait_for(timeout=20_000)
    page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                  ".requestExecute({code: 'import os, signal; os.kill(os.getpid(), 9)'})")
    page.locator(".jp-Dialog").filter(has_text="appears to have died").wait_for()
    page.keyboard.press("Escape")
    # (After an automatic restart JupyterLab may say "Starting" until the kernel is asked
    # something: wait for the connection, not for "idle".)
    page.wait_for_function("""() => window.jupyterapp.shell.currentWidget.sessionContext
      .session?.kernel?.connectionStatus === 'connected'""")
    # Restore from the palette's command into the new kernel: it answers, nothing warns.
    page.evaluate("window.jupyterapp.commands.execute('kitteh-magic:restore')")
    page.locator(".Toastify__toast").filter(has_text="Restore: restored 1 step").wait_for(
        timeout=60_000)
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not [text for text in toasts if "could not" in text], toasts
