"""A record never points at values gc removed while a kernel still held their objects.

``gc --max-size`` (from another process, or another machine of a team) can remove an earlier
step's values while a running kernel still holds the objects they stored and remembers where
(lineage). The kernel's next record must not refer to them: it stores them again (DESIGN
§4.14: the store never lies). Found on the team store; the folder store had it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server import CountingServer, counting_server
from kernel import Kernel
from test_store_heals import calls

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with counting_server() as running:
        yield running


def test_a_record_written_after_gc_trimmed_the_store_replays_elsewhere(
        start_kernel: Callable[..., Kernel], server: CountingServer, kernel_env: dict[str, str],
        tmp_path: Path) -> None:
    cells = {calls("job"): "3",
             "%%durable big\nlarge = bytes(range(256)) * 2_000\nlen(large)": "512000",
             "%%durable other\nother = b'o' * 400_000\nlen(other)": "400000"}
    a = start_kernel()
    a.ok(f"BASE = {server.url!r}")
    for cell, value in cells.items():
        assert a.ok(cell).text == value
    trimmed = subprocess.run([sys.executable, "-m", "kitteh_magic.cli", "gc", "--max-size",
                              "100K", kernel_env["KITTEH_MAGIC_DIR"]], capture_output=True,
                             text=True, env={**os.environ, **kernel_env}, cwd=ROOT, check=False)
    assert trimmed.returncode == 0 and "evicted step 'job'" in trimmed.stdout, trimmed
    for cell, value in cells.items():  # A still holds the objects; their values are gone
        result = a.ok(cell)
        assert result.text == value and result.mark["state"] == "executed"
    assert [server.hits[f"/item/{i}"] for i in range(3)] == [1, 1, 1]  # from the journal
    b = start_kernel()
    b.ok(f"BASE = {server.url!r}")
    for cell, value in cells.items():
        result = b.run(cell)
        assert result.error is None and result.text == value
        assert result.mark["state"] == "replayed", result.stderr
        assert "Warning" not in result.stderr, result.stderr
