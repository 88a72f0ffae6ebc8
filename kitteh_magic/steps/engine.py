"""A step run: find the record of this version of a step and replay it, or execute and save.

The engine works on a plain namespace dict and never imports IPython, so it runs in unit tests
and in any host; ``magics.py`` and ``transformer.py`` adapt it to IPython. Whatever goes wrong
inside the engine becomes a warning and the cell runs as a plain cell: the cache may lose a
record, never the user's work.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

import psutil

from .. import locate
from ..errors import InternalWarning, StoreURLError
from ..store import Store, open_store
from . import analysis, codeprint, fingerprint, observe
from .catalog import Catalog
from .lineage import Lineage

_IPYTHON_NAMES = re.compile(r"^(_|__|___|_\d+|_i|_ii|_iii|_i\d+|_oh|_ih|_dh|In|Out|exit|quit|"
                            r"get_ipython|_kitteh_\w*)$")


def is_hidden(name: str) -> bool:
    """Names that belong to IPython or kitteh_magic rather than to the user.

    >>> [n for n in ["df", "_", "_12", "_i3", "Out", "__name__", "_kitteh_run", "_tmp"]
    ...  if is_hidden(n)]
    ['_', '_12', '_i3', 'Out', '__name__', '_kitteh_run']
    """
    return bool(_IPYTHON_NAMES.match(name)) or (name.startswith("__") and name.endswith("__"))


class Engine:
    """Durable steps of one kernel: a namespace, a store and a session.

    Args:
        namespace: the user's namespace (IPython's ``user_ns``).
        display_pub: IPython's display publisher (None outside IPython).
        hidden: names that are not the user's (IPython's history variables...).
        store_dir: the store (a folder or a :class:`~kitteh_magic.locate.StoreURL`); default
            from the binding, else ``locate.store_dir``. ``%durable store`` and
            :meth:`choose_store` replace it.
        session: the session name; default from the binding, else from the notebook path.
        binding: the kernel's binding file (``locate.binding_file``): the notebook the kernel
            runs now and its metadata, which name the store and the session
            (``locate.resolve``); re-read when it changes (:meth:`follow_binding`).
    """

    def __init__(self, namespace: dict[str, Any], *, display_pub: Any | None = None,
                 hidden: Callable[[str], bool] = is_hidden,
                 store_dir: locate.Location | None = None, session: str | None = None,
                 binding: Path | None = None, configured: str | None = None) -> None:
        self.namespace = namespace
        self.display_pub = display_pub
        self.hidden = hidden
        self.notebook = locate.notebook_path(namespace)
        self.configured = configured or None
        """The store of the kernel's configuration (``c.DurableMagics.store``): below the
        environment's, above the notebook's folder."""
        self.store_error: StoreURLError | None = None
        """Why the configured store cannot be used (an unsupported URL): every step says so."""
        self.store_dir: locate.Location = store_dir or self._default_store(self.notebook)
        self._session = session or locate.session_name(self.notebook, self.store_dir)
        self._store_given = store_dir is not None
        self._session_chosen = session is not None
        self._binding = binding
        self._binding_seen: int | None = -1
        """The binding's mtime (ns) when last read; None while absent, -1 before any look."""
        self.lineage = Lineage()
        self.cell_id: str | None = None
        self.default_mode = "durable"
        self.auto = False
        """Whether ``%durable on`` is in force."""
        self._store: Store | None = None
        self._catalog: Catalog | None = None
        self._proc_start = psutil.Process().create_time()
        self.follow_binding()

    @property
    def session(self) -> str:
        """The session steps run in: the binding's, else the notebook path's, unless chosen."""
        return self._session

    @session.setter
    def session(self, name: str) -> None:
        """Choose the session (``%durable session NAME``): the binding no longer moves it."""
        self._session, self._session_chosen = name, True

    def follow_binding(self) -> None:
        """Take the notebook, store and session from the binding file when it changed.

        A stat per call (each step calls it): the file is read again only when its mtime
        changed. Without a readable binding the notebook path Jupyter gave the kernel decides
        (``$JPY_SESSION_NAME``). A session chosen by the user, or a store given to the
        engine, stays.
        """
        if self._binding is None:
            return
        try:
            mtime: int | None = self._binding.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime == self._binding_seen:
            return
        self._binding_seen = mtime
        found = locate.read_binding(self._binding) if mtime is not None else None
        notebook, metadata = found if found is not None else (
            locate.notebook_path(self.namespace), {})
        try:
            store, session = self._resolve(notebook, metadata)
        except Exception as err:  # a binding no notebook could have: say so, keep the session
            self.warn(InternalWarning, f"kitteh_magic could not use the notebook binding "
                      f"{str(self._binding)!r} ({type(err).__name__}: {err}); steps stay in "
                      f"session {self._session!r}.")
            return
        self.notebook = notebook
        if not self._store_given and store != self.store_dir:
            self.close()  # the next use opens the store the notebook names now
            self.store_dir = store
        if not self._session_chosen:
            self._session = session

    def _default_store(self, notebook: str | None) -> locate.Location:
        """``$KITTEH_MAGIC_STORE``, else the configuration's store, else ``$KITTEH_MAGIC_DIR``,
        else beside the notebook; an unsupported URL is kept in :attr:`store_error` (raised
        when the store is used)."""
        self.store_error = None
        try:
            found = locate.configured_store({locate.STORE_URL_ENV: os.environ.get(
                locate.STORE_URL_ENV, "")})
            if found is None and self.configured:
                found = locate.parse_store(self.configured, "c.DurableMagics.store")
            if found is None:
                found = locate.configured_store()  # $KITTEH_MAGIC_DIR
        except StoreURLError as err:
            self.store_error = err
            found = None
        return found or locate.store_dir(notebook, env={})

    def _resolve(self, notebook: str | None,
                 metadata: dict[str, object]) -> tuple[locate.Location, str]:
        """:func:`locate.resolve` with the configuration's store below the environment's."""
        store = self._default_store(notebook)
        if (self.store_error is not None or locate.store_configured()
                or self.configured):
            return store, locate.metadata_session(metadata) or locate.session_name(notebook,
                                                                                    store)
        return locate.resolve(notebook, metadata, env={})

    def configure(self, configured: str | None) -> None:
        """Take the configuration's store (``c.DurableMagics.store``), below the environment's
        and above the notebook's folder; a store the user chose stays."""
        self.configured = configured or None
        if self._store_given:
            return
        store = self._default_store(self.notebook)
        if store != self.store_dir:
            self.close()
            self.store_dir = store
            if not self._session_chosen:
                self._session = locate.session_name(self.notebook, store)
        self._binding_seen = -1  # the binding's metadata is read again against it

    def choose_store(self, location: locate.Location) -> None:
        """Use the store at ``location`` from now on (``%durable store URL``); the binding and
        the environment no longer move it. The session keeps its name."""
        if location != self.store_dir or self.store_error is not None:
            self.close()  # the same store stays open: its connections and what it has read
        self.store_dir, self._store_given, self.store_error = location, True, None

    @property
    def store(self) -> Store:
        """The store, opened on first use (a notebook that never runs a step creates nothing).

        Raises:
            StoreURLError: the environment or the configuration names an unsupported store.
            StoreError: the store cannot be opened (a server that cannot be reached...).
        """
        if self._store is not None and self._store.gone:
            self.close()  # a server restarted or emptied under this kernel: open it anew
        if self._store is None:
            if self.store_error is not None and not self._store_given:
                raise self.store_error
            self._store = open_store(self.store_dir)
        return self._store

    @property
    def catalog(self) -> Catalog:
        """Metadata operations over the store (one, so its ``damaged`` notes are kept)."""
        store = self.store
        if self._catalog is None or self._catalog.store is not store:
            self._catalog = Catalog(store)
        return self._catalog

    def take_damaged(self) -> list[Exception]:
        """The damaged metadata documents met since the last call (none if no store is open)."""
        if self._catalog is None:
            return []
        found: list[Exception] = list(self._catalog.damaged)
        self._catalog.damaged.clear()
        return found

    def close(self) -> None:
        """Flush and close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # lineage --------------------------------------------------------------------------------
    def note_plain_cell(self, source: str) -> None:
        """A plain cell ran: names it touched (and globals of functions it called) lose tokens."""
        try:
            touched = set(analysis.referenced_names(analysis.parse(source)))
        except SyntaxError:
            return
        for name in list(touched):
            value = self.namespace.get(name)
            if value is not None:  # a notebook function, or a wrapper of one (lru_cache)
                touched |= codeprint.global_reads(value)
        # A plain cell that changes ``b`` changes ``a`` too when ``b = a`` (or ``b`` is a view
        # of ``a``, holds it, or is a method of it): ``a``'s token must go as well.
        held = [n for n, _ in self.lineage.items() if n not in touched]
        if held:
            touched |= observe.sharing(self.namespace, touched, held)
        self.lineage.drop(touched)

    def input_fingerprint(self, name: str, value: object) -> str:
        """Fingerprint of one input: a lineage token when possible, else by content.

        A part that cannot be pickled (the connection in ``{"df": df, "conn": conn}``) counts
        by its type, and a value that is nothing but such a part (a connection, a lock, a
        generator) is keyed by its type alone (``u:``). Both are named in an
        ``UnfingerprintableWarning``: a change there alone re-runs nothing. The type, not the
        identity: an identity key would re-run the step, and its paid activities, after every
        restart (and a freed id can be reused by another object), while a setup cell's
        connection is the same resource each time.
        """
        if isinstance(value, ModuleType):
            return "m:" + fingerprint.module_token(value)
        # Code and modules go by what they are, never by the step that bound them: a step that
        # imports a module its notebook functions read would otherwise key its next run on its
        # own last run (a new token each time, so it never replays).
        code = isinstance(value, FunctionType | type | BuiltinFunctionType)
        token = None if code else self.lineage.get(name, value)
        if token is not None:
            return "t:" + token
        found = fingerprint.describe(value)
        kind = fingerprint.type_name(value)
        if found.whole:
            self.warn(fingerprint.UnfingerprintableWarning, (
                f"input {name!r} ({kind}) cannot be fingerprinted: steps that read it are keyed "
                f"by its type alone, so they replay, after a restart too, whichever {kind} "
                f"{name!r} holds. Run a step with %%durable --force when what {name!r} refers "
                "to has changed."))
            return "u:" + found.digest
        if found.leaves:
            parts = [f"{name}{leaf.path} ({leaf.type_name})" if leaf.path is not None
                     else f"a part of {name!r} ({leaf.type_name})" for leaf in found.leaves]
            more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
            self.warn(fingerprint.UnfingerprintableWarning, (
                f"input {name!r} ({kind}) holds parts that cannot be fingerprinted: "
                f"{', '.join(parts[:3])}{more}. They count by their type only, so a change to "
                f"them alone re-runs nothing; the rest of {name!r} is fingerprinted as usual. "
                "Run a step with %%durable --force after changing them."))
        # A notebook function or class by its code; a bound method carries its instance.
        code = codeprint.is_notebook_object(value) and not hasattr(value, "__self__")
        return ("c:" if code else "v:") + found.digest

    def inputs(self, facts: analysis.CellAnalysis,
               reached: set[str] | None = None) -> dict[str, str]:
        """Fingerprints of the names a step reads and of the globals its notebook functions read.

        Args:
            facts: the cell's analysis.
            reached: if given, collects the globals that notebook functions read: the step may
                change them through those functions (the observation keeps those that are data,
                ``observe.is_data``).
        """
        # ``reads`` holds every free name, callees and mutated names included; a name the cell
        # binds before using it is not an input (else a re-run would depend on its own output).
        todo = sorted(facts.reads)
        found: dict[str, str] = {}
        while todo:
            name = todo.pop()
            if name in found or self.hidden(name) or name not in self.namespace:
                continue
            value = self.namespace[name]
            found[name] = self.input_fingerprint(name, value)
            # Code it runs, through wrappers too (lru_cache, partial, a bound method).
            indirect = codeprint.global_reads(value) - found.keys()
            if indirect:
                todo.extend(sorted(indirect))
                if reached is not None:
                    reached.update(indirect)
        return found

    # status helpers ---------------------------------------------------------------------------
    def warn(self, category: type[Warning], message: str) -> None:
        """Emit a kitteh_magic warning pointing at the user's cell, not at our internals.

        The warning is attributed to the first frame outside this package (the cell's code),
        so that Jupyter shows the cell's line, not a line of kitteh_magic.
        """
        warnings.warn(message, category, stacklevel=_outside_frames())


_PACKAGE = str(Path(__file__).resolve().parent.parent) + "/"


def _outside_frames() -> int:
    """The ``stacklevel`` of the first caller outside kitteh_magic (counted from the caller)."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level

