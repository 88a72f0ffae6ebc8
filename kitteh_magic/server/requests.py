"""What every request of the durable endpoints shares: the body cap, text fields, the notebook's
metadata, the path checks and one-line JSON refusals.

Bad client input is a 4xx with a one-line ``{"error": ...}``, never a server error: bodies are
streamed and capped before they are read (413), JSON that is not an object of text fields, or
nested past the parser's recursion limit, is a 400, and so is a path no file could have.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler

from kitteh_magic import locate
from kitteh_magic.errors import StoreURLError
from kitteh_magic.server.notebooks import NotebookStore, PathOutside, PathRefused, resolve
from kitteh_magic.server.stores import StoreUnreadable

T = TypeVar("T")

MAX_BODY = 2**20
"""Largest request body, in bytes: requests are a notebook path, a few names and its metadata."""
METADATA_FIELDS = ("session", "store")
"""The fields of ``metadata.kitteh_magic`` the server reads (``locate.METADATA_KEY``)."""


class Refused(tornado.web.HTTPError):
    """A request answered with a 4xx and a one-line ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.message = message


@tornado.web.stream_request_body
class DurableHandler(APIHandler):
    """Shared plumbing: body cap, argument parsing, path checks and JSON errors.

    Bodies are streamed (``stream_request_body``) so that the cap holds before they are read:
    without it tornado buffers a whole body, up to the server's ``max_body_size`` (512 MiB by
    default), before any handler code runs.
    """

    _received: bytearray

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare
        """Authenticate as every API handler does, then refuse a body declared over the cap.

        Answering here, before tornado reads the body, closes the connection after the answer;
        a client that waits for ``100 Continue`` (curl does for large bodies) never sends it.
        """
        self._received = bytearray()
        await super().prepare()
        try:
            declared = int(self.request.headers.get("Content-Length", "0"))
        except ValueError:
            declared = -1
        if declared < 0:
            raise Refused(400, "the Content-Length header must be a number of bytes")
        if declared > MAX_BODY:
            raise Refused(413, _too_large(declared))

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, refusing it as soon as it passes the cap (a chunked body declares
        no length)."""
        self._received += chunk
        if len(self._received) > MAX_BODY:
            self._received = bytearray()
            self._fail(413, _too_large(None))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Our refusals as ``{"error": ...}``; tornado's own (a missing user) as it writes them."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, Refused):
            self._fail(status_code, error.message)
        else:
            super().write_error(status_code, **kwargs)

    def _root(self) -> str:
        return str(self.settings["server_root_dir"])

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def _resolve(self, path: str | None, metadata: Mapping[str, object]) -> NotebookStore:
        if path is None:
            raise Refused(400, "missing 'path': the notebook's path relative to the server root")
        return refusing(lambda: resolve(path, self._root(), metadata))

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(bytes(self._received) or b"{}")
        except RecursionError:
            raise Refused(400, "the request body is nested too deeply to be a request") from None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Refused(400, "the request body must be a JSON object")
        return body

    def _posted(self) -> tuple[dict[str, Any], NotebookStore, str]:
        """A POST's body, its notebook's store and the session it names (default: the
        notebook's)."""
        body = self._body()
        found = self._resolve(field(body, "path"), metadata_field(body.get("metadata")))
        return body, found, field(body, "session") or found.session

    def _queried(self, name: str) -> str | None:
        return field({name: self.get_query_argument(name, None)}, name)

    def _queried_notebook(self) -> NotebookStore:
        """The notebook a GET names: its ``path`` and, as JSON, its ``metadata``."""
        text = self._queried("metadata")
        try:
            metadata = json.loads(text) if text is not None else None
        except RecursionError:
            raise Refused(400, "'metadata' is nested too deeply to be metadata") from None
        except ValueError:
            raise Refused(400, "'metadata' must be a JSON object (the notebook's "
                          "metadata.kitteh_magic under the key \"kitteh_magic\")") from None
        return self._resolve(self._queried("path"), metadata_field(metadata))

    async def _answered(self, work: Callable[[], T]) -> T:
        """Run store work in a worker thread; its refusals become answers."""
        try:
            return await asyncio.to_thread(work)
        except PathOutside as exc:
            raise Refused(403, str(exc)) from exc
        except StoreUnreadable as exc:
            self.log.warning("kitteh_magic: %s", exc)
            raise Refused(500, str(exc)) from exc

    async def _answer(self, work: Callable[[], dict[str, Any]]) -> None:
        self.finish(json.dumps(await self._answered(work)))


def refusing(work: Callable[[], T]) -> T:
    """Run path logic, turning its refusals into answers (403 outside the root, else 400; 500
    when the server's own environment names a store it cannot use)."""
    try:
        return work()
    except StoreURLError as exc:
        raise Refused(500, str(exc)) from exc
    except PathOutside as exc:
        raise Refused(403, str(exc)) from exc
    except PathRefused as exc:
        raise Refused(400, str(exc)) from exc


def _too_large(size: int | None) -> str:
    what = f"the request body ({size} bytes)" if size is not None else "the request body"
    return f"{what} is over the {MAX_BODY} bytes a request of the durable sidebar can take"


def field(source: Mapping[str, Any], name: str, where: str = "") -> str | None:
    """A text field of a request: None when absent, null or empty.

    Raises:
        Refused: The field is not a string, or not text (JSON can carry unpaired surrogates,
            which no store key or file name can hold).
    """
    value = source.get(name)
    shown = f"{where}{name}"
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Refused(400, f"'{shown}' must be a string, not {type(value).__name__}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise Refused(400, f"'{shown}' is not valid text (it holds an unpaired surrogate)"
                      ) from None
    return value


def metadata_field(value: object) -> dict[str, object]:
    """The notebook metadata a request carries, reduced to what the server reads.

    ``{"kitteh_magic": {"session": ..., "store": ...}}`` with only the text fields present;
    ``{}`` when absent.

    Raises:
        Refused: It, or its ``kitteh_magic``, is not an object, or a field is not text.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(400, f"'metadata' must be a JSON object, not {type(value).__name__}")
    own = value.get(locate.METADATA_KEY)
    if own is None:
        return {}
    if not isinstance(own, dict):
        raise Refused(400, f"'metadata.{locate.METADATA_KEY}' must be a JSON object, "
                      f"not {type(own).__name__}")
    kept = {name: field(own, name, f"metadata.{locate.METADATA_KEY}.")
            for name in METADATA_FIELDS}
    return {locate.METADATA_KEY: {name: text for name, text in kept.items() if text is not None}}
