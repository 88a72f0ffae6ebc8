"""Headless notebook runs: every code cell a durable step, a progress bar, resume after a death.

nbclient executes the notebook in a fresh kernel started beside it with ``JPY_SESSION_NAME`` set
to the notebook's path, so the run uses the same session JupyterLab would. Cells run under
``%durable on``; each execute request carries the cell's id, as JupyterLab sends it, so steps are
named by cell and the sidebar finds them. When the kernel dies the runner starts a new one and
runs the notebook again from the top: finished steps replay in milliseconds, so this resumes.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from traitlets.config import Config

# Loaded by a direct call rather than %load_ext, so that the notebook's own `%load_ext
# kitteh_magic` (JupyterLab needs it) finds it loaded and says nothing.
SETUP = "__import__('kitteh_magic').load_ipython_extension(get_ipython())\n%durable on"


@dataclass
class RunSummary:
    """What a run did, cell by cell."""

    executed: int = 0
    replayed: int = 0
    plain: int = 0
    saved: float = 0.0
    restarts: int = 0
    seconds: float = 0.0
    failed: str | None = None
    activities: int = 0
    resumed: int = 0
    """Activities taken from a journal (calls finished before a crash) instead of re-sent."""

    def __str__(self) -> str:
        from .status import human_seconds

        text = (f"{_count(self.executed, 'step')} executed, {self.replayed} replayed "
                f"({human_seconds(self.saved)} saved), {_count(self.plain, 'plain cell')}, "
                f"{_count(self.restarts, 'kernel restart')}, {human_seconds(self.seconds)} in all")
        if self.activities:
            text += (f"\n{_count(self.activities, 'activity', 'activities')} in executed steps, "
                     f"{self.resumed} of them taken from the journal")
        return text + (f"\nfailed: {self.failed}" if self.failed else "")


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {one if n == 1 else many or one + 's'}"


class _Client(NotebookClient):
    """nbclient with cell ids in execute requests and a hook per finished cell."""

    def __init__(self, nb: Any, summary: RunSummary, progress: Any, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self._summary = summary
        self._progress = progress
        self._cell_id: str | None = None
        self.on_cell_execute = self._before_cell
        self.on_cell_executed = self._after_cell

    def _before_cell(self, cell: Any, cell_index: int) -> None:
        self._cell_id = cell.get("id")
        if self._progress is not None:
            self._progress.set_postfix_str(f"cell {cell_index + 1}", refresh=True)

    def _after_cell(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell_index == 0:  # the setup cell the runner added
            return
        marks = [o.get("metadata", {}).get("kitteh_magic", {}) for o in cell.outputs
                 if o.get("output_type") == "display_data"]
        replayed = next((m for m in marks if m.get("replayed")), None)
        if replayed is not None:
            self._summary.replayed += 1
            self._summary.saved += float(replayed.get("saved", 0.0))
        elif _is_plain(cell.source):
            self._summary.plain += 1
        else:
            self._summary.executed += 1
        if self._progress is not None:
            self._progress.update(1)

    def start_new_kernel_client(self) -> Any:
        client = super().start_new_kernel_client()
        self._tag_requests(client)
        return client

    async def async_start_new_kernel_client(self) -> Any:
        client = await super().async_start_new_kernel_client()
        self._tag_requests(client)
        return client

    def _tag_requests(self, client: Any) -> None:
        # jupyter_client's execute() takes no metadata; JupyterLab puts the cell id there, and
        # ipykernel hands it to pre_run_cell. Adding it here makes headless steps carry the same
        # names as steps run in JupyterLab.
        session = client.session
        original = session.msg

        def msg(msg_type: str, content: Any = None, parent: Any = None, header: Any = None,
                metadata: Any = None) -> Any:
            if msg_type == "execute_request" and self._cell_id:
                metadata = {**(metadata or {}), "cellId": self._cell_id}
            return original(msg_type, content, parent, header, metadata)

        session.msg = msg


def run_notebook(path: Path, output: Path | None = None, session: str | None = None,
                 max_restarts: int = 3, timeout: int | None = None,
                 progress: bool = True) -> RunSummary:
    """Execute a notebook with every code cell durable, resuming after kernel deaths."""
    path = path.absolute()
    started = time.perf_counter()
    original = nbformat.read(path, as_version=4)
    setup = SETUP + (f"\n%durable session {session}" if session else "")
    env = {**os.environ, "JPY_SESSION_NAME": str(path)}
    with tempfile.TemporaryDirectory(prefix="kitteh-run-") as sockets:
        plan = _Plan(path, original, setup, env, output, max_restarts, timeout, progress, sockets)
        summary = plan.run()
    summary.seconds = time.perf_counter() - started
    _count_activities(summary, path, session, since=time.time() - summary.seconds)
    return summary


@dataclass
class _Plan:
    """One headless run: the notebook, how to start its kernels, how often to restart them."""

    path: Path
    original: Any
    setup: str
    env: dict[str, str]
    output: Path | None
    max_restarts: int
    timeout: int | None
    progress: bool
    sockets: str

    def run(self) -> RunSummary:
        """Run until the notebook finishes, a cell fails or no restart is left."""
        restarts = 0
        while True:
            nb = nbformat.from_dict(self.original)
            nb.cells.insert(0, nbformat.v4.new_code_cell(self.setup, id="kitteh-magic-setup"))
            summary = RunSummary(restarts=restarts)
            bar = self._progress_bar(restarts) if self.progress else None
            client = _Client(nb, summary, bar, timeout=self.timeout, kernel_name=_kernel_name(nb),
                             resources={"metadata": {"path": str(self.path.parent)}},
                             config=_ipc_config(self.sockets))
            try:
                client.execute(env=self.env)
            except DeadKernelError:
                if restarts < self.max_restarts:
                    restarts += 1
                    continue
                summary.failed = ("the kernel died and no restart is left "
                                  f"(--max-restarts {self.max_restarts})")
            except CellExecutionError as err:
                summary.failed = str(err).strip().splitlines()[-1] if str(err).strip() else "error"
            finally:
                if bar is not None:
                    bar.close()
            nb.cells.pop(0)
            if self.output is not None:
                nbformat.write(nb, self.output)
            return summary

    def _progress_bar(self, restarts: int) -> Any:
        from tqdm import tqdm

        total = sum(1 for c in self.original.cells if c.cell_type == "code" and c.source.strip())
        desc = self.path.name if not restarts else f"{self.path.name} (restart {restarts})"
        return tqdm(total=total, desc=desc, unit="cell")


def _count_activities(summary: RunSummary, path: Path, session: str | None,
                      since: float) -> None:
    """Activities of the steps this run executed, from the store's metadata."""
    from . import locate
    from .steps.catalog import Catalog
    from .store import Store

    directory = locate.store_dir(path)
    if not (directory / "index").is_dir():
        return
    store = Store(directory)
    try:
        name = session or locate.session_name(path, directory)
        for ptr in Catalog(store).steps(name):
            if ptr.last == "executed" and ptr.finished >= since:
                summary.activities += ptr.activities
                summary.resumed += ptr.resumed
    finally:
        store.close()


def _is_plain(source: str) -> bool:
    """Cells with magics or shell escapes stay plain under ``%durable on`` (see transformer)."""
    if source.lstrip().startswith("%%durable"):
        return False
    return any(line.lstrip().startswith(("%", "!")) for line in source.splitlines())


def _ipc_config(directory: str) -> Config:
    """Local sockets rather than TCP: nothing to expose, and no encryption warning per kernel.

    The socket path must be absolute: the kernel runs in the notebook's folder, the client here.
    """
    return Config({"KernelManager": {"transport": "ipc",
                                     "ip": os.path.join(directory, "kernel")}})


def _kernel_name(nb: Any) -> str:
    return str(nb.metadata.get("kernelspec", {}).get("name") or "python3")
