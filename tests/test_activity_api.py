"""km.activity / km.inline / km.effect: marks that leave calls outside durable cells unchanged."""

from __future__ import annotations

import ast
import functools
import math
import pickle
from pathlib import Path
from typing import Any

import pytest

import kitteh_magic.activities as km
from kitteh_magic.activities import RetryPolicy, classify
from kitteh_magic.activities.api import Mark, Marked, mark_of


def test_bare_decorator_marks_and_returns_the_same_function() -> None:
    def fetch(url: str) -> str:
        """Fetch it."""
        return url.upper()

    marked = km.activity(fetch)
    assert marked is fetch
    assert fetch("a") == "A"
    assert mark_of(fetch) == Mark("activity", RetryPolicy(), None)


def test_decorator_with_arguments_carries_the_policy() -> None:
    @km.activity(retries=3, backoff=2.0, timeout=30, retry_on=(IOError,), name="api.fetch")
    def fetch() -> int:
        return 1

    mark = mark_of(fetch)
    assert mark is not None
    assert mark.policy == RetryPolicy(3, 2.0, 30, (OSError,))
    assert mark.name == "api.fetch"
    assert fetch() == 1
    assert classify(fetch).callee == "api.fetch"


def test_inline_and_effect_marks() -> None:
    @km.inline
    def helper() -> int:
        return 2

    @km.effect
    def send() -> str:
        return "sent"

    @km.inline()
    def other() -> int:
        return 3

    assert mark_of(helper) == Mark("inline", None, None)
    assert mark_of(other) == Mark("inline", None, None)
    effect = mark_of(send)
    assert effect is not None and effect.kind == "effect"
    assert (helper(), send(), other()) == (2, "sent", 3)


def test_async_functions_stay_coroutine_functions() -> None:
    import asyncio
    import inspect

    @km.activity(retries=1)
    async def get() -> int:
        return 5

    assert inspect.iscoroutinefunction(get)
    assert asyncio.run(get()) == 5


class Model:
    def __init__(self) -> None:
        self.fitted: list[int] = []

    def fit(self, x: int) -> Model:
        """Fit the model."""
        self.fitted.append(x)
        return self


def test_a_bound_method_is_wrapped_and_records_its_receiver() -> None:
    model = Model()
    fit = km.activity(model.fit)
    assert isinstance(fit, Marked)
    assert fit(3) is model and model.fitted == [3]
    assert (fit.__name__, fit.__qualname__, fit.__doc__) == ("fit", "Model.fit", "Fit the model.")
    assert fit.__wrapped__ == model.fit
    assert mark_of(fit) == Mark("activity", RetryPolicy(), None, records_receiver=True)
    verdict = classify(fit)
    assert verdict.activity and verdict.records_receiver
    assert verdict.callee == f"{__name__}.Model.fit"
    # The class's function is not marked by a one-off.
    assert mark_of(Model.fit) is None and not classify(Model().fit).records_receiver


def test_builtins_and_c_methods_are_wrapped_without_receiver_recording() -> None:
    sqrt = km.activity(math.sqrt)
    assert isinstance(sqrt, Marked) and sqrt(9) == 3.0
    items: list[int] = []
    append = km.activity(items.append)
    append(1)
    assert items == [1]
    assert not classify(append).records_receiver
    assert classify(sqrt).activity and classify(sqrt).callee == "math.sqrt"


def test_partial_and_callable_instances_are_wrapped() -> None:
    part = km.effect(functools.partial(pow, 2))
    assert part(5) == 32 and classify(part).effect

    class Scale:
        def __call__(self, x: int) -> int:
            return 2 * x

    scale = km.activity(Scale())
    assert scale(4) == 8 and classify(scale).activity


def test_remarking_a_wrapper_replaces_its_mark() -> None:
    model = Model()
    once = km.activity(model.fit)
    again = km.inline(once)
    assert isinstance(again, Marked) and again.__wrapped__ == model.fit
    assert mark_of(again) == Mark("inline", None, None)
    assert not classify(again).activity


def test_marking_after_a_verdict_was_cached_takes_effect() -> None:
    def compute() -> int:
        return 1

    compute.__module__ = "acme_sdk.client"
    assert classify(compute).activity  # unknown third-party
    km.inline(compute)
    assert not classify(compute).activity


def test_static_and_class_methods_can_be_marked_under_their_decorator() -> None:
    class Api:
        @km.activity
        @staticmethod
        def ping() -> str:
            return "pong"

        @km.effect
        @classmethod
        def create(cls) -> str:
            return cls.__name__

    assert Api.ping() == "pong" and Api.create() == "Api"
    assert classify(Api.ping).activity
    assert classify(Api.create).effect


def test_a_marked_class_is_still_a_class() -> None:
    @km.activity
    class Client:
        pass

    assert isinstance(Client(), Client)
    assert classify(Client).activity
    assert not classify(type("Sub", (Client,), {})).activity  # marks are not inherited


def test_marked_wrappers_pickle() -> None:
    wrapped = km.activity(math.sqrt, retries=2)
    restored = pickle.loads(pickle.dumps(wrapped))
    assert restored(4) == 2.0 and mark_of(restored) == mark_of(wrapped)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"retries": -1}, ValueError, r"km\.activity: retries must be 0 or more"),
    ({"backoff": -1}, ValueError, r"km\.activity: backoff"),
    ({"timeout": -5}, ValueError, r"km\.activity: timeout must be a positive"),
    ({"retry_on": ("IOError",)}, TypeError, r"km\.activity: retry_on must be a tuple"),
    ({"name": ""}, ValueError, r"km\.activity\(name=\.\.\.\) must be a non-empty string"),
])
def test_bad_arguments_are_refused_when_decorating(kwargs: dict[str, Any],
                                                   error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        km.activity(**kwargs)


def test_effect_validates_too_and_says_so() -> None:
    with pytest.raises(ValueError, match=r"km\.effect: retries"):
        km.effect(retries=-2)


def test_a_non_callable_is_refused() -> None:
    with pytest.raises(TypeError, match=r"km\.activity expects a function or another callable"):
        km.activity(42)  # type: ignore[call-overload]


def test_unmarked_objects_have_no_mark() -> None:
    def plain() -> None:
        pass

    assert mark_of(plain) is None and mark_of(len) is None and mark_of(Model) is None


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that a module imports, at any depth (lazy imports included) but
    not under ``if TYPE_CHECKING:`` (those are never executed)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
            found.add(node.module[len(package) + 1:].split(".")[0])  # type: ignore[index]
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_the_activities_package_has_no_import_cycle() -> None:
    """No module of ``activities`` imports, even lazily, one that imports it back."""
    folder = Path(km.__file__).parent
    graph = {p.stem: _imports(p, "kitteh_magic.activities") & {q.stem for q in folder.glob("*.py")}
             for p in folder.glob("*.py") if p.stem != "__init__"}
    cycles = []

    def walk(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target == path[0]:
                cycles.append(" -> ".join([*path, target]))
            elif target not in path and target != "__init__":
                walk(target, [*path, target])

    for module in sorted(graph):
        walk(module, [module])
    assert not cycles, cycles
