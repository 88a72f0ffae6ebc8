"""A team's store in PostgreSQL (DESIGN §3 store URL, §4.13, §4.14, §9; issue 11), in real
kernels on a real server (``tests/pgserver.py``: one per test process, a fresh database per test).

A *machine* is a kernel with its own local cache (``KITTEH_MAGIC_CACHE``) and its own copy of
the team's signing key, on the same URL. Every kernel here also has ``KITTEH_MAGIC_DIR`` set to a
folder that must never appear: the URL wins. The local HTTP server counts every call, counter
files count every execution of a cell body, and step marks say what each step did. The tables
are read with psycopg as the contract names them (``kitteh_magic.entries``, ``.blobs``, ...).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oracle
import psycopg
import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel, Result, runs
from test_cli import write_notebook
from test_lease import effects, job, pause_at, wait_for, waiting_texts
from test_store_heals import calls

from kitteh_magic import errors
from kitteh_magic.steps.lease import HOST, LeaseDoc, lease_key
from kitteh_magic.store.frames import decode_json
from kitteh_magic.store.signing import load_or_create_key

pytestmark = pytest.mark.kernel

SESSION = "default"  # a kernel outside Jupyter (no notebook path) names its session so
SCHEMA = "kitteh_magic"


# -- the database, read as the contract names it -----------------------------------------------


class Pg:
    """The team store's tables, read and damaged by the test over its own connections."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as con:
            return con.execute(sql, params or None).fetchall()

    def execute(self, sql: str, *params: object) -> int:
        """Run a statement; the number of rows it touched."""
        with psycopg.connect(self.url, autocommit=True) as con:
            return con.execute(sql, params or None).rowcount

    def keys(self, like: str) -> list[str]:
        return [k for (k,) in self.query(
            f"SELECT key FROM {SCHEMA}.entries WHERE key LIKE %s ORDER BY key", like)]

    def docs(self, like: str) -> list[tuple[str, str | None]]:
        return [(k, d) for k, d in self.query(
            f"SELECT key, doc FROM {SCHEMA}.entries WHERE key LIKE %s ORDER BY key", like)]

    def put_docs(self, saved: list[tuple[str, str | None]]) -> None:
        """Write documents back under their keys (a rollback, or a row written by another)."""
        for key, doc in saved:
            self.execute(f"INSERT INTO {SCHEMA}.entries (key, doc, written) VALUES (%s, %s, 0)"
                         " ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc", key, doc)

    def store_id(self) -> str:
        rows = self.query(f"SELECT value FROM {SCHEMA}.meta WHERE name = 'store_id'")
        assert len(rows) == 1 and rows[0][0], f"no store_id row in {SCHEMA}.meta: {rows}"
        return str(rows[0][0])

    def blob_digests(self) -> list[str]:
        return [d for (d,) in self.query(f"SELECT digest FROM {SCHEMA}.blobs ORDER BY digest")]

    def lease(self, step: str = "job") -> LeaseDoc | None:
        key = lease_key(SESSION, step)
        rows = self.query(f"SELECT doc FROM {SCHEMA}.entries WHERE key = %s", key)
        if not rows:
            return None
        return LeaseDoc.checked(key, decode_json(key, rows[0][0], None))


@pytest.fixture
def pg(pg_url: str) -> Pg:
    return Pg(pg_url)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as srv:
        yield srv


# -- machines: kernels with their own cache and key copy, on one URL ----------------------------


@dataclass
class Machine:
    name: str
    env: dict[str, str]
    cache: Path

    def cache_files(self, store_id: str) -> dict[str, Path]:
        """The large values in this machine's cache: ``<cache>/<store id>/blobs/<ab>/<digest>``."""
        blobs = self.cache / store_id / "blobs"
        return {p.name: p for p in blobs.rglob("*") if p.is_file()} if blobs.is_dir() else {}


@pytest.fixture
def machine(tmp_path: Path, pg_url: str, key_file: Path) -> Callable[[str], Machine]:
    """``machine("A")``: the environment of a kernel on another machine of the team."""
    load_or_create_key(key_file)  # the team's key; every machine gets a copy of the file

    def make(name: str) -> Machine:
        home = tmp_path / f"machine-{name}"
        key = home / "config" / "key"
        key.parent.mkdir(parents=True, mode=0o700)
        shutil.copy2(key_file, key)
        cache = home / "cache"
        return Machine(name, {"KITTEH_MAGIC_STORE": pg_url, "KITTEH_MAGIC_CACHE": str(cache),
                              "KITTEH_MAGIC_KEY_FILE": str(key),
                              "KITTEH_MAGIC_DIR": str(home / "not-this-folder")}, cache)
    return make


