"""The ``kitteh-magic`` command: run notebooks headless, inspect and maintain stores.

Every mistake and every damaged store is one line on stderr, never a traceback. Exit codes: 0
done; 1 the command failed (or ``verify`` found damage, or a ``run`` had failing cells); 2 a
usage error (bad arguments, no notebook, no store). ``status``, ``gc`` and ``clear`` report the
damaged items they meet, one line each, skip or repair them and carry on (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from . import locate
from .errors import KittehError, KittehWarning

if TYPE_CHECKING:
    from .store import Store


class UsageError(Exception):
    """A mistake in the command line: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Argument mistakes in one line (argparse prints the usage first), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _size(text: str) -> int:
    from .maintenance import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:  # argparse shows only an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _store_and_sessions(path: Path) -> tuple[Path, list[str] | None]:
    """A notebook means its store and its session; a directory means a store, all sessions."""
    if path.suffix == ".ipynb":
        store = locate.store_dir(path)
        return store, [locate.session_name(path, store)]
    if (path / locate.STORE_DIRNAME).is_dir():
        path = path / locate.STORE_DIRNAME
    return path, None


def _open(path: Path) -> tuple[Store, list[str], list[str]]:
    """The store, the sessions meant, and one line per damaged session document met."""
    from .status import describe, read_sessions
    from .store import Store

    directory, sessions = _store_and_sessions(path)
    index = directory / "index"
    if not index.is_dir() and not (index.exists() and (directory / "blobs").is_dir()):
        # A store whose index was replaced (by a file) is still a store: opening it heals it.
        raise UsageError(f"no store at {directory} (run a notebook first)")
    store = Store(directory)
    if sessions is not None:
        return store, sessions, []
    names, damaged = read_sessions(store)
    return store, names, [describe(err) for err in damaged]


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_notebook

    if not args.notebook.is_file():
        raise UsageError(f"no notebook at {args.notebook}")
    summary = run_notebook(args.notebook, output=args.output, session=args.session,
                           max_restarts=args.max_restarts, timeout=args.timeout,
                           progress=not args.quiet)
    print(summary)
    return 1 if summary.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Damaged session documents are named on stderr; damaged steps in the table (or JSON)."""
    from .status import render_text, session_status, store_text

    store, sessions, damaged = _open(args.path)
    for line in damaged:
        _say(args, f"damaged, skipped: {line}")
    reports = [session_status(store, name) for name in sessions]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n\n".join(render_text(r) for r in reports) or "no sessions")
        print(store_text(store))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .maintenance import gc

    store, _, _ = _open(args.path)  # gc meets the damaged sessions itself
    print(gc(store, max_size=args.max_size))
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    from .maintenance import clear

    store, sessions, _ = _open(args.path)  # damaged session documents are cleared all the same
    print(clear(store, sessions))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 1 when anything is damaged (repaired or not)."""
    from .maintenance import verify

    store, _, _ = _open(args.path)
    report = verify(store, repair=args.repair)
    print(report)
    return 1 if report.damaged else 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    main = _Parser(prog="kitteh-magic", description=(__doc__ or "").replace("``", ""),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a notebook headless, every code cell durable")
    run.add_argument("notebook", type=Path)
    run.add_argument("-o", "--output", type=Path, help="write the executed notebook here")
    run.add_argument("--session", help="session name (default: the notebook's)")
    run.add_argument("--max-restarts", type=int, default=3,
                     help="restart a dead kernel and resume up to N times (default 3)")
    run.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    for name, func, text in (("status", cmd_status, "sessions and steps of a notebook or store"),
                             ("gc", cmd_gc, "repair damage; drop records no session uses, "
                                            "values no record uses, dead writers' files"),
                             ("clear", cmd_clear, "drop every session of a notebook or store"),
                             ("verify", cmd_verify, "check the whole store, every value in "
                                                    "full (exit 1: damage found)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("path", type=Path, nargs="?", default=Path.cwd(),
                         help="a notebook, a folder with .kitteh/, or a store")
        cmd.set_defaults(func=func)
        if name == "status":
            cmd.add_argument("--json", action="store_true")
        if name == "gc":
            cmd.add_argument("--max-size", type=_size, help="trim the store to this size")
        if name == "verify":
            cmd.add_argument("--repair", action="store_true",
                             help="drop damaged values, then gc: the steps that needed them "
                             "run again")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kitteh-magic``: the exit code (see the module's docstring)."""
    args = parser().parse_args(argv)

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
        where = "" if issubclass(category, KittehWarning) else f" ({filename}:{lineno})"
        _say(args, f"{category.__name__}{where}: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        try:
            return int(args.func(args))
        except UsageError as exc:
            _say(args, str(exc))
            return 2
        except KittehError as exc:  # the store cannot be opened, read or written
            _say(args, str(exc))
            return 1
        except KeyboardInterrupt:
            _say(args, "interrupted")
            return 130
        except Exception as exc:  # a bug; the contract is still one line, naming it
            _say(args, f"failed: {type(exc).__name__}: {exc} (a bug in kitteh_magic: please "
                 "report it with this line)")
            return 1


def _say(args: argparse.Namespace, message: str) -> None:
    """One line on stderr, prefixed with the command."""
    print(f"kitteh-magic {args.command}: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
