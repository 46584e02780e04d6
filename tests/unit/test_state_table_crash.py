"""A state table after ``kill -9``: the resume brings the table back to the checkpoint (rows
the killed run committed after it undone), so the finished table equals the uninterrupted
run's row for row, in one process and in a 2-shard, 2-worker run (SQLite)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim.engine import checkpoint as checkpoints  # noqa: E402
from dogesim.modelfile import load_model_text  # noqa: E402
from tests.unit.test_state_table_modelfile import MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z

#: The model: arrivals (newcomers inserted), a final state and churn (rows deleted), jitter.
CRASH_MODEL = MODEL.replace(
    "tick: 1h\n", "tick: 1h\nstart: 2024-01-01T00:00:00Z\njitter: true\nchurn: 2% per hour\n"
)

#: One process: periodic checkpoints every 40 ticks; it hangs after tick HANG (past a
#: checkpoint, its batches of 16 statements committed) until it is killed. With "resume" it
#: continues the checkpoint instead.
SINGLE = """
import sys, time
from dogesim.modelfile import load_model_file

model, ckpt, hang_at, mode = sys.argv[1:5]
spec = load_model_file(model)

def hang(ticks):
    print(ticks, flush=True)
    if ticks >= int(hang_at):
        time.sleep(600)

if mode == "resume":
    sim = spec.resume(ckpt, checkpoint_path=ckpt, checkpoint_every=40, progress=hang)
else:
    sim = spec.simulation(checkpoint_path=ckpt, checkpoint_every=40, progress=hang)
sim.run()
"""

#: Two shards in two workers, live, checkpointing every 40 ticks.
SHARDED = """
import sys
from dogesim import LiveOptions
from dogesim.shards import ShardedRun, run_sharded

run = ShardedRun(sys.argv[1], shards=2, timestamp_start=0, checkpoint=sys.argv[2],
                 checkpoint_every=40, live=LiveOptions(True, speed=60000.0))
run_sharded(run, workers=2, progress=lambda p: print(p.ticks, flush=True))
"""


def _table(db: Path) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM accounts ORDER BY id")]
    finally:
        engine.dispose()


def _model_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CRASH_MODEL.format(db=tmp_path / f"{name}.db"))
    return path


def kill_when(script: str, args: list[str], ticks: int) -> None:
    """Run `script`, SIGKILL its process group once it reports `ticks` done."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if int(line) >= ticks:
            break
    else:
        pytest.fail(f"the run ended before {ticks} ticks: {process.wait()}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _changed_after(rows: list[tuple[Any, ...]], stamp: int) -> int:
    """The rows dated at or after `stamp` (``updated_at`` is the third column)."""
    return sum(1 for row in rows if row[2] >= stamp)


@pytest.mark.timeout(300)
def test_a_killed_run_resumed_leaves_the_uninterrupted_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 after tick 60 (checkpoint at 40, rows committed after it: moves, newcomers,
    deletes); the resume reconciles the table to the checkpoint and ends with the whole
    run's table (before, the resume failed on the newcomers' duplicate keys); its ledger
    adds up: the rows at the checkpoint plus its inserts less its deletes, all acknowledged."""
    whole = load_model_text(CRASH_MODEL.format(db=tmp_path / "whole.db")).run()
    path, ckpt = _model_file(tmp_path, "split"), tmp_path / "run.ckpt"
    kill_when(SINGLE, [str(path), str(ckpt), "60", "start"], 60)
    saved = checkpoints.load(ckpt)
    assert saved["next_tick"] == 40
    assert _changed_after(_table(tmp_path / "split.db"), START + 40 * HOUR) > 0
    resumed = load_model_text(path.read_text()).resume(ckpt)
    names = resumed.model.states
    living = [names[s] in ("free", "paid") for s in checkpoints.states_of(saved)]
    after = resumed.run()
    (note,) = [r.getMessage() for r in caplog.records if "back to the checkpoint" in r.message]
    restored, dropped = (int(n) for n in re.findall(r"(\d+) rows", note))
    assert restored > 0 and dropped > 0, note
    got = _table(tmp_path / "split.db")
    assert got == _table(tmp_path / "whole.db") != []
    (b,), (w,) = after.ledgers, whole.ledgers
    assert b.failed == 0 and b.acknowledged == b.collected
    assert b.inserts > 0 and b.deletes > 0
    assert len(got) == sum(living) + b.inserts - b.deletes
    assert b.collected < w.collected


@pytest.mark.timeout(300)
def test_a_killed_sharded_run_resumed_leaves_the_uninterrupted_table(tmp_path: Path) -> None:
    """Both processes of a 2-shard, 2-worker run SIGKILLed after their checkpoint at tick 40;
    each shard's resume undoes only its own rows (the other shard's stay, as it resumes
    too) and the table equals the uninterrupted sharded run's."""
    from dogesim.shards import ShardedRun, run_sharded

    whole = run_sharded(
        ShardedRun(str(_model_file(tmp_path, "whole")), shards=2, timestamp_start=0)
    )
    path, base = _model_file(tmp_path, "split"), tmp_path / "ck"
    kill_when(SHARDED, [str(path), str(base)], 110)
    ticks = [checkpoints.load(f"{base}.shard-{k}")["next_tick"] for k in (0, 1)]
    assert min(ticks) >= 40
    assert _changed_after(_table(tmp_path / "split.db"), max(ticks) * HOUR) > 0
    after = run_sharded(ShardedRun(str(path), checkpoint=str(base), resume=True), workers=2)
    assert [r.status for r in after.shard_results] == ["done", "done"]
    assert _table(tmp_path / "split.db") == _table(tmp_path / "whole.db") != []
    (b,), (w,) = after.ledgers, whole.ledgers
    assert b.failed == 0 and b.acknowledged == b.collected < w.collected


@pytest.mark.timeout(300)
def test_a_resumed_run_killed_again_resumes_to_the_uninterrupted_table(tmp_path: Path) -> None:
    """Killed after tick 60, resumed and killed again after tick 100 (its checkpoint at 80
    keeps the rows of the subjects it did not touch since the first checkpoint too), resumed
    to the end: the whole run's table."""
    load_model_text(CRASH_MODEL.format(db=tmp_path / "whole.db")).run()
    path, ckpt = _model_file(tmp_path, "split"), tmp_path / "run.ckpt"
    kill_when(SINGLE, [str(path), str(ckpt), "60", "start"], 60)
    kill_when(SINGLE, [str(path), str(ckpt), "100", "resume"], 100)
    assert checkpoints.load(ckpt)["next_tick"] == 80
    assert _changed_after(_table(tmp_path / "split.db"), START + 80 * HOUR) > 0
    after = load_model_text(path.read_text()).resume(ckpt).run()
    assert _table(tmp_path / "split.db") == _table(tmp_path / "whole.db") != []
    (b,) = after.ledgers
    assert b.failed == 0 and b.acknowledged == b.collected
