"""Sharded runs into one SQL table (SQLite here; PostgreSQL in
`tests/integration/test_shards_sql_crash.py`) killed and resumed: no row twice, none lost,
and a table changed behind the run's back refused.

Each shard's sink commits only at its checkpoints, with its own count in
``dogesim_positions``; the run's manifest names the group of those counts and the table's
rows before the run, so a resume can check each shard and the table as a whole.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim import LiveOptions  # noqa: E402
from dogesim.errors import ModelError  # noqa: E402
from dogesim.scale.plan import shard_checkpoint  # noqa: E402
from dogesim.shards import read_manifest, run_sharded  # noqa: E402
from tests.unit.shard_models import banking_run  # noqa: E402
from tests.unit.test_shards_control import (  # noqa: E402
    StopAtFirstReport,
    _table_rows,
    banking_to_sqlite,
)

ROOT = Path(__file__).resolve().parents[2]


def sql_run(url: str, base: Path | None = None, **changes: Any) -> Any:
    """The small banking run into the SQLite table ``events`` at `url`, 2 shards."""
    if base is not None:
        changes["checkpoint"] = str(base)
    return banking_run(functools.partial(banking_to_sqlite, url), 2, timestamp_start=0, **changes)


def expected_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    url = f"sqlite:///{tmp_path / 'whole.db'}"
    run_sharded(sql_run(url))
    return _table_rows(url)


DRIVER = """
import sys
from pathlib import Path
from dogesim import LiveOptions
from dogesim.shards import run_sharded
from tests.unit.test_shards_sql import sql_run

every = None if sys.argv[3] == "-" else int(sys.argv[3])
run = sql_run(sys.argv[1], Path(sys.argv[2]), live=LiveOptions(True, speed=6000.0),
              checkpoint_every=every, resume=sys.argv[4] == "resume")
run_sharded(run, workers=2, progress=lambda p: print(p.ticks, flush=True))
"""


def kill_at(url: str, base: Path, ticks: int, every: int | None, *, resume: bool) -> None:
    """Run the live 2-process driver and SIGKILL it with its workers once its progress
    passes `ticks`."""
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, url, str(base), str(every or "-"), "resume" * resume],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert driver.stdout is not None
    for line in driver.stdout:
        if int(line) >= ticks:
            break
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=60)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("every", [None, 40])
def test_killed_sharded_sql_runs_resume_without_duplicates(tmp_path: Path, every: Any) -> None:
    """SIGKILL of a checkpointed 2-process run (with or without periodic checkpoints), of
    its resume, then a last resume: the table holds exactly the uninterrupted run's rows.
    Before, a shard without a checkpoint committed its batches as it went and was run
    again from the start, and a resume stopped checkpointing: rows came twice."""
    expected = expected_rows(tmp_path)
    url, base = f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "run.ckpt"
    kill_at(url, base, 150, every, resume=False)
    assert read_manifest(base) is not None
    kill_at(url, base, 350, None, resume=True)  # the manifest's checkpoint_every goes on
    result = run_sharded(sql_run(url, base, resume=True))
    assert _table_rows(url) == expected
    assert [r.status for r in result.shard_results] == ["done", "done"]


def stopped(tmp_path: Path) -> tuple[str, Path, Any]:
    """A checkpointed run stopped at its first report: its url, checkpoint and run."""
    url, base = f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "run.ckpt"
    run = sql_run(url, base, checkpoint_every=30)
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    assert run_sharded(paced, workers=2, progress=stopper, stop=stopper.stop).stopped
    return url, base, run


def execute(url: str, statement: str) -> None:
    """Run one SQL statement on the database at `url`, committed."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def test_a_shard_count_changed_behind_a_stopped_run_is_refused_at_resume(
    tmp_path: Path,
) -> None:
    """After the stop, a shard's committed count in dogesim_positions no longer matches its
    checkpoint (rows committed past it by some other run): the resume fails naming the
    writer and both counts, and adds no row."""
    url, _, run = stopped(tmp_path)
    rows = _table_rows(url)
    execute(url, "update dogesim_positions set committed_rows = committed_rows + 1")
    with pytest.raises(Exception, match=r"dogesim_positions records \d+ rows committed by"):
        run_sharded(dataclasses.replace(run, resume=True))
    assert _table_rows(url) == rows


def test_rows_deleted_behind_a_stopped_run_are_refused_at_resume(tmp_path: Path) -> None:
    """After the stop, someone deletes a row: every shard's own count still matches, but
    the table no longer holds its rows before the run plus the shards' committed ones; the
    resume is refused naming both counts, and writes nothing."""
    url, _, run = stopped(tmp_path)
    rows = _table_rows(url)
    execute(url, "delete from events where rowid = (select min(rowid) from events)")
    with pytest.raises(Exception, match=rf"holds {len(rows) - 1} rows, but .* are {len(rows)}"):
        run_sharded(dataclasses.replace(run, resume=True))
    assert len(_table_rows(url)) == len(rows) - 1


def test_a_fresh_run_over_a_stopped_runs_checkpoint_is_refused(tmp_path: Path) -> None:
    """Starting the run again without resume at the checkpoint of a stopped run is refused
    (its checkpoints would be dropped and its rows written again), naming both ways on."""
    url, _base, run = stopped(tmp_path)
    rows = _table_rows(url)
    with pytest.raises(ModelError, match="stopped here and has not finished; continue it"):
        run_sharded(run)
    assert _table_rows(url) == rows


def test_a_shard_with_rows_but_no_checkpoint_is_refused(tmp_path: Path) -> None:
    """A shard's checkpoint file is gone while its rows are committed: the resume refuses
    that shard, naming its rows, instead of writing them again."""
    _url, base, run = stopped(tmp_path)
    started = [k for k in (0, 1) if Path(shard_checkpoint(str(base), k)).exists()]
    assert started
    os.remove(shard_checkpoint(str(base), started[0]))
    with pytest.raises(Exception, match="but that shard has no checkpoint to continue them"):
        run_sharded(dataclasses.replace(run, resume=True))
