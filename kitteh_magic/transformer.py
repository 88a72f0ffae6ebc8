"""Durable cells through IPython's own pipeline: a line transform and an AST transformer.

IPython turns a ``%%durable`` cell into a ``run_cell_magic`` call before any AST transformer
sees it, and a magic's body cannot use top-level ``await``. So, once the extension is loaded,
:func:`mark_durable_cell` (a line transform that runs before IPython's cell-magic handling)
replaces the ``%%durable ARGS`` line with a marker call, and :class:`DurableCells` (an AST
transformer) wraps the marked cell, or with ``%durable on`` every cell, into::

    _kitteh_run_ = _kitteh_steps_.start(<source>, <args>)
    if not _kitteh_run_.replay():
        with _kitteh_run_:
            <body, calls rewritten into activities>
            _kitteh_run_.value = <last expression>
    _kitteh_run_.value

The AST part is pure (AST in, AST out). IPython drops a transformer that raises, so this one
never does: on any surprise it returns the cell unchanged.
"""

from __future__ import annotations

import ast

from . import cellargs

MARKER = "_kitteh_durable_"
STEPS_NAME = "_kitteh_steps_"
RUN_NAME = "_kitteh_run_"
_MAGIC = "%%durable"


def mark_durable_cell(lines: list[str]) -> list[str]:
    """Line transform: ``%%durable ARGS`` on the first line becomes ``_kitteh_durable_("ARGS")``.

    The body keeps its line numbers, so tracebacks point at the user's lines.

    >>> mark_durable_cell(["%%durable load --retries 2\\n", "x = 1\\n"])
    ["_kitteh_durable_('load --retries 2')\\n", 'x = 1\\n']
    >>> mark_durable_cell(["%%durable?\\n"])  # help stays help
    ['%%durable?\\n']
    """
    if not lines:
        return lines
    first = lines[0].strip()
    rest = first[len(_MAGIC):]
    if not first.startswith(_MAGIC) or (rest and not rest[0].isspace()) or first.endswith("?"):
        return lines
    return [f"{MARKER}({rest.strip()!r})\n", *lines[1:]]


def marker_args(tree: ast.Module) -> str | None:
    """The ``%%durable`` arguments if the cell was marked by :func:`mark_durable_cell`."""
    if not tree.body:
        return None
    first = tree.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
            and isinstance(first.value.func, ast.Name) and first.value.func.id == MARKER
            and len(first.value.args) == 1 and isinstance(first.value.args[0], ast.Constant)
            and isinstance(first.value.args[0].value, str)):
        return first.value.args[0].value
    return None


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
    statements = list(body) or [ast.Pass()]
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
    return ast.Module(body=[start, run, result], type_ignores=[])


def _place(nodes: list[ast.AST], anchor: ast.AST) -> None:
    for node in nodes:
        if "lineno" in node._attributes:
            node.lineno = getattr(anchor, "lineno", 1)  # type: ignore[attr-defined]
            node.col_offset = getattr(anchor, "col_offset", 0)  # type: ignore[attr-defined]
            node.end_lineno = getattr(anchor, "end_lineno", None)  # type: ignore[attr-defined]
            node.end_col_offset = getattr(anchor, "end_col_offset", None)  # type: ignore[attr-defined]


class DurableCells(ast.NodeTransformer):
    """The transformer in ``shell.ast_transformers``: marked cells always, every cell when on."""

    def __init__(self) -> None:
        self.auto = False
        """``%durable on``: wrap every wrappable cell, not only ``%%durable`` ones."""
        self.default_mode = "durable"

    def visit_Module(self, node: ast.Module) -> ast.Module:
        try:
            line = marker_args(node)
            if line is not None:
                return wrap_cell(node.body[1:], line, self.default_mode)
            if self.auto and is_wrappable(node):
                return wrap_cell(node.body, "", self.default_mode)
        except Exception:
            pass
        return node
