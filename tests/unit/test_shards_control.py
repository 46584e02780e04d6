"""Sharded runs under control: one progress view, stop requests, per-shard checkpoints and
resume (also after a SIGKILL of the driver), and live pacing per shard.

Builders come from `tests.unit.shard_models` (module level: spawned workers import them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dogesim import CountingSink, LiveOptions, Model
from dogesim.errors import ModelError
from dogesim.examples.banking import build_banking_model, event_row
from dogesim.scale.parts import part_path
from dogesim.scale.plan import shard_checkpoint
from dogesim.shards import Progress, Shard, ShardedRun, read_manifest, run_sharded
from tests.unit.shard_models import banking_run, banking_to_jsonl

ROOT = Path(__file__).resolve().parents[2]


def jsonl_run(out: Path, shards: int = 4, **changes: Any) -> ShardedRun:
    """The small seeded banking run into the merged JSONL file `out`."""
    return banking_run(functools.partial(banking_to_jsonl, str(out)), shards, **changes)


def reference(tmp_path: Path, shards: int = 4, **changes: Any) -> tuple[bytes, int]:
    """The uninterrupted run's merged bytes and events."""
    out = tmp_path / "reference.jsonl"
    result = run_sharded(jsonl_run(out, shards, **changes))
    return out.read_bytes(), result.events


class StopAtFirstReport:
    """A progress callback that records every `Progress` and sets `stop` at the first one
    showing a tick done."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.seen: list[Progress] = []

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        if progress.ticks > 0:
            self.stop.set()


class StopOnceEveryShardWrites(StopAtFirstReport):
    """Sets `stop` once every shard has written to its part file: a shard whose worker
    started late is not stopped before it starts (a stop at the first report let one shard
    never start on a loaded machine)."""

    def __init__(self, out: Path, shards: int) -> None:
        super().__init__()
        self.parts = [Path(part_path(str(out), k, shards)) for k in range(shards)]

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        if all(part.exists() and part.stat().st_size > 0 for part in self.parts):
            self.stop.set()


# -- progress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_the_last_progress_holds_the_runs_events_and_ticks(tmp_path: Path, workers: int) -> None:
    """Progress summed over 4 shards never goes back, and its last report, once every shard
    finished, holds the run's events and 4 x 600 ticks."""
    seen: list[Progress] = []
    result = run_sharded(jsonl_run(tmp_path / "p.jsonl"), workers=workers, progress=seen.append)
    last = seen[-1]
    assert (last.events, last.ticks, last.finished) == (result.events, 4 * 600, 4)
    assert last.total_ticks == 2400 and last.fraction == 1.0
    assert result.events > 1000
    for before, after in itertools.pairwise(seen):
        assert after.ticks >= before.ticks and after.events >= before.events
        assert after.finished >= before.finished


def test_progress_is_reported_while_a_shard_runs(tmp_path: Path) -> None:
    """In-process, the first report comes from inside shard 0 (no shard finished yet)."""
    seen: list[Progress] = []
    run_sharded(jsonl_run(tmp_path / "p.jsonl"), progress=seen.append)
    assert seen[0].finished == 0 and 0 < seen[0].ticks < 600


# -- stop requests ----------------------------------------------------------------------------


def test_a_stop_merges_what_the_shards_wrote_and_says_so(tmp_path: Path) -> None:
    """In-process, a stop at the first report: shard 0 stops after its tick, shards 1-3 never
    start; the result is stopped and the merged file holds exactly what the ledger counts."""
    out = tmp_path / "s.jsonl"
    stopper = StopAtFirstReport()
    result = run_sharded(jsonl_run(out), progress=stopper, stop=stopper.stop)
    assert result.stopped and not result.parts_kept
    statuses = [r.status for r in result.shard_results]
    assert statuses == ["stopped"] * 4
    assert 0 < result.shard_results[0].result.ticks < 600  # type: ignore[union-attr]
    assert all(r.result is None for r in result.shard_results[1:])
    lines = out.read_bytes().count(b"\n")
    (ledger,) = result.ledgers
    assert ledger.collected == ledger.acknowledged == lines == result.events > 0
    assert "stopped; ticks done per shard" in result.summary()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]


