"""Facts about cells: reads, binds, deletes, mutations, calls, awaits, normalised code."""

from __future__ import annotations

import ast
import textwrap

import pytest

from kitteh_magic.steps.analysis import (
    CellAnalysis,
    analyse,
    parse,
    referenced_names,
    split_last_expr,
)


def facts(source: str) -> CellAnalysis:
    return analyse(parse(textwrap.dedent(source)))


def normalized(source: str) -> str:
    return facts(source).normalized


# --- normalised code ------------------------------------------------------------------------


def test_whitespace_and_comment_edits_keep_the_normalised_code() -> None:
    original = "x = f(a, b)  # call\nif x:\n    y = [1, 2]\n"
    edited = "# a new comment\nx = f( a,b )\n\nif x:  # why\n        y = [1,\n   2]\n"
    assert normalized(original) == normalized(edited)


@pytest.mark.parametrize(
    "edited",
    [
        "x = f(a, c)\n",  # another name
        "x = f(b, a)\n",  # argument order
        "x = f(a, b, 1)\n",  # another argument
        "x = f(a, b) + 0\n",  # an expression around it
        "y = f(a, b)\n",  # another target
        'x = f(a, b)\n"""doc"""\n',  # a string statement
    ],
)
def test_semantic_edits_change_the_normalised_code(edited: str) -> None:
    assert normalized("x = f(a, b)\n") != normalized(edited)


def test_docstrings_and_constants_count() -> None:
    assert normalized('def f():\n    "one"\n') != normalized('def f():\n    "two"\n')
    assert normalized("x = 1\n") != normalized("x = 1.0\n")


# --- reads and binds ------------------------------------------------------------------------

CASES = [
    # (source, reads, binds)
    ("x = 1\ny = x", set(), {"x", "y"}),
    ("y = x\nx = 1", {"x"}, {"x", "y"}),
    ("x = x + 1", {"x"}, {"x"}),
    ("a, (b, *c) = data", {"data"}, {"a", "b", "c"}),
    ("x += 1", {"x"}, {"x"}),
    ("x = 0\nx += 1", set(), {"x"}),
    ("if (n := len(data)) > 3: print(n)", {"len", "data", "print"}, {"n"}),
    ("total = sum([y := v for v in values])", {"sum", "values"}, {"total", "y"}),
    ("for i in range(n): acc = acc + i", {"range", "n", "acc"}, {"i", "acc"}),
    ("for i in items:\n    j = i\n    k = j", {"items"}, {"i", "j", "k"}),
    (
        "with open(p) as fh:\n    text = fh.read()\nprint(text)",
        {"open", "p", "print"},
        {"fh", "text"},
    ),
    ("import numpy as np, os.path\nfrom a.b import c, d as e", set(), {"np", "os", "c", "e"}),
    ("from m import *", set(), set()),
    ("def f(x, *a, k=default, **kw):\n    return x + g + a + k + kw", {"default", "g"}, {"f"}),
    ("def f():\n    return later\nlater = 1", {"later"}, {"f", "later"}),
    ("later = 1\ndef f():\n    return later", set(), {"f", "later"}),
    ("def f():\n    v = 1\n    return v", set(), {"f"}),
    ("def f():\n    return helper()\ndef helper():\n    return 1", {"helper"}, {"f", "helper"}),
    ("@decorate\ndef f(x: Ann) -> Ret:\n    pass", {"decorate", "Ann", "Ret"}, {"f"}),
    (
        "def outer():\n    y = 1\n    def inner():\n        return y + z\n    return inner",
        {"z"},
        {"outer"},
    ),
    (
        "def outer():\n    y = 1\n    def inner():\n        global y\n        return y\n",
        {"y"},
        {"outer"},
    ),
    ("f = lambda v, w=w0: v + w + scale", {"w0", "scale"}, {"f"}),
    ("squares = [i * i for i in range(k) if i > lo]", {"range", "k", "lo"}, {"squares"}),
    ("m = {k: v for k, v in pairs}", {"pairs"}, {"m"}),
    ("g = (x for row in rows for x in row)", {"rows"}, {"g"}),
    (
        "class C(Base, metaclass=Meta):\n    a = 1\n    b = a + outside\n"
        "    def m(self):\n        return a",
        {"Base", "Meta", "outside", "a"},
        {"C"},
    ),
    (
        "try:\n    import fast as impl\nexcept ImportError:\n    import slow as impl\nimpl.go()",
        {"ImportError"},
        {"impl"},
    ),
    (
        "try:\n    v = f()\nexcept E as err:\n    print(err)\nprint(v)",
        {"f", "E", "print", "v"},
        {"v", "err"},
    ),
    ("if c:\n    v = 1\nelse:\n    v = 2\nprint(v)", {"c", "print"}, {"v"}),
    ("if c:\n    v = 1\nprint(v)", {"c", "print", "v"}, {"v"}),
    ("while c:\n    v = 1\nprint(v)", {"c", "print", "v"}, {"v"}),
    ("x = 1\ndel x\nprint(x)", {"print", "x"}, {"x"}),
    (
        "match cmd:\n    case [op, *rest]:\n        r = op\n    case {'k': kv, **others}:\n"
        "        r = kv\n    case Point(x=px) as pt:\n        r = pt\n"
        "    case _:\n        r = None\nprint(r)",
        {"cmd", "Point", "print"},
        {"op", "rest", "kv", "others", "px", "pt", "r"},
    ),
    ("match cmd:\n    case 1:\n        r = 1\nprint(r)", {"cmd", "print", "r"}, {"r"}),
    ("x: int = 5\ny: Later", {"int", "Later"}, {"x"}),
    ("__name__ == '__main__'", {"__name__"}, set()),
]


