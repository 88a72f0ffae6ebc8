"""REST handlers of the "Durable" sidebar: sessions, steps and journals of a notebook; invalidate,
reset; and the notebook's place (``binding``, ``moved``) that keeps its session across renames.

Every route takes the notebook's API path and its ``kitteh_magic`` metadata; the store and
default session follow from them exactly as the kernel derives them (see
:mod:`kitteh_magic.server.notebooks`), so a client never names a directory. Store work runs in a
worker thread: SQLite may wait on a busy kernel's write lock, and the server must stay responsive
meanwhile. Only JSON metadata is read; nothing is unpickled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.utils import url_path_join

from kitteh_magic.server import binding
from kitteh_magic.server.notebooks import NotebookStore, moved
from kitteh_magic.server.requests import (
    MAX_BODY,
    DurableHandler,
    Refused,
    field,
    metadata_field,
    refusing,
)
from kitteh_magic.server.stores import with_store

if TYPE_CHECKING:
    from kitteh_magic.store import Store

__all__ = ["MAX_BODY", "ROUTE", "setup_handlers"]

ROUTE = "kitteh-magic"


def _sessions(found: NotebookStore) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog

    none: list[dict[str, Any]] = []
    docs = with_store(found, lambda store: [s.to_doc() for s in Catalog(store).sessions()], none)
    return {"store": str(found.store), "session": found.session, "notebook": found.notebook,
            "sessions": docs}


def _steps(found: NotebookStore, session: str) -> dict[str, Any]:
    empty: dict[str, Any] = {"session": session, "steps": [],
             "totals": {"steps": 0, "size": 0, "saved": 0.0, "duration": 0.0}}
    return with_store(found, lambda store: _status(store, session), empty)


def _status(store: Store, session: str) -> dict[str, Any]:
    """``session_status`` plus, per step, how many journal entries its latest execution has.

    The kernel writes a step's pointer when it starts and when it ends, but each activity's journal
    entry as the call finishes; counting the entries (keys only, an index range scan) gives a live
    count while the cell runs, for an interrupted step the calls its next run will not repeat, and
    for a finished one the calls a run after ``invalidate`` would take from the journal (a journal
    is kept until it is forgotten).
    """
    from kitteh_magic.status import session_status
    from kitteh_magic.steps.records import journal_prefix

    reply = session_status(store, session)
    for row in reply["steps"]:
        row["journaled"] = len(store.keys(journal_prefix(session, row["step"])))
    return reply


def _journal(found: NotebookStore, session: str, step: str) -> dict[str, Any] | None:
    """The calls of a step's latest execution (``Catalog.journal_view``); None without the step."""
    from kitteh_magic.steps.catalog import Catalog

    def view(store: Store) -> dict[str, Any] | None:
        catalog = Catalog(store)
        pointer = catalog.pointer(session, step)
        if pointer is None:
            return None
        return {"session": session, "step": step, "state": pointer.state,
                "calls": catalog.journal_view(session, step)}

    return with_store(found, view, None)


def _invalidate(found: NotebookStore, session: str, step: str,
                forget_journal: bool) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog
    from kitteh_magic.steps.records import journal_prefix

    def invalidate(store: Store) -> tuple[bool, int]:
        done = Catalog(store).invalidate(session, step, forget_journal=forget_journal)
        return done, len(store.keys(journal_prefix(session, step)))

    done, kept = with_store(found, invalidate, (False, 0))
    return {"session": session, "step": step, "invalidated": done, "journal": kept}


def _reset(found: NotebookStore, session: str) -> dict[str, Any]:
    from kitteh_magic.steps.catalog import Catalog

    removed = with_store(found, lambda store: Catalog(store).reset(session), 0)
    return {"session": session, "removed": removed}


class SessionsHandler(DurableHandler):
    """``GET /kitteh-magic/sessions?path=NB[&metadata=JSON]``: the store, default session and
    all sessions."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the sessions of the notebook's store."""
        found = self._queried_notebook()
        await self._answer(lambda: _sessions(found))


