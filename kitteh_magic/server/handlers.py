"""REST handlers of the "Durable" sidebar: sessions and steps of a notebook, invalidate, reset.

Every route takes the notebook's API path; the store and default session follow from it exactly as
the kernel derives them (see :mod:`kitteh_magic.server.notebooks`), so a client never names a
directory. Store work runs in a worker thread: SQLite may wait on a busy kernel's write lock, and
the server must stay responsive meanwhile. Only JSON metadata is read; nothing is unpickled.

Bad client input is a 4xx with a one-line ``{"error": ...}``, never a server error: bodies are
streamed and capped before they are read (413), JSON that is not an object of text fields, or
nested past the parser's recursion limit, is a 400, and so is a path no file could have.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from kitteh_magic.server.notebooks import (
    NotebookStore,
    PathOutside,
    PathRefused,
    real_store,
    resolve,
)

if TYPE_CHECKING:
    from kitteh_magic.store import Store

T = TypeVar("T")

ROUTE = "kitteh-magic"
MAX_BODY = 2**20
"""Largest request body, in bytes: requests are a notebook path and two names."""


class StoreUnreadable(Exception):
    """The store exists but cannot be read (corrupt index, foreign files, permissions)."""


class Refused(tornado.web.HTTPError):
    """A request answered with a 4xx and a one-line ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.message = message


@contextmanager
def _opened(found: NotebookStore, real: Path) -> Iterator[Store]:
    """Open a store for one request at its checked real path, closing it afterwards.

    A fresh handle per request (a few milliseconds) rather than a cached one: a store that was
    deleted, replaced or repaired between two polls is then always read as it is now.
    """
    from kitteh_magic.store import Store

    try:
        store = Store(real)
    except Exception as exc:  # any failure to open is the same answer to the user
        raise StoreUnreadable(_unreadable(found.store, exc)) from exc
    try:
        yield store
    finally:
        store.close()


def _unreadable(directory: Path, exc: BaseException) -> str:
    return (f"the store at {directory} cannot be read ({type(exc).__name__}: {exc}); "
            "move it aside or run `kitteh-magic clear` to start a fresh one")


def _with_store(found: NotebookStore, work: Callable[[Store], T], empty: T) -> T:
    """Run ``work(store)``, or return ``empty`` when the notebook has no store yet.

    A missing store is not created: opening a notebook in the sidebar must not leave a
    ``.kitteh/`` folder behind.

    Raises:
        PathOutside: The store leads outside the server root (:func:`real_store`).
        StoreUnreadable: The store cannot be opened or read.
    """
    try:
        real = real_store(found)
        if not real.is_dir():
            return empty
    except OSError as exc:
        raise StoreUnreadable(_unreadable(found.store, exc)) from exc
    with _opened(found, real) as store:
        try:
            return work(store)
        except StoreUnreadable:
            raise
        except Exception as exc:
            raise StoreUnreadable(_unreadable(found.store, exc)) from exc


def _sessions(found: NotebookStore) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog

    none: list[dict[str, Any]] = []
    docs = _with_store(found, lambda store: [s.to_doc() for s in Catalog(store).sessions()], none)
    return {"store": str(found.store), "session": found.session, "notebook": found.notebook,
            "sessions": docs}


UNFINISHED = ("running", "interrupted")
"""Row states whose execution has not finished: their pointer's counts are the previous run's."""


def _steps(found: NotebookStore, session: str) -> dict[str, Any]:
    empty: dict[str, Any] = {"session": session, "steps": [],
             "totals": {"steps": 0, "size": 0, "saved": 0.0, "duration": 0.0}}
    return _with_store(found, lambda store: _status(store, session), empty)


