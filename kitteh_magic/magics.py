"""The magics: ``%%durable`` runs a cell as a durable step; ``%durable`` manages the session.

Thin by design: parse the arguments (mistakes are ``UsageError``s that IPython prints without a
traceback), call the engine, render.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import analysis, maintenance, status
from .engine import Engine
from .restore import restore
from .step import StepSpec
from .transformer import DurableCells

CELL_USAGE = ("Usage: %%durable [STEP] [--session S] [--mode durable|step] [--retries N]\n"
              "                 [--backoff SECONDS] [--timeout SECONDS] [--force]")

LINE_USAGE = """\
%durable status [--json]        the session's steps: state, runs, duration, time saved, size
%durable restore                bring every finished step's outputs back, without running cells
%durable invalidate STEP        the next run of STEP executes (--all: every step)
%durable reset                  drop the session's records
%durable session [NAME]         show or switch the session
%durable on | off               make every following cell a durable step, or stop
%durable mode [durable|step]    show or set the default mode of `%durable on` cells
%durable log STEP               the activity journal of a step
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
    sub.add_parser("restore", add_help=False)
    inv = sub.add_parser("invalidate", add_help=False)
    inv.add_argument("step", nargs="?")
    inv.add_argument("--all", action="store_true")
    sub.add_parser("reset", add_help=False)
    sub.add_parser("session", add_help=False).add_argument("name", nargs="?")
    sub.add_parser("on", add_help=False)
    sub.add_parser("off", add_help=False)
    sub.add_parser("mode", add_help=False).add_argument(
        "mode", nargs="?", choices=["durable", "step"])
    sub.add_parser("log", add_help=False).add_argument("step")
    sub.add_parser("gc", add_help=False).add_argument("--max-size", type=maintenance.parse_size)
    return parser


