"""A real IPython kernel driven through jupyter_client, as the behaviour tests need it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.manager import KernelManager


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
    and their updates, and widget state."""

    @property
    def text(self) -> str:
        """The value's text/plain, or ''."""
        return (self.result or {}).get("text/plain", "")

    @property
    def replayed(self) -> bool:
        """Whether kitteh_magic marked the output as replayed."""
        return any(d.get("metadata", {}).get("kitteh_magic", {}).get("replayed")
                   for d in self.displays)

    def raise_for_error(self) -> Result:
        if self.error:
            raise AssertionError(f"{self.error['ename']}: {self.error['evalue']}\n"
                                 + "\n".join(self.error["traceback"]))
        return self


class Kernel:
    """One kernel process with a client; restart and kill it like a user (or the OOM killer)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3")
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

    def restart(self) -> None:
        """Restart the kernel process (same connection), like Kernel > Restart."""
        self.client.stop_channels()
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
