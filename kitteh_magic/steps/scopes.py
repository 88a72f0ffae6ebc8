"""Scopes: the names code loads, binds, deletes, mutates and calls, resolved per scope.

Names are resolved the way Python resolves them. Function bodies (and lambdas and comprehensions)
are flow-insensitive, like Python itself: a name bound anywhere in a function is local to it. The
cell's top level and class bodies run top to bottom (:class:`Body`), so they are read in order: a
name bound unconditionally before a statement is not a read of that statement. Branches of
``if``/``try``/``match`` count as binding a name only when every way through binds it; loop bodies
may run zero times. Anything else errs on the side of a read, because a missing input would replay
a stale step while a superfluous one only re-runs it.

Pure: AST in, names out. :func:`.analysis.analyse` reads a cell's module body with a
:class:`Body` and turns what escapes it into the cell's facts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kitteh_magic.steps.mutations import base_name, mutated_by


def alias_binding(alias: ast.alias) -> str:
    """The name an import binds: ``import a.b`` binds ``a``, ``import a.b as c`` binds ``c``."""
    return alias.asname or alias.name.split(".")[0]


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
        base = base_name(node)
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
        base = base_name(node.func)
        if base is not None:
            self.uses.calls.add(base)
        self.uses.mutates.update(mutated_by(node))
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
        self.stores.update(alias_binding(alias) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.stores.update(alias_binding(a) for a in node.names if a.name != "*")

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
            base = base_name(decorator)
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
        body = Body("class")
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


class Body:
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
