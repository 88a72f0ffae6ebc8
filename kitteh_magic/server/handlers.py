"""REST handlers of the "Durable" sidebar: sessions and steps of a notebook, invalidate, reset.

Every route takes the notebook's API path; the store and default session follow from it exactly as
the kernel derives them (see :mod:`kitteh_magic.server.notebooks`), so a client never names a
directory. Store work runs in a worker thread: SQLite may wait on a busy kernel's write lock, and
the server must stay responsive meanwhile. Only JSON metadata is read; nothing is unpickled.
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

from kitteh_magic.server.notebooks import NotebookStore, PathRefused, resolve

if TYPE_CHECKING:
    from kitteh_magic.store import Store

T = TypeVar("T")

ROUTE = "kitteh-magic"


class StoreUnreadable(Exception):
    """The store exists but cannot be read (corrupt index, foreign files, permissions)."""


@contextmanager
def _opened(directory: Path) -> Iterator[Store]:
    """Open a store for one request, closing it afterwards.

    A fresh handle per request (a few milliseconds) rather than a cached one: a store that was
    deleted, replaced or repaired between two polls is then always read as it is now.
    """
    from kitteh_magic.store import Store

    try:
        store = Store(directory)
    except Exception as exc:  # any failure to open is the same answer to the user
        raise StoreUnreadable(_unreadable(directory, exc)) from exc
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
    """
    if not found.store.is_dir():
        return empty
    with _opened(found.store) as store:
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


class DurableHandler(APIHandler):
    """Shared plumbing: argument parsing, path checks and JSON errors."""

    def _root(self) -> str:
        return str(self.settings["server_root_dir"])

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"error": message}))

    def _resolve(self, path: str | None) -> NotebookStore | None:
        if not path:
            self._fail(400, "missing 'path': the notebook's path relative to the server root")
            return None
        try:
            return resolve(path, self._root())
        except PathRefused as exc:
            self._fail(403 if "outside" in str(exc) else 400, str(exc))
            return None

    def _body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._fail(400, "the request body must be a JSON object")
            return None
        return body

    def _posted(self) -> tuple[dict[str, Any], NotebookStore, str] | None:
        """A POST's body, its notebook's store and the session it names (default: the
        notebook's); None when the request was answered with an error."""
        body = self._body()
        if body is None:
            return None
        found = self._resolve(self._text(body.get("path")))
        if found is None:
            return None
        return body, found, self._text(body.get("session")) or found.session

    @staticmethod
    def _text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    async def _answer(self, work: Callable[[], dict[str, Any]]) -> None:
        try:
            reply = await asyncio.to_thread(work)
        except StoreUnreadable as exc:
            self.log.warning("kitteh_magic: %s", exc)
            self._fail(500, str(exc))
            return
        self.finish(json.dumps(reply))


class SessionsHandler(DurableHandler):
    """``GET /kitteh-magic/sessions?path=NB``: the store, default session and all sessions."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the sessions of the notebook's store."""
        found = self._resolve(self.get_query_argument("path", None))
        if found is not None:
            await self._answer(lambda: _sessions(found))


class StepsHandler(DurableHandler):
    """``GET /kitteh-magic/steps?path=NB[&session=S]``: status rows and totals of a session."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the steps of a session (the notebook's default session unless named)."""
        found = self._resolve(self.get_query_argument("path", None))
        if found is None:
            return
        session = self._text(self.get_query_argument("session", None)) or found.session
        await self._answer(lambda: _steps(found, session))


class InvalidateHandler(DurableHandler):
    """``POST /kitteh-magic/invalidate {path, session?, step}``: the step's next run executes."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Invalidate one step."""
        posted = self._posted()
        if posted is None:
            return
        body, found, session = posted
        step = self._text(body.get("step"))
        if step is None:
            self._fail(400, "missing 'step': the name of the step to invalidate")
            return
        await self._answer(lambda: _invalidate(found, session, step))


class ResetHandler(DurableHandler):
    """``POST /kitteh-magic/reset {path, session?}``: drop the session's records."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Reset one session."""
        posted = self._posted()
        if posted is None:
            return
        _, found, session = posted
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
