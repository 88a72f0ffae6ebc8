"""Exceptions in the journal: a failure the cell caught comes back on replay as itself.

Pickling an exception the default way stores ``(type, args, __dict__)`` and rebuilds it with
``type(*args)``, which breaks for ordinary user classes: an ``__init__`` with keyword-only or
extra required arguments that passes only a message to ``super().__init__`` cannot be called
with ``args`` again, and the journal itself would then raise ``TypeError`` on every replay. An
exception holding a lock or a live response cannot be pickled at all.

So a failure is journaled as a *record* (a plain dict, which always pickles) of separately saved
parts: its class, each argument, each attribute, its text, and the records of its
``__cause__``/``__context__``. It is rebuilt the way ``copy`` rebuilds objects, without calling
the user's ``__init__``: ``cls.__new__(cls, *args)``, the nearest C ``__init__`` for the state
that builtin exceptions keep in C (``OSError.errno``), then ``args`` and the attributes. A class
that defines its own ``__reduce__`` (``json.JSONDecodeError``, the recorded ``HTTPError``) is
rebuilt by it. Whichever way is chosen is tried once when the failure is journaled (a real
round trip through the store) and kept only if the copy has the same type, arguments and text;
else the next is tried, and last comes a stand-in.

What cannot come back is stood in for (``standins.py``): a part that cannot be saved (a lock, a
response bound to a socket) by an ``Unsaved`` placeholder with the original's ``repr`` and
``str``; a class that cannot be loaded or instantiated on replay by a subclass of it (or of its
nearest loadable base) and ``JournaledError``, with the original arguments, attributes and
text, so ``except ApiError`` and ``e.status`` still work.

A class defined in the notebook is taken from the namespace the cell runs in, by name, so that
the resumed cell's ``except ApiError`` (the class its notebook defines now) catches it.

>>> class Kept:  # the store's value interface, in memory
...     def put_value(self, obj, **_): return [obj]
...     def get_value(self, ref, **_): return ref[0]
>>> class ApiError(Exception):
...     def __init__(self, *, status):
...         super().__init__(f"HTTP {status}")
...         self.status = status
>>> copy = rebuild(record(ApiError(status=503), Kept(), None), Kept(), None)
>>> type(copy) is ApiError, copy.status, str(copy), copy.args
(True, 503, 'HTTP 503', ('HTTP 503',))
"""

from __future__ import annotations

import contextlib
import copyreg
import pickle
import types
from collections.abc import Mapping
from typing import Any, Protocol

from .standins import JournaledError, Unsaved, lost, standin

__all__ = ["FORMAT", "JournaledError", "Values", "lost", "rebuild", "record", "text_of"]

FORMAT = 1
"""Version of the record's layout; a record of another version replays as a stand-in."""

_EMBED = 1 << 62
"""Every part travels inside the record (no value of its own to lose or collect)."""
_DEPTH = 4
"""How many levels of ``__cause__``/``__context__`` are kept."""
_PLAIN = (str, bytes, int, float, complex, bool, type(None))


class Values(Protocol):
    """What the journal lends to save and load the parts (the store's value interface)."""

    def put_value(self, obj: object, *, namespace: dict[str, Any] | None = ...,
                  embed: int = ...) -> Any: ...

    def get_value(self, ref: Mapping[str, Any], *,
                  namespace: dict[str, Any] | None = ...) -> object: ...


# -- journaling ---------------------------------------------------------------------------------

def record(error: BaseException, values: Values, namespace: dict[str, Any] | None,
           _depth: int = 0) -> dict[str, Any]:
    """A record of ``error`` that always pickles and rebuilds as faithfully as it can.

    Args:
        error: the exception an activity raised.
        values: where parts are saved (the store).
        namespace: the notebook's namespace (notebook functions are saved by reference to it).

    Returns:
        The record, a dict of strings and saved parts.
    """
    try:
        return _record(error, values, namespace, _depth)
    except Exception as exc:  # never fail the cell over its journal: keep at least the text
        return {"format": FORMAT, "type": _name(type(error)), "text": text_of(error),
                "bases": [], "class": None, "args": [], "state": {}, "reduce": None,
                "how": "standin", "cause": None, "context": None, "suppress": False,
                "problem": f"{type(exc).__name__}: {exc}"}


