"""The Durable sidebar and cell badges in a real JupyterLab, driven through Chromium."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Lab

from kitteh_magic.status import HOST
from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.records import JournalEntry, StepPointer, entry_key, pointer_key
from kitteh_magic.store import Store

pytestmark = pytest.mark.browser

TAB = '.jp-SideBar .lm-TabBar-tab[data-id="kitteh-magic-durable"]'
PANEL = "#kitteh-magic-durable"


def open_notebook(page: Any, lab: Lab, notebook: str) -> None:
    """Load JupyterLab on a notebook and show the Durable panel."""
    page.goto(lab.page_url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    wait_for_kernel(page)
    if page.locator(f"{PANEL}:visible").count() == 0:
        page.click(TAB)
    page.wait_for_selector(f"{PANEL}:visible")


def wait_for_kernel(page: Any) -> None:
    """Wait until the notebook's kernel is connected and idle (the indicator alone can show
    "idle" before the session has a kernel, and Run All then asks for one)."""
    page.wait_for_function(
        """() => {
          const context = window.jupyterapp.shell.currentWidget?.sessionContext;
          const kernel = context?.session?.kernel;
          return kernel?.connectionStatus === 'connected' && kernel?.status === 'idle';
        }""", timeout=60_000)


def row(page: Any, step: str, state: str | None = None) -> Any:
    selector = f'{PANEL} .km-Step[data-step="{step}"]'
    if state is not None:
        selector += f'[data-state="{state}"]'
    return page.locator(selector)


def badge(page: Any, step: str) -> Any:
    return page.locator(f'.jp-Cell[data-km-step="{step}"] .km-Badge')


def set_theme(page: Any, lab: Lab, theme: str) -> None:
    page.evaluate("theme => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme})", theme)
    page.wait_for_function("t => document.body.dataset.jpThemeName === t", arg=theme)
    page.wait_for_timeout(400)  # let the theme's stylesheet paint


PATH_SESSION = "/srv/team/shared-experiments/hyperparameter-tuning-round-2.ipynb"


def seed(lab: Lab, folder: str) -> tuple[str, Path]:
    """A notebook and a store written as kernels would have left them: one of each state."""
    cells = ["load", "clean", "features", "train", "plot", "report"]
    notebook = f"{folder}/pipeline.ipynb"
    lab.write_notebook(notebook, [(f"cell-{name}", f"%%durable {name}\npass") for name in cells]
                       + [("cell-plain", "print('not durable')")])
    directory = lab.root / folder / ".kitteh"
    now = time.time()
    # The finished steps were run by a live process (this one): their values count as loaded,
    # except "load"'s, whose kernel is gone (a restart): the panel calls it "stored".
    live = dict(pid=os.getpid(), proc_start=psutil.Process().create_time(), host=HOST)
    states: dict[str, dict[str, Any]] = {
        "load": dict(state="done", duration=12.3, size=4 * 2**20, activities=3, runs=1,
                     pid=2**22 + 4320, proc_start=1.0, host=""),
        "clean": dict(state="done", last="replayed", duration=42.0, saved=126.0, replays=3,
                      runs=1, size=2 * 2**20, outputs={"df": "new"}, finished=now - 10, **live),
        "features": dict(state="done", duration=3.1, size=512 * 1024, runs=1,
                         inputs={"df": "t:old"}, finished=now - 60, **live),
        "train": dict(state="failed", duration=7.5, runs=2, activities=5,
                      error="ValueError: Input contains NaN"),
        # A kernel that is gone left this one "running": status derives "interrupted".
        "plot": dict(state="running", pid=2**22 + 4321, proc_start=1.0, host=""),
        "report": dict(state="invalidated", duration=0.8, runs=1),
    }
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        catalog = Catalog(store)
        # A path session (its notebook lives away from the store) with a long name.
        sessions = (("pipeline.ipynb", cells), ("experiment-2", ["load"]),
                    (PATH_SESSION, ["load"]))
        for session, names in sessions:
            for name in names:
                fields = {"finished": now - 30, "started": now - 40, **states[name]}
                ptr = StepPointer(session=session, step=name, cell_id=f"cell-{name}",
                                  seq=catalog.claim_seq(session, str(lab.root / notebook)),
                                  **fields)
                store.put_json(pointer_key(session, name), ptr.to_doc())
        # The interrupted step had journaled two calls when its kernel went away.
        for pos in range(2):
            entry = JournalEntry(pos=pos, callee="requests.get", args="digest")
            store.put_json(entry_key("pipeline.ipynb", "plot", pos), entry.to_doc(), sign=True)
    return notebook, directory


def test_panel_shows_every_state_and_badges(page: Any, lab: Lab, artifacts: Path) -> None:
    notebook, _ = seed(lab, "seeded")

    open_notebook(page, lab, notebook)

    expected = {"load": "done", "clean": "replayed", "features": "stale", "train": "failed",
                "plot": "interrupted", "report": "invalidated"}
    for step, state in expected.items():
        row(page, step, state).wait_for()
    # Finished, but its kernel is gone: stored, not loaded.
    assert row(page, "load").get_attribute("data-shown") == "stored"
    assert row(page, "clean").get_attribute("data-shown") == "replayed"
    assert row(page, "clean").locator(".km-Step-outputs").inner_text() == "saved df"
    assert "df changed: step 'clean' made a new df" in row(page, "features").locator(
        ".km-Step-reason").inner_text()
    assert re.fullmatch(r"[1-5]\d s ago", row(page, "clean").locator(".km-Step-age").inner_text())
    assert page.locator(f"{PANEL} .km-Step").count() == len(expected)
    assert page.inner_text(f"{PANEL} .km-Total-steps .km-Total-value") == "6"
    # One format of durations everywhere, Python's human_seconds (panel, badges, status bar).
    assert page.inner_text(f"{PANEL} .km-Total-saved .km-Total-value") == "2 min 6 s"
    assert "2 min 6 s" in page.get_attribute(f"{PANEL} .km-Total-saved", "title")
    assert "saved 2 min 6 s" in row(page, "clean").inner_text()
    activities = row(page, "load").locator(".km-Step-activities")
    assert activities.inner_text() == "3 calls"
    assert "calls that leave the notebook" in activities.get_attribute("title")
    assert row(page, "features").locator(".km-Step-activities").count() == 0  # none: no noise
    assert row(page, "plot").locator(".km-Step-activities").inner_text() == "2 calls journaled"
    assert badge(page, "plot").inner_text().endswith("interrupted · 2 calls journaled")
    assert "ValueError: Input contains NaN" in row(page, "train").inner_text()
    # The picker: path sessions by file name (full name in the tooltip), shrinking to fit.
    options = page.locator(f"{PANEL} select.km-SessionPicker option")
    assert options.count() == 3
    assert options.nth(0).inner_text() == "pipeline.ipynb (this kernel)"
    path_option = page.locator(f'{PANEL} option[value="{PATH_SESSION}"]')
    assert path_option.inner_text() == "hyperparameter-tuning-round-2.ipynb"
    assert PATH_SESSION in path_option.get_attribute("title")
    assert "pipeline.ipynb" in page.get_attribute(f"{PANEL} select.km-SessionPicker", "title")
    fits = page.evaluate("""panel => {
      const box = node => document.querySelector(panel + ' ' + node).getBoundingClientRect();
      const values = [...document.querySelectorAll(panel + ' .km-Total-value')];
      return {
        picker: box('.km-SessionPicker').right <= box('.km-Sidebar-session').right + 0.5,
        oneLine: values.every(v => {
          const style = getComputedStyle(v);
          const line = parseFloat(style.lineHeight) || 1.3 * parseFloat(style.fontSize);
          return v.getBoundingClientRect().height < 1.6 * line;
        }),
        unclipped: values.every(v => v.scrollWidth <= v.clientWidth),
      };
    }""", PANEL)
    assert fits == {"picker": True, "oneLine": True, "unclipped": True}
    assert "replayed · saved 2 min 6 s" in badge(page, "clean").inner_text()
    assert "stored · 12.3 s · 3 calls" in badge(page, "load").inner_text()
    assert badge(page, "train").inner_text().endswith("failed")
    assert page.locator(".jp-Cell:not([data-km-step]) .km-Badge").count() == 0
    page.screenshot(path=str(artifacts / "sidebar-states-light.png"))
    set_theme(page, lab, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "sidebar-states-dark.png"))
    set_theme(page, lab, "JupyterLab Light")

    # The other session, through the picker.
    page.select_option(f"{PANEL} select.km-SessionPicker", "experiment-2")
    page.wait_for_function(
        f"document.querySelectorAll('{PANEL} .km-Step').length === 1")


def test_panel_reads_the_store_while_the_kernel_is_gone(page: Any, lab: Lab) -> None:
    notebook, directory = seed(lab, "nokernel")
    open_notebook(page, lab, notebook)
    row(page, "load", "done").wait_for()
    for kernel in lab.request("GET", "/api/kernels"):
        lab.request("DELETE", f"/api/kernels/{kernel['id']}")

    # Another process finishes a step: the panel polls the server, not the kernel.
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        doc = store.get_json(pointer_key("pipeline.ipynb", "report"))
        assert doc is not None
        store.put_json(pointer_key("pipeline.ipynb", "report"),
                       {**doc, "state": "done", "finished": time.time()})
    row(page, "report", "done").wait_for(timeout=10_000)

    assert badge(page, "report").inner_text().startswith("✓")


def menu(page: Any, menu_name: str, item: str) -> None:
    """Click a main-menu entry, as a user would."""
    page.click(f'#jp-MainMenu .lm-MenuBar-itemLabel:text-is("{menu_name}")')
    page.click(f'.lm-Menu .lm-Menu-itemLabel:text-is("{item}")')


def accept_dialog(page: Any) -> None:
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    page.wait_for_selector(".jp-Dialog", state="detached")


def output_of(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")


def test_run_restart_replay_invalidate_restore_reset(
        page: Any, lab: Lab, artifacts: Path) -> None:
    notebook = "flow/live.ipynb"
    go = lab.root / "flow" / "go"
    # The load step waits for the test (not for a number of seconds): the panel must show it
    # running while it provably is. threading's wait, unlike time.sleep, is not an activity.
    lab.write_notebook(notebook, [
        ("c-setup", "%load_ext kitteh_magic"),
        ("c-load", "%%durable load\nimport os, threading\n"
                   f"while not os.path.exists({str(go)!r}):\n"
                   "    threading.Event().wait(0.05)\nx = 21"),
        ("c-double", "%%durable double\ny = x * 2\ny"),
        ("c-check", "print('x is', x)"),
    ])
    open_notebook(page, lab, notebook)
    # Nothing ran yet: the durable cells are listed as not run.
    page.wait_for_function(
        f"document.querySelectorAll('{PANEL} .km-Step[data-state=\"not-run\"]').length === 2")

    # Run everything: the panel shows the step running, and it ends only once the test has
    # seen that.
    menu(page, "Run", "Run All Cells")
    row(page, "load", "running").wait_for(timeout=20_000)
    assert "running" in badge(page, "load").inner_text()
    page.screenshot(path=str(artifacts / "flow-running-light.png"))
    go.touch()
    row(page, "load", "done").wait_for(timeout=20_000)
    row(page, "double", "done").wait_for(timeout=10_000)
    output_of(page, 3).filter(has_text="x is 21").wait_for()
    assert badge(page, "double").text_content().startswith("✓durable")

    # A fresh kernel replays both steps instead of running them.
    menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    accept_dialog(page)
    row(page, "load", "replayed").wait_for(timeout=20_000)
    row(page, "double", "replayed").wait_for(timeout=10_000)
    output_of(page, 3).filter(has_text="x is 21").wait_for()
    badge(page, "load").filter(has_text="replayed · saved").wait_for()
    assert "saved" in row(page, "load").inner_text()
    page.screenshot(path=str(artifacts / "flow-replayed-light.png"))
    set_theme(page, lab, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "flow-replayed-dark.png"))
    set_theme(page, lab, "JupyterLab Light")

    # Jump to a step's cell from the panel.
    row(page, "double").locator(".km-Step-name").click()
    page.wait_for_selector('.jp-Cell.jp-mod-active[data-km-step="double"]')

    # Invalidate a step from the panel, after confirming.
    row(page, "double").locator(".km-Invalidate").click()
    page.wait_for_selector(".jp-Dialog :text('It has no journaled calls.')")
    accept_dialog(page)
    row(page, "double", "invalidated").wait_for(timeout=5_000)

    # Restore into a fresh kernel without running any durable cell.
    menu(page, "Kernel", "Restart Kernel…")
    accept_dialog(page)
    wait_for_kernel(page)
    page.click(f"{PANEL} .km-Restore")
    page.locator(".Toastify__toast").filter(
        has_text="Restore: restored 1 step of session 'live.ipynb'").wait_for()
    cell = page.locator(".jp-Notebook .jp-Cell").nth(3)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")  # queued behind the restore in the fresh kernel
    cell.locator(".jp-InputPrompt:text-is('[1]:')").wait_for(timeout=20_000)
    output_of(page, 3).filter(has_text="x is 21").wait_for()
    page.screenshot(path=str(artifacts / "flow-restored-light.png"))

    # Reset, after confirming.
    page.click(f"{PANEL} .km-Reset")
    page.wait_for_selector(".jp-Dialog :text('Reset durable session?')")
    accept_dialog(page)
    page.wait_for_function(
        f"document.querySelectorAll('{PANEL} .km-Step[data-state=\"not-run\"]').length === 2")
    assert badge(page, "load").count() == 0
    # Nothing left to restore: Restore says so, and asks nothing of the kernel.
    page.click(f"{PANEL} .km-Restore")
    page.locator(".Toastify__toast").filter(
        has_text="Nothing to restore: session “live.ipynb” has no finished steps.").wait_for()


ASK = """%%durable calls
import time, kitteh_magic as km
@km.activity
def ask(i):
    time.sleep(0.6)
    return i * i
