"""StateTableSink on SQLite: insert on creation, update per move, delete on churn, exact ledger."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim import Model, Simulation  # noqa: E402
from dogesim.errors import SinkConfigError, SinkError  # noqa: E402
from dogesim.model import Transition  # noqa: E402
from dogesim.sinks.registry import build_sink  # noqa: E402
from dogesim.sinks.state_table import StateTableSink  # noqa: E402

T0 = 1_700_000_000_000
UP = Transition("upgrade", "free", "paid", 5)
LEAVE = Transition("leave", "paid", "gone", 5)


def rows(url: str, table: str = "state") -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.exec_driver_sql(
                    f"SELECT id, state, updated_at FROM {table} ORDER BY id"
                )
            ]
    finally:
        engine.dispose()


def test_insert_update_delete_in_order_with_a_ledger_per_statement(tmp_path: Path) -> None:
    """Creation inserts, a move updates, a final state deletes; each statement is counted."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    sink = StateTableSink(
        url, "state", initial_state="free", final_states=["gone"], create_table=True, batch_size=2
    )
    a, b = SimpleNamespace(id=1, plan="x"), SimpleNamespace(id=2, plan="y")
    sink.created(a, T0)
    sink.created(b, T0)
    sink.collect(T0 + 5, a, UP)
    sink.collect(T0 + 9, a, LEAVE)
    sink.collect(T0 + 9, b, UP)
    sink.close()
    assert rows(url) == [(2, "paid", T0 + 9)]
    book = sink.ledger
    assert (book.inserts, book.updates, book.deletes) == (2, 2, 1)
    assert (book.collected, book.acknowledged, book.failed) == (5, 5, 0)


def test_final_table_equals_the_runs_final_states(tmp_path: Path) -> None:
    """After a run with arrivals and churn the table holds each living subject's last state."""
    url = f"sqlite:///{tmp_path / 'run.db'}"
    model = Model(["free", "paid", "gone"], "free")
    sink = StateTableSink(
        url, "state", initial_state="free", final_states=["gone"], create_table=True, batch_size=7
    )
    model.add_transition("upgrade", "free", "paid", 20, event_sinks=[sink])
    model.add_transition("downgrade", "paid", "free", 10, event_sinks=[sink])
    model.add_transition("leave", "paid", "gone", 5, event_sinks=[sink])
    counter = iter(range(10**6))
    factory = sink.track(lambda: SimpleNamespace(id=next(counter)))
    sim = Simulation(
        model,
        40,
        subject_factory=factory,
        ticks=60,
        tick_ms=1000,
        seed=3,
        arrivals=0.5,
        timestamp_start=T0,
    )
    result = sim.run()
    expected = sorted(
        (s.id, state)
        for s, state in zip(sim.subjects, sim.subject_states(), strict=True)
        if state != "gone"
    )
    assert [(i, st) for i, st, _ in rows(url)] == expected
    assert len(sim.subjects) > 40  # arrivals were inserted too
    book = sink.ledger
    assert book.inserts == len(sim.subjects)
    assert book.updates + book.deletes == result.events
    assert book.deletes == len(sim.subjects) - len(expected)
    assert book.collected == book.acknowledged


def test_registry_entry_builds_it_and_picks_columns(tmp_path: Path) -> None:
    """``state_table`` in the registry builds the sink; ``columns`` names the kept attributes."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    sink = build_sink(
        "state_table",
        {
            "url": url,
            "table": "people",
            "initial_state": "free",
            "columns": ["name"],
            "create_table": True,
        },
    )
    sink.created(SimpleNamespace(id=7, name="Ann", secret="no"), T0)
    sink.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = [c["name"] for c in sa.inspect(engine).get_columns("people")]
        assert conn.exec_driver_sql("SELECT id, state, name FROM people").one() == (
            7,
            "free",
            "Ann",
        )
    engine.dispose()
    assert names == ["id", "state", "updated_at", "name"]


def test_missing_initial_state_and_missing_table_are_config_errors(tmp_path: Path) -> None:
    """The builder needs initial_state; a missing table without create_table is refused."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with pytest.raises(SinkConfigError, match="needs initial_state"):
        build_sink("state_table", {"url": url, "table": "t"})
    with pytest.raises(SinkConfigError, match="does not exist"):
        StateTableSink(url, "absent", initial_state="a")


