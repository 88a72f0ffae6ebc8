"""Step keys are a versioned contract: golden values catch any change of encoding."""

from __future__ import annotations

import re

from kitteh_magic.steps.keys import FORMAT_VERSION, code_digest, step_key, value_token

CODE = "Module(body=[], type_ignores=[])"
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_format_version_is_one() -> None:
    # The golden values below were computed with version 1; a bump must update them too.
    assert FORMAT_VERSION == 1


def test_golden_step_keys() -> None:
    inputs = {"x": "0" * 32, "df": "f" * 32}
    assert step_key("nb.ipynb", CODE, inputs) == "f45aedc21f249576ce3bd6dfad6e7da2"
    assert step_key("nb.ipynb", CODE, {}) == "af059a5d10532a5f5c779b7c692f2b39"


def test_golden_value_token_and_code_digest() -> None:
    assert value_token("0123456789abcdef0123456789abcdef", "df") == (
        "a7c0cab868ba822e654ab014ebcda9cf"
    )
    assert code_digest(CODE) == "479574d28be8879ee19c0fc86c9830e2"


def test_step_key_ignores_input_order() -> None:
    forward = {"a": "1", "b": "2", "c": "3"}
    backward = dict(reversed(forward.items()))
    assert list(forward) != list(backward)
    assert step_key("s", CODE, forward) == step_key("s", CODE, backward)


def test_step_key_depends_on_every_part() -> None:
    base = step_key("s", CODE, {"x": "1"})
    assert HEX32.fullmatch(base)
    variants = [
        step_key("t", CODE, {"x": "1"}),
        step_key("s", CODE + " ", {"x": "1"}),
        step_key("s", CODE, {"x": "2"}),
        step_key("s", CODE, {"y": "1"}),
        step_key("s", CODE, {"x": "1", "y": "1"}),
        step_key("s", CODE, {}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_fields_are_unambiguous() -> None:
    # Without length prefixes these pairs would encode to the same bytes.
    assert step_key("ab", "c", {}) != step_key("a", "bc", {})
    assert step_key("s", CODE, {"ab": "c"}) != step_key("s", CODE, {"a": "bc"})
    assert step_key("s", CODE, {"a": "b\0c"}) != step_key("s", CODE, {"a": "b", "c": ""})
    assert value_token("k", "ab") != value_token("ka", "b")


def test_tokens_and_digests_are_distinct_namespaces() -> None:
    key = step_key("s", CODE, {})
    assert value_token(key, "x") != value_token(key, "y")
    assert value_token(key, "x") != value_token(step_key("s2", CODE, {}), "x")
    assert code_digest(CODE) != code_digest(CODE + "\n")
    assert HEX32.fullmatch(value_token(key, "x"))
    assert HEX32.fullmatch(code_digest(CODE))
