"""Imports a replayed step made, made again.

A step's outputs include the modules it bound (``import xml.dom.minidom`` binds ``xml``), and a
module is pickled by name: restoring ``xml`` in a fresh kernel imports ``xml`` only, so
``xml.dom`` is missing, as are the submodules a plain run would have loaded into
``sys.modules``. Replaying the step therefore imports again every module its code imports
(read from its AST, :func:`modules`) and every submodule of a bound package that its run loaded
(:func:`loaded_since`: an import inside a function it called), which leaves the namespace and
``sys.modules`` as a plain run would. Importing a loaded module costs a dictionary lookup.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

from ..errors import InternalWarning


def modules(tree: ast.Module) -> tuple[str, ...]:
    """Absolute module names the code imports when it runs (not inside function bodies).

    ``from a.b import c`` gives ``a.b`` and ``a.b.c``; the latter is imported only if ``c`` turns
    out to be a submodule (see :func:`replay`).

    >>> modules(ast.parse("import xml.dom.minidom as m\\nfrom os import path\\ndef f(): import re"))
    ('xml.dom.minidom', 'os', 'os.path')
    """
    found: list[str] = []
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return tuple(dict.fromkeys(found))


def loaded_since(before: set[str], namespace: Mapping[str, object]) -> list[str]:
    """Modules loaded since ``before`` (a snapshot of ``sys.modules``) that a later cell can
    reach: submodules of a package the namespace binds (a function the step called ran
    ``import multiprocessing.pool``; ``multiprocessing`` is bound). In load order.
    """
    tops = {value.__name__.partition(".")[0] for value in namespace.values()
            if isinstance(value, ModuleType)}
    return [name for name in list(sys.modules)
            if name not in before and name.partition(".")[0] in tops]


def replay(names: Iterable[str], warn: Callable[[type[Warning], str], None], step: str) -> None:
    """Import each module as the step's code did; a module that is gone is a warning."""
    for name in names:
        parent, _, child = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            # ``from a.b import c`` where ``c`` is a function, not a module: nothing to do.
            if err.name == name and parent and child and _has(parent, child):
                continue
            warn(InternalWarning, f"step {step!r}: replaying `import {name}` failed ({err}); "
                 "the restored names may not work. Re-run the step with --force.")
        except Exception as err:
            warn(InternalWarning, f"step {step!r}: replaying `import {name}` failed "
                 f"({type(err).__name__}: {err}); re-run the step with --force.")


def _has(module: str, attribute: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attribute)
    except ImportError:
        return False
