"""Mutation smoke test: apply named breaks of core behaviour one at a time, run the tests, and
report which breaks no test notices.

Each break is one small textual replacement in a product source file (original snippet -> broken
snippet); the original must occur exactly once, or the break is reported ``stale`` (the code
moved on: update the snippet) instead of being applied. Breaks are applied to a temporary copy
of the repository, never to the tree the script is run from, and pytest runs in that copy with
the interpreter running this script, its ``PYTHONPATH`` pointing at the copy so that kernels and
``kitteh-magic`` subprocesses started by the tests import the broken code too. A test that starts
a Python must therefore prepend to ``PYTHONPATH``, never replace it: a kernel that imports the
installed tree instead of the copy makes every break it could catch look like a survivor.

A break is *caught* when pytest fails; then the first failing test is run alone on the unbroken
copy, so a test that fails anyway is reported (``broken test``) rather than counted as a catch.

Usage (from the repository, with the project's virtual environment)::

    python scripts/mutants.py --list
    python scripts/mutants.py                         # every break, each on its own tests
    python scripts/mutants.py --only replay --only journal-forget
    python scripts/mutants.py --all-tests             # every break on the whole selection
    python scripts/mutants.py --rev HEAD              # the committed code, not the work tree
    python scripts/mutants.py --pytest-args='-m "not browser" -x -q tests/test_store.py'

The exit status is 0 whatever survives (this is a report, not a gate); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARGS = '-m "not browser" -x -q'


@dataclass(frozen=True)
class Break:
    """One deliberate break: ``original`` becomes ``broken`` in ``path``."""

    name: str
    path: str
    original: str
    broken: str
    what: str
    """The behaviour this removes, in a few words."""
    tests: tuple[str, ...] = ()
    """The tests most likely to notice, most specific first (pytest paths or node ids); empty
    runs the whole selection."""


HOLES = "tests/test_holes.py"

BREAKS: tuple[Break, ...] = (
    # -- replay and the step record -------------------------------------------------------------
    Break("replay", "kitteh_magic/steps/run.py",
          "            replayed = self._restore(record)\n",
          "            replayed = False\n",
          "a step with a record executes again instead of replaying",
          (f"{HOLES}::test_a_step_finished_before_a_sigkill_replays_without_its_body_or_calls",
           "tests/test_replay.py")),
    Break("record-signature", "kitteh_magic/steps/catalog.py",
          "doc = self.store.get_json(key, signed=True)",
          "doc = self.store.get_json(key)",
          "step records are read without checking their signature",
          (f"{HOLES}::test_a_record_pointed_at_another_steps_value_is_refused",
           "tests/test_robustness.py")),
    Break("record-complete", "kitteh_magic/steps/run.py",
          "complete=not unsaved,",
          "complete=True,",
          "a record with an unsaved output is replayed as if complete",
          (f"{HOLES}::test_a_step_with_an_unsaveable_output_reruns_with_its_activities_replayed",
           "tests/test_robustness.py")),
    Break("deleted-names", "kitteh_magic/steps/run.py",
          "            engine.namespace.pop(name, None)\n",
          "            pass\n",
          "replay leaves names the step deleted",
          (f"{HOLES}::test_a_name_a_step_deleted_stays_deleted_when_the_notebook_replays",
           "tests/test_replay.py")),
    # -- step keys, fingerprints and lineage ------------------------------------------------------
    Break("step-key-inputs", "kitteh_magic/steps/keys.py",
          "        fields += (name, inputs[name])\n",
          "        fields += (name,)\n",
          "a step's key ignores the content of its inputs",
          ("tests/test_keys.py", "tests/test_invalidation.py")),
    Break("step-key-session", "kitteh_magic/steps/keys.py",
          "fields = [_STEP_TAG, session, normalized_code, str(len(names))]",
          "fields = [_STEP_TAG, normalized_code, str(len(names))]",
          "sessions share step records",
          ("tests/test_keys.py", "tests/test_replay.py")),
    Break("lineage-identity", "kitteh_magic/steps/lineage.py",
          "if entry is None or entry.ident != id(value):",
          "if entry is None:",
          "a lineage token is trusted after its name was rebound to another object",
          (f"{HOLES}::test_a_plain_cell_rebinding_a_step_output_through_a_global_reruns_the_reader",
           "tests/test_invalidation.py")),
    Break("lineage-drop", "kitteh_magic/steps/lineage.py",
          "            self._entries.pop(name, None)\n",
          "            pass\n",
          "a plain cell that touches a step's output keeps its lineage token",
          ("tests/test_invalidation.py",
           f"{HOLES}::test_a_plain_cell_mutating_a_replayed_output_reruns_the_reader")),
    Break("dataframe-buffers", "kitteh_magic/steps/picklers.py",
          "            feed(self._buffers, view)\n",
          "            pass\n",
          "fingerprints ignore out-of-band buffers (a DataFrame's numbers)",
          (f"{HOLES}::test_a_dataframe_with_new_numbers_of_the_same_shape_reruns_its_reader",
           "tests/test_fingerprint.py")),
    Break("ndarray-content", "kitteh_magic/steps/digests.py",
          'feed(h, array.reshape(-1).view("u1"))',
          'h.update(b"")',
          "an array's fingerprint ignores its data",
          ("tests/test_fingerprint.py", "tests/test_invalidation.py")),
    # -- the store ------------------------------------------------------------------------------
    Break("buffer-checksums", "kitteh_magic/store/frames.py",
          "            if xxhash.xxh3_128_digest(buf) != expected:\n",
          "            if False:\n",
          "array buffers are restored without checking their checksums",
          (f"{HOLES}::test_altered_array_buffers_are_refused_inline_and_in_blob_files",
           "tests/test_store.py")),
    Break("stream-checksum", "kitteh_magic/store/frames.py",
          "    if checksum.digest() != data[table_end:table_end + _HASH_BYTES]:\n",
          "    if False:\n",
          "a value frame's header and stream are not checksummed",
          ("tests/test_store.py", "tests/test_robustness.py")),
    Break("value-signature", "kitteh_magic/store/frames.py",
          "if raw_digest.hex() != digest or not signer.verify(mac, _bind(digest), head, stream):",
          "if False:",
          "value frames are unpickled without checking their signature",
          ("tests/test_robustness.py", "tests/test_store.py")),
    Break("damaged-record-drop", "kitteh_magic/store/store.py",
          "            if exc.reason in _DISCARD:\n",
          "            if False:\n",
          "a damaged value is kept, so the recompute cannot heal it",
          ("tests/test_robustness.py", "tests/test_store.py")),
    # -- activities -----------------------------------------------------------------------------
    Break("journal-off", "kitteh_magic/steps/run.py",
          "            self._start_journal()\n",
          "            pass\n",
          "durable steps keep no activity journal",
          ("tests/test_activities.py",)),
    Break("journal-write", "kitteh_magic/activities/journal.py",
          "        self.store.write_json(self._prefix + entry.slot, entry.to_doc(), sign=True)\n",
          "        pass\n",
          "finished calls are not written to the journal",
          ("tests/test_activities.py",)),
    Break("journal-forget", "kitteh_magic/steps/catalog.py",
          "        if forget_journal:\n            self.clear_journal(session, step)\n",
          "        self.clear_journal(session, step)\n",
          "invalidate throws the journal away, so a re-run pays its calls again",
          ("tests/test_native_journal.py",)),
    Break("journal-version", "kitteh_magic/activities/journal.py",
          'if version is not None and (head.get("version") != version or execution != expected',
          'if version is not None and (False',
          "a kept journal answers the calls of another version of its step (upstream changed)",
          (f"{HOLES}::test_a_step_rerun_after_an_upstream_change_makes_its_calls_again",
           "tests/test_activities.py")),
    Break("journal-signature", "kitteh_magic/activities/journal.py",
          "self.store.json_items(self._prefix, signed=True)",
          "self.store.json_items(self._prefix)",
          "journal entries are read without checking their signature",
          (f"{HOLES}::test_a_journal_entry_pointed_at_another_value_is_refused",
           "tests/test_activities.py")),
    Break("journal-identity", "kitteh_magic/activities/dispatch.py",
          "        if entry is None and not self.concurrent:\n",
          "        if False:\n",
          "in a step's sequential part, another call at a journaled position is made live "
          "instead of refused",
          (f"{HOLES}::test_another_callee_at_a_journaled_position_after_a_crash_is_refused",
           "tests/test_activities.py")),
    Break("journal-identity-args", "kitteh_magic/activities/dispatch.py",
          "        digest = args_digest(args, kwargs)\n        receiver",
          '        digest = ""\n        receiver',
          "a journaled result is handed to the same callee called with other arguments",
          ("tests/test_activities.py", "tests/test_parallel_variants.py")),
    Break("receiver-provenance", "kitteh_magic/activities/dispatch.py",
          '                digest = f"{digest}@{made[1]}"\n',
          "                pass\n",
          "r.json() in completion order replays another response's body",
          ("tests/test_parallel_variants.py",)),
    Break("partial-arguments", "kitteh_magic/activities/dispatch.py",
          "    while type(fn) is functools.partial:\n",
          "    while False:\n",
          "partial(get, url_a)() replays the result journaled for partial(get, url_b)()",
          ("tests/test_parallel_variants.py",)),
    Break("concurrent-order", "kitteh_magic/activities/dispatch.py",
          "        self.concurrent = True\n",
          "        pass\n",
          "calls of the cell's own thread in completion order are refused as nondeterminism",
          ("tests/test_parallel_variants.py",)),
    Break("hand-off", "kitteh_magic/activities/dispatch.py",
          "        return verdict.route(step, fn, args, kwargs)\n",
          "        return fn(*args, **kwargs)\n",
          "functions handed to thread pools run with no step: their calls are not journaled",
          ("tests/test_parallel.py",)),
    Break("escaped-failures", "kitteh_magic/activities/dispatch.py",
          "            self.escaped(failure)\n",
          "            pass\n",
          "pool items that failed unseen are replayed as failures instead of made again",
          ("tests/test_parallel_variants.py",)),
    Break("durable-timer", "kitteh_magic/activities/dispatch.py",
          "            fn(max(deadline - time.time(), 0.0))\n",
          "            fn(*args)\n",
          "an interrupted sleep waits its whole time again",
          ("tests/test_parallel.py",)),
    Break("map-from-journal", "kitteh_magic/activities/mapping.py",
          '        if entry is None or entry.state == "started":\n',
          "        if True:\n",
          "km.map makes every item again on resume",
          ("tests/test_parallel.py",)),
    Break("closed-resource", "kitteh_magic/steps/outputs.py",
          "    return bool(_dead_handles(value, depth=2))\n",
          "    return False\n",
          "a closed executor or file makes a finished step unsaveable",
          ("tests/test_parallel.py",)),
    Break("lease", "kitteh_magic/steps/run.py",
          "        again = self._take_lease(looked_up)\n",
          "        again = False\n",
          "two kernels run the same step at once",
          ("tests/test_lease.py",)),
    Break("effect-incomplete", "kitteh_magic/activities/dispatch.py",
          '        if entry.state == "started" and (entry.effect or not entry.deadline):\n',
          "        if False:\n",
          "an effect cut by a crash replays as if it had returned",
          (f"{HOLES}::test_an_effect_cut_by_a_crash_is_refused_then_redone_once",
           "tests/test_activities.py")),
    Break("effect-started-first", "kitteh_magic/activities/dispatch.py",
          "            self.journal.started(call.entry(verdict))\n",
          "            pass\n",
          "an effect is not noted as started before it runs (at most once is lost)",
          ("tests/test_activities.py", HOLES)),
    Break("failure-retried", "kitteh_magic/activities/dispatch.py",
          "                self.journal.drop(slot)\n",
          "                pass\n",
          "a failure that ended the cell is replayed instead of retried",
          ("tests/test_activities.py",)),
    Break("unsaved-result-called-again", "kitteh_magic/activities/dispatch.py",
          "            if entry.unsaved or not self._outcome_loads(entry):\n",
          "            if not self._outcome_loads(entry):\n",
          "a call whose result could not be saved replays as None",
          ("tests/test_activities.py",)),
    Break("receiver-state", "kitteh_magic/activities/dispatch.py",
          "            _adopt(_receiver(fn), receiver)\n",
          "            pass\n",
          "a marked method's receiver does not get its recorded state on replay",
          ("tests/test_activities.py",)),
    Break("activity-timeout", "kitteh_magic/activities/policy.py",
          "    if not done.wait(timeout):\n",
          "    if not done.wait():\n",
          "a timed attempt is waited for however long it takes",
          ("tests/test_policy.py",)),
    Break("retry", "kitteh_magic/activities/policy.py",
          "            sleep(policy.delay(attempt))\n            continue\n",
          "            raise\n",
          "synchronous activities are never retried",
          ("tests/test_policy.py", "tests/test_activities.py")),
    # -- the runner and status ------------------------------------------------------------------
    Break("runner-restart", "kitteh_magic/runner.py",
          "                if restarts < self.max_restarts:\n",
          "                if False:\n",
          "the runner gives up when its kernel dies",
          (f"{HOLES}::test_the_runner_resumes_after_its_kernel_is_killed_from_outside",
           "tests/test_cli.py")),
    Break("server-authenticated", "kitteh_magic/server/handlers.py",
          '    @tornado.web.authenticated\n    async def post(self) -> None:\n'
          '        """Invalidate one step."""\n',
          '    async def post(self) -> None:\n        """Invalidate one step."""\n',
          "the invalidate endpoint serves requests without a user",
          ("tests/test_server.py",)),
    Break("interrupted-status", "kitteh_magic/status.py",
          'return "running" if process_alive(ptr.pid, ptr.proc_start, ptr.host) '
          'else "interrupted"',
          'return "running"',
          "a dead kernel's step shows as running forever",
          ("tests/test_robustness.py", "tests/test_server.py")),
    Break("journal-execution", "kitteh_magic/activities/journal.py",
          'elif doc.get("execution") != self.execution:',
          "elif False:",
          "a journal entry of another execution (left over, written back) is replayed",
          ("tests/test_store_heals.py",)),
    Break("record-revision", "kitteh_magic/steps/run.py",
          "if ptr is not None and ptr.key == record.key and record.revision < ptr.revision:",
          "if False:",
          "a record written back after a forced run replays its old value",
          ("tests/test_store_heals.py",)),
    Break("damaged-result-heal", "kitteh_magic/activities/dispatch.py",
          "            if entry.unsaved or not self._outcome_loads(entry):\n",
          "            if entry.unsaved:\n",
          "a lost journaled result raises in the cell instead of calling again",
          ("tests/test_store_heals.py",)),
    Break("index-aside", "kitteh_magic/store/store.py",
          "            if _corrupt(exc):\n",
          "            if False:\n",
          "an index damaged inside fails every operation forever",
          ("tests/test_store.py",)),
    Break("write-watch", "kitteh_magic/writewatch.py",
          "return self._scan(start, end, _PAGE_IS_WRITTEN)",
          "return False",
          "a remembered digest of large memory is trusted after a write",
          ("tests/test_writewatch.py", "tests/test_state_variants.py::"
           "test_w2_a_large_dataframe_written_in_place")),
)


@dataclass
class Outcome:
    """What one break did."""

    brk: Break
    verdict: str
    """caught, survived, stale, broken test, error or timeout."""
    first_failure: str = ""
    seconds: float = 0.0
    detail: str = ""


# -- the copy -----------------------------------------------------------------------------------


def _tree_files(root: Path) -> list[str]:
    """Tracked and untracked (not ignored) files of the work tree, as git lists them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=root, check=True,
                            capture_output=True).stdout
    return sorted({name for name in listed.decode().split("\0") if name})


