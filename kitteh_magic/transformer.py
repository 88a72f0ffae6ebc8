"""Durable cells through IPython's own pipeline: a line transform and an AST transformer.

IPython turns a ``%%durable`` cell into a ``run_cell_magic`` call before any AST transformer
sees it, and a magic's body cannot use top-level ``await``. So, once the extension is loaded,
:func:`mark_durable_cell` (a line transform that runs before IPython's cell-magic handling)
turns the ``%%durable ARGS`` line into the string ``'%%durable ARGS'``, and :class:`DurableCells`
(an AST transformer) wraps the marked cell, or with ``%durable on`` every cell, into::

    _kitteh_run_ = _kitteh_steps_.start(<source>, <args>)
    if not _kitteh_run_.replay():
        with _kitteh_run_:
            <body, calls rewritten into activities>
            _kitteh_run_.value = <last expression>
    _kitteh_run_.value

The marker is a string, not a call: a traceback's context shows the line the user typed, and a
marker that is never wrapped names nothing that could be undefined.

The AST part (:func:`wrap_cell`) is pure: AST in, AST out. :class:`DurableCells` never raises
(IPython would unregister it, and every later cell would run plain): a cell it fails to wrap
runs as a plain cell, with an :class:`~kitteh_magic.errors.InternalWarning` that names it.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable

from . import cellargs
from .errors import InternalWarning

STEPS_NAME = "_kitteh_steps_"
RUN_NAME = "_kitteh_run_"
_MAGIC = "%%durable"


def mark_durable_cell(lines: list[str]) -> list[str]:
    """Line transform: ``%%durable ARGS`` on the first line becomes the string ``'%%durable ARGS'``.

    The body keeps its line numbers, so tracebacks point at the user's lines.

    >>> mark_durable_cell(["%%durable load --retries 2\\n", "x = 1\\n"])
    ["'%%durable load --retries 2'\\n", 'x = 1\\n']
    >>> mark_durable_cell(["%%durable?\\n"])  # help stays help
    ['%%durable?\\n']
    """
    if not lines:
        return lines
    first = lines[0].strip()
    rest = first[len(_MAGIC):]
    if not first.startswith(_MAGIC) or (rest and not rest[0].isspace()) or first.endswith("?"):
        return lines
    return [f"{first!r}\n", *lines[1:]]


def marker_args(tree: ast.Module) -> str | None:
    """The ``%%durable`` arguments if the cell was marked by :func:`mark_durable_cell`.

    >>> marker_args(ast.parse("'%%durable load --retries 2'\\nx = 1"))
    'load --retries 2'
    >>> marker_args(ast.parse("'%%durable-ish'")) is None
    True
    """
    if not tree.body:
        return None
    first = tree.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return None
    text = first.value.value
    rest = text[len(_MAGIC):]
    if not text.startswith(_MAGIC) or (rest and not rest[0].isspace()):
        return None
    return rest.strip()


def is_wrappable(tree: ast.Module) -> bool:
    """Whether ``%durable on`` makes a cell a step: not empty, no magics or shell escapes.

    A line magic (``%load_ext``, ``%matplotlib``, ``!pip``) changes the kernel rather than the
    namespace; skipping it on replay would lose that change, so such cells stay plain cells.
    """
    if not tree.body or marker_args(tree) is not None:
        return False
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "get_ipython"):
            return False
        if isinstance(node, ast.Name) and node.id in (STEPS_NAME, RUN_NAME):
            return False
    return True


def _name(id_: str) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Load())


def _attr(owner: str, attr: str, ctx: ast.expr_context | None = None) -> ast.Attribute:
    return ast.Attribute(value=_name(owner), attr=attr, ctx=ctx or ast.Load())


def _mode(line: str, default_mode: str) -> str:
    try:
        return cellargs.parse(line, "", default_mode).mode
    except cellargs.CellArgsError:
        return "step"  # the runtime reports the mistake before anything runs


def wrap_cell(body: list[ast.stmt], line: str, default_mode: str = "durable") -> ast.Module:
    """The statements of a cell as a durable step (see the module docstring)."""
    source = ast.unparse(ast.Module(body=body, type_ignores=[]))
    opening = _future_imports(body)
    statements = body[len(opening):] or [ast.Pass()]
    if _mode(line, default_mode) == "durable":
        from .activities.rewriter import rewrite

        statements = rewrite(ast.Module(body=statements, type_ignores=[])).body
    anchor = statements[0]
    last = statements[-1]
    if isinstance(last, ast.Expr):
        target = _attr(RUN_NAME, "value", ast.Store())
        statements[-1] = ast.Assign(targets=[target], value=last.value)
        _place([statements[-1], *ast.walk(target)], last)
    start = ast.Assign(
        targets=[ast.Name(id=RUN_NAME, ctx=ast.Store())],
        value=ast.Call(func=_attr(STEPS_NAME, "start"),
                       args=[ast.Constant(source), ast.Constant(line)], keywords=[]))
    replayed = ast.Call(func=_attr(RUN_NAME, "replay"), args=[], keywords=[])
    guard = ast.withitem(context_expr=_name(RUN_NAME))
    with_ = ast.With(items=[guard], body=statements)
    run = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=replayed), body=[with_], orelse=[])
    result = ast.Expr(value=_attr(RUN_NAME, "value"))
    # Only the generated nodes need locations; the body keeps the user's (walking it again
    # would cost as much as rewriting it).
    _place([*ast.walk(start), *ast.walk(run.test), run, with_, *ast.walk(guard.context_expr),
            *ast.walk(result)], anchor)
    return ast.Module(body=[*opening, start, run, result], type_ignores=[])


def _future_imports(body: list[ast.stmt]) -> list[ast.stmt]:
    """The ``from __future__`` imports that open a cell (after its docstring, if any).

    They must open the compiled module too, so they stay outside the step (run each time, as
    they bind nothing a step would record), and the cell compiles as it would plain.

    >>> len(_future_imports(ast.parse("'doc'\\nfrom __future__ import annotations\\nx = 1").body))
    2
    >>> _future_imports(ast.parse("'doc'\\nx = 1").body)
    []
    """
    first = body[0] if body else None
    begin = int(isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str))
    end = begin
    while (end < len(body) and isinstance(body[end], ast.ImportFrom)
           and body[end].module == "__future__"):  # type: ignore[attr-defined]
        end += 1
    return body[:end] if end > begin else []


def _place(nodes: list[ast.AST], anchor: ast.AST) -> None:
    for node in nodes:
        if "lineno" in node._attributes:
            node.lineno = getattr(anchor, "lineno", 1)  # type: ignore[attr-defined]
            node.col_offset = getattr(anchor, "col_offset", 0)  # type: ignore[attr-defined]
            node.end_lineno = getattr(anchor, "end_lineno", None)  # type: ignore[attr-defined]
            node.end_col_offset = getattr(anchor, "end_col_offset", None)  # type: ignore[attr-defined]


def cell_label(source: str, line: str | None = None) -> str:
    """How a warning names a cell: its step name, else its first line.

    >>> cell_label("y = f(1)", "load --retries 2")
    "step 'load'"
    >>> cell_label("\\ny = f(1)\\nz = 2")
    "the cell starting 'y = f(1)'"
    """
    if line:
        try:
            name = cellargs.parse(line, "").name
        except cellargs.CellArgsError:
            name = None  # the runtime reports bad arguments; the first line names the cell
        if name:
            return f"step {name!r}"
    first = next((text.strip() for text in source.splitlines() if text.strip()), "")
    if not first:
        return "an empty cell"
    return f"the cell starting {first[:60] + ('...' if len(first) > 60 else '')!r}"


def _first_statement(body: list[ast.stmt]) -> str:
    try:
        return ast.unparse(body[0]) if body else ""
    except Exception:  # naming the cell must not fail the plain run it announces
        return f"line {getattr(body[0], 'lineno', '?')}"


def warn_failure(label: str, err: BaseException, consequence: str) -> None:
    """The warning of a failure inside kitteh_magic: which cell, what failed, what it costs."""
    warnings.warn_explicit(
        f"kitteh_magic failed on {label} ({type(err).__name__}: {err}); {consequence}. This is a "
        "kitteh_magic bug: please report it with the cell.", InternalWarning, "kitteh_magic", 0)


RUNS_PLAIN = ("it runs as a plain cell: it is not recorded, replayed or resumed, and its calls "
              "are not journaled")
"""The consequence, for :func:`warn_failure`, of a cell that was to be a step and runs plain."""


class DurableCells(ast.NodeTransformer):
    """The transformer in ``shell.ast_transformers``: marked cells always, every cell when on."""

    def __init__(self, ran_plain: Callable[[ast.Module, str], None] | None = None) -> None:
        self.auto = False
        """``%durable on``: wrap every wrappable cell, not only ``%%durable`` ones."""
        self.default_mode = "durable"
        self.ran_plain = ran_plain
        """Told of a cell (and its label) that was to be a step and runs plain after all: the
        extension drops the lineage tokens of the names it touches, as for any plain cell."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        line = None
        try:
            line = marker_args(node)
            if line is not None:
                return wrap_cell(node.body[1:], line, self.default_mode)
            if self.auto and is_wrappable(node):
                return wrap_cell(node.body, "", self.default_mode)
            return node
        except Exception as err:  # raising would get this transformer unregistered by IPython
            body = node.body if line is None else node.body[1:]
            plain = ast.Module(body=body, type_ignores=node.type_ignores)
            label = cell_label(_first_statement(body), line)
            warn_failure(label, err, RUNS_PLAIN)
            if self.ran_plain is not None:
                self.ran_plain(plain, label)
            return plain
