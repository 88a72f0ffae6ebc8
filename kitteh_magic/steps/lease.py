"""The step lease: one kernel executes a step at a time (DESIGN §4.13).

A JSON document at ``km1/lease/<session>/<step>`` names the kernel that executes the step (its
*holder*: pid, host, process start, kernel id, the step key it runs, when it took the lease and
its last heartbeat) and the kernels waiting for it. A kernel takes it in one ``update_json``
transaction when nobody holds it or its holder is dead: on this host, its pid is gone or is
another process (start time); on another host, its heartbeat is older than :data:`STALE`. A
heartbeat thread renews held leases every :data:`HEARTBEAT` seconds; the holder releases it
when the step ends, whatever ended it, and a SIGKILLed holder's lease is taken over at once by
a kernel on its host (its pid is dead).

Why a document and not a lock file or SQLite's own lock: the holder must be *visible* (status,
the sidebar and the waiting kernel name it), and must survive nothing: a dead holder is told
from a live one by the facts it wrote, never by a lock the operating system may or may not
have dropped (network file systems).

A released lease keeps its document (``holder`` null, ``released`` set): a kernel that looked
the step's record up before another kernel finished it, then took the lease, learns from it
that the record may exist now and looks again, instead of executing the step a second time.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from ..errors import DamagedRecordError, StepBusyError
from ..status import HOST, LEASE_PREFIX, human_seconds, process_alive

if TYPE_CHECKING:
    from ..store import Store

HEARTBEAT: Final = 2.0
"""Seconds between two renewals of a held lease (and of a waiter's entry)."""
STALE: Final = 3 * HEARTBEAT
"""A holder or waiter on another host whose heartbeat is older than this is dead."""
SKEW: Final = 5.0
"""Seconds of clock difference between kernels tolerated when comparing a release time with
this kernel's lookup (a release that may have come after the lookup means: look again)."""
_FIRST_POLL, _LAST_POLL = 0.05, 1.0


def lease_prefix(session: str) -> str:
    """Prefix of every step lease of a session (names percent-encoded as in ``records.py``).

    >>> lease_prefix("sub/a.ipynb")
    'km1/lease/sub%2Fa.ipynb/'
    """
    return LEASE_PREFIX + quote(session, safe="") + "/"


def lease_key(session: str, step: str) -> str:
    """Key of one step's lease.

    >>> lease_key("a.ipynb", "load data")
    'km1/lease/a.ipynb/load%20data'
    """
    return lease_prefix(session) + quote(step, safe="")


@dataclass
class Party:
    """A kernel a lease names: its holder, or one waiting for it."""

    pid: int
    host: str
    proc_start: float = 0.0
    """Start time of its process: with pid, tells a live kernel from a reused pid."""
    kernel: str = ""
    """Its kernel id (from ipykernel's connection file), "" outside a Jupyter kernel."""
    key: str = ""
    """Holder: the step key (version) it executes."""
    token: str = ""
    """Holder: names this take, so a heartbeat of an earlier take by the same process stops."""
    since: float = 0.0
    """Holder: when it took the lease; waiter: when it began waiting."""
    heartbeat: float = 0.0
    """Holder: its last renewal; waiter: its last poll."""

    def to_doc(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def checked(cls, key: str, doc: object) -> Party:
        """The kernel ``doc`` names, once its fields have their JSON types (unknown fields, from
        a newer writer, are ignored). A hand check: this runs in the transaction of every
        take and release, where ``status.checked``'s generic one would double its cost.

        Raises:
            DamagedRecordError: ``format``: not an object, no pid or host, or a field of the
                wrong type.
        """
        if not isinstance(doc, dict) or "pid" not in doc or "host" not in doc:
            raise DamagedRecordError(key, "format", "a lease party is not an object with a pid "
                                     "and a host")
        fields: dict[str, Any] = {}
        for name, kind in _PARTY_FIELDS.items():
            if name in doc:
                value = doc[name]
                if isinstance(value, bool) or not isinstance(value, kind):
                    raise DamagedRecordError(key, "format", f"lease field {name!r} is "
                                             f"{type(value).__name__}, expected {kind}")
                fields[name] = value
        return cls(**fields)

    def same_process(self, other: Party) -> bool:
        """Whether both name one process (a pid is reused only by another process start)."""
        return (self.pid, self.host) == (other.pid, other.host) and (
            abs(self.proc_start - other.proc_start) < 2.0)

    def alive(self, now: float) -> bool:
        """Whether the kernel still lives: by its pid on this host, by its heartbeat elsewhere."""
        if self.host == HOST:
            return process_alive(self.pid, self.proc_start, self.host)
        return now - self.heartbeat < STALE

    def text(self) -> str:
        """How messages name it.

        >>> Party(pid=12, host="gpu-3").text()
        'kernel 12 on gpu-3'
        """
        return f"kernel {self.pid} on {self.host}"


_PARTY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "pid": int, "host": str, "proc_start": (int, float), "kernel": str, "key": str, "token": str,
    "since": (int, float), "heartbeat": (int, float)}


@dataclass
class LeaseDoc:
    """The document at a lease key."""

    holder: Party | None = None
    waiters: list[Party] = field(default_factory=list)
    released: float = 0.0
    """When its last holder released it (0: never released)."""

    def to_doc(self) -> dict[str, Any]:
        return {"holder": self.holder.to_doc() if self.holder else None,
                "waiters": [w.to_doc() for w in self.waiters], "released": self.released}

    @classmethod
    def checked(cls, key: str, doc: object) -> LeaseDoc:
        """The lease in ``doc`` once every field has its JSON type (metadata read from disk).

        Raises:
            DamagedRecordError: ``format``: not an object, or a field of the wrong type.
        """
        if not isinstance(doc, dict):
            raise DamagedRecordError(key, "format", f"JSON {type(doc).__name__}, not an object")
        holder, waiters, released = doc.get("holder"), doc.get("waiters", []), doc.get(
            "released", 0.0)
        if not isinstance(waiters, list):
            raise DamagedRecordError(key, "format", "field 'waiters' is not a list")
        if not isinstance(released, int | float) or isinstance(released, bool):
            raise DamagedRecordError(key, "format", "field 'released' is not a number")
        return cls(holder=None if holder is None else Party.checked(key, holder),
                   waiters=[Party.checked(key, w) for w in waiters], released=float(released))

    def live_holder(self, now: float) -> Party | None:
        """Its holder if that kernel still lives."""
        return self.holder if self.holder is not None and self.holder.alive(now) else None

    def live_waiters(self, now: float) -> list[Party]:
        """The kernels still waiting for it."""
        return [w for w in self.waiters if w.alive(now)]


@dataclass
class Taken:
    """What one attempt to take a lease found."""

    holder: Party | None
    """The live kernel that holds it (None: this kernel holds it now)."""
    released: float
    """When it was last released before this attempt (0: never, or not known)."""


class Lease:
    """One kernel's claim on one step's lease: take, renew (heartbeat), release, or wait.

    Args:
        store: the store of the step.
        session: the step's session.
        step: the step's name.
        me: this kernel (a new token names each take).
        tell: told what the kernel must hear about and that raises nothing: the heartbeat
            could not be written or the lease was taken over (on the heartbeat thread), the
            waiter entry could not be removed.
    """

    def __init__(self, store: Store, session: str, step: str, me: Party,
                 tell: Callable[[str], None]) -> None:
        self.store = store
        self.step = step
        self.key = lease_key(session, step)
        self.me = me
        self.tell = tell
        self.damaged: list[DamagedRecordError] = []
        """Damaged lease documents met (each replaced by the write that met it)."""
        self._renew_failed = False
        self._releasing = False

    def read(self) -> LeaseDoc | None:
        """The lease document as it is now (no transaction); a damaged one reads as absent."""
        return self._parsed(self.store.get_json(self.key))

    def take(self, *, waiting: bool) -> Taken:
        """Take the lease in one transaction when nobody holds it, its holder is dead, or its
        holder is this process (a take it never released); else, when ``waiting``, note (or
        refresh) this kernel among its waiters.
        """
        found = Taken(holder=None, released=0.0)
        me = self.me

        def change(doc: dict[str, Any] | None) -> dict[str, Any]:
            now = time.time()
            lease = self._parsed(doc) or LeaseDoc()
            found.released = lease.released
            others = [w for w in lease.waiters if not w.same_process(me) and w.alive(now)]
            holder = lease.holder
            if holder is not None and not holder.same_process(me) and holder.alive(now):
                found.holder = holder
                if waiting:
                    mine = next((w for w in lease.waiters if w.same_process(me)), None)
                    since = mine.since if mine is not None else now
                    others.append(Party(pid=me.pid, host=me.host, proc_start=me.proc_start,
                                        kernel=me.kernel, since=since, heartbeat=now))
                lease.waiters = others
                return lease.to_doc()
            me.token, me.since, me.heartbeat = secrets.token_hex(8), now, now
            lease.holder, lease.waiters = me, others
            return lease.to_doc()

        self.store.update_json(self.key, change, damaged=self.damaged.append)
        return found

    def renew(self) -> None:
        """Write a heartbeat, if this take still holds the lease (else tell ``tell``); a
        release that failed is tried again instead."""
        if self._releasing:
            self._release_again()
            return
        taken_by: list[Party] = []

        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            lease = self._parsed(doc)
            if lease is None or lease.holder is None or lease.holder.token != self.me.token:
                if lease is not None and lease.holder is not None:
                    taken_by.append(lease.holder)
                return doc  # unchanged: not ours any more
            lease.holder.heartbeat = self.me.heartbeat = time.time()
            return lease.to_doc()

        try:
            self.store.update_json(self.key, change, damaged=self.damaged.append)
        except Exception as err:  # the heartbeat thread must go on; the kernel is told once
            if not self._renew_failed:
                self.tell(f"its lease could not be renewed ({type(err).__name__}: {err}); "
                          "a kernel on another host may take it over")
            self._renew_failed = True
            return
        self._renew_failed = False
        if taken_by and not self._releasing:
            _HEARTBEATS.discard(self)
            self.tell(f"{taken_by[0].text()} took its lease over (this kernel's heartbeat was "
                      f"late by more than {STALE:.0f} s): both kernels may run it now")

    def release(self) -> None:
        """Let the lease go (keeping the document, see the module docstring).

        Raises:
            StoreError: it could not be written; the heartbeat thread tries again every
                :data:`HEARTBEAT` seconds (a waiting kernel on this host waits until then).
        """
        self._releasing = True
        self._write_release()
        _HEARTBEATS.discard(self)

    def _release_again(self) -> None:
        try:
            self._write_release()
        except Exception as err:  # still failing: the next heartbeat tries again
            if not self._renew_failed:
                self.tell(f"its lease could still not be released ({type(err).__name__}: "
                          f"{err}); trying again every {HEARTBEAT:.0f} s")
            self._renew_failed = True
            return
        _HEARTBEATS.discard(self)

    def _write_release(self) -> None:
        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            lease = self._parsed(doc)
            if lease is None or lease.holder is None or lease.holder.token != self.me.token:
                return doc  # taken over meanwhile: not ours to release
            lease.holder, lease.released = None, time.time()
            return lease.to_doc()

        self.store.update_json(self.key, change, damaged=self.damaged.append)

    def leave(self) -> None:
        """Stop waiting: remove this kernel from the waiters (a failure is told, not raised:
        a stale waiter only shows in status until its kernel exits)."""
        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            lease = self._parsed(doc)
            if lease is None:
                return doc
            lease.waiters = [w for w in lease.waiters if not w.same_process(self.me)]
            return lease.to_doc()

        try:
            self.store.update_json(self.key, change, damaged=self.damaged.append)
        except Exception as err:
            self.tell(f"it could not be removed from its lease's waiters "
                      f"({type(err).__name__}: {err}); status shows it waiting until this "
                      "kernel exits")

    def hold(self) -> None:
        """Renew the lease every :data:`HEARTBEAT` seconds until it is released."""
        _HEARTBEATS.add(self)

    def _parsed(self, doc: object) -> LeaseDoc | None:
        if doc is None:
            return None
        try:
            return LeaseDoc.checked(self.key, doc)
        except DamagedRecordError as err:
            self.damaged.append(err)
            return None


def acquire(lease: Lease, *, wait: float | None, notice: WaitNotice) -> Taken:
    """Take the lease, waiting while another live kernel holds it.

    Polls with backoff (50 ms doubling to 1 s; a plain read, a transaction only when the lease
    looks free or the waiter's entry needs its heartbeat), as long as the holder lives, or
    ``wait`` seconds at most.

    Returns:
        The first attempt's findings (``holder`` is the kernel waited for, None when the lease
        was free at once); ``released`` is when it was last released before it was taken.

    Raises:
        StepBusyError: ``wait`` ran out while another kernel still held it.
        KeyboardInterrupt: interrupted while waiting; this kernel is no longer a waiter.
    """
    first = lease.take(waiting=True)
    if first.holder is None:
        return first
    started = time.monotonic()
    holder = first.holder
    notice.waiting(holder, 0.0)
    delay, refreshed = _FIRST_POLL, started
    try:
        while True:
            waited = time.monotonic() - started
            if wait is not None and waited >= wait:
                notice.done(holder, waited, f"gave up after --wait {wait:g} s")
                lease.leave()
                raise StepBusyError(lease.step, holder.pid, holder.host,
                                    max(time.time() - holder.since, 0.0), wait)
            pause = delay if wait is None else min(delay, wait - waited)
            time.sleep(max(pause, 0.0))
            delay = min(delay * 2, _LAST_POLL)
            now = time.time()
            current = lease.read()
            live = current.live_holder(now) if current is not None else None
            if live is None or time.monotonic() - refreshed >= HEARTBEAT:
                refreshed = time.monotonic()
                attempt = lease.take(waiting=True)
                if attempt.holder is None:
                    notice.done(holder, time.monotonic() - started, "")
                    return Taken(holder=holder, released=attempt.released)
                live = attempt.holder
            if live is not None and live.token != holder.token:
                holder = live  # another kernel took it meanwhile: name the one waited for now
            notice.waiting(holder, time.monotonic() - started)
    except KeyboardInterrupt:
        notice.done(holder, time.monotonic() - started, "interrupted")
        lease.leave()
        raise KeyboardInterrupt(f"stopped waiting for step {lease.step!r}, which "
                                f"{holder.text()} runs") from None


class WaitNotice:
    """"waiting for kernel <pid> on <host>" in the cell: one display, updated as the wait goes
    on and finally replaced by how long it waited; one printed line in a terminal.

    The notice is published before the step's output capture starts, so it is never part of a
    record.
    """

    def __init__(self, display_pub: Any | None, step: str) -> None:
        self._pub = display_pub
        self._step = step
        # Only a kernel's publisher updates a display in place; a terminal's prints each one.
        self._live = display_pub is not None and hasattr(display_pub, "session")
        self._id = f"kitteh-wait-{secrets.token_hex(6)}"
        self._shown: Party | None = None
        self._text = ""

    def waiting(self, holder: Party, waited: float) -> None:
        """Say (again) which kernel this one waits for and since how long."""
        text = f"⧗ waiting for {holder.text()} to finish step {self._step!r}"
        if not self._live:
            if self._shown is None or self._shown.token != holder.token:
                print(text)
            self._shown = holder
            return
        if waited >= 1.0:
            text += f" ({waited:.0f} s)"
        if text != self._text:
            self._publish(text, update=self._shown is not None)
        self._shown, self._text = holder, text

    def done(self, holder: Party, waited: float, outcome: str) -> None:
        """Replace the notice by how long this kernel waited (and the outcome, if not taken)."""
        if not self._live or self._shown is None:
            return
        text = f"⧗ waited {human_seconds(waited)} for {holder.text()}"
        self._publish(f"{text} ({outcome})" if outcome else text, update=True)

    def _publish(self, text: str, *, update: bool) -> None:
        assert self._pub is not None
        html = (f'<div class="kitteh-waiting" style="font-size:85%;opacity:0.7">'
                f"{escape(text)}</div>")
        self._pub.publish({"text/plain": text, "text/html": html},
                          {"kitteh_magic": {"waiting": True, "step": self._step}},
                          transient={"display_id": self._id}, update=update)


class _Heartbeats:
    """One daemon thread renews every lease this process holds (a thread per step would cost
    its start on every execution)."""

    def __init__(self) -> None:
        self._leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kitteh-lease-heartbeat",
                                                daemon=True)
                self._thread.start()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT)
            with self._lock:
                leases = list(self._leases)
            for lease in leases:
                lease.renew()

    def forked(self) -> None:
        """In a forked child the thread is gone, and the leases are the parent's."""
        self._leases, self._lock, self._thread = set(), threading.Lock(), None