answers = [ask(i) for i in range(5)]
answers"""


def test_activities_counted_live_then_replayed_after_restart(
        page: Any, lab: Lab, artifacts: Path) -> None:
    notebook = "acts/calls.ipynb"
    lab.write_notebook(notebook, [("a-setup", "%load_ext kitteh_magic"), ("a-calls", ASK)])
    open_notebook(page, lab, notebook)
    page.wait_for_selector(f'{PANEL} .km-Step[data-state="not-run"]')

    # While the cell runs, the count comes from the journal (one entry per finished call):
    # seen between the first and the last of the five 0.6 s calls.
    menu(page, "Run", "Run All Cells")
    row(page, "calls", "running").locator(".km-Step-activities").filter(
        has_text=re.compile(r"^[1-4] calls? so far$")).wait_for(timeout=5_000)
    badge(page, "calls").filter(has_text=re.compile(r"running… · [1-4] calls?$")).wait_for()
    page.screenshot(path=str(artifacts / "activities-running-light.png"))
    done = row(page, "calls", "done")
    done.wait_for(timeout=10_000)
    assert done.get_attribute("data-activities") == "5"
    activities = done.locator(".km-Step-activities")
    assert activities.inner_text() == "5 calls"
    assert activities.get_attribute("title").startswith("5 activities journaled in the last run")
    badge(page, "calls").filter(has_text=re.compile(r"^✓durable · \d\.\d s · 5 calls$")).wait_for()
    output_of(page, 1).filter(has_text="[0, 1, 4, 9, 16]").wait_for()

    # A fresh kernel: the step replays from its record and none of the calls run again.
    menu(page, "Kernel", "Restart Kernel…")
    accept_dialog(page)
    wait_for_kernel(page)
    menu(page, "Run", "Run All Cells")
    output_of(page, 1).filter(has_text="[0, 1, 4, 9, 16]").wait_for(timeout=10_000)
    # "Replayed" is the badge's to say: the outputs are the original run's.
    assert [o.inner_text() for o in output_of(page, 1).all()] == ["[0, 1, 4, 9, 16]"]
    replayed = row(page, "calls", "replayed")
    replayed.wait_for(timeout=5_000)
    assert replayed.get_attribute("data-activities") == "5"
    assert "the replay called none of them" in replayed.locator(
        ".km-Step-activities").get_attribute("title")
    assert "saved" in replayed.inner_text()
    badge(page, "calls").filter(has_text=re.compile(r"^↻replayed · saved .* · 5 calls$")).wait_for()
    page.screenshot(path=str(artifacts / "activities-replayed-light.png"))
