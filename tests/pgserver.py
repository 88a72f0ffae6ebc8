"""A real, throwaway PostgreSQL server for the tests (DESIGN §9: no mocks).

Debian's ``postgresql`` package provides the binaries (``scripts/install-postgresql.sh``). The
server listens on 127.0.0.1 only, on a free port, with its data and socket in a folder of its
own; ``fsync=off`` because nothing of it outlives the test session. ``initdb`` refuses to run as
root, so as root the binaries run as an unprivileged system user (``kitteh-pg``, created once)
through ``runuser``. Each pytest-xdist worker starts its own server, and each test gets a fresh
database (:meth:`PgServer.database`), so tests never see each other's tables.

Chosen over ``pytest-postgresql``: its process fixture runs the binaries as the current user, so
it would need the same ``runuser`` step, and one more dependency.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_USER = "kitteh-pg"
"""The system user that runs the server when the tests run as root."""
DB_USER = "kitteh"
"""The database superuser ``initdb`` creates (trust authentication: no password)."""
HOST = "127.0.0.1"
INSTALL_HINT = "run scripts/install-postgresql.sh (it installs Debian's postgresql package)"


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started here: the binaries are missing, or the server failed."""


def find_bin_dir() -> Path:
    """The ``bin`` folder of the highest installed PostgreSQL version.

    Raises:
        PgUnavailable: no ``/usr/lib/postgresql/*/bin`` holds ``initdb`` and ``pg_ctl``.
    """
    found = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
             if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file()]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    if not found:
        raise PgUnavailable("PostgreSQL is not installed (no initdb in "
                            f"/usr/lib/postgresql/*/bin): {INSTALL_HINT}")
    return max(found, key=version)


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)


def ensure_user() -> None:
    """Create the unprivileged system user once (two workers may race: either one wins)."""
    if _run(["id", PG_USER]).returncode == 0:
        return
    made = _run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", PG_USER])
    if made.returncode != 0 and _run(["id", PG_USER]).returncode != 0:
        raise PgUnavailable(f"cannot create the system user {PG_USER!r} that runs PostgreSQL "
                            f"(initdb refuses root): {made.stderr.strip()}")


def free_port() -> int:
    """A port that was free a moment ago (the server may still lose it: :meth:`start` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class PgServer:
    """One PostgreSQL server in a folder of its own, started by :meth:`start`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.as_root = os.geteuid() == 0
        # In /tmp, not under pytest's 0700 folders: the server's user must reach it, and a
        # Unix socket path is limited to about 100 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="kitteh-pg-", dir="/tmp"))
        self.data, self.sockets = self.base / "data", self.base / "sock"
        self.log = self.base / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._started = False

    @property
    def url(self) -> str:
        """The maintenance database's URL (``postgres``)."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql://{DB_USER}@{HOST}:{self.port}/{database}"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", PG_USER, "--", *argv] if self.as_root else list(argv)

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        # cwd: the server's user may not enter the caller's folder (/root).
        return _run(self._cmd(str(self.bin_dir / tool), *args), cwd=self.base)

    def start(self, attempts: int = 5) -> PgServer:
        """initdb, then start on a free port (another port when it was taken meanwhile).

        Raises:
            PgUnavailable: initdb or every start attempt failed (the server's log is quoted).
        """
        self.sockets.mkdir()
        if self.as_root:
            ensure_user()
            shutil.chown(self.base, PG_USER, PG_USER)
            shutil.chown(self.sockets, PG_USER, PG_USER)
        made = self._pg("initdb", "-D", str(self.data), "-U", DB_USER, "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-sync")
        if made.returncode != 0:
            raise PgUnavailable(f"initdb failed ({made.returncode}): {made.stderr.strip()}")
        for _ in range(attempts):
            self.log.unlink(missing_ok=True)  # so that a bind error in it is this attempt's
            self.port = free_port()
            options = (f"-c listen_addresses={HOST} -p {self.port} -k {self.sockets} "
                       "-c fsync=off -c max_connections=200")
            started = self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log),
                               "-o", options, "-w", "-t", "60", "start")
            if started.returncode == 0:
                self._started = True
                return self
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "could not bind" not in log and "already in use" not in log:
                break
        raise PgUnavailable(f"PostgreSQL did not start: {started.stderr.strip()}\n"
                            f"{log[-2000:]}")

    def stop(self) -> None:
        """Stop the server (fast: clients are disconnected) and remove its folder."""
        if self._started:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self._started = False
        shutil.rmtree(self.base, ignore_errors=True)

    def database(self) -> str:
        """Create a fresh, empty database and return its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

