"""The server resolves a notebook from its metadata as the kernel does, keeps its session when it
moves, writes the binding a kernel reads, and shows a step's journal; refusals included."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from test_server import NOTEBOOK, get, post, refused, step
from test_server import isolated as isolated  # autouse: a signing key of its own
from test_server import jp_server_config as jp_server_config
from test_server import store_dir as store_dir

from kitteh_magic import locate
from kitteh_magic.steps.catalog import Catalog
from kitteh_magic.steps.records import JournalEntry, StepRecord, entry_key, pointer_key
from kitteh_magic.store import Store


def meta(**fields: str) -> dict[str, Any]:
    return {"kitteh_magic": fields}


async def get_with(jp_fetch: Any, route: str, metadata: dict[str, Any], **params: str) -> Any:
    return await get(jp_fetch, route, metadata=json.dumps(metadata), **params)


async def test_metadata_session_names_the_steps_after_a_rename(
        jp_fetch: Any, store_dir: Path) -> None:
    """nb/analysis.ipynb renamed to nb/renamed.ipynb: its metadata keeps the session."""
    os.rename(store_dir.parent / "analysis.ipynb", store_dir.parent / "renamed.ipynb")

    plain = await get(jp_fetch, "steps", path="nb/renamed.ipynb")
    kept = await get_with(jp_fetch, "steps", meta(session="analysis.ipynb"),
                          path="nb/renamed.ipynb")
    listing = await get_with(jp_fetch, "sessions", meta(session="analysis.ipynb"),
                             path="nb/renamed.ipynb")

    assert plain["session"] == "renamed.ipynb" and plain["steps"] == []
    assert kept["session"] == "analysis.ipynb"
    assert [r["step"] for r in kept["steps"]] == ["load", "clean", "train", "plot"]
    assert listing["session"] == "analysis.ipynb" and listing["store"] == str(store_dir)


async def test_metadata_store_follows_a_notebook_to_another_folder(
        jp_fetch: Any, store_dir: Path, jp_root_dir: Path) -> None:
    (jp_root_dir / "moved").mkdir()
    os.rename(store_dir.parent / "analysis.ipynb", jp_root_dir / "moved" / "analysis.ipynb")

    reply = await post(jp_fetch, "moved", {"from": NOTEBOOK, "path": "moved/analysis.ipynb",
                                           "metadata": meta(session="analysis.ipynb")})
    metadata = reply["metadata"]
    steps = await get_with(jp_fetch, "steps", metadata, path="moved/analysis.ipynb")
    sessions = await get_with(jp_fetch, "sessions", metadata, path="moved/analysis.ipynb")

    assert reply == {"metadata": meta(session="analysis.ipynb", store="../nb/.kitteh"),
                     "store_found": True}
    assert [r["step"] for r in steps["steps"]] == ["load", "clean", "train", "plot"]
    assert sessions["store"] == str(store_dir)
    assert not (jp_root_dir / "moved" / ".kitteh").exists()  # no store created by reading


async def test_moved_keeps_the_session_its_old_path_gave_and_drops_a_needless_store(
        jp_fetch: Any, store_dir: Path, jp_root_dir: Path) -> None:
    (jp_root_dir / "moved").mkdir()  # the folder it left
    # No session in the metadata yet: the one the old path gave is kept.
    renamed = await post(jp_fetch, "moved", {"from": NOTEBOOK, "path": "nb/renamed.ipynb"})
    # Moved back beside its store: the default store is that store.
    back = await post(jp_fetch, "moved", {
        "from": "moved/analysis.ipynb", "path": NOTEBOOK,
        "metadata": meta(session="analysis.ipynb", store="../nb/.kitteh")})
    # A notebook whose old folder had no store has none to point to.
    nothing = await post(jp_fetch, "moved", {"from": "empty/a.ipynb", "path": "nb/a.ipynb"})

    assert renamed == {"metadata": meta(session="analysis.ipynb"), "store_found": True}
    assert back == {"metadata": meta(session="analysis.ipynb"), "store_found": True}
    assert nothing == {"metadata": meta(session="a.ipynb"), "store_found": False}


OUTSIDE_STORES = ["../../elsewhere/.kitteh", "/tmp", "escape/.kitteh"]


@pytest.mark.parametrize("store", OUTSIDE_STORES, ids=["dotdot", "absolute", "symlink"])
async def test_a_metadata_store_outside_the_root_is_refused_by_every_route(
        jp_fetch: Any, store_dir: Path, jp_root_dir: Path, tmp_path: Path, store: str) -> None:
    """The metadata is the client's word: a store it names outside the root is never opened,
    even one that exists and holds the notebook's session."""
    elsewhere = tmp_path / "elsewhere" / ".kitteh"
    elsewhere.mkdir(parents=True)
    (store_dir.parent / "escape").mkdir()
    os.symlink(elsewhere, store_dir.parent / "escape" / ".kitteh")
    metadata = meta(session="analysis.ipynb", store=store)
    body = {"path": NOTEBOOK, "metadata": metadata, "step": "load", "kernel_id": "k"}

    answers = [await refused(jp_fetch, route, params={"path": NOTEBOOK,
                                                      "metadata": json.dumps(metadata)})
               for route in ("sessions", "steps")]
    answers += [await refused(jp_fetch, route, method="POST", body=json.dumps(body))
                for route in ("invalidate", "reset", "binding")]
    answers.append(await refused(jp_fetch, "moved", method="POST", body=json.dumps(
        {"from": NOTEBOOK, "path": "nb/b.ipynb", "metadata": metadata})))

    assert [code for code, _ in answers] == [403] * 6
    assert all("outside the server root" in reply["error"] for _, reply in answers)
    with Store(store_dir) as kept:
        assert len(Catalog(kept).steps("analysis.ipynb")) == 4
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("metadata", [
    "[1]", "{not json", json.dumps({"kitteh_magic": [1]}),
    json.dumps(meta(session=5)),  # type: ignore[arg-type]
    json.dumps({"kitteh_magic": {"store": {"a": 1}}})])