def no_local_store(tmp_path: Path) -> None:
    """The URL won: no store folder was made from ``KITTEH_MAGIC_DIR`` or beside the kernel."""
    made = sorted(str(p.relative_to(tmp_path)) for p in (
        tmp_path / "store", tmp_path / ".kitteh", *tmp_path.glob("machine-*/not-this-folder"))
        if p.exists())
    assert not made, f"a local store was created although KITTEH_MAGIC_STORE is a URL: {made}"


@pytest.fixture
def on(start_kernel: Callable[..., Kernel], server: CountingServer,
       ) -> Callable[[Machine], Kernel]:
    """Start a kernel on a machine, with ``BASE`` (the counting server) defined."""
    def start(where: Machine) -> Kernel:
        kernel = start_kernel(**where.env)
        kernel.ok(f"BASE = {server.url!r}")
        return kernel
    return start


def reload(kernel: Kernel, server: CountingServer) -> None:
    """After a restart: the extension and ``BASE`` again."""
    kernel.ok(f"%load_ext kitteh_magic\nBASE = {server.url!r}")


def hits(server: CountingServer, n: int = 3) -> list[int]:
    return [server.hits[f"/item/{i}"] for i in range(n)]


def kill_at(kernel: Kernel, point: str, cell: str) -> None:
    """Run ``cell`` in a kernel that SIGKILLs itself at ``point`` (``faults.py``), then restart
    it (same machine, same environment)."""
    kernel.ok(f"import os\nos.environ['KITTEH_MAGIC_KILL_AT'] = {point!r}")
    kernel.send(cell)
    deadline = time.monotonic() + 60
    while kernel.manager.is_alive():
        assert time.monotonic() < deadline, f"the kernel never reached {point}"
        time.sleep(0.05)
    kernel.restart()


_WARNING = re.compile(r"\b(\w+Warning): (.*)")


def kitteh_warnings(result: Result) -> list[str]:
    """The KittehWarnings the cell showed, as ``Category: message`` lines."""
    found = []
    for line in result.stderr.splitlines():
        match = _WARNING.search(line)
        category = getattr(errors, match.group(1), None) if match else None
        if match and isinstance(category, type) and issubclass(category, errors.KittehWarning):
            found.append(f"{match.group(1)}: {match.group(2)}")
    return found


def damaged(result: Result) -> bool:
    """Whether the cell showed a DamagedStoreWarning."""
    return any(line.startswith("DamagedStoreWarning") for line in kitteh_warnings(result))


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``kitteh-magic`` with exactly ``env`` for the kitteh_magic variables (none inherited)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KITTEH_MAGIC_")}
    return subprocess.run([sys.executable, "-m", "kitteh_magic.cli", *args], cwd=cwd,
                          env={**base, **env}, capture_output=True, text=True, timeout=300)


# -- which store: a URL, a folder, and nothing else ---------------------------------------------


BAD_STORES = {
    "store_redis": ("KITTEH_MAGIC_STORE", "redis://127.0.0.1:6379/0", "redis"),
    "dir_mysql": ("KITTEH_MAGIC_DIR", "mysql://x", "mysql"),
    "store_s3": ("KITTEH_MAGIC_STORE", "s3://b", "s3"),
}


def nothing_created(folder: Path, scheme: str) -> None:
    made = sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(scheme) or p.name in (".kitteh", "store"))
    assert not made, f"a store was created for an unsupported URL: {made}"


