"""``%durable on``: an AST transformer that makes every following cell a durable step.

Pure: AST in, AST out. A cell becomes::

    _kitteh_run_ = _kitteh_engine_.cell_step(<source>)
    if not _kitteh_run_.replay():
        with _kitteh_run_:
            <body>
            _kitteh_run_.value = <last expression>
    _kitteh_run_.value

so the cell still goes through IPython's own pipeline (top-level ``await`` keeps working) and
IPython displays the value as usual. IPython drops a transformer that raises, so this one never
does: on any surprise it returns the cell unchanged.
"""

from __future__ import annotations

import ast

ENGINE_NAME = "_kitteh_engine_"
RUN_NAME = "_kitteh_run_"


def is_wrappable(tree: ast.Module) -> bool:
    """Whether a cell becomes a step: not empty, and no magics or shell escapes in it.

    A line magic (``%load_ext``, ``%matplotlib``, ``!pip``) changes the kernel rather than the
    namespace; skipping it on replay would lose that change, so such cells stay plain cells.
    """
    if not tree.body:
        return False
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "get_ipython"):
            return False
        if isinstance(node, ast.Name) and node.id in (ENGINE_NAME, RUN_NAME):
            return False
    return True


def _name(id_: str, ctx: ast.expr_context) -> ast.Name:
    return ast.Name(id=id_, ctx=ctx)


def wrap_cell(tree: ast.Module) -> ast.Module:
    """The cell as a durable step (see the module docstring)."""
    source = ast.unparse(tree)
    body = list(tree.body)
    last = body[-1]
    if isinstance(last, ast.Expr):
        body[-1] = ast.Assign(
            targets=[ast.Attribute(value=_name(RUN_NAME, ast.Load()), attr="value",
                                   ctx=ast.Store())],
            value=last.value)
    start = ast.Assign(
        targets=[_name(RUN_NAME, ast.Store())],
        value=ast.Call(func=ast.Attribute(value=_name(ENGINE_NAME, ast.Load()), attr="cell_step",
                                          ctx=ast.Load()),
                       args=[ast.Constant(source)], keywords=[]))
    replayed = ast.Call(func=ast.Attribute(value=_name(RUN_NAME, ast.Load()), attr="replay",
                                           ctx=ast.Load()), args=[], keywords=[])
    run = ast.If(
        test=ast.UnaryOp(op=ast.Not(), operand=replayed),
        body=[ast.With(items=[ast.withitem(context_expr=_name(RUN_NAME, ast.Load()))],
                       body=body)],
        orelse=[])
    result = ast.Expr(value=ast.Attribute(value=_name(RUN_NAME, ast.Load()), attr="value",
                                          ctx=ast.Load()))
    wrapped = ast.Module(body=[start, run, result], type_ignores=tree.type_ignores)
    return ast.fix_missing_locations(ast.copy_location(wrapped, tree))


class DurableCells(ast.NodeTransformer):
    """The transformer ``%durable on`` puts in ``shell.ast_transformers``."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        try:
            return wrap_cell(node) if is_wrappable(node) else node
        except Exception:
            return node