def _record(error: BaseException, values: Values, namespace: dict[str, Any] | None,
            _depth: int) -> dict[str, Any]:
    cls = type(error)
    doc: dict[str, Any] = {
        "format": FORMAT, "type": _name(cls), "text": text_of(error),
        "module": cls.__module__, "qualname": cls.__qualname__,
        "bases": [[c.__module__, c.__qualname__] for c in cls.__mro__[1:]
                  if issubclass(c, BaseException)],
        "class": _save(cls, values, namespace),
        "args": [_part(a, values, namespace, _depth) for a in _args(error)],
        "state": {k: _part(v, values, namespace, _depth) for k, v in _state(error).items()},
        "reduce": None, "how": "standin",
        "cause": None, "context": None,
        "suppress": bool(error.__suppress_context__),
    }
    if _depth < _DEPTH:
        for link in ("cause", "context"):
            linked = getattr(error, f"__{link}__")
            if isinstance(linked, BaseException) and linked is not error:
                doc[link] = record(linked, values, namespace, _depth + 1)
    if doc["class"] is None:
        return doc
    if _own_reduce(cls):
        doc["reduce"] = _reduction(error, values, namespace)
        if doc["reduce"] is not None:
            doc["how"] = "reduce"
            if _faithful(doc, error, values, namespace):
                return doc
    doc["how"] = "new"
    if not _faithful(doc, error, values, namespace):
        doc["how"] = "standin"
    return doc


def _faithful(doc: dict[str, Any], error: BaseException, values: Values,
              namespace: dict[str, Any] | None) -> bool:
    """Whether the record rebuilds (through the store) as ``error``'s type, args and text."""
    try:
        copy = _build(doc, values, namespace)
    except Exception:
        return False
    return (type(copy) is type(error) and _alike(copy.args, error.args)
            and text_of(copy) == doc["text"])


def _alike(a: Any, b: Any) -> bool:
    """Equal, or of one type that has no value equality (a copy cannot be ``is`` the original)."""
    try:
        if a == b:
            return True
    except Exception:  # an array's ambiguous truth value, a failing __eq__
        pass
    if type(a) is not type(b):
        return isinstance(a, Unsaved) or isinstance(b, Unsaved)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_alike(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, BaseException):
        return _alike(a.args, b.args)
    return not isinstance(a, _PLAIN)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def text_of(error: BaseException) -> str:
    """``str(error)``, or a note saying that it failed (a journal never fails over a message)."""
    try:
        return str(error)
    except Exception as exc:  # a __str__ that fails: name it rather than fail the journal
        return f"<str() failed: {type(exc).__name__}: {exc}>"


def _args(error: BaseException) -> tuple[Any, ...]:
    args = getattr(error, "args", ())
    return tuple(args) if isinstance(args, tuple) else (args,)


def _state(error: BaseException) -> dict[str, Any]:
    """Instance attributes: ``__dict__`` and any ``__slots__`` that are set (notes included)."""
    state = dict(getattr(error, "__dict__", None) or {})
    for slot in copyreg._slotnames(type(error)):  # type: ignore[attr-defined]
        if slot not in state and hasattr(error, slot):
            state[slot] = getattr(error, slot)
    return state


def _own_reduce(cls: type) -> bool:
    base: Any = BaseException
    return cls.__reduce_ex__ is not base.__reduce_ex__ or cls.__reduce__ is not base.__reduce__