@pytest.mark.parametrize("case", ["store_redis", "dir_mysql"])
def test_an_unsupported_url_in_a_kernel_warns_and_the_cell_runs_plain(
        start_kernel: Callable[..., Kernel], counter: Callable[[str], str], tmp_path: Path,
        case: str) -> None:
    variable, value, scheme = BAD_STORES[case]
    env = {"KITTEH_MAGIC_DIR": "", variable: value}
    kernel = start_kernel(**env)
    cell = f"%%durable job\n{counter('job')}\nanswer = 6 * 7\nanswer"
    first = kernel.run(cell)
    assert first.error is None and first.text == "42", first.error
    said = kitteh_warnings(first)
    assert any("'job'" in line and scheme in line and "postgresql" in line for line in said), (
        f"no KittehWarning naming the cell, the scheme {scheme!r} and the supported ones; "
        f"stderr: {first.stderr!r}")
    again = kernel.run(cell)
    assert again.error is None and again.text == "42" and not again.replayed
    assert runs(tmp_path, "job") == 2, "the cell did not run as a plain cell both times"
    nothing_created(tmp_path, scheme)


def test_an_unreachable_server_warns_and_the_cell_runs_plain_at_once(
        start_kernel: Callable[..., Kernel], counter: Callable[[str], str], tmp_path: Path,
        machine: Callable[[str], Machine]) -> None:
    env = machine("A").env
    env["KITTEH_MAGIC_STORE"] = "postgresql://kitteh:pw@127.0.0.1:1/team"  # nobody listens
    kernel = start_kernel(**env)
    cell = f"%%durable job\n{counter('job')}\nanswer = 6 * 7\nanswer"
    for _ in range(2):  # the second cell tries the server again: still at once
        started = time.monotonic()
        result = kernel.run(cell)
        assert result.error is None and result.text == "42", result.error
        assert time.monotonic() - started < 5, "the cell waited for the server"
        said = kitteh_warnings(result)
        assert any(line.startswith("StoreUnavailableWarning") and "'job'" in line
                   and "cannot be reached" in line and "pw@" not in line for line in said), said
    assert runs(tmp_path, "job") == 2
    no_local_store(tmp_path)


def test_durable_store_with_an_unsupported_url_is_a_usage_error(
        kernel: Kernel, tmp_path: Path) -> None:
    before = kernel.ok("%durable store")
    assert "UsageError" not in before.stderr, before.stderr
    result = kernel.run("%durable store s3://b")
    assert "UsageError" in result.stderr, result.stderr
    assert "s3" in result.stderr and "postgresql" in result.stderr, result.stderr
    after = kernel.ok("%durable store")
    assert (after.stdout, after.text) == (before.stdout, before.text), "the store changed"
    nothing_created(tmp_path, "s3")


@pytest.mark.parametrize("case", [*sorted(BAD_STORES), "path_argument"])
def test_an_unsupported_url_on_the_command_line_is_one_line_and_exit_2(
        tmp_path: Path, key_file: Path, case: str) -> None:
    if case == "path_argument":
        scheme, env, args = "s3", {}, ["status", "s3://b"]
    else:
        variable, value, scheme = BAD_STORES[case]
        env, args = {variable: value}, ["status"]
    result = cli(*args, cwd=tmp_path, env={**env, "KITTEH_MAGIC_KEY_FILE": str(key_file)})
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert scheme in lines[0] and "postgresql" in lines[0], lines[0]
    nothing_created(tmp_path, scheme)


def test_durable_store_shows_and_switches_to_a_url(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine], pg: Pg,
        pg_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "folder-store"
    kernel = start_kernel(KITTEH_MAGIC_DIR=str(folder),
                          KITTEH_MAGIC_CACHE=str(tmp_path / "cache"))
    shown = kernel.ok("%durable store")
    assert "UsageError" not in shown.stderr, shown.stderr
    assert str(folder) in shown.stdout + shown.text + str(shown.displays), shown
    kernel.ok(f"%durable store {pg_url}")
    shown = kernel.ok("%durable store")
    where = pg_url.split("@", 1)[1]  # host:port/db (the URL has no password to hide)
    assert where in shown.stdout + shown.text + str(shown.displays), shown
    assert kernel.ok("%%durable job\nanswer = 6 * 7\nanswer").text == "42"
    assert pg.keys(f"km1/ptr/{SESSION}/job"), "the step was not written to the URL's store"
    other = start_kernel(**machine("B").env)
    replayed = other.ok("%%durable job\nanswer = 6 * 7\nanswer")
    assert replayed.mark["state"] == "replayed" and replayed.text == "42"


