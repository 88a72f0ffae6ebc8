"""kitteh_magic: durable notebook cells for Jupyter.

``%load_ext kitteh_magic``, then mark cells with ``%%durable [STEP]``: a finished step is saved
and, when re-run with the same code and inputs (after a kernel restart, say), restored in
milliseconds instead of executed. Inside it, calls that leave the notebook are journaled
activities (``km.activity``, ``km.effect``; ``km.inline`` opts out), so a killed cell resumes.
"""

from __future__ import annotations

from typing import Any

from .activities import (
    ActivityTimeout,
    JournaledError,
    RetryPolicy,
    activity,
    configure,
    effect,
    inline,
    map,
)
from .errors import (
    DamagedRecordError,
    DamagedStoreWarning,
    IncompleteEffectError,
    InternalWarning,
    KittehError,
    KittehWarning,
    NondeterminismError,
    StepBusyError,
    StoreError,
    StoreWriteWarning,
    UnfingerprintableWarning,
    UnjournaledWarning,
    UnpicklableError,
    UnpicklableWarning,
)

__version__ = "0.1.0"

__all__ = [
    "ActivityTimeout",
    "DamagedRecordError",
    "DamagedStoreWarning",
    "IncompleteEffectError",
    "InternalWarning",
    "JournaledError",
    "KittehError",
    "KittehWarning",
    "NondeterminismError",
    "RetryPolicy",
    "StepBusyError",
    "StoreError",
    "StoreWriteWarning",
    "UnfingerprintableWarning",
    "UnjournaledWarning",
    "UnpicklableError",
    "UnpicklableWarning",
    "__version__",
    "activity",
    "configure",
    "effect",
    "inline",
    "load_ipython_extension",
    "map",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext kitteh_magic``)."""
    from .extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo everything ``load_ipython_extension`` did."""
    from .extension import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt extension (``jupyter labextension develop``)."""
    from .server import _jupyter_labextension_paths as paths

    return paths()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (``jupyter server extension enable kitteh_magic``)."""
    from .server import _jupyter_server_extension_points as points

    return points()
