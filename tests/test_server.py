"""The server extension's REST endpoints, against a real Jupyter server and a real store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from kitteh_magic import locate
from kitteh_magic.errors import DamagedStoreWarning
from kitteh_magic.server.handlers import MAX_BODY
from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.records import (
    JournalEntry,
    StepPointer,
    StepRecord,
    entry_key,
    pointer_key,
    session_key,
)
from kitteh_magic.store import Store

NOTEBOOK = "nb/analysis.ipynb"
LOADS: list[str] = []


class Tripwire:
    """A stored value that records being unpickled: the server must never load values."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        LOADS.append("unpickled")


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"kitteh_magic": True}}}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signing key of the test's own, and stores beside notebooks (no ``$KITTEH_MAGIC_DIR``)."""
    monkeypatch.setenv("KITTEH_MAGIC_KEY_FILE", str(tmp_path / "config" / "key"))
    monkeypatch.delenv("KITTEH_MAGIC_DIR", raising=False)
    LOADS.clear()


def step(session: str, name: str, seq: int, **fields: Any) -> StepPointer:
    now = time.time()
    base: dict[str, Any] = {"state": "done", "last": "executed", "runs": 1, "duration": 2.5,
                            "size": 1000, "activities": 1, "started": now - 3,
                            "finished": now - 0.5, "cell_id": f"cell-{name}",
                            "key": f"key-{session}-{name}", "keys": [f"key-{session}-{name}"]}
    return StepPointer(session=session, step=name, seq=seq, **{**base, **fields})


@pytest.fixture
def store_dir(jp_root_dir: Path) -> Path:
    """A store beside nb/analysis.ipynb with the notebook's session and an experiment session.

    Written through the real Store and Catalog, as a kernel would.
    """
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    directory = jp_root_dir / "nb" / ".kitteh"
    with Store(directory) as store:
        catalog = Catalog(store)
        tripwire = store.put_value(Tripwire())
        pointers = [
            step("analysis.ipynb", "load", 0, size=4096, activities=3),
            step("analysis.ipynb", "clean", 1, last="replayed", replays=2, saved=5.0),
            step("analysis.ipynb", "train", 2, state="failed", error="ValueError: bad"),
            # A kernel that is gone left this one "running": status calls it interrupted.
            step("analysis.ipynb", "plot", 3, state="running", pid=2**22 + 12345,
                 host="", proc_start=1.0, key=None, keys=[]),
            step("experiment", "load", 0),
        ]
        for ptr in pointers:
            catalog.claim_seq(ptr.session, str(jp_root_dir / NOTEBOOK))
            store.put_json(pointer_key(ptr.session, ptr.step), ptr.to_doc())
            for key in ptr.keys:
                catalog.put_record(StepRecord(
                    key=key, session=ptr.session, step=ptr.step, code="x = 1",
                    outputs={"x": {"ref": tripwire, "token": "t", "type": "Tripwire"}}))
        # The interrupted step had journaled two activities (results are values: never loaded).
        for pos in range(2):
            entry = JournalEntry(pos=pos, callee="api.get", args="digest", result=tripwire)
            store.put_json(entry_key("analysis.ipynb", "plot", pos), entry.to_doc(), sign=True)
    return directory


async def get(jp_fetch: Any, route: str, **params: str) -> Any:
    response = await jp_fetch("kitteh-magic", route, params=params)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def post(jp_fetch: Any, route: str, body: dict[str, Any]) -> Any:
    response = await jp_fetch("kitteh-magic", route, method="POST", body=json.dumps(body))
    return json.loads(response.body)


