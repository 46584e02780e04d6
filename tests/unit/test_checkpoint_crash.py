"""Checkpoints survive crashes: a real process killed by SIGKILL (with periodic checkpoints,
and after a stop and a resume) then resumed writes exactly the uninterrupted run's JSONL
bytes and SQLite rows — no line or row lost or repeated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
"""Run, stop or resume one checkpointed run: python run.py MODE DIR."""
import sys
import time
from types import SimpleNamespace

from dogesim import Model, Simulation
from dogesim.engine.options import RunOptions
from dogesim.sinks.db import DbSinkFactory
from dogesim.sinks.files import JsonLinesSink

mode, where = sys.argv[1], sys.argv[2]
out = f"{where}/{'full' if mode == 'full' else 'part'}"
made = [0]


def make():
    made[0] += 1
    return SimpleNamespace(id=made[0] - 1, plan="pro" if made[0] % 3 else "basic")


def row(timestamp, subject, transition):
    return {"ts": timestamp, "subject": subject.id, "event": transition.trigger}


def model():
    jsonl = JsonLinesSink(out + ".jsonl", append=mode != "full" and mode != "start")
    db = DbSinkFactory(f"sqlite:///{out}.db").create("events", row, batch_size=7,
                                                      create_table=True)
    m = Model(["idle", "busy", "gone"], "idle", resources={"desk": 2})
    m.add_transition("work", "idle", "busy", 4, event_sinks=[jsonl, db], resource="desk",
                     hold=3)
    m.add_transition("rest", "busy", "idle", 6, event_sinks=[jsonl, db])
    m.add_transition("quit", "busy", "gone", 0.2, event_sinks=[jsonl, db])
    return m


def slow(t):
    if mode != "full":
        time.sleep(0.002)
    if mode == "stop" and t >= 400:
        sim.stop()


options = dict(ticks=2500, tick_ms=1000, seed=11, jitter=True, arrivals=0.05,
               timestamp_start=1_700_000_000_000)
ckpt = f"{where}/run.ckpt"
if mode in ("resume", "resume-last"):
    sim = Simulation.resume(ckpt, model(), arrivals=0.05, subject_factory=make,
                            checkpoint_path=ckpt, checkpoint_every="2m",
                            progress=None if mode == "resume-last" else slow)
    made[0] = len(sim.subjects)
else:
    every = dict(checkpoint_path=ckpt, checkpoint_every=120) if mode == "start" else {}
    sim = Simulation(model(), 15, subject_factory=make,
                     options=RunOptions(**options, progress=slow, **every))
result = sim.run()
if result.stopped:
    sim.checkpoint(ckpt)
print("done", result.events)
'''


def _run(mode: str, where: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(where / "run.py"), mode, str(where)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(mode: str, where: Path) -> str:
    process = _run(mode, where)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def _kill_after_a_checkpoint(where: Path, seed: int) -> None:
    """Start a resumed or fresh run, wait for a periodic checkpoint, SIGKILL it at a random
    moment after that."""
    ckpt = where / "run.ckpt"
    before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
    process = _run("resume" if before is not None else "start", where)
    deadline = time.monotonic() + 60
    while not ckpt.exists() or ckpt.stat().st_mtime_ns == before:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no periodic checkpoint was written"
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.05, 1.0))
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _rows(path: Path) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM events ORDER BY rowid")]
    finally:
        engine.dispose()


@pytest.fixture
def where(tmp_path: Path) -> Path:
    """A directory with the run script and the uninterrupted run's output (full.*)."""
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    _finish("full", tmp_path)
    return tmp_path


def _assert_equal_to_full(where: Path) -> None:
    full = (where / "full.jsonl").read_bytes()
    part = (where / "part.jsonl").read_bytes()
    assert part.count(b"\n") == full.count(b"\n")
    assert part == full
    full_rows, part_rows = _rows(where / "full.db"), _rows(where / "part.db")
    assert len(part_rows) == len(full_rows) == full.count(b"\n")
    assert part_rows == full_rows


def test_sigkill_with_periodic_checkpoints_then_resume_equals_the_whole_run(where: Path) -> None:
    """kill -9 at a random point of a run with periodic checkpoints; resuming the last one
    gives the uninterrupted JSONL bytes and SQLite rows."""
    _kill_after_a_checkpoint(where, seed=1)
    _finish("resume-last", where)
    _assert_equal_to_full(where)


def test_stop_resume_sigkill_resume_again_has_no_duplicates(where: Path) -> None:
    """Stop (checkpoint), resume and kill -9 it mid-run, resume again: the output equals the
    uninterrupted run, with no duplicate line or row."""
    assert "done" in _finish("stop", where)
    assert (where / "run.ckpt").stat().st_mode & 0o777 == 0o600
    _kill_after_a_checkpoint(where, seed=2)
    _kill_after_a_checkpoint(where, seed=3)
    _finish("resume-last", where)
    _assert_equal_to_full(where)
