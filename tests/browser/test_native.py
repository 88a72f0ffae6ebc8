"""JupyterLab's usual places for durable cells (issue 10), driven in Chromium: the palette, the
cell context menu, shortcuts, the Settings Editor, the status bar; one "time saved" figure
across badge, panel, status bar, `kitteh-magic status` and `%durable status`; a notebook that is
renamed and moved keeps its session; the journal view; invalidate that keeps the journal; the
filter, not-yet-run cells, keyboard reach and a loading state that does not pretend."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab
from http_server import CountingServer, counting_server
from test_sidebar import (
    PANEL,
    TAB,
    accept_dialog,
    badge,
    menu,
    open_notebook,
    row,
    seed,
    set_theme,
    wait_for_kernel,
)

from kitteh_magic.status import human_seconds
from kitteh_magic.steps.records import JournalEntry, entry_key, journal_prefix
from kitteh_magic.store import Store

pytestmark = pytest.mark.browser

PALETTE_ENTRIES = ["Durable: Restore session", "Durable: Invalidate step…",
                   "Durable: Reset session…", "Durable: Show journal",
                   "Durable: Run stale steps", "Durable: Show panel"]
STATUS = "#jp-main-statusbar .km-Status"


def cell(page: Any, step: str) -> Any:
    return page.locator(f'.jp-Notebook .jp-Cell[data-km-step="{step}"]')


def open_palette(page: Any, query: str) -> Any:
    """Open the command palette (Ctrl+Shift+C), type, and return its enabled items."""
    page.keyboard.press("Control+Shift+C")
    box = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-input")
    box.wait_for()
    box.fill(query)
    return page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item:not(.lm-mod-disabled)")


def run_from_palette(page: Any, label: str) -> None:
    items = open_palette(page, label)
    items.filter(has_text=label).first.click()


def toast(page: Any, text: str) -> None:
    """Wait for a notification that says ``text``."""
    page.locator(".Toastify__toast").filter(has_text=text).first.wait_for()


def kernel_run(page: Any, code: str) -> str:
    """Run code in the current notebook's kernel (not in a cell); its stdout, or the error."""
    result: str = page.evaluate("""async code => {
      const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
      const future = kernel.requestExecute({code, store_history: false});
      let out = '';
      future.onIOPub = msg => {
        if (msg.header.msg_type === 'stream') { out += msg.content.text; }
      };
      const reply = await future.done;
      return reply.content.status === 'ok' ? out
        : `ERROR ${reply.content.ename}: ${reply.content.evalue}`;
    }""", code)
    assert not result.startswith("ERROR"), result
    return result


def journal_count(directory: Path, lab: Lab, session: str, step: str) -> int:
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        return len(store.keys(journal_prefix(session, step)))


def journal_entries(directory: Path, lab: Lab, session: str, step: str, n: int) -> None:
    with Store(directory, key_file=Path(lab.env["KITTEH_MAGIC_KEY_FILE"])) as store:
        for pos in range(n):
            entry = JournalEntry(pos=pos, callee="requests.get", args=f"digest-{pos}")
            store.put_json(entry_key(session, step, pos), entry.to_doc(), sign=True)


