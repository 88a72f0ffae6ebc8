"""The magics: ``%%durable`` runs a cell as a durable step; ``%durable`` manages the session.

Thin by design: parse the arguments (mistakes are ``UsageError``s that IPython prints without a
traceback), call the engine, render.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from typing import Any, NoReturn

from IPython.core.error import InputRejected, UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Unicode, observe

from . import cellargs, locate, maintenance, status
from .activities.journal import Journal
from .activities.rewriter import rewrite
from .restore import restore
from .steps import analysis
from .steps.engine import Engine
from .steps.run import run_step
from .transformer import RUNS_PLAIN, DurableCells, cell_label, warn_failure

LINE_USAGE = """\
%durable status [--json]        the session's steps: state, runs, duration, time saved, size
%durable restore [--session S]  bring every finished step's outputs back, without running cells
%durable invalidate STEP        the next run of STEP executes (--all: every step); its calls
                                come from the journal (--forget-journal: made again)
%durable reset                  drop the session's records
%durable session [NAME]         show or switch the session
%durable store [PATH | URL]     show or switch the store: a folder, or postgresql://...
%durable on | off               make every following cell a durable step, or stop
%durable mode [durable|step]    show or set the default mode of `%durable on` cells
%durable log STEP               the activity journal of a step
%durable effect STEP N done|redo  settle an effect interrupted by a dead kernel
%durable gc [--max-size SIZE]   drop records no session uses; trim the store to SIZE (e.g. 2GB)"""


def _usage_error(message: str) -> UsageError:
    return UsageError(f"{message}\n\nUsage:\n{LINE_USAGE}")


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as UsageError, with the usage."""

    def error(self, message: str) -> NoReturn:
        raise _usage_error(f"%durable: {message}")


