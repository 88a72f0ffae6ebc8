"""Mutations: which names a call changes in place, read from the AST.

``x.append(v)``, ``df.drop(c, inplace=True)``, ``random.shuffle(x)`` and ``np.add(a, 1, out=a)``
change a value without rebinding its name; the step must still save it as an output. A change
of an attribute or subscript chain counts as a change of its base name: ``x.a[k].append(v)``
mutates ``x``. A false positive only saves one more output; a miss would replay a stale value,
so the lists below are generous. Extend them here.

Pure: AST in, names out.

>>> import ast
>>> sorted(mutated_by(ast.parse("shuffle(deck.cards, out=buf[0])").body[0].value))
['buf', 'deck']
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Final

#: Methods that change their receiver in place: builtin containers, numpy arrays, pandas objects
#: and model-style objects (scikit-learn, PyTorch). Names ending in ``_update``
#: (``difference_update``...) count too.
MUTATING_METHODS: Final[frozenset[str]] = frozenset(
    {
        # list, dict, set, deque, bytearray
        "append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem",
        "remove", "clear", "sort", "reverse", "rotate", "update", "setdefault", "add", "discard",
        # numpy ndarray
        "fill", "resize", "put", "itemset", "setflags", "byteswap", "partition",
        # models: scikit-learn, PyTorch, random generators seeded in place
        "fit", "partial_fit", "fit_transform", "fit_predict", "set_params", "load_state_dict",
        "train", "seed",
    }
)  # fmt: skip

#: Functions that mutate their first argument: ``random.shuffle(x)``, ``np.fill_diagonal(a, 0)``.
#: Matched on the last name of the callee (``np.random.shuffle`` is ``shuffle``).
ARG_MUTATING_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        "shuffle", "heappush", "heappop", "heapify", "heappushpop", "heapreplace",
        "fill_diagonal", "copyto", "place", "putmask", "setattr", "delattr",
    }
)  # fmt: skip

#: Any method call with this keyword set to ``True`` mutates its receiver (pandas ``inplace``).
INPLACE_KEYWORD: Final = "inplace"

#: Any call writes into the array passed with this keyword (numpy ufuncs: ``np.add(a, 1, out=a)``).
OUT_KEYWORD: Final = "out"


def base_name(node: ast.expr) -> str | None:
    """The name at the root of an attribute/subscript chain: ``x.a[k].b`` gives ``x``."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def mutated_by(call: ast.Call) -> Iterator[str]:
    """Base names a call changes in place: its receiver, first argument or ``out=`` array.

    Only the call itself; its arguments and callee are not searched for further calls.
    """
    func = call.func
    if isinstance(func, ast.Attribute) and (
        func.attr in MUTATING_METHODS
        or func.attr.endswith("_update")
        or any(
            kw.arg == INPLACE_KEYWORD
            and isinstance(kw.value, ast.Constant)
            and kw.value.value is True
            for kw in call.keywords
        )
    ):
        yield from _named(func.value)
    if call.args and _callee_last_name(func) in ARG_MUTATING_FUNCTIONS:
        yield from _named(call.args[0])
    for keyword in call.keywords:
        if keyword.arg == OUT_KEYWORD:
            yield from _named(keyword.value)


def _named(node: ast.expr) -> Iterator[str]:
    base = base_name(node)
    if base is not None:
        yield base


def _callee_last_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None
