"""The store interface on both engines: the embedded folder and PostgreSQL (a real server).

Every behaviour the kernel relies on is checked on each engine with the same test, so the
PostgreSQL store cannot drift from the embedded one; then what only a shared store has: the
local cache of large values, chunks, the schema and its version, several machines, a server that
cannot be reached.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from kitteh_magic import locate
from kitteh_magic.errors import DamagedRecordError, StoreError, StoreURLError
from kitteh_magic.store import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
BIG = 3 * 2**20  # a large value (above the 64 KiB inline limit): one chunk
CHUNKED = 20 * 2**20  # three chunks of 8 MiB


@pytest.fixture(params=["embedded", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store is: a folder, or a fresh database on the test's PostgreSQL server."""
    if request.param == "embedded":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opener(engine: str, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Open stores at ``engine`` (``machine``: a cache folder of its own), closed at the end."""
    opened: list[Store] = []

    def open_(machine: str = "a", **options: Any) -> Store:
        if engine.startswith("postgresql"):
            options.setdefault("cache", tmp_path / f"cache-{machine}")
        store = open_store(engine, key_file=tmp_path / "key", **options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_values_round_trip_by_content(opener: Callable[..., Store]) -> None:
    store = opener()
    small = {"a": [1, 2, 3], "s": "x" * 100}
    ref = store.put_value(small)
    assert ref["kind"] == "inline" and store.get_value(ref) == small
    assert store.put_value(dict(small)) == ref  # equal content, one value
    array = np.random.default_rng(0).random(CHUNKED // 8)
    big = store.put_value(array)
    assert big["kind"] == "blob"
    back = store.get_value(big)
    assert isinstance(back, np.ndarray) and np.array_equal(back, array)
    back[0] = -1.0  # restored arrays are writable and never write back
    assert np.array_equal(store.get_value(big), array)
    assert store.has_value(big) and store.has_value(ref)
    assert store.values_size() >= CHUNKED


def test_documents_signed_and_plain(opener: Callable[..., Store]) -> None:
    store = opener()
    store.put_json("km1/ptr/s/a", {"state": "done"})
    store.put_json("km1/rec/k", {"outputs": {"x": 1}}, sign=True)
    store.write_json("km1/jrn/s/a/0", {"n": 0}, sign=True)
    assert store.get_json("km1/ptr/s/a") == {"state": "done"}
    assert store.get_json("km1/rec/k", signed=True) == {"outputs": {"x": 1}}
    assert store.get_json("km1/jrn/s/a/0", signed=True) == {"n": 0}
    assert store.get_json("km1/none") is None
    with pytest.raises(DamagedRecordError) as err:
        store.get_json("km1/ptr/s/a", signed=True)  # written unsigned
    assert err.value.reason == "signature"


def test_keys_sort_bytewise_and_prefixes_are_exact(opener: Callable[..., Store]) -> None:
    # A database's default collation (en_US) would sort "B" with "b" and skip punctuation;
    # prefixes are ranges of the key order, so the order must be the bytes'.
    store = opener()
    names = ["km1/ptr/s/B", "km1/ptr/s/a", "km1/ptr/s/a b", "km1/ptr/s/_x", "km1/ptr/s/é",
             "km1/ptr/s0/z", "km1/ptr/sa/z", "km1/ptr/s/-1"]
    for name in names:
        store.put_json(name, {"n": name})
    assert store.keys("km1/ptr/s/") == sorted(n for n in names if n.startswith("km1/ptr/s/"))
    assert [k for k, _ in store.json_items("km1/ptr/s/")] == store.keys("km1/ptr/s/")
    assert store.delete_prefix("km1/ptr/s/") == 6
    assert store.keys("km1/ptr/") == ["km1/ptr/s0/z", "km1/ptr/sa/z"]


def test_transaction_commits_together_or_not_at_all(opener: Callable[..., Store]) -> None:
    store = opener()
    with pytest.raises(RuntimeError), store.transaction():
        store.put_json("km1/ptr/s/a", {"n": 1})
        store.put_json("km1/ptr/s/b", {"n": 2})
        raise RuntimeError("the step failed half-way")
    assert store.keys("km1/ptr/") == []
    with store.transaction():
        store.put_json("km1/ptr/s/a", {"n": 1})
        with store.transaction():  # nested: the outer one commits
            store.put_json("km1/ptr/s/b", {"n": 2})
    assert store.keys("km1/ptr/") == ["km1/ptr/s/a", "km1/ptr/s/b"]


def _add_many(location: str, key_file: str, cache: str, n: int) -> None:
    store = open_store(location, key_file=Path(key_file),
                       **({"cache": Path(cache)} if location.startswith("postgresql") else {}))
    for _ in range(n):
        store.update_json("km1/lease/s/a", lambda cur: {"n": (cur or {}).get("n", 0) + 1})
    store.close()


def test_update_is_atomic_across_processes(engine: str, tmp_path: Path,
                                           opener: Callable[..., Store]) -> None:
    # The lease's read-modify-write: no increment may be lost between processes (machines).
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_add_many, args=(engine, str(tmp_path / "key"),
                                                   str(tmp_path / f"cache{i}"), 40))
               for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert opener().get_json("km1/lease/s/a") == {"n": 120}


def test_update_deletes_and_replaces_damage(opener: Callable[..., Store]) -> None:
    store = opener()
    store.update_json("km1/lease/s/a", lambda cur: {"n": 1})
    assert store.update_json("km1/lease/s/a", lambda cur: None) is None
    assert store.get_json("km1/lease/s/a") is None
    store.put_value(b"not a document" * 1)  # a frame row under a value key
    seen: list[DamagedRecordError] = []
    key = store.keys("km1/val/")[0]
    assert store.update_json(key, lambda cur: {"fixed": cur is None}, damaged=seen.append) \
        == {"fixed": True}
    assert len(seen) == 1 and seen[0].reason == "format"


def test_collect_keeps_live_and_young_values(opener: Callable[..., Store]) -> None:
    store = opener()
    keep = store.put_value(list(range(10)))
    drop = store.put_value(list(range(11)))
    big_drop = store.put_value(np.arange(BIG // 8, dtype=np.int64))
    young = time.time() - 3600
    assert store.collect({keep["digest"]}, keep_after=young) == 0  # all written just now
    freed = store.collect({keep["digest"]})
    assert freed >= BIG
    assert store.has_value(keep)
    assert not store.has_value(drop) and not store.has_value(big_drop)
    with pytest.raises(DamagedRecordError) as err:
        store.get_value(big_drop)
    assert err.value.reason == "missing-blob"


def test_heal_and_verify_find_a_tampered_small_value(engine: str, opener: Callable[..., Store],
                                                     tmp_path: Path) -> None:
    store = opener()
    ref = store.put_value({"k": "v" * 50})
    key = f"km1/val/{ref['digest']}"
    _tamper_row(engine, tmp_path, key)
    if engine.startswith("postgresql"):
        store = opener("b")  # another process: nothing kept in memory
    assert [e.reason for e in store.verify_all()] == ["checksum"]
    assert store.heal({ref["digest"]}) == [ref["digest"]]
    assert not store.has_value(ref) and store.verify_all() == []
    assert store.put_value({"k": "v" * 50}) == ref  # written again: healed
    assert store.get_value(ref) == {"k": "v" * 50}


def _tamper_row(engine: str, tmp_path: Path, key: str) -> None:
    """Flip a byte in the middle of a small value's frame, behind the store's back."""
    if engine.startswith("postgresql"):
        with psycopg.connect(engine, autocommit=True) as con:
            con.execute("UPDATE kitteh_magic.entries SET frame = overlay(frame placing"
                        " '\\xff'::bytea from 60 for 1) WHERE key = %s", (key,))
        return
    import sqlite3

    with sqlite3.connect(Path(engine) / "index" / "cache.db", isolation_level=None) as con:
        (value,), = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
        value = bytearray(value)
        value[59] ^= 0xFF
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(value), key))


def test_unsupported_urls_name_the_scheme_and_create_nothing(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("redis://127.0.0.1:6379/0", "mysql://u@h/db", "s3://bucket/x", "HTTP://h/x"):
        with pytest.raises(StoreURLError) as err:
            open_store(url)
        text = str(err.value)
        scheme = url.partition(":")[0].lower()
        assert repr(scheme) in text and "postgresql://" in text and "\n" not in text
        with pytest.raises(StoreURLError):
            locate.configured_store({"KITTEH_MAGIC_STORE": url})
        with pytest.raises(StoreURLError):
            locate.configured_store({"KITTEH_MAGIC_DIR": url})
    with pytest.raises(StoreURLError):
        locate.configured_store({"KITTEH_MAGIC_DIR": "postgresql://h/db"})  # folders only
    with pytest.raises(StoreURLError):
        locate.parse_store("postgresql://")  # names no server or database
    assert list(tmp_path.iterdir()) == []


def test_passwords_never_show(tmp_path: Path) -> None:
    url = "postgresql://ann:s3cret-pw@127.0.0.1:1/team?password=other-pw"
    shown = [str(locate.parse_store(url)), repr(locate.parse_store(url))]
    with pytest.raises(StoreError) as err:
        open_store(url, key_file=tmp_path / "key", cache=tmp_path / "cache")
    shown.append(str(err.value))
    for text in shown:
        assert "s3cret" not in text and "other-pw" not in text and "ann:***@" in text


def test_an_unreachable_server_is_a_store_error_soon(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        open_store("postgresql://kitteh@127.0.0.1:1/db", key_file=tmp_path / "key",
                   cache=tmp_path / "cache")
    assert time.monotonic() - started < 15
    assert "cannot be reached" in str(err.value) and "KITTEH_MAGIC_STORE" in str(err.value)
    assert not (tmp_path / "cache").exists()


# -- what only the shared store has ------------------------------------------------------------


def test_schema_is_created_once_with_its_version(pg_url: str, tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from kitteh_magic.store import open_store;"
              "s = open_store(sys.argv[1], key_file=Path(sys.argv[2]), cache=Path(sys.argv[3]));"
              "print(s.directory.name); s.close()")
    runs = [subprocess.Popen([sys.executable, "-c", script, pg_url, str(tmp_path / "key"),
                              str(tmp_path / f"c{i}")], stdout=subprocess.PIPE, text=True)
            for i in range(4)]  # four machines meet an empty database at once
    ids = {run.communicate(timeout=120)[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    with psycopg.connect(pg_url) as con:
        versions = con.execute("SELECT version FROM kitteh_magic.migrations").fetchall()
        (store_id,), = con.execute(
            "SELECT value FROM kitteh_magic.meta WHERE name = 'store_id'").fetchall()
    assert versions == [(1,)] and ids == {store_id}


def test_a_newer_schema_is_refused(pg_url: str, tmp_path: Path) -> None:
    open_store(pg_url, key_file=tmp_path / "key", cache=tmp_path / "c").close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("INSERT INTO kitteh_magic.migrations (version, description) VALUES (99, 'x')")
    with pytest.raises(StoreError, match=r"newer kitteh_magic .* 99"):
        open_store(pg_url, key_file=tmp_path / "key", cache=tmp_path / "c")


def test_large_values_are_fetched_once_per_machine(pg_url: str, tmp_path: Path) -> None:
    key = tmp_path / "key"
    a = open_store(pg_url, key_file=key, cache=tmp_path / "a")
    array = np.random.default_rng(1).random(CHUNKED // 8)
    ref = a.put_value(array)
    a.close()
    b = open_store(pg_url, key_file=key, cache=tmp_path / "b")
    cached = b.directory / "blobs" / ref["digest"][:2] / ref["digest"]
    assert not cached.exists()
    assert np.array_equal(b.get_value(ref), array)
    assert cached.is_file()
    b.close()
    with psycopg.connect(pg_url, autocommit=True) as con:  # the server loses every chunk
        con.execute("DELETE FROM kitteh_magic.chunks")
    again = open_store(pg_url, key_file=key, cache=tmp_path / "b")
    assert np.array_equal(again.get_value(ref), array)  # from this machine's cache, mapped
    again.close()
    c = open_store(pg_url, key_file=key, cache=tmp_path / "c")  # a third machine cannot
    with pytest.raises(DamagedRecordError) as err:
        c.get_value(ref)
    assert err.value.reason == "truncated"
    assert not c.has_value(ref)  # dropped on detection: the next save writes it again
    c.put_value(array)
    assert np.array_equal(c.get_value(ref), array)
    c.close()


def test_chunks_are_stored_once_by_content(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url, key_file=tmp_path / "key", cache=tmp_path / "a")
    zeros = np.zeros(28 * 2**20 // 8)  # four chunks: the header's, two of zeros, the rest
    store.put_value(zeros)
    with psycopg.connect(pg_url) as con:
        (blobs,), = con.execute("SELECT count(*) FROM kitteh_magic.blobs").fetchall()
        (names,), = con.execute("SELECT chunks FROM kitteh_magic.blobs").fetchall()
        (chunks,), = con.execute("SELECT count(*) FROM kitteh_magic.chunks").fetchall()
    assert blobs == 1 and len(names) == 4 and chunks == len(set(names)) == 3
    store.close()


def test_an_altered_chunk_is_refused_and_healed(pg_url: str, tmp_path: Path) -> None:
    key = tmp_path / "key"
    a = open_store(pg_url, key_file=key, cache=tmp_path / "a")
    array = np.arange(CHUNKED // 8, dtype=np.float64)
    ref = a.put_value(array)
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("UPDATE kitteh_magic.chunks SET data = overlay(data placing '\\x00'::bytea"
                    " from 1000 for 1) WHERE digest = (SELECT chunks[2] FROM kitteh_magic.blobs)")
    b = open_store(pg_url, key_file=key, cache=tmp_path / "b")
    with pytest.raises(DamagedRecordError) as err:
        b.get_value(ref)
    assert err.value.reason == "checksum"
    assert not b.has_value(ref)
    assert not list((b.directory / "tmp").iterdir())  # no half-fetched file left
    b.put_value(array)
    assert np.array_equal(open_store(pg_url, key_file=key, cache=tmp_path / "c").get_value(ref),
                          array)
    a.close()
    b.close()


def test_a_damaged_cached_file_is_fetched_again_not_recomputed(pg_url: str,
                                                               tmp_path: Path) -> None:
    key = tmp_path / "key"
    store = open_store(pg_url, key_file=key, cache=tmp_path / "a")
    array = np.arange(BIG // 8, dtype=np.int64)
    ref = store.put_value(array)
    cached = store.directory / "blobs" / ref["digest"][:2] / ref["digest"]
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.chmod(0o600)
    cached.write_bytes(bytes(data))
    assert np.array_equal(store.get_value(ref), array)
    assert store.has_value(ref)  # the server's copy was good: kept
    store.close()


def test_another_signing_key_is_refused_before_anything_is_read(pg_url: str,
                                                                  tmp_path: Path) -> None:
    a = open_store(pg_url, key_file=tmp_path / "team-key", cache=tmp_path / "a")
    ref = a.put_value(np.arange(BIG // 8))
    a.put_json("km1/rec/k", {"r": 1}, sign=True)
    a.close()
    with pytest.raises(StoreError, match="another key") as err:
        open_store(pg_url, key_file=tmp_path / "other-key", cache=tmp_path / "b")
    assert "other-key" in str(err.value) and "KITTEH_MAGIC_KEY_FILE" in str(err.value)
    assert not (tmp_path / "b").exists()
    again = open_store(pg_url, key_file=tmp_path / "team-key", cache=tmp_path / "c")
    assert again.get_json("km1/rec/k", signed=True) == {"r": 1} and again.has_value(ref)
    again.close()
    with psycopg.connect(pg_url) as con:  # what is published tells keys apart, nothing more
        (check,), = con.execute(
            "SELECT value FROM kitteh_magic.meta WHERE name = 'key_check'").fetchall()
    assert check.encode() not in (tmp_path / "team-key").read_bytes()


def test_the_status_line_says_server_and_cache(pg_url: str, tmp_path: Path) -> None:
    from kitteh_magic.status import store_text

    store = open_store(pg_url, key_file=tmp_path / "key", cache=tmp_path / "a")
    store.put_value(np.arange(BIG // 8))
    text = store_text(store)
    assert "on its server" in text and str(tmp_path / "a") in text
    store.close()


def test_a_forked_child_does_not_share_connections(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url, key_file=tmp_path / "key", cache=tmp_path / "a")
    store.put_json("km1/ptr/s/a", {"n": 1})
    pid = os.fork()
    if pid == 0:  # the child opens connections of its own, and leaves the parent's alone
        code = 0 if store.get_json("km1/ptr/s/a") == {"n": 1} else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get_json("km1/ptr/s/a") == {"n": 1}  # the parent's connection still works
    store.close()


def test_collect_prunes_this_machines_cache(pg_url: str, tmp_path: Path) -> None:
    key = tmp_path / "key"
    a = open_store(pg_url, key_file=key, cache=tmp_path / "a")
    kept, dropped = (a.put_value(np.arange(BIG // 8) + i) for i in range(2))
    b = open_store(pg_url, key_file=key, cache=tmp_path / "b")
    for ref in (kept, dropped):
        b.get_value(ref)  # both cached on machine b
    cached = {p.name for p in (b.directory / "blobs").rglob("*") if p.is_file()}
    assert cached == {kept["digest"], dropped["digest"]}
    b.collect({kept["digest"]})
    assert {p.name for p in (b.directory / "blobs").rglob("*") if p.is_file()} \
        == {kept["digest"]}
    assert not a.has_value(dropped) and a.has_value(kept)
    a.close()
    b.close()


def test_a_damaged_cached_copy_is_never_uploaded(pg_url: str, tmp_path: Path) -> None:
    key = tmp_path / "key"
    store = open_store(pg_url, key_file=key, cache=tmp_path / "a")
    array = np.arange(BIG // 8, dtype=np.int64)
    ref = store.put_value(array)
    cached = store.directory / "blobs" / ref["digest"][:2] / ref["digest"]
    store.collect(set())  # the server forgets the value; this machine's copy goes too
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"\0" * 4096)  # a damaged copy left behind (a disk error, a tamperer)
    assert store.put_value(array) == ref  # saved again: from the value, not from the copy
    other = open_store(pg_url, key_file=key, cache=tmp_path / "b")
    assert np.array_equal(other.get_value(ref), array)
    store.close()
    other.close()
