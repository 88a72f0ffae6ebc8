"""Loading into IPython: magics, transformers, the runtime names in the namespace, the pre-run hook.

Every name kitteh_magic puts into the user's namespace starts with ``_kitteh_`` and is hidden
from ``%who`` and from step outputs; ``unload`` removes them all.
"""

from __future__ import annotations

import warnings
from typing import Any

from IPython.core.error import UsageError

from . import cellargs
from .activities import dispatch
from .errors import KittehWarning
from .steps.engine import Engine, is_hidden
from .steps.run import StepRun
from .transformer import STEPS_NAME, DurableCells, is_wrappable, mark_durable_cell

_STATE_ATTR = "_kitteh_magic_state"
CALL_NAME, AWAIT_NAME = "_kitteh_call_", "_kitteh_acall_"


class Steps:
    """What cells transformed by :class:`DurableCells` call to start a step."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, source: str, line: str) -> StepRun:
        """A run of a cell; bad ``%%durable`` arguments are a UsageError before anything runs."""
        try:
            spec = cellargs.parse(line, source, self.engine.default_mode)
        except cellargs.CellArgsError as err:
            raise UsageError(str(err)) from None
        return StepRun(self.engine, spec)


class _Extension:
    """What one load put into a shell, so unload can take it all back out."""

    def __init__(self, shell: Any) -> None:
        from .magics import DurableMagics

        self.shell = shell
        hidden = shell.user_ns_hidden
        self.engine = Engine(shell.user_ns, display_pub=shell.display_pub,
                             hidden=lambda name: name in hidden or is_hidden(name))
        self.transformer = DurableCells()
        self.magics = DurableMagics(shell, self.engine, self.transformer)
        self.names = {STEPS_NAME: Steps(self.engine), CALL_NAME: dispatch.call,
                      AWAIT_NAME: dispatch.acall, "_kitteh_engine_": self.engine}

    def pre_run_cell(self, info: Any) -> None:
        """Note the cell id; a plain cell's touched names lose their lineage tokens."""
        engine = self.engine
        engine.cell_id = getattr(info, "cell_id", None)
        raw = getattr(info, "raw_cell", "") or ""
        if raw.lstrip().startswith("%%durable"):
            return
        try:
            source = self.shell.transform_cell(raw)
            if self.transformer.auto and is_wrappable(self.shell.compile.ast_parse(source)):
                return
            engine.note_plain_cell(source)
        except Exception:
            return  # a cell IPython cannot parse will fail on its own; nothing to track


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
