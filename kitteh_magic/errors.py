"""The error and warning families of kitteh_magic.

Errors are for a wrong program or a request that cannot be honoured; warnings are for degraded
durability (the cell still ran, but something could not be saved or trusted). Every message names
the thing, what was expected, what was found and what to do.
"""

from __future__ import annotations

import os
import traceback

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class KittehError(Exception):
    """Base class of every error kitteh_magic raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        """IPython's hook for how an error shows in a cell: the user's frames and the message,
        without kitteh_magic's own frames (the message says what happened and what to do)."""
        frames = [f for f in traceback.extract_tb(self.__traceback__)
                  if not os.path.abspath(f.filename).startswith(_PACKAGE)]
        text = "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames),
                        *traceback.format_exception_only(type(self), self)])
        return text.rstrip("\n").split("\n")


class StoreError(KittehError):
    """The store cannot be opened or written (permissions, disk full, foreign directory)."""


class StoreURLError(StoreError, ValueError):
    """A store location names a scheme kitteh_magic does not support (``redis://...``)."""


class DamagedRecordError(KittehError):
    """A record failed its checksum, signature or format check; callers treat it as a miss.

    Attributes:
        key: the store key of the record.
        reason: short machine-readable cause: ``truncated``, ``checksum``, ``signature``,
            ``format``, ``version``, ``missing-blob``, ``unreadable`` or ``rollback`` (a
            record older than one its step already saw, written back).
    """

    def __init__(self, key: str, reason: str, detail: str = "") -> None:
        self.key = key
        self.reason = reason
        self.detail = detail
        super().__init__(f"record {key!r} is damaged ({reason}){': ' + detail if detail else ''}")

    def __reduce__(self) -> tuple[type[DamagedRecordError], tuple[str, str, str]]:
        return (type(self), (self.key, self.reason, self.detail))


class UnpicklableError(KittehError):
    """A value could not be serialised; ``type_name`` says what it was."""

    def __init__(self, type_name: str, cause: str) -> None:
        self.type_name = type_name
        self.cause = cause
        super().__init__(f"cannot pickle a {type_name}: {cause}")

    def __reduce__(self) -> tuple[type[UnpicklableError], tuple[str, str]]:
        return (type(self), (self.type_name, self.cause))


class NondeterminismError(KittehError):
    """Replay met a different call than the journal recorded (see the activities design)."""


class IncompleteEffectError(KittehError):
    """An effect was started but never finished; replay will not run it twice on its own."""


class StepBusyError(KittehError):
    """Another kernel runs the step, and ``%%durable --wait SECONDS`` ran out before it finished.

    Attributes:
        step: the step's name.
        pid, host: the kernel that holds the step's lease.
        held: seconds it had held it when this kernel gave up.
        waited: seconds this kernel waited (its ``--wait``).
    """

    def __init__(self, step: str, pid: int, host: str, held: float, waited: float) -> None:
        self.step, self.pid, self.host, self.held, self.waited = step, pid, host, held, waited
        super().__init__(
            f"step {step!r} is running in kernel {pid} on {host} (for {held:.1f} s); "
            f"this kernel gave up after --wait {waited:g} s. Nothing ran here. Run the cell "
            "again to wait longer (without --wait it waits as long as that kernel runs the "
            "step), then it replays that kernel's record.")

    def __reduce__(self) -> tuple[type[StepBusyError], tuple[str, int, str, float, float]]:
        return (type(self), (self.step, self.pid, self.host, self.held, self.waited))


class KittehWarning(UserWarning):
    """Base class of the warnings kitteh_magic emits when durability is degraded."""


class UnfingerprintableWarning(KittehWarning):
    """An input holds a part that cannot be fingerprinted; a change to it alone re-runs nothing."""


class UnpicklableWarning(KittehWarning):
    """An output could not be saved; the step will re-execute on replay."""


class UnjournaledWarning(KittehWarning):
    """Activities of a step were made live and not journaled: they came from a thread kitteh_magic
    did not see start, or from handed-off calls it cannot tell apart. A resume makes them again."""


class DamagedStoreWarning(KittehWarning):
    """A record was damaged, foreign or tampered with; it was ignored and will be recomputed."""


class StoreWriteWarning(KittehWarning):
    """Saving a step failed (disk full, permissions); the cell's result is unaffected."""


class StoreUnavailableWarning(KittehWarning):
    """The store cannot be used (an unsupported URL, a server that cannot be reached, a folder
    that cannot be opened); the cell ran as a plain cell, and nothing was saved."""


class InternalWarning(KittehWarning):
    """kitteh_magic itself failed; the cell ran as a plain cell so nothing was lost."""