@pytest.mark.parametrize(("source", "reads", "binds"), CASES)
def test_reads_and_binds(source: str, reads: set[str], binds: set[str]) -> None:
    result = facts(source)
    assert result.reads == reads
    assert result.binds == binds


def test_comprehension_variables_do_not_leak() -> None:
    result = facts("out = [i for i in range(3)]\nprint(i)")
    assert "i" not in result.binds
    assert "i" in result.reads  # the print reads a namespace i, not the comprehension's


def test_global_declarations_are_global_writes_not_binds() -> None:
    result = facts("def bump():\n    global counter, other\n    counter += 1\n")
    assert result.global_writes == {"counter", "other"}
    assert result.binds == {"bump"}
    assert result.reads == {"counter"}


def test_nonlocal_stays_in_the_enclosing_function() -> None:
    source = "def outer():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n"
    result = facts(source)
    assert result.reads == set()
    assert result.global_writes == set()


def test_deletes() -> None:
    result = facts("del a, b\ndel c[0], d.attr")
    assert result.deletes == {"a", "b"}
    assert result.mutates == {"c", "d"}


def test_except_name_is_not_a_sure_binding_afterwards() -> None:
    assert "err" in facts("try:\n    pass\nexcept E as err:\n    pass\nprint(err)").reads


# --- mutations and calls --------------------------------------------------------------------

MUTATIONS = [
    ("x[0] = 1", {"x"}),
    ("x.attr = 1", {"x"}),
    ("x.a.b[k] += 1", {"x"}),
    ("del x[k]", {"x"}),
    ("del x.a", {"x"}),
    ("lst.append(1)", {"lst"}),
    ("obj.items[0].extend(more)", {"obj"}),
    ("s.difference_update(t)", {"s"}),
    ("d.setdefault('k', [])", {"d"}),
    ("arr.fill(0)", {"arr"}),
    ("df.drop(columns=['a'], inplace=True)", {"df"}),
    ("df['a'].fillna(0, inplace=True)", {"df"}),
    ("df.drop(columns=['a'], inplace=False)", set()),
    ("df2 = df.drop(columns=['a'])", set()),
    ("model.fit(X, y)", {"model"}),
    ("net.load_state_dict(state)", {"net"}),
    ("random.shuffle(deck)", {"deck"}),
    ("heapq.heappush(heap, 3)", {"heap"}),
    ("np.multiply(a, 2, out=b)", {"b"}),
    ("print(x.append)", set()),
    ("y = x.copy()", set()),
    ("def f():\n    cache[k] = 1\n    log.append(k)", {"cache", "log"}),
    ("def f():\n    local = []\n    local.append(1)", set()),
    ("class C:\n    items = []\n    items.append(1)\n    registry.add(1)", {"registry"}),
]