@contextmanager
def repository_copy(rev: str | None, keep: bool) -> Iterator[Path]:
    """A temporary copy of the repository: the work tree as it is, or the tree of ``rev``.

    Only git reads are made in the source repository (``ls-files``, ``archive``): no worktree,
    stash or checkout, so other people's work there is never touched.
    """
    base = Path(tempfile.mkdtemp(prefix="kitteh-mutants-"))
    copy = base / "repo"
    copy.mkdir()
    try:
        if rev is None:
            for name in _tree_files(ROOT):
                source, target = ROOT / name, copy / name
                if not source.exists() and not source.is_symlink():
                    continue  # deleted in the work tree, not yet in the index
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target, follow_symlinks=False)
        else:
            archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT,
                                     check=True, capture_output=True).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(copy, filter="tar")
        yield copy
    finally:
        if keep:
            print(f"copy kept in {copy}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def copy_env(copy: Path) -> dict[str, str]:
    """The environment of a test run in ``copy``: its sources first on every Python's path.

    ``PYTHONPATH`` wins over the editable install's ``.pth`` entry, in pytest and in every
    kernel or CLI process the tests start (they inherit the environment). No bytecode is written,
    so a module edited twice in one second is never served from a stale cache.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("KITTEH_MAGIC_DIR", None)
    return env


def check_isolation(copy: Path, python: str) -> None:
    """Fail early unless a Python started like the tests' kernels imports the copy."""
    found = subprocess.run([python, "-c", "import kitteh_magic; print(kitteh_magic.__file__)"],
                           cwd=tempfile.gettempdir(), env=copy_env(copy), check=True,
                           capture_output=True, text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy is not what Python imports ({found}); aborting")


# -- one run ------------------------------------------------------------------------------------


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


@dataclass
class PytestRun:
    code: int
    output: str
    seconds: float

    @property
    def first_failure(self) -> str:
        found = _FAILED.search(self.output)
        return found.group(1) if found else ""


def run_pytest(copy: Path, python: str, args: Sequence[str], timeout: float) -> PytestRun | None:
    """Run pytest in the copy; None when it ran out of time (its process group is killed)."""
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", *args]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=copy, env=copy_env(copy), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return PytestRun(process.returncode, output, time.monotonic() - started)


def selection(brk: Break, base_args: list[str], all_tests: bool) -> list[str]:
    """The pytest arguments for one break: the base options and its own tests, if it has any
    and the base arguments name none."""
    names_tests = any(not a.startswith("-") and a.startswith("tests") for a in base_args)
    if all_tests or names_tests or not brk.tests:
        return base_args
    return [*base_args, *brk.tests]


class Mutator:
    """Applies one break at a time to the copy and restores the file afterwards."""

    def __init__(self, copy: Path, python: str, base_args: list[str], all_tests: bool,
                 timeout: float, confirm: bool, logs: Path | None = None) -> None:
        self.copy = copy
        self.logs = logs
        self.python = python
        self.base_args = base_args
        self.all_tests = all_tests
        self.timeout = timeout
        self.confirm = confirm
        self._passes_unbroken: dict[str, bool] = {}

    def source(self, brk: Break) -> str | None:
        path = self.copy / brk.path
        return path.read_text() if path.is_file() else None

    def run(self, brk: Break) -> Outcome:
        text = self.source(brk)
        if text is None:
            return Outcome(brk, "stale", detail=f"{brk.path} does not exist")
        found = text.count(brk.original)
        if found != 1:
            return Outcome(brk, "stale", detail=f"snippet found {found} times in {brk.path}")
        path = self.copy / brk.path
        path.write_text(text.replace(brk.original, brk.broken))
        try:
            result = run_pytest(self.copy, self.python,
                                selection(brk, self.base_args, self.all_tests), self.timeout)
        finally:
            path.write_text(text)
        if self.logs is not None and result is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            (self.logs / f"{brk.name}.txt").write_text(result.output)
        if result is None:
            return Outcome(brk, "timeout", seconds=self.timeout,
                           detail=f"no result within {self.timeout:g} s")
        if result.code == 0:
            return Outcome(brk, "survived", seconds=result.seconds)
        first = result.first_failure
        if result.code != 1 or not first:
            tail = " / ".join(result.output.strip().splitlines()[-3:])
            return Outcome(brk, "error", first, result.seconds,
                           f"pytest exit {result.code}: {tail}")
        if self.confirm and not self.passes_unbroken(first):
            return Outcome(brk, "broken test", first, result.seconds,
                           "the test fails without the break too")
        return Outcome(brk, "caught", first, result.seconds)

    def passes_unbroken(self, test: str) -> bool:
        """Whether ``test`` passes on the unbroken copy (cached per test)."""
        if test not in self._passes_unbroken:
            result = run_pytest(self.copy, self.python, [*_options_only(self.base_args), test],
                                self.timeout)
            self._passes_unbroken[test] = result is not None and result.code == 0
        return self._passes_unbroken[test]


def _options_only(args: list[str]) -> list[str]:
    """``-q``/``-x``-style flags of the base arguments (not ``-m`` and its expression, not paths):
    the confirming run names its one test."""
    return [a for a in args if a.startswith("-") and a not in ("-m", "-k")]


# -- report -------------------------------------------------------------------------------------


def print_table(outcomes: list[Outcome]) -> None:
    width = max(len(o.brk.name) for o in outcomes)
    print()
    print(f"{'break':<{width}}  {'result':<11}  {'s':>5}  first failing test / detail")
    print(f"{'-' * width}  {'-' * 11}  {'-' * 5}  {'-' * 40}")
    for o in outcomes:
        note = o.first_failure or o.detail
        if o.first_failure and o.detail:
            note = f"{o.first_failure} ({o.detail})"
        print(f"{o.brk.name:<{width}}  {o.verdict:<11}  {o.seconds:5.0f}  {note}")
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.verdict] = counts.get(o.verdict, 0) + 1
    applied = len(outcomes) - counts.get("stale", 0)
    order = ["caught", "survived", "broken test", "error", "timeout", "stale"]
    summary = ", ".join(f"{counts[v]} {v}" for v in order if v in counts)
    print(f"\n{len(outcomes)} breaks, {applied} applied: {summary}")
    survivors = [o.brk for o in outcomes if o.verdict == "survived"]
    for brk in survivors:
        print(f"  survived: {brk.name} ({brk.path}): {brk.what}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Apply named breaks one at a time to a copy of the repository and report "
                    "which ones the tests do not catch.")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    parser.add_argument("--check", action="store_true",
                        help="say which breaks are stale in the work tree and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this break (repeatable)")
    parser.add_argument("--pytest-args", default=DEFAULT_ARGS,
                        help=f"base pytest arguments (default: {DEFAULT_ARGS!r}); naming test "
                             "paths here replaces every break's own tests")
    parser.add_argument("--all-tests", action="store_true",
                        help="run the whole selection for every break, not its own tests")
    parser.add_argument("--rev", help="copy this commit instead of the work tree")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds one pytest run may take (default 3600)")
    parser.add_argument("--no-confirm", action="store_true",
                        help="do not re-run a catching test on the unbroken code")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help="write each break's pytest output to DIR/<break>.txt")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = {b.name for b in BREAKS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"unknown break(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [b for b in BREAKS if not args.only or b.name in args.only]
    if args.list:
        for brk in chosen:
            tests = " ".join(brk.tests) or "(the whole selection)"
            print(f"{brk.name}\n    {brk.path}: {brk.what}\n    tests: {tests}")
        return 0
    if args.check:
        for brk in chosen:
            path = ROOT / brk.path
            found = path.read_text().count(brk.original) if path.is_file() else 0
            print(f"{brk.name:<28} {'ok' if found == 1 else f'stale ({found} matches)'}")
        return 0
    base_args = shlex.split(args.pytest_args)
    with repository_copy(args.rev, args.keep) as copy:
        check_isolation(copy, sys.executable)
        print(f"{len(chosen)} breaks on a copy in {copy} "
              f"({'rev ' + args.rev if args.rev else 'work tree'}); pytest {args.pytest_args}")
        mutator = Mutator(copy, sys.executable, base_args, args.all_tests, args.timeout,
                          not args.no_confirm, args.logs.absolute() if args.logs else None)
        outcomes = []
        for brk in chosen:
            outcome = mutator.run(brk)
            outcomes.append(outcome)
            print(f"  {brk.name}: {outcome.verdict} {outcome.first_failure or outcome.detail}",
                  flush=True)
        print_table(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
