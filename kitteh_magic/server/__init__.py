"""The Jupyter server extension: REST endpoints over a notebook's store, metadata only.

The endpoints live under ``/kitteh-magic/`` and back the JupyterLab "Durable" sidebar. They read
JSON metadata (sessions, step pointers) and never unpickle a value, so they are safe to serve for
any store and keep working while the notebook's kernel is busy or dead.

``jupyter_server`` and ``tornado`` are imported only when the server loads the extension, so
``import kitteh_magic`` works in a bare kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "kitteh_magic"
"""The name of both the server extension and the prebuilt lab extension."""


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Tell Jupyter Server which module holds the extension."""
    return [{"module": "kitteh_magic.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Tell JupyterLab where the prebuilt extension is (used by editable installs)."""
    return [{"src": str(Path(__file__).parent.parent / "labextension"), "dest": NAME}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers with a running Jupyter server.

    Args:
        server_app: The ``jupyter_server.serverapp.ServerApp`` loading the extension.
    """
    from kitteh_magic.server.handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("kitteh_magic: durable endpoints at /kitteh-magic/")
