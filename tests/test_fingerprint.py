"""Fingerprints of values: stable across processes, restarts and pickling."""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from kitteh_magic.steps import fingerprint as fp_module
from kitteh_magic.steps.fingerprint import Unfingerprintable, fingerprint, module_token

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
