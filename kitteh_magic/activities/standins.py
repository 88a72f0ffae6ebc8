"""Stand-ins for journaled exceptions, and for the parts of them, that cannot come back.

``failures`` rebuilds a journaled exception as an instance of its own class whenever it can.
When it cannot (the class is gone, or will not be instantiated), the cell gets a *stand-in*: an
instance of a subclass of both the original class, or its nearest loadable base, and
:class:`JournaledError`, so that ``except ApiError`` and ``except km.JournaledError`` both catch
it, ``str()`` is the original text and the original attributes are set. An argument or attribute
that could not be saved (a lock, a live response) is an :class:`Unsaved` that repeats the
original's ``repr`` and ``str`` and names its type when used.

The functions here are referenced by name from stored records: keep their names.

>>> err = standin(KeyError, "mylib.Missing", "'id'", "its module is gone")
>>> isinstance(err, KeyError), isinstance(err, JournaledError), str(err), err.type_name
(True, True, "'id'", 'mylib.Missing')
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import KittehError


class JournaledError(KittehError):
    """A journaled exception that could not come back as an instance of its own class.

    Raised on replay, or mixed into a subclass of the original class as its stand-in (then
    ``str()`` is the original text and ``except Original`` still catches it).

    Attributes:
        type_name: ``module.QualName`` of the original exception.
        message: its ``str()``.
        reason: why it could not be rebuilt.
    """

    type_name: str = ""
    message: str = ""
    reason: str = ""

    def __init__(self, type_name: str, message: str, reason: str = "") -> None:
        self.type_name, self.message, self.reason = type_name, message, reason
        super().__init__(f"{type_name}: {message} (journaled; it could not be rebuilt as a "
                         f"{type_name}{': ' + reason if reason else ''})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (JournaledError, (self.type_name, self.message, self.reason), self.__dict__)


class Unsaved:
    """Stands for an argument or attribute of a journaled exception that could not be saved."""

    __slots__ = ("shown", "text", "type_name")

    def __init__(self, type_name: str, shown: str, text: str) -> None:
        self.type_name, self.shown, self.text = type_name, shown, text

    def __repr__(self) -> str:
        return self.shown

    def __str__(self) -> str:
        return self.text

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{name!r}: this value of a journaled exception was a "
                             f"{self.type_name} ({self.shown}), which could not be saved; "
                             "only its repr and str were kept")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unsaved, (self.type_name, self.shown, self.text))


def standin(base: Any, type_name: str, message: str, reason: str) -> BaseException:
    """A stand-in for a ``type_name`` exception: an instance of ``base`` and JournaledError.

    Falls back to a plain :class:`JournaledError` when ``base`` cannot be mixed with it (a
    ``__new__`` of its own that needs arguments) or is ``Exception`` itself.
    """
    if base is not None and base not in (BaseException, Exception):
        try:
            kind = standin_class(base)
            error = kind.__new__(kind)
            JournaledError.__init__(error, type_name, message, reason)  # type: ignore[arg-type]
            return error
        except Exception:  # a layout or a __new__ that will not mix: the plain stand-in
            pass
    return JournaledError(type_name, message, reason)


@functools.cache
def standin_class(base: Any) -> type[BaseException]:
    """``base`` with JournaledError mixed in; its ``str()`` is the original text."""
    def __str__(self: JournaledError) -> str:
        return self.message

    def __reduce__(self: JournaledError) -> tuple[Any, ...]:
        return (revive_standin, (base, self.type_name, self.message, self.reason, self.args),
                dict(vars(self)))

    namespace = {"__str__": __str__, "__reduce__": __reduce__, "__module__": base.__module__,
                 "__qualname__": base.__qualname__,
                 "__doc__": f"Stand-in for a journaled {base.__qualname__} (see JournaledError)."}
    kind: type[BaseException] = type(base.__name__, (base, JournaledError), namespace)
    return kind


def revive_standin(base: type, type_name: str, message: str, reason: str,
                   args: tuple[Any, ...]) -> BaseException:
    """Unpickle a stand-in (module level: pickle finds it by name)."""
    error = standin(base, type_name, message, reason)
    error.args = args
    return error


def lost(error_text: str, reason: str) -> JournaledError:
    """The stand-in for a journaled failure whose record cannot be read at all.

    ``error_text`` is the entry's ``"Type: message"``.
    """
    type_name, _, message = error_text.partition(": ")
    return JournaledError(type_name or "exception", message, reason)
