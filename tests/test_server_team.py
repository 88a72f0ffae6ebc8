"""The sidebar's endpoints on a store in PostgreSQL (``$KITTEH_MAGIC_STORE`` in the server's
environment): a real Jupyter server, a real PostgreSQL server, no unpickling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_server import LOADS, NOTEBOOK, Tripwire, get, post, step
from tornado.httpclient import HTTPClientError

from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.records import JournalEntry, StepRecord, entry_key, pointer_key
from kitteh_magic.store import open_store


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"kitteh_magic": True}}}


@pytest.fixture
def team_store(jp_root_dir: Path, tmp_path: Path, pg_url: str,
               monkeypatch: pytest.MonkeyPatch) -> str:
    """The team's store in PostgreSQL with the notebook's session, written as a kernel would
    (through ``open_store`` and the catalog), and named in the server's environment."""
    monkeypatch.setenv("KITTEH_MAGIC_KEY_FILE", str(tmp_path / "config" / "key"))
    monkeypatch.setenv("KITTEH_MAGIC_CACHE", str(tmp_path / "server-cache"))
    monkeypatch.delenv("KITTEH_MAGIC_DIR", raising=False)
    LOADS.clear()
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    store = open_store(pg_url, cache=tmp_path / "kernel-cache")
    catalog = Catalog(store)
    tripwire = store.put_value(Tripwire())
    for ptr in (step("analysis.ipynb", "load", 0, activities=2),
                step("analysis.ipynb", "train", 1, state="failed", error="ValueError: bad")):
        catalog.claim_seq(ptr.session, str(jp_root_dir / NOTEBOOK))
        store.put_json(pointer_key(ptr.session, ptr.step), ptr.to_doc())
        for key in ptr.keys:
            catalog.put_record(StepRecord(
                key=key, session=ptr.session, step=ptr.step, code="x = 1",
                outputs={"x": {"ref": tripwire, "token": "t", "type": "Tripwire"}}))
    for pos in range(2):
        entry = JournalEntry(pos=pos, callee="api.get", args="digest", result=tripwire)
        store.put_json(entry_key("analysis.ipynb", "train", pos), entry.to_doc(), sign=True)
    store.close()
    monkeypatch.setenv("KITTEH_MAGIC_STORE", pg_url.replace("kitteh@", "kitteh:s3cret@"))
    return pg_url


async def test_the_sidebar_reads_a_team_store(jp_fetch: Any, team_store: str) -> None:
    sessions = await get(jp_fetch, "sessions", path=NOTEBOOK)
    steps = await get(jp_fetch, "steps", path=NOTEBOOK)
    journal = await get(jp_fetch, "journal", path=NOTEBOOK, step="train")

    assert sessions["session"] == "analysis.ipynb"  # the file name, on every machine
    assert [s["name"] for s in sessions["sessions"]] == ["analysis.ipynb"]
    assert sessions["store"].startswith("postgresql://kitteh:***@")  # never the password
    assert "s3cret" not in json.dumps([sessions, steps, journal])
    assert [(r["step"], r["state"]) for r in steps["steps"]] == [("load", "done"),
                                                                ("train", "failed")]
    assert len(journal["calls"]) == 2
    assert not LOADS


async def test_invalidate_and_reset_act_on_the_team_store(jp_fetch: Any,
                                                          team_store: str) -> None:
    reply = await post(jp_fetch, "invalidate",
                       {"path": NOTEBOOK, "session": "analysis.ipynb", "step": "load"})
    assert reply["invalidated"] is True
    states = {r["step"]: r["state"] for r in (await get(jp_fetch, "steps", path=NOTEBOOK))["steps"]}
    assert states["load"] == "invalidated"
    reset = await post(jp_fetch, "reset", {"path": NOTEBOOK, "session": "analysis.ipynb"})
    assert reset["removed"] == 2
    assert (await get(jp_fetch, "steps", path=NOTEBOOK))["steps"] == []
    assert not LOADS


async def test_an_unreachable_team_store_is_one_error(jp_fetch: Any, jp_root_dir: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    monkeypatch.setenv("KITTEH_MAGIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KITTEH_MAGIC_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("KITTEH_MAGIC_STORE", "postgresql://kitteh:pw@127.0.0.1:1/team")
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("kitteh-magic", "steps", params={"path": NOTEBOOK})
    assert info.value.response is not None
    body = json.loads(info.value.response.body)
    text = json.dumps(body)
    assert "cannot be reached" in text and "pw@" not in text


async def test_an_unsupported_store_url_is_one_error(jp_fetch: Any, jp_root_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    monkeypatch.setenv("KITTEH_MAGIC_STORE", "redis://127.0.0.1:6379/0")
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("kitteh-magic", "steps", params={"path": NOTEBOOK})
    assert info.value.response is not None
    assert "'redis'" in info.value.response.body.decode()
    assert not any(p.name.startswith("redis") for p in jp_root_dir.rglob("*"))
