"""Fingerprints of values and of notebook code: stable across processes, restarts and pickling."""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from kitteh_magic import fingerprint as fp_module
from kitteh_magic.fingerprint import (
    Unfingerprintable,
    code_fingerprint,
    fingerprint,
    global_reads,
    global_writes,
    is_notebook_object,
    module_token,
)

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


# --- primitives -----------------------------------------------------------------------------

GOLDEN = [
    (None, "626d368fe0e74b4f1a038927df1311d6"),
    (True, "1d33c0bd3511c80d20948828081ddcb4"),
    (False, "ccebad3393972e4a79bf233aa9bae29f"),
    (0, "8e7ba4744620b77b6c623212875f97ee"),
    (1, "2dd69d280aaaa31a490dc2928633cd0e"),
    (-1, "a1e91c5d6860d32b80e47451797bd70d"),
    (2**100, "c86fcd399b9df5edc90b44928a1a5fc2"),
    (1.0, "84889d007ed5075f27439691bb2095bc"),
    (-0.0, "9b19d36c3cc1c974be8ca5cfc9392392"),
    (1j, "4a8d747367d21f93494ee54afa1dbb3a"),
    ("", "85fefc6f12f345b396720846b631026c"),
    ("1", "3400a47faadb8b004fd345b3f48de741"),
    ("héllo", "471d2b85742b9643143cd27e33b1eefd"),
    (b"1", "194c2238ea2feee9ce34e278135fbd07"),
    (bytearray(b"1"), "4a457b225090b6bd7ff0cd9c31ee7285"),
]


@pytest.mark.parametrize(("value", "expected"), GOLDEN, ids=[repr(v) for v, _ in GOLDEN])
def test_golden_primitives(value: object, expected: str) -> None:
    assert fingerprint(value) == expected


def test_types_are_tagged() -> None:
    values: list[object] = [1, 1.0, True, "1", b"1", bytearray(b"1"), 1 + 0j, (1,), [1],
                            0, False, None, "", b"", 0.0]  # fmt: skip
    assert len({fingerprint(v) for v in values}) == len(values)


def test_equal_values_have_equal_fingerprints() -> None:
    assert fingerprint(10**50 + 1) == fingerprint(int("1" + "0" * 49 + "1"))
    assert fingerprint("".join(["ab", "c"])) == fingerprint("abc")
    assert fingerprint({"a": [1, 2.5, ("x", None)]}) == fingerprint({"a": [1, 2.5, ("x", None)]})
    assert HEX32.fullmatch(fingerprint({"a": 1}))


def test_containers_see_their_contents() -> None:
    assert fingerprint([1, 2]) != fingerprint([2, 1])
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint((1, "a")) != fingerprint((1, "b"))


def test_dict_order_counts() -> None:
    # Iteration order is observable by the code that reads the dict, so it is content.
    assert fingerprint({"a": 1, "b": 2}) != fingerprint({"b": 2, "a": 1})


# --- sets -----------------------------------------------------------------------------------


def test_set_order_does_not_count_in_process() -> None:
    forward = set(range(100))
    backward: set[int] = set()
    for item in reversed(range(2000)):
        backward.add(item)
    backward -= set(range(100, 2000))  # same elements, another table history
    assert forward == backward
    assert fingerprint(forward) == fingerprint(backward)
    assert fingerprint({1.5, "a", (2, 3)}) == fingerprint({(2, 3), "a", 1.5})
    assert fingerprint({1, 2}) != fingerprint({1, 3})
    assert fingerprint({1, 2}) != fingerprint(frozenset({1, 2}))


SET_SCRIPT = """
import pickle, sys
from kitteh_magic.fingerprint import fingerprint
words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"}
mixed = {"a", 1, 2.5, ("t", 1), b"bytes", frozenset({"x", "y", "z"})}
nested = {"key": [words, frozenset(words)], "mixed": mixed}
print(pickle.dumps(words).hex())
print(fingerprint(words), fingerprint(mixed), fingerprint(nested))
"""


def run_with_seed(seed: int) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SET_SCRIPT], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.splitlines()


def test_set_fingerprints_do_not_depend_on_the_hash_seed() -> None:
    first, second = run_with_seed(1), run_with_seed(2)
    # The plain pickles differ: the set order really changes between these processes.
    assert first[0] != second[0]
    assert first[1] == second[1]


# --- numpy and pandas -----------------------------------------------------------------------


def test_golden_numpy_arrays() -> None:
    np = pytest.importorskip("numpy")
    ints = np.arange(6, dtype="<i8").reshape(2, 3)
    floats = np.arange(6, dtype="<f4")
    assert fingerprint(ints) == "1c8047302a1c9851fca17501c1673cb3"
    assert fingerprint(floats) == "09a09020a82f92bfeadf26d568d2442e"


def test_numpy_dtype_shape_and_data_count() -> None:
    np = pytest.importorskip("numpy")
    base = np.arange(12, dtype=np.float64)
    variants = [base.astype(np.float32), base.reshape(3, 4), base.reshape(4, 3), base + 1,
                base.astype(">f8"), base[:-1]]  # fmt: skip
    fingerprints = {fingerprint(base), *(fingerprint(v) for v in variants)}
    assert len(fingerprints) == len(variants) + 1
    assert fingerprint(base) == fingerprint(np.arange(12, dtype=np.float64))


