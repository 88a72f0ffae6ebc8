"""A real Dask cluster for the tests (DESIGN §9: no mocks): a scheduler and workers started from
the venv's ``bin/`` as a user starts them, listening on 127.0.0.1 only.

``dask scheduler --port 0`` picks its own free port and writes its address to a scheduler file
(two pytest-xdist workers picking "free" ports for themselves could pick the same one). The
processes run with ``HOME``, ``XDG_CONFIG_HOME`` and ``KITTEH_MAGIC_KEY_FILE`` pointing into the
cluster's own folder, so a test can tell whether anything on the cluster made or read a signing
key; ``PYTHONPATH`` holds this folder, so the scheduler and workers import the spies, and
``--death-timeout`` / ``--idle-timeout`` end processes that a crashed test run left behind.
:meth:`DaskCluster.stop` stops each process by its pid.

:class:`SchedulerSpy` and :class:`WorkerSpy` are plugins that keep what the cluster was given:
every task's key and its run spec as the scheduler holds it, and on each worker the run specs
it executed (each pickled again where it was received). :func:`inspect_process` looks
through a process's live objects for anything of kitteh_magic's that holds a store, a step or
a key.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
"""The venv's ``bin/``, where ``dask`` is."""


class DaskCluster:
    """One scheduler and ``workers`` worker processes of ``nthreads`` threads each."""

    def __init__(self, workers: int = 2, nthreads: int = 2) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="km-dask-"))
        self.workers = workers
        self.nthreads = nthreads
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.env = {
            **os.environ,
            "HOME": str(self.folder / "home"),
            "XDG_CONFIG_HOME": str(self.folder / "config"),
            "XDG_CACHE_HOME": str(self.folder / "cache"),
            "KITTEH_MAGIC_KEY_FILE": str(self.key_file),
            "PYTHONPATH": os.pathsep.join(filter(None, [
                str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
        }

    @property
    def key_file(self) -> Path:
        """Where kitteh_magic would make its key on a cluster process."""
        return self.folder / "config" / "kitteh_magic" / "key"

    def start(self, timeout: float = 90) -> str:
        """Start the scheduler and the workers; returns the scheduler's address once every
        worker has joined."""
        from distributed import Client

        scheduler_file = self.folder / "scheduler.json"
        self._spawn("scheduler", [
            "scheduler", "--host", HOST, "--port", "0", "--no-dashboard",
            "--scheduler-file", str(scheduler_file), "--idle-timeout", "900s"])
        deadline = time.monotonic() + timeout
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            self._alive_or_fail(deadline)
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        assert self.address.startswith(f"tcp://{HOST}:"), self.address
        for n in range(self.workers):
            self._spawn(f"worker-{n}", [
                "worker", self.address, "--host", HOST, "--nthreads", str(self.nthreads),
                "--no-nanny", "--no-dashboard", "--name", f"w{n}", "--death-timeout", "60s",
                "--local-directory", str(self.folder / f"worker-{n}")])
        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(self.workers, timeout=timeout)
        return self.address

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.folder / f"{name}.log", "wb") as log:  # the process has its own copy
            self.processes.append(subprocess.Popen([str(BIN / "dask"), *args], env=self.env,
                                                   stdout=log, stderr=subprocess.STDOUT,
                                                   cwd=self.folder))

    def _alive_or_fail(self, deadline: float) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"dask process {process.args} exited with "
                                   f"{process.returncode}: {self.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Dask cluster did not start in time: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for log in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        """Stop every process by its pid (SIGTERM, then SIGKILL after 10 s), then remove the
        cluster's folder."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


class SchedulerSpy(SchedulerPlugin):  # type: ignore[misc]
    """Every task the scheduler was given: its key and its run spec (the function and the
    arguments, as the scheduler holds them), pickled again with cloudpickle there.

    A test reads them with ``client.run_on_scheduler(SchedulerSpy.given)``.
    """

    name = "km-spy"

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
        import cloudpickle

        for key in tasks:
            state = scheduler.tasks.get(key)
            self.seen.append((str(key), cloudpickle.dumps(
                None if state is None else state.run_spec)))

    @staticmethod
    def given(dask_scheduler: Any) -> list[tuple[str, bytes]]:
        """What the spy kept since it was last asked."""
        spy = dask_scheduler.plugins[SchedulerSpy.name]
        seen, spy.seen = spy.seen, []
        return seen


class WorkerSpy(WorkerPlugin):  # type: ignore[misc]
    """Every task a worker started: its key and its run spec as the worker received it, pickled
    again with cloudpickle there. A test reads them with ``client.run(WorkerSpy.executed)``."""

    name = "km-spy"

    def __init__(self) -> None:
        self.ran: list[tuple[str, bytes]] = []
        self.worker: Any = None

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: Any, finish: Any, **kwargs: Any) -> None:
        if finish != "executing":
            return
        import cloudpickle

        state = self.worker.state.tasks.get(key)
        self.ran.append((str(key), cloudpickle.dumps(
            None if state is None else state.run_spec)))

    @staticmethod
    def executed(dask_worker: Any) -> list[tuple[str, bytes]]:
        """What the spy kept since it was last asked."""
        spy = dask_worker.plugins[WorkerSpy.name]
        ran, spy.ran = spy.ran, []
        return ran


def install_spies(client: Any) -> None:
    """Put a :class:`SchedulerSpy` on the scheduler and a :class:`WorkerSpy` on every worker."""
    client.register_plugin(SchedulerSpy())
    client.register_plugin(WorkerSpy())


def inspect_process(key_sha256: str) -> dict[str, Any]:
    """What this process (a scheduler or worker, through ``client.run``) holds of kitteh_magic.

    Args:
        key_sha256: the hex SHA-256 of the signing key: the key itself is never sent.

    Returns:
        ``key_file``: whether ``$KITTEH_MAGIC_KEY_FILE`` exists here; ``holders``: the types of
        live objects of kitteh_magic's that hold a store, a key or a step (the store's classes,
        a journal, a step's runtime, a step run, the engine); ``key_copies``: how many
        32-byte strings held by live objects are the key; ``running``: whether kitteh_magic's
        dispatcher has a running step in this process; ``modules``: the kitteh_magic modules
        imported here.
    """
    holding = {"Journal", "StepActivities", "StepRun", "Engine", "Signer", "Store"}
    holders: set[str] = set()
    key_copies = 0
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", None)
        module = module if isinstance(module, str) else ""  # a few C types have a descriptor
        if module.startswith("kitteh_magic") and (
                module.startswith("kitteh_magic.store") or kind.__name__ in holding):
            holders.add(f"{module}.{kind.__qualname__}")
        for ref in gc.get_referents(obj):
            if (type(ref) in (bytes, bytearray) and len(ref) == 32
                    and hashlib.sha256(ref).hexdigest() == key_sha256):
                key_copies += 1
    dispatch = sys.modules.get("kitteh_magic.activities.dispatch")
    return {
        "key_file": Path(os.environ["KITTEH_MAGIC_KEY_FILE"]).exists(),
        "holders": sorted(holders),
        "key_copies": key_copies,
        "running": dispatch is not None and dispatch._RUNNING is not None,
        "modules": sorted(m for m in sys.modules if m.startswith("kitteh_magic")),
    }


def tasks_held(part: str, dask_scheduler: Any = None) -> list[str]:
    """The keys holding ``part`` that the scheduler holds now
    (``client.run_on_scheduler(tasks_held, part)``)."""
    return sorted(str(key) for key in dask_scheduler.tasks if part in str(key))
