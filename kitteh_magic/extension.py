"""Loading into IPython: magics, the engine in the namespace, and the pre-run hook."""

from __future__ import annotations

import warnings
from typing import Any

from .engine import Engine, is_hidden
from .errors import KittehWarning
from .transformer import ENGINE_NAME, is_wrappable

_STATE_ATTR = "_kitteh_magic_state"


class _Extension:
    """What one load put into a shell, so unload can take it all back out."""

    def __init__(self, shell: Any) -> None:
        from .magics import DurableMagics

        self.shell = shell
        hidden = shell.user_ns_hidden
        self.engine = Engine(shell.user_ns, display_pub=shell.display_pub,
                             hidden=lambda name: name in hidden or is_hidden(name))
        self.magics = DurableMagics(shell, self.engine)

    def pre_run_cell(self, info: Any) -> None:
        """Note the cell id; a plain cell's touched names lose their lineage tokens."""
        engine = self.engine
        engine.cell_id = getattr(info, "cell_id", None)
        raw = getattr(info, "raw_cell", "") or ""
        if raw.lstrip().startswith("%%durable"):
            return
        try:
            source = self.shell.transform_cell(raw)
            if engine.auto and is_wrappable(self.shell.compile.ast_parse(source)):
                return
            engine.note_plain_cell(source)
        except Exception:
            return  # a cell IPython cannot parse will fail on its own; nothing to track


def load(shell: Any) -> None:
    """Install the magics, the engine (hidden in the namespace) and the hook; idempotent."""
    if getattr(shell, _STATE_ATTR, None) is not None:
        return
    ext = _Extension(shell)
    shell.register_magics(ext.magics)
    shell.events.register("pre_run_cell", ext.pre_run_cell)
    shell.user_ns[ENGINE_NAME] = ext.engine
    shell.user_ns_hidden[ENGINE_NAME] = ext.engine
    warnings.filterwarnings("always", category=KittehWarning)
    setattr(shell, _STATE_ATTR, ext)


def unload(shell: Any) -> None:
    """Remove what :func:`load` installed and close the store."""
    ext: _Extension | None = getattr(shell, _STATE_ATTR, None)
    if ext is None:
        return
    if ext.magics.transformer in shell.ast_transformers:
        shell.ast_transformers.remove(ext.magics.transformer)
    shell.events.unregister("pre_run_cell", ext.pre_run_cell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("durable", None)
    shell.user_ns.pop(ENGINE_NAME, None)
    shell.user_ns_hidden.pop(ENGINE_NAME, None)
    ext.engine.close()
    delattr(shell, _STATE_ATTR)
