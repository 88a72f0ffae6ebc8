"""The ``kitteh-magic`` command: run notebooks headless, inspect and maintain stores.

  kitteh-magic run NB.ipynb [-o OUT.ipynb|-] [-p NAME VALUE]... [-r NAME VALUE]...
                   [-y YAML]... [-f FILE.yaml]... [--session S] [--max-restarts N]
                   [--timeout SECONDS] [--json] [-q|--progress]
  kitteh-magic status [PATH] [--json]
  kitteh-magic log PATH STEP [--session S] [--json]
  kitteh-magic invalidate PATH (STEP | --all) [--forget-journal] [--session S]
  kitteh-magic gc [PATH] [--max-size SIZE]
  kitteh-magic clear [PATH] [--yes]
  kitteh-magic verify [PATH] [--repair]

PATH is a notebook (its store and session, from its metadata or else its path), a folder with
a .kitteh/ store, a store folder or a store's postgresql:// URL (all its sessions; log and
invalidate then need --session). Without PATH: $KITTEH_MAGIC_STORE (or $KITTEH_MAGIC_DIR), else
the current folder.

run, as papermill does: -p values are typed (True/False, None, int, float, else a string), -r
values stay strings, -y and -f give YAML mappings; later sources win (files, -y, -p, -r). They
are assigned in a new cell tagged injected-parameters after the cell tagged parameters (at the
top when no cell has that tag). -o writes the executed notebook (-o - to stdout); without -o
it is not written, and a line on stderr says so. The summary goes to stdout (to stderr with
-o -): steps executed and replayed, time saved, restarts, the failed cell; --json prints it
as one JSON object. A failed cell's traceback goes to stderr, in colour only on a terminal
(and never with NO_COLOR set). The progress bar is shown when stderr is a terminal.

Every mistake and every damaged store is one line on stderr, never a traceback. Exit codes: 0
done; 1 the command failed (a cell of a run failed, verify found damage, clear was not
confirmed); 2 bad usage or input (bad arguments or parameters, no such file, not a notebook,
no store, clear without --yes when stdin is not a terminal); 130 when Ctrl-C stopped a run
(the cell running is interrupted, as in JupyterLab, no cell starts after it, the summary
names it and -o is written), 143 for SIGTERM; 141 (as for SIGPIPE) when the
reader of stdout goes away (| head), silently. status, gc and clear report the
damaged items they meet, one line each, skip or repair them and carry on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import locate
from .errors import KittehError, KittehWarning, StoreURLError
from .maintenance import parse_size
from .status import count

if TYPE_CHECKING:
    from .steps.records import StepPointer
    from .store import Store


class UsageError(Exception):
    """A mistake in the command line or its input: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Argument mistakes in one line (argparse prints the usage first), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def whole_number(text: str) -> int:
    """A count or a number of seconds given on the command line (0 or more).

    Raises:
        argparse.ArgumentTypeError: not a whole number of 0 or more (argparse shows this).
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number of 0 or more: {text!r}")
    return value


def seconds(text: str) -> int:
    """A cell's time limit: a whole number of seconds, 1 or more (0 would mean no limit to
    nbclient, silently; no limit is the default, without --timeout).

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    try:
        value = whole_number(text)
    except argparse.ArgumentTypeError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of 1 or more: {text!r} "
                                         "(leave --timeout out for no limit)")
    return value


def _colour(stream: TextIO) -> bool:
    """Whether to keep terminal colours on ``stream``: a terminal, and no ``$NO_COLOR``."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


# -- where: a notebook, a folder or a store -----------------------------------------------------


def _where(text: str) -> Path | locate.StoreURL:
    """PATH as typed: a store's URL, else a path (argparse's ``type``).

    Raises:
        argparse.ArgumentTypeError: a URL of a scheme no store uses (one line, exit 2).
    """
    try:
        found = locate.parse_store(text, "PATH")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return found if isinstance(found, locate.StoreURL) else Path(text)


def _store_and_sessions(path: Path | locate.StoreURL | None,
                        ) -> tuple[locate.Location, list[str] | None]:
    """A notebook means its store and its session; a directory or a URL means a store, all
    sessions; no PATH means the environment's store, else the current folder."""
    if path is None:
        configured = locate.configured_store()
        if configured is not None:
            return configured, None
        path = Path.cwd()
    if isinstance(path, locate.StoreURL):
        return path, None
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    if path.is_file():
        if path.suffix != ".ipynb":
            raise UsageError(f"{path} is neither a notebook (.ipynb) nor a folder")
        store, session = locate.resolve(path, _notebook_metadata(path))
        return store, [session]
    if (path / locate.STORE_DIRNAME).is_dir():
        path = path / locate.STORE_DIRNAME
    return path, None


