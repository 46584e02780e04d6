"""A ``state_table`` sink in a model file: the table equals the run's final states (SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim.errors import ModelError  # noqa: E402
from dogesim.modelfile import load_model_text  # noqa: E402

MODEL = """\
name: plans
seed: 21
states: [free, paid, gone]
initial_state: free
tick: 1h
ticks: 200
subjects:
  count: 30
  attributes: {{id: {{sequence: 1}}, plan: {{choice: [a, b]}}}}
arrivals: 0.3
sinks:
  table:
    type: state_table
    url: sqlite:///{db}
    table: accounts
    create_table: true
    batch_size: 16
default_sinks: [table]
transitions:
  - {{trigger: upgrade, from: free, to: paid, probability: 10}}
  - {{trigger: downgrade, from: paid, to: free, probability: 5}}
  - {{trigger: leave, from: paid, to: gone, probability: 3}}
"""


def test_the_table_holds_each_living_subject_in_its_final_state(tmp_path: Path) -> None:
    """Insert on creation (arrivals too), update per move, delete in the final state."""
    db = tmp_path / "state.db"
    spec = load_model_text(MODEL.format(db=db))
    simulation = spec.simulation()
    result = simulation.run()
    expected = sorted(
        (s.id, state, s.plan)
        for s, state in zip(simulation.subjects, simulation.subject_states(), strict=True)
        if state != "gone"
    )
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        got = [
            tuple(r)
            for r in conn.exec_driver_sql("SELECT id, state, plan FROM accounts ORDER BY id")
        ]
    engine.dispose()
    assert got == expected
    (book,) = result.ledgers
    assert book.inserts == len(simulation.subjects) > 30
    assert book.updates + book.deletes == result.events
    assert book.collected == book.acknowledged


def test_a_state_table_that_misses_a_move_is_refused_at_that_transition(tmp_path: Path) -> None:
    """Every transition must feed the table; the error names the transition's line."""
    text = MODEL.format(db=tmp_path / "x.db")
    text = text.replace("probability: 3}", "probability: 3, sinks: []}")
    with pytest.raises(ModelError) as caught:
        load_model_text(text, source="p.yaml")
    assert str(caught.value).startswith("p.yaml:22: transitions[2]"), str(caught.value)
    assert "state table 'table'" in str(caught.value)


def test_a_db_sink_row_can_be_a_template(tmp_path: Path) -> None:
    """A ``db`` sink's ``mapper:`` template gives the row of each event (SQLite)."""
    db = tmp_path / "rows.db"
    text = MODEL.format(db=tmp_path / "state.db").replace(
        "default_sinks: [table]",
        f"  rows:\n    type: db\n    url: sqlite:///{db}\n    table: events\n"
        "    create_table: true\n"
        "    mapper: {who: {subject: id}, move: {transition: trigger}, at: {time: epoch_ms},\n"
        "             plan: {subject: plan}}\n"
        "default_sinks: [table, rows]",
    )
    result = load_model_text(text).run()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT who, move, at, plan FROM events").all()
    engine.dispose()
    assert len(rows) == result.events > 0
    assert {r[1] for r in rows} <= {"upgrade", "downgrade", "leave"}
    assert all(r[3] in ("a", "b") for r in rows)


def test_newcomers_of_a_calendar_run_are_dated_at_their_month_start(tmp_path: Path) -> None:
    """With ``tick: 1mo`` a newcomer's row is dated at the start of its month."""
    import datetime as dt

    db = tmp_path / "months.db"
    text = (
        MODEL.format(db=db)
        .replace("tick: 1h\nticks: 200", "tick: 1mo\nticks: 8\nstart: 2024-01-01T00:00:00Z")
        .replace("arrivals: 0.3", "arrivals: 2")
        .replace("probability: 10}", "probability: 0}")
    )
    load_model_text(text).run()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        stamps = [r[0] for r in conn.exec_driver_sql("SELECT updated_at FROM accounts")]
    engine.dispose()
    days = {
        dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%d %H:%M") for ms in stamps
    }
    assert len(stamps) > 30 and days == {"01 00:00"}


def _table(db: Path) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM accounts ORDER BY id")]
    engine.dispose()
    return got


@pytest.mark.parametrize("stop_at", [1, 100, 180])
def test_a_stopped_and_resumed_run_leaves_the_uninterrupted_table(
    tmp_path: Path, stop_at: int
) -> None:
    """Stop + resume: newcomers after the resume are inserted (with their arrival time), so
    the table equals the whole run's row for row, and the two ledgers add up to its ledger."""
    whole = load_model_text(MODEL.format(db=tmp_path / "whole.db")).run()
    spec = load_model_text(MODEL.format(db=tmp_path / "split.db"))
    first = spec.simulation()
    first.progress = lambda ticks: first.stop() if ticks >= stop_at else None
    before = first.run()
    assert before.stopped
    first.checkpoint(tmp_path / "run.ckpt")
    after = spec.resume(tmp_path / "run.ckpt").run()
    assert _table(tmp_path / "split.db") == _table(tmp_path / "whole.db") != []
    (a,), (b,), (w,) = before.ledgers, after.ledgers, whole.ledgers
    assert b.inserts > 0  # newcomers arrived after the resume
    for kind in ("inserts", "updates", "deletes", "collected", "acknowledged"):
        assert getattr(a, kind) + getattr(b, kind) == getattr(w, kind), kind
    assert a.failed == b.failed == 0


def test_a_stopped_and_resumed_sharded_run_leaves_the_uninterrupted_table(tmp_path: Path) -> None:
    """Two shards in two processes create the table together and insert their newcomers
    after a resume too: the table equals the uninterrupted sharded run's, every statement
    acknowledged (before, the resumed shards' newcomers had no row and their moves
    changed nothing, yet counted as acknowledged)."""
    import dataclasses

    from dogesim import LiveOptions
    from dogesim.shards import ShardedRun, run_sharded
    from tests.unit.test_shards_control import StopAtFirstReport

    def sharded(name: str, **changes: Any) -> ShardedRun:
        path = tmp_path / f"{name}.yaml"
        path.write_text(MODEL.format(db=tmp_path / f"{name}.db"))
        return ShardedRun(str(path), shards=2, timestamp_start=0, **changes)

    whole = run_sharded(sharded("whole"), workers=2)
    run = sharded("split", checkpoint=str(tmp_path / "ck"), checkpoint_every=40)
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    before = run_sharded(paced, workers=2, progress=stopper, stop=stopper.stop)
    assert before.stopped
    after = run_sharded(dataclasses.replace(run, resume=True), workers=2)
    assert _table(tmp_path / "split.db") == _table(tmp_path / "whole.db") != []
    (a,), (b,), (w,) = before.ledgers, after.ledgers, whole.ledgers
    assert a.collected + b.collected == w.collected == w.acknowledged
    assert a.acknowledged + b.acknowledged == w.collected
