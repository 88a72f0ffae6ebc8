"""Fingerprints of notebook code: stable across restarts and pickling, faithful through wrappers
and function state, and the globals the code uses."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from kitteh_magic.steps.codeprint import (
    global_reads,
    global_writes,
    is_notebook_object,
    notebook_code,
)
from kitteh_magic.steps.fingerprint import code_fingerprint, fingerprint

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
from kitteh_magic.steps.fingerprint import code_fingerprint
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
    # A bound method may call the other methods of its instance: its class's reads count.
    assert global_reads(ns["Model"]().bump) == {"CONFIG", "factory", "WEIGHTS", "NEXT"}
    assert global_reads(ns["Base"].shared) == {"CONFIG"}
    assert global_writes(ns["Model"]) == {"COUNT"}
    assert global_writes(ns["Base"]) == frozenset()


def test_async_code_is_fingerprinted_past_its_awaits() -> None:
    source = """
        import asyncio
        async def main():
            await asyncio.sleep(0)
            return LIMIT + 5
    """
    ns = notebook(source)
    assert HEX32.fullmatch(code_fingerprint(ns["main"]))
    assert code_fingerprint(ns["main"]) == code_fingerprint(restart(source, "main"))
    edited = restart(source.replace("LIMIT + 5", "LIMIT + 6"), "main")
    assert code_fingerprint(ns["main"]) != code_fingerprint(edited)  # code after the await
    assert global_reads(ns["main"]) == {"asyncio", "LIMIT"}


# --- code behind wrappers, and the state a function carries ---------------------------------

CACHED = """
import functools
@functools.lru_cache
def rate():
    return 30
"""


@pytest.mark.parametrize("wrapper", ["functools.lru_cache", "functools.cache",
                                     "functools.lru_cache(maxsize=8, typed=True)"])
def test_cached_functions_are_fingerprinted_by_their_code_not_their_cache(wrapper: str) -> None:
    source = CACHED.replace("functools.lru_cache", wrapper)
    rate = restart(source, "rate")
    before = fingerprint(rate)
    rate(), rate()
    assert rate.cache_info().hits == 1
    assert fingerprint(rate) == before  # the cache and its statistics are not content
    assert fingerprint(restart(source, "rate")) == before  # a fresh kernel
    edited = restart(source.replace("return 30", "return 8"), "rate")
    assert fingerprint(edited) != before
    assert fingerprint({"handlers": [edited]}) != fingerprint({"handlers": [rate]})


def test_cached_code_inside_closures_and_classes_is_seen() -> None:
    source = """
        import functools
        def make(k):
            @functools.lru_cache
            def scaled(x):
                return x * k
            return lambda x: scaled(x)
        class Prices:
            @functools.cache
            def base(self):
                return 10
    """
    ns = notebook(source)
    assert code_fingerprint(ns["make"](2)) == code_fingerprint(ns["make"](2))
    assert code_fingerprint(ns["make"](2)) != code_fingerprint(ns["make"](3))
    prices = code_fingerprint(ns["Prices"])
    ns["Prices"]().base()
    assert code_fingerprint(ns["Prices"]) == prices
    assert prices != code_fingerprint(restart(source.replace("return 10", "return 11"), "Prices"))


def test_function_attributes_are_content() -> None:
    source = """
        import functools
        def limit():
            return limit.threshold
        limit.threshold = 3
        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper
        @logged
        def cut():
            return cut.level
        cut.level = 1
        @functools.cache
        def cached():
            return cached.unit
        cached.unit = "kg"
    """
    ns = notebook(source)
    for name, attribute, other in [("limit", "threshold", 5), ("cut", "level", 2),
                                   ("cached", "unit", "g")]:
        before = fingerprint(ns[name])
        assert before == fingerprint(restart(source, name))
        original = getattr(ns[name], attribute)
        setattr(ns[name], attribute, other)
        assert fingerprint(ns[name]) != before, name
        setattr(ns[name], attribute, original)
        assert fingerprint(ns[name]) == before, name


def test_singledispatch_functions_are_stable_until_registered_again() -> None:
    source = """
        import functools
        @functools.singledispatch
        def show(x):
            return "thing"
        @show.register
        def _(x: int):
            return "int"
    """
    ns = notebook(source)
    before = fingerprint(ns["show"])
    ns["show"](1), ns["show"]("s"), ns["show"](2.5)  # fills its dispatch cache
    assert fingerprint(ns["show"]) == before == fingerprint(restart(source, "show"))
    notebook("@show.register\ndef _(x: str):\n    return 'str'\n", namespace=ns)
    assert fingerprint(ns["show"]) != before


def test_defaults_and_closures_holding_an_unpicklable_part_count_by_the_rest() -> None:
    source = """
        import threading
        CONFIG = {"rows": [1, 2], "lock": threading.Lock()}
        def f(x, cfg=CONFIG):
            return cfg["rows"]
        def g(x, *, cfg=CONFIG):
            return cfg["rows"]
        def outer():
            cfg = CONFIG
            def h():
                return cfg["rows"]
            return h
        h = outer()
    """
    ns = notebook(source)
    before = {name: code_fingerprint(ns[name]) for name in "fgh"}
    assert before == {name: code_fingerprint(restart(source, name)) for name in "fgh"}
    ns["CONFIG"]["rows"].append(3)  # what the functions return changes
    assert all(code_fingerprint(ns[name]) != before[name] for name in "fgh")


def test_class_fingerprints_ignore_caches_that_pickling_and_enums_fill() -> None:
    source = CLASS + "class Perm(enum.Flag):\n    R = 1\n    W = 2\n"
    ns = notebook(source)
    model, perm = code_fingerprint(ns["Model"]), code_fingerprint(ns["Perm"])
    fingerprint(ns["Model"]())  # copyreg caches the class's __slotnames__ on the first pickle
    assert "__slotnames__" in vars(ns["Model"])
    assert ns["Perm"].R | ns["Perm"].W  # enum caches the combined member on the class
    assert code_fingerprint(ns["Model"]) == model == code_fingerprint(restart(source, "Model"))
    assert code_fingerprint(ns["Perm"]) == perm == code_fingerprint(restart(source, "Perm"))
    edited = restart(source.replace("W = 2\n", "W = 4\n"), "Perm")
    assert code_fingerprint(edited) != perm


WRAPPERS = """
import functools
SCALE = 2
def mul(x, y):
    return x * y * SCALE
