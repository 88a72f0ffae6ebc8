"""Facts about a cell's code, read from its AST: what it reads, binds, deletes and mutates.

The engine turns these facts into a step's inputs (names read from the namespace) and outputs
(names bound, deleted or mutated in place). Pure: AST in, facts out; no IPython, no namespace.

Names are resolved per scope the way Python resolves them. Function bodies (and lambdas and
comprehensions) are flow-insensitive, like Python itself: a name bound anywhere in a function is
local to it. The cell's top level and class bodies run top to bottom, so they are read in order:
a name bound unconditionally before a statement is not a read of that statement. Branches of
``if``/``try``/``match`` count as binding a name only when every way through binds it; loop bodies
may run zero times. Anything else errs on the side of a read, because a missing input would replay
a stale step while a superfluous one only re-runs it.

>>> facts = analyse(parse("x = 1\\ny = x + z\\ndata.append(y)"))
>>> sorted(facts.reads), sorted(facts.binds), sorted(facts.mutates)
(['data', 'z'], ['x', 'y'], ['data'])
"""

from __future__ import annotations

import ast
import copy
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

#: Methods that change their receiver in place: ``x.append(v)`` mutates ``x`` (or the base name
#: of an attribute/subscript chain: ``x.a[k].append(v)`` mutates ``x``). Builtin containers,
#: numpy arrays, pandas objects and model-style objects (scikit-learn, PyTorch). Names ending in
#: ``_update`` (``difference_update``...) count too. A false positive only saves one more output;
#: a miss would replay a stale value, so the list is generous. Extend it here.
MUTATING_METHODS: Final[frozenset[str]] = frozenset(
    {
        # list, dict, set, deque, bytearray
        "append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem",
        "remove", "clear", "sort", "reverse", "rotate", "update", "setdefault", "add", "discard",
        # numpy ndarray
        "fill", "resize", "put", "itemset", "setflags", "byteswap", "partition",
        # models: scikit-learn, PyTorch, random generators seeded in place
        "fit", "partial_fit", "fit_transform", "fit_predict", "set_params", "load_state_dict",
        "train", "seed",
    }
)  # fmt: skip

#: Functions that mutate their first argument: ``random.shuffle(x)``, ``np.fill_diagonal(a, 0)``.
#: Matched on the last name of the callee (``np.random.shuffle`` is ``shuffle``).
ARG_MUTATING_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        "shuffle", "heappush", "heappop", "heapify", "heappushpop", "heapreplace",
        "fill_diagonal", "copyto", "place", "putmask", "setattr", "delattr",
    }
)  # fmt: skip

#: Any method call with this keyword set to ``True`` mutates its receiver (pandas ``inplace``).
INPLACE_KEYWORD: Final = "inplace"

#: Any call writes into the array passed with this keyword (numpy ufuncs: ``np.add(a, 1, out=a)``).
OUT_KEYWORD: Final = "out"


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
    """

    normalized: str
    reads: frozenset[str]
    binds: frozenset[str]
    deletes: frozenset[str]
    mutates: frozenset[str]
    global_writes: frozenset[str]
    calls: frozenset[str]
    has_await: bool


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
    seq = _Sequence("module")
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
            names.update(_alias_binding(alias) for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return frozenset(names)


def _alias_binding(alias: ast.alias) -> str:
    """The name an import binds: ``import a.b`` binds ``a``, ``import a.b as c`` binds ``c``."""
    return alias.asname or alias.name.split(".")[0]


def _base_name(node: ast.expr) -> str | None:
    """The name at the root of an attribute/subscript chain: ``x.a[k].b`` gives ``x``."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _callee_last_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


@dataclass
class _Uses:
    """Names a scope loads, mutates and calls, before they are resolved against its bindings."""

    loads: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)

    def merge(self, other: _Uses) -> None:
        self.loads |= other.loads
        self.mutates |= other.mutates
        self.calls |= other.calls

    def restricted(self, keep: set[str], drop: bool = False) -> _Uses:
        """The uses of names in ``keep`` (or, with ``drop``, of names not in it)."""
        if drop:
            return _Uses(self.loads - keep, self.mutates - keep, self.calls - keep)
        return _Uses(self.loads & keep, self.mutates & keep, self.calls & keep)


_Kind = Literal["module", "class", "function", "comprehension"]


