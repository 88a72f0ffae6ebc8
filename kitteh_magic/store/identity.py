"""Object identity across stored values: references to values already stored, and array views.

Pickle keeps identity inside one stream (its memo) and nowhere else. Two stored values that
shared an object would come back holding two copies: a pipeline and the model it holds, an array
and a view of it. Kishu (VLDB 2025) calls the variables that share objects *co-variables* and
saves them together; here the step saves its outputs as one group (one stream, so the memo keeps
what they share), and an object that an earlier stored value already holds is written as a
*reference* to that value (pickle's ``persistent_id``) instead of a copy. Loading the reference
returns the very object the namespace holds, or loads the referenced value when it is not there.

An array that is a view of another array (``v = a[1:3]``) is written as "a view of that array at
this offset, shape and strides", so the restored view shares memory with the restored base, as
before. Only views whose base is in the same stream or is a referenced value are written so;
any other view is copied, as pickle does.

The two rebuild functions below are named by stored records: keep their names.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from kitteh_magic.store.notebook import NotebookPickler

REF_TAG = "km:ref"

Known = Mapping[int, tuple[object, str, str, str]]
"""``id(obj) -> (obj, digest, member, token)``: objects that stored values hold. ``member`` is
the object's key in a stored group ("" for the whole value); ``token`` names the object among
equal contents (two equal lists of two steps share a digest, never a token). The object itself
is kept in the entry so that a reused id cannot alias another object."""

Resolve = Callable[[str, str, str], object]
"""``(digest, member, token) -> object``: the object a reference names."""


def _array_view(base: Any, offset: int, shape: tuple[int, ...], strides: tuple[int, ...],
                dtype: Any, writeable: bool) -> Any:
    """Rebuild a view of ``base`` (an ndarray) at a byte offset, sharing its memory."""
    numpy = __import__(type(base).__module__.partition(".")[0])
    view = numpy.ndarray(shape, dtype=dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _bounds(array: Any) -> tuple[int, int]:
    """The byte range ``[low, high)`` an array's elements occupy."""
    low = high = array.__array_interface__["data"][0]
    if array.size == 0:
        return low, low
    for n, stride in zip(array.shape, array.strides, strict=True):
        if stride > 0:
            high += (n - 1) * stride
        else:
            low += (n - 1) * stride
    return low, high + array.itemsize


def _is_ndarray(obj: object) -> bool:
    kind = type(obj)
    return kind.__name__ == "ndarray" and kind.__module__ == "numpy"


class IdentityPickler(NotebookPickler):
    """The notebook pickler, plus references to stored objects and views of arrays.

    Args:
        file: where the stream goes.
        namespace: see :class:`NotebookPickler`.
        buffer_callback: see :class:`NotebookPickler`.
        known: objects that stored values hold; each is written as a reference.
        members: the top-level objects of this stream; views of them stay views.
    """

    def __init__(self, file: io.BytesIO, namespace: dict[str, Any],
                 buffer_callback: Callable[[pickle.PickleBuffer], bool], known: Known,
                 members: tuple[object, ...]) -> None:
        super().__init__(file, namespace, buffer_callback)
        self._known = known
        arrays: list[Any] = [m for m in members if _is_ndarray(m)]
        arrays += [entry[0] for entry in known.values() if _is_ndarray(entry[0])]
        self._arrays: list[tuple[int, int, Any]] = [
            (*_bounds(a), a) for a in arrays
            if not a.dtype.hasobject and (a.flags.c_contiguous or a.flags.f_contiguous)]
        self.refs: set[str] = set()
        """Digests of the values this stream refers to (they must outlive it)."""

    def persistent_id(self, obj: Any) -> Any:
        entry = self._known.get(id(obj))
        if entry is None or entry[0] is not obj:
            return None
        self.refs.add(entry[1])
        return (REF_TAG, entry[1], entry[2], entry[3])

    def reducer_override(self, obj: Any) -> Any:
        if _is_ndarray(obj) and obj.base is not None and not obj.dtype.hasobject:
            reduced = self._view(obj)
            if reduced is not None:
                return reduced
        return super().reducer_override(obj)

    def _view(self, view: Any) -> Any:
        """A view of an array this stream holds or refers to: written as a view of it."""
        low, high = _bounds(view)
        ident = id(view)
        # A candidate holds the view's whole range, and is strictly larger, or never a view
        # itself (referred to, or owning its memory), or else has a smaller id: no two arrays
        # can be written as views of each other, and the choice does not depend on ids when
        # it need not (a sliding window spans its whole base: the same range).
        found = [(c_high - c_low, c_low, array) for c_low, c_high, array in self._arrays
                 if array is not view and c_low <= low and high <= c_high
                 and (c_high - c_low > high - low or self._settled(array)
                      or id(array) < ident)]
        if not found:
            return None
        _, base_low, base = max(found, key=lambda item: item[0])
        args = (base, view.__array_interface__["data"][0] - base_low, view.shape,
                view.strides, view.dtype, bool(view.flags.writeable))
        try:  # prove that the rebuilt view is the same window, else copy it as pickle would
            probe = _array_view(*args)
        except (TypeError, ValueError):
            return None
        if probe.__array_interface__["data"][0] != view.__array_interface__["data"][0]:
            return None
        return (_array_view, args)


    def _settled(self, array: Any) -> bool:
        """An array that is never itself written as a view: one a stored value holds (it is
        a reference) or one that owns its memory. A view of the same range may point at it."""
        entry = self._known.get(id(array))
        return (entry is not None and entry[0] is array) or array.base is None


class IdentityUnpickler(pickle.Unpickler):
    """Loads a stream written by :class:`IdentityPickler`; references go to ``resolve``."""

    def __init__(self, stream: io.BytesIO, buffers: list[memoryview], resolve: Resolve) -> None:
        super().__init__(stream, buffers=buffers)
        self._resolve = resolve

    def persistent_load(self, pid: Any) -> Any:
        if (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == REF_TAG
                and all(isinstance(part, str) for part in pid[1:])):
            return self._resolve(pid[1], pid[2], pid[3])
        raise pickle.UnpicklingError(f"unknown persistent reference {pid!r}")


def dumps(obj: object, namespace: dict[str, Any],
          buffer_callback: Callable[[pickle.PickleBuffer], bool], known: Known,
          members: tuple[object, ...]) -> tuple[bytes, set[str]]:
    """Pickle ``obj`` with references to ``known`` objects; returns the stream and their digests."""
    sink = io.BytesIO()
    pickler = IdentityPickler(sink, namespace, buffer_callback, known, members)
    pickler.dump(obj)
    return sink.getvalue(), pickler.refs


def loads(stream: memoryview, buffers: list[memoryview], resolve: Resolve | None) -> object:
    """Unpickle a stream that may hold references; without ``resolve`` they are an error."""
    if resolve is None:
        return pickle.loads(stream, buffers=buffers)

    return IdentityUnpickler(io.BytesIO(stream), buffers, resolve).load()
