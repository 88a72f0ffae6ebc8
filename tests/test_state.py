"""State is observed, not guessed (DESIGN.md §4.10, §4.1, §4.3): checked against a plain run.

Each test is a small notebook. :func:`oracle.check` runs it plain, then durable, then durable
again after a real kernel restart (every durable cell replays), and requires the namespace (the
probes) and each cell's stdout and value to equal the plain run's every time. Counters in the
steps that change state prove the replay did not simply run them again.

Kinds (issue 7, items 1, 2 and 8): a change a step makes in place must be one of its outputs
whatever makes it (a notebook function, a library call, a method no list knows, a write through
a view or an alias); objects that share parts are restored sharing them; a replayed
``import a.b`` leaves ``a.b`` importable and bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from kernel import Kernel
from nbformat.v4 import new_code_cell, new_notebook
from oracle import check

pytestmark = pytest.mark.kernel

Counter = Callable[[str], str]
Start = Callable[..., Kernel]


# 1. A change in place is an output, whoever makes it ---------------------------------------------
@dataclass(frozen=True)
class InPlace:
    """A value made by one step and changed in place by the next (a read step follows)."""

    setup: str
    """A plain cell: imports and notebook definitions."""
    make: str
    change: str
    probe: str
    """An expression (with a literal repr) that shows the change."""


def in_place_cells(case: InPlace, counter: Counter) -> list[str]:
    return [
        case.setup,
        f"%%durable make\n{counter('make')}\n{case.make}",
        f"%%durable change\n{counter('change')}\n{case.change}",
        f"%%durable read\n{counter('read')}\nseen = {case.probe}\nprint(seen)",
    ]


NOTEBOOK_FUNCTIONS = {
    "append-in-helper": InPlace(
        "def add_item(lst, x):\n    lst.append(x)",
        "data = [1, 2, 3]", "add_item(data, 4)", "list(data)"),
    "dataframe-cleaned-by-helper": InPlace(
        "import pandas as pd\n"
        "def clean(df):\n    df.dropna(inplace=True)\n    df['c'] = df['a'] * 2",
        "frame = pd.DataFrame({'a': [1.0, None, 3.0], 'b': [4, 5, 6]})", "clean(frame)",
        "(frame.index.tolist(), list(frame.columns), frame['c'].tolist())"),
    "array-shuffled-by-helper": InPlace(
        "import numpy as np\n"
        "def scramble(a):\n    np.random.default_rng(0).shuffle(a)",
        "arr = np.arange(8)", "scramble(arr)", "arr.tolist()"),
    "nested-registry-helper": InPlace(
        "def register(reg, key, item):\n    reg.setdefault(key, []).append(item)",
        "registry = {}", "register(registry, 'models', 'lr')", "registry"),
    "bytearray-grown-by-lambda": InPlace(
        "grow = lambda buf: buf.extend(b'!!')",
        "buf = bytearray(b'hi')", "grow(buf)", "bytes(buf)"),
    "one-element-of-a-large-array": InPlace(  # observed by content, not guessed from a sample
        "import numpy as np\ndef poke(a):\n    a[1_234_567] = 1.0",
        "big = np.zeros(4_000_000)", "poke(big)", "(float(big.sum()), int(big.argmax()))"),
}

LIBRARY_CALLS = {
    "bisect-insort": InPlace("import bisect", "xs = [1, 3, 5]", "bisect.insort(xs, 4)", "xs"),
    "heappush-through-alias": InPlace(
        "from heapq import heappush as push", "heap = [5, 7]", "push(heap, 1)", "heap"),
    "numpy-ufunc-at": InPlace(
        "import numpy as np", "counts = np.zeros(4, dtype=int)",
        "np.add.at(counts, [0, 0, 2], 1)", "counts.tolist()"),
    "numpy-put-along-axis": InPlace(
        "import numpy as np", "arr = np.arange(5)",
        "np.put_along_axis(arr, np.array([1, 3]), 9, axis=0)", "arr.tolist()"),
    "unbound-method-call": InPlace(
        "import numpy as np", "arr = np.array([3, 1, 2])", "np.ndarray.sort(arr)",
        "arr.tolist()"),
    "map-of-bound-append": InPlace(
        "", "out = []", "_ = list(map(out.append, range(3)))", "out"),
    "pandas-inplace-from-a-variable": InPlace(
        "import pandas as pd\nIN_PLACE = True",
        "frame = pd.DataFrame({'a': [1.0, None, 3.0]})", "frame.dropna(inplace=IN_PLACE)",
        "frame.index.tolist()"),
    "operator-setitem": InPlace(
        "import operator", "table = {'a': 1}", "operator.setitem(table, 'b', 2)", "table"),
}

UNKNOWN_METHODS = {
    "counter-subtract": InPlace(
        "from collections import Counter", "tally = Counter(a=3, b=1)", "tally.subtract(a=2)",
        "dict(tally)"),
    "ordereddict-move-to-end": InPlace(
        "from collections import OrderedDict", "od = OrderedDict(a=1, b=2, c=3)",
        "od.move_to_end('a')", "list(od)"),
    "array-fromlist": InPlace(
        "import array", "ints = array.array('i', [1])", "ints.fromlist([2, 3])", "ints.tolist()"),
    "dunder-setitem": InPlace("", "d = {'k': 1}", "d.__setitem__('k', 2)", "d"),
    "dunder-iadd": InPlace("", "lst = [1, 2]", "_ = lst.__iadd__([3])", "lst"),
    "random-state-advanced-by-a-draw": InPlace(
        "import random", "r = random.Random(1)", "draw = r.random()",
        "r.getstate()[1][-1]"),  # the generator's position in its state
    "numpy-generator-advanced": InPlace(
        "import numpy as np", "g = np.random.default_rng(0)", "noise = g.normal(size=3)",
        "g.bit_generator.state['state']['state']"),
    "method-of-a-notebook-class": InPlace(
        "class Acc:\n    def __init__(self):\n        self.n = 0\n"
        "    def bump(self):\n        self.n += 1",
        "acc = Acc()", "acc.bump()", "acc.n"),
}


@pytest.mark.parametrize("case", NOTEBOOK_FUNCTIONS.values(), ids=NOTEBOOK_FUNCTIONS)
def test_a_notebook_function_changing_its_argument_changes_the_step_output(
        case: InPlace, start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    check(start_kernel, tmp_path, in_place_cells(case, counter), [case.probe, "seen"])


@pytest.mark.parametrize("case", LIBRARY_CALLS.values(), ids=LIBRARY_CALLS)
def test_a_library_call_changing_its_argument_changes_the_step_output(
        case: InPlace, start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    check(start_kernel, tmp_path, in_place_cells(case, counter), [case.probe, "seen"])


@pytest.mark.parametrize("case", UNKNOWN_METHODS.values(), ids=UNKNOWN_METHODS)
def test_a_method_no_list_knows_changes_the_step_output(
        case: InPlace, start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    check(start_kernel, tmp_path, in_place_cells(case, counter), [case.probe, "seen"])


def test_the_issue_notebook_restores_the_appended_item(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # Issue 7 item 1, verbatim: after Run All replays, `data` lost the 4 that `snap` holds.
    cells = [
        "def add_item(lst, x): lst.append(x)",
        f"%%durable mk\n{counter('mk')}\ndata = [1, 2, 3]",
        f"%%durable add\n{counter('add')}\nadd_item(data, 4)",
        f"%%durable use\n{counter('use')}\nsnap = list(data)",
    ]
    report = check(start_kernel, tmp_path, cells, ["data", "snap", "data == snap"])
    assert report.expected == {"data": [1, 2, 3, 4], "snap": [1, 2, 3, 4], "data == snap": True}


def test_a_write_through_a_view_changes_the_base_array(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # The later `print(a)` is an identical twin of the earlier one: it must not replay its output.
    cells = [
        "import numpy as np",
        f"%%durable s1\n{counter('s1')}\na = np.arange(5)\nv = a[:2]",
        "%%durable before\nprint(a)",
        f"%%durable s2\n{counter('s2')}\nv[0] = 9",
        "%%durable after\nprint(a)",
    ]
    check(start_kernel, tmp_path, cells,
          ["a.tolist()", "v.tolist()", "bool(np.shares_memory(a, v))"])


def test_an_augmented_write_through_a_later_view_changes_the_base_array(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        "import numpy as np",
        f"%%durable base\n{counter('base')}\ngrid = np.arange(6).reshape(2, 3)",
        f"%%durable row\n{counter('row')}\nrow = grid[0]",
        f"%%durable bump\n{counter('bump')}\nrow += 10",
        f"%%durable total\n{counter('total')}\ntotal = int(grid.sum())\nprint(total)",
    ]
    check(start_kernel, tmp_path, cells,
          ["grid.tolist()", "row.tolist()", "total", "bool(np.shares_memory(grid, row))"])


def test_a_change_through_an_alias_from_an_earlier_step_changes_the_original(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable one\n{counter('one')}\na = [1]\nb = a",
        f"%%durable two\n{counter('two')}\nb.append(2)",
        f"%%durable three\n{counter('three')}\nn = len(a)\nprint(n, a)",
    ]
    check(start_kernel, tmp_path, cells, ["a", "b", "n", "a is b"])


def test_a_change_through_an_alias_bound_in_a_later_step_changes_the_original(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable config\n{counter('config')}\ncfg = {{'lr': 0.1}}",
        f"%%durable alias\n{counter('alias')}\nopts = cfg",
        f"%%durable tune\n{counter('tune')}\nopts['lr'] = 0.5",
        f"%%durable train\n{counter('train')}\nlr = cfg['lr']\nprint('lr', lr)",
    ]
    check(start_kernel, tmp_path, cells, ["cfg", "opts", "lr", "opts is cfg"])


def test_a_plain_cell_changing_an_alias_of_a_step_output_is_seen_by_the_next_step(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # The plain cell touches `b` only; the identical later step reads `a` (the same list) and
    # must not replay the record of its earlier twin.
    cells = [
        f"%%durable base\n{counter('base')}\na = [1, 2]\nb = a",
        "%%durable early\nprint(sum(a))",
        "b.append(3)",
        "%%durable late\nprint(sum(a))",
    ]
    check(start_kernel, tmp_path, cells, ["a", "b", "a is b"])


def test_a_plain_cell_changing_a_container_of_a_step_output_is_seen_by_the_next_step(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable base\n{counter('base')}\nrows = []\ntable = {{'rows': rows}}",
        "%%durable early\nprint(len(rows))",
        "table['rows'].append('r1')",
        "%%durable late\nprint(len(rows))",
    ]
    check(start_kernel, tmp_path, cells, ["rows", "table", "table['rows'] is rows"])


def test_a_change_through_a_container_reaches_a_name_the_step_never_mentions(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable hold\n{counter('hold')}\nitems = [1]\nholder = {{'items': items}}",
        f"%%durable grow\n{counter('grow')}\nholder['items'].append(2)",
        f"%%durable count\n{counter('count')}\nn = len(items)\nprint(n)",
    ]
    check(start_kernel, tmp_path, cells, ["items", "holder", "holder['items'] is items", "n"])


# 2. Objects that share parts are restored sharing them ----------------------------------------
def test_two_names_for_one_object_stay_one_object(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable pair\n{counter('pair')}\na = [1]\nb = a",
        "a.append(2)",
    ]
    check(start_kernel, tmp_path, cells, ["a is b", "b"])


def test_an_object_held_by_a_later_step_output_stays_shared(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable model\n{counter('model')}\nmodel = {{'w': 1}}",
        f"%%durable pipe\n{counter('pipe')}\npipe = {{'model': model, 'steps': ['scale']}}",
        "model['w'] = 2",
    ]
    check(start_kernel, tmp_path, cells, ["pipe['model'] is model", "pipe['model']['w']"])


def test_a_shared_object_changed_and_rebound_later_stays_what_the_holder_holds(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # `pipe` holds the object `model` named when `pipe` was made, changes included, not
    # whatever `model` names now.
    cells = [
        f"%%durable model\n{counter('model')}\nmodel = {{'w': 1}}",
        f"%%durable pipe\n{counter('pipe')}\npipe = {{'model': model}}",
        f"%%durable fit\n{counter('fit')}\nmodel['w'] = 2",
        f"%%durable swap\n{counter('swap')}\nold = model\nmodel = {{'w': 3}}",
        "%%durable show\nprint(pipe['model']['w'], model['w'])",
    ]
    check(start_kernel, tmp_path, cells,
          ["pipe['model'] is old", "pipe['model']['w']", "model['w']", "pipe['model'] is model"])


def test_an_array_and_its_view_share_memory(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        "import numpy as np",
        f"%%durable arrays\n{counter('arrays')}\na = np.zeros(4)\nv = a[1:3]",
        "v[0] = 7",
    ]
    check(start_kernel, tmp_path, cells,
          ["bool(np.shares_memory(a, v))", "a.tolist()"])


def test_a_view_made_in_a_later_step_shares_memory_with_its_base(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        "import numpy as np",
        f"%%durable base\n{counter('base')}\nbase = np.arange(6.0)",
        f"%%durable evens\n{counter('evens')}\nevens = base[::2]",
        "evens[:] = 0",
    ]
    check(start_kernel, tmp_path, cells,
          ["bool(np.shares_memory(base, evens))", "base.tolist()"])


def test_two_views_made_in_separate_steps_share_one_base(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        "import numpy as np",
        f"%%durable base\n{counter('base')}\nseq = np.arange(10)",
        f"%%durable low\n{counter('low')}\nlow = seq[:5]",
        f"%%durable high\n{counter('high')}\nhigh = seq[5:]",
        "low[:] = 0\nhigh[:] = 1",
    ]
    check(start_kernel, tmp_path, cells,
          ["seq.tolist()", "bool(np.shares_memory(seq, low))", "bool(np.shares_memory(seq, high))"])


def test_an_object_held_by_two_containers_stays_one_object(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        "import pandas as pd",
        f"%%durable load\n{counter('load')}\nshared = [0]\nleft = {{'s': shared}}\n"
        "df = pd.DataFrame({'x': [1, 2]})\nframes = {'raw': df}",
        f"%%durable pair\n{counter('pair')}\nright = (shared, 1)",
        "shared.append(1)",
    ]
    check(start_kernel, tmp_path, cells,
          ["left['s'] is right[0]", "right[0] is shared", "left['s']", "frames['raw'] is df"])


def test_a_reference_cycle_across_names_is_restored_as_a_cycle(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable graph\n{counter('graph')}\nnode = {{'name': 'n'}}\nnode['self'] = node\n"
        "x = []\ny = [x]\nx.append(y)",
    ]
    check(start_kernel, tmp_path, cells,
          ["node['self'] is node", "x[0] is y", "y[0] is x"])


# 3. A replayed import leaves the module importable and bound --------------------------------
@dataclass(frozen=True)
class Import:
    statement: str
    use: str
    module: str


IMPORTS = {
    "xml.dom.minidom": Import(
        "import xml.dom.minidom",
        "xml.dom.minidom.parseString('<a/>').documentElement.tagName", "xml.dom.minidom"),
    "urllib.request": Import(
        "import urllib.request", "urllib.request.Request('http://example.org/x').host",
        "urllib.request"),
    "email.mime.text": Import(
        "import email.mime.text", "email.mime.text.MIMEText('hi').get_content_type()",
        "email.mime.text"),
}


@pytest.mark.parametrize("case", IMPORTS.values(), ids=IMPORTS)
def test_a_replayed_dotted_import_leaves_the_submodule_usable(
        case: Import, start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    cells = [
        f"%%durable imports\n{counter('imports')}\n{case.statement}",
        f"used = {case.use}",  # a plain cell, as a later notebook cell would use it
    ]
    check(start_kernel, tmp_path, cells,
          [case.use, "used", f"{case.module!r} in __import__('sys').modules"], fresh=True)


def test_every_import_form_survives_a_replay(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # One step per form; the aliased and from-imports bind the submodule itself, the plain
    # dotted form binds only the package and must still reach the submodule.
    cells = [
        f"%%durable alias\n{counter('alias')}\nimport os.path as osp",
        f"%%durable frm\n{counter('frm')}\nfrom xml.dom import minidom",
        f"%%durable dotted\n{counter('dotted')}\nimport xml.sax.saxutils",
        f"%%durable two\n{counter('two')}\nimport json.tool, html.parser",
        "%%durable later\nescaped = xml.sax.saxutils.escape('<b>')\nprint(escaped)",
    ]
    check(start_kernel, tmp_path, cells, [
        "osp.join('a', 'b')",
        "minidom.parseString('<r/>').documentElement.tagName",
        "xml.sax.saxutils.escape('a&b')",
        "json.tool.__name__",
        "html.parser.HTMLParser.__name__",
        "sorted(m for m in ('xml.dom.minidom', 'xml.sax.saxutils', 'json.tool', 'html.parser')"
        " if m in __import__('sys').modules)",
    ])


def test_an_import_inside_a_block_or_a_function_survives_a_replay(
        start_kernel: Start, tmp_path: Path, counter: Counter) -> None:
    # Not every import is a top-level statement: a guarded import binds the package, and an
    # import made by a function the step calls only fills sys.modules (and the package's
    # attribute), which a plain run's later cells can rely on.
    cells = [
        f"%%durable guarded\n{counter('guarded')}\n"
        "try:\n    import http.cookies\nexcept ImportError:\n    http = None",
        f"%%durable helper\n{counter('helper')}\nimport multiprocessing\n"
        "def _load():\n    import multiprocessing.pool\n_load()",
        "jar = http.cookies.SimpleCookie('a=1')['a'].value\n"
        "pool_name = multiprocessing.pool.Pool.__name__",
    ]
    check(start_kernel, tmp_path, cells, [
        "jar", "pool_name",
        "sorted(m for m in ('http.cookies', 'multiprocessing.pool')"
        " if m in __import__('sys').modules)",
    ])


def test_kitteh_magic_run_keeps_a_replayed_import_usable_after_a_kernel_death(
        tmp_path: Path, key_file: Path) -> None:
    # Under `kitteh-magic run` every cell is a step; after the kernel dies the first cell
    # replays, and the cells after it must still find `xml.dom.minidom`.
    flag = tmp_path / "died-once"
    nb = new_notebook(cells=[new_code_cell(c) for c in [
        "import xml.dom.minidom",
        "import os, signal, pathlib\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "if not flag.exists():\n    flag.touch()\n    os.kill(os.getpid(), signal.SIGKILL)",
        "tag = xml.dom.minidom.parseString('<doc/>').documentElement.tagName\nprint(tag)",
    ]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "imports.ipynb")
    result = subprocess.run(
        [sys.executable, "-m", "kitteh_magic.cli", "run", str(tmp_path / "imports.ipynb"),
         "-o", str(tmp_path / "out.ipynb"), "--max-restarts", "2", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KITTEH_MAGIC_KEY_FILE": str(key_file), "KITTEH_MAGIC_DIR": ""})
    assert "1 kernel restart," in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "doc" in out.cells[-1].outputs[-1].get("text", "")
