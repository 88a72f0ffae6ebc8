"""Which calls are activities: decided by the called object, never by its name in the source.

``classify(fn)`` looks at what is actually called: a mark (``@km.activity``, ``@km.inline``,
``@km.effect``) decides; else the object's qualified name (``module.qualname``, for a method
``module.Type.method`` of its receiver's type, and of the class that defines it) is looked up in
two lists, the most specific entry winning; else a function written in the notebook, a builtin
or the standard library is inline, and anything else from a third-party package is an activity.

Seeded randomness is a choice worth stating: ``random`` functions and ``numpy.random``'s legacy
module-level functions (``np.random.rand``) draw from hidden global state and are activities,
while the methods of a ``numpy.random.Generator`` are inline: the generator is a value in the
notebook, saved with it, and ``np.random.default_rng`` (an activity) records its seed.

>>> import math, time
>>> classify(math.sqrt).activity, classify(time.time).activity, classify(time.time).callee
(False, True, 'time.time')
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .api import Mark, Marked, mark_of
from .names import (
    BOUND_LIKE,
    BUILTIN,
    FUNCTION,
    FUNCTION_LIKE,
    METHOD,
    MODULE,
    Described,
    describe,
    kind_of,
)
from .policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one callee is treated in a durable cell.

    Attributes:
        activity: journal the call (True) or make it plainly (False).
        callee: qualified name, stable across kernel restarts (no ids, no temp file names).
        effect: an activity that must never run twice.
        policy: the callee's own retry policy (from its mark), to merge with the cell's.
        records_receiver: the journal records the receiver's state with the result.
        reason: a short human reason, shown by ``%durable log``.
    """

    activity: bool
    callee: str
    effect: bool = False
    policy: RetryPolicy | None = None
    records_receiver: bool = False
    reason: str = ""


# Default lists, by reason. An entry is a module prefix ("requests") or a qualified name
# ("datetime.datetime.now"), matched segment by segment. Names are where things are defined
# (``os.system`` is ``posix.system``), hence the private modules.
_ACTIVITY = {
    "network client": """urllib.request urllib.robotparser http.client socket _socket ssl _ssl
        requests httpx aiohttp urllib3 websocket websockets grpc paramiko smtplib ftplib poplib
        imaplib nntplib telnetlib xmlrpc.client webbrowser asyncio.open_connection
        asyncio.open_unix_connection asyncio.streams""",
    "SDK client": """boto3 botocore aiobotocore openai anthropic google.cloud google.genai
        google.generativeai cohere mistralai groq litellm stripe twilio slack_sdk""",
    "database": """sqlite3 _sqlite3 psycopg psycopg2 psycopg_pool asyncpg pymysql MySQLdb mysql
        redis pymongo motor elasticsearch cassandra pandas.io.sql pandas.read_sql
        pandas.read_sql_query pandas.read_sql_table pandas.DataFrame.to_sql
        pandas.core.generic.NDFrame.to_sql sqlalchemy.engine.base.Engine
        sqlalchemy.engine.base.Connection sqlalchemy.engine.cursor sqlalchemy.engine.result
        sqlalchemy.orm.session.Session sqlalchemy.ext.asyncio""",
    "subprocess": """subprocess asyncio.create_subprocess_exec asyncio.create_subprocess_shell
        asyncio.subprocess os.system os.popen posix.system nt.system
        IPython.core.interactiveshell.InteractiveShell.system_piped
        IPython.core.interactiveshell.InteractiveShell.system_raw
        IPython.core.interactiveshell.InteractiveShell.getoutput
        ipykernel.zmqshell.ZMQInteractiveShell.system_piped""",
    "user input": "builtins.input getpass",
    "clock": """time datetime.datetime.now datetime.datetime.utcnow datetime.datetime.today
        datetime.date.today asyncio.sleep pandas.Timestamp.now pandas.Timestamp.today
        pandas.Timestamp.utcnow pandas._libs.tslibs.timestamps.Timestamp.now
        pandas._libs.tslibs.timestamps.Timestamp.today
        pandas._libs.tslibs.timestamps.Timestamp.utcnow""",
    "randomness": """random _random secrets uuid.uuid1 uuid.uuid4 uuid.getnode os.urandom
        posix.urandom nt.urandom os.getrandom posix.getrandom numpy.random""",
}
_INLINE = {
    "builtin": "builtins builtins.__import__",
    "builtin type method": """builtins.list builtins.dict builtins.set builtins.frozenset
        builtins.tuple builtins.str builtins.bytes builtins.bytearray builtins.int builtins.float
        builtins.complex builtins.bool builtins.memoryview builtins.range builtins.slice""",
    "deterministic library": """numpy numpy.random._generator numpy.random.bit_generator
        numpy.random._pcg64 numpy.random._mt19937 numpy.random._philox numpy.random._sfc64
        pandas polars pyarrow scipy sklearn statsmodels matplotlib seaborn plotly altair bokeh
        torch tensorflow jax xarray sympy networkx PIL skimage sqlalchemy IPython ipykernel
        ipywidgets matplotlib_inline tqdm""",
    "standard library": "time.strptime time.mktime time.get_clock_info",
}
# Reasons that name the entry's package: "network client (requests)".
_NAMED = {"network client", "SDK client", "database", "deterministic library"}