def test_the_store_trait_selects_the_url(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine], pg: Pg,
        tmp_path: Path, pg_url: str) -> None:
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(f"c.DurableMagics.store = {pg_url!r}\n")
    env = machine("A").env
    del env["KITTEH_MAGIC_STORE"]  # KITTEH_MAGIC_DIR stays: the configuration wins over it
    kernel = start_kernel(IPYTHONDIR=str(tmp_path / "ipython"), **env)
    assert kernel.ok("%%durable job\nanswer = 6 * 7\nanswer").text == "42"
    assert pg.keys(f"km1/ptr/{SESSION}/job"), "c.DurableMagics.store was not used"
    no_local_store(tmp_path)


# -- the schema -------------------------------------------------------------------------------


COLUMNS = {
    "migrations": {"version": "integer", "applied_at": "timestamp with time zone",
                   "description": "text"},
    "meta": {"name": "text", "value": "text"},
    "entries": {"key": "text", "doc": "text", "frame": "bytea",
                "written": "double precision"},
    "blobs": {"digest": "text", "size": "bigint", "chunks": "text[]",
              "written": "double precision"},
    "chunks": {"digest": "text", "data": "bytea"},
}
PRIMARY_KEYS = {"migrations": "version", "meta": "name", "entries": "key", "blobs": "digest",
                "chunks": "digest"}


def test_first_use_creates_the_schema_in_an_empty_database(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine], pg: Pg,
        tmp_path: Path) -> None:
    assert pg.query("SELECT count(*) FROM pg_namespace WHERE nspname = %s", SCHEMA) == [(0,)]
    env = machine("A").env
    env["KITTEH_MAGIC_STORE"] = env["KITTEH_MAGIC_STORE"].replace("postgresql://", "postgres://")
    kernel = start_kernel(**env)
    kernel.ok("%%durable job\nsmall = list(range(10))\nlarge = b'x' * 300_000\nlen(large)")

    found: dict[str, dict[str, str]] = {}
    for table, column, kind, element in pg.query(
            "SELECT c.table_name, c.column_name, c.data_type, e.data_type"
            " FROM information_schema.columns c LEFT JOIN information_schema.element_types e"
            " ON e.object_schema = c.table_schema AND e.object_name = c.table_name"
            " AND e.object_type = 'TABLE' AND e.collection_type_identifier = c.dtd_identifier"
            " WHERE c.table_schema = %s", SCHEMA):
        found.setdefault(table, {})[column] = f"{element}[]" if kind == "ARRAY" else kind
    for table, columns in COLUMNS.items():
        assert table in found, f"no table {SCHEMA}.{table}: {sorted(found)}"
        for column, kind in columns.items():
            assert found[table].get(column) == kind, (
                f"{SCHEMA}.{table}.{column} is {found[table].get(column)!r}, expected {kind!r}")
    keys = dict(pg.query(
        "SELECT tc.table_name, string_agg(k.column_name, ',') FROM"
        " information_schema.table_constraints tc JOIN information_schema.key_column_usage k"
        " ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema"
        " WHERE tc.table_schema = %s AND tc.constraint_type = 'PRIMARY KEY'"
        " GROUP BY tc.table_name", SCHEMA))
    assert {t: keys.get(t) for t in PRIMARY_KEYS} == PRIMARY_KEYS

    assert pg.query(f"SELECT count(*) > 0 FROM {SCHEMA}.migrations") == [(True,)]
    pg.store_id()
    assert pg.keys(f"km1/ptr/{SESSION}/job") and pg.keys("km1/rec/%") and pg.keys("km1/val/%")
    # The small value group is a frame in entries; the large value is a blob of stored chunks.
    assert pg.query(f"SELECT count(*) FROM {SCHEMA}.entries WHERE key LIKE %s"
                    " AND frame IS NOT NULL", "km1/val/%") != [(0,)]
    missing = pg.query(f"SELECT b.digest, c FROM {SCHEMA}.blobs b, unnest(b.chunks) c"
                       f" WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.chunks k WHERE k.digest = c)")
    assert pg.blob_digests() and not missing, f"blobs name chunks that are not stored: {missing}"
    assert pg.query(f"SELECT min(size) >= 300000 FROM {SCHEMA}.blobs") == [(True,)]
    no_local_store(tmp_path)


# -- a durable run on PostgreSQL equals a plain run -----------------------------------------


