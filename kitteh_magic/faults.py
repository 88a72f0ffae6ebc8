"""Named points where a fault campaign or a test acts on a kernel at an exact moment.

``KITTEH_MAGIC_KILL_AT=<point>`` in a kernel's environment makes it SIGKILL itself the first
time it reaches that point: the exact moment between two writes that a random kill only hits
by luck (``scripts/chaos.py``).

``KITTEH_MAGIC_PAUSE_AT=<point>:<file>`` makes it stop at that point until ``<file>`` exists,
after creating ``<file>.reached``: a test races a second kernel against the paused one at that
moment, then creates the file to let it go on.

Points: ``record-written`` (a step's record is written, its journal not yet cleared),
``journal-entry-written`` (an activity's entry is written) and ``lease-taken`` (a step that is
about to execute holds its lease, ``steps/lease.py``). Unset, a point costs two dictionary
lookups.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Final

ENV: Final = "KITTEH_MAGIC_KILL_AT"
PAUSE_ENV: Final = "KITTEH_MAGIC_PAUSE_AT"
_POLL = 0.01


def point(name: str) -> None:
    """Kill this process now if ``$KITTEH_MAGIC_KILL_AT`` names this point; wait here while
    ``$KITTEH_MAGIC_PAUSE_AT`` names it and its file does not exist yet."""
    environ = os.environ
    if environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = environ.get(PAUSE_ENV)
    if pause is not None:
        _pause(name, pause)


def _pause(name: str, setting: str) -> None:
    """Block at ``name`` when ``setting`` (``<point>:<file>``) names it, until the file exists.

    >>> _pause("record-written", "lease-taken:/nonexistent/go")  # another point: no wait
    """
    where, _, path = setting.partition(":")
    if where != name or not path or os.path.exists(path):
        return
    Path(path + ".reached").touch()
    while not os.path.exists(path):
        time.sleep(_POLL)
