"""Snapshots of live results that cannot be pickled but are plain data underneath.

``urllib.request.urlopen`` returns a response bound to a socket, and ``connection.execute``
returns a cursor bound to a database; neither pickles, so journaling them as they are would make
replay send the request or run the query again. A response is read completely when the call
returns and the cell gets a recorded stand-in with the same reading interface, live and on
replay alike, so the cell's code does not change between the two. A cursor's rows are journaled
the same way, but the cell keeps a working cursor (``cursors.py``). ``RecordedCursor`` is
importable from here too: journals written before ``cursors.py`` name it here.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Iterator
from email.message import Message
from typing import Any

from . import cursors
from .cursors import RecordedCursor

__all__ = ["RecordedCursor", "RecordedResponse", "is_connection", "revive", "snapshot",
           "snapshot_error"]


class RecordedResponse:
    """An HTTP response read to the end: status, headers and body (``http.client`` interface)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                 url: str | None) -> None:
        self.status, self.reason, self.url = status, reason, url
        self._headers = headers
        self._body = io.BytesIO(body)

    @property
    def code(self) -> int:
        return self.status

    @property
    def headers(self) -> Message:
        message = Message()
        for name, value in self._headers:
            message[name] = value
        return message

    def info(self) -> Message:
        return self.headers

    def getcode(self) -> int:
        return self.status

    def geturl(self) -> str | None:
        return self.url

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def read(self, amt: int | None = None) -> bytes:
        return self._body.read(amt)

    def readline(self, limit: int = -1) -> bytes:
        return self._body.readline(limit)

    def readlines(self) -> list[bytes]:
        return self._body.readlines()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        """Nothing to release: the body is in memory."""

    def __enter__(self) -> RecordedResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _response(result: Any) -> RecordedResponse:
    headers = list(result.getheaders()) if hasattr(result, "getheaders") else []
    return RecordedResponse(result.status, getattr(result, "reason", ""), headers, result.read(),
                            getattr(result, "url", None))


def _is_response(result: Any) -> bool:
    # Without http.client imported, nothing can be one of its responses (and no import per call).
    module = sys.modules.get("http.client")
    return module is not None and isinstance(result, module.HTTPResponse)


def _recorded_http_error(url: str, code: int, msg: str, headers: list[tuple[str, str]],
                         body: bytes) -> Exception:
    """Rebuild a recorded HTTPError (module level: pickle finds it by name)."""
    import urllib.error

    error: Exception = _http_error_class(urllib.error.HTTPError)(url, code, msg, headers, body)
    return error


@functools.cache
def _http_error_class(base: type) -> type:
    class RecordedHTTPError(base):  # type: ignore[misc]
        """An HTTPError whose body is in memory; ``except HTTPError`` still catches it."""

        def __init__(self, url: str, code: int, msg: str, headers: list[tuple[str, str]],
                     body: bytes) -> None:
            self._recorded = (url, code, msg, headers, body)
            message = Message()
            for name, value in headers:
                message[name] = value
            super().__init__(url, code, msg, message, io.BytesIO(body))

        def __reduce__(self) -> tuple[Any, ...]:
            return (_recorded_http_error, self._recorded)

    RecordedHTTPError.__qualname__ = RecordedHTTPError.__name__ = "HTTPError"
    return RecordedHTTPError


def snapshot_error(error: Exception) -> Exception:
    """A live exception made replayable (an HTTPError's body read into memory), else itself."""
    import urllib.error

    if isinstance(error, urllib.error.HTTPError) and not hasattr(error, "_recorded"):
        body = error.read() if error.fp is not None else b""
        headers = list(error.headers.items()) if error.headers is not None else []
        recorded = _recorded_http_error(error.geturl() or "", error.code, error.msg or "",
                                        headers, body)
        return recorded.with_traceback(error.__traceback__)
    return error


def snapshot(result: Any, fn: Any) -> tuple[Any, Any]:
    """(what the journal keeps, what the cell gets) for the live result of the activity ``fn``.

    A response is read into a :class:`RecordedResponse` (both); a DB-API cursor's statement
    outcome is journaled and the cell gets a cursor that stays usable (see ``cursors.py``);
    anything else is itself.
    """
    if type(result) in _PLAIN:
        return result, result
    if _is_response(result):
        recorded = _response(result)
        return recorded, recorded
    if cursors.is_cursor(result):
        return cursors.snapshot(result, getattr(fn, "__self__", None))
    return result, result


def revive(value: Any, fn: Any) -> Any:
    """What the cell gets for a journaled result on replay (the twin of :func:`snapshot`)."""
    if type(value) is RecordedCursor:
        return cursors.revive(value, getattr(fn, "__self__", None))
    return value


def is_connection(result: Any) -> bool:
    """A DB-API connection (``sqlite3.connect``'s result): a handle that replay opens again."""
    return all(hasattr(result, name) for name in ("cursor", "commit", "rollback", "close"))


_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict, set})
"""Result types that are never live handles (the common case, decided by one set lookup)."""