class _Entry(NamedTuple):
    activity: bool
    reason: str
    user: bool


def _defaults() -> dict[str, _Entry]:
    table: dict[str, _Entry] = {}
    for activity, lists in ((True, _ACTIVITY), (False, _INLINE)):
        for reason, text in lists.items():
            for name in text.split():
                package = ".".join(name.split(".")[:2])
                label = f"{reason} ({package})" if reason in _NAMED else reason
                table[name] = _Entry(activity, label, False)
    return table


_DEFAULTS = _defaults()
_user: dict[str, bool] = {}
_table: dict[str, _Entry] = dict(_DEFAULTS)

# Caches. Functions, classes and marked wrappers are keyed by id with a weak reference checked on
# every hit (no stale hit after id reuse, no leak of functions made in a loop); a bound method,
# created anew at each attribute access, by (receiver type, function or name); other objects by
# themselves, or by their type when they are instances called through ``__call__``.
_weak: dict[int, tuple[weakref.ReferenceType[Any], Verdict]] = {}
_strong: dict[Any, Verdict] = {}
_LIMIT = 1 << 16


def classify(fn: object) -> Verdict:
    """The verdict for calling ``fn`` in a durable cell (cached: 0.1 to 0.25 µs on a hit).

    Args:
        fn: the object about to be called.

    Returns:
        Whether it is an activity, under which stable name, and why.
    """
    kind = type(fn)
    if kind is BUILTIN:
        owner = fn.__self__  # type: ignore[attr-defined]
        if owner is None or type(owner) is MODULE:
            key: Any = fn
        elif isinstance(owner, type):
            key = (owner, fn.__name__, "class")  # type: ignore[attr-defined]
        else:
            key = (type(owner), fn.__name__)  # type: ignore[attr-defined]
        found = _strong.get(key)
        return found if found is not None else _remember(key, _compute(fn))
    if kind is FUNCTION:
        entry = _weak.get(id(fn))
        if entry is not None and entry[0]() is fn:
            return entry[1]
        return _remember_weak(fn, _compute(fn))
    if kind is METHOD:
        owner = fn.__self__  # type: ignore[attr-defined]
        func = fn.__func__  # type: ignore[attr-defined]
        key = (owner, func, "class") if isinstance(owner, type) else (type(owner), func)
        found = _strong.get(key)
        return found if found is not None else _remember(key, _compute(fn))
    if kind is functools.partial:
        return classify(fn.func)  # type: ignore[attr-defined]
    if kind is Marked or isinstance(fn, type):
        entry = _weak.get(id(fn))
        if entry is not None and entry[0]() is fn:
            return entry[1]
        return _remember_weak(fn, _compute(fn))
    like = kind_of(kind, fn)
    if like == FUNCTION_LIKE:
        key = fn
    elif like == BOUND_LIKE:
        key = (type(fn.__self__), getattr(fn, "__name__", None), "bound")  # type: ignore[attr-defined]
    else:
        key = (kind, "instance")
    try:
        found = _strong.get(key)
    except TypeError:  # an unhashable function-like object
        return _compute(fn)
    return found if found is not None else _remember(key, _compute(fn))