_HEARTBEATS = _Heartbeats()
os.register_at_fork(after_in_child=_HEARTBEATS.forked)

_KERNEL_FILE = re.compile(r"kernel-(.+)\.json")
_kernel_id: str | None = None


def kernel_id() -> str:
    """This process's Jupyter kernel id, from ipykernel's connection file name ("" if none)."""
    global _kernel_id
    if _kernel_id is None:
        app = sys.modules.get("ipykernel.kernelapp")
        kernel_app = getattr(app, "IPKernelApp", None)
        name = ""
        if kernel_app is not None and kernel_app.initialized():
            name = Path(str(kernel_app.instance().connection_file or "")).name
        match = _KERNEL_FILE.fullmatch(name)
        _kernel_id = match.group(1) if match else ""
    return _kernel_id


def read_leases(store: Store, session: str,
                ) -> tuple[dict[str, LeaseDoc], list[DamagedRecordError]]:
    """Every lease of a session by step name (one range read), and the damaged ones met."""
    prefix = lease_prefix(session)
    found: dict[str, LeaseDoc] = {}
    damaged: list[DamagedRecordError] = []
    for key, doc in store.json_items(prefix):
        try:
            if isinstance(doc, DamagedRecordError):
                raise doc
            found[unquote(key[len(prefix):])] = LeaseDoc.checked(key, doc)
        except DamagedRecordError as err:
            damaged.append(err)
    return found, damaged


def drop_idle(store: Store, session: str) -> int:
    """Delete the session's leases that no live kernel holds or waits for (``%durable reset``,
    ``kitteh-magic clear``); a damaged one goes too. Returns how many."""
    leases, damaged = read_leases(store, session)
    now = time.time()
    doomed = [lease_key(session, step) for step, doc in leases.items()
              if doc.live_holder(now) is None and not doc.live_waiters(now)]
    doomed += [err.key for err in damaged]
    for key in doomed:
        store.delete(key)
    return len(doomed)
