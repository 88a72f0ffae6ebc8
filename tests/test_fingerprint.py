"""Fingerprints of values: stable across processes, restarts and pickling."""

from __future__ import annotations

import os
import pickle
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from kitteh_magic.steps import digests, picklers
from kitteh_magic.steps import fingerprint as fp_module
from kitteh_magic.steps.engine import Engine
from kitteh_magic.steps.fingerprint import (
    Leaf,
    Unfingerprintable,
    UnfingerprintableWarning,
    code_fingerprint,
    describe,
    fingerprint,
    module_token,
)

HEX32 = re.compile(r"[0-9a-f]{32}")
ROOT = Path(__file__).resolve().parents[1]


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
from kitteh_magic.steps.fingerprint import fingerprint
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
    monkeypatch.setattr(digests, "_CHUNK_BYTES", 2 * 10 * 4)
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
    original = picklers.HashingPickler._buffer

    def spy(self: Any, buffer: pickle.PickleBuffer) -> bool:
        seen.append(buffer.raw().nbytes)
        result: bool = original(self, buffer)
        return result

    monkeypatch.setattr(picklers.HashingPickler, "_buffer", spy)
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
        (lambda: sqlite3.connect(":memory:"), "sqlite3.Connection"),
    ],
)
def test_unpicklable_values_raise(make: Any, type_name: str) -> None:
    value, other = make(), make()
    try:
        with pytest.raises(Unfingerprintable) as caught:
            fingerprint(value)
        assert caught.value.type_name == type_name
        assert type_name in str(caught.value)
        # Nothing but the type can be hashed: another object of the type gives the same.
        found = describe(value)
        assert found.whole and found.leaves == (Leaf("", type_name),)
        assert found.digest == describe(other).digest
    finally:
        for item in (value, other):
            if hasattr(item, "close"):
                item.close()


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


# --- a container that holds an unpicklable part ----------------------------------------------


class Holder:
    """Rows guarded by a lock: the lock cannot be pickled, the rows can."""

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows
        self.lock = threading.Lock()


def frame_holding_a_lock(rows: list[int]) -> Any:
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"a": rows, "o": [threading.Lock(), *[None] * (len(rows) - 1)]})


#: value maker (from rows) and the parts that count by type only.
HOLDING: dict[str, tuple[Any, list[Leaf]]] = {
    "dict with a connection": (
        lambda rows: {"rows": rows, "conn": sqlite3.connect(":memory:")},
        [Leaf("['conn']", "sqlite3.Connection")]),
    "list with a generator": (
        lambda rows: [rows, (x for x in rows)], [Leaf("[1]", "generator")]),
    "object with a lock": (Holder, [Leaf(".lock", "_thread.lock")]),
    "nested, two parts": (
        lambda rows: {"a": [{"rows": rows, "guard": threading.RLock()}], "b": (threading.Lock(),)},
        [Leaf("['a'][0]['guard']", "_thread.RLock"), Leaf("['b'][0]", "_thread.lock")]),
    "set member": (lambda rows: frozenset({tuple(rows), threading.Lock()}),
                   [Leaf("{…}", "_thread.lock")]),
    "DataFrame column": (frame_holding_a_lock, [Leaf("['o'][0]", "_thread.lock")]),
}


@pytest.mark.parametrize("case", list(HOLDING))
def test_a_container_with_an_unpicklable_part_is_fingerprinted_by_the_rest(case: str) -> None:
    make, leaves = HOLDING[case]
    first, again, changed = make([1, 2, 3]), make([1, 2, 3]), make([1, 2, 4])
    found = describe(first)
    assert list(found.leaves) == leaves and not found.whole
    assert found.digest == fingerprint(first)
    assert describe(again).digest == found.digest  # another connection or lock: same type
    assert describe(changed).digest != found.digest  # the rest is content as usual


