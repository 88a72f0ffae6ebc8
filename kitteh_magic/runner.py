"""Headless notebook runs: every code cell a durable step, resume after a death, a true summary.

nbclient executes the notebook in a fresh kernel started beside it with ``JPY_SESSION_NAME`` set
to the notebook's path. The session is the notebook's own (``locate.resolve``: its metadata,
else its path), set explicitly in the kernel, so a renamed notebook keeps its steps. Cells run
under ``%durable on``; each execute request carries the cell's id, as JupyterLab sends it, so
steps are named by cell and the sidebar finds them. When the kernel dies the runner starts a new
one and runs the notebook again from the top: finished steps replay in milliseconds, so this
resumes.

What each cell did is learnt from the kernel, not guessed: a durable step sends its *step mark*
on IOPub (ARCHITECTURE.md, issue 10: an ``update_display_data`` for the display id
``kitteh-magic-step``, which nbclient would drop, so :class:`_Client` reads it first). A kernel
that sends no mark (an older kitteh_magic in the kernel's environment) is read from the store
instead: the step pointer of the cell, written during this run. The executed notebook gets the
facts in each durable cell's ``metadata.kitteh_magic`` (as papermill puts its own in
``metadata.papermill``), never as outputs, so its outputs are those of a plain run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from traitlets.config import Config

from . import locate
from .errors import KittehError
from .status import count, human_seconds
from .steps import mark as step_mark

# Loaded by a direct call rather than %load_ext, so that the notebook's own `%load_ext
# kitteh_magic` (JupyterLab needs it) finds it loaded and says nothing.
SETUP = "__import__('kitteh_magic').load_ipython_extension(get_ipython())\n%durable on"
SETUP_ID = "kitteh-magic-setup"
FACTS = ("step", "state", "duration", "saved", "activities", "resumed")
"""The keys of a step mark, and of a cell's ``metadata.kitteh_magic`` in the executed notebook."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    r"""Text without terminal escape sequences (colours, cursor moves).

    >>> strip_ansi("\x1b[0;31mZeroDivisionError\x1b[0m: division by zero")
    'ZeroDivisionError: division by zero'
    """
    return _ANSI.sub("", text)


class NotebookInputError(ValueError):
    """The notebook cannot be run as given (not a notebook, no such kernel): exit code 2."""


class SetupError(KittehError):
    """The kernel could not load kitteh_magic (installed in another environment?)."""


@dataclass
class FailedCell:
    """The cell that stopped a run."""

    index: int
    """Its position in the executed notebook (0-based, ``nb.cells[index]``; an injected
    parameters cell counts). Text output numbers cells from 1."""
    id: str | None
    step: str | None
    """The durable step it ran as, or None for a cell that ran plain (magics, shell)."""
    error: str
    """One line: ``ZeroDivisionError: division by zero``, or why the kernel stopped."""
    source: str
    """The cell's first line of code (after a ``%%durable`` line), shortened to 60 characters."""
    traceback: list[str] = field(default_factory=list, repr=False)
    """The kernel's traceback lines, as sent (with its colours)."""

    def __str__(self) -> str:
        step = f", step {self.step!r}" if self.step else ""
        return f"cell {self.index + 1}{step} ({self.source}): {self.error}"

    def to_json(self) -> dict[str, Any]:
        """``{"index", "id", "step", "error"}`` (and the cell's first line as ``source``)."""
        return {"index": self.index, "id": self.id, "step": self.step, "error": self.error,
                "source": self.source}