def test_palette_context_menu_shortcuts_and_invalidate_dialogs(
        page: Any, lab: Lab, artifacts: Path) -> None:
    notebook, directory = seed(lab, "native")
    journal_entries(directory, lab, "pipeline.ipynb", "train", 2)
    open_notebook(page, lab, notebook)
    row(page, "load").wait_for()

    # The panel's shortcut, which no JupyterLab binding uses.
    page.click(TAB)
    page.wait_for_selector(PANEL, state="hidden")
    page.keyboard.press("Alt+Shift+D")
    page.wait_for_selector(f"{PANEL}:visible")
    clashes = page.evaluate("""() => {
      const bindings = window.jupyterapp.commands.keyBindings;
      const mine = bindings.filter(b => b.command.startsWith('kitteh-magic:'));
      return mine.flatMap(m => bindings
        .filter(b => !b.command.startsWith('kitteh-magic:'))
        .filter(b => b.keys.join(' ') === m.keys.join(' '))
        .map(b => `${m.command} and ${b.command}: ${b.keys.join(' ')}`));
    }""")
    assert clashes == []
    shortcuts = page.evaluate("""() => window.jupyterapp.commands.keyBindings
      .filter(b => b.command.startsWith('kitteh-magic:')).map(b => b.keys.join(' '))""")
    assert sorted(shortcuts) == ["Alt Shift D", "Alt Shift J"]

    # The palette lists every entry under "Durable", and they run.
    page.click(TAB)
    page.wait_for_selector(PANEL, state="hidden")
    run_from_palette(page, "Durable: Show panel")
    page.wait_for_selector(f"{PANEL}:visible")
    page.select_option(f"{PANEL} select.km-SessionPicker", "experiment-2")
    row(page, "load").wait_for()
    run_from_palette(page, "Durable: Restore session")
    # That session, not the kernel's (its seeded steps have no records to load): a warning,
    # not a success.
    page.locator(".Toastify__toast--warning").filter(
        has_text="Restore: session 'experiment-2' has no finished steps").first.wait_for()
    page.select_option(f"{PANEL} select.km-SessionPicker", "pipeline.ipynb")
    row(page, "plot").wait_for()
    run_from_palette(page, "Durable: Reset session…")
    page.locator(".jp-Dialog").filter(has_text="(6 steps)").wait_for()
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-reject")
    page.wait_for_selector(".jp-Dialog", state="detached")
    assert page.locator(f"{PANEL} .km-Step:not(.km-mod-pending)").count() == 6
    items = open_palette(page, "Durable")
    labels = [text.strip() for text in
              items.locator(".lm-CommandPalette-itemLabel").all_inner_texts()]
    assert set(PALETTE_ENTRIES) <= set(labels)
    page.screenshot(path=str(artifacts / "palette-light.png"))
    page.keyboard.press("Escape")

    # "Show journal" for the active cell's step: the interrupted step's two calls.
    cell(page, "plot").locator(".jp-InputPrompt").click()
    run_from_palette(page, "Durable: Show journal")
    journal = page.locator(".jp-Dialog .km-Journal")
    journal.wait_for()
    assert journal.locator(".km-Journal-call").count() == 2
    assert set(journal.locator(".km-Journal-callee").all_inner_texts()) == {"requests.get"}
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")

    # The context menu offers "Invalidate durable step" on durable cells only.
    page.locator('.jp-Cell:not([data-km-step]) .jp-InputArea-editor').click(button="right")
    page.locator(".lm-Menu").first.wait_for()
    assert page.locator('.lm-Menu-itemLabel:text-is("Invalidate durable step")').count() == 0
    page.keyboard.press("Escape")
    cell(page, "plot").locator(".jp-InputArea-editor").click(button="right")
    item = page.locator('.lm-Menu-itemLabel:text-is("Invalidate durable step")')
    item.wait_for()
    page.screenshot(path=str(artifacts / "context-menu-light.png"))
    item.click()
    dialog = page.locator(".jp-Dialog")
    dialog.filter(has_text="Its journal of 2 calls is kept").wait_for()
    assert not dialog.locator(".jp-Dialog-checkbox input").is_checked()
    page.screenshot(path=str(artifacts / "invalidate-dialog-light.png"))
    accept_dialog(page)
    row(page, "plot", "invalidated").wait_for()
    assert journal_count(directory, lab, "pipeline.ipynb", "plot") == 2  # kept

    # From the palette, with the checkbox: the journal goes too.
    cell(page, "train").locator(".jp-InputPrompt").click()
    run_from_palette(page, "Durable: Invalidate step…")
    dialog.filter(has_text="Invalidate “train”?").wait_for()
    dialog.locator(".jp-Dialog-checkbox input").check()
    accept_dialog(page)
    row(page, "train", "invalidated").wait_for()
    assert journal_count(directory, lab, "pipeline.ipynb", "train") == 0

    # "Run stale steps" runs the stale step's cell, and no other.
    kernel_run(page, "%load_ext kitteh_magic")
    run_from_palette(page, "Durable: Run stale steps")
    row(page, "features", "done").wait_for(timeout=20_000)
    prompts = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").all_inner_texts()
    ran = [i for i, text in enumerate(prompts) if re.search(r"\[\d+\]", text)]
    assert ran == [2]  # the features cell

    set_theme(page, lab, "JupyterLab Dark")
    open_palette(page, "Durable")
    page.screenshot(path=str(artifacts / "palette-dark.png"))
    page.keyboard.press("Escape")
    set_theme(page, lab, "JupyterLab Light")


