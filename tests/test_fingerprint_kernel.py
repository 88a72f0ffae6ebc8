"""Faithful fingerprints (DESIGN.md §4.11) on a real kernel, with real restarts.

Each case runs a step, changes one thing a later read could see (or only fills caches), runs the
step again in the same kernel and after a restart, counts which bodies executed, and compares the
step's value with the same expression run as a plain cell in that kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kernel import Kernel, Result, runs

pytestmark = pytest.mark.kernel


class Notebook:
    """Runs durable steps whose bodies set ``value``; counts how often each body ran."""

    def __init__(self, kernel: Kernel, directory: Path, counter: Callable[[str], str]) -> None:
        self.kernel, self.directory, self.counter = kernel, directory, counter

    def step(self, name: str, expression: str) -> Result:
        """``%%durable name`` with ``value = expression``; the value must equal a plain run's."""
        result = self.kernel.ok(f"%%durable {name}\n{self.counter(name)}\nvalue = {expression}",
                                cell_id=name)
        assert self.kernel.value("value") == self.kernel.value(expression)
        return result

    def runs(self, name: str) -> int:
        return runs(self.directory, name)

    def restart(self) -> None:
        self.kernel.restart()
        self.kernel.ok("%load_ext kitteh_magic")


@pytest.fixture
def nb(kernel: Kernel, tmp_path: Path, counter: Callable[[str], str]) -> Notebook:
    return Notebook(kernel, tmp_path, counter)


# --- code behind a wrapper ---------------------------------------------------------------------

RATE = "import functools\n@{wrapper}\ndef rate():\n    return {n}\n"


@pytest.mark.parametrize("wrapper", ["functools.lru_cache", "functools.cache",
                                     "functools.lru_cache(maxsize=16, typed=True)"])
def test_editing_a_cached_function_reruns_the_step(nb: Notebook, wrapper: str) -> None:
    nb.kernel.ok(RATE.format(wrapper=wrapper, n=30))
    nb.step("use", "rate() + 1")
    nb.step("use", "rate() + 1")  # calls filled the cache: nothing a later read sees changed
    assert nb.runs("use") == 1
    nb.kernel.ok(RATE.format(wrapper=wrapper, n=8))
    nb.step("use", "rate() + 1")
    assert nb.runs("use") == 2
    assert nb.kernel.value("value") == 9

    nb.restart()
    nb.kernel.ok(RATE.format(wrapper=wrapper, n=8))
    nb.step("use", "rate() + 1")
    nb.kernel.ok(RATE.format(wrapper=wrapper, n=30))
    nb.step("use", "rate() + 1")
    assert nb.runs("use") == 2  # both versions replay their own record
    assert nb.kernel.value("value") == 31


#: (setup, edit, expression): the edit changes what the expression computes in a plain run.
WRAPPED = {
    "function attribute": (
        "def limit():\n    return limit.threshold * 2\nlimit.threshold = 3",
        "limit.threshold = 5",
        "limit()"),
    "wraps decorator and an attribute": (
        "import functools\n"
        "def logged(fn):\n"
        "    @functools.wraps(fn)\n"
        "    def wrapper(*a):\n"
        "        return fn(*a)\n"
        "    return wrapper\n"
        "@logged\n"
        "def cut():\n    return cut.level\n"
        "cut.level = 1",
        "cut.level = 2",
        "cut()"),
    "partial reading a global": (
        "import functools\nSCALE = 2\ndef mul(x, y):\n    return x * y * SCALE\n"
        "double = functools.partial(mul, 2)",
        "SCALE = 3",
        "double(5)"),
    "decorator instance reading a global": (
        "class Traced:\n"
        "    def __init__(self, fn):\n        self.fn = fn\n"
        "    def __call__(self, *a):\n        return self.fn(*a)\n"
        "@Traced\n"
        "def price():\n    return BASE * 2\n"
        "BASE = 10",
        "BASE = 20",
        "price()"),
    "decorator closure reading a global": (
        "def twice(fn):\n"
        "    def run():\n        return fn() + fn()\n"
        "    return run\n"
        "@twice\n"
        "def bonus():\n    return LIMIT\n"
        "LIMIT = 4",
        "LIMIT = 6",
        "bonus()"),
    "bound method of an instance": (
        "class Model:\n"
        "    def __init__(self, rate):\n        self.rate = rate\n"
        "    def predict(self, x):\n        return x * self.rate\n"
        "predict = Model(2).predict",
        "predict = Model(3).predict",
        "predict(5)"),
}


@pytest.mark.parametrize("case", list(WRAPPED))
def test_state_behind_a_wrapper_reruns_the_step(nb: Notebook, case: str) -> None:
    setup, edit, expression = WRAPPED[case]
    nb.kernel.ok(setup)
    nb.step("call", expression)
    nb.step("call", expression)
    assert nb.runs("call") == 1
    nb.kernel.ok(edit)
    nb.step("call", expression)
    assert nb.runs("call") == 2


def test_a_global_read_by_a_cached_function_counts_after_a_restart(nb: Notebook) -> None:
    cell = "import functools\n@functools.cache\ndef scaled():\n    return SCALE * 10\n"
    nb.kernel.ok(cell + "SCALE = 2")
    nb.step("use", "scaled()")
    nb.restart()
    nb.kernel.ok(cell + "SCALE = 3")
    nb.step("use", "scaled()")  # a plain run computes 30 with the fresh cache
    assert nb.runs("use") == 2
    assert nb.kernel.value("value") == 30