def _is_notebook(path: Path | locate.StoreURL | None) -> bool:
    return isinstance(path, Path) and path.is_file()


def _notebook_metadata(path: Path) -> dict[str, object]:
    """The metadata of a notebook file; UsageError when the file is not a notebook (a status
    of it would otherwise show an empty session as if the notebook had never run)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not JSON, or not UTF-8
        raise UsageError(f"{path} is not a notebook: it is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nbformat"), int):
        raise UsageError(f"{path} is not a notebook: it has no nbformat version")
    metadata = doc.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _open(path: Path | locate.StoreURL | None) -> tuple[Store, list[str], list[str]]:
    """The store, the sessions meant, and one line per damaged session document met."""
    from .status import describe, read_sessions
    from .store import open_store

    directory, sessions = _store_and_sessions(path)
    if isinstance(directory, Path):
        index = directory / "index"
        if not index.is_dir() and not (index.exists() and (directory / "blobs").is_dir()):
            # A store whose index was replaced (by a file) is still a store: opening it heals.
            raise UsageError(f"no store at {directory} (run a notebook first)")
    store = open_store(directory)
    if sessions is not None:
        return store, sessions, []
    names, damaged = read_sessions(store)
    return store, names, [describe(err) for err in damaged]


def _one_session(args: argparse.Namespace) -> tuple[Store, str]:
    """The store and the one session ``log`` and ``invalidate`` act on."""
    store, sessions, _ = _open(args.path)
    if args.session:
        from .status import read_sessions

        known = read_sessions(store)[0] if _is_notebook(args.path) else sessions
        if args.session not in known:
            names = ", ".join(repr(s) for s in known[:5]) + (", ..." if len(known) > 5 else "")
            raise UsageError(f"no session {args.session!r} in {store.location} "
                             f"(sessions: {names or 'none'})")
        return store, args.session
    if len(sessions) == 1 and _is_notebook(args.path):
        return store, sessions[0]
    names = ", ".join(repr(s) for s in sessions[:5]) + (", ..." if len(sessions) > 5 else "")
    raise UsageError(f"{args.path} is a store: name the session with --session "
                     f"(sessions: {names or 'none'})")


def _step_of(store: Store, session: str, step: str) -> StepPointer:
    """A step's pointer; UsageError naming the session's steps when it has no such step."""
    from .steps.catalog import Catalog

    catalog = Catalog(store)
    ptr = catalog.pointer(session, step)
    if ptr is None:
        names = ", ".join(p.step for p in catalog.steps(session))
        raise UsageError(f"no step {step!r} in session {session!r} (steps: {names or 'none'})")
    return ptr


# -- commands -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 1 when a cell failed (the summary names it)."""
    from . import parameters

    if str(args.notebook) == "-":
        raise UsageError("a notebook from stdin (-) cannot be run: its store and session live "
                         "beside its file; give its path")
    to_stdout = args.output is not None and str(args.output) == "-"
    if to_stdout and args.json:
        raise UsageError("-o - and --json both write to stdout: write the notebook to a file")
    try:
        values = parameters.collect(args.parameters_file or (), args.parameters_yaml or (),
                                    args.parameters or (), args.parameters_raw or ())
    except parameters.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    from .runner import NotebookInputError, read_notebook, run_notebook, strip_ansi  # nbclient

    try:
        nb = read_notebook(args.notebook)
    except NotebookInputError as exc:
        raise UsageError(str(exc)) from exc
    if args.output is not None and not to_stdout:
        _check_writable(args.output)
    if values and not parameters.has_parameters_cell(nb):
        _say(args, "no cell is tagged 'parameters': the parameters are injected at the top")
    for name in parameters.unknown(nb, values):
        _say(args, f"the cell tagged 'parameters' does not define {name!r}: it is injected "
             "all the same (a misspelt name?)")
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        summary = run_notebook(args.notebook, output=None if to_stdout else args.output,
                               session=args.session, max_restarts=args.max_restarts,
                               timeout=args.timeout, progress=progress, parameters=values, nb=nb)
    except NotebookInputError as exc:  # its kernel is not installed
        raise UsageError(str(exc)) from exc
    if summary.failed and summary.failed.traceback:
        text = "\n".join(summary.failed.traceback)
        print(text if _colour(sys.stderr) else strip_ansi(text), file=sys.stderr)
    if to_stdout:
        import nbformat

        nbformat.write(summary.nb, sys.stdout)
        sys.stdout.write("\n")
    elif args.output is None:
        _say(args, "the executed notebook is not written: give -o OUT.ipynb (or -o - for stdout)")
    shown = json.dumps(summary.to_json(), indent=2) if args.json else str(summary)
    print(shown, file=sys.stderr if to_stdout else sys.stdout)
    if summary.signal:  # as a shell reports a command a signal stopped: 130 for Ctrl-C
        import signal

        return 128 + int(signal.Signals[summary.signal])
    return 1 if summary.failed else 0


