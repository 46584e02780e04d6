"""SQL sinks and checkpoints (SQLite): rows are committed only at checkpoints in a
checkpointed or resumed run, and a resume checks the table holds the checkpoint's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim import Model, RunError, Simulation  # noqa: E402
from dogesim.engine.options import RunOptions  # noqa: E402
from dogesim.model import Transition  # noqa: E402
from dogesim.sinks.db import DbSinkFactory  # noqa: E402

GO = Transition("go", "a", "b", 10)


def _row(ts: int, subject: Any, transition: Any) -> dict[str, Any]:
    return {"ts": ts, "subject": subject.id, "event": transition.trigger}


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("events"):
                return 0
            return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())
    finally:
        engine.dispose()


def _rows(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM events ORDER BY rowid")]
    finally:
        engine.dispose()


def _model(url: str) -> Model:
    sink = DbSinkFactory(url).create("events", _row, batch_size=50, create_table=True)
    model = Model(["a", "b", "c"], "a")
    model.add_transition("go", "a", "b", 10, event_sinks=[sink])
    model.add_transition("back", "b", "a", 20, event_sinks=[sink])
    model.add_transition("end", "b", "c", 1, event_sinks=[sink])
    return model


def _options(**changes: Any) -> RunOptions:
    return RunOptions(**{"ticks": 400, "tick_ms": 1000, "seed": 3, **changes})


def test_deferred_sink_commits_only_at_position(tmp_path: Path) -> None:
    """After defer_commits, full batches are written but not committed; position() commits
    them and reports the table's rows; close() commits the rest."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    sink = DbSinkFactory(url).create("events", _row, batch_size=3, create_table=True)
    sink.defer_commits()
    subject = type("S", (), {"id": 1})()
    for i in range(8):
        sink.collect(i, subject, GO)
    assert _count(url) == 0 and sink.ledger.acknowledged == 0
    assert sink.position() == {"table_rows": 8}
    assert _count(url) == 8 and sink.ledger.acknowledged == 8
    for i in range(4):
        sink.collect(10 + i, subject, GO)
    assert _count(url) == 8
    sink.close()
    assert _count(url) == 12
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (12, 12, 0)


def test_stop_resume_twice_gives_the_whole_run_rows(tmp_path: Path) -> None:
    """Stop and checkpoint, resume once (rows then lost in a crash are rolled back: nothing
    past the checkpoint is committed before it), resume again: the whole run's rows."""
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    Simulation(_model(whole), 20, options=_options()).run()
    url = f"sqlite:///{tmp_path / 'part.db'}"
    sim: Simulation
    sim = Simulation(
        _model(url), 20, options=_options(progress=lambda t: sim.stop() if t >= 150 else None)
    )
    sim.run()
    sim.checkpoint(tmp_path / "c")
    at_checkpoint = _count(url)
    assert 0 < at_checkpoint < _count(whole)

    crashed: Simulation
    crashed = Simulation.resume(tmp_path / "c", _model(url))

    def crash(t: int) -> None:
        if t >= 300:
            assert _count(url) == at_checkpoint  # the resumed run has committed nothing yet
            raise KeyboardInterrupt

    crashed.progress = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run()
    Simulation.resume(tmp_path / "c", _model(url)).run()
    assert _rows(url) == _rows(whole)


def test_resume_refuses_a_table_changed_since_the_checkpoint(tmp_path: Path) -> None:
    """Rows committed after the checkpoint cannot be told apart: resume refuses, naming
    the table and both counts, and deletes nothing."""
    url = f"sqlite:///{tmp_path / 'part.db'}"
    sim: Simulation
    sim = Simulation(
        _model(url), 20, options=_options(progress=lambda t: sim.stop() if t >= 150 else None)
    )
    sim.run()
    sim.checkpoint(tmp_path / "c")
    rows = _count(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO events VALUES (1, 2, 'stray')")
    engine.dispose()
    with pytest.raises(RunError, match=f"holds {rows + 1} rows, {rows} at the checkpoint"):
        Simulation.resume(tmp_path / "c", _model(url)).run()
    assert _count(url) == rows + 1


def test_two_deferred_sinks_share_one_sqlite_file(tmp_path: Path) -> None:
    """SQLite has one writer per file: two deferred sinks of one file both collect full
    batches without locking each other, and both commit at position()."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    factory = DbSinkFactory(url)
    first = factory.create("events", _row, batch_size=2, create_table=True)
    second = factory.create("others", _row, batch_size=2, create_table=True)
    subject = type("S", (), {"id": 1})()
    for sink in (first, second):
        sink.defer_commits()
    for i in range(5):
        first.collect(i, subject, GO)
        second.collect(i, subject, GO)
    assert first.position() == {"table_rows": 5}
    assert second.position() == {"table_rows": 5}
    first.close()
    second.close()
    assert (second.ledger.acknowledged, second.ledger.failed) == (5, 0)


def test_crash_between_commit_and_rename_resumes_from_the_pending_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after a periodic checkpoint's rows were committed but before its file replaced
    the previous one leaves the table ahead of that file: the resume takes the pending
    checkpoint the crash left, whose rows the table holds, and ends with the whole run's rows.
    (Before, the table was ahead of the only checkpoint and the resume was refused.)"""
    whole_url = f"sqlite:///{tmp_path / 'whole.db'}"
    Simulation(_model(whole_url), 200, options=_options()).run()
    url = f"sqlite:///{tmp_path / 'e.db'}"
    path = tmp_path / "run.ckpt"
    from dogesim.engine import checkpoint as checkpoints

    renames = {"n": 0}
    real_replace = checkpoints.os.replace

    def dies_at_the_third_rename(src: Any, dst: Any) -> None:
        if str(src).endswith(".pending"):
            renames["n"] += 1
            if renames["n"] == 3:
                raise KeyboardInterrupt("killed between the commit and the rename")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", dies_at_the_third_rename)
    sim = Simulation(
        _model(url), 200, options=_options(checkpoint_path=str(path), checkpoint_every=100)
    )
    with pytest.raises(KeyboardInterrupt):
        sim.run()
    monkeypatch.undo()
    pending = Path(checkpoints.pending_path(path))
    assert pending.exists()
    at_second = checkpoints.load(path)["sinks"][0]["table_rows"]
    at_third = checkpoints.load(pending)["sinks"][0]["table_rows"]
    assert _count(url) == at_third > at_second
    resumed = Simulation.resume(path, _model(url))
    resumed.run()
    assert not pending.exists()
    assert _rows(url) == _rows(whole_url)
