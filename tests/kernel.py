"""A real IPython kernel driven through jupyter_client, as the behaviour tests need it."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.manager import KernelManager
from traitlets.config import Config

MARK_ID, MARK_MIME = "kitteh-magic-step", "application/vnd.kitteh-magic.step+json"
"""The step mark's display id and MIME type (``kitteh_magic/steps/mark.py``), spelled out: a
test that imported them would not notice the product renaming them."""


@dataclass
class Result:
    """Everything one execution sent back."""

    stdout: str = ""
    stderr: str = ""
    displays: list[dict[str, Any]] = field(default_factory=list)
    """display_data messages' content (data + metadata)."""
    result: dict[str, Any] | None = None
    """execute_result data, if the cell had a value."""
    error: dict[str, Any] | None = None
    """ename, evalue, traceback when the cell failed."""
    seen: list[str] = field(default_factory=list)
    """Every text the user saw besides the value, progress bars included: streams, displays
    and their updates, and widget state (not the step marks: no frontend shows them)."""
    marks: list[dict[str, Any]] = field(default_factory=list)
    """The step marks kitteh_magic sent (``steps/mark.py``): ``update_display_data`` of the
    display id ``kitteh-magic-step``, which frontends drop; one per step the cell ran."""

    @property
    def text(self) -> str:
        """The value's text/plain, or ''."""
        return (self.result or {}).get("text/plain", "")

    @property
    def replayed(self) -> bool:
        """Whether kitteh_magic's step mark says a step of the cell was replayed."""
        return any(mark["state"] == "replayed" for mark in self.marks)

    @property
    def mark(self) -> dict[str, Any]:
        """The cell's one step mark (AssertionError when it sent none or several)."""
        assert len(self.marks) == 1, f"expected one step mark, got {self.marks}"
        return self.marks[0]

    def raise_for_error(self) -> Result:
        if self.error:
            raise AssertionError(f"{self.error['ename']}: {self.error['evalue']}\n"
                                 + "\n".join(self.error["traceback"]))
        return self


def ipc_settings() -> dict[str, str]:
    """Kernel sockets as files in a folder of their own (``KernelManager(**ipc_settings())``).

    Over TCP, jupyter_client picks free ports and the kernel binds them a moment later; two test
    workers starting kernels at once can pick the same port ("Address already in use", "Kernel
    died before replying to kernel_info"). Socket files cannot collide. The folder is in /tmp
    (a socket path is limited to about 100 bytes) and goes when the process ends.
    """
    folder = tempfile.mkdtemp(prefix="km-k-", dir="/tmp")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return {"transport": "ipc", "ip": os.path.join(folder, "k")}


def ipc_config() -> Config:
    """:func:`ipc_settings` as traitlets config, for nbclient's ``NotebookClient(config=...)``."""
    return Config({"KernelManager": ipc_settings()})


class Kernel:
    """One kernel process with a client; restart and kill it like a user (or the OOM killer)."""

    def __init__(self, cwd: Path, env: dict[str, str], connection_file: Path | None = None) -> None:
        """Start it in ``cwd`` with ``env`` added to this process's environment; with a
        ``connection_file`` named as Jupyter names them (``<runtime>/kernel-<id>.json``), the
        kernel knows its id and runtime folder as under a Jupyter server."""
        self.manager = KernelManager(kernel_name="python3", **ipc_settings(), **(
            {"connection_file": str(connection_file)} if connection_file else {}))
        self.manager.start_kernel(cwd=str(cwd), env={**os.environ, **env})
        self._connect()

    def _connect(self) -> None:
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return int(self.manager.provisioner.process.pid)  # type: ignore[union-attr]

    def send(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request (with the cell id in its metadata, as JupyterLab does)."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}
        msg = self.client.session.msg("execute_request", content,
                                      metadata={"cellId": cell_id or str(uuid.uuid4())})
        self.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(self, msg_id: str, timeout: float = 120) -> Result:
        """Gather the outputs of one request until the kernel is idle again."""
        result = Result()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status within {timeout} s")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                result.seen.append(content["text"])
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif (kind == "update_display_data"
                  and (content.get("transient") or {}).get("display_id") == MARK_ID):
                result.marks.append(content["data"][MARK_MIME])
            elif kind in ("display_data", "update_display_data"):
                result.seen.extend(str(v) for v in content["data"].values())
                if kind == "display_data":
                    result.displays.append(content)
            elif kind in ("comm_open", "comm_msg"):
                result.seen.append(str(content.get("data")))
            elif kind == "execute_result":
                result.result = content["data"]
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                return result

    def run(self, code: str, cell_id: str | None = None, timeout: float = 120) -> Result:
        """Execute code and wait for it."""
        return self.collect(self.send(code, cell_id), timeout)

    def ok(self, code: str, cell_id: str | None = None) -> Result:
        """Execute code that must not fail."""
        return self.run(code, cell_id).raise_for_error()

    def value(self, expression: str) -> Any:
        """Evaluate an expression in the kernel and bring its repr back as a Python literal."""
        import ast

        # The result is the repr of a repr: text/plain of a str shows it quoted once more.
        return ast.literal_eval(ast.literal_eval(self.ok(f"repr({expression})").text))

    def restart(self, env: dict[str, str] | None = None) -> None:
        """Restart the kernel process (same connection and id), like Kernel > Restart; ``env``
        changes the variables it names first, as Jupyter server does when a notebook is renamed
        (``JPY_SESSION_NAME``)."""
        self.client.stop_channels()
        if env is not None:
            self.manager.update_env(env=env)
        self.manager.restart_kernel(now=True)
        self._connect()

    def kill(self) -> None:
        """SIGKILL the kernel process, as the out-of-memory killer would."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.manager.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def runs(directory: Path, name: str) -> int:
    """How often the counter ``name`` (see the ``counter`` fixture) was bumped."""
    path = directory / f"runs-{name}.txt"
    return len(path.read_text()) if path.exists() else 0