def _check_writable(output: Path) -> None:
    """UsageError, before the run, when ``-o`` cannot be written (no such folder, a folder, no
    permission): found after the run, the executed notebook would be lost. Opening the file
    is the one true test (permissions say nothing to root, nor about read-only mounts); a file
    created by the test is removed again."""
    if output.is_dir():
        raise UsageError(f"-o {output} is a folder: give the notebook's file name")
    existed = output.exists()
    try:
        with open(output, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write -o {output}: {exc.strerror or exc}") from exc
    if not existed:
        output.unlink()


def cmd_status(args: argparse.Namespace) -> int:
    """Damaged session documents are named on stderr; damaged steps in the table (or JSON)."""
    from .status import render_text, session_status, store_text

    store, sessions, damaged = _open(args.path)
    for line in damaged:
        _say(args, f"damaged, skipped: {line}")
    reports = [session_status(store, name) for name in sessions]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    texts = []
    for report in reports:
        # Why a step is invalidated or failed (gc trimmed it, its error): the table has no room.
        why = [f"step {row['step']!r} {row['state']}: {row['error']}" for row in report["steps"]
               if row.get("error") and row["state"] in ("invalidated", "failed")]
        texts.append("\n".join([render_text(report), *why]))
    print("\n\n".join(texts) or "no sessions")
    print(store_text(store))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """The calls of a step's latest execution (``%durable log``'s text, or JSON)."""
    from .status import journal_source, render_journal
    from .steps.catalog import Catalog

    store, session = _one_session(args)
    source = journal_source(_step_of(store, session, args.step).state)
    calls = Catalog(store).journal_view(session, args.step)
    if args.json:
        print(json.dumps({"session": session, "step": args.step, "source": source,
                          "calls": calls}, indent=2))
    else:
        print(render_journal(args.step, calls, source))
    return 0


def cmd_invalidate(args: argparse.Namespace) -> int:
    from .steps.catalog import Catalog

    if bool(args.all) == bool(args.step):
        raise UsageError("give a STEP or --all (not both)")
    store, session = _one_session(args)
    catalog = Catalog(store)
    journal = ("its journal is forgotten: every call is made again" if args.forget_journal
               else "calls already journaled are answered from the journal")
    if args.all:
        done = catalog.invalidate_all(session, forget_journal=args.forget_journal)
        print(f"invalidated {count(done, 'step')} of session {session!r}: their next run "
              f"executes; {journal.replace('its journal is', 'their journals are')}")
        return 0
    _step_of(store, session, args.step)
    catalog.invalidate(session, args.step, forget_journal=args.forget_journal)
    print(f"invalidated step {args.step!r} of session {session!r}: its next run executes; "
          f"{journal}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .maintenance import gc

    store, _, _ = _open(args.path)  # gc meets the damaged sessions itself
    print(gc(store, max_size=args.max_size))
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    """Asks first on a terminal; elsewhere needs ``--yes``. Exit 1 when not confirmed."""
    from .maintenance import clear
    from .status import human_size, read_steps

    store, sessions, _ = _open(args.path)  # damaged session documents are cleared all the same
    if not sessions:
        print(f"no sessions in {store.location}: nothing to clear")
        return 0
    steps = [ptr for name in sessions for ptr in read_steps(store, name)[0]]
    what = (f"{count(len(sessions), 'session')} ({count(len(steps), 'step')}, "
            f"{human_size(sum(p.size for p in steps))}) in {store.location}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"this would delete {what}: add --yes to confirm (stdin is not a "
                             "terminal, so it cannot ask)")
        print(f"delete {what}? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            _say(args, "not confirmed: nothing deleted")
            return 1
    print(clear(store, sessions))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 1 when anything is damaged (repaired or not)."""
    from .maintenance import verify

    store, _, _ = _open(args.path)
    report = verify(store, repair=args.repair)
    print(report)
    return 1 if report.damaged else 0


# -- the parser ---------------------------------------------------------------------------------


_TYPED_PAIR, _RAW_PAIR = "--kitteh-typed-pair", "--kitteh-raw-pair"
_PAIR_FLAGS = {"-p": _TYPED_PAIR, "--parameters": _TYPED_PAIR, "-r": _RAW_PAIR,
               "--parameters-raw": _RAW_PAIR, "--parameters_raw": _RAW_PAIR}


def _pairs_as_one(argv: list[str]) -> list[str]:
    """``run``'s ``-p NAME VALUE`` pairs as single words argparse cannot misread.

    papermill (click) takes the two words after ``-p`` whatever they look like; argparse reads
    a word that starts with ``-`` as an option unless it looks like a plain negative number, so
    ``-p x -1.5e3``, ``-p x -inf`` or ``-p flag --yes`` would be "expected 2 arguments".

    >>> _pairs_as_one(["run", "nb.ipynb", "-p", "x", "-1e3", "--", "-p"])
    ['run', 'nb.ipynb', '--kitteh-typed-pair=["x", "-1e3"]', '--', '-p']
    """
    if not argv or argv[0] != "run":
        return argv
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return out + argv[i:]
        if word in _PAIR_FLAGS and i + 2 < len(argv):
            out.append(f"{_PAIR_FLAGS[word]}={json.dumps(argv[i + 1:i + 3])}")
            i += 3
            continue
        out.append(word)
        i += 1
    return out


def _run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="execute a notebook headless, every code cell durable")
    run.add_argument("notebook", type=Path, metavar="NB.ipynb")
    run.add_argument("-o", "--output", type=Path, metavar="OUT.ipynb",
                     help="write the executed notebook here (- for stdout); default: not written")
    params = run.add_argument_group("parameters (as papermill takes them)")
    params.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="a parameter, typed: True/False, None, int, float, else a string")
    params.add_argument("-r", "--parameters-raw", "--parameters_raw", nargs=2, action="append",
                        metavar=("NAME", "VALUE"), dest="parameters_raw",
                        help="a parameter kept a string")
    params.add_argument("-y", "--parameters-yaml", "--parameters_yaml", action="append",
                        metavar="YAML", dest="parameters_yaml", help="parameters as a YAML mapping")
    params.add_argument("-f", "--parameters-file", "--parameters_file", action="append",
                        type=Path, metavar="FILE", dest="parameters_file",
                        help="parameters from a YAML file")
    for flag, dest in ((_TYPED_PAIR, "parameters"), (_RAW_PAIR, "parameters_raw")):
        params.add_argument(flag, dest=dest, action="append", type=json.loads,
                            help=argparse.SUPPRESS)
    run.add_argument("--session", help="session name (default: the notebook's)")
    run.add_argument("--max-restarts", type=whole_number, default=3, metavar="N",
                     help="restart a dead kernel and resume up to N times (default 3)")
    run.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                     help="seconds a cell may run")
    run.add_argument("--json", action="store_true", help="the summary as one JSON object")
    bar = run.add_mutually_exclusive_group()
    bar.add_argument("-q", "--quiet", dest="progress", action="store_false", default=None,
                     help="no progress bar")
    bar.add_argument("--progress", dest="progress", action="store_true",
                     help="a progress bar even when stderr is not a terminal")
    run.set_defaults(func=cmd_run)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    main = _Parser(prog="kitteh-magic", description=(__doc__ or "").replace("``", ""),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    where = "a notebook, a folder with .kitteh/, a store folder or a postgresql:// URL"
    for name, func, text in (("status", cmd_status, "sessions and steps of a notebook or store"),
                             ("gc", cmd_gc, "repair damage; drop records no session uses, "
                                            "values no record uses, dead writers' files"),
                             ("clear", cmd_clear, "drop every session of a notebook or store"),
                             ("verify", cmd_verify, "check the whole store, every value in "
                                                    "full (exit 1: damage found)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("path", type=_where, nargs="?", default=None, help=where)
        cmd.set_defaults(func=func)
        if name == "status":
            cmd.add_argument("--json", action="store_true")
        if name == "gc":
            cmd.add_argument("--max-size", type=parse_size, metavar="SIZE",
                             help="trim the store to this size (500MB, 2GB)")
        if name == "clear":
            cmd.add_argument("-y", "--yes", action="store_true",
                             help="do not ask (needed when stdin is not a terminal)")
        if name == "verify":
            cmd.add_argument("--repair", action="store_true",
                             help="drop damaged values, then gc: the steps that needed them "
                             "run again")
    log = sub.add_parser("log", help="the activity journal of a step")
    inv = sub.add_parser("invalidate", help="make steps execute on their next run")
    for cmd in (log, inv):
        cmd.add_argument("path", type=_where, help=where)
        cmd.add_argument("step", nargs="?" if cmd is inv else None, help="the step's name")
        cmd.add_argument("--session", help="the session (default: the notebook's)")
    log.add_argument("--json", action="store_true")
    log.set_defaults(func=cmd_log)
    inv.add_argument("--all", action="store_true", help="every step of the session")
    inv.add_argument("--forget-journal", action="store_true",
                     help="also drop the journal: every call is made again")
    inv.set_defaults(func=cmd_invalidate)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kitteh-magic``: the exit code (see the module's docstring)."""
    args = parser().parse_args(_pairs_as_one(list(sys.argv[1:] if argv is None else argv)))

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
        where = "" if issubclass(category, KittehWarning) else f" ({filename}:{lineno})"
        _say(args, f"{category.__name__}{where}: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        try:
            code = int(args.func(args))
            sys.stdout.flush()  # a reader gone away is met here, not at the interpreter's exit
            return code
        except BrokenPipeError:
            # `kitteh-magic status | head`: the reader has all it wanted. Say nothing more (the
            # interpreter's last flush would fail again) and exit as a command killed by SIGPIPE.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except (UsageError, StoreURLError) as exc:  # StoreURLError: from the environment
            _say(args, str(exc))
            return 2
        except KittehError as exc:  # the store cannot be opened, read or written
            _say(args, str(exc))
            return 1
        except KeyboardInterrupt:
            _say(args, "interrupted")
            return 130
        except Exception as exc:  # a bug; the contract is still one line, naming it
            what = " ".join(str(exc).split())
            what = what if len(what) <= 300 else what[:299] + "…"
            _say(args, f"failed: {type(exc).__name__}: {what} (a bug in kitteh_magic: please "
                 "report it with this line)")
            return 1


def _say(args: argparse.Namespace, message: str) -> None:
    """One line on stderr, prefixed with the command."""
    print(f"kitteh-magic {args.command}: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