def _status(store: Store, session: str) -> dict[str, Any]:
    """``session_status`` plus, for unfinished steps, how many activities are journaled so far.

    The kernel writes a step's pointer when it starts and when it ends, but each activity's journal
    entry as the call finishes; counting the entries (keys only, an index range scan) gives a live
    count while the cell runs, and for an interrupted step the calls its next run will not repeat.
    ``journaled`` is null for finished steps (their journal is cleared once recorded).
    """
    from kitteh_magic.status import session_status
    from kitteh_magic.steps.records import journal_prefix

    reply = session_status(store, session)
    for row in reply["steps"]:
        row["journaled"] = (len(store.keys(journal_prefix(session, row["step"])))
                            if row["state"] in UNFINISHED else None)
    return reply


def _invalidate(found: NotebookStore, session: str, step: str) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog

    done = _with_store(found, lambda store: Catalog(store).invalidate(session, step), False)
    return {"session": session, "step": step, "invalidated": done}


def _reset(found: NotebookStore, session: str) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog

    removed = _with_store(found, lambda store: Catalog(store).reset(session), 0)
    return {"session": session, "removed": removed}


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

    def _resolve(self, path: str | None) -> NotebookStore:
        if path is None:
            raise Refused(400, "missing 'path': the notebook's path relative to the server root")
        try:
            return resolve(path, self._root())
        except PathOutside as exc:
            raise Refused(403, str(exc)) from exc
        except PathRefused as exc:
            raise Refused(400, str(exc)) from exc

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
        found = self._resolve(_field(body, "path"))
        return body, found, _field(body, "session") or found.session

    def _queried(self, name: str) -> str | None:
        return _field({name: self.get_query_argument(name, None)}, name)

    async def _answer(self, work: Callable[[], dict[str, Any]]) -> None:
        try:
            reply = await asyncio.to_thread(work)
        except PathOutside as exc:
            raise Refused(403, str(exc)) from exc
        except StoreUnreadable as exc:
            self.log.warning("kitteh_magic: %s", exc)
            self._fail(500, str(exc))
            return
        self.finish(json.dumps(reply))


def _too_large(size: int | None) -> str:
    what = f"the request body ({size} bytes)" if size is not None else "the request body"
    return f"{what} is over the {MAX_BODY} bytes a request of the durable sidebar can take"


def _field(source: dict[str, Any], name: str) -> str | None:
    """A text field of a request: None when absent, null or empty.

    Raises:
        Refused: The field is not a string, or not text (JSON can carry unpaired surrogates,
            which no store key or file name can hold).
    """
    value = source.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Refused(400, f"'{name}' must be a string, not {type(value).__name__}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise Refused(400, f"'{name}' is not valid text (it holds an unpaired surrogate)") from None
    return value


class SessionsHandler(DurableHandler):
    """``GET /kitteh-magic/sessions?path=NB``: the store, default session and all sessions."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the sessions of the notebook's store."""
        found = self._resolve(self._queried("path"))
        await self._answer(lambda: _sessions(found))


class StepsHandler(DurableHandler):
    """``GET /kitteh-magic/steps?path=NB[&session=S]``: status rows and totals of a session."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the steps of a session (the notebook's default session unless named)."""
        found = self._resolve(self._queried("path"))
        session = self._queried("session") or found.session
        await self._answer(lambda: _steps(found, session))


class InvalidateHandler(DurableHandler):
    """``POST /kitteh-magic/invalidate {path, session?, step}``: the step's next run executes."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Invalidate one step."""
        body, found, session = self._posted()
        step = _field(body, "step")
        if step is None:
            raise Refused(400, "missing 'step': the name of the step to invalidate")
        await self._answer(lambda: _invalidate(found, session, step))


class ResetHandler(DurableHandler):
    """``POST /kitteh-magic/reset {path, session?}``: drop the session's records."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Reset one session."""
        _, found, session = self._posted()
        await self._answer(lambda: _reset(found, session))


def setup_handlers(web_app: Any) -> None:
    """Add the routes under ``<base_url>/kitteh-magic/``.

    Args:
        web_app: The server's ``tornado.web.Application``.
    """
    base = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [
        (url_path_join(base, "sessions"), SessionsHandler),
        (url_path_join(base, "steps"), StepsHandler),
        (url_path_join(base, "invalidate"), InvalidateHandler),
        (url_path_join(base, "reset"), ResetHandler),
    ])
