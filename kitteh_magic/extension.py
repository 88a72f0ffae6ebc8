"""Loading into IPython: magics, transformers, the runtime names in the namespace, the pre-run hook.

Every name kitteh_magic puts into the user's namespace starts with ``_kitteh_`` and is hidden
from ``%who`` and from step outputs; ``unload`` removes them all.
"""

from __future__ import annotations

import ast
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from . import cellargs, locate
from .activities import dispatch
from .errors import InternalWarning, KittehWarning
from .steps import tracebacks
from .steps.engine import Engine, is_hidden
from .steps.run import StepRun
from .transformer import (
    RUNS_PLAIN,
    STEPS_NAME,
    DurableCells,
    cell_label,
    is_wrappable,
    mark_durable_cell,
    warn_failure,
)

_STATE_ATTR = "_kitteh_magic_state"
CALL_NAME, AWAIT_NAME = "_kitteh_call_", "_kitteh_acall_"


class Steps:
    """What cells transformed by :class:`DurableCells` call to start a step."""

    def __init__(self, engine: Engine, ran_plain: Callable[[str, str], None]) -> None:
        self.engine = engine
        self.ran_plain = ran_plain

    def start(self, source: str, line: str) -> StepRun | PlainRun:
        """A run of a cell; bad ``%%durable`` arguments are a UsageError before anything runs.

        If the run cannot even be set up, the cell runs plain (with a warning), not broken.
        """
        try:
            # The cell's tracebacks list its %%durable line as typed (a dictionary lookup).
            tracebacks.show_typed_line(sys._getframe(1).f_code.co_filename)
            return StepRun(self.engine, cellargs.parse(line, source, self.engine.default_mode))
        except cellargs.CellArgsError as err:
            raise UsageError(str(err)) from None
        except Exception as err:
            label = cell_label(source, line)
            warn_failure(label, err, RUNS_PLAIN)
            self.ran_plain(source, label)
            return PlainRun()


class PlainRun:
    """Stands in for a step run that could not be set up: the body runs once, as a plain cell."""

    value: Any = None

    def replay(self) -> bool:
        return False

    def __enter__(self) -> PlainRun:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Extension:
    """What one load put into a shell, so unload can take it all back out."""

    def __init__(self, shell: Any) -> None:
        from .magics import DurableMagics

        self.shell = shell
        hidden = shell.user_ns_hidden
        self.engine = Engine(shell.user_ns, display_pub=shell.display_pub,
                             hidden=lambda name: name in hidden or is_hidden(name),
                             binding=_binding_file())
        self.transformer = DurableCells(ran_plain=self.note_plain_cell)
        self.magics = DurableMagics(shell, self.engine, self.transformer, self.note_plain_cell)
        self.names = {STEPS_NAME: Steps(self.engine, self.note_plain_cell),
                      CALL_NAME: dispatch.call, AWAIT_NAME: dispatch.acall,
                      "_kitteh_engine_": self.engine}

    def pre_run_cell(self, info: Any) -> None:
        """Note the cell id; a plain cell's touched names lose their lineage tokens."""
        self.engine.cell_id = getattr(info, "cell_id", None)
        try:
            self._note_cell(getattr(info, "raw_cell", "") or "")
        finally:
            self._reinstall()

    def _note_cell(self, raw: str) -> None:
        if raw.lstrip().startswith("%%durable"):
            return
        try:
            source = self.shell.transform_cell(raw)
            tree = self.shell.compile.ast_parse(source)
        except Exception:  # not a pipeline failure: IPython reports such a cell and never runs it
            return
        if not (self.transformer.auto and is_wrappable(tree)):
            self.note_plain_cell(source)

    def note_plain_cell(self, cell: str | ast.Module, label: str | None = None) -> None:
        """A cell runs plain: the names it touches lose their lineage tokens.

        If what it touches cannot be told, every token goes: a later step then fingerprints its
        inputs by content (slower, never stale).
        """
        try:
            self.engine.note_plain_cell(cell if isinstance(cell, str) else ast.unparse(cell))
        except Exception as err:
            self.engine.lineage.clear()
            warn_failure(label or cell_label(cell if isinstance(cell, str) else ""), err,
                         "the fingerprints of every earlier step's outputs are recomputed from "
                         "their content, which is slower")

    def _reinstall(self) -> None:
        """Put back what ``%reset`` or IPython took out: runtime names, the AST transformer.

        ``%reset`` empties the namespace (generated code would then fail on a missing name);
        IPython unregisters an AST transformer that raised (only a warning raised as an error
        can make ours raise), and every later cell would run plain.
        """
        shell, ns = self.shell, self.shell.user_ns
        if any(ns.get(name) is not value for name, value in self.names.items()):
            ns.update(self.names)
            shell.user_ns_hidden.update(self.names)
        if self.transformer not in shell.ast_transformers:
            shell.ast_transformers.append(self.transformer)
            warnings.warn_explicit(
                "kitteh_magic's AST transformer had been unregistered (IPython drops one that "
                "raised); it is installed again, so %%durable and `%durable on` cells are steps "
                "again. The cells run since then ran as plain cells.",
                InternalWarning, "kitteh_magic", 0)


def _binding_file() -> Path | None:
    """Where the server extension tells this kernel which notebook it runs (``locate.py``):
    beside ipykernel's connection file, named by the kernel id. None outside a Jupyter kernel."""
    if "ipykernel.kernelapp" not in sys.modules:  # a terminal: never import ipykernel
        return None
    from ipykernel.connect import get_connection_file

    try:
        return locate.connection_binding(get_connection_file())
    except RuntimeError:  # no kernel app (an embedded shell): no binding, the path decides
        return None


def load(shell: Any) -> None:
    """Install everything; loading twice is a no-op."""
    if getattr(shell, _STATE_ATTR, None) is not None:
        return
    ext = _Extension(shell)
    shell.register_magics(ext.magics)
    shell.events.register("pre_run_cell", ext.pre_run_cell)
    # Before IPython's own cell-magic handling, so %%durable cells keep top-level await.
    line_transforms = shell.input_transformer_manager.line_transforms
    line_transforms.insert(0, mark_durable_cell)
    shell.ast_transformers.append(ext.transformer)
    shell.user_ns.update(ext.names)
    shell.user_ns_hidden.update(ext.names)
    warnings.filterwarnings("always", category=KittehWarning)
    setattr(shell, _STATE_ATTR, ext)


def unload(shell: Any) -> None:
    """Remove what :func:`load` installed and close the store."""
    ext: _Extension | None = getattr(shell, _STATE_ATTR, None)
    if ext is None:
        return
    if ext.transformer in shell.ast_transformers:
        shell.ast_transformers.remove(ext.transformer)
    line_transforms = shell.input_transformer_manager.line_transforms
    if mark_durable_cell in line_transforms:
        line_transforms.remove(mark_durable_cell)
    shell.events.unregister("pre_run_cell", ext.pre_run_cell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("durable", None)
    for name in ext.names:
        shell.user_ns.pop(name, None)
        shell.user_ns_hidden.pop(name, None)
    ext.engine.close()
    delattr(shell, _STATE_ATTR)
