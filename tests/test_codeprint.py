"""Fingerprints of notebook code: stable across restarts and pickling, and the globals it uses."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kitteh_magic.steps.codeprint import (
    code_fingerprint,
    global_reads,
    global_writes,
    is_notebook_object,
)
from kitteh_magic.steps.fingerprint import fingerprint

HEX32 = re.compile(r"[0-9a-f]{32}")
ROOT = Path(__file__).resolve().parents[1]


def notebook(source: str, filename: str = "/tmp/ipykernel_123/abc.py", first_line: int = 1,
             namespace: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Runs source the way a kernel runs a cell: in a ``__main__`` namespace, under a temp name."""
    ns: dict[str, Any] = {"__name__": "__main__"} if namespace is None else namespace
    code = "\n" * (first_line - 1) + textwrap.dedent(source)
    exec(compile(code, filename, "exec"), ns)
    return ns


def restart(source: str, name: str = "f") -> Any:
    """The same cell after a kernel restart: another file name, other line numbers."""
    return notebook(source, "<ipython-input-9-x>", first_line=3)[name]


# --- notebook code --------------------------------------------------------------------------

FUNCTION = """
import functools
SCALE = 3
def helper(v):
    return v + 1
def f(x, y=2, *, z=(1, 2)):
    "Doc."
    total = sum(i * SCALE for i in range(x))
    return helper(total) + y + len(str(z))
"""


def test_notebook_objects() -> None:
    ns = notebook(FUNCTION + "class K:\n    def m(self):\n        pass\n")
    assert is_notebook_object(ns["f"])
    assert is_notebook_object(ns["K"])
    assert is_notebook_object(ns["K"]().m)
    assert not is_notebook_object(ns["SCALE"])
    assert not is_notebook_object(os.path.join)
    assert not is_notebook_object(notebook)  # defined in this test module


def test_code_fingerprint_ignores_file_name_and_line_numbers() -> None:
    first = notebook(FUNCTION)["f"]
    second = restart(FUNCTION)
    assert first.__code__.co_filename != second.__code__.co_filename
    assert first.__code__.co_firstlineno != second.__code__.co_firstlineno
    assert code_fingerprint(first) == code_fingerprint(second)
    assert fingerprint(first) == code_fingerprint(first)
    assert fingerprint({"fn": first}) == fingerprint({"fn": second})


RESTORE_SCRIPT = """
import sys, cloudpickle
from kitteh_magic.steps.codeprint import code_fingerprint
for name, obj in cloudpickle.loads(sys.stdin.buffer.read()).items():
    print(name, code_fingerprint(obj))
"""


def test_code_fingerprint_survives_cloudpickle_and_a_restart() -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    source = FUNCTION + textwrap.dedent("""
        def outer(k):
            def inner(v):
                return v * k
            return inner
        g = functools.wraps(f)(lambda *a, **kw: f(*a, **kw))
        closure = outer(7)
        class Model:
            rate = 0.5
            def fit(self, data):
                return [d * self.rate for d in data]
    """)
    ns = notebook(source)
    names = ["f", "helper", "g", "closure", "Model"]
    payload = cloudpickle.dumps({name: ns[name] for name in names})
    # Restored in another process, as after a kernel restart.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", RESTORE_SCRIPT], input=payload, env=env,
                         check=True, capture_output=True).stdout.decode()  # fmt: skip
    restored = dict(line.split() for line in out.splitlines())
    assert restored == {name: code_fingerprint(ns[name]) for name in names}
    # And in this process, where cloudpickle makes a new function object.
    copy = cloudpickle.loads(cloudpickle.dumps(ns["f"]))
    assert copy is not ns["f"]
    assert code_fingerprint(copy) == code_fingerprint(ns["f"])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("return helper(total) + y", "return helper(total) - y"),  # body
        ("y=2", "y=3"),  # default
        ("z=(1, 2)", "z=(1, 3)"),  # keyword-only default
        ("i * SCALE", "i * SCALE * 1.5"),  # constant
        ("range(x)", "range(x + 1)"),  # inside a nested code object (the generator)
        ('"Doc."', '"Other doc."'),  # docstring
        ("def f(x, y=2", "def f(x, w=2"),  # parameter name
    ],
)
def test_code_fingerprint_sees_edits(old: str, new: str) -> None:
    assert old in FUNCTION
    edited = FUNCTION.replace(old, new)
    assert code_fingerprint(restart(FUNCTION)) != code_fingerprint(restart(edited))