def _line_parser() -> _Parser:
    parser = _Parser(prog="%durable", add_help=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("status", add_help=False).add_argument("--json", action="store_true")
    sub.add_parser("restore", add_help=False).add_argument("--session")
    inv = sub.add_parser("invalidate", add_help=False)
    inv.add_argument("step", nargs="?")
    inv.add_argument("--all", action="store_true")
    inv.add_argument("--forget-journal", action="store_true")
    sub.add_parser("reset", add_help=False)
    sub.add_parser("session", add_help=False).add_argument("name", nargs="?")
    sub.add_parser("store", add_help=False).add_argument("location", nargs="?")
    sub.add_parser("on", add_help=False)
    sub.add_parser("off", add_help=False)
    sub.add_parser("mode", add_help=False).add_argument(
        "mode", nargs="?", choices=["durable", "step"])
    sub.add_parser("log", add_help=False).add_argument("step")
    effect = sub.add_parser("effect", add_help=False)
    effect.add_argument("step")
    effect.add_argument("position")  # as %durable log shows it: 3, map0[17]:1
    effect.add_argument("verdict", choices=["done", "redo"])
    sub.add_parser("gc", add_help=False).add_argument("--max-size", type=maintenance.parse_size)
    return parser


@magics_class
class DurableMagics(Magics):
    """The ``%%durable`` cell magic and the ``%durable`` line magic."""

    store = Unicode("", config=True, help=(
        "Where durable steps are stored: a folder, or a PostgreSQL URL "
        "(postgresql://user:password@host:port/database) shared by a team. $KITTEH_MAGIC_STORE "
        "wins over it, and it wins over $KITTEH_MAGIC_DIR; empty: .kitteh/ beside the "
        "notebook."))

    def __init__(self, shell: Any, engine: Engine, transformer: DurableCells,
                 ran_plain: Callable[[str, str], None]) -> None:
        super().__init__(shell)
        self.engine = engine
        self.transformer = transformer
        self.ran_plain = ran_plain
        """Told of a cell that runs plain because kitteh_magic failed on it."""
        engine.configure(self.store)

    @observe("store")
    def _store_changed(self, change: dict[str, Any]) -> None:
        # The configuration is loaded inside Magics.__init__, before the engine is set: the
        # constructor hands the value over then; later changes (%config) arrive here.
        if hasattr(self, "engine"):
            self.engine.configure(change["new"])

    @cell_magic("durable")
    def durable_cell(self, line: str, cell: str) -> Any:
        # Cells typed with %%durable reach the engine through transformer.mark_durable_cell
        # (IPython's own pipeline, so top-level await works); this path serves explicit
        # run_cell_magic("durable", ...) calls. The help is CELL_HELP, set below.
        __tracebackhide__ = True  # the step unlinks the frames below; IPython hides this one
        source = self.shell.transform_cell(cell)
        try:
            spec = cellargs.parse(line, source, self.engine.default_mode)
        except cellargs.CellArgsError as err:
            raise UsageError(str(err)) from None
        try:
            tree = self.shell.compile.ast_parse(source)
        except SyntaxError:
            # Let IPython report it the usual way, through the plain path.
            return self.shell.run_cell(cell, store_history=False)
        try:
            has_await = analysis.analyse(tree).has_await
            tree = self._transform(tree)
            body = rewrite(tree) if spec.mode == "durable" else tree
        except InputRejected:  # another extension's transformer refused the cell
            raise
        except Exception as err:
            label = cell_label(source, line)
            warn_failure(label, err, RUNS_PLAIN)
            self.ran_plain(source, label)
            value = self._execute(source, tree)
        else:
            if has_await:
                raise UsageError("%%durable: top-level await needs the cell to be typed in the "
                                 "notebook (run_cell_magic cannot await); write it as a cell.")
            value = run_step(self.engine, spec, lambda: self._execute(source, body))
        return None if cell.rstrip().endswith(";") else value

    durable_cell.__doc__ = cellargs.CELL_HELP

    def _transform(self, tree: Any) -> Any:
        """The other extensions' AST transformers, as IPython would apply them to the cell."""
        shell = self.shell
        # Ours must not wrap the body of a step in a second step. IPython drops transformers that
        # fail: keep that effect.
        everything = shell.ast_transformers
        shell.ast_transformers = [t for t in everything if t is not self.transformer]
        try:
            return shell.transform_ast(tree)
        finally:
            kept = shell.ast_transformers
            shell.ast_transformers = [t for t in everything
                                      if t in kept or t is self.transformer]

    def _execute(self, source: str, tree: Any) -> Any:
        """Execute a cell body the way IPython would (exec, then eval of a last expression)."""
        shell = self.shell
        module, last = analysis.split_last_expr(tree)
        filename = shell.compile.cache(source, shell.execution_count)
        namespace = shell.user_ns
        with shell.builtin_trap:
            exec(shell.compile(module, filename, "exec"), namespace)
            if last is None:
                return None
            return eval(shell.compile(last, filename, "eval"), namespace)

    @line_magic("durable")
    def durable_line(self, line: str) -> Any:
        """Manage durable steps.

        Usage::

        %durable status [--json]        the session's steps: state, runs, duration, time saved
        %durable restore [--session S]  bring every finished step's outputs back, no cell runs
        %durable invalidate STEP        the next run of STEP executes (--all: every step); the
                                        calls it made come from its journal, unless
                                        --forget-journal
        %durable reset                  drop the session's records
        %durable session [NAME]         show or switch the session
        %durable store [PATH | URL]     show or switch the store (a folder, postgresql://...)
        %durable on | off               every following cell is a durable step, or not
        %durable mode [durable|step]    show or set the default mode of durable cells
        %durable log STEP               the activity journal of a step
        %durable effect STEP N done|redo  settle an effect interrupted by a dead kernel
        %durable gc [--max-size SIZE]   drop records no session uses; trim the store to SIZE
        """
        args = _line_parser().parse_args(shlex.split(line))
        engine = self.engine
        engine.follow_binding()
        command = args.command
        if command == "status":
            report = status.session_status(engine.store, engine.session)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                display(_Status(report))
        elif command == "restore":
            print(restore(engine, session=args.session))
        elif command == "invalidate":
            if args.all == bool(args.step):
                raise _usage_error("%durable invalidate: give a STEP or --all (not both)")
            forget = args.forget_journal
            if args.all:
                done = engine.catalog.invalidate_all(engine.session, forget_journal=forget)
                print(f"invalidated {status.count(done, 'step')}: "
                      + status.invalidated_text(forget, done))
            elif engine.catalog.invalidate(engine.session, args.step, forget_journal=forget):
                print(f"invalidated step {args.step!r}: " + status.invalidated_text(forget))
            else:
                names = ", ".join(p.step for p in engine.catalog.steps(engine.session))
                raise _usage_error(f"%durable invalidate: no step {args.step!r} in session "
                                   f"{engine.session!r} (steps: {names or 'none'})")
        elif command == "reset":
            dropped = engine.catalog.reset(engine.session)
            engine.lineage.clear()
            print(f"reset session {engine.session!r}: dropped {status.count(dropped, 'step')}")
        elif command == "session":
            if args.name:
                engine.session = args.name
            print(f"session {engine.session!r} (store {engine.store_dir})")
        elif command == "store":
            self._store(args.location)
        elif command in ("on", "off"):
            self._auto(command == "on")
        elif command == "mode":
            if args.mode:
                engine.default_mode = self.transformer.default_mode = args.mode
            print(f"default mode: {engine.default_mode}")
        elif command == "log":
            self._log(args.step)
        elif command == "effect":
            self._effect(args.step, args.position, args.verdict)
        elif command == "gc":
            print(maintenance.gc(engine.store, max_size=args.max_size))
        return None

    def _store(self, location: str | None) -> None:
        engine = self.engine
        if location:
            try:
                found = locate.parse_store(location, "%durable store")
            except ValueError as err:
                raise _usage_error(str(err)) from None
            engine.choose_store(found)
            try:
                engine.store  # noqa: B018 -- open it now: a wrong URL is said here, not later
            except Exception as err:
                raise _usage_error(f"%durable store: {err}") from None
        elif engine.store_error is not None:
            raise _usage_error(f"%durable store: {engine.store_error}")
        print(f"store {engine.store_dir} (session {engine.session!r})")

    def _auto(self, on: bool) -> None:
        self.transformer.auto = on
        print("every following cell is a durable step" if on else "durable cells: off")

    def _log(self, step: str) -> None:
        engine = self.engine
        ptr = engine.catalog.pointer(engine.session, step)
        if ptr is None:
            raise _usage_error(f"%durable log: no step {step!r} in session {engine.session!r}")
        calls = engine.catalog.journal_view(engine.session, step)
        print(status.render_journal(step, calls, status.journal_source(ptr.state)))

    def _effect(self, step: str, position: str, verdict: str) -> None:
        engine = self.engine
        label = str(position)
        entries = {e.label: e for e in engine.catalog.journal(engine.session, step)}
        entry = entries.get(label)
        if entry is None or entry.state != "started" or not entry.effect:
            raise _usage_error(f"%durable effect: step {step!r} has no interrupted effect at "
                               f"position {label} (see %durable log {step})")
        journal = Journal(engine.store, engine.session, step, engine.namespace)
        if verdict == "done":
            entry.state = "done"
            journal.record(entry, result=None)
            print(f"effect #{label} of {step!r} marked done: the next run will not repeat it")
        else:
            journal.drop(entry.slot)
            print(f"effect #{label} of {step!r} will run again on the next run")


class _Status:
    """Status with an HTML table for notebooks and text for terminals."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def _repr_html_(self) -> str:
        return status.render_html(self.report)

    def __repr__(self) -> str:
        return status.render_text(self.report)