def test_a_refused_statement_fails_close_with_counts(tmp_path: Path) -> None:
    """A duplicate key is refused by the database: close() raises with the failed count."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    sink = StateTableSink(url, "state", initial_state="free", create_table=True)
    subject = SimpleNamespace(id=1)
    sink.created(subject, T0)
    sink.created(subject, T0)
    with pytest.raises(SinkError, match=r"2 failed|failed 2"):
        sink.close()
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (2, 0, 2)


@pytest.mark.parametrize("move", [UP, LEAVE], ids=["update", "delete"])
def test_a_statement_that_matches_no_row_is_failed_not_acknowledged(
    tmp_path: Path, move: Transition
) -> None:
    """An update or delete of a subject that has no row changes nothing: it is counted as
    failed and raises, naming it; the statements around it are committed and acknowledged."""
    url = f"sqlite:///{tmp_path / 'z.db'}"
    sink = StateTableSink(
        url, "state", initial_state="free", final_states=["gone"], create_table=True
    )
    known, unknown = SimpleNamespace(id=1), SimpleNamespace(id=2)
    sink.created(known, T0)
    sink.collect(T0 + 1, unknown, move)
    sink.collect(T0 + 2, known, UP)
    with pytest.raises(SinkError) as caught:
        sink.flush()
    assert f"1 {'update' if move is UP else 'delete'} matched no row in table 'state'" in str(
        caught.value
    )
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (3, 2, 1)
    with pytest.raises(SinkError, match="lost 1 of 3"):
        sink.close()
    assert rows(url) == [(1, "paid", T0 + 2)]


def test_a_table_created_between_the_check_and_the_create_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of a sharded run, made certain: the table is missing when this sink checks
    (the database says so once) but another writer has created it by its CREATE TABLE."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    late = StateTableSink(url, "state", initial_state="free", create_table=True)
    first = StateTableSink(url, "state", initial_state="free", create_table=True)
    first.created(SimpleNamespace(id=1), T0)
    first.close()
    dialect = type(late.engine.dialect)
    truth = dialect.has_table
    lies = [1]

    def has_table(self: Any, connection: Any, name: str, *args: Any, **kw: Any) -> bool:
        if lies[0]:
            lies[0] -= 1
            return False
        return bool(truth(self, connection, name, *args, **kw))

    monkeypatch.setattr(dialect, "has_table", has_table)
    late.created(SimpleNamespace(id=2), T0 + 1)
    late.close()
    assert lies == [0]
    assert rows(url) == [(1, "free", T0), (2, "free", T0 + 1)]
    assert (late.ledger.acknowledged, late.ledger.failed) == (1, 0)


def _create_together(urls: list[str], ident: int, barrier: Any, results: Any) -> None:
    """One of several processes: for each database, a sink that finds no table, then (all
    together) its first insert, which creates it."""
    for url in urls:
        sink = StateTableSink(url, "state", initial_state="free", create_table=True)
        barrier.wait()
        try:
            sink.created(SimpleNamespace(id=ident), T0)
            sink.close()
            results.put(None)
        except Exception as exc:  # reported to the test, which names it
            results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_one_table_at_once_all_write(tmp_path: Path) -> None:
    """Six processes create each of 24 fresh SQLite tables at the same moment (the first
    insert of each shard of a run): every insert is acknowledged, every table holds six rows
    (before the fix, most rounds had a loser)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    processes, rounds = 6, 24
    urls = [f"sqlite:///{tmp_path / f'race{r}.db'}" for r in range(rounds)]
    barrier, results = context.Barrier(processes, timeout=120), context.Queue()
    workers = [
        context.Process(target=_create_together, args=(urls, i, barrier, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(processes * rounds)]
    for worker in workers:
        worker.join(timeout=60)
    assert [o for o in outcomes if o is not None] == []
    assert all(len(rows(url)) == processes for url in urls)


def _crashed_after_a_checkpoint(url: str, keys: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """A sink of subjects `keys` (the first three at the checkpoint, the last a newcomer
    after it) that moved, checkpointed, then moved, deleted and inserted more, committed as
    a killed run leaves it; the checkpoint's subjects and the sink's position there."""
    sink = StateTableSink(
        url, "state", initial_state="free", final_states=["gone"], create_table=True
    )
    subjects = [SimpleNamespace(id=key, plan="x") for key in keys]
    for subject in subjects[:3]:
        sink.created(subject, T0)
    sink.collect(T0 + 5, subjects[0], UP)
    sink.collect(T0 + 6, subjects[1], UP)
    position = sink.position()
    sink.collect(T0 + 20, subjects[0], LEAVE)  # deleted after the checkpoint
    sink.collect(T0 + 21, subjects[2], UP)  # moved after it
    sink.created(subjects[3], T0 + 22)  # a newcomer after it
    sink.close()
    return subjects[:3], position


def _resumed(url: str, subjects: list[Any], position: dict[str, Any] | None) -> StateTableSink:
    sink = StateTableSink(url, "state", initial_state="free", final_states=["gone"])
    if position is not None:
        sink.restore_position(position)
    sink.reconcile(subjects)
    return sink


def test_a_resume_brings_the_table_back_to_the_checkpoint_and_nothing_else(
    tmp_path: Path,
) -> None:
    """The rows changed or deleted after the checkpoint are as they were, the newcomer's
    row is gone (its key continues the subjects' 0, 2, 4), and the rows of other writers —
    the other residue of a 2-shard run, a key dated before the checkpoint, a string key —
    are untouched; the ledger counts no statement."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    other = StateTableSink(url, "state", initial_state="free", create_table=True)
    other.created(SimpleNamespace(id=1, plan="o"), T0 + 30)  # odd: the other shard's
    other.created(SimpleNamespace(id=8, plan="o"), T0 - 1)  # written before the checkpoint
    other.close()
    subjects, position = _crashed_after_a_checkpoint(url, [0, 2, 4, 6])
    stale = _resumed(url, subjects, None)  # what a resume did before: the newcomer fails
    stale.created(SimpleNamespace(id=6, plan="x"), T0 + 22)
    with pytest.raises(SinkError, match="UNIQUE"):
        stale.flush()
    with pytest.raises(SinkError, match="lost 1 of 1"):
        stale.close()
    sink = _resumed(url, subjects, position)
    assert rows(url) == [
        (0, "paid", T0 + 5),
        (1, "free", T0 + 30),
        (2, "paid", T0 + 6),
        (4, "free", T0),
        (8, "free", T0 - 1),
    ]
    assert sink.ledger.collected == 0
    sink.created(SimpleNamespace(id=6, plan="x"), T0 + 22)  # the newcomer again
    sink.close()
    assert (sink.ledger.acknowledged, sink.ledger.failed) == (1, 0)


def test_a_stopped_run_resumed_changes_no_row(tmp_path: Path) -> None:
    """A clean stop: the table is at the checkpoint already, and the resume leaves it."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    sink = StateTableSink(url, "state", initial_state="free", create_table=True)
    subjects = [SimpleNamespace(id=i) for i in range(3)]
    for subject in subjects:
        sink.created(subject, T0)
    sink.collect(T0 + 1, subjects[1], UP)
    sink.close()
    position, before = sink.position(), rows(url)
    _resumed(url, subjects, position).close()
    assert rows(url) == before == [(0, "free", T0), (1, "paid", T0 + 1), (2, "free", T0)]


def test_keys_without_a_progression_leave_later_rows_to_the_resume(tmp_path: Path) -> None:
    """Keys that are no counter (strings) tell no newcomer: its row stays and the resumed
    run's insert of it fails loudly, as before; the subjects' rows are back all the same."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    sql = "SELECT id, state FROM state ORDER BY id"
    subjects, position = _crashed_after_a_checkpoint(url, ["a", "b", "c", "d"])
    _resumed(url, subjects, position).close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.exec_driver_sql(sql)]
    engine.dispose()
    assert got == [("a", "paid"), ("b", "paid"), ("c", "free"), ("d", "free")]


def test_a_checkpoint_that_kept_no_rows_is_resumed_as_before(tmp_path: Path) -> None:
    """A checkpoint from before state tables kept rows: nothing is changed, and the resumed
    sink's own checkpoints keep no rows either (it does not know them all)."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    subjects, _ = _crashed_after_a_checkpoint(url, [0, 1, 2, 3])
    before = rows(url)
    sink = _resumed(url, subjects, None)
    assert rows(url) == before
    assert sink.position()["keys"] is None
    sink.close()


def test_a_table_without_the_state_columns_fails_the_resume_naming_them(tmp_path: Path) -> None:
    """A table someone replaced by one without ``state``: the resume is a SinkError naming
    the table and the column, nothing changed."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    subjects, position = _crashed_after_a_checkpoint(url, [0, 1, 2, 3])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE state")
        conn.exec_driver_sql("CREATE TABLE state (id INTEGER PRIMARY KEY, updated_at INTEGER)")
    engine.dispose()
    with pytest.raises(SinkError, match=r"table 'state' back to the checkpoint failed: .*'state'"):
        _resumed(url, subjects, position)