def test_code_fingerprint_of_closures_wrappers_and_async() -> None:
    source = """
        import functools
        def outer(k):
            def inner(v):
                return v * k
            return inner
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper
        @deco
        def one():
            return 1
        async def coro():
            return 1
        def gen():
            yield 1
        square = lambda v: v * v
    """
    ns = notebook(source)
    assert code_fingerprint(ns["outer"](2)) == code_fingerprint(ns["outer"](2))
    assert code_fingerprint(ns["outer"](2)) != code_fingerprint(ns["outer"](3))
    edited = notebook(source.replace("return 1\n        async", "return 2\n        async"))
    assert code_fingerprint(ns["one"]) != code_fingerprint(edited["one"])  # via __wrapped__
    assert code_fingerprint(ns["coro"]) != code_fingerprint(notebook(source.replace(
        "async def coro():\n            return 1", "async def coro():\n            return 2"
    ))["coro"])  # fmt: skip
    for name in ["coro", "gen", "square"]:
        assert code_fingerprint(ns[name]) == code_fingerprint(restart(source, name))
    assert len({code_fingerprint(ns[n]) for n in ["one", "coro", "gen", "square"]}) == 4


CLASS = """
import enum
class Base:
    def shared(self):
        return 1
class Model(Base):
    rate = 0.5
    labels = {"a", "b"}
    @staticmethod
    def make():
        return Model()
    @property
    def double(self):
        return self.rate * 2
    def fit(self, data):
        return [d * self.rate for d in data]
class Color(enum.Enum):
    RED = 1
    GREEN = 2
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rate = 0.5", "rate = 0.25"),  # class attribute
        ("return self.rate * 2", "return self.rate * 3"),  # property
        ("return Model()", "return None"),  # static method
        ("return 1\nclass Model", "return 2\nclass Model"),  # a base class's method
        ('{"a", "b"}', '{"a", "c"}'),  # a set attribute
    ],
)
def test_class_fingerprint_sees_edits(old: str, new: str) -> None:
    assert old in CLASS
    before, after = restart(CLASS, "Model"), restart(CLASS.replace(old, new), "Model")
    assert code_fingerprint(before) != code_fingerprint(after)


def test_class_fingerprints_are_stable() -> None:
    first, second = notebook(CLASS), restart(CLASS, "Model")
    assert code_fingerprint(first["Model"]) == code_fingerprint(second)
    color = restart(CLASS, "Color")
    assert code_fingerprint(first["Color"]) == code_fingerprint(color)  # members refer back
    assert code_fingerprint(first["Color"]) != code_fingerprint(
        restart(CLASS.replace("GREEN = 2", "GREEN = 3"), "Color")
    )


def test_instances_of_notebook_classes_follow_their_class() -> None:
    first = notebook(CLASS)["Model"]()
    same = restart(CLASS, "Model")()
    edited = restart(CLASS.replace("d * self.rate", "d + self.rate"), "Model")()
    assert fingerprint(first) == fingerprint(same)
    assert fingerprint(first) != fingerprint(edited)


def test_self_references_terminate() -> None:
    source = """
        def outer(k):
            def rec(n):
                return rec(n - 1) if n else k
            return rec
        class Node:
            pass
        Node.root = Node()
    """
    ns = notebook(source)
    assert code_fingerprint(ns["outer"](1)) == code_fingerprint(restart(source, "outer")(1))
    assert code_fingerprint(ns["outer"](1)) != code_fingerprint(ns["outer"](2))
    assert fingerprint(ns["Node"]) == fingerprint(restart(source, "Node"))


def test_code_fingerprint_needs_code() -> None:
    with pytest.raises(TypeError, match="function or class"):
        code_fingerprint(42)


def test_functions_that_pickle_cannot_name_are_hashed_by_code() -> None:
    def local(v: int) -> int:
        return v + 1

    def other(v: int) -> int:
        return v + 2

    assert fingerprint(local) != fingerprint(other)
    assert fingerprint(functools.partial(local, 1)) != fingerprint(functools.partial(other, 1))


# --- global reads ---------------------------------------------------------------------------


def test_global_reads_of_a_function() -> None:
    ns = notebook(FUNCTION)
    assert global_reads(ns["f"]) == {"SCALE", "helper"}  # not sum/range/len/str: builtins
    assert global_reads(ns["helper"]) == frozenset()
    notebook("def len(v):\n    return 0\n", namespace=ns)  # the notebook shadows a builtin
    assert global_reads(ns["f"]) == {"SCALE", "helper", "len"}
    assert global_reads(ns["f"].__call__) == frozenset()  # not a notebook function


def test_global_reads_and_writes_of_classes_and_nested_code() -> None:
    source = """
        class Base:
            def shared(self):
                return CONFIG
        class Model(Base):
            @staticmethod
            def make():
                return factory()
            @property
            def p(self):
                return lambda: WEIGHTS
            def bump(self):
                global COUNT
                COUNT = NEXT
    """
    ns = notebook(source)
    assert global_reads(ns["Model"]) == {"CONFIG", "factory", "WEIGHTS", "NEXT"}
    assert global_reads(ns["Model"]().bump) == {"NEXT"}
    assert global_writes(ns["Model"]) == {"COUNT"}
    assert global_writes(ns["Base"]) == frozenset()


def test_async_code_fingerprint_runs() -> None:
    ns = notebook("async def main():\n    return 5\n")
    assert asyncio.run(ns["main"]()) == 5
    assert HEX32.fullmatch(code_fingerprint(ns["main"]))