@pytest.mark.timeout(300)
def test_a_stop_ends_shards_running_in_other_processes(tmp_path: Path) -> None:
    """With 2 processes and a run of 10^6 ticks, a stop ends both shards at a tick boundary;
    the merged file holds what the ledger counts."""
    out = tmp_path / "long.jsonl"
    stopper = StopOnceEveryShardWrites(out, 2)
    run = jsonl_run(out, 2, subjects=200, ticks=10**6)
    result = run_sharded(run, workers=2, progress=stopper, stop=stopper.stop)
    assert stopper.stop.is_set()
    assert result.stopped
    assert [r.status for r in result.shard_results] == ["stopped", "stopped"]
    assert all(r.result is not None and r.result.ticks < 10**6 for r in result.shard_results)
    assert result.ledgers[0].acknowledged == out.read_bytes().count(b"\n") == result.events


# -- checkpoints and resume -------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_then_resume_equals_the_uninterrupted_run(tmp_path: Path, workers: int) -> None:
    """A checkpointed run (live-paced: 10 ms a tick) stopped at its first report keeps its
    parts (no merged file) and a checkpoint per started shard; the resume (backfill) merges
    the very bytes of the uninterrupted run, ledgers and events included, and removes the
    checkpoints."""
    expected, events = reference(tmp_path, timestamp_start=0)
    out = tmp_path / "c.jsonl"
    base = tmp_path / "run.ckpt"
    run = jsonl_run(out, checkpoint=str(base), timestamp_start=0)
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    first = run_sharded(paced, workers=workers, progress=stopper, stop=stopper.stop)
    assert first.stopped and first.parts_kept and not out.exists()
    manifest = read_manifest(base)
    assert manifest is not None and (manifest["seed"], manifest["shards"]) == (11, 4)
    started = [r.index for r in first.shard_results if r.result is not None]
    assert started and all(Path(shard_checkpoint(str(base), k)).exists() for k in started)
    assert all(Path(part_path(str(out), k, 4)).exists() for k in started)
    again = run_sharded(dataclasses.replace(run, resume=True), workers=workers)
    assert not again.stopped and out.read_bytes() == expected
    assert again.events == events
    (ledger,) = again.ledgers
    assert ledger.collected == ledger.acknowledged == expected.count(b"\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "reference.jsonl"]


def test_a_resume_from_periodic_checkpoints_after_two_stops(tmp_path: Path) -> None:
    """Stopped twice (periodic checkpoints every 50 ticks, in-process), resumed to the end:
    the merged bytes are the uninterrupted run's."""
    expected, _ = reference(tmp_path)
    out = tmp_path / "twice.jsonl"
    run = jsonl_run(out, checkpoint=str(tmp_path / "ck"), checkpoint_every=50)
    for attempt in (run, dataclasses.replace(run, resume=True)):
        stopper = StopAtFirstReport()
        assert run_sharded(attempt, progress=stopper, stop=stopper.stop).stopped
    run_sharded(dataclasses.replace(run, resume=True))
    assert out.read_bytes() == expected


def test_the_manifest_and_every_shard_checkpoint_are_private(tmp_path: Path) -> None:
    """A sharded run's checkpoint files are all 0600, the manifest as the shards' (it was
    0644: a run's settings, paths and positions readable by every user)."""
    base = tmp_path / "ck"
    run = jsonl_run(tmp_path / "o.jsonl", checkpoint=str(base))
    stopper = StopAtFirstReport()
    run_sharded(run, progress=stopper, stop=stopper.stop)
    written = [base] + [Path(shard_checkpoint(str(base), k)) for k in range(4)]
    written = [path for path in written if path.exists()]
    assert base in written and len(written) >= 2
    assert {path.stat().st_mode & 0o777 for path in written} == {0o600}


def test_a_resume_with_other_shards_or_seed_is_refused(tmp_path: Path) -> None:
    """Resuming with shards=2 (checkpointed with 4) or another seed names the setting; a
    path without a manifest is refused."""
    run = jsonl_run(tmp_path / "o.jsonl", checkpoint=str(tmp_path / "ck"))
    stopper = StopAtFirstReport()
    run_sharded(run, progress=stopper, stop=stopper.stop)
    with pytest.raises(ModelError, match="has shards=4, this one shards=2"):
        run_sharded(dataclasses.replace(run, resume=True, shards=2))
    with pytest.raises(ModelError, match="has seed=11, this one seed=12"):
        run_sharded(dataclasses.replace(run, resume=True, seed=12))
    with pytest.raises(Exception, match="no sharded run was checkpointed here"):
        run_sharded(dataclasses.replace(run, resume=True, checkpoint=str(tmp_path / "none")))


DRIVER = """
import functools, sys
from dogesim import LiveOptions, Model
from dogesim.examples.banking import build_banking_model, event_row
from dogesim.shards import run_sharded
from tests.unit.test_shards_control import jsonl_run

out, base = sys.argv[1], sys.argv[2]
run = jsonl_run(out, 2, checkpoint=base, checkpoint_every=20,
                live=LiveOptions(True, speed=6000.0), timestamp_start=0)

def report(progress):
    print(progress.ticks, flush=True)

run_sharded(run, workers=2, progress=report)
"""


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (its threads' children, as Linux lists them)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, waiting to be reaped, has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Poll `pids` until every one has ended or `seconds` passed; those still running."""
    import time

    deadline = time.monotonic() + seconds
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def kill_left(pids: list[int]) -> None:
    """SIGKILL whichever of `pids` still runs (a failed test leaves no orphans)."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(300)
def test_a_sigkilled_driver_is_resumed_to_the_uninterrupted_bytes(tmp_path: Path) -> None:
    """The driver of a live, checkpointed 2-process run is SIGKILLed mid-run; its workers
    stop after their tick, checkpoint and exit (none is left waiting for a driver that is
    gone); the resume (in this process, backfill) merges the uninterrupted run's bytes."""
    expected, _ = reference(tmp_path, 2, timestamp_start=0)
    out, base = tmp_path / "killed.jsonl", tmp_path / "killed.ckpt"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(out), str(base)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    workers: list[int] = []
    try:
        for line in driver.stdout:
            if int(line) >= 100:  # both shards past their first periodic checkpoints
                break
        workers = children_of(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
        assert len(workers) == 2
        assert wait_gone(workers, 60) == []
    finally:
        kill_left(workers)
    assert not out.exists() and read_manifest(base) is not None
    assert all(Path(shard_checkpoint(str(base), k)).exists() for k in (0, 1))
    run = jsonl_run(out, 2, checkpoint=str(base), resume=True)
    result = run_sharded(run)
    assert out.read_bytes() == expected
    assert [r.status for r in result.shard_results] == ["done", "done"]


IDLE_WORKER = """
import os, signal, sys, threading, time
from dogesim.scale.control import FileControl
from dogesim.scale.executors import watch_driver
from dogesim.scale.worker import terminate

control = FileControl(sys.argv[1])
signal.signal(signal.SIGTERM, terminate)
threading.Thread(target=watch_driver, args=(os.getppid(), control), daemon=True).start()
os.kill(os.getpid(), signal.SIGTERM)
deadline = time.monotonic() + 30
while not control.stopping() and time.monotonic() < deadline:
    time.sleep(0.01)
print(control.stopping(), control.cancelled())
"""


def test_a_sigterm_to_a_worker_running_no_shard_stops_the_run(tmp_path: Path) -> None:
    """A worker process that runs no shard, its driver alive, stops the whole run on a
    SIGTERM (its driver then ends it with the pool), as a SIGTERM to a running shard does;
    before, it only noted the signal for a shard it might start later."""
    done = subprocess.run(
        [sys.executable, "-c", IDLE_WORKER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_a_checkpointed_run_into_csv_parts_is_refused(tmp_path: Path) -> None:
    """A checkpointed run into CSV parts fails before any event, saying CSV parts cannot be
    continued from a checkpoint (checkpoint into JSONL); the merged CSV is not written."""
    from tests.unit.test_shards import banking_to_csv

    run = banking_run(
        functools.partial(banking_to_csv, str(tmp_path / "o.csv")),
        2,
        checkpoint=str(tmp_path / "ck"),
    )
    with pytest.raises(ModelError, match="cannot be continued from a checkpoint"):
        run_sharded(run)
    assert not (tmp_path / "o.csv").exists()


# -- worker start ----------------------------------------------------------------------------


_START_METHODS = """
import threading
from dogesim.scale.executors import start_method
alone = start_method()
release = threading.Event()
other = threading.Thread(target=release.wait)
other.start()
beside = start_method()
release.set()
other.join()
print(alone, beside)
"""


def test_forked_and_spawned_workers_write_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers are forked while the driver runs one thread and spawned beside another
    thread (a fork there could deadlock: checked in a fresh interpreter, as earlier tests
    may leave threads in this one); both merge the in-process run's bytes."""
    import subprocess
    import sys

    import dogesim.scale.executors as executors

    done = subprocess.run(
        [sys.executable, "-c", _START_METHODS], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["fork", "spawn"], done.stderr
    expected, _ = reference(tmp_path)
    forked, spawned = tmp_path / "forked.jsonl", tmp_path / "spawned.jsonl"
    for method, out in (("fork", forked), ("spawn", spawned)):
        monkeypatch.setattr(executors, "start_method", lambda method=method: method)
        run_sharded(jsonl_run(out), workers=2)
    assert forked.read_bytes() == expected == spawned.read_bytes()


# -- live -------------------------------------------------------------------------------------


def test_live_shards_write_the_backfill_bytes(tmp_path: Path) -> None:
    """Live-paced shards (2 processes, 1 ms a tick) merge the same bytes as the backfill run
    from the same clock start."""
    expected, _ = reference(tmp_path, 2, timestamp_start=0)
    out = tmp_path / "live.jsonl"
    live = LiveOptions(True, speed=60_000.0)
    result = run_sharded(jsonl_run(out, 2, live=live, timestamp_start=0), workers=2)
    assert out.read_bytes() == expected and not result.stopped


def test_live_shards_share_one_clock_start(tmp_path: Path) -> None:
    """Without a clock start, every live shard stamps from the one the driver chose (now),
    so the merged timestamps are ticks from one start."""
    out = tmp_path / "now.jsonl"
    live = LiveOptions(True, speed=60_000.0)
    result = run_sharded(jsonl_run(out, 3, live=live), workers=2)
    starts = {r.result.timestamp_start for r in result.shard_results if r.result is not None}
    assert len(starts) == 1 and starts.pop() > 1_700_000_000_000
    stamps = [json.loads(line)["timestamp"] for line in out.read_text().splitlines()]
    assert all((stamp - result.timestamp_start) % 60_000 == 0 for stamp in stamps)


def banking_to_sqlite(url: str, shard: Shard) -> Model:
    """The banking model into one SQLite table shared by every shard."""
    from dogesim.sinks.db import DbSinkFactory

    sink = DbSinkFactory(url).create("events", event_row, 100, create_table=True)
    return build_banking_model([sink])


def _table_rows(url: str, table: str = "events") -> list[tuple[Any, ...]]:
    """The table's rows, sorted (shards commit in any order: compare as a multiset)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return []
            return sorted(tuple(row) for row in conn.execute(sa.text(f"select * from {table}")))
    finally:
        engine.dispose()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_checkpointed_sharded_run_into_sql_resumes_to_the_uninterrupted_rows(
    tmp_path: Path, workers: int
) -> None:
    """A checkpointed 2-shard run into one SQLite table, stopped at its first report and
    resumed, leaves exactly the uninterrupted run's rows (no row twice, none missing); each
    shard's position is the rows it committed itself, kept in dogesim_positions."""
    pytest.importorskip("sqlalchemy")
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    run_sharded(banking_run(functools.partial(banking_to_sqlite, whole), 2, timestamp_start=0))
    expected = _table_rows(whole)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    run = banking_run(
        functools.partial(banking_to_sqlite, url),
        2,
        checkpoint=str(tmp_path / "ck"),
        checkpoint_every=50,
        timestamp_start=0,
    )
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    first = run_sharded(paced, workers=workers, progress=stopper, stop=stopper.stop)
    assert first.stopped
    stopped_rows = _table_rows(url)
    assert 0 < len(stopped_rows) < len(expected)
    positions = _table_rows(url, "dogesim_positions")
    writers = {writer: rows for writer, group, rows in positions if group is not None}
    bases = [rows for writer, group, rows in positions if group is None]
    assert sum(writers.values()) == len(stopped_rows) and len(writers) >= 1
    assert bases == [0]  # the table was empty before the run
    again = run_sharded(dataclasses.replace(run, resume=True), workers=workers)
    assert not again.stopped
    assert _table_rows(url) == expected
    (ledger,) = again.ledgers
    assert ledger.acknowledged == len(expected) - len(stopped_rows)


class _CountOnly(CountingSink):
    """A sink that commits at checkpoints and whose position is shared by every writer,
    without a position of its own (no ``key_positions``)."""

    def defer_commits(self) -> None:
        """Commit only at checkpoints."""

    def holds_position(self, position: Any) -> bool:
        """Always at its position."""
        return True


def banking_to_shared_count(shard: Shard) -> Model:
    """Banking into a `_CountOnly` sink."""
    return build_banking_model([_CountOnly()])


def test_a_checkpointed_sharded_run_refuses_a_shared_position_without_a_key(
    tmp_path: Path,
) -> None:
    """A sink committing at checkpoints with a shared position and no key_positions is
    refused per shard before any event, naming the sink and what to do."""
    run = banking_run(banking_to_shared_count, 2, checkpoint=str(tmp_path / "ck"))
    with pytest.raises(ModelError, match="cannot keep one of its own"):
        run_sharded(run)