def _reduction(error: BaseException, values: Values,
               namespace: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        reduced = error.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 3 or reduced[1] is None:
        return None  # the rarer forms (list or dict items, a state setter) are not replayed
    fn = _save(reduced[0], values, namespace)
    if fn is None:
        return None
    state = reduced[2] if len(reduced) == 3 else None
    return {"fn": fn, "args": [_part(a, values, namespace, 0) for a in reduced[1]],
            "state": None if state is None else _part(state, values, namespace, 0)}


def _save(value: object, values: Values, namespace: dict[str, Any] | None) -> Any:
    try:
        return values.put_value(value, namespace=namespace, embed=_EMBED)
    except Exception:  # UnpicklableError, or a __reduce__ of the value's own that failed
        return None


def _part(value: Any, values: Values, namespace: dict[str, Any] | None,
          depth: int) -> dict[str, Any]:
    """One argument or attribute: nested exceptions as records, others saved or stood in for."""
    if isinstance(value, BaseException) and depth < _DEPTH:
        return {"exception": record(value, values, namespace, depth + 1)}
    if (type(value) in (list, tuple) and value
            and all(isinstance(v, BaseException) for v in value) and depth < _DEPTH):
        # An exception group's exceptions.
        return {"exceptions": [record(v, values, namespace, depth + 1) for v in value],
                "tuple": type(value) is tuple}
    ref = _save(value, values, namespace)
    if ref is None:
        ref = _save(_stand_for(value), values, namespace)
    return {"value": ref}


def _stand_for(value: object) -> Unsaved:
    def shown(fn: Any) -> str:
        try:
            return str(fn(value))
        except Exception:
            return f"<{type(value).__qualname__}>"
    return Unsaved(_name(type(value)), shown(repr), shown(str))


# -- replay -------------------------------------------------------------------------------------

def rebuild(doc: Mapping[str, Any], values: Values,
            namespace: dict[str, Any] | None) -> BaseException:
    """The exception a record describes (never raises: a stand-in takes its place).

    Args:
        doc: a record made by :func:`record`.
        values: where its parts are loaded from.
        namespace: the namespace the cell runs in (notebook classes are looked up there).
    """
    try:
        if doc.get("format") != FORMAT:
            return JournaledError(str(doc.get("type")), str(doc.get("text")),
                                  f"journal record format {doc.get('format')!r}")
        if doc.get("how") != "standin":
            try:
                return _build(doc, values, namespace)
            except Exception as exc:
                return _stand_in(doc, values, namespace, f"{type(exc).__name__}: {exc}")
        return _stand_in(doc, values, namespace, "it did not survive a copy when journaled")
    except Exception as exc:  # a malformed record: still an exception, never a crash
        return JournaledError(str(doc.get("type", "?")), str(doc.get("text", "")),
                              f"{type(exc).__name__}: {exc}")


def _build(doc: Mapping[str, Any], values: Values,
           namespace: dict[str, Any] | None) -> BaseException:
    cls = _class(doc, values, namespace)
    if cls is None:
        raise LookupError(f"the class {doc['type']} cannot be loaded")
    if doc["how"] == "reduce":
        reduction = doc["reduce"]
        fn = _current(values.get_value(reduction["fn"], namespace=namespace), namespace)
        error = fn(*[_load(p, values, namespace) for p in reduction["args"]])
        if reduction["state"] is not None:
            _set_state(error, _load(reduction["state"], values, namespace))
        if not isinstance(error, BaseException):
            raise TypeError(f"its __reduce__ made a {type(error).__name__}")
        # Attributes set after construction (notes, ``kitteh_attempts``) that the class's own
        # reduction leaves out.
        missing = {k: p for k, p in doc["state"].items() if k not in vars(error)}
        _set_state(error, {k: _load(p, values, namespace) for k, p in missing.items()})
    else:
        args = tuple(_load(p, values, namespace) for p in doc["args"])
        error = cls.__new__(cls, *args)
        _c_init(cls)(error, *args)
        error.args = args
        _set_state(error, {k: _load(p, values, namespace) for k, p in doc["state"].items()})
    _link(error, doc, values, namespace)
    return error


def _stand_in(doc: Mapping[str, Any], values: Values, namespace: dict[str, Any] | None,
              reason: str) -> BaseException:
    """A stand-in of the original class, or of its nearest loadable base, with its attributes."""
    base: Any = _class(doc, values, namespace) or next(
        (c for c in (_import(*pair) for pair in doc.get("bases", ())) if c is not None), None)
    error = standin(base, str(doc["type"]), str(doc.get("text", "")), reason)
    if type(error) is not JournaledError:
        error.args = tuple(_load(p, values, namespace) for p in doc.get("args", ()))
    _set_state(error, {k: _load(p, values, namespace) for k, p in doc.get("state", {}).items()})
    _link(error, doc, values, namespace)
    return error


def _class(doc: Mapping[str, Any], values: Values,
           namespace: dict[str, Any] | None) -> type[BaseException] | None:
    """The exception's class: the notebook's own by name, else the saved one, else imported."""
    module, qualname = str(doc.get("module", "")), str(doc.get("qualname", ""))
    if module == "__main__" and namespace is not None:
        current: Any = namespace.get(qualname)
        if _is_exception_class(current) and current.__qualname__ == qualname:
            return current  # type: ignore[no-any-return]
    found: Any = None
    if doc.get("class") is not None:
        try:
            found = _current(values.get_value(doc["class"], namespace=namespace), namespace)
        except Exception:
            found = None
    if not _is_exception_class(found):
        found = _import(module, qualname)
    return found if _is_exception_class(found) else None


def _is_exception_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseException)


