"""What a step shows: stdout, stderr and rich displays, recorded while still shown live.

IPython's ``capture_output`` hides what it records; a durable step must show its output as it runs
and keep a copy for replay, so the streams and the display publisher are wrapped (a tee) for the
duration of the step and restored afterwards, even when the step fails.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO, cast

Event = tuple[Any, ...]
"""``("stream", name, text)``, ``("display", data, metadata, transient, update)``,
``("clear", wait)``: plain data, pickled with the step's record."""


class _TeeStream:
    """A text stream that writes through to the real one and records what passed."""

    def __init__(self, target: TextIO, name: str, events: list[Event]) -> None:
        self._target = target
        self._name = name
        self._events = events

    def write(self, text: str) -> int:
        if text:
            last = self._events[-1] if self._events else None
            if last is not None and last[0] == "stream" and last[1] == self._name:
                self._events[-1] = ("stream", self._name, last[2] + text)
            else:
                self._events.append(("stream", self._name, text))
        return self._target.write(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # flush, isatty, encoding, fileno...: whatever the real stream offers.
        return getattr(self._target, name)


class Capture:
    """Context manager that tees stdout, stderr and ``display_pub`` into ``events``.

    Args:
        display_pub: IPython's display publisher, or None outside IPython.
        flush_figures: called just before the capture ends, so that figures the inline
            matplotlib backend would show after the cell are shown (and recorded) inside it.
    """

    def __init__(self, display_pub: Any | None,
                 flush_figures: Callable[[], None] | None = None) -> None:
        self.events: list[Event] = []
        self._pub = display_pub
        self._flush_figures = flush_figures
        self._saved: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> Capture:
        self._saved = (sys.stdout, sys.stderr)
        # A duck-typed stream: it forwards everything it does not record to the real one.
        sys.stdout = cast(TextIO, _TeeStream(sys.stdout, "stdout", self.events))
        sys.stderr = cast(TextIO, _TeeStream(sys.stderr, "stderr", self.events))
        if self._pub is not None:
            self._wrap_publisher(self._pub)
        return self

    def _wrap_publisher(self, pub: Any) -> None:
        events = self.events
        publish, clear_output = pub.publish, pub.clear_output

        def recording_publish(data: dict[str, Any], metadata: dict[str, Any] | None = None,
                              *args: Any, **kwargs: Any) -> Any:
            events.append(("display", dict(data), dict(metadata or {}),
                           kwargs.get("transient"), bool(kwargs.get("update", False))))
            return publish(data, metadata, *args, **kwargs)

        def recording_clear(*args: Any, **kwargs: Any) -> Any:
            wait = kwargs.get("wait", args[0] if args else False)
            events.append(("clear", bool(wait)))
            return clear_output(*args, **kwargs)

        # Instance attributes shadow the methods; deleting them restores the class's own.
        pub.publish = recording_publish
        pub.clear_output = recording_clear

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None and self._flush_figures is not None:
                self._flush_figures()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            assert self._saved is not None
            sys.stdout, sys.stderr = self._saved
            if self._pub is not None:
                for attr in ("publish", "clear_output"):
                    self._pub.__dict__.pop(attr, None)


def replay(events: list[Event], display_pub: Any | None) -> None:
    """Show recorded events again, in their order."""
    for event in events:
        kind = event[0]
        if kind == "stream":
            stream = sys.stdout if event[1] == "stdout" else sys.stderr
            stream.write(event[2])
            stream.flush()
        elif kind == "display" and display_pub is not None:
            _, data, metadata, transient, update = event
            kwargs: dict[str, Any] = {}
            if transient:
                kwargs["transient"] = transient
            if update:
                kwargs["update"] = update
            display_pub.publish(data, metadata, **kwargs)
        elif kind == "clear" and display_pub is not None:
            display_pub.clear_output(wait=event[1])


def inline_figure_flusher() -> Callable[[], None] | None:
    """The inline matplotlib backend's flush, if that backend is in use."""
    module = sys.modules.get("matplotlib_inline.backend_inline")
    matplotlib = sys.modules.get("matplotlib")
    if module is None or matplotlib is None:
        return None
    if "inline" not in str(matplotlib.get_backend()):
        return None
    flush: Callable[[], None] = module.flush_figures
    return flush