class StepsHandler(DurableHandler):
    """``GET /kitteh-magic/steps?path=NB[&metadata=JSON][&session=S]``: status rows and totals
    of a session."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List the steps of a session (the notebook's default session unless named)."""
        found = self._queried_notebook()
        session = self._queried("session") or found.session
        await self._answer(lambda: _steps(found, session))


class JournalHandler(DurableHandler):
    """``GET /kitteh-magic/journal?path=NB&step=STEP[&metadata=JSON][&session=S]``: the calls
    of one step."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """List a step's journaled activities (404 when the session has no such step)."""
        found = self._queried_notebook()
        session = self._queried("session") or found.session
        step = self._queried("step")
        if step is None:
            raise Refused(400, "missing 'step': the name of the step whose journal to show")
        reply = await self._answered(lambda: _journal(found, session, step))
        if reply is None:
            raise Refused(404, f"session {session!r} has no step {step!r}")
        self.finish(reply)


class InvalidateHandler(DurableHandler):
    """``POST /kitteh-magic/invalidate {path, metadata?, session?, step, forget_journal?}``: the
    step's next run executes; its journal is kept unless ``forget_journal`` is true."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Invalidate one step."""
        body, found, session = self._posted()
        step = field(body, "step")
        if step is None:
            raise Refused(400, "missing 'step': the name of the step to invalidate")
        forget = body.get("forget_journal", False)
        if not isinstance(forget, bool):
            raise Refused(400, f"'forget_journal' must be true or false, not "
                          f"{type(forget).__name__}")
        await self._answer(lambda: _invalidate(found, session, step, forget))


class ResetHandler(DurableHandler):
    """``POST /kitteh-magic/reset {path, metadata?, session?}``: drop the session's records."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Reset one session."""
        _, found, session = self._posted()
        await self._answer(lambda: _reset(found, session))


class BindingHandler(DurableHandler):
    """``POST /kitteh-magic/binding {kernel_id, path, metadata?}``: tell a running kernel which
    notebook it runs now (``binding.py``)."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Write the kernel's binding file."""
        body, found, _ = self._posted()
        kernel_id = field(body, "kernel_id")
        if kernel_id is None:
            raise Refused(400, "missing 'kernel_id': the id of the notebook's running kernel")
        try:
            directory = binding.binding_dir(self.kernel_manager, kernel_id)
        except binding.BadKernelId as exc:
            raise Refused(400, str(exc)) from None
        except binding.UnknownKernel as exc:
            raise Refused(404, str(exc)) from None
        metadata = metadata_field(body.get("metadata"))
        await self._answer(lambda: {
            "kernel_id": kernel_id, "session": found.session, "store": str(found.store),
            "binding": str(binding.write(directory, kernel_id, found.notebook, metadata))})


class MovedHandler(DurableHandler):
    """``POST /kitteh-magic/moved {from, path, metadata?}``: the ``kitteh_magic`` metadata that
    keeps a notebook's session and store after it moved from ``from`` to ``path``."""

    @tornado.web.authenticated
    async def post(self) -> None:
        """Answer ``{"metadata": {"kitteh_magic": ...}, "store_found": bool}``."""
        body = self._body()
        old, new = field(body, "from"), field(body, "path")
        if old is None or new is None:
            raise Refused(400, "missing 'from' or 'path': the notebook's old and new paths")
        metadata = metadata_field(body.get("metadata"))
        kept, found = await self._answered(lambda: refusing(
            lambda: moved(old, new, self._root(), metadata)))
        self.finish({"metadata": {"kitteh_magic": kept}, "store_found": found})


def setup_handlers(web_app: Any) -> None:
    """Add the routes under ``<base_url>/kitteh-magic/``.

    Args:
        web_app: The server's ``tornado.web.Application``.
    """
    base = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [
        (url_path_join(base, "sessions"), SessionsHandler),
        (url_path_join(base, "steps"), StepsHandler),
        (url_path_join(base, "journal"), JournalHandler),
        (url_path_join(base, "invalidate"), InvalidateHandler),
        (url_path_join(base, "reset"), ResetHandler),
        (url_path_join(base, "binding"), BindingHandler),
        (url_path_join(base, "moved"), MovedHandler),
    ])
