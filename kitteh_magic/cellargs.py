"""The arguments of ``%%durable``: one definition for the magic, the cell transformer and help.

Pure (no IPython): the transformer reads ``--mode`` while rewriting a cell, and the runtime turns
:class:`CellArgsError` into IPython's ``UsageError``.
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
from typing import NoReturn

from .steps.run import StepSpec

CELL_USAGE = ("Usage: %%durable [STEP] [--session S] [--mode durable|step] [--retries N]\n"
              "                 [--backoff SECONDS] [--timeout SECONDS] [--wait SECONDS] [--force]")

CELL_HELP = f"""\
Run the cell as a durable step.

{CELL_USAGE}

  STEP               a readable name for the step (default: from the cell id, else the code)
  --session S        run in session S instead of the notebook's
  --mode durable     (default) calls that leave the notebook (HTTP, databases, clocks,
                     randomness...) are journaled activities: a killed cell resumes where it
                     stopped and finished calls are not repeated
  --mode step        the whole cell is one unit: replayed when finished, re-run from the start
                     otherwise; no journal, least overhead
  --retries N        retry a failing activity N times (default 0)
  --backoff SECONDS  wait before the first retry, doubling each time (default 1)
  --timeout SECONDS  give up on an activity attempt after SECONDS
  --wait SECONDS     when another kernel is running this step, wait for it at most SECONDS,
                     then fail with StepBusyError (default: as long as that kernel runs it)
  --force            run now, making every call again, and replace the record and journal

A finished step is restored (its variables, output and value) when it runs again with the same
code and inputs, without executing its body. One kernel executes a step at a time: another
kernel running it waits ("waiting for kernel <pid> on <host>"), then replays its record."""


class CellArgsError(ValueError):
    """Bad ``%%durable`` arguments; the message ends with the usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CellArgsError(f"%%durable: {message}\n{CELL_USAGE}")


@functools.cache
def _parser() -> _Parser:
    parser = _Parser(prog="%%durable", add_help=False)
    parser.add_argument("step", nargs="?")
    parser.add_argument("--session")
    parser.add_argument("--mode", choices=["durable", "step"])
    parser.add_argument("--retries", type=int)
    parser.add_argument("--backoff", type=float)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--wait", type=float)
    parser.add_argument("--force", action="store_true")
    return parser


@functools.lru_cache(maxsize=256)
def _parse_line(line: str) -> argparse.Namespace:
    """The parsed line (cells are re-run with the same line: parse each once)."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise CellArgsError(f"%%durable: {err}\n{CELL_USAGE}") from None
    return _parser().parse_args(words)


def parse(line: str, source: str, default_mode: str = "durable") -> StepSpec:
    """A step spec from the magic's line and the cell body.

    >>> spec = parse("load --retries 2", "x = 1")
    >>> spec.name, spec.retries, spec.mode
    ('load', 2, 'durable')
    >>> parse("--mode fast", "x = 1")
    Traceback (most recent call last):
    ...
    kitteh_magic.cellargs.CellArgsError: %%durable: argument --mode: invalid choice: 'fast' ...
    """
    args = _parse_line(line)
    if args.retries is not None and args.retries < 0:
        raise CellArgsError(f"%%durable: --retries must be 0 or more\n{CELL_USAGE}")
    if args.backoff is not None and args.backoff < 0:
        raise CellArgsError(f"%%durable: --backoff must be 0 or more seconds\n{CELL_USAGE}")
    if args.timeout is not None and args.timeout <= 0:
        raise CellArgsError(f"%%durable: --timeout must be more than 0 seconds\n{CELL_USAGE}")
    if args.wait is not None and not 0 <= args.wait < math.inf:
        raise CellArgsError(f"%%durable: --wait must be 0 or more seconds (a finite number; "
                            f"leave it out to wait as long as the other kernel runs the step), "
                            f"not {args.wait:g}\n{CELL_USAGE}")
    return StepSpec(source=source, name=args.step, mode=args.mode or default_mode,
                    force=args.force, session=args.session, retries=args.retries,
                    backoff=args.backoff, timeout=args.timeout, wait=args.wait)