CONTRAST = """selectors => {
  // WCAG contrast of each element's text with the background it is drawn on.
  const rgba = text => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const over = (top, bottom) => {
    const a = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a));
  };
  const background = node => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c.length === 4 && c[3] === 0) { continue; }
      layers.push(c);
      if (c.length === 3 || c[3] === 1) { break; }
    }
    return layers.reverse().reduce((acc, c) => over(c, acc), [255, 255, 255]);
  };
  const found = [];
  for (const selector of selectors) {
    for (const node of document.querySelectorAll(selector)) {
      if (!node.textContent.trim() || node.offsetParent === null) { continue; }
      const bg = background(node);
      const fg = over(rgba(getComputedStyle(node).color), bg);
      const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      found.push([selector, node.textContent.trim().slice(0, 30), (hi + 0.05) / (lo + 0.05)]);
    }
  }
  return found;
}"""
TEXT = [".km-StateIcon", ".km-Step-name", ".km-Step-state", ".km-Step-meta > span",
        ".km-Step-outputs", ".km-Step-reason", ".km-Step-error", ".km-Total-value",
        ".km-Total-label", ".km-Badge", ".km-Status", ".km-Sidebar-notebook"]


def test_loading_filter_not_run_cells_keyboard_status_bar_and_contrast(
        page: Any, lab: Lab, artifacts: Path) -> None:
    notebook, _ = seed(lab, "many")
    path = lab.root / notebook
    doc = json.loads(path.read_text())
    doc["cells"] += [{"cell_type": "code", "id": cell_id, "metadata": {}, "source": source,
                      "outputs": [], "execution_count": None}
                     for cell_id, source in (("cell-extra", "%%durable extra\nz = 1"),
                                             ("cell-unnamed", "%%durable --mode step\nw = 2"))]
    path.write_text(json.dumps(doc))

    # Until the store answers, the panel says it is reading, not "0 steps, 0 B, 0s".
    held: list[Any] = []

    def hold(route: Any) -> None:
        if held and held[0] is None:  # released
            route.continue_()
        else:
            held.append(route)

    page.route("**/kitteh-magic/steps?**", hold)
    page.goto(lab.page_url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    if page.locator(f"{PANEL}:visible").count() == 0:
        page.click(TAB)
    page.wait_for_selector(f"{PANEL} .km-Sidebar-loading")
    assert page.locator(f"{PANEL} .km-Totals, {PANEL} .km-Step").count() == 0
    assert not page.locator(STATUS).is_visible()  # the status bar item waits too
    waiting, held[:] = held[:], [None]
    for route in waiting:
        route.continue_()
    row(page, "load").wait_for()

    # Durable cells that never ran are listed, greyed, after the steps.
    pending = page.locator(f'{PANEL} .km-Step[data-state="not-run"]')
    pending.nth(1).wait_for()
    assert pending.locator(".km-Step-name").all_inner_texts() == ["extra", "cell 9"]
    assert pending.locator(".km-Step-state").all_inner_texts() == ["not run", "not run"]
    greys = page.evaluate("""panel => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--jp-ui-font-color2)';
      document.querySelector(panel).append(probe);
      const grey = getComputedStyle(probe).color;
      probe.remove();
      return [...document.querySelectorAll(panel + ' .km-mod-pending .km-Step-name')]
        .map(n => getComputedStyle(n).color === grey);
    }""", PANEL)
    assert greys == [True, True]

    # The filter: by name, or by state from its start.
    steps = page.locator(f"{PANEL} .km-Step")
    assert steps.count() == 8
    page.fill(f"{PANEL} .km-Filter", "fail")
    page.wait_for_function(f"document.querySelectorAll('{PANEL} .km-Step').length === 1")
    assert steps.get_attribute("data-step") == "train"
    page.fill(f"{PANEL} .km-Filter", "not")
    page.wait_for_function(f"document.querySelectorAll('{PANEL} .km-Step').length === 2")
    page.fill(f"{PANEL} .km-Filter", "xyz")
    page.wait_for_selector(f"{PANEL} :text('No step matches “xyz”.')")
    page.fill(f"{PANEL} .km-Filter", "")
    page.wait_for_function(f"document.querySelectorAll('{PANEL} .km-Step').length === 8")

    # Step names are buttons: Enter moves to the cell; every icon button has a name.
    row(page, "train").locator(".km-Step-name").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('.jp-Cell.jp-mod-active[data-km-step="train"]')
    pending.first.locator(".km-Step-name").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('.jp-Cell.jp-mod-active:has-text("%%durable extra")')
    unnamed = page.evaluate(f"""() => [...document.querySelectorAll('{PANEL} button')]
      .filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length""")
    assert unnamed == 0
    icons = page.locator(f"{PANEL} .km-IconButton")
    assert icons.count() > 0
    assert all(icons.nth(i).get_attribute("aria-label") for i in range(icons.count()))
    assert row(page, "plot").locator(".km-Invalidate").get_attribute("aria-label") == (
        "Invalidate plot")

    # The status bar: the session's replayed steps and the saved total, as the panel has it.
    status = page.locator(STATUS)
    assert status.inner_text() == "1 replayed · saved 2 min 6 s"
    assert status.get_attribute("data-saved") == page.get_attribute(
        f"{PANEL} .km-Total-saved", "data-saved") == "126"
    page.click(TAB)
    page.wait_for_selector(PANEL, state="hidden")
    status.click()
    page.wait_for_selector(f"{PANEL}:visible")

    page.screenshot(path=str(artifacts / "panel-light.png"))
    low = [c for c in page.evaluate(CONTRAST, TEXT) if c[2] < 4.5]
    set_theme(page, lab, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "panel-dark.png"))
    low += [c for c in page.evaluate(CONTRAST, TEXT) if c[2] < 4.5]
    set_theme(page, lab, "JupyterLab Light")
    assert low == []