async def test_malformed_metadata_is_a_bad_request(
        jp_fetch: Any, store_dir: Path, metadata: str) -> None:
    code, reply = await refused(jp_fetch, "steps",
                                params={"path": NOTEBOOK, "metadata": metadata})

    assert code == 400 and "metadata" in reply["error"] and "\n" not in reply["error"]


async def start_kernel(jp_fetch: Any) -> str:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({}))
    kernel_id: str = json.loads(response.body)["id"]
    return kernel_id


async def test_binding_is_written_beside_the_kernels_connection_file(
        jp_fetch: Any, jp_serverapp: Any, store_dir: Path, jp_root_dir: Path) -> None:
    kernel_id = await start_kernel(jp_fetch)
    try:
        os.rename(store_dir.parent / "analysis.ipynb", store_dir.parent / "renamed.ipynb")
        reply = await post(jp_fetch, "binding", {
            "kernel_id": kernel_id, "path": "nb/renamed.ipynb",
            "metadata": meta(session="analysis.ipynb", extra="dropped")})

        connection = jp_serverapp.kernel_manager.get_kernel(kernel_id).connection_file
        path = locate.binding_file(os.path.dirname(connection), kernel_id)
        assert reply == {"kernel_id": kernel_id, "session": "analysis.ipynb",
                         "store": str(store_dir), "binding": str(path)}
        assert locate.read_binding(path) == (str(jp_root_dir / "nb" / "renamed.ipynb"),
                                             meta(session="analysis.ipynb"))
        # What the kernel derives from it is what the sidebar shows.
        notebook, metadata = locate.read_binding(path) or ("", {})
        assert locate.resolve(notebook, metadata, env={}) == (store_dir, "analysis.ipynb")
    finally:
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")


@pytest.mark.parametrize(("kernel_id", "code"), [
    ("../x", 400), ("a/b", 400), (".hidden", 400), ("x" * 200, 400),
    ("0b7d5e9c-0000-4000-8000-000000000000", 404)])
async def test_binding_refuses_what_names_no_running_kernel(
        jp_fetch: Any, jp_serverapp: Any, store_dir: Path, kernel_id: str, code: int) -> None:
    runtime = Path(jp_serverapp.kernel_manager.connection_dir)
    before = set(runtime.iterdir()) if runtime.is_dir() else set()

    got, reply = await refused(jp_fetch, "binding", method="POST", body=json.dumps(
        {"kernel_id": kernel_id, "path": NOTEBOOK}))

    assert got == code and set(reply) == {"error"}
    after = set(runtime.iterdir()) if runtime.is_dir() else set()
    assert after == before
    assert not (runtime.parent / "x").exists()


async def test_binding_of_a_path_outside_the_root_is_refused(
        jp_fetch: Any, jp_serverapp: Any, store_dir: Path) -> None:
    kernel_id = await start_kernel(jp_fetch)
    try:
        code, reply = await refused(jp_fetch, "binding", method="POST", body=json.dumps(
            {"kernel_id": kernel_id, "path": "../outside.ipynb"}))
        missing, _ = await refused(jp_fetch, "binding", method="POST", body=json.dumps(
            {"path": NOTEBOOK}))
        connection = jp_serverapp.kernel_manager.get_kernel(kernel_id).connection_file
        assert (code, missing) == (403, 400) and "outside the server root" in reply["error"]
        assert not locate.binding_file(os.path.dirname(connection), kernel_id).exists()
    finally:
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")


def journaled(store_dir: Path) -> None:
    """The finished step "load" recorded three calls, one answered from an earlier journal."""
    with Store(store_dir) as store:
        log = [JournalEntry(pos=0, callee="httpx.get", args="d0", duration=0.25).to_doc(),
               {**JournalEntry(pos=1, callee="httpx.get", args="d1", duration=0.5).to_doc(),
                "replayed": True},
               JournalEntry(pos=0, callee="api.fetch", args="d2", branch="map0[1]",
                            state="error", error_text="TimeoutError: slow", attempts=3,
                            ).to_doc()]
        catalog = Catalog(store)
        record = catalog.record("key-analysis.ipynb-load")
        assert record is not None
        record.journal = log
        catalog.put_record(record)