def _current(obj: Any, namespace: dict[str, Any] | None) -> Any:
    """A notebook class as the namespace defines it now (a copy saved by value is a stranger)."""
    if isinstance(obj, type) and obj.__module__ == "__main__" and namespace is not None:
        current = namespace.get(obj.__qualname__)
        if isinstance(current, type) and current.__qualname__ == obj.__qualname__:
            return current
    return obj


def _import(module: str, qualname: str) -> type[BaseException] | None:
    """A class of an importable module (not the notebook's), by name."""
    import importlib

    if module in ("", "__main__"):
        return None
    try:
        obj: Any = importlib.import_module(module)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
    except Exception:
        return None
    return obj if _is_exception_class(obj) else None


def _load(part: Mapping[str, Any], values: Values, namespace: dict[str, Any] | None) -> Any:
    if "exception" in part:
        return rebuild(part["exception"], values, namespace)
    if "exceptions" in part:
        rebuilt = [rebuild(d, values, namespace) for d in part["exceptions"]]
        return tuple(rebuilt) if part.get("tuple") else rebuilt
    if part.get("value") is None:
        return Unsaved("?", "<unsaved>", "<unsaved>")
    try:
        return values.get_value(part["value"], namespace=namespace)
    except Exception as exc:  # a part that cannot come back stands in, the rest still does
        return Unsaved("?", f"<not loadable: {type(exc).__name__}>", f"{exc}")


def _c_init(cls: type) -> Any:
    """The nearest ``__init__`` written in C: it sets what builtin exceptions keep in C."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if isinstance(init, types.WrapperDescriptorType):
            return _quiet(init)
    return _quiet(BaseException.__init__)


def _quiet(init: Any) -> Any:
    def call(error: BaseException, *args: Any) -> None:
        # Args meant for a Python __init__ may not suit the C one: ``args`` is set right after.
        with contextlib.suppress(Exception):
            init(error, *args)
    return call


def _set_state(error: BaseException, state: Any) -> None:
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots), as pickle gives it
        _set_state(error, state[0])
        state = state[1]
    if not isinstance(state, dict):
        return
    for key, value in state.items():
        try:
            setattr(error, key, value)
        except (AttributeError, TypeError):  # a read-only property: the instance dict then
            if hasattr(error, "__dict__"):
                error.__dict__[key] = value


def _link(error: BaseException, doc: Mapping[str, Any], values: Values,
          namespace: dict[str, Any] | None) -> None:
    for link in ("cause", "context"):
        if doc.get(link) is not None:
            setattr(error, f"__{link}__", rebuild(doc[link], values, namespace))
    error.__suppress_context__ = bool(doc.get("suppress"))