def test_settings_editor_changes_apply_live(page: Any, lab: Lab) -> None:
    notebook, _ = seed(lab, "settings")
    open_notebook(page, lab, notebook)
    badge(page, "clean").wait_for()
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/kitteh-magic/steps" in r.url else None)
    page.evaluate("window.jupyterapp.commands.execute('settingeditor:open', "
                  "{query: 'Durable cells'})")
    field = '[id="jp-SettingsEditor-kitteh_magic:plugin_{}"]'.format

    def saved(key: str, value: Any) -> None:
        """Wait until the Settings Editor saved the value (it saves after a pause)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = lab.request("GET", "/lab/api/settings/kitteh_magic:plugin")
            if reply["settings"].get(key) == value:
                page.wait_for_timeout(200)  # the page hears of it with the save's answer
                return
            time.sleep(0.1)
        raise AssertionError(f"the Settings Editor did not save {key}={value!r}")

    def polls_in(seconds: float) -> int:
        reads.clear()
        page.wait_for_timeout(seconds * 1000)
        return len(reads)

    # Faster polling, then (almost) none: the panel's reads follow at once.
    page.fill(field("pollInterval"), "300")
    saved("pollInterval", 300)
    assert polls_in(3) >= 5
    page.fill(field("pollInterval"), "60000")
    saved("pollInterval", 60000)
    assert polls_in(3) <= 1

    # Badges off: no badge shows, the cells stay marked (the context menu still finds them).
    markers = "() => document.body.dataset.kmMarkers"
    badge_shown = ("() => getComputedStyle(document.querySelector("
                   "'.jp-Cell[data-km-step=\"clean\"] .km-Badge')).display !== 'none'")
    edge = ("() => getComputedStyle(document.querySelector("
            "'.jp-Cell[data-km-step=\"clean\"] .jp-InputPrompt')).borderLeftStyle")
    assert page.evaluate(markers) == "badge-and-outline"
    page.locator(field("showBadges")).uncheck()
    page.wait_for_function(f"({markers})() === 'off'")
    assert not page.evaluate(badge_shown) and page.evaluate(edge) == "none"
    assert page.locator(".jp-Cell.km-DurableCell").count() == 6
    page.locator(field("showBadges")).check()
    page.select_option(field("markerStyle"), "outline")
    page.wait_for_function(f"({markers})() === 'outline'")
    assert not page.evaluate(badge_shown) and page.evaluate(edge) == "solid"
    page.select_option(field("markerStyle"), "badge")
    page.wait_for_function(f"({markers})() === 'badge'")
    assert page.evaluate(badge_shown) and page.evaluate(edge) == "none"


def format_seconds(seconds: float) -> str:
    """The frontend's formatSeconds (format.ts) gives Python's human_seconds: one format
    everywhere."""
    return human_seconds(seconds)


@pytest.fixture(scope="module")
def api() -> Iterator[CountingServer]:
    """The paid API the notebook calls."""
    with counting_server() as server:
        yield server


def cli_status(lab: Lab, notebook: str) -> dict[str, Any]:
    """``kitteh-magic status NB --json``: the report of the notebook's session."""
    done = subprocess.run([sys.executable, "-m", "kitteh_magic.cli", "status",
                           str(lab.root / notebook), "--json"], env=lab.env, cwd=lab.root,
                          capture_output=True, text=True, timeout=60, check=True)
    [report] = json.loads(done.stdout)
    return dict(report)