@magics_class
class DurableMagics(Magics):
    """The ``%%durable`` cell magic and the ``%durable`` line magic."""

    def __init__(self, shell: Any, engine: Engine) -> None:
        super().__init__(shell)
        self.engine = engine
        self.transformer = DurableCells()

    @magic_arguments()
    @argument("step", nargs="?", help="a readable name for the step (default: from the cell)")
    @argument("--session", help="run in this session instead of the notebook's")
    @argument("--mode", choices=["durable", "step"], default=None,
              help="durable (default): activities are journaled and a killed cell resumes; "
                   "step: the whole cell is one unit. Until activities are journaled the two "
                   "behave the same.")
    @argument("--retries", type=int, default=None, help="retry policy of the cell's activities")
    @argument("--backoff", type=float, default=None, help="seconds between activity retries")
    @argument("--timeout", type=float, default=None, help="seconds an activity may take")
    @argument("--force", action="store_true", help="run now and replace the record")
    @cell_magic("durable")
    def durable_cell(self, line: str, cell: str) -> Any:
        """Run the cell as a durable step: replayed from the store when its code and inputs are
        unchanged, executed and saved otherwise.

        Replay restores the names the step bound, deleted or mutated, shows its output again
        and returns its last value, without executing its body.
        """
        args = self._cell_args(line)
        source = self.shell.transform_cell(cell)
        try:
            tree = self.shell.compile.ast_parse(source)
        except SyntaxError:
            # Let IPython report it the usual way, through the plain path.
            return self.shell.run_cell(cell, store_history=False)
        if analysis.analyse(tree).has_await:
            raise UsageError("%%durable: top-level await is not supported in a %%durable cell; "
                             "run `%durable on` and run the cell without the magic line.")
        spec = StepSpec(source=source, name=args.step, mode=args.mode or self.engine.default_mode,
                        force=args.force)
        engine = self.engine
        previous = engine.session
        if args.session:
            engine.session = args.session
        try:
            value = engine.run(spec, lambda: self._execute(source, tree))
        finally:
            engine.session = previous
        return None if cell.rstrip().endswith(";") else value

    def _cell_args(self, line: str) -> Any:
        usage = CELL_USAGE
        try:
            args = parse_argstring(self.durable_cell, line)
        except UsageError as err:
            raise UsageError(f"%%durable: {err}\n{usage}") from None
        if args.retries is not None and args.retries < 0:
            raise UsageError(f"%%durable: --retries must be 0 or more\n{usage}")
        for flag in ("backoff", "timeout"):
            if getattr(args, flag) is not None and getattr(args, flag) < 0:
                raise UsageError(f"%%durable: --{flag} must be 0 or more seconds\n{usage}")
        return args

    def _execute(self, source: str, tree: Any) -> Any:
        """Execute a cell body the way IPython would: its AST transformers, then exec/eval."""
        shell = self.shell
        # Other extensions' transformers apply; ours (``%durable on``) must not wrap the body of
        # a step in a second step. IPython drops transformers that fail: keep that effect.
        everything = shell.ast_transformers
        others = [t for t in everything if not isinstance(t, DurableCells)]
        shell.ast_transformers = others
        try:
            tree = shell.transform_ast(tree)
        finally:
            kept = shell.ast_transformers
            shell.ast_transformers = [t for t in everything
                                      if t in kept or isinstance(t, DurableCells)]
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
        %durable restore                bring every finished step's outputs back, no cell runs
        %durable invalidate STEP        the next run of STEP executes (--all: every step)
        %durable reset                  drop the session's records
        %durable session [NAME]         show or switch the session
        %durable on | off               every following cell is a durable step, or not
        %durable mode [durable|step]    show or set the default mode of durable cells
        %durable log STEP               the activity journal of a step
        %durable gc [--max-size SIZE]   drop records no session uses; trim the store to SIZE
        """
        args = _line_parser().parse_args(shlex.split(line))
        engine = self.engine
        command = args.command
        if command == "status":
            report = status.session_status(engine.store, engine.session)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                display(_Status(report))
        elif command == "restore":
            print(restore(engine))
        elif command == "invalidate":
            if args.all == bool(args.step):
                raise _usage_error("%durable invalidate: give a STEP or --all (not both)")
            if args.all:
                print(f"invalidated {engine.catalog.invalidate_all(engine.session)} steps")
            elif engine.catalog.invalidate(engine.session, args.step):
                print(f"invalidated step {args.step!r}: its next run executes")
            else:
                names = ", ".join(p.step for p in engine.catalog.steps(engine.session))
                raise _usage_error(f"%durable invalidate: no step {args.step!r} in session "
                                   f"{engine.session!r} (steps: {names or 'none'})")
        elif command == "reset":
            count = engine.catalog.reset(engine.session)
            engine.lineage.clear()
            print(f"reset session {engine.session!r}: dropped {count} steps")
        elif command == "session":
            if args.name:
                engine.session = args.name
            print(f"session {engine.session!r} (store {engine.store_dir})")
        elif command in ("on", "off"):
            self._auto(command == "on")
        elif command == "mode":
            if args.mode:
                engine.default_mode = args.mode
            print(f"default mode: {engine.default_mode}")
        elif command == "log":
            self._log(args.step)
        elif command == "gc":
            print(maintenance.gc(engine.store, max_size=args.max_size))
        return None

    def _auto(self, on: bool) -> None:
        transformers = self.shell.ast_transformers
        if on and self.transformer not in transformers:
            transformers.append(self.transformer)
        if not on and self.transformer in transformers:
            transformers.remove(self.transformer)
        self.engine.auto = on
        print("every following cell is a durable step" if on else "durable cells: off")

    def _log(self, step: str) -> None:
        ptr = self.engine.catalog.pointer(self.engine.session, step)
        if ptr is None:
            raise _usage_error(f"%durable log: no step {step!r} in session "
                               f"{self.engine.session!r}")
        print(f"step {step!r}: {ptr.activities} activities journaled")


class _Status:
    """Status with an HTML table for notebooks and text for terminals."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def _repr_html_(self) -> str:
        return status.render_html(self.report)

    def __repr__(self) -> str:
        return status.render_text(self.report)

