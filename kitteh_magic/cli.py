"""The ``kitteh-magic`` command: run notebooks headless, inspect and maintain stores."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import locate


def _store_and_sessions(path: Path) -> tuple[Path, list[str] | None]:
    """A notebook means its store and its session; a directory means a store, all sessions."""
    if path.suffix == ".ipynb":
        store = locate.store_dir(path)
        return store, [locate.session_name(path, store)]
    if (path / locate.STORE_DIRNAME).is_dir():
        path = path / locate.STORE_DIRNAME
    return path, None


def _open(path: Path) -> tuple[object, list[str]]:
    from .steps.catalog import Catalog
    from .store import Store

    directory, sessions = _store_and_sessions(path)
    if not (directory / "index").is_dir():
        raise SystemExit(f"kitteh-magic: no store at {directory} (run a notebook first)")
    store = Store(directory)
    names = sessions if sessions is not None else [s.name for s in Catalog(store).sessions()]
    return store, names


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_notebook

    if not args.notebook.is_file():
        raise SystemExit(f"kitteh-magic run: no notebook at {args.notebook}")
    summary = run_notebook(args.notebook, output=args.output, session=args.session,
                           max_restarts=args.max_restarts, timeout=args.timeout,
                           progress=not args.quiet)
    print(summary)
    return 1 if summary.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import render_text, session_status

    store, sessions = _open(args.path)
    reports = [session_status(store, name) for name in sessions]  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n\n".join(render_text(r) for r in reports) or "no sessions")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .maintenance import gc

    store, _ = _open(args.path)
    print(gc(store, max_size=args.max_size))  # type: ignore[arg-type]
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    from .maintenance import gc
    from .steps.catalog import Catalog

    store, sessions = _open(args.path)
    catalog = Catalog(store)  # type: ignore[arg-type]
    dropped = sum(catalog.reset(name) for name in sessions)
    gc(store)  # type: ignore[arg-type]
    print(f"cleared {len(sessions)} sessions ({dropped} steps)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store, _ = _open(args.path)
    problems = store.verify_all()  # type: ignore[attr-defined]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} damaged values")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    from .maintenance import parse_size

    main = argparse.ArgumentParser(prog="kitteh-magic", description=__doc__)
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
                             ("gc", cmd_gc, "drop records no session uses"),
                             ("clear", cmd_clear, "drop every session of a notebook or store"),
                             ("verify", cmd_verify, "check every stored value in full")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("path", type=Path, nargs="?", default=Path.cwd(),
                         help="a notebook, a folder with .kitteh/, or a store")
        cmd.set_defaults(func=func)
        if name == "status":
            cmd.add_argument("--json", action="store_true")
        if name == "gc":
            cmd.add_argument("--max-size", type=parse_size, help="trim the store to this size")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kitteh-magic``."""
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