def saved_file(lab: Lab, notebook: str) -> dict[str, Any]:
    """The notebook's metadata as saved on disk."""
    metadata: dict[str, Any] = json.loads((lab.root / notebook).read_text())["metadata"]
    return metadata


def wait_until(check: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


def save(page: Any) -> None:
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty")


def test_renamed_and_moved_notebook_keeps_its_steps_and_replays_with_one_saved_figure(
        page: Any, lab: Lab, api: CountingServer, artifacts: Path) -> None:
    counter = lab.root / "real" / "ran.txt"
    lab.write_notebook("real/flow.ipynb", [
        ("r-setup", "%load_ext kitteh_magic"),
        ("r-load", f"%%durable load\nopen({str(counter)!r}, 'a').write('load\\n')\nx = 21"),
        ("r-fetch", "%%durable fetch\nimport httpx\n"
                    f"open({str(counter)!r}, 'a').write('fetch\\n')\n"
                    f"items = [httpx.get('{api.url}/item/%d' % i).json()['item']\n"
                    "         for i in range(3)]\n"
                    "sum(items) + x"),
    ])

    def ran() -> list[str]:
        """The steps whose bodies executed, in order (each appends its name)."""
        return counter.read_text().split() if counter.exists() else []

    open_notebook(page, lab, "real/flow.ipynb")
    # Durable cells and no session yet: the notebook is given the name its path gives now.
    page.wait_for_selector(f'{PANEL} .km-Step[data-state="not-run"]')
    wait_until(lambda: saved_file(lab, "real/flow.ipynb").get("kitteh_magic")
               == {"session": "flow.ipynb"}, "the session is in the saved metadata")

    menu(page, "Run", "Run All Cells")
    row(page, "fetch", "done").wait_for(timeout=30_000)
    assert ran() == ["load", "fetch"] and sum(api.hits.values()) == 3
    assert "items" in row(page, "fetch").locator(".km-Step-outputs").inner_text()

    # The journal of the step that called the API.
    row(page, "fetch").locator(".km-Journal").click()
    journal = page.locator(".jp-Dialog .km-Journal")
    journal.wait_for()
    # Three GETs, and the .json() of each response (a method of what an activity returned).
    callees = journal.locator(".km-Journal-callee").all_inner_texts()
    assert len(callees) == int(row(page, "fetch").get_attribute("data-activities")) == 6
    assert sum(name.endswith(".get") for name in callees) == 3
    assert journal.locator('.km-Journal-call[data-from-journal="true"]').count() == 0
    page.screenshot(path=str(artifacts / "journal-light.png"))
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")

    # File → Rename: the panel keeps the steps.
    menu(page, "File", "Rename Notebook…")
    page.fill(".jp-Dialog input", "renamed.ipynb")
    accept_dialog(page)
    page.wait_for_selector(f"{PANEL} .km-Sidebar-notebook:text-is('real/renamed.ipynb')")
    row(page, "fetch", "done").wait_for()
    assert page.inner_text(f"{PANEL} .km-Sidebar-sessionName") == "flow.ipynb"
    # Moved to another folder: its store stays where it was, named in the metadata.
    lab.request("PUT", "/api/contents/real/sub", {"type": "directory"})
    page.evaluate("window.jupyterapp.serviceManager.contents.rename("
                  "'real/renamed.ipynb', 'real/sub/renamed.ipynb')")
    page.wait_for_selector(f"{PANEL} .km-Sidebar-notebook:text-is('real/sub/renamed.ipynb')")
    save(page)
    # The keeper writes the store's new place after the server answered, then saves again:
    # a save made before that (as here, at once) is followed by its own.
    wait_until(lambda: saved_file(lab, "real/sub/renamed.ipynb")["kitteh_magic"] == {
        "session": "flow.ipynb", "store": "../.kitteh"}, "the moved notebook names its store")
    row(page, "fetch", "done").wait_for()
    assert not (lab.root / "real" / "sub" / ".kitteh").exists()

    # A new step after the move lands in the same session.
    page.evaluate("""source => {
      const notebook = window.jupyterapp.shell.currentWidget.content;
      notebook.model.sharedModel.insertCell(notebook.model.cells.length,
        {cell_type: 'code', source, metadata: {}});
      notebook.activeCellIndex = notebook.model.cells.length - 1;
    }""", f"%%durable later\nopen({str(counter)!r}, 'a').write('later\\n')\ny = x + 1")
    page.wait_for_selector(f'{PANEL} .km-Step[data-state="not-run"]')
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-cell')")
    row(page, "later", "done").wait_for(timeout=20_000)
    save(page)
    report = cli_status(lab, "real/sub/renamed.ipynb")
    assert report["session"] == "flow.ipynb"
    assert [r["step"] for r in report["steps"]] == ["load", "fetch", "later"]

    # A restart: the values are stored, not loaded, until the cells run again ...
    menu(page, "Kernel", "Restart Kernel…")
    accept_dialog(page)
    wait_for_kernel(page)
    row(page, "load").and_(page.locator('[data-shown="stored"]')).wait_for(timeout=10_000)
    assert badge(page, "load").text_content().startswith("✓stored")
    # ... and then they replay: nothing executes, the API is not called.
    menu(page, "Run", "Run All Cells")
    for step in ("load", "fetch", "later"):
        row(page, step, "replayed").wait_for(timeout=20_000)
    assert ran() == ["load", "fetch", "later"] and sum(api.hits.values()) == 3
    badge(page, "fetch").filter(has_text="replayed · saved").wait_for()

    # One figure of time saved: status bar, panel, badges, the CLI and %durable status.
    magic = json.loads(kernel_run(page, "%durable status --json"))
    cli = cli_status(lab, "real/sub/renamed.ipynb")
    total = magic["totals"]["saved"]
    assert total > 0 and cli["totals"]["saved"] == total
    page.wait_for_function(
        "t => Number(document.querySelector('#jp-main-statusbar .km-Status')?.dataset.saved) "
        "=== t", arg=total)
    status = page.locator(STATUS)
    assert float(status.get_attribute("data-saved")) == total
    assert float(page.get_attribute(f"{PANEL} .km-Total-saved", "data-saved")) == total
    assert status.inner_text() == f"3 replayed · saved {format_seconds(total)}"
    for step_row in magic["steps"]:
        name, saved = step_row["step"], step_row["saved"]
        assert float(badge(page, name).get_attribute("data-saved")) == saved
        shown = row(page, name).locator(".km-Step-saved")
        if saved >= 0.001:  # below, rows and badges say nothing of time saved
            assert float(shown.get_attribute("data-saved")) == saved
            assert f"saved {format_seconds(saved)}" in badge(page, name).text_content()
        else:
            assert shown.count() == 0
    page.screenshot(path=str(artifacts / "notebook-badges-light.png"))
    set_theme(page, lab, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "notebook-badges-dark.png"))
    set_theme(page, lab, "JupyterLab Light")

    # Invalidate keeps the journal: running the cell again executes it, but the API calls
    # are answered from the journal.
    row(page, "fetch").locator(".km-Invalidate").click()
    page.locator(".jp-Dialog").filter(has_text="Its journal of 6 calls is kept").wait_for()
    accept_dialog(page)
    row(page, "fetch", "invalidated").wait_for()
    cell(page, "fetch").locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    row(page, "fetch", "done").wait_for(timeout=20_000)
    assert ran() == ["load", "fetch", "later", "fetch"] and sum(api.hits.values()) == 3
    row(page, "fetch").locator(".km-Journal").click()
    journal.wait_for()
    assert journal.locator('.km-Journal-call[data-from-journal="true"]').count() == 6
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