class _Collector(ast.NodeVisitor):
    """Gathers the name uses of one piece of one scope; nested scopes are resolved on the way.

    A nested function's free names are resolved by the enclosing scope, except in a class body,
    which nested functions cannot see (they go to ``bypass``). Names a nested function declares
    ``global`` skip every enclosing function (they go to ``explicit``) up to the module.
    """

    def __init__(self, kind: _Kind) -> None:
        self.kind = kind
        self.uses = _Uses()
        self.bypass = _Uses()
        self.explicit = _Uses()
        self.stores: set[str] = set()
        self.deleted: set[str] = set()
        self.outer_stores: set[str] = set()  # walrus targets of a comprehension
        self.global_decls: set[str] = set()
        self.nonlocal_decls: set[str] = set()
        self.global_writes: set[str] = set()
        self.awaits = False

    def scope_result(self) -> tuple[_Uses, _Uses, set[str]]:
        """Resolves a function-like scope: its free uses, its explicit-global uses, its globals."""
        local = (self.stores | self.deleted) - self.global_decls - self.nonlocal_decls
        free = self.uses.restricted(local | self.global_decls, drop=True)
        explicit = self.uses.restricted(self.global_decls)
        explicit.merge(self.explicit)
        return free, explicit, self.global_writes | self.global_decls

    def _nested(self, result: tuple[_Uses, _Uses, set[str]]) -> None:
        free, explicit, global_writes = result
        (self.bypass if self.kind == "class" else self.uses).merge(free)
        (self.uses if self.kind == "module" else self.explicit).merge(explicit)
        self.global_writes |= global_writes

    def _mutated(self, node: ast.expr) -> None:
        base = _base_name(node)
        if base is not None:
            self.uses.mutates.add(base)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.uses.loads.add(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.stores.add(node.id)
        else:
            self.deleted.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.global_decls.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.nonlocal_decls.update(node.names)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        # PEP 572: a walrus in a comprehension binds in the enclosing function or module.
        target = self.outer_stores if self.kind == "comprehension" else self.stores
        target.add(node.target.id)
        self.visit(node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.uses.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        # `y: int` binds nothing at module or class level, but makes `y` local to a function.
        if node.value is None and self.kind in ("module", "class"):
            self.visit(node.annotation)
        else:
            self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._mutated(node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._mutated(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        base = _base_name(func)
        if base is not None:
            self.uses.calls.add(base)
        if isinstance(func, ast.Attribute) and (
            func.attr in MUTATING_METHODS
            or func.attr.endswith("_update")
            or any(
                kw.arg == INPLACE_KEYWORD
                and isinstance(kw.value, ast.Constant)
                and kw.value.value is True
                for kw in node.keywords
            )
        ):
            self._mutated(func.value)
        if node.args and _callee_last_name(func) in ARG_MUTATING_FUNCTIONS:
            self._mutated(node.args[0])
        for keyword in node.keywords:
            if keyword.arg == OUT_KEYWORD:
                self._mutated(keyword.value)
        self.generic_visit(node)

    def visit_Await(self, node: ast.Await) -> None:
        self.awaits = True
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.awaits = True
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self.awaits = True
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.stores.update(_alias_binding(alias) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.stores.update(_alias_binding(a) for a in node.names if a.name != "*")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.stores.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.stores.add(node.rest)
        self.generic_visit(node)

    def _decorators(self, decorators: list[ast.expr]) -> None:
        for decorator in decorators:
            base = _base_name(decorator)
            if base is not None:
                self.uses.calls.add(base)
            self.visit(decorator)

    def _signature(self, args: ast.arguments) -> list[str]:
        """Visits what a signature evaluates in the enclosing scope; returns its parameters."""
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for param in params:
            if param.annotation is not None:
                self.visit(param.annotation)
        return [param.arg for param in params]

    def _function(self, args: ast.arguments, body: Sequence[ast.AST]) -> None:
        inner = _Collector("function")
        inner.stores.update(self._signature(args))
        for node in body:
            inner.visit(node)
        self._nested(inner.scope_result())

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stores.add(node.name)
        self._decorators(node.decorator_list)
        if node.returns is not None:
            self.visit(node.returns)
        self._function(node.args, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node.args, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stores.add(node.name)
        self._decorators(node.decorator_list)
        for expr in [*node.bases, *(kw.value for kw in node.keywords)]:
            self.visit(expr)
        body = _Sequence("class")
        body.block(node.body, set())
        free = body.out
        free.merge(body.bypass)
        self._nested((free, body.explicit, body.global_writes))

    def _comprehension(self, node: ast.expr, generators: list[ast.comprehension],
                       results: Iterable[ast.expr]) -> None:  # fmt: skip
        # The first iterable is evaluated in the enclosing scope, the rest in the comprehension's.
        self.visit(generators[0].iter)
        inner = _Collector("comprehension")
        for index, gen in enumerate(generators):
            inner.visit(gen.target)
            if index:
                inner.visit(gen.iter)
            for condition in gen.ifs:
                inner.visit(condition)
            inner.awaits |= bool(gen.is_async)
        for result in results:
            inner.visit(result)
        self._nested(inner.scope_result())
        (self.outer_stores if self.kind == "comprehension" else self.stores).update(
            inner.outer_stores
        )
        # An async generator expression is not awaited where it is written.
        self.awaits |= inner.awaits and not isinstance(node, ast.GeneratorExp)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node, node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, node.generators, [node.key, node.value])


class _Sequence:
    """A module or class body, read statement by statement with the names surely bound so far.

    ``out`` holds the uses that escape the body: loads of names not surely bound before them;
    at module level every mutation and call (the engine intersects), in a class body only those
    of names not bound in the class.
    """

    def __init__(self, kind: Literal["module", "class"]) -> None:
        self.kind: Literal["module", "class"] = kind
        self.out = _Uses()
        self.bypass = _Uses()
        self.explicit = _Uses()
        self.global_writes: set[str] = set()
        self.binds: set[str] = set()
        self.deletes: set[str] = set()
        self.awaits = False

    def piece(self, nodes: Iterable[ast.AST], bound: set[str]) -> None:
        """Collects the nodes of one step of execution, then updates ``bound`` in place."""
        collector = _Collector(self.kind)
        for node in nodes:
            collector.visit(node)
        uses = collector.uses
        self.out.loads |= uses.loads - bound
        local = bound if self.kind == "class" else set()
        self.out.mutates |= uses.mutates - local
        self.out.calls |= uses.calls - local
        self.bypass.merge(collector.bypass)
        self.explicit.merge(collector.explicit)
        self.global_writes |= collector.global_writes
        self.awaits |= collector.awaits
        self.binds |= collector.stores
        self.deletes |= collector.deleted
        bound |= collector.stores
        bound -= collector.deleted

    def block(self, stmts: Iterable[ast.stmt], bound: set[str]) -> set[str]:
        """Reads statements in order; returns ``bound``, updated in place."""
        for stmt in stmts:
            self.statement(stmt, bound)
        return bound

    def statement(self, stmt: ast.stmt, bound: set[str]) -> None:
        """One statement; compound ones keep only the bindings that every path makes."""
        after: set[str]
        if isinstance(stmt, ast.If):
            self.piece([stmt.test], bound)
            after = self.block(stmt.body, set(bound)) & self.block(stmt.orelse, set(bound))
        elif isinstance(stmt, ast.For | ast.AsyncFor | ast.While):
            if isinstance(stmt, ast.While):
                self.piece([stmt.test], bound)
                in_loop = set(bound)
            else:
                self.awaits |= isinstance(stmt, ast.AsyncFor)
                self.piece([stmt.iter], bound)
                in_loop = set(bound)
                self.piece([stmt.target], in_loop)
            self.block(stmt.body, in_loop)
            after = bound & in_loop & self.block(stmt.orelse, set(bound))
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            # The body of a with runs unconditionally unless the context manager swallows an
            # exception; treating its bindings as sure keeps `with open(p) as f: x = ...` from
            # making `x` an input of later statements.
            self.awaits |= isinstance(stmt, ast.AsyncWith)
            for item in stmt.items:
                self.piece([item.context_expr], bound)
                if item.optional_vars is not None:
                    self.piece([item.optional_vars], bound)
            after = self.block(stmt.body, bound)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            ends = [self.block(stmt.orelse, self.block(stmt.body, set(bound)))]
            for handler in stmt.handlers:
                in_handler = set(bound)
                if handler.type is not None:
                    self.piece([handler.type], in_handler)
                if handler.name:
                    self.binds.add(handler.name)
                    in_handler.add(handler.name)
                self.block(handler.body, in_handler)
                in_handler.discard(handler.name or "")  # Python deletes it after the handler
                ends.append(in_handler)
            after = self.block(stmt.finalbody, set.intersection(*ends))
        elif isinstance(stmt, ast.Match):
            self.piece([stmt.subject], bound)
            ends = []
            exhaustive = False
            for case in stmt.cases:
                in_case = set(bound)
                self.piece([case.pattern], in_case)
                if case.guard is not None:
                    self.piece([case.guard], in_case)
                ends.append(self.block(case.body, in_case))
                exhaustive |= case.guard is None and _irrefutable(case.pattern)
            if not exhaustive:
                ends.append(set(bound))
            after = set.intersection(*ends)
        else:
            self.piece([stmt], bound)
            return
        if after is not bound:
            bound.clear()
            bound |= after


def _irrefutable(pattern: ast.pattern) -> bool:
    """True for ``case _`` and ``case name`` (also inside ``as`` and ``|`` patterns)."""
    if isinstance(pattern, ast.MatchAs):
        return pattern.pattern is None or _irrefutable(pattern.pattern)
    if isinstance(pattern, ast.MatchOr):
        return any(_irrefutable(p) for p in pattern.patterns)
    return False