def test_numpy_strided_arrays_equal_their_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    strided = np.arange(120, dtype=np.int32).reshape(6, 20)[:, ::2]
    c_order = strided.copy()
    assert not strided.flags.c_contiguous and not strided.flags.f_contiguous
    assert fingerprint(strided) == fingerprint(c_order)
    # Copy two rows at a time: the chunked result must equal the one-chunk result.
    monkeypatch.setattr(fp_module, "_CHUNK_BYTES", 2 * 10 * 4)
    assert fingerprint(strided) == fingerprint(c_order)
    strided[5, 9] += 1
    assert fingerprint(strided) != fingerprint(c_order)


def test_fortran_arrays_are_hashed_in_their_own_order(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    c_order = np.arange(60, dtype=np.int32).reshape(6, 10)
    f_order = np.asfortranarray(c_order)
    # Tagged by layout: equal values, but hashing them in C order would need a slow transpose.
    assert fingerprint(f_order) != fingerprint(c_order)
    assert fingerprint(f_order) == fingerprint(np.asfortranarray(c_order.copy()))
    assert fingerprint(f_order) != fingerprint(np.asfortranarray(c_order + 1))
    assert fingerprint(f_order) != fingerprint(np.asfortranarray(c_order.reshape(10, 6)))
    monkeypatch.setattr(np, "ascontiguousarray", None)  # no copy is made
    assert HEX32.fullmatch(fingerprint(f_order))


def test_contiguous_arrays_are_hashed_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    array = np.ones((100, 100))

    def no_copy(*args: object, **kwargs: object) -> None:
        raise AssertionError("a contiguous array was copied")

    monkeypatch.setattr(np, "ascontiguousarray", no_copy)
    assert HEX32.fullmatch(fingerprint(array))


def test_other_numpy_dtypes() -> None:
    np = pytest.importorskip("numpy")
    dates = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    assert fingerprint(dates) != fingerprint(dates.astype("datetime64[s]"))
    point = np.zeros(2, dtype=[("x", "<f8"), ("y", "<f8")])
    renamed = np.zeros(2, dtype=[("x", "<f8"), ("z", "<f8")])
    assert fingerprint(point) != fingerprint(renamed)
    objects = np.array([{"a": 1}, "b"], dtype=object)
    assert fingerprint(objects) == fingerprint(np.array([{"a": 1}, "b"], dtype=object))
    assert fingerprint(objects) != fingerprint(np.array([{"a": 2}, "b"], dtype=object))
    assert HEX32.fullmatch(fingerprint(np.empty((0, 3))))
    assert fingerprint(np.float64(1.0)) != fingerprint(1.0)


def test_dataframes_hash_their_buffers_out_of_band(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(1000.0), "b": np.arange(1000) * 2, "s": ["x"] * 1000})
    seen: list[int] = []
    original = fp_module._HashingPickler._buffer

    def spy(self: Any, buffer: pickle.PickleBuffer) -> bool:
        seen.append(buffer.raw().nbytes)
        result: bool = original(self, buffer)
        return result

    monkeypatch.setattr(fp_module._HashingPickler, "_buffer", spy)
    first = fingerprint(frame)
    assert sum(seen) >= 1000 * 8 * 2  # both numeric columns went through the buffer hash
    assert first == fingerprint(frame.copy())
    changed = frame.copy()
    changed.loc[500, "a"] = -1.0
    assert fingerprint(changed) != first
    assert fingerprint(frame.rename(columns={"a": "z"})) != first
    assert fingerprint(frame["a"]) != fingerprint(frame["b"])


# --- values without a fingerprint -----------------------------------------------------------


def generator() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (generator, "generator"),
        (threading.Lock, "_thread.lock"),
        (lambda: open(os.devnull), "_io.TextIOWrapper"),  # noqa: SIM115
        (lambda: socket.socket(), "socket.socket"),
        (lambda: {"conn": threading.Lock()}, "dict"),
    ],
)
def test_unpicklable_values_raise(make: Any, type_name: str) -> None:
    value = make()
    try:
        with pytest.raises(Unfingerprintable) as caught:
            fingerprint(value)
        assert caught.value.type_name == type_name
        assert type_name in str(caught.value)
    finally:
        if hasattr(value, "close"):
            value.close()


def test_unfingerprintable_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(Unfingerprintable("generator", "no")))
    assert (error.type_name, error.cause) == ("generator", "no")


# --- modules --------------------------------------------------------------------------------


def test_module_tokens() -> None:
    np = pytest.importorskip("numpy")
    assert module_token(np) == f"numpy=={np.__version__}"
    assert module_token(np.linalg) == f"numpy.linalg=={np.__version__}"
    assert module_token(os) == "os==python-{}.{}.{}".format(*sys.version_info[:3])
    assert module_token(types.ModuleType("my_local_helpers")) == "my_local_helpers==unversioned"
    assert module_token(pytest) == f"pytest=={pytest.__version__}"


def test_modules_are_fingerprinted_by_token() -> None:
    assert fingerprint(os) == fingerprint(os)
    assert fingerprint(os) != fingerprint(sys)
    assert fingerprint({"m": os}) != fingerprint({"m": sys})  # inside containers too


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
    assert not is_notebook_object(generator)  # defined in this test module


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
from kitteh_magic.fingerprint import code_fingerprint
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