async def refused(jp_fetch: Any, route: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("kitteh-magic", route, **kwargs)
    response = info.value.response
    assert response is not None
    return info.value.code, json.loads(response.body or b"{}")


async def test_sessions_of_a_notebook(jp_fetch: Any, store_dir: Path, jp_root_dir: Path) -> None:
    reply = await get(jp_fetch, "sessions", path=NOTEBOOK)

    assert reply["store"] == str(store_dir)
    assert reply["session"] == "analysis.ipynb"  # what the kernel derives from JPY_SESSION_NAME
    assert reply["notebook"] == str(jp_root_dir / NOTEBOOK)
    assert sorted(s["name"] for s in reply["sessions"]) == ["analysis.ipynb", "experiment"]
    assert not LOADS


async def test_steps_in_order_with_derived_states(jp_fetch: Any, store_dir: Path) -> None:
    reply = await get(jp_fetch, "steps", path=NOTEBOOK)

    rows = reply["steps"]
    assert reply["session"] == "analysis.ipynb"
    assert [(r["step"], r["state"]) for r in rows] == [
        ("load", "done"), ("clean", "replayed"), ("train", "failed"), ("plot", "interrupted")]
    assert rows[0]["cell_id"] == "cell-load" and rows[0]["activities"] == 3
    assert rows[2]["error"] == "ValueError: bad"
    assert reply["totals"]["steps"] == 4
    assert reply["totals"]["size"] == sum(r["size"] for r in rows)
    assert reply["totals"]["saved"] == pytest.approx(5.0)
    assert not LOADS


async def test_unfinished_steps_count_their_journal(jp_fetch: Any, store_dir: Path) -> None:
    """A running step's pointer is written at start and end only: its live activity count comes
    from the journal entries written as each call finishes."""
    reply = await get(jp_fetch, "steps", path=NOTEBOOK)
    rows = {r["step"]: r for r in reply["steps"]}
    assert rows["plot"]["state"] == "interrupted" and rows["plot"]["journaled"] == 2
    assert rows["load"]["journaled"] == 0  # finished, and its journal forgotten

    with Store(store_dir) as store:
        entry = JournalEntry(pos=2, callee="api.get", args="digest")
        store.put_json(entry_key("analysis.ipynb", "plot", 2), entry.to_doc(), sign=True)
    reply = await get(jp_fetch, "steps", path=NOTEBOOK)
    assert [r["journaled"] for r in reply["steps"] if r["step"] == "plot"] == [3]
    assert not LOADS


async def test_steps_of_another_session(jp_fetch: Any, store_dir: Path) -> None:
    reply = await get(jp_fetch, "steps", path=NOTEBOOK, session="experiment")

    assert reply["session"] == "experiment"
    assert [r["step"] for r in reply["steps"]] == ["load"]


async def test_notebook_without_store_is_empty_and_creates_nothing(
        jp_fetch: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "fresh.ipynb").write_text("{}")

    sessions = await get(jp_fetch, "sessions", path="fresh.ipynb")
    steps = await get(jp_fetch, "steps", path="fresh.ipynb")

    assert sessions["sessions"] == [] and sessions["session"] == "fresh.ipynb"
    assert steps["steps"] == [] and steps["totals"]["steps"] == 0
    assert not (jp_root_dir / ".kitteh").exists()


async def test_invalidate_drops_the_step_records(jp_fetch: Any, store_dir: Path) -> None:
    reply = await post(jp_fetch, "invalidate",
                       {"path": NOTEBOOK, "session": "analysis.ipynb", "step": "clean"})
    unknown = await post(jp_fetch, "invalidate", {"path": NOTEBOOK, "step": "no such step"})

    assert reply["invalidated"] is True and unknown["invalidated"] is False
    states = {r["step"]: r["state"] for r in (await get(jp_fetch, "steps", path=NOTEBOOK))["steps"]}
    assert states["clean"] == "invalidated" and states["load"] == "done"
    with Store(store_dir) as store:
        assert Catalog(store).record("key-analysis.ipynb-clean") is None
        assert Catalog(store).record("key-analysis.ipynb-load") is not None


async def test_reset_drops_only_that_session(jp_fetch: Any, store_dir: Path) -> None:
    reply = await post(jp_fetch, "reset", {"path": NOTEBOOK, "session": "analysis.ipynb"})

    assert reply == {"session": "analysis.ipynb", "removed": 4}
    assert (await get(jp_fetch, "steps", path=NOTEBOOK))["steps"] == []
    other = await get(jp_fetch, "steps", path=NOTEBOOK, session="experiment")
    assert [r["step"] for r in other["steps"]] == ["load"]
    with Store(store_dir) as store:
        assert store.get_json(session_key("analysis.ipynb")) is None


# A matching XSRF cookie and header, as a page of the server's origin would send: without
# them tornado refuses every POST before the handler is reached ("'_xsrf' argument missing"),
# authenticated or not, and the test could not tell whether the handler checks the user.
XSRF = {"Cookie": "_xsrf=6b697474656873", "X-XSRFToken": "6b697474656873"}


@pytest.mark.parametrize(("route", "method"), [
    ("sessions", "GET"), ("steps", "GET"), ("invalidate", "POST"), ("reset", "POST")])
async def test_unauthenticated_requests_are_refused(
        jp_fetch: Any, store_dir: Path, route: str, method: str) -> None:
    body = json.dumps({"path": NOTEBOOK, "step": "load"}) if method == "POST" else None

    code, reply = await refused(jp_fetch, route, method=method, body=body,
                                params={"path": NOTEBOOK}, headers={"Authorization": "", **XSRF})

    # tornado's @authenticated answers a request without a user with a bare 403 "Forbidden";
    # every refusal of the handlers themselves names its reason under "error".
    assert (code, reply) == (403, {"message": "Forbidden", "reason": None})
    with Store(store_dir) as store:
        assert len(Catalog(store).steps("analysis.ipynb")) == 4
        assert Catalog(store).record("key-analysis.ipynb-load") is not None


@pytest.mark.parametrize("path", ["../outside.ipynb", "nb/../../outside.ipynb", "link/x.ipynb"])
async def test_paths_outside_the_root_are_refused(
        jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "elsewhere"
    (outside / ".kitteh").mkdir(parents=True)
    os.symlink(outside, jp_root_dir / "link")

    code, reply = await refused(jp_fetch, "steps", params={"path": path})
    post_code, _ = await refused(jp_fetch, "reset", method="POST",
                                 body=json.dumps({"path": path}))

    assert (code, post_code) == (403, 403)
    assert "outside the server root" in reply["error"]


@pytest.mark.parametrize("params", [{}, {"path": "nb/data.csv"}])
async def test_missing_or_non_notebook_path_is_a_bad_request(
        jp_fetch: Any, params: dict[str, str]) -> None:
    code, reply = await refused(jp_fetch, "sessions", params=params)

    assert code == 400 and reply["error"]


async def test_bad_body_is_a_bad_request(jp_fetch: Any, store_dir: Path) -> None:
    code, reply = await refused(jp_fetch, "invalidate", method="POST", body="[1, 2")
    no_step, _ = await refused(jp_fetch, "invalidate", method="POST",
                               body=json.dumps({"path": NOTEBOOK}))

    assert (code, no_step) == (400, 400)
    assert "JSON object" in reply["error"]


async def test_a_corrupt_index_is_moved_aside_and_the_store_still_answers(
        jp_fetch: Any, store_dir: Path) -> None:
    # DESIGN §4.14: the first detection heals; a new index starts and steps run again once.
    for name in os.listdir(store_dir / "index"):
        if name.startswith("cache.db"):
            (store_dir / "index" / name).write_bytes(b"this is not a database" * 100)

    with pytest.warns(DamagedStoreWarning, match="moved to"):
        sessions = await get(jp_fetch, "sessions", path=NOTEBOOK)
    assert sessions["store"] == str(store_dir)
    assert [p for p in store_dir.iterdir() if p.name.startswith("index.damaged-")]
    steps = await get(jp_fetch, "steps", path=NOTEBOOK)
    assert steps["steps"] == []  # the old index's steps are gone: they run again once


def outside_store(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A real store outside the server root, holding the session of nb/analysis.ipynb, with
    nb/.kitteh inside the root a symlink to it."""
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    directory = tmp_path / "elsewhere" / ".kitteh"
    with Store(directory) as store:
        catalog = Catalog(store)
        catalog.claim_seq("analysis.ipynb", str(jp_root_dir / NOTEBOOK))
        ptr = step("analysis.ipynb", "load", 0)
        store.put_json(pointer_key(ptr.session, ptr.step), ptr.to_doc())
    os.symlink(directory, jp_root_dir / "nb" / ".kitteh")
    return directory


@pytest.mark.parametrize(("route", "method"), [
    ("sessions", "GET"), ("steps", "GET"), ("invalidate", "POST"), ("reset", "POST")])
async def test_store_symlinked_outside_the_root_is_refused(
        jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, route: str, method: str) -> None:
    """The notebook is inside the root, but its ``.kitteh`` leads out of it: no endpoint reads
    or changes the store it points to."""
    directory = outside_store(tmp_path, jp_root_dir)
    body = json.dumps({"path": NOTEBOOK, "step": "load"}) if method == "POST" else None

    code, reply = await refused(jp_fetch, route, method=method, body=body,
                                params={"path": NOTEBOOK} if method == "GET" else {})

    assert code == 403 and set(reply) == {"error"}
    assert "outside the server root" in reply["error"] and ".kitteh" in reply["error"]
    with Store(directory) as store:
        pointer = Catalog(store).steps("analysis.ipynb")
        assert [(p.step, p.state) for p in pointer] == [("load", "done")]


async def test_store_entry_symlinked_outside_the_root_is_refused(
        jp_fetch: Any, store_dir: Path, tmp_path: Path) -> None:
    """A store inside the root whose index is a symlink out of it is refused as well: SQLite
    would follow the link."""
    moved = tmp_path / "elsewhere-index"
    os.rename(store_dir / "index", moved)
    os.symlink(moved, store_dir / "index")

    code, reply = await refused(jp_fetch, "reset", method="POST",
                                body=json.dumps({"path": NOTEBOOK}))

    assert code == 403 and "outside the server root" in reply["error"]
    os.unlink(store_dir / "index")
    os.rename(moved, store_dir / "index")
    with Store(store_dir) as store:
        assert len(Catalog(store).steps("analysis.ipynb")) == 4


async def test_store_symlinked_inside_the_root_is_served(
        jp_fetch: Any, store_dir: Path, jp_root_dir: Path) -> None:
    """A link that stays inside the root is the user's own layout, not an escape."""
    os.rename(store_dir, jp_root_dir / "shared-store")
    os.symlink(jp_root_dir / "shared-store", store_dir)

    reply = await get(jp_fetch, "steps", path=NOTEBOOK)

    assert [r["step"] for r in reply["steps"]] == ["load", "clean", "train", "plot"]


async def test_store_named_by_the_server_environment_is_served(
        jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$KITTEH_MAGIC_DIR`` is the server owner's choice, not a client's: a store it names
    outside the root is served, as its kernels use it."""
    directory = tmp_path / "shared-store"
    (jp_root_dir / NOTEBOOK).parent.mkdir()
    (jp_root_dir / NOTEBOOK).write_text("{}")
    session = locate.session_name(jp_root_dir / NOTEBOOK, directory)  # as its kernels name it
    with Store(directory) as store:
        Catalog(store).claim_seq(session, str(jp_root_dir / NOTEBOOK))
        store.put_json(pointer_key(session, "load"), step(session, "load", 0).to_doc())
    monkeypatch.setenv("KITTEH_MAGIC_DIR", str(directory))

    reply = await get(jp_fetch, "steps", path=NOTEBOOK)

    assert reply["session"] == session and [r["step"] for r in reply["steps"]] == ["load"]


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("body", [DEEP, '{"path": "nb/analysis.ipynb", "step": ' + DEEP + "}"])
async def test_deeply_nested_body_is_a_bad_request(
        jp_fetch: Any, store_dir: Path, body: str) -> None:
    code, reply = await refused(jp_fetch, "invalidate", method="POST", body=body)

    assert code == 400 and set(reply) == {"error"}
    assert "\n" not in reply["error"]


ABSURD_PATHS = ["/".join(["a"] * 5000) + "/x.ipynb", "a" * 300 + "/x.ipynb"]


@pytest.mark.parametrize("path", ABSURD_PATHS, ids=["5000-segments", "300-char-segment"])
async def test_absurd_paths_are_bad_requests(
        jp_fetch: Any, store_dir: Path, path: str) -> None:
    for route in ("sessions", "steps"):
        code, reply = await refused(jp_fetch, route, params={"path": path})
        assert code == 400 and set(reply) == {"error"} and "\n" not in reply["error"]
    code, reply = await refused(jp_fetch, "reset", method="POST", body=json.dumps({"path": path}))
    assert code == 400 and set(reply) == {"error"}


def padded(size: int) -> bytes:
    """A well-formed reset request of ``size`` bytes: only its size is wrong."""
    head = json.dumps({"path": NOTEBOOK, "session": "analysis.ipynb", "pad": ""}).encode()
    return head[:-2] + b" " * (size - len(head)) + head[-2:]


@pytest.mark.parametrize("waits", [True, False], ids=["expect-100-continue", "sent-at-once"])
async def test_oversized_body_is_refused_before_it_is_read(
        jp_fetch: Any, store_dir: Path, waits: bool) -> None:
    """A well-formed reset of 64 MiB is answered 413 from its Content-Length, not parsed: the
    session it names is intact. A client waiting for ``100 Continue`` (curl does for large
    bodies) never has to send it."""
    body = padded(64 * 2**20)
    assert json.loads(body)["session"] == "analysis.ipynb"

    code, reply = await refused(jp_fetch, "reset", method="POST", body=body,
                                expect_100_continue=waits)

    assert code == 413 and set(reply) == {"error"}
    with Store(store_dir) as store:
        assert len(Catalog(store).steps("analysis.ipynb")) == 4


async def test_oversized_chunked_body_is_refused(jp_fetch: Any, store_dir: Path) -> None:
    """A chunked body declares no length: it is refused as soon as what arrived passes the cap."""
    body = padded(MAX_BODY + 1024)

    async def chunks(write: Any) -> None:
        for start in range(0, len(body), 64 * 1024):
            await write(body[start:start + 64 * 1024])

    code, reply = await refused(jp_fetch, "reset", method="POST", body_producer=chunks)

    assert code == 413 and set(reply) == {"error"}
    with Store(store_dir) as store:
        assert len(Catalog(store).steps("analysis.ipynb")) == 4


@pytest.mark.parametrize("session", [5, ["analysis.ipynb"], {"a": 1}, "\ud800"])
async def test_malformed_session_is_a_bad_request_not_the_default(
        jp_fetch: Any, store_dir: Path, session: Any) -> None:
    """A session that is not text is refused; it never falls back to the notebook's own."""
    body = json.dumps({"path": NOTEBOOK, "session": session})

    code, reply = await refused(jp_fetch, "reset", method="POST", body=body)

    assert code == 400 and "'session'" in reply["error"]
    with Store(store_dir) as store:
        assert len(Catalog(store).steps("analysis.ipynb")) == 4


async def test_unencodable_path_is_a_bad_request(jp_fetch: Any, store_dir: Path) -> None:
    code, reply = await refused(jp_fetch, "reset", method="POST",
                                body=json.dumps({"path": "nb/\udc80\ud800.ipynb"}))

    assert code == 400 and set(reply) == {"error"}
