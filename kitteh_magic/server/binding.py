"""The binding of a running kernel to its notebook (``locate.binding_file``).

Jupyter starts a kernel with ``$JPY_SESSION_NAME`` set to the notebook's path at start and keeps
it across renames and restarts; the frontend tells the server the notebook's current path and
``kitteh_magic`` metadata, and the server writes them beside the kernel's connection file, where
the kernel reads them. The kernel id names the file, so it must name a kernel this server runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitteh_magic import locate

KERNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
"""What a kernel id may look like (Jupyter's are UUIDs): no separators, no dots."""


class UnknownKernel(LookupError):
    """The kernel id names no kernel of this server."""


class BadKernelId(ValueError):
    """The kernel id could not name a kernel (and must not name a file)."""


def binding_dir(kernel_manager: Any, kernel_id: str) -> Path:
    """The folder of the kernel's connection file, where the kernel looks for its binding.

    Raises:
        BadKernelId: Not the shape of a kernel id.
        UnknownKernel: No kernel of this server has that id.
    """
    if not KERNEL_ID.fullmatch(kernel_id):
        raise BadKernelId(f"{kernel_id[:80]!r} is not a kernel id (letters, digits, '-' and '_')")
    if kernel_id not in kernel_manager:
        raise UnknownKernel(f"no running kernel has the id {kernel_id!r}: start the notebook's "
                            "kernel first")
    connection = getattr(kernel_manager.get_kernel(kernel_id), "connection_file", "") or ""
    return Path(os.path.dirname(connection) or kernel_manager.connection_dir)


def write(directory: Path, kernel_id: str, notebook: str,
          metadata: Mapping[str, object]) -> Path:
    """Write the binding file of a kernel; returns its path."""
    path = locate.binding_file(directory, kernel_id)
    locate.write_binding(path, notebook, metadata)
    return path