# --- a container that holds one unpicklable part -----------------------------------------------

#: (setup, in-place edit of the picklable part, expression, how the warning names the part).
HOLDERS = {
    "dict with a connection": (
        "import sqlite3, pandas as pd\n"
        "bundle = {'df': pd.DataFrame({'a': [1, 2, 3]}), 'conn': sqlite3.connect(':memory:')}",
        "bundle['df'].loc[0, 'a'] = 10",
        "int(bundle['df']['a'].sum())",
        "bundle['conn'] (sqlite3.Connection)"),
    "list with a generator": (
        "items = [[1, 2, 3], (x for x in range(3))]",
        "items[0].append(4)",
        "sum(items[0])",
        "items[1] (generator)"),
    "object with a lock": (
        "import threading\n"
        "class Box:\n"
        "    def __init__(self):\n"
        "        self.rows = [1, 2]\n"
        "        self.lock = threading.Lock()\n"
        "box = Box()",
        "box.rows.append(3)",
        "len(box.rows)",
        "box.lock (_thread.lock)"),
}


@pytest.mark.parametrize("case", list(HOLDERS))
def test_a_container_with_an_unpicklable_part_is_fingerprinted_by_the_rest(
        nb: Notebook, case: str) -> None:
    setup, edit, expression, named = HOLDERS[case]
    nb.kernel.ok(setup)
    first = nb.step("read", expression)
    assert "UnfingerprintableWarning" in first.stderr and named in first.stderr
    nb.kernel.ok(edit)  # same objects, new content: an identity key would miss it
    nb.step("read", expression)
    assert nb.runs("read") == 2

    nb.restart()
    nb.kernel.ok(setup)  # a new unpicklable part of the same type: the first record replays
    nb.step("read", expression)
    assert nb.runs("read") == 2


@pytest.mark.parametrize(("setup", "name", "type_name"), [
    ("import sqlite3\nconn = sqlite3.connect(':memory:')", "conn", "sqlite3.Connection"),
    ("import threading\nguard = threading.Lock()", "guard", "_thread.lock"),
])
def test_a_value_that_cannot_be_fingerprinted_is_named_and_keyed_by_its_type(
        nb: Notebook, setup: str, name: str, type_name: str) -> None:
    nb.kernel.ok(setup)
    first = nb.step("uses", f"type({name}).__name__")
    assert f"input {name!r} ({type_name}) cannot be fingerprinted" in first.stderr
    nb.restart()
    nb.kernel.ok(setup)
    nb.step("uses", f"type({name}).__name__")
    assert nb.runs("uses") == 1  # replayed after the restart, as any step whose inputs match


# --- caches that only displaying or reading fills ----------------------------------------------

SERIES = ("import numpy as np, pandas as pd\n"
          "days = pd.date_range('2024-01-01', periods=100, freq='D').tolist()\n"
          "ts = pd.Series(np.arange(100.0), index=pd.DatetimeIndex(days))")
FRAME = ("import numpy as np, pandas as pd\n"
         "df = pd.DataFrame({'v': np.arange(96.0), 'kind': pd.Categorical(list('ab') * 48)},\n"
         "                  index=pd.date_range('2024-01-01', periods=96, freq='h'))")
MULTI = ("import pandas as pd\n"
         "mi = pd.DataFrame({'v': range(6)},\n"
         "                  index=pd.MultiIndex.from_product([pd.date_range('2024', periods=2),"
         " [1, 2, 3]]))")

SHORT = ("import numpy as np, pandas as pd\n"
         "days = pd.date_range('2024-01-01', periods=20, freq='D').tolist()\n"
         "ts = pd.Series(np.arange(20.0), index=pd.DatetimeIndex(days))")

#: (setup, reads that fill pandas' caches, expression of the step, a real change).
CACHES = {
    "series displayed whole": (SHORT, ["ts"], "float(ts.sum())", "ts.iloc[0] = 5.0"),
    "series shown": (SERIES, ["ts", "ts.loc[ts.index[3]]", "ts.index.year"],
                     "float(ts.sum())", "ts.iloc[0] = 5.0"),
    "frame shown": (FRAME, ["df", "df.loc['2024-01-02']", "df.groupby('kind', observed=True).sum()",
                            "df['kind'].value_counts()"],
                    "float(df['v'].mean())", "df.loc[df.index[0], 'v'] = 100.0"),
    "multiindex read": (MULTI, ["mi", "mi.loc[mi.index[0]]", "mi.index.is_monotonic_increasing"],
                        "int(mi['v'].sum())", "mi.iloc[0, 0] = 10"),
}


@pytest.mark.parametrize("case", list(CACHES))
def test_displaying_pandas_values_reruns_nothing(nb: Notebook, case: str) -> None:
    setup, reads, expression, change = CACHES[case]
    nb.kernel.ok(setup)
    nb.step("agg", expression)
    for read in reads:
        nb.kernel.ok(read)
    nb.step("agg", expression)
    assert nb.runs("agg") == 1

    nb.restart()
    nb.kernel.ok(setup)
    for read in reads:  # a restarted notebook displays before the step, this time
        nb.kernel.ok(read)
    nb.step("agg", expression)
    assert nb.runs("agg") == 1
    nb.kernel.ok(change)
    nb.step("agg", expression)
    assert nb.runs("agg") == 2