def test_restart_replay_agrees_with_a_plain_run(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine],
        counter: Callable[[str], str], server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    here = machine("A")

    def start(load: bool = True, **env: str) -> Kernel:
        return start_kernel(load, **{**here.env, **env})

    cells = [
        f"BASE = {server.url!r}\nimport numpy as np",
        textwrap.dedent(f"""\
            %%durable fetch
            import json, urllib.request
            results = []
            for i in range(3):
                with urllib.request.urlopen(f"{{BASE}}/item/{{i}}") as response:
                    results.append(json.loads(response.read())["item"])
            {counter('fetch')}
            print("fetched", results)
            results"""),
        textwrap.dedent(f"""\
            %%durable frame
            big = np.arange(200_000, dtype=np.float64) * (1 + sum(results))
            small = {{"a": [1, 2], "s": "text"}}
            view = big[:5]
            {counter('frame')}
            float(big.sum())"""),
        textwrap.dedent(f"""\
            %%durable derive
            total = sum(results) + int(big[-1])
            small["a"].append(total)
            {counter('derive')}
            print(total)
            total"""),
        "check = total * 2\ncheck",
    ]
    probes = ["results", "small", "float(big.sum())", "big.dtype.str", "view.tolist()",
              "bool(np.shares_memory(view, big))", "total", "check"]
    oracle.check(start, tmp_path, cells, probes, fresh=True)
    # The plain run and the first durable run made the calls; no replay did.
    assert hits(server) == [2, 2, 2]
    assert pg.keys(f"km1/ptr/{SESSION}/%") and pg.blob_digests()
    no_local_store(tmp_path)