async def test_journal_of_a_finished_step_lists_its_calls(
        jp_fetch: Any, store_dir: Path) -> None:
    journaled(store_dir)

    reply = await get(jp_fetch, "journal", path=NOTEBOOK, step="load")

    assert (reply["session"], reply["step"], reply["state"]) == ("analysis.ipynb", "load", "done")
    calls = reply["calls"]
    assert [(c["label"], c["call"], c["from_journal"]) for c in calls] == [
        ("1", "httpx.get", False), ("2", "httpx.get", True), ("map0[1]:1", "api.fetch", False)]
    assert calls[0]["duration"] == pytest.approx(0.25)
    assert (calls[2]["outcome"], calls[2]["error"], calls[2]["attempts"]) == (
        "error", "TimeoutError: slow", 3)


async def test_journal_of_an_interrupted_step_is_its_unfinished_execution(
        jp_fetch: Any, store_dir: Path) -> None:
    reply = await get(jp_fetch, "journal", path=NOTEBOOK, step="plot")

    assert reply["state"] == "running"  # as written: status derives "interrupted"
    assert [c["call"] for c in reply["calls"]] == ["api.get", "api.get"]


async def test_journal_refusals(jp_fetch: Any, store_dir: Path, jp_root_dir: Path) -> None:
    (jp_root_dir / "bare.ipynb").write_text("{}")

    unknown = await refused(jp_fetch, "journal", params={"path": NOTEBOOK, "step": "nope"})
    no_store = await refused(jp_fetch, "journal", params={"path": "bare.ipynb", "step": "x"})
    no_step = await refused(jp_fetch, "journal", params={"path": NOTEBOOK})
    outside = await refused(jp_fetch, "journal", params={"path": "../x.ipynb", "step": "load"})

    assert [code for code, _ in (unknown, no_store, no_step, outside)] == [404, 404, 400, 403]
    assert "no step 'nope'" in unknown[1]["error"]


async def test_invalidate_keeps_the_journal_unless_asked_to_forget_it(
        jp_fetch: Any, store_dir: Path) -> None:
    """The interrupted step journaled two calls: invalidating keeps them for its next run, so
    paid calls are not made again; ``forget_journal`` drops them."""
    kept = await post(jp_fetch, "invalidate", {"path": NOTEBOOK, "step": "plot"})
    with Store(store_dir) as store:
        for pos in range(2):
            entry = JournalEntry(pos=pos, callee="api.get", args="digest")
            store.put_json(entry_key("analysis.ipynb", "train", pos), entry.to_doc(), sign=True)
    forgotten = await post(jp_fetch, "invalidate",
                           {"path": NOTEBOOK, "step": "train", "forget_journal": True})
    bad, reply = await refused(jp_fetch, "invalidate", method="POST", body=json.dumps(
        {"path": NOTEBOOK, "step": "load", "forget_journal": "yes"}))

    assert kept == {"session": "analysis.ipynb", "step": "plot", "invalidated": True,
                    "journal": 2}
    assert forgotten["invalidated"] is True and forgotten["journal"] == 0
    assert bad == 400 and "forget_journal" in reply["error"]
    states = {r["step"]: r["state"] for r in (await get(jp_fetch, "steps", path=NOTEBOOK))["steps"]}
    assert states["plot"] == states["train"] == "invalidated" and states["load"] == "done"


async def test_a_step_recorded_after_a_rename_lands_in_the_kept_session(
        jp_fetch: Any, store_dir: Path) -> None:
    """What a kernel bound to the renamed notebook writes is what the sidebar reads."""
    metadata = meta(session="analysis.ipynb")
    notebook = str(store_dir.parent / "renamed.ipynb")
    directory, session = locate.resolve(notebook, metadata, env={})
    with Store(directory) as store:
        seq = Catalog(store).claim_seq(session, notebook)
        store.put_json(pointer_key(session, "after"),
                       step(session, "after", seq, finished=time.time()).to_doc())
        Catalog(store).put_record(StepRecord(key="key-after", session=session, step="after",
                                             code="y = 2"))
    await asyncio.sleep(0)

    reply = await get_with(jp_fetch, "steps", metadata, path="nb/renamed.ipynb")

    assert [r["step"] for r in reply["steps"]][-1] == "after"


def test_bindings_written_at_once_from_threads_all_land(tmp_path: Path) -> None:
    """The server writes bindings from worker threads; a kernel that died and restarts is bound
    twice at once (its status and its kernel change). Writers of one process shared a temporary
    file name, so one's ``os.replace`` found it moved by the other: a 500, and the notebook
    warned "could not tell the kernel ... where its steps are" (seen in Chromium after kill -9)."""
    from concurrent.futures import ThreadPoolExecutor

    path = locate.binding_file(tmp_path, "k-1")

    def write(i: int) -> None:
        locate.write_binding(path, f"/nb/{i}.ipynb", {"kitteh_magic": {"session": "s"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(400)))
    assert locate.read_binding(path) is not None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