def test_the_careful_pickler_runs_only_after_the_fast_one_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    careful: list[object] = []
    original = fp_module._carefully

    def spy(obj: object) -> str:
        careful.append(obj)
        return original(obj)

    monkeypatch.setattr(fp_module, "_carefully", spy)
    plain = {"df": pd.DataFrame({"a": np.arange(10.0)}), "s": {1, 2}, "f": Holder.__init__}
    assert describe(plain).leaves == ()
    assert careful == []
    holding = {"df": plain["df"], "lock": threading.Lock()}
    assert describe(holding).leaves == (Leaf("['lock']", "_thread.lock"),)
    assert careful == [holding]


# --- pandas caches ----------------------------------------------------------------------------


def pandas_values() -> dict[str, tuple[Any, Any]]:
    """Makers of pandas values, each with an in-place change of its content."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    days = pd.date_range("2024-01-01", periods=100, freq="D")

    def series() -> Any:  # an index without a freq, as read from a file
        return pd.Series(np.arange(100.0), index=pd.DatetimeIndex(days.tolist()), name="x")

    def frame() -> Any:
        return pd.DataFrame({"v": np.arange(96.0), "kind": pd.Categorical(list("ab") * 48),
                             "n": pd.array(range(96), dtype="Int64"), "s": ["x", "y"] * 48},
                            index=pd.date_range("2024-01-01", periods=96, freq="h", tz="UTC"))

    def multi() -> Any:
        index = pd.MultiIndex.from_product([days[:4], ["a", "b", "c"]], names=["day", "k"])
        return pd.DataFrame({"v": np.arange(12)}, index=index)

    def others() -> Any:
        return pd.Series(np.arange(6.0), index=pd.timedelta_range("1h", periods=6, freq="h"))

    def periods() -> Any:
        return pd.Series(pd.Categorical(list("abcabc")),
                         index=pd.period_range("2024-01", periods=6, freq="M"))

    def assign(target: Any, value: object) -> None:
        target.iloc[0] = value

    return {
        "series, DatetimeIndex": (series, lambda v: assign(v, 5.0)),
        "frame, tz index, categorical, Int64, strings": (
            frame, lambda v: v.__setitem__("s", ["z", "y"] * 48)),
        "frame, MultiIndex": (multi, lambda v: v.iloc.__setitem__((0, 0), 99)),
        "series, TimedeltaIndex": (others, lambda v: assign(v, 9.0)),
        "categorical series, PeriodIndex": (periods, lambda v: assign(v, "c")),
        "DatetimeIndex alone": (lambda: pd.DatetimeIndex(days.tolist()),
                                lambda v: v.rename("renamed", inplace=True)),
    }


def exercise(value: Any) -> None:
    """What a notebook does with a value without changing it: show it, look things up."""
    import warnings

    from IPython.core.formatters import DisplayFormatter

    pd = pytest.importorskip("pandas")
    DisplayFormatter().format(value)  # a cell that holds just the value
    repr(value)
    index = value if isinstance(value, pd.Index) else value.index
    _ = (index.is_monotonic_increasing, index.is_unique, index.inferred_type, index.nlevels)
    if not isinstance(index, pd.MultiIndex):
        _ = index.hasnans
    index.get_loc(index[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for level in (index.levels if isinstance(index, pd.MultiIndex) else [index]):
            for name in ("freq", "inferred_freq", "year", "days", "month", "is_unique"):
                getattr(level, name, None)
    if isinstance(value, pd.Index):
        return
    value.loc[index[3]]
    value.iloc[2:5]
    value.sort_index()
    value.describe()
    value.groupby(level=0, observed=True).size()
    if isinstance(value, pd.DataFrame):
        value._repr_html_()
        for _, column in value.items():
            column.value_counts()
    elif isinstance(value.dtype, pd.CategoricalDtype):
        value.cat.as_ordered()
        value.value_counts()


@pytest.mark.parametrize("case", ["series, DatetimeIndex",
                                  "frame, tz index, categorical, Int64, strings",
                                  "frame, MultiIndex", "series, TimedeltaIndex",
                                  "categorical series, PeriodIndex", "DatetimeIndex alone"])
def test_pandas_caches_do_not_change_the_fingerprint(case: str) -> None:
    make, change = pandas_values()[case]
    value = make()
    before = fingerprint(value)
    exercise(value)
    assert fingerprint(value) == before
    assert fingerprint(make()) == before  # a fresh twin, as after a restart
    change(value)
    assert fingerprint(value) != before


def test_fingerprints_of_cached_pandas_values_match_a_fresh_process() -> None:
    make, _ = pandas_values()["frame, tz index, categorical, Int64, strings"]
    value = make()
    exercise(value)
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import pytest
        from test_fingerprint import pandas_values
        from kitteh_magic.steps.fingerprint import fingerprint
        print(fingerprint(pandas_values()["frame, tz index, categorical, Int64, strings"][0]()))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "7"}
    out = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    assert out == fingerprint(value)


# --- an input's fingerprint in the engine -----------------------------------------------------


def test_inputs_with_unpicklable_parts_are_named_in_a_warning(tmp_path: Path) -> None:
    engine = Engine({}, store_dir=tmp_path / "store", session="s")
    bundle = {"rows": [1, 2], "conn": sqlite3.connect(":memory:")}
    with pytest.warns(UnfingerprintableWarning,
                      match=r"input 'bundle' \(dict\) holds parts .*bundle\['conn'\] "
                            r"\(sqlite3\.Connection\)"):
        key = engine.input_fingerprint("bundle", bundle)
    assert key == "v:" + fingerprint(bundle)
    bundle["rows"].append(3)  # same object, new content: an identity key would not see it
    with pytest.warns(UnfingerprintableWarning):
        assert engine.input_fingerprint("bundle", bundle) != key


def test_a_value_without_content_is_named_and_keyed_by_its_type(tmp_path: Path) -> None:
    engine = Engine({}, store_dir=tmp_path / "store", session="s")
    first, second = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    with pytest.warns(UnfingerprintableWarning,
                      match=r"input 'conn' \(sqlite3\.Connection\) cannot be fingerprinted"):
        key = engine.input_fingerprint("conn", first)
    with pytest.warns(UnfingerprintableWarning):
        assert engine.input_fingerprint("conn", second) == key  # as after a restart
    assert key == "u:" + describe(first).digest
    with pytest.warns(UnfingerprintableWarning):
        assert engine.input_fingerprint("conn", threading.Lock()) != key


def test_a_bound_method_input_carries_its_instance(tmp_path: Path) -> None:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("class Model:\n"
         "    def __init__(self, rate):\n        self.rate = rate\n"
         "    def predict(self, x):\n        return x * self.rate\n", ns)
    engine = Engine(ns, store_dir=tmp_path / "store", session="s")
    two, three = ns["Model"](2).predict, ns["Model"](3).predict
    assert engine.input_fingerprint("p", two) != engine.input_fingerprint("p", three)
    again = ns["Model"](2).predict
    assert engine.input_fingerprint("p", two) == engine.input_fingerprint("p", again)
    assert engine.input_fingerprint("Model", ns["Model"]) == "c:" + code_fingerprint(ns["Model"])


class _Model:
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha


@pytest.mark.parametrize("make", [
    lambda: {"model": _Model(0.1), "params": {"alpha": 0.1}},  # an attribute name and a key
    lambda: ["x" * 40, "".join(["x"] * 40)],  # equal strings, two objects
    lambda: [{"name": "a"}, {"name": "b"}, ("name",)],
], ids=["attribute-and-key", "equal-strings", "repeated-keys"])
def test_a_restored_value_fingerprints_like_the_original(make: Any) -> None:
    # Unpickling un-shares equal strings (and interns instance attribute names): the
    # fingerprint must not depend on which equal strings are one object.
    value = make()
    assert fingerprint(pickle.loads(pickle.dumps(value))) == fingerprint(value)
