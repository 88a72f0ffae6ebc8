"""The activity and inline lists: the defaults, the user's entries, and the objects they name.

An entry is a module prefix (``requests``) or a qualified name (``datetime.datetime.now``).
:func:`by_name` finds the most specific entry matching a callee's names; :func:`by_identity` the
entry that names the callee object itself. For the second, each entry naming an object is
resolved to it, among the modules already imported (classifying never imports), and again
whenever more modules have been imported or the lists change. Objects once named stay named until
the lists change: ipykernel swaps ``builtins.input`` in and out around every execution, and the
kernel's method is the user's input whichever is current.

>>> by_name(["time.time"]).reason, by_name(["json.dumps"])
('clock', None)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

from .names import BOUND_LIKE, BUILTIN, FUNCTION, FUNCTION_LIKE, METHOD, MODULE, kind_of

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
    "user input": "builtins.input getpass getpass.getpass",
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
        ipywidgets matplotlib_inline tqdm joblib""",
    "standard library": "time.strptime time.mktime time.get_clock_info",
}
# Reasons that name the entry's package: "network client (requests)".
_NAMED = {"network client", "SDK client", "database", "deterministic library"}


class Entry(NamedTuple):
    """One entry: activity or inline, why (shown by ``%durable log``), and whether the user
    configured it."""

    activity: bool
    reason: str
    user: bool


def _defaults() -> dict[str, Entry]:
    table: dict[str, Entry] = {}
    for activity, lists in ((True, _ACTIVITY), (False, _INLINE)):
        for reason, text in lists.items():
            for name in text.split():
                package = ".".join(name.split(".")[:2])
                label = f"{reason} ({package})" if reason in _NAMED else reason
                table[name] = Entry(activity, label, False)
    return table


_DEFAULTS = _defaults()
_user: dict[str, bool] = {}
_table: dict[str, Entry] = dict(_DEFAULTS)

_named: dict[Any, tuple[str, Entry]] = {}
"""Entries resolved to the objects they name, by identity key (:func:`identity`)."""
_resolved_at = -1
"""``len(sys.modules)`` when the entries were last resolved (-1: not since the lists changed)."""


def configure(activity: Iterable[str], inline: Iterable[str], reset: bool) -> None:
    """Add (or, with ``reset``, replace) the user's entries; checked by the caller."""
    if reset:
        _user.clear()
    _user.update(dict.fromkeys(activity, True))
    _user.update(dict.fromkeys(inline, False))
    _table.clear()
    _table.update(_DEFAULTS)
    for name, is_activity in _user.items():
        kind = "activity" if is_activity else "inline"
        _table[name] = Entry(is_activity, f"configured {kind} ({name})", True)
    global _resolved_at
    _named.clear()
    _resolved_at = -1


def rules() -> dict[str, list[str]]:
    """The current lists: ``activity`` and ``inline`` entries, and which were ``configured``."""
    return {
        "activity": sorted(n for n, e in _table.items() if e.activity),
        "inline": sorted(n for n, e in _table.items() if not e.activity),
        "configured": sorted(_user),
    }


def exact(name: str) -> Entry | None:
    """The entry whose text is ``name``."""
    return _table.get(name)


def by_name(names: Iterable[str]) -> Entry | None:
    """The most specific entry matching any of ``names``; on a tie the user's, then activity."""
    best: tuple[int, bool, bool, Entry] | None = None
    for name in names:
        parts = name.split(".")
        for depth in range(len(parts), 0, -1):
            entry = _table.get(".".join(parts[:depth]))
            if entry is not None:
                rank = (depth, entry.user, entry.activity, entry)
                if best is None or rank[:3] > best[:3]:
                    best = rank
                break
    return None if best is None else best[3]


def by_identity(key: Any) -> Entry | None:
    """The entry naming the object whose identity key is ``key`` (see :func:`identity`)."""
    if len(sys.modules) != _resolved_at:
        _resolve()
    try:
        found = _named.get(key)
    except TypeError:  # an unhashable key part (a receiver type with __eq__ but no hash)
        return None
    return None if found is None else found[1]


def identity(obj: object) -> Any:
    """The key ``classify`` caches ``obj`` under, when it is one an entry can name.

    Must agree with the keys built in ``classify.classify`` (a bound method: its receiver's type
    and function; a builtin bound to an instance: the type and the name). Classes, instances and
    modules are not named by identity: an entry naming them is a prefix for their members.
    """
    kind = type(obj)
    if kind is BUILTIN:
        owner = obj.__self__  # type: ignore[attr-defined]
        if owner is None or type(owner) is MODULE:
            return obj
        if isinstance(owner, type):
            return (owner, obj.__name__, "class")  # type: ignore[attr-defined]
        return (type(owner), obj.__name__)  # type: ignore[attr-defined]
    if kind is FUNCTION:
        return obj
    if kind is METHOD:
        owner = obj.__self__  # type: ignore[attr-defined]
        func = obj.__func__  # type: ignore[attr-defined]
        return (owner, func, "class") if isinstance(owner, type) else (type(owner), func)
    if kind is MODULE or isinstance(obj, type) or not callable(obj):
        return None
    like = kind_of(kind, obj)
    if like == FUNCTION_LIKE:
        return obj
    if like == BOUND_LIKE:
        return (type(obj.__self__), getattr(obj, "__name__", None), "bound")  # type: ignore[attr-defined]
    return None


def _resolve() -> None:
    """Resolve every entry to the object it names, among the modules imported so far."""
    global _resolved_at
    _resolved_at = len(sys.modules)
    for name, entry in list(_table.items()):
        for key in _keys_of(name):
            try:
                held = _named.get(key)
            except TypeError:
                continue
            # Two entries naming one object (``os.system``, ``posix.system``): the user's wins,
            # then the activity, as for names.
            if held is None or (entry.user, entry.activity) > (held[1].user, held[1].activity):
                _named[key] = (name, entry)


def _keys_of(name: str) -> list[Any]:
    """Identity keys of the object an entry names; none for a module, a class or a miss.

    Only imported modules are looked in, through their ``__dict__`` (a module's ``__getattr__``
    may import); a function found on a class is also keyed as that class's method.
    """
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        obj: Any = sys.modules.get(".".join(parts[:depth]))
        if obj is not None:
            break
    else:
        return []
    owner: Any = None
    for attr in parts[depth:]:
        owner = obj
        if isinstance(obj, MODULE):
            obj = vars(obj).get(attr)
        else:
            try:
                obj = getattr(obj, attr)
            except Exception:  # a descriptor that fails on its class
                return []
        if obj is None:
            return []
    keys = [identity(obj)]
    if isinstance(owner, type) and not isinstance(obj, type):
        if type(obj) is FUNCTION:
            keys.append((owner, obj))
        elif hasattr(obj, "__objclass__"):  # an unbound C method: sqlite3.Cursor.execute
            keys.append((owner, parts[-1]))
    return [k for k in keys if k is not None]