cached = functools.lru_cache(mul)
double = functools.partial(mul, 2)
class Traced:
    def __init__(self, fn):
        self.fn = fn
    def __call__(self, *a):
        return self.fn(*a) + OFFSET
traced = Traced(mul)
def twice(fn):
    def run(*a):
        return fn(*a) + fn(*a)
    return run
doubled = twice(mul)
class Model:
    def predict(self, x):
        return self.scale(x)
    def scale(self, x):
        return x * RATE
predict = Model().predict
model = Model()
class Report:
    @functools.cached_property
    def total(self):
        return TAX
"""


@pytest.mark.parametrize(("name", "reads"), [
    ("cached", {"SCALE"}), ("double", {"SCALE"}), ("traced", {"SCALE", "OFFSET"}),
    ("doubled", {"SCALE"}), ("predict", {"RATE"}), ("model", {"RATE"}), ("Report", {"TAX"}),
])
def test_global_reads_follow_wrappers_to_the_code_they_run(name: str, reads: set[str]) -> None:
    ns = notebook(WRAPPERS)
    assert global_reads(ns[name]) == reads
    assert ns["mul"] in notebook_code(ns[name]) or name in ("predict", "model", "Report")


def test_a_library_wrapper_counts_the_code_it_wraps_not_its_own_globals() -> None:
    library = types.ModuleType("somelib")
    exec(textwrap.dedent("""
        import functools
        HIDDEN = 1
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a) + HIDDEN
            return wrapper
    """), library.__dict__)
    wrapped = library.deco(notebook("def f():\n    return SCALE\n")["f"])
    assert is_notebook_object(wrapped)  # functools.wraps copied __module__
    assert global_reads(wrapped) == {"SCALE"}  # HIDDEN is the library's, not the notebook's


CODE_FACTS_SCRIPT = """
import sys
from kitteh_magic.steps import codeprint
ns = {"__name__": "__main__"}
exec("import functools\\ndef f(x=1):\\n    return X\\ng = functools.lru_cache(f)", ns)
facts = (codeprint.global_reads(ns["g"]), codeprint.notebook_code(ns["g"]),
         codeprint.code_digest(ns["f"].__code__), codeprint.by_code(ns["f"]))
print("kitteh_magic.steps.fingerprint" in sys.modules)
"""


def test_code_facts_do_not_import_the_value_fingerprints() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CODE_FACTS_SCRIPT], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "False"


def test_globals_read_by_functions_in_defaults_and_small_containers_are_followed() -> None:
    # A step calling ``apply(3)`` or ``ops["scale"](10)`` reads FACTOR and SCALE through them.
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("def apply(x, fn=lambda v: v * FACTOR):\n    return fn(x)\n"
         "def scale(x):\n    return x * SCALE\n"
         "ops = {'scale': scale}\nchain = [scale, apply]\n", ns)
    assert "FACTOR" in global_reads(ns["apply"])
    assert "SCALE" in global_reads(ns["ops"])
    assert {"SCALE", "FACTOR"} <= global_reads(ns["chain"])
    assert global_reads(list(range(1000))) == frozenset()