@pytest.mark.parametrize(("source", "mutates"), MUTATIONS)
def test_mutations(source: str, mutates: set[str]) -> None:
    assert facts(source).mutates == mutates


def test_mutations_of_names_bound_in_the_cell_are_kept() -> None:
    # The engine intersects with the namespace; the analysis reports every base name.
    result = facts("xs = []\nxs.append(1)")
    assert result.mutates == {"xs"}
    assert result.reads == set()


def test_calls() -> None:
    source = """
        import math
        @register
        def f(v):
            return helper(v) + math.sqrt(v) + v.m()
        obj.method(1)
        f(2)[0].g()
        make()()
    """
    assert facts(source).calls == {"register", "helper", "math", "obj", "f", "make"}


# --- awaits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("await sleep(1)", True),
        ("async for x in stream():\n    pass", True),
        ("async with lock:\n    pass", True),
        ("v = [x async for x in stream()]", True),
        ("v = [await x for x in xs]", True),
        ("async def f():\n    await sleep(1)", False),
        ("g = (await x for x in xs)", False),
        ("x = 1", False),
    ],
)
def test_has_await(source: str, expected: bool) -> None:
    assert facts(source).has_await is expected


# --- splitting the last expression ----------------------------------------------------------


def test_split_last_expr_evaluates_the_last_expression() -> None:
    tree = parse("x = 20\nx + 22")
    before = ast.dump(tree, include_attributes=True)
    module, last = split_last_expr(tree)
    assert last is not None
    namespace: dict[str, object] = {}
    exec(compile(module, "<cell>", "exec"), namespace)
    assert eval(compile(last, "<cell>", "eval"), namespace) == 42
    assert len(module.body) == 1
    assert ast.dump(tree, include_attributes=True) == before  # the input is untouched
    assert last.body is not tree.body[-1].value  # type: ignore[attr-defined]


@pytest.mark.parametrize("source", ["x = 1", "", "for i in []:\n    i", "x = 1\ndel x"])
def test_split_last_expr_without_a_final_expression(source: str) -> None:
    tree = parse(source)
    module, last = split_last_expr(tree)
    assert last is None
    assert len(module.body) == len(tree.body)
    exec(compile(module, "<cell>", "exec"), {})


def test_split_last_expr_of_a_lone_expression() -> None:
    module, last = split_last_expr(parse("'hello'"))
    assert module.body == []
    assert last is not None
    assert eval(compile(last, "<cell>", "eval")) == "hello"


# --- referenced names -----------------------------------------------------------------------


def test_referenced_names_cover_every_way_to_touch_a_name() -> None:
    source = """
        import numpy as np, os.path
        from m import a as b
        def f(arg):
            global g
            g = inner + arg
        class K:
            pass
        try:
            pass
        except E as err:
            pass
        match v:
            case [c, *rest]:
                pass
            case {**others}:
                pass
        data.x[0] = 1
    """
    names = referenced_names(parse(textwrap.dedent(source)))
    expected = {"np", "os", "b", "f", "g", "inner", "arg", "K", "E", "err", "v", "c", "rest",
                "others", "data"}  # fmt: skip
    assert expected <= names
    assert "a" not in names  # `from m import a as b` binds b only
    assert "m" not in names


def test_parse_rejects_invalid_code() -> None:
    with pytest.raises(SyntaxError):
        parse("x = = 1")