def configure(*, activity: Iterable[str] = (), inline: Iterable[str] = (),
              reset: bool = False) -> None:
    """Add entries to the activity and inline lists.

    An entry is a module prefix (``"mylib"``, ``"mylib.client"``) or a qualified name
    (``"mylib.Client.get"``); the most specific entry that matches a callee wins, and an entry
    given here replaces a default entry with the same text. A class is called as a constructor
    (inline) unless an entry given here names it exactly.

    Args:
        activity: entries to make activities.
        inline: entries to make inline.
        reset: drop the entries configured before (back to the defaults) first.

    Raises:
        ValueError: an entry that is not a dotted name, or one given in both lists.
    """
    wanted_activity, wanted_inline = _entries(activity), _entries(inline)
    both = set(wanted_activity) & set(wanted_inline)
    if both:
        raise ValueError(f"configure: {sorted(both)} given as both activity and inline; "
                         "give each entry once")
    if reset:
        _user.clear()
    _user.update(dict.fromkeys(wanted_activity, True))
    _user.update(dict.fromkeys(wanted_inline, False))
    _table.clear()
    _table.update(_DEFAULTS)
    for name, is_activity in _user.items():
        kind = "activity" if is_activity else "inline"
        _table[name] = _Entry(is_activity, f"configured {kind} ({name})", True)
    forget()


def rules() -> dict[str, list[str]]:
    """The current lists: ``activity`` and ``inline`` entries, and which were ``configured``."""
    return {
        "activity": sorted(n for n, e in _table.items() if e.activity),
        "inline": sorted(n for n, e in _table.items() if not e.activity),
        "configured": sorted(_user),
    }


def forget(obj: object = None) -> None:
    """Drop cached verdicts (after a mark or the lists changed)."""
    _weak.clear()
    _strong.clear()


def _entries(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(f"configure: {name!r} is not a module or qualified name such as "
                             "'mylib' or 'mylib.Client.get'")
        out.append(name)
    return out


def _remember(key: Any, verdict: Verdict) -> Verdict:
    if len(_strong) >= _LIMIT:
        _strong.clear()
    _strong[key] = verdict
    return verdict


def _remember_weak(fn: object, verdict: Verdict) -> Verdict:
    key = id(fn)

    def drop(ref: weakref.ReferenceType[Any]) -> None:
        entry = _weak.get(key)
        if entry is not None and entry[0] is ref:
            del _weak[key]

    _weak[key] = (weakref.ref(fn, drop), verdict)
    return verdict


def _marked(mark: Mark, callee: str) -> Verdict:
    return Verdict(mark.kind != "inline", mark.name or callee, mark.kind == "effect", mark.policy,
                   mark.records_receiver, f"marked {mark.kind}")


def _compute(fn: object) -> Verdict:
    if type(fn) is Marked:
        return _marked(fn.__kitteh__, classify(fn.__wrapped__).callee)
    described = describe(fn)
    mark = mark_of(described.target)
    if mark is not None:
        return _marked(mark, described.callee)
    return _decide(described)


def _decide(d: Described) -> Verdict:
    top = d.module.partition(".")[0]
    if top == "kitteh_magic":
        return Verdict(False, d.callee, reason="kitteh_magic")
    if d.is_class:
        entry = _table.get(d.callee)
        if entry is not None and entry.user and entry.activity:
            return Verdict(True, d.callee, reason=entry.reason)
        return Verdict(False, d.callee, reason="class constructor")
    best: tuple[int, bool, bool, _Entry] | None = None
    for name in d.names:
        parts = name.split(".")
        for depth in range(len(parts), 0, -1):
            entry = _table.get(".".join(parts[:depth]))
            if entry is not None:
                # Most specific wins; on a tie, the user's entry, then the activity.
                rank = (depth, entry.user, entry.activity, entry)
                if best is None or rank[:3] > best[:3]:
                    best = rank
                break
    if best is not None:
        return Verdict(best[3].activity, d.callee, reason=best[3].reason)
    if d.module == "__main__":
        return Verdict(False, d.callee, reason="notebook function")
    if top in sys.stdlib_module_names:
        return Verdict(False, d.callee, reason="standard library")
    return Verdict(True, d.callee, reason="unknown third-party (defaults to activity)")