@dataclass
class RunSummary:
    """What a run did: counts over the notebook's cells in its last pass, time saved over all.

    ``saved`` (seconds) is what this run's steps added to their sessions' time saved (the sum
    of their step marks' ``saved``, ARCHITECTURE.md's one definition), over every pass when the
    kernel was restarted. ``activities`` and ``resumed`` count the calls of the steps that
    executed, and how many of those were answered from the journal of an interrupted run.
    """

    notebook: str = ""
    output: str | None = None
    session: str = ""
    store: str = ""
    executed: int = 0
    replayed: int = 0
    plain: int = 0
    saved: float = 0.0
    restarts: int = 0
    seconds: float = 0.0
    activities: int = 0
    resumed: int = 0
    failed: FailedCell | None = None
    signal: str | None = None
    """``SIGINT`` (Ctrl-C) or ``SIGTERM`` when a signal stopped the run, else None."""
    cells: list[dict[str, Any]] = field(default_factory=list)
    """One entry per durable cell that ran: ``index``, ``id`` and the step mark's facts."""
    nb: Any = field(default=None, repr=False)
    """The executed notebook (nbformat), for a caller that writes it elsewhere (stdout)."""

    def __str__(self) -> str:
        text = (f"{count(self.executed, 'step')} executed, {self.replayed} replayed "
                f"({human_seconds(self.saved)} saved), {count(self.plain, 'plain cell')}, "
                f"{count(self.restarts, 'kernel restart')}, {human_seconds(self.seconds)} in all")
        if self.activities:
            text += (f"\n{count(self.activities, 'activity', 'activities')} in executed steps, "
                     f"{self.resumed} of them taken from the journal")
        if self.signal and not self.failed:
            text += f"\nstopped by {self.signal} as the kernel started"
        return text + (f"\nfailed at {self.failed}" if self.failed else "")

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` summary: every field but the notebook itself; seconds are floats."""
        return {"notebook": self.notebook, "output": self.output, "session": self.session,
                "store": self.store, "executed": self.executed, "replayed": self.replayed,
                "plain": self.plain, "saved": self.saved, "restarts": self.restarts,
                "seconds": self.seconds, "activities": self.activities,
                "resumed": self.resumed,
                "failed": self.failed.to_json() if self.failed else None,
                "signal": self.signal, "cells": self.cells}


class _Signalled(Exception):
    """A signal came between two cells: the run stops before the next one."""


_SIGNALS: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class _Client(NotebookClient):
    """nbclient with cell ids in execute requests, the step marks read, a progress bar, and
    signals that stop the run.

    nbclient meets SIGINT and SIGTERM by shutting the kernel down; the runner would then see a
    dead kernel and restart it, so that Ctrl-C ran the notebook again. Here Ctrl-C interrupts
    the kernel (the cell raises KeyboardInterrupt and its step is ``interrupted``, as in
    JupyterLab) and no further cell starts; a second Ctrl-C, or SIGTERM, shuts the kernel down.
    The runner does not restart a kernel a signal stopped.
    """

    def __init__(self, nb: Any, progress: Any, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self._progress = progress
        self._cell_id: str | None = None
        self.current = 0
        """The index of the cell running (or last run), in this client's notebook."""
        self.marks: dict[int, dict[str, Any]] = {}
        """Cell index -> the step mark it sent."""
        self.error: dict[str, Any] | None = None
        """The error reply of the cell that failed."""
        self.signalled: list[int] = []
        """The stopping signals received, in order."""
        self._acting: list[asyncio.Future[Any]] = []  # what they started (the loop holds weakly)
        self.on_cell_execute = self._before_cell
        self.on_cell_executed = self._after_cell
        self.on_cell_error = self._cell_error

    async def async_execute_cell(self, cell: Any, cell_index: int,
                                 execution_count: int | None = None,
                                 store_history: bool = True) -> Any:
        if cell_index == 0:  # the setup: off the kernel's history, so counts match a plain run
            result = await super().async_execute_cell(cell, 0, None, store_history=False)
            self.code_cells_executed = 0
            return result
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        content = msg.get("content") or {}
        transient = content.get("transient") or {}
        if (msg.get("msg_type") == "update_display_data"
                and transient.get("display_id") == step_mark.DISPLAY_ID):
            mark = (content.get("data") or {}).get(step_mark.MIME)
            if isinstance(mark, dict):
                self.marks[cell_index] = mark
        return super().process_message(msg, cell, cell_index)

    @asynccontextmanager
    async def async_setup_kernel(self, **kwargs: Any) -> AsyncIterator[None]:
        async with super().async_setup_kernel(**kwargs):
            loop = asyncio.get_running_loop()
            try:  # replaces nbclient's handlers, which it removes on the way out
                for signum in _SIGNALS:
                    loop.add_signal_handler(signum, self._on_signal, signum)
            except (RuntimeError, NotImplementedError):  # not the main thread; Windows
                pass
            yield

    def _on_signal(self, signum: int) -> None:
        self.signalled.append(signum)
        if self.km is None:
            return
        if signum == signal.SIGINT and len(self.signalled) == 1:
            act = ensure_async(self.km.interrupt_kernel())
        else:  # the kernel is dead to this run; nbclient's own cleanup follows
            act = ensure_async(self.km.shutdown_kernel(now=True))
        self._acting.append(asyncio.ensure_future(act))

    def _before_cell(self, cell: Any, cell_index: int) -> None:
        self._cell_id = cell.get("id")
        self.current = cell_index
        if self.signalled:
            raise _Signalled

    def _after_cell(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell_index and self._progress is not None:
            self._progress.update(1)

    def _cell_error(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        self.error = execute_reply.get("content") or {}

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


def read_notebook(path: Path) -> Any:
    """A notebook file as nbformat v4.

    Raises:
        NotebookInputError: no such file, or not a notebook (the message says why, one line).
    """
    try:
        nb = nbformat.read(path, as_version=4)
        # nbformat.read only logs a notebook that fails its schema; a kernelspec that is a
        # string or a source that is a number would then fail deep in the run, as a "bug".
        nbformat.validate(nb)
    except FileNotFoundError as exc:
        raise NotebookInputError(f"no notebook at {path}") from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError,
            nbformat.ValidationError) as exc:
        # NotJSONError and NBFormatError are ValueErrors; a notebook of a shape nbformat cannot
        # convert fails its schema (ValidationError) or a key look-up on the way.
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        where = "/".join(str(part) for part in getattr(exc, "absolute_path", None) or ())
        reason = f"{where}: {reason}" if where else reason
        raise NotebookInputError(f"{path} is not a notebook: {' '.join(reason.split())[:200]}") \
            from exc
    return nb


def run_notebook(path: Path, output: Path | None = None, session: str | None = None,
                 max_restarts: int = 3, timeout: int | None = None,
                 progress: bool = True, parameters: dict[str, object] | None = None,
                 nb: Any = None) -> RunSummary:
    """Execute a notebook with every code cell durable, resuming after kernel deaths.

    Args:
        path: the notebook; its folder is the kernel's working directory.
        output: where to write the executed notebook (None: not written; see
            :attr:`RunSummary.nb`). Written whether or not a cell failed.
        session: the session to use; default the notebook's own (``locate.resolve``).
        max_restarts: how often a dead kernel is restarted (the run resumes) before giving up.
        timeout: seconds a cell may run (None: no limit); a cell over it fails the run.
        progress: show a progress bar (tqdm, on stderr) counting the code cells run.
        parameters: values injected as papermill does (``parameters.inject``).
        nb: the notebook already read (:func:`read_notebook`), to read it once.

    Returns:
        What ran; ``failed`` names the cell that stopped the run, or is None.

    Raises:
        NotebookInputError: the notebook cannot be read, or its kernel is not installed.
    """
    from . import parameters as params

    path = path.absolute()
    started = time.perf_counter()
    original = nb if nb is not None else read_notebook(path)
    params.inject(original, parameters or {})
    store, name = locate.resolve(path, original.metadata)
    session = session or name
    env = {**os.environ, "JPY_SESSION_NAME": str(path)}
    if not locate.store_configured() and store != locate.store_dir(path, env={}):
        env[locate.STORE_ENV] = str(store)  # the folder the notebook's metadata names
    setup = f"{SETUP}\n%durable session {shlex.quote(session)}"
    before = _pointers(store, session)
    with tempfile.TemporaryDirectory(prefix="kitteh-run-") as sockets:
        plan = _Plan(path, original, setup, env, max_restarts, timeout, progress, sockets)
        summary = plan.run(before, store, session)
    summary.notebook, summary.session, summary.store = str(path), session, str(store)
    summary.seconds = time.perf_counter() - started
    _own_metadata(summary.nb, session, store, output or path)
    if output is not None:
        nbformat.write(summary.nb, output)
        summary.output = str(output)
    return summary


@dataclass
class _Plan:
    """One headless run: the notebook, how to start its kernels, how often to restart them."""

    path: Path
    original: Any
    setup: str
    env: dict[str, str]
    max_restarts: int
    timeout: int | None
    progress: bool
    sockets: str

    def run(self, before: dict[str, Any], store: locate.Location, session: str) -> RunSummary:
        """Run until the notebook finishes, a cell fails or no restart is left."""
        restarts, saved = 0, 0.0
        while True:
            nb = nbformat.from_dict(self.original)
            nb.cells.insert(0, nbformat.v4.new_code_cell(self.setup, id=SETUP_ID))
            bar = self._progress_bar(restarts) if self.progress else None
            client = _Client(nb, bar, timeout=self.timeout, kernel_name=_kernel_name(nb),
                             resources={"metadata": {"path": str(self.path.parent)}},
                             config=_ipc_config(self.sockets))
            since = time.time()
            stopped: str | None = None
            try:
                client.execute(env=self.env)
            except _Signalled:
                stopped = f"{_SIGNALS[client.signalled[0]]}: stopped before this cell ran"
            except DeadKernelError:
                if client.signalled:
                    stopped = f"{_SIGNALS[client.signalled[-1]]}: the kernel was shut down"
                elif restarts < self.max_restarts:
                    # What this pass replayed was saved too (the last pass is counted below).
                    saved += sum(float(m.get("saved") or 0.0) for m in client.marks.values())
                    restarts += 1
                    continue
                else:
                    stopped = ("the kernel died and no restart is left "
                               f"(--max-restarts {self.max_restarts})")
            except CellTimeoutError:
                stopped = f"timed out after {count(self.timeout or 0, 'second')} (--timeout)"
            except CellExecutionError:
                stopped = ""  # the error reply says what
            except NoSuchKernel as exc:
                raise NotebookInputError(
                    f"{self.path} asks for the kernel {_kernel_name(nb)!r}, which is not "
                    "installed (jupyter kernelspec list shows those that are)") from exc
            finally:
                if bar is not None:
                    bar.close()
            if stopped is not None and client.current == 0 and not client.signalled:
                reason = _failed(0, nb.cells[0], None, client.error, stopped).error
                raise SetupError(f"the kernel {_kernel_name(nb)!r} could not load kitteh_magic "
                                 f"({reason}): install it in the kernel's environment")
            summary = RunSummary(restarts=restarts, nb=nb)
            summary.saved = saved
            if client.signalled and stopped is not None:  # a signal after the last cell: moot
                summary.signal = _SIGNALS[client.signalled[0]]
            _account(summary, client, _pointers(store, session), before, since, stopped)
            nb.cells.pop(0)
            return summary

    def _progress_bar(self, restarts: int) -> Any:
        from tqdm import tqdm

        total = sum(1 for c in self.original.cells if c.cell_type == "code" and c.source.strip())
        desc = self.path.name if not restarts else f"{self.path.name} (restart {restarts})"
        return tqdm(total=total, desc=desc, unit="cell")


def _account(summary: RunSummary, client: _Client, after: dict[str, Any],
             before: dict[str, Any], since: float, stopped: str | None) -> None:
    """Fill ``summary`` from the last pass: each cell's mark, or its step pointer."""
    nb = client.nb
    by_cell = {p.cell_id: p for p in after.values()
               if p.cell_id and max(p.started, p.finished) >= since}
    last = client.current if stopped is not None else len(nb.cells) - 1
    for index in range(1, last + 1):
        cell = nb.cells[index]
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        ptr = by_cell.get(cell.get("id"))
        mark = client.marks.get(index)
        if stopped is not None and index == last:
            step = str(mark["step"]) if mark and mark.get("step") else ptr.step if ptr else None
            summary.failed = _failed(index - 1, cell, step, client.error, stopped)
            continue
        if mark is None and ptr is not None and ptr.state == "done":
            # No mark (an older kernel): the pointer this run wrote says what happened.
            was = before.get(ptr.step)
            mark = {"step": ptr.step, "state": ptr.last, "duration": ptr.duration,
                    "saved": max(ptr.saved - (was.saved if was else 0.0), 0.0),
                    "activities": ptr.activities, "resumed": ptr.resumed}
        if mark is None:
            summary.plain += 1
            continue
        facts = {key: mark.get(key) for key in FACTS}
        cell.metadata["kitteh_magic"] = facts
        summary.cells.append({"index": index - 1, "id": cell.get("id"), **facts})
        summary.saved += float(facts["saved"] or 0.0)
        if facts["state"] == "replayed":
            summary.replayed += 1
        else:
            summary.executed += 1
            summary.activities += int(facts["activities"] or 0)
            summary.resumed += int(facts["resumed"] or 0)


def _failed(index: int, cell: Any, step: str | None, reply: dict[str, Any] | None,
            stopped: str) -> FailedCell:
    lines = [line.strip() for line in cell.source.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("%%durable"):
        lines.pop(0)  # its step name is named already: its first line of code says more
    first = lines[0] if lines else ""
    error = stopped
    if not error and reply:
        name, value = str(reply.get("ename") or "Error"), str(reply.get("evalue") or "")
        # A bare `raise KeyboardInterrupt` has no value: its name alone, as Python prints it.
        error = strip_ansi(f"{name}: {value}" if value.strip() else name).strip()
    return FailedCell(index=index, id=cell.get("id"), step=step,
                      error=" ".join((error or "failed").split()),
                      source=first if len(first) <= 60 else first[:59] + "…",
                      traceback=list((reply or {}).get("traceback") or []))


def _pointers(store: locate.Location, session: str) -> dict[str, Any]:
    """The session's step pointers by step name ({} when there is no store folder yet)."""
    from .status import read_steps
    from .store import open_store

    if isinstance(store, Path) and not (store / "index").is_dir():
        return {}
    opened = open_store(store)
    try:
        pointers, _ = read_steps(opened, session)  # damaged ones: status and gc report them
    finally:
        opened.close()
    return {p.step: p for p in pointers}


def _own_metadata(nb: Any, session: str, store: locate.Location, where: Path) -> None:
    """Bind the executed notebook to the session it ran in, as JupyterLab would: ``session``
    when it has none, and ``store`` (relative) when it is written away from that store folder
    (a store on a server is never written into a notebook: its URL may hold a password)."""
    own = nb.metadata.setdefault(locate.METADATA_KEY, {})
    if not isinstance(own, dict):
        return  # not ours to repair: the kernel and JupyterLab ignore it too
    own.setdefault("session", session)
    if isinstance(store, Path) and not locate.store_configured() \
            and locate.store_dir(where, env={}) != store:
        own["store"] = os.path.relpath(store, where.absolute().parent)


def _ipc_config(directory: str) -> Config:
    """Local sockets rather than TCP: nothing to expose, and no encryption warning per kernel.

    The socket path must be absolute: the kernel runs in the notebook's folder, the client here.
    """
    return Config({"KernelManager": {"transport": "ipc",
                                     "ip": os.path.join(directory, "kernel")}})


def _kernel_name(nb: Any) -> str:
    return str(nb.metadata.get("kernelspec", {}).get("name") or "python3")
