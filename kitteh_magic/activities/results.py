"""Snapshots of live results that cannot be pickled but are plain data underneath.

``urllib.request.urlopen`` returns a response bound to a socket, and ``connection.execute``
returns a cursor bound to a database; neither pickles, so journaling them as they are would make
replay send the request or run the query again. An adapter reads such a result completely when
the call returns and hands the cell a recorded stand-in with the same reading interface, live
and on replay alike, so the cell's code does not change between the two.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any


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


class RecordedCursor:
    """A DB-API cursor fetched to the end: rows, description, rowcount, lastrowid."""

    def __init__(self, rows: list[Any], description: Any, rowcount: int,
                 lastrowid: Any) -> None:
        self._rows, self._next = rows, 0
        self.description, self.rowcount, self.lastrowid = description, rowcount, lastrowid
        self.arraysize = 1

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        """Nothing to release: the rows are in memory."""


def _response(result: Any) -> RecordedResponse:
    headers = list(result.getheaders()) if hasattr(result, "getheaders") else []
    return RecordedResponse(result.status, getattr(result, "reason", ""), headers, result.read(),
                            getattr(result, "url", None))


def _cursor(result: Any) -> RecordedCursor:
    rows = list(result.fetchall()) if result.description is not None else []
    return RecordedCursor(rows, result.description, getattr(result, "rowcount", -1),
                          getattr(result, "lastrowid", None))


def _is_response(result: Any) -> bool:
    import http.client

    return isinstance(result, http.client.HTTPResponse)


def _is_cursor(result: Any) -> bool:
    return all(hasattr(result, a) for a in ("description", "fetchall", "rowcount", "execute"))


ADAPTERS: list[tuple[Callable[[Any], bool], Callable[[Any], Any]]] = [
    (_is_response, _response),
    (_is_cursor, _cursor),
]
"""(recognise, snapshot) pairs, tried in order on every live activity result."""


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


def snapshot(result: Any) -> Any:
    """The result, or a recorded stand-in when it is a live response or cursor."""
    for recognise, adapt in ADAPTERS:
        if recognise(result):
            return adapt(result)
    return result
