"""The rewriter routes every call through the dispatcher and changes nothing else.

Each test runs the original and the rewritten code, the latter with stand-in dispatchers that
record the callees and forward the call, and compares results and evaluation order.
"""

from __future__ import annotations

import ast
import textwrap
import traceback
from typing import Any

import pytest

from kitteh_magic.activities.rewriter import AWAIT_NAME, CALL_NAME, rewrite


def callee_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class Run:
    """The namespaces of one cell run plainly and rewritten, and the callees dispatched."""

    def __init__(self, source: str, **names: Any) -> None:
        self.source = textwrap.dedent(source)
        self.calls: list[str] = []
        tree = ast.parse(self.source)
        self.plain: dict[str, Any] = {"__name__": "__main__", **names}
        self.routed: dict[str, Any] = {"__name__": "__main__", CALL_NAME: self._call,
                                       AWAIT_NAME: self._acall, **names}
        self.rewritten = rewrite(tree)
        exec(compile(tree, "<cell>", "exec"), self.plain)
        exec(compile(self.rewritten, "<cell>", "exec"), self.routed)

    def _call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(callee_name(fn))
        return fn(*args, **kwargs)

    async def _acall(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("await " + callee_name(fn))
        return await fn(*args, **kwargs)

    def same(self, *names: str) -> None:
        for name in names:
            assert self.plain[name] == self.routed[name], name


def test_plain_calls_methods_and_arguments() -> None:
    run = Run("""
        def f(a, b=0, *rest, k=None, **more):
            return (a, b, rest, k, more)
        x = f(1, *[2, 3], k=4, **{"z": 5})
        y = "a,b".split(",")
        z = f(fn=1, a=2)
        """)
    run.same("x", "y", "z")
    assert run.calls == ["f", "split", "f"]


def test_chained_attributes_call_the_method_once() -> None:
    class Completions:
        made = 0

        def create(self, **kwargs: Any) -> dict[str, Any]:
            Completions.made += 1
            return kwargs

    class Client:
        class chat:  # shaped like an SDK's attribute chain
            completions = Completions()

    run = Run("out = client.chat.completions.create(model='m', n=2)", client=Client())
    run.same("out")
    assert run.calls == ["create"] and Completions.made == 2  # once per run


def test_nested_calls_run_inner_first_and_order_is_kept() -> None:
    source = """
        order = []
        def t(label, value):
            order.append(label)
            return value
        def g(x):
            return x + 1
        def f(*args, **kwargs):
            return args, kwargs
        made = 0
        def make():
            global made
            made += 1
            return f
        r = t("callee", f)(t("a", 1), *t("b", [2]), k=t("c", 3), **t("d", {}))
        s = f(g(1))
        u = make()(1)
        """
    run = Run(source)
    run.same("order", "r", "s", "u", "made")
    assert run.plain["order"] == ["callee", "a", "b", "c", "d"]
    assert run.routed["made"] == 1  # the callee expression ran once
    assert run.calls[-4:] == ["g", "f", "make", "f"]


def test_calls_in_comprehensions_lambdas_nested_defs_and_class_bodies() -> None:
    run = Run("""
        def double(x):
            return 2 * x
        squares = [double(i) for i in range(3)]
        gen = sum(double(i) for i in range(3))
        mapping = {i: double(i) for i in range(2)}
        twice = lambda v: double(double(v))
        lam = twice(3)
        def outer(n):
            def inner(m):
                return double(m)
            return inner(n)
        nested = outer(5)
        class Box:
            size = double(4)
            def grow(self):
                return double(self.size)
        grown = Box().grow()
        """)
    run.same("squares", "gen", "mapping", "lam", "nested", "grown")
    assert run.calls.count("double") == 3 + 3 + 2 + 2 + 1 + 1 + 1


def test_decorator_arguments_and_defaults_are_routed() -> None:
    run = Run("""
        def tag(label):
            def apply(fn):
                fn.label = label
                return fn
            return apply
        def default():
            return 7
        @tag(default())
        def f(x=default()):
            return x
        out = (f(), f.label)
        """)
    run.same("out")
    assert run.calls[:3] == ["default", "tag", "default"]


def test_zero_argument_super_and_frame_functions_still_work() -> None:
    run = Run("""
        class Base:
            def hello(self):
                return "base"
        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        greeting = Child().hello()
        def frame():
            secret = 41
            return locals()["secret"] + eval("1")
        value = frame()
        names = sorted(vars(Child))
        """)
    run.same("greeting", "value", "names")
    for name in ("super", "locals", "eval", "vars"):
        assert name not in run.calls
    assert "hello" in run.calls and "frame" in run.calls


def test_generator_functions() -> None:
    run = Run("""
        def count(n):
            for i in range(n):
                yield str(i)
        out = list(count(3))
        """)
    run.same("out")
    assert run.calls.count("str") == 3


def test_awaits_are_routed_once_through_the_async_dispatcher() -> None:
    run = Run("""
        import asyncio
        async def fetch(x):
            await asyncio.sleep(0)
            return x * 2
        async def main():
            first = await fetch(1)
            rest = [await fetch(i) for i in range(2)]
            return first, rest
        out = asyncio.run(main())
        """)
    run.same("out")
    assert run.calls.count("await fetch") == 3
    assert run.calls.count("await sleep") == 3
    assert "fetch" not in run.calls  # the awaited call is not wrapped twice
    assert "main" in run.calls and "run" in run.calls


def test_rewriting_is_idempotent_and_leaves_the_input_alone() -> None:
    tree = ast.parse("async def g():\n    await f(h(1), k=2)\n"
                     "x = f(g)(super(), y=[z() for z in w])")
    before = ast.dump(tree, include_attributes=True)
    once = rewrite(tree)
    assert ast.dump(tree, include_attributes=True) == before
    assert ast.dump(rewrite(once), include_attributes=True) == ast.dump(once,
                                                                        include_attributes=True)
    assert ast.unparse(once) == (
        "async def g():\n"
        "    await _kitteh_acall_(f, _kitteh_call_(h, 1), k=2)\n"
        "x = _kitteh_call_(_kitteh_call_(f, g), super(), "
        "y=[_kitteh_call_(z) for z in w])")


def test_annotations_are_left_as_written() -> None:
    run = Run("""
        from __future__ import annotations
        def f(x: list[int] = len("ab")) -> dict(a=1):
            return x
        annotations = f.__annotations__
        """)
    run.same("annotations")
    assert run.routed["annotations"] == {"x": "list[int]", "return": "dict(a=1)"}


def test_a_keyword_named_like_the_dispatchers_parameter_does_not_clash() -> None:
    run = Run("""
        def f(**kwargs):
            return kwargs
        out = f(fn=1, __fn=2, args=3, kwargs=4)
        """)
    run.same("out")


def failing_lines(code: Any, namespace: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Line and column span of each traceback entry in the cell."""
    with pytest.raises(ZeroDivisionError) as info:
        exec(code, namespace)
    frames = traceback.extract_tb(info.value.__traceback__)
    return [(f.lineno, f.end_lineno, f.colno, f.end_colno) for f in frames
            if f.filename == "<cell>"]


def test_tracebacks_point_at_the_users_lines() -> None:
    source = textwrap.dedent("""
        def divide(a, b):
            return a / b

        values = [1, 2]
        total = sum(
            divide(v, 0)
            for v in values
        )
        """)
    tree = ast.parse(source)
    plain = failing_lines(compile(tree, "<cell>", "exec"), {})

    def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    routed = failing_lines(compile(rewrite(tree), "<cell>", "exec"), {CALL_NAME: call})
    assert [span[0] for span in plain] == [6, 7, 3]
    assert routed == plain  # same lines, and the same columns under the carets


def test_positions_of_new_nodes_are_the_calls() -> None:
    tree = rewrite(ast.parse("x = 1\ny = f(\n    2)\n"))
    call = tree.body[1].value  # type: ignore[attr-defined]
    assert (call.lineno, call.end_lineno, call.func.lineno) == (2, 3, 2)
