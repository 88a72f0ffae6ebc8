"""The examples in the modules' docstrings are true (they are part of the documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import kitteh_magic

MODULES = sorted(m.name for m in pkgutil.walk_packages(kitteh_magic.__path__, "kitteh_magic."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring examples of {name} failed"
