"""Checkpoints with a PostgreSQL sink (COPY): stop, resume and fail mid-run, resume again
from the checkpoint: the table holds exactly the uninterrupted run's rows, none twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

from dogesim import Model, RunError, Simulation  # noqa: E402
from dogesim.engine.options import RunOptions  # noqa: E402
from dogesim.sinks.db import DbSinkFactory  # noqa: E402
from tests.integration.services import db_url, libpq_db_url, unique_name  # noqa: E402

pytestmark = pytest.mark.db


def _sql(statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_db_url(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else []


def _table() -> str:
    name = unique_name("dogesim_ckpt").replace("-", "_")
    _sql(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, ts bigint, subject bigint, event text)")
    return name


@pytest.fixture
def tables() -> Iterator[tuple[str, str]]:
    """Two fresh tables (the whole run's, the interrupted run's), dropped afterwards."""
    names = (_table(), _table())
    yield names
    for name in names:
        _sql(f"DROP TABLE IF EXISTS {name}")


def _row(ts: int, subject: Any, transition: Any) -> dict[str, Any]:
    return {"ts": ts, "subject": subject.id, "event": transition.trigger}


def _model(table: str) -> Model:
    sink = DbSinkFactory(db_url()).create(table, _row, batch_size=40)
    model = Model(["a", "b", "c"], "a")
    model.add_transition("go", "a", "b", 10, event_sinks=[sink])
    model.add_transition("back", "b", "a", 20, event_sinks=[sink])
    model.add_transition("end", "b", "c", 1, event_sinks=[sink])
    return model


def _rows(table: str) -> list[tuple[Any, ...]]:
    return _sql(f"SELECT ts, subject, event FROM {table} ORDER BY id")


def test_stop_resume_fail_resume_again_equals_the_whole_run(
    tables: tuple[str, str], tmp_path: Path
) -> None:
    """The resumed run commits only at checkpoints and rolls back when it fails, so the
    second resume from the same checkpoint writes the rest exactly once."""
    whole, part = tables
    options = RunOptions(ticks=400, tick_ms=1000, seed=3)
    Simulation(_model(whole), 20, options=options).run()
    sim: Simulation
    sim = Simulation(
        _model(part),
        20,
        options=RunOptions(400, 1000, seed=3, progress=lambda t: sim.stop() if t >= 150 else None),
    )
    sim.run()
    sim.checkpoint(tmp_path / "c")
    at_checkpoint = len(_rows(part))
    assert 0 < at_checkpoint < len(_rows(whole))

    def fail(t: int) -> None:
        if t >= 300:
            raise KeyboardInterrupt

    crashed = Simulation.resume(tmp_path / "c", _model(part))
    crashed.progress = fail
    with pytest.raises(KeyboardInterrupt):
        crashed.run()
    assert len(_rows(part)) == at_checkpoint
    Simulation.resume(tmp_path / "c", _model(part)).run()
    assert _rows(part) == _rows(whole)
    assert len(_rows(whole)) > 100


def test_resume_refuses_a_table_with_rows_past_the_checkpoint(
    tables: tuple[str, str], tmp_path: Path
) -> None:
    """A row added after the checkpoint: resume is a RunError naming the counts."""
    _, part = tables
    sim: Simulation
    sim = Simulation(
        _model(part),
        20,
        options=RunOptions(400, 1000, seed=3, progress=lambda t: sim.stop() if t >= 150 else None),
    )
    sim.run()
    sim.checkpoint(tmp_path / "c")
    rows = len(_rows(part))
    _sql(f"INSERT INTO {part} (ts, subject, event) VALUES (1, 1, 'stray')")
    with pytest.raises(RunError, match=f"holds {rows + 1} rows, {rows} at the checkpoint"):
        Simulation.resume(tmp_path / "c", _model(part)).run()
