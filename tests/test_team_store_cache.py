"""Large values of a team store (DESIGN §4.7, §4.14, §9): chunks on the PostgreSQL server and
files in each machine's local cache, damaged on purpose. A damaged chunk is a warning and one
recompute; a damaged cache file never gives wrong data; both heal (the run after replays), and a
healed cache restores on its own. The ports of ``test_store_heals.py``'s blob kinds.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from http_server import CountingServer
from kernel import Kernel
from test_team_store import (  # the fixtures machine, on, pg and server are used by name
    SCHEMA,
    Machine,
    Pg,
    damaged,
    machine,
    on,
    pg,
    reload,
    server,
)

pytestmark = pytest.mark.kernel
__all__ = ["machine", "on", "pg", "server"]  # fixtures, imported to be found here


OUTPUTS = textwrap.dedent("""\
    %%durable many
    import json, urllib.request
    with urllib.request.urlopen(f"{BASE}/item/0") as response:
        base = json.loads(response.read())["item"]
    parts = {f"p{i}": bytes([i]) * 300_000 for i in range(6)}
    p0, p1, p2, p3, p4, p5 = (parts[k] for k in sorted(parts))
    total = base + sum(len(v) for v in parts.values())
    total
    """)
EXPECTED = "[p[:2] + p[-2:] for p in (p0, p1, p2, p3, p4, p5)]"
EXPECTED_VALUE = [bytes([i]) * 4 for i in range(6)]


def _swap_chunks(pg: Pg) -> int:
    """Each chunk row gets the next one's data (a value of another step's among them): chunks
    kitteh_magic wrote, under the wrong digests."""
    return pg.execute(f"UPDATE {SCHEMA}.chunks c SET data = o.data FROM (SELECT digest,"
                      " coalesce(lead(data) OVER w, first_value(data) OVER w) AS data"
                      f" FROM {SCHEMA}.chunks WINDOW w AS (ORDER BY digest)) o"
                      " WHERE c.digest = o.digest")


CHUNK_DAMAGE: dict[str, Callable[[Pg], int]] = {
    "chunk_flipped": lambda pg: pg.execute(
        f"UPDATE {SCHEMA}.chunks SET data = set_byte(data, length(data) / 2,"
        " get_byte(data, length(data) / 2) # 255)"),
    "chunk_truncated": lambda pg: pg.execute(
        f"UPDATE {SCHEMA}.chunks SET data = substring(data from 1 for 100)"),
    "chunk_swapped": _swap_chunks,
    "chunk_deleted": lambda pg: pg.execute(f"DELETE FROM {SCHEMA}.chunks"),
    "blob_row_deleted": lambda pg: pg.execute(f"DELETE FROM {SCHEMA}.blobs"),
}


@pytest.mark.parametrize("damage", sorted(CHUNK_DAMAGE))
def test_a_damaged_large_value_on_the_server_heals_on_a_machine_without_it(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, tmp_path: Path, damage: str) -> None:
    kernel = on(machine("A"))
    kernel.ok("%%durable other\nother = b'q' * 300_000")  # chunks of another value
    assert kernel.ok(OUTPUTS).text == "1800000"
    assert len(pg.blob_digests()) >= 2, "the outputs are not a blob: test is moot"
    assert CHUNK_DAMAGE[damage](pg) > 0
    # Machine B: its cache is empty, so the values must come from the server.
    kernel.restart(env={"KITTEH_MAGIC_CACHE": str(machine("B").cache)})
    reload(kernel, server)
    first = kernel.run(OUTPUTS)
    assert first.error is None and first.text == "1800000", first.error
    assert first.mark["state"] == "executed", first.marks
    assert damaged(first), first.stderr
    assert kernel.value(EXPECTED) == EXPECTED_VALUE
    kernel.restart()
    reload(kernel, server)
    again = kernel.run(OUTPUTS)
    assert again.mark["state"] == "replayed", again.stderr
    assert kernel.value(EXPECTED) == EXPECTED_VALUE
    assert server.hits["/item/0"] == 1, "the recompute made its call again"


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _future_version(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4] = 99  # the frame format version byte, as in test_store_heals
    path.write_bytes(bytes(data))


def _as_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


CACHE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped_byte": _flip, "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "future_format": _future_version, "directory": _as_directory, "deleted": Path.unlink,
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_a_damaged_local_cache_file_never_gives_wrong_data_and_heals(
        on: Callable[[Machine], Kernel], machine: Callable[[str], Machine],
        server: CountingServer, pg: Pg, damage: str) -> None:
    kernel = on(machine("A"))
    assert kernel.ok(OUTPUTS).text == "1800000"
    b_machine = machine("B")
    kernel.restart(env={"KITTEH_MAGIC_CACHE": str(b_machine.cache)})
    reload(kernel, server)
    assert kernel.ok(OUTPUTS).mark["state"] == "replayed"
    assert kernel.value(EXPECTED) == EXPECTED_VALUE  # values that load when touched: touched
    files = b_machine.cache_files(pg.store_id())
    assert set(files) == set(pg.blob_digests()), f"B's cache holds {sorted(files)}"
    for path in files.values():
        CACHE_DAMAGE[damage](path)

    kernel.restart()
    reload(kernel, server)
    first = kernel.run(OUTPUTS)
    assert first.error is None and first.text == "1800000", first.error
    assert "InternalWarning" not in first.stderr, first.stderr
    assert kernel.value(EXPECTED) == EXPECTED_VALUE, "wrong data from a damaged cache file"
    kernel.restart()
    reload(kernel, server)
    assert kernel.run(OUTPUTS).mark["state"] == "replayed"
    assert kernel.value(EXPECTED) == EXPECTED_VALUE
    # Healed: the cache alone now restores the values.
    pg.execute(f"DELETE FROM {SCHEMA}.chunks")
    kernel.restart()
    reload(kernel, server)
    healed = kernel.run(OUTPUTS)
    assert healed.mark["state"] == "replayed" and not damaged(healed), healed.stderr
    assert kernel.value(EXPECTED) == EXPECTED_VALUE
    assert server.hits["/item/0"] == 1
