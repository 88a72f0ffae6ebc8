"""Facts about a cell's code, read from its AST: what it reads, binds, deletes and mutates.

The engine turns these facts into a step's inputs (names read from the namespace) and outputs
(names bound, deleted or mutated in place). Pure: AST in, facts out; no IPython, no namespace.

Names are resolved per scope the way Python resolves them (:mod:`.scopes`); changes in place
are recognised by :mod:`.mutations`.

>>> facts = analyse(parse("x = 1\\ny = x + z\\ndata.append(y)"))
>>> sorted(facts.reads), sorted(facts.binds), sorted(facts.mutates)
(['data', 'z'], ['x', 'y'], ['data'])
"""

from __future__ import annotations

import ast
import copy
import functools
from dataclasses import dataclass

from kitteh_magic.steps import imports
from kitteh_magic.steps.scopes import Body, alias_binding


@dataclass(frozen=True)
class CellAnalysis:
    """What a cell does with the names of the notebook namespace.

    Attributes:
        normalized: canonical text of the code; equal for edits of whitespace and comments only.
        reads: names the cell may read from the namespace before binding them itself, including
            globals read by functions, lambdas, comprehensions and classes the cell defines.
        binds: names bound at the top level of the cell (conditionally or not).
        deletes: names deleted with ``del name`` at the top level.
        mutates: base names mutated in place (item/attribute stores, mutating method calls),
            also inside functions the cell defines when the name resolves to a global. May hold
            names that are also bound, or modules (``os.remove``); the engine intersects.
        global_writes: names declared ``global`` inside functions the cell defines.
        calls: base names used as callees (``f(...)`` gives ``f``, ``obj.m(...)`` gives ``obj``),
            including decorators and global callees inside the cell's functions.
        has_await: the cell awaits at top level (``await``, ``async for``, ``async with``).
        imports: modules the cell imports when it runs (``imports.modules``).
    """

    normalized: str
    reads: frozenset[str]
    binds: frozenset[str]
    deletes: frozenset[str]
    mutates: frozenset[str]
    global_writes: frozenset[str]
    calls: frozenset[str]
    has_await: bool
    imports: tuple[str, ...] = ()


def parse(source: str, filename: str = "<cell>") -> ast.Module:
    """Parses cell source that IPython has already transformed (no magics left).

    Top-level ``await`` parses; only compiling it needs ``PyCF_ALLOW_TOP_LEVEL_AWAIT``.

    Raises:
        SyntaxError: the source is not valid Python.
    """
    return ast.parse(source, filename=filename, mode="exec")


@functools.lru_cache(maxsize=512)
def analyse_source(source: str) -> CellAnalysis:
    """:func:`analyse` of :func:`parse`, cached by source text.

    A cell re-run in the same kernel (the common case for replays) costs a dict lookup; the
    result is immutable, so sharing it is safe.
    """
    return analyse(parse(source))


def analyse(tree: ast.Module) -> CellAnalysis:
    """Reads the facts of a cell from its module AST (not mutated)."""
    seq = Body("module")
    seq.block(tree.body, set())
    return CellAnalysis(
        normalized=ast.dump(tree, annotate_fields=True, include_attributes=False),
        reads=frozenset(seq.out.loads),
        binds=frozenset(seq.binds),
        deletes=frozenset(seq.deletes),
        mutates=frozenset(seq.out.mutates),
        global_writes=frozenset(seq.global_writes),
        calls=frozenset(seq.out.calls),
        has_await=seq.awaits,
        imports=imports.modules(tree),
    )


def split_last_expr(tree: ast.Module) -> tuple[ast.Module, ast.Expression | None]:
    """Splits off a final expression statement so that its value can be evaluated and shown.

    The returned module is a new node holding the same statement nodes as ``tree`` (neither is
    mutated: a deep copy of a large cell would cost more than the whole lookup budget); the
    expression is a copy.

    >>> body, last = split_last_expr(parse("x = 1\\nx + 1"))
    >>> len(body.body), ast.unparse(last)
    (1, 'x + 1')
    """
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return ast.Module(body=list(tree.body), type_ignores=list(tree.type_ignores)), None
    last = tree.body[-1]
    expression = ast.Expression(body=copy.deepcopy(last.value))
    ast.fix_missing_locations(expression)
    return ast.Module(body=list(tree.body[:-1]), type_ignores=list(tree.type_ignores)), expression


def referenced_names(tree: ast.Module) -> frozenset[str]:
    """Every identifier the code could read or rebind in the namespace, in any scope.

    Used for plain cells: each name they touch loses its lineage token. Beyond ``ast.Name`` ids
    this includes the names bound by ``import``, ``def``, ``class``, ``except ... as``, match
    captures and ``global``/``nonlocal`` declarations, which rebind without an ``ast.Name``.
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias_binding(alias) for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return frozenset(names)
