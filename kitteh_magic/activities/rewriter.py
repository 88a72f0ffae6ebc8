"""The rewriter: every call in a durable cell goes through the runtime dispatcher.

Pure: an AST in, a new AST out, no I/O. ``f(a, *b, k=c, **d)`` becomes
``_kitteh_call_(f, a, *b, k=c, **d)`` and ``await f(x)`` becomes ``await _kitteh_acall_(f, x)``,
wherever the call is: the cell's top level, the bodies of functions, lambdas, comprehensions and
classes defined in it, default values, decorators' arguments. The callee expression is evaluated
once and in its original order (callee first, then the arguments left to right), and each new
node carries its call's source location, so tracebacks point at the user's lines.

The dispatcher takes its callee positionally only (``def _kitteh_call_(fn, /, *args,
**kwargs)``), so no keyword argument of the user's can clash with it.

>>> import ast
>>> ast.unparse(rewrite(ast.parse("y = f(g(x), k=1)")))
'y = _kitteh_call_(f, _kitteh_call_(g, x), k=1)'
"""

from __future__ import annotations

import ast
from typing import Any

CALL_NAME = "_kitteh_call_"
AWAIT_NAME = "_kitteh_acall_"

# Calls that inspect their caller's frame: routed through the dispatcher they would see its
# frame instead (zero-argument super() needs the __class__ cell of the calling function).
FRAME_CALLS = frozenset(
    {"super", "locals", "globals", "vars", "dir", "eval", "exec", "breakpoint", "__import__"})
_KEEP = FRAME_CALLS | {CALL_NAME, AWAIT_NAME}

# Annotations are type expressions, not calls the cell makes for a result; left as written,
# they keep their text under ``from __future__ import annotations``.
_ANNOTATIONS = frozenset({"annotation", "returns"})


def rewrite(tree: ast.Module) -> ast.Module:
    """Route every call in ``tree`` through the dispatcher.

    Idempotent: calls already routed (to ``_kitteh_call_`` or ``_kitteh_acall_``) are kept.

    Args:
        tree: a parsed cell; it is not modified.

    Returns:
        A new tree with the calls rewritten. Every node made here takes the location of the
        call it replaces, so no ``fix_missing_locations`` pass (a third of the cost) is needed.
    """
    new = _copy(tree, True)
    assert isinstance(new, ast.Module)
    return new


def _visit(node: ast.AST, rewriting: bool) -> ast.AST:
    kind = type(node)
    if rewriting:
        if kind is ast.Call:
            return _call(node, CALL_NAME)  # type: ignore[arg-type]
        if kind is ast.Await and type(node.value) is ast.Call:  # type: ignore[attr-defined]
            awaited = _call(node.value, AWAIT_NAME)  # type: ignore[attr-defined]
            return ast.copy_location(ast.Await(value=awaited), node)
    return _copy(node, rewriting)


def _kept(call: ast.Call) -> bool:
    return type(call.func) is ast.Name and call.func.id in _KEEP


def _call(node: ast.Call, name: str) -> ast.Call:
    if _kept(node):
        return _copy(node, True)  # type: ignore[return-value]
    func = _visit(node.func, True)
    router = ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node.func)
    args: list[Any] = [func, *(_visit(arg, True) for arg in node.args)]
    keywords: list[Any] = [_visit(k, True) for k in node.keywords]
    return ast.copy_location(ast.Call(func=router, args=args, keywords=keywords), node)


def _copy(node: ast.AST, rewriting: bool) -> ast.AST:
    """A copy of ``node`` whose children are visited (rewritten when ``rewriting``).

    Only the node's grammar fields (``_fields``) and locations (``_attributes``) are copied,
    read straight from its ``__dict__``: several times faster than ``copy.deepcopy`` or
    ``getattr`` per field. Any other attribute is foreign and is left behind: IPython's traceback
    rendering (``executing``, ``stack_data``) and other tools attach ``parent`` links and the
    like, and following one leads out of the cell's tree or round a cycle. That matters most for
    the operator and context nodes (``Load``, ``Eq``, ``Add``): the parser shares one instance of
    each between every tree it makes, so what a tool attached to them points into another tree.
    Here they are shared too when they fill a field of their own, and copied bare in a list
    (``Compare.ops``).
    """
    kind = type(node)
    new = kind.__new__(kind)
    fields = new.__dict__
    old = node.__dict__
    for key in kind._fields:
        if key not in old:
            continue
        value = old[key]
        if type(value) is list:
            inner = rewriting and key not in _ANNOTATIONS
            value = [_visit(v, inner) if isinstance(v, ast.AST) else v for v in value]
        elif isinstance(value, ast.AST) and not isinstance(value, _SHARED):
            value = _visit(value, rewriting and key not in _ANNOTATIONS)
        fields[key] = value
    for key in kind._attributes:
        if key in old:
            fields[key] = old[key]
    return new


_SHARED = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)