def test_a_killed_kernel_resumes_its_journal_from_postgresql(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    kernel = on(machine("A"))
    kill_at(kernel, "journal-entry-written", calls("job"))  # after the first call's entry
    assert hits(server) == [1, 0, 0]
    assert pg.keys(f"km1/jrn/{SESSION}/job%"), "the journal entry is not in PostgreSQL"
    reload(kernel, server)
    result = kernel.ok(calls("job"))
    assert result.text == "3" and result.mark["state"] == "executed"
    assert result.mark["resumed"] == 1
    assert hits(server) == [1, 1, 1]
    assert kernel.ok(calls("job")).replayed
    no_local_store(tmp_path)


def test_a_kernel_killed_after_its_record_replays_it(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer) -> None:
    kernel = on(machine("A"))
    kill_at(kernel, "record-written", calls("job"))
    reload(kernel, server)
    result = kernel.ok(calls("job"))
    assert result.replayed and result.text == "3"
    assert hits(server) == [1, 1, 1]


# -- machine B replays what machine A ran ---------------------------------------------------


TEAM_NOTEBOOK = [
    textwrap.dedent("""\
        %%durable fetch
        import json, urllib.request
        items = []
        for i in range(3):
            with urllib.request.urlopen(f"{BASE}/item/{i}") as response:
                items.append(json.loads(response.read())["item"])
        print("fetched", items)
        items"""),
    textwrap.dedent("""\
        %%durable big
        import numpy as np
        a = np.arange(8_000_000, dtype=np.float64) * (0.5 + sum(items))  # 64 MB
        a[::7] = -1.0
        a.nbytes"""),
    textwrap.dedent("""\
        %%durable summary
        summary = {"n": len(a), "first": float(a[1]), "items": items}
        print(summary)
        summary"""),
]
DIGEST = "__import__('hashlib').sha256(a.tobytes()).hexdigest()"


def run_notebook(kernel: Kernel) -> list[Result]:
    return [kernel.ok(cell, cell_id=f"team-{i}") for i, cell in enumerate(TEAM_NOTEBOOK)]


def test_machine_b_replays_machine_a_without_executing_and_caches_the_large_value(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    a_machine, b_machine = machine("A"), machine("B")
    a = on(a_machine)
    ran = run_notebook(a)
    assert [r.mark["state"] for r in ran] == ["executed"] * 3
    digest_a = a.value(DIGEST)
    assert hits(server) == [1, 1, 1]
    store_id = pg.store_id()
    big = pg.query(f"SELECT digest FROM {SCHEMA}.blobs WHERE size >= 64000000")
    assert big, "the 64 MB array is not a blob in PostgreSQL"

    b = on(b_machine)
    replayed = run_notebook(b)
    assert [r.mark["state"] for r in replayed] == ["replayed"] * 3, [r.marks for r in replayed]
    assert [(r.stdout, r.text) for r in replayed] == [(r.stdout, r.text) for r in ran]
    assert hits(server) == [1, 1, 1], "machine B made calls machine A had made"
    assert b.value(DIGEST) == digest_a
    cached = b_machine.cache_files(store_id)
    assert big[0][0] in cached, (f"the large value was not fetched into B's cache "
                                 f"{b_machine.cache / store_id / 'blobs'}: {sorted(cached)}")
    for digest, path in cached.items():
        assert path.parent.name == digest[:2], f"cache layout is not blobs/<ab>/<digest>: {path}"
    stamps = {d: (p.stat().st_ino, p.stat().st_mtime_ns) for d, p in cached.items()}

    # The chunks are gone from the server: B restores from its own cache, without fetching.
    assert pg.execute(f"DELETE FROM {SCHEMA}.chunks") > 0
    b.restart()
    reload(b, server)
    again = run_notebook(b)
    assert [r.mark["state"] for r in again] == ["replayed"] * 3, [r.stderr for r in again]
    assert not any(kitteh_warnings(r) for r in again), [r.stderr for r in again]
    assert b.value(DIGEST) == digest_a and b.value("summary") == a.value("summary")
    assert {d: (p.stat().st_ino, p.stat().st_mtime_ns)
            for d, p in b_machine.cache_files(store_id).items()} == stamps
    assert hits(server) == [1, 1, 1]
    no_local_store(tmp_path)


def test_the_local_cache_defaults_to_the_xdg_cache_folder(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine], pg: Pg,
        tmp_path: Path) -> None:
    cell = "%%durable big\nlarge = b'z' * 300_000\nlen(large)"
    on(machine("A")).ok(cell)
    b_machine = machine("B")
    del b_machine.env["KITTEH_MAGIC_CACHE"]
    xdg = tmp_path / "xdg-cache"
    b_machine.env["XDG_CACHE_HOME"] = str(xdg)
    b = on(b_machine)
    assert b.ok(cell).mark["state"] == "replayed"
    assert b.value("large[:3]") == b"zzz"
    b_machine.cache = xdg / "kitteh_magic"
    assert set(b_machine.cache_files(pg.store_id())) == set(pg.blob_digests())


def test_kitteh_magic_run_on_machine_b_replays_every_step(
        machine: Callable[[str], Machine], server: CountingServer, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "team.ipynb", [
        f"BASE = {server.url!r}", *TEAM_NOTEBOOK[:1], "x = sum(items) * 10\nx"])
    a_machine, b_machine = machine("A"), machine("B")
    first = cli("run", str(notebook), "--json", cwd=tmp_path, env=a_machine.env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["executed"] == 3
    second = cli("run", str(notebook), "--json", cwd=tmp_path, env=b_machine.env)
    assert second.returncode == 0, second.stdout + second.stderr
    summary = json.loads(second.stdout)
    assert (summary["executed"], summary["replayed"]) == (0, 3), summary
    assert hits(server) == [1, 1, 1]
    no_local_store(tmp_path)


# -- one runner per step across machines (DESIGN §4.13) -----------------------------------------


@pytest.fixture
def team(on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
         tmp_path: Path) -> Callable[..., Kernel]:
    """A kernel on machine ``name`` that knows ``BASE`` and the effect ``note()``."""
    def start(name: str, **env: str) -> Kernel:
        where = machine(name)
        where.env.update(env)
        kernel = on(where)
        kernel.ok(textwrap.dedent(f"""\
            import os
            import kitteh_magic as km

            @km.effect
            def note():
                with open({str(tmp_path / "effect.txt")!r}, "a") as f:
                    f.write("x")
            """))
        return kernel
    return start


def wait_for_waiter(pg: Pg, kernel: Kernel, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        doc = pg.lease()
        if doc is not None and any(w.pid == kernel.pid for w in doc.waiters):
            return
        assert time.monotonic() < deadline, f"kernel {kernel.pid} never waited for the lease"
        time.sleep(0.02)


def item_hits(server: CountingServer) -> list[int]:
    return [server.hits[f"/item/{i}"] for i in range(5)]


def test_a_kernel_on_machine_b_waits_for_machine_a_then_replays_its_record(
        team: Callable[..., Kernel], server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = team("A", **pause_at("lease-taken", go))
    second = team("B")
    cell = job(tmp_path)
    sent = first.send(cell)
    wait_for(Path(f"{go}.reached"))  # A holds the lease and has run nothing yet
    held = pg.lease()
    assert held is not None and held.holder is not None and held.holder.pid == first.pid
    waiting = second.send(cell)
    wait_for_waiter(pg, second)
    go.touch()

    ran = first.collect(sent).raise_for_error()
    replayed = second.collect(waiting).raise_for_error()
    assert item_hits(server) == [1, 1, 1, 1, 1] and effects(tmp_path) == 1
    assert ran.mark["state"] == "executed" and replayed.mark["state"] == "replayed"
    assert ran.text == replayed.text == "[0, 1, 2, 3, 4]"
    texts = waiting_texts(replayed)
    assert texts and f"waiting for kernel {first.pid} on {HOST}" in texts[0]
    doc = pg.lease()
    assert doc is not None and doc.holder is None and doc.waiters == []


def test_a_killed_holders_lease_is_taken_over_by_machine_b_and_its_journal_resumed(
        team: Callable[..., Kernel], machine: Callable[[str], Machine], server: CountingServer,
        pg: Pg, tmp_path: Path) -> None:
    first, second = team("A"), team("B")
    cell = job(tmp_path, block=True)
    first.send(cell)
    wait_for(tmp_path / "ready-body")  # three calls made, the lease held
    doc = pg.lease()
    assert doc is not None and doc.holder is not None and doc.holder.pid == first.pid
    status = cli("status", "--json", cwd=tmp_path, env=machine("C").env)
    assert status.returncode == 0, status.stderr
    [report] = json.loads(status.stdout)
    row = next(r for r in report["steps"] if r["step"] == "job")
    assert row["state"] == "running" and row["holder"]["pid"] == first.pid
    first.kill()
    (tmp_path / "go-body").touch()

    result = second.ok(cell)
    assert waiting_texts(result) == []  # a dead holder on this host: no wait at all
    assert result.text == "[0, 1, 2, 3, 4]" and result.mark["state"] == "executed"
    assert item_hits(server) == [1, 1, 1, 1, 1]  # A's three calls came from its journal
    assert effects(tmp_path) == 1
    doc = pg.lease()
    assert doc is not None and doc.holder is None


# -- the command line on the URL ------------------------------------------------------------


def test_the_command_line_works_against_the_url(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, pg_url: str, tmp_path: Path) -> None:
    kernel = on(machine("A"))
    assert kernel.ok(calls("job")).text == "3"
    kernel.ok("%%durable big\nlarge = b'y' * 300_000\nlen(large)")
    by_env = machine("cli").env
    by_path = {k: v for k, v in by_env.items() if k != "KITTEH_MAGIC_STORE"}

    def ok(*args: str, env: dict[str, str] = by_env) -> str:
        done = cli(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        assert "a bug in kitteh_magic" not in done.stderr, done.stderr
        return done.stdout

    reports = [json.loads(ok("status", "--json")), json.loads(ok("status", pg_url, "--json",
                                                                   env=by_path))]
    for report in reports:
        [session] = report
        assert session["session"] == SESSION
        assert {r["step"]: r["state"] for r in session["steps"]} == {"job": "done",
                                                                     "big": "done"}
    log = json.loads(ok("log", pg_url, "job", "--session", SESSION, "--json", env=by_path))
    assert [c["outcome"] for c in log["calls"]] == ["ok"] * 3
    assert "no damage found" in ok("verify")
    ok("gc")
    assert kernel.ok(calls("job")).replayed  # gc kept what the session uses

    ok("invalidate", pg_url, "job", "--session", SESSION, env=by_path)
    result = kernel.ok(calls("job"))
    assert result.mark["state"] == "executed" and result.text == "3"
    assert hits(server) == [1, 1, 1]  # its calls came from the kept journal

    ok("clear", "--yes")
    assert pg.keys("km1/ptr/%") == [] and pg.keys("km1/rec/%") == []
    assert kernel.ok(calls("job")).mark["state"] == "executed"
    no_local_store(tmp_path)
