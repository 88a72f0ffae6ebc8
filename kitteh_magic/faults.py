"""Named commit points where a fault campaign can kill the kernel (``scripts/chaos.py``).

``KITTEH_MAGIC_KILL_AT=<point>`` in a kernel's environment makes it SIGKILL itself the first
time it reaches that point: the exact moment between two writes that a random kill only hits
by luck. Points: ``record-written`` (a step's record is written, its journal not yet cleared)
and ``journal-entry-written`` (an activity's entry is written). Unset, a point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Final

ENV: Final = "KITTEH_MAGIC_KILL_AT"


def point(name: str) -> None:
    """Kill this process now if ``$KITTEH_MAGIC_KILL_AT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
