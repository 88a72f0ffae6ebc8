"""Unseen variants of the team store (DESIGN §3 store URL, §4, §9; issue 11): the URL and its
spellings, passwords, keys, caches and servers that change under a running kernel.

Machines are kernels with their own cache and key copy (``machine("A")`` from
``test_team_store``); every durable result is compared with what a plain run gives, and calls
that matter are counted on the local HTTP server. Failures of the current code are
``xfail(strict=True)`` with the reason in one line.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from http_server import CountingServer
from kernel import Kernel, runs
from pgserver import PgServer
from test_cli import write_notebook
from test_team_store import (  # the fixtures machine, on, pg and server are used by name
    Machine,
    Pg,
    calls,
    cli,
    hits,
    kitteh_warnings,
    machine,
    no_local_store,
    on,
    pg,
    server,
)

from kitteh_magic.store.signing import load_or_create_key

pytestmark = pytest.mark.kernel
__all__ = ["machine", "on", "pg", "server"]  # fixtures, imported to be found here

PASSWORD = "Tr0ub4dor"  # the suite's server trusts every local user: any password connects


def with_password(url: str, password: str = PASSWORD) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def everything(result: object) -> str:
    return json.dumps(result, default=lambda o: getattr(o, "__dict__", repr(o)))


LARGE = "%%durable big\nlarge = bytes(range(256)) * 2_000  # 512 kB: a blob\nlen(large)"


# -- the same store under other spellings of its URL --------------------------------------------


def spellings(url: str) -> dict[str, str]:
    scheme, rest = url.split("://", 1)
    user, where = rest.split("@", 1)
    hostport, db = where.split("/", 1)
    host, port = hostport.split(":")
    return {
        "postgres_scheme": f"postgres://{rest}",
        "sslmode_disable": f"{url}?sslmode=disable",
        "localhost": f"{scheme}://{user}@localhost:{port}/{db}",
        "query_host_port": f"{scheme}:///{db}?host={host}&port={port}&user={user}",
        "password_in_query": f"{url}?password={PASSWORD}&application_name=x",
    }


def test_one_store_under_every_spelling_of_its_url_replays_and_shares_one_cache(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, pg_url: str) -> None:
    a = on(machine("A"))
    assert a.ok(calls("job")).text == "3"
    assert a.ok(LARGE).text == "512000"
    store_id = pg.store_id()
    b_machine = machine("B")
    for name, url in spellings(pg_url).items():
        b_machine.env["KITTEH_MAGIC_STORE"] = url
        b = on(b_machine)
        first, big = b.run(calls("job")), b.run(LARGE)
        assert first.error is None and big.error is None, (name, first.error, big.error)
        assert (first.mark["state"], big.mark["state"]) == ("replayed", "replayed"), (
            name, first.stderr, big.stderr)
        assert b.value("large[:3]") == b"\x00\x01\x02", name
        status = b.ok("%durable status --json")
        assert PASSWORD not in status.stdout + status.text + everything(status.displays), name
        b.shutdown()
    assert hits(server) == [1, 1, 1], "a spelling of the URL made the calls again"
    # One store id, so one folder of B's cache, whatever the spelling.
    assert [p.name for p in b_machine.cache.iterdir()] == [store_id]


def test_two_databases_share_one_cache_folder_without_mixing(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine],
        pg_server: PgServer, pg_url: str, server: CountingServer, tmp_path: Path) -> None:
    other_url = pg_server.database()
    one = machine("A")
    two = {**one.env, "KITTEH_MAGIC_STORE": other_url}
    cell = "%%durable big\nlarge = bytes([SEED]) * 600_000\nlarge[:2]"
    first = start_kernel(**one.env)
    second = start_kernel(**two)
    first.ok("SEED = 1")
    second.ok("SEED = 2")
    assert first.ok(cell).text == "b'\\x01\\x01'"
    assert second.ok(cell).text == "b'\\x02\\x02'"
    ids = {Pg(pg_url).store_id(), Pg(other_url).store_id()}
    assert len(ids) == 2 and {p.name for p in one.cache.iterdir()} == ids
    # The same code and the same input in the other store: each replays its own value.
    for kernel, seed in ((first, 1), (second, 2)):
        kernel.restart()
        kernel.ok(f"%load_ext kitteh_magic\nSEED = {seed}")
        result = kernel.ok(cell)
        assert result.mark["state"] == "replayed" and result.text == repr(bytes([seed]) * 2)
    # A third kernel on store two, reading through the shared cache folder, gets store two's.
    third = start_kernel(**two)
    third.ok("SEED = 2")
    assert third.ok(cell).text == "b'\\x02\\x02'"
    assert third.value("large == bytes([2]) * 600_000") is True


# -- passwords are never shown ------------------------------------------------------------------


def test_a_password_in_the_url_never_shows_in_kernel_cli_or_notebook(
        machine: Callable[[str], Machine], start_kernel: Callable[..., Kernel],
        server: CountingServer, pg_url: str, tmp_path: Path) -> None:
    secret = with_password(pg_url)
    a_machine = machine("A")
    a_machine.env["KITTEH_MAGIC_STORE"] = secret
    notebook = write_notebook(tmp_path / "team.ipynb", [
        f"BASE = {server.url!r}", calls("job").replace("%%durable job\n", ""),
        "large = b'p' * 300_000\nlen(large)", "raise ValueError('cell fails on purpose')"])
    out = tmp_path / "out.ipynb"
    ran = cli("run", str(notebook), "-o", str(out), cwd=tmp_path, env=a_machine.env)
    assert ran.returncode == 1, ran.stdout + ran.stderr  # the last cell fails
    shown = {"run": ran.stdout + ran.stderr, "out.ipynb": out.read_text()}
    for command in (["status"], ["status", "--json"], ["log", "--session", "team.ipynb",
                                                        "--json", "x"], ["verify"], ["gc"]):
        done = cli(*command, cwd=tmp_path, env=a_machine.env)
        shown[" ".join(command)] = done.stdout + done.stderr
    kernel = start_kernel(**a_machine.env)
    for code in ("%durable store", "%durable status", "%durable status --json",
                 "%durable session team.ipynb", "%durable status", "%durable log job",
                 "%durable gc", "%durable bogus-subcommand"):
        result = kernel.run(code)
        shown[code] = everything(result.__dict__)
    leaked = [where for where, text in shown.items() if PASSWORD in text]
    assert not leaked, f"the password shows in {leaked}"
    assert "***" in shown["%durable store"], shown["%durable store"]


PERCENT_PASSWORD = "50%off!"  # a literal '%' in a password, as people type it into a URL


def test_a_password_with_a_percent_sign_never_shows(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine],
        counter: Callable[[str], str], pg_url: str, tmp_path: Path) -> None:
    env = machine("A").env
    env["KITTEH_MAGIC_STORE"] = with_password(pg_url, PERCENT_PASSWORD)
    done = cli("status", cwd=tmp_path, env=env)
    kernel = start_kernel(**env)
    cell = f"%%durable job\n{counter('job')}\nanswer = 6 * 7\nanswer"
    result = kernel.run(cell)
    assert result.error is None and result.text == "42", result.error
    assert runs(tmp_path, "job") == 1
    shown = {"cli": done.stdout + done.stderr, "cell": everything(result.__dict__)}
    leaked = [where for where, text in shown.items() if "50%of" in text]
    assert not leaked, f"the password shows in {leaked}: {shown}"


# -- a URL that is not one ----------------------------------------------------------------------


def test_a_malformed_url_is_one_line_not_a_crash(
        start_kernel: Callable[..., Kernel], machine: Callable[[str], Machine],
        counter: Callable[[str], str], tmp_path: Path) -> None:
    env = machine("A").env
    env["KITTEH_MAGIC_STORE"] = f"postgresql://ann:{PASSWORD}@[::1:5432/team"
    done = cli("status", cwd=tmp_path, env=env)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (
        done.returncode, done.stderr)
    assert "a bug in kitteh_magic" not in done.stderr and PASSWORD not in done.stderr
    kernel = start_kernel(False, **env)
    loaded = kernel.run("%load_ext kitteh_magic")
    assert loaded.error is None, loaded.error
    cell = f"%%durable job\n{counter('job')}\nanswer = 6 * 7\nanswer"
    result = kernel.run(cell)
    assert result.error is None and result.text == "42", result.error
    assert any(w.startswith("Store") for w in kitteh_warnings(result)), result.stderr
    assert PASSWORD not in everything(result.__dict__)


# -- a machine with another key -----------------------------------------------------------------


def test_a_machine_with_another_key_never_unpickles_and_says_so(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    canary = tmp_path / "unpickled"
    step = (f"%%durable canary\nclass Canary:\n    def __reduce__(self):\n"
            f"        return (open, ({str(canary)!r}, 'a'))\nobj = Canary()\n'made'")
    a = on(machine("A"))
    assert a.ok(calls("job")).text == "3"
    assert a.ok(LARGE).text == "512000"
    assert a.ok(step).text == "'made'" and not canary.exists()
    stranger = machine("C")
    key = Path(stranger.env["KITTEH_MAGIC_KEY_FILE"])
    key.unlink()
    load_or_create_key(key)  # a key of its own: a misconfigured teammate
    c = on(stranger)
    results = [c.run(calls("job")), c.run(LARGE), c.run(step)]
    for result in results:  # the store refuses C: its cells run plain, and say why
        assert result.error is None and not result.marks, result.stderr
    assert [r.text for r in results] == ["3", "512000", "'made'"]
    assert not canary.exists(), "machine C unpickled a record signed with another key"
    said = [w for r in results for w in kitteh_warnings(r)]
    assert all(w.startswith("StoreUnavailableWarning") and "another key" in w for w in said), (
        f"C was not told its key differs: {said}")
    assert c.value("large == bytes(range(256)) * 2_000") is True
    assert hits(server) == [2, 2, 2]  # A's journal is not C's to trust


def test_a_machine_with_another_key_leaves_the_teams_records_alone(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path) -> None:
    a_machine = machine("A")
    a = on(a_machine)
    assert a.ok(calls("job")).text == "3"
    stranger = machine("C")
    key = Path(stranger.env["KITTEH_MAGIC_KEY_FILE"])
    key.unlink()
    load_or_create_key(key)
    c = on(stranger)
    assert c.run(calls("job")).text == "3"
    b = on(machine("B"))  # a teammate with the right key
    again = b.run(calls("job"))
    assert again.error is None and again.text == "3"
    assert again.mark["state"] == "replayed", again.stderr
    assert hits(server) == [2, 2, 2], "the team paid again for the stranger's mistake"


# -- the server goes away and comes back under an idle kernel -----------------------------------


def restart_server(pg_server: PgServer) -> None:
    done = pg_server._pg("pg_ctl", "-D", str(pg_server.data), "-l", str(pg_server.log),
                         "-m", "fast", "-w", "restart")
    assert done.returncode == 0, done.stderr


THREADED = textwrap.dedent("""\
    %%durable pool
    import json, urllib.request
    from concurrent.futures import ThreadPoolExecutor
    def get(i):
        with urllib.request.urlopen(f"{BASE}/item/{i}") as response:
            return json.loads(response.read())["item"]
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(get, range(16)))
    sum(got)
    """)


def test_a_server_restart_under_an_idle_kernel_never_breaks_a_cell(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg_server: PgServer, counter: Callable[[str], str],
        tmp_path: Path) -> None:
    a = on(machine("A"))
    assert a.ok(THREADED).text == "120"  # the pool holds several connections now
    assert a.ok(calls("job")).text == "3"
    restart_server(pg_server)
    cells = [calls("job"), THREADED.replace("range(16)", "range(1, 17)"),
             f"%%durable plain\n{counter('plain')}\nx = 1\nx", calls("job")] * 3
    values = ["3", "136", "1", "3"] * 3
    for cell, value in zip(cells, values, strict=True):
        result = a.run(cell)
        assert result.error is None and result.text == value, (cell, result.error)
        said = kitteh_warnings(result)
        assert all(w.startswith("StoreUnavailableWarning") for w in said), result.stderr
    assert runs(tmp_path, "plain") <= 3
    # Eventually the kernel uses the server again, from threads too.
    final = a.run(THREADED.replace("range(16)", "range(2, 18)"))
    assert final.error is None and final.text == "152"
    assert final.mark["state"] == "executed", final.stderr
    assert a.ok(THREADED.replace("range(16)", "range(2, 18)")).mark["state"] == "replayed"


def test_after_a_server_restart_the_second_cell_is_durable_again(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg_server: PgServer) -> None:
    a = on(machine("A"))
    assert a.ok(THREADED).text == "120"  # the pool holds several connections now
    assert a.ok(calls("job")).text == "3"
    restart_server(pg_server)
    first = a.run(calls("job"))  # may warn and run plain (DESIGN: never crash)
    assert first.error is None and first.text == "3"
    second = a.run(calls("job"))
    assert second.error is None and second.text == "3"
    assert second.marks and second.mark["state"] == "replayed", second.stderr
    assert "discarding closed connection" not in first.stderr + second.stderr


# -- the database is dropped and created again under a running kernel ---------------------------


def recreate(pg_server: PgServer, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.url, autocommit=True) as con:
        con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')


SMALL = "%%durable small\nsmall = {'k': list(range(50)), 's': 'v' * 100}\nlen(small['k'])"
SMALL_AGAIN = ("%%durable small2\nsmall = {'k': [i for i in range(50)], 's': 'v' * 100}\n"
               "len(small['k'])")


def test_a_recreated_database_gets_every_value_a_running_kernel_writes_again(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg_server: PgServer, pg: Pg, pg_url: str) -> None:
    a_machine = machine("A")
    a = on(a_machine)
    assert a.ok(calls("job")).text == "3"
    assert a.ok(LARGE).text == "512000"
    assert a.ok(SMALL).text == "50"
    old_id = pg.store_id()
    recreate(pg_server, pg_url)
    b = on(machine("B"))  # the first to meet the empty database: a new store
    fresh = b.ok(calls("job"))
    assert fresh.mark["state"] == "executed" and fresh.text == "3"
    assert pg.store_id() != old_id
    # Kernel A never restarted: the next cell may warn and run plain, then A works again.
    for cell, value in ((calls("job"), "3"), (LARGE, "512000"), (SMALL_AGAIN, "50")) * 3:
        result = a.run(cell)
        assert result.error is None and result.text == value, result.error
        assert all(w.startswith("StoreUnavailableWarning") for w in kitteh_warnings(result))
    assert a.value("large == bytes(range(256)) * 2_000") is True
    # What A wrote since is whole in the new store: machine C replays it from the server.
    c = on(machine("C"))
    for cell, value in ((calls("job"), "3"), (LARGE, "512000"), (SMALL_AGAIN, "50")):
        result = c.run(cell)
        assert result.error is None and result.text == value, result.error
        assert result.mark["state"] == "replayed" and not kitteh_warnings(result), (
            result.stderr)
    assert c.value("large == bytes(range(256)) * 2_000") is True
    assert c.value("small['k'] == list(range(50))") is True
    # A's call, B's after the recreation, and at most A's first cell after it, run plain.
    assert all(n in (2, 3) for n in hits(server)), hits(server)


def test_a_kernel_alone_on_a_recreated_database_becomes_durable_again(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg_server: PgServer, pg_url: str) -> None:
    a = on(machine("A"))
    assert a.ok(calls("job")).text == "3"
    recreate(pg_server, pg_url)
    states = []
    for _ in range(4):
        result = a.run(calls("job"))
        assert result.error is None and result.text == "3", result.error
        states.append(result.marks[0]["state"] if result.marks else "plain")
    assert states[-2:] == ["executed", "replayed"] or states[-1] == "replayed", states


# -- a machine whose cache cannot be written ----------------------------------------------------

FULL = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))")
"""From now on this kernel cannot write a file beyond 100 kB (EFBIG): a full cache disk."""


def test_a_machine_whose_cache_is_full_gets_right_values_and_no_crash(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg) -> None:
    a = on(machine("A"))
    assert a.ok(calls("job")).text == "3"
    assert a.ok(LARGE).text == "512000"
    b = on(machine("B"))
    b.ok(FULL)
    results = {}
    for name, cell, value in (("job", calls("job"), "3"), ("big", LARGE, "512000"),
                              ("new", LARGE.replace("big", "new").replace("2_000", "3_000"),
                               "768000")):
        result = b.run(cell)
        assert result.error is None and result.text == value, (name, result.error)
        assert not [w for w in kitteh_warnings(result) if w.startswith("InternalWarning")]
        results[name] = result
    assert results["job"].mark["state"] == "replayed"
    assert b.value("large == bytes(range(256)) * 3_000") is True
    assert hits(server) == [1, 1, 1]


def test_a_full_cache_on_one_machine_never_deletes_the_teams_value(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg) -> None:
    a = on(machine("A"))
    assert a.ok(LARGE).text == "512000"
    blobs = pg.blob_digests()
    assert blobs
    b = on(machine("B"))
    b.ok(FULL)
    result = b.run(LARGE)
    assert result.error is None and result.text == "512000"
    assert not any(w.startswith("DamagedStoreWarning") for w in kitteh_warnings(result)), (
        "B's full disk was reported as damage of the store: " + result.stderr)
    assert pg.blob_digests() == blobs, "B deleted the team's value from the server"
    c = on(machine("C"))
    again = c.run(LARGE)
    assert again.mark["state"] == "replayed" and not kitteh_warnings(again), again.stderr


def test_a_machine_whose_cache_folder_cannot_be_made_runs_cells_plain_and_says_where(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, tmp_path: Path) -> None:
    a = on(machine("A"))
    assert a.ok(calls("job")).text == "3"
    b_machine = machine("B")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    b_machine.env["KITTEH_MAGIC_CACHE"] = str(blocker / "cache")
    b = on(b_machine)
    result = b.run(calls("job"))
    assert result.error is None and result.text == "3", result.error
    said = kitteh_warnings(result)
    assert said and all(w.startswith("StoreUnavailableWarning") for w in said), result.stderr
    assert any(str(blocker) in w and "KITTEH_MAGIC_CACHE" in w for w in said), said
    no_local_store(tmp_path)
