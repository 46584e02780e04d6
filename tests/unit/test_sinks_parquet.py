"""The Parquet sink: the conformance suite, row groups, schemas, the torn-file rule, positions,
the registry entry and the report reader."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from dogesim import Model, Simulation  # noqa: E402
from dogesim.errors import RunError, SinkConfigError, SinkError  # noqa: E402
from dogesim.sinks.conformance import (  # noqa: E402
    STEP,
    T0,
    RecordMapper,
    SinkConformance,
    SinkHarness,
    feed,
    record,
)
from dogesim.sinks.parquet import ParquetSink, ParquetSinkFactory, parquet_schema  # noqa: E402
from dogesim.sinks.registry import build_sink  # noqa: E402


def parquet_harness(tmp_path: Path) -> SinkHarness:
    """ParquetSink to a file, small row groups; read back with pyarrow."""
    path = tmp_path / "events.parquet"

    def values() -> list[int]:
        return pq.read_table(path).column("n").to_pylist() if path.exists() else []

    def make(mapper: RecordMapper) -> ParquetSink:
        return ParquetSink(path, mapper, row_group_size=7)

    return SinkHarness("parquet", make, lambda: len(values()), values)


@pytest.fixture
def sink_under_test(tmp_path: Path) -> SinkHarness:
    """The Parquet sink with a fresh file in `tmp_path`."""
    return parquet_harness(tmp_path)


class TestParquetSink(SinkConformance):
    """The Parquet sink keeps the sink contract."""


def test_rows_go_in_row_groups_of_the_given_size(tmp_path: Path) -> None:
    """23 rows with row_group_size=10 give row groups of 10, 10 and 3, in order."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, record, row_group_size=10)
    feed(sink, 0, 23)
    assert sink.row_groups == [10, 10]
    assert sink.ledger.acknowledged == 0  # no footer yet: nothing is readable
    assert not path.exists() and Path(f"{path}.partial").exists()
    sink.close()
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 3]
    assert pq.read_table(path).column("n").to_pylist() == list(range(23))
    assert not Path(f"{path}.partial").exists()


def test_collect_many_gives_the_same_file_as_collect(tmp_path: Path) -> None:
    """collect_many writes the same rows and ledger as collect, event by event."""
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    a = ParquetSink(one, record, row_group_size=4)
    b = ParquetSink(many, record, row_group_size=4)
    for tick in range(3):
        subjects = list(range(tick * 5, tick * 5 + 5))
        for n in subjects:
            a.collect(T0 + tick, n, STEP)
        b.collect_many(T0 + tick, subjects, [STEP] * len(subjects))
    a.close()
    b.close()
    assert pq.read_table(one).equals(pq.read_table(many))
    assert (b.ledger.collected, b.ledger.acknowledged) == (15, 15)


def test_default_columns_are_the_jsonl_record(tmp_path: Path) -> None:
    """Without a mapper the columns are default_record's; the subject is a struct."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path)
    sink.collect(T0, Account(3, 9.5), STEP)
    sink.close()
    rows = pq.read_table(path).to_pylist()
    assert rows == [
        {
            "timestamp": T0,
            "trigger": "step",
            "from_state": "a",
            "to_state": "b",
            "subject": {"id": 3, "balance": 9.5},
        }
    ]


def test_a_row_of_another_type_fails_alone_naming_the_field(tmp_path: Path) -> None:
    """A later row whose field has another type fails with the field, value and event; the
    other rows of its group are written and the ledger counts exactly."""
    path = tmp_path / "e.parquet"

    def mapper(ts: int, n: Any, t: Any) -> dict[str, Any]:
        out = record(ts, n, t)
        if n == 6:
            out["n"] = "six"
        return out

    sink = ParquetSink(path, mapper, row_group_size=4)
    feed(sink, 0, 4)  # the first group fixes n as int64
    with pytest.raises(SinkError, match=r"field 'n' = 'six' is not int64") as info:
        feed(sink, 4, 4)
    assert "event #7" in str(info.value)
    with pytest.raises(SinkError):
        sink.close()
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (8, 7, 1)
    assert pq.read_table(path).column("n").to_pylist() == [0, 1, 2, 3, 4, 5, 7]


def test_a_field_outside_the_schema_fails_naming_it(tmp_path: Path) -> None:
    """A record with a key that is not a column is not written silently without it."""
    path = tmp_path / "e.parquet"

    def mapper(ts: int, n: Any, t: Any) -> dict[str, Any]:
        out = record(ts, n, t)
        if n == 2:
            out["extra"] = 1
        return out

    sink = ParquetSink(path, mapper, row_group_size=100)
    feed(sink, 0, 4)
    with pytest.raises(SinkError, match=r"field 'extra' is not a column"):
        sink.close()
    assert sink.ledger.acknowledged == 3


def test_declared_schema_with_dotted_struct_fields(tmp_path: Path) -> None:
    """A declared {name: type} schema sets the column types; dotted names are struct fields."""
    schema = parquet_schema({"timestamp": "int64", "trigger": "string", "s.n": "int32"})
    assert schema.field("s").type == pa.struct([pa.field("n", pa.int32())])
    path = tmp_path / "e.parquet"
    sink = ParquetSink(
        path, lambda ts, n, t: {"timestamp": ts, "trigger": t.trigger, "s": {"n": n}}, schema=schema
    )
    feed(sink, 0, 3)
    sink.close()
    assert pq.read_schema(path).field("s").type == schema.field("s").type
    assert [r["s"]["n"] for r in pq.read_table(path).to_pylist()] == [0, 1, 2]


def test_unknown_type_name_is_a_config_error() -> None:
    """A type pyarrow does not know is refused when the sink is made, naming the field."""
    with pytest.raises(SinkConfigError, match=r"field 'n' has type 'integer'"):
        parquet_schema({"n": "integer"})


def test_a_killed_run_leaves_the_previous_file_readable(tmp_path: Path) -> None:
    """Until close() the rows go to .partial (no footer); the finished file is untouched."""
    path = tmp_path / "e.parquet"
    first = ParquetSink(path, record)
    feed(first, 0, 5)
    first.close()
    second = ParquetSink(path, record, row_group_size=2)
    feed(second, 100, 9)  # four row groups written to .partial, then the process "dies"
    assert pq.read_table(path).column("n").to_pylist() == list(range(5))
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(f"{path}.partial")  # a torn Parquet file has no footer


def test_position_finishes_the_file_and_restore_cuts_back(tmp_path: Path) -> None:
    """position() makes the file hold every row so far; a resumed sink restored to it drops
    the rows written after it and continues."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, record, row_group_size=4)
    feed(sink, 0, 6)
    where = sink.position()
    assert where == {"rows": 6, "row_groups": 2}
    assert pq.read_table(path).column("n").to_pylist() == list(range(6))
    assert sink.ledger.acknowledged == 6
    feed(sink, 6, 5)
    sink.position()  # a later checkpoint the resumed run does not use
    assert pq.read_table(path).num_rows == 11
    resumed = ParquetSink(path, record, row_group_size=4, append=True)
    resumed.restore_position(where)
    feed(resumed, 6, 3)
    resumed.close()
    assert pq.read_table(path).column("n").to_pylist() == list(range(9))
    assert (resumed.ledger.collected, resumed.ledger.acknowledged) == (3, 3)


def test_restore_refuses_a_file_that_was_cut(tmp_path: Path) -> None:
    """A checkpoint counting more rows than the file's row groups give is a RunError."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, record, row_group_size=4)
    feed(sink, 0, 6)
    sink.close()
    resumed = ParquetSink(path, record, append=True)
    with pytest.raises(RunError, match=r"row groups of \[4, 2\] rows, which do not end at the "):
        resumed.restore_position({"rows": 5, "row_groups": 2})
    with pytest.raises(RunError, match="do not end at the checkpoint's 7 rows"):
        resumed.restore_position({"rows": 7, "row_groups": 3})


def test_registry_builds_a_parquet_sink(tmp_path: Path) -> None:
    """build_sink('parquet', ...) makes a ParquetSink with its settings."""
    path = tmp_path / "sub" / "e.parquet"
    sink = build_sink(
        "parquet",
        {"path": str(path), "row_group_size": 3, "schema": {"timestamp": "int64", "n": "int64"}},
    )
    assert isinstance(sink, ParquetSink) and sink.row_group_size == 3
    assert sink.schema.names == ["timestamp", "n"]


def test_factory_names_files_by_stream(tmp_path: Path) -> None:
    """ParquetSinkFactory writes <directory>/<name>.parquet."""
    sink = ParquetSinkFactory(tmp_path / "out").create("clicks", record)
    assert sink.path == os.fspath(tmp_path / "out" / "clicks.parquet")


def test_a_simulation_writes_a_parquet_log_the_report_reads(tmp_path: Path) -> None:
    """A run into Parquet reads back through the report's event-log reader like its JSONL."""
    from dogesim.report.tables import read_event_log
    from dogesim.sinks.files import JsonLinesSink

    def run(sink: Any) -> None:
        model = Model(["off", "on"], "off")
        model.add_transition("login", "off", "on", 30, event_sinks=[sink])
        model.add_transition("logout", "on", "off", 40, event_sinks=[sink])
        Simulation(model, 50, ticks=40, tick_ms=1000, seed=3).run()

    parquet, jsonl = tmp_path / "e.parquet", tmp_path / "e.jsonl"
    run(ParquetSink(parquet, row_group_size=64))
    run(JsonLinesSink(jsonl))
    from_parquet, from_jsonl = read_event_log(parquet), read_event_log(jsonl)
    assert len(from_parquet) > 100
    assert from_parquet.to_dict("records") == from_jsonl.to_dict("records")


@dataclass
class Account:
    id: int
    balance: float


@dataclass
class Tag:
    label: str


def test_column_buffer_writes_what_the_row_path_writes(tmp_path: Path) -> None:
    """The default record of dataclass subjects (buffered by column) gives the same file as
    default_record given as a mapper (the row path), snapshots taken at collect time."""
    from dogesim.sinks.files import default_record

    fast, rows = tmp_path / "fast.parquet", tmp_path / "rows.parquet"
    a = ParquetSink(fast, row_group_size=3)
    b = ParquetSink(rows, default_record, row_group_size=3)
    account = Account(1, 0.0)
    for n in range(8):
        account.balance = n * 1.5  # the same object, changed after each event
        a.collect(T0 + n, account, STEP)
        b.collect(T0 + n, account, STEP)
    a.close()
    b.close()
    table = pq.read_table(fast)
    assert table.equals(pq.read_table(rows))
    assert [r["subject"]["balance"] for r in table.to_pylist()] == [n * 1.5 for n in range(8)]


def test_subjects_of_several_kinds_in_one_row_group(tmp_path: Path) -> None:
    """Subjects of two dataclasses in one row group are all written (fields of the other
    kind are null): the sink leaves the column buffer for rows."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, row_group_size=10)
    sink.collect(T0, Account(1, 2.0), STEP)
    sink.collect(T0, Tag("x"), STEP)
    sink.collect(T0, Account(2, 3.0), STEP)
    sink.close()
    subjects = [r["subject"] for r in pq.read_table(path).to_pylist()]
    assert subjects == [
        {"id": 1, "balance": 2.0, "label": None},
        {"id": None, "balance": None, "label": "x"},
        {"id": 2, "balance": 3.0, "label": None},
    ]
    assert sink.ledger.acknowledged == 3


def test_a_single_field_dataclass_is_a_struct_of_one(tmp_path: Path) -> None:
    """A subject with one field is a struct column of one field, as in the JSON Lines record."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path)
    sink.collect(T0, Tag("only"), STEP)
    sink.close()
    assert pq.read_table(path).to_pylist()[0]["subject"] == {"label": "only"}


def test_a_subject_value_of_another_type_fails_alone_in_the_column_path(tmp_path: Path) -> None:
    """A later subject whose field has another type fails alone, naming the column and value;
    its row group's other rows are written."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, row_group_size=2)
    sink.collect(T0, Account(1, 2.0), STEP)
    sink.collect(T0, Account(2, 2.5), STEP)
    sink.collect(T0, Account(3, 1.0), STEP)
    with pytest.raises(SinkError, match=r"field 'subject' = \{'id': 'four'.* is not struct"):
        sink.collect(T0, Account("four", 1.0), STEP)  # type: ignore[arg-type]
    with pytest.raises(SinkError):
        sink.close()
    assert [r["subject"]["id"] for r in pq.read_table(path).to_pylist()] == [1, 2, 3]
    assert (sink.ledger.acknowledged, sink.ledger.failed) == (3, 1)


def test_a_run_resumed_from_a_checkpoint_equals_the_whole_run(tmp_path: Path) -> None:
    """Stopped at tick 100, checkpointed and resumed (twice, as after a crash past the
    checkpoint), a Parquet file holds exactly the whole run's rows."""
    from dogesim.engine.options import RunOptions

    def model(path: Path) -> Model:
        sink = ParquetSink(path, append=True, row_group_size=50)
        built = Model(["idle", "busy"], "idle")
        built.add_transition("work", "idle", "busy", 20, event_sinks=[sink])
        built.add_transition("rest", "busy", "idle", 30, event_sinks=[sink])
        return built

    def options(**changes: Any) -> RunOptions:
        return RunOptions(ticks=300, tick_ms=60_000, timestamp_start=T0, seed=5, **changes)

    whole, part = tmp_path / "whole.parquet", tmp_path / "part.parquet"
    Simulation(model(whole), 12, options=options()).run()
    sim: Simulation
    sim = Simulation(
        model(part), 12, options=options(progress=lambda t: sim.stop() if t >= 100 else None)
    )
    sim.run()
    sim.checkpoint(tmp_path / "c")
    assert 0 < pq.read_table(part).num_rows < pq.read_table(whole).num_rows
    Simulation.resume(tmp_path / "c", model(part)).run()
    assert pq.read_table(part).equals(pq.read_table(whole))
    Simulation.resume(tmp_path / "c", model(part)).run()  # again: cut back, then continued
    assert pq.read_table(part).equals(pq.read_table(whole))


BANKING = Path(__file__).resolve().parents[2] / "models" / "banking.yaml"


def test_cli_run_out_parquet_then_fit_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dogesim run --out x.parquet`` writes every event there; ``dogesim fit`` reads it."""
    from dogesim.cli import main

    out = tmp_path / "o" / "banking.parquet"
    assert main(["run", str(BANKING), "--out", str(out), "--subjects", "40"]) == 0
    assert f"sink parquet:{out}: collected" in capsys.readouterr().out
    rows = pq.read_table(out).num_rows
    assert rows > 50
    fitted = tmp_path / "fit.yaml"
    code = main(["fit", str(out), "--model", str(BANKING), "-o", str(fitted), "--subjects", "40"])
    assert code == 0 and fitted.exists()
    assert f"{rows} events, 40 subjects" in capsys.readouterr().out


FSIZE_SCRIPT = """
import hashlib, json, os, resource, signal, sys
from dogesim.errors import SinkError
from dogesim.sinks.conformance import STEP, T0
from dogesim.sinks.parquet import ParquetSink

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
path = sys.argv[1]
sink = ParquetSink(path, lambda ts, n, t: {"n": n, "h": hashlib.sha256(b"%d" % n).hexdigest()},
                   row_group_size=1000)
errors = []
def attempt(call, *args):
    try:
        call(*args)
    except SinkError as exc:
        errors.append(str(exc))
for n in range(20_000):
    attempt(sink.collect, T0, n, STEP)
attempt(sink.close)
book = sink.ledger
print(json.dumps({"errors": errors, "collected": book.collected, "acknowledged": book.acknowledged,
                  "failed": book.failed, "final": os.path.exists(path),
                  "partial": os.path.exists(path + ".partial")}))
"""


def test_a_write_that_fails_acknowledges_nothing_and_leaves_no_file(tmp_path: Path) -> None:
    """When the file cannot grow (a file-size limit, as a full disk), the sink fails loudly,
    acknowledges no row (no footer was written), leaves no file and removes the .partial."""
    import json
    import subprocess
    import sys

    path = tmp_path / "e.parquet"
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] and "File too large" in report["errors"][0]
    assert (report["collected"], report["acknowledged"]) == (20_000, 0)
    assert report["failed"] == 20_000
    assert not report["final"] and not report["partial"]


def test_collect_many_of_dataclass_subjects_equals_collect(tmp_path: Path) -> None:
    """The column path of collect_many (batches cut at row-group room) gives collect's file
    and ledger, also when a batch mixes subject kinds."""
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    a, b = ParquetSink(one, row_group_size=7), ParquetSink(many, row_group_size=7)
    batches = [[Account(n, n / 2) for n in range(k, k + 5)] for k in range(0, 30, 5)]
    c, d = tmp_path / "c.parquet", tmp_path / "d.parquet"
    mixed = [[Account(99, 1.0), Tag("t"), Account(98, 2.0)], *batches]
    for path, feed_many in ((c, False), (d, True)):
        sink = ParquetSink(path, row_group_size=7)
        for tick, subjects in enumerate(mixed):
            if feed_many:
                sink.collect_many(T0 + tick, subjects, [STEP] * len(subjects))
            else:
                for subject in subjects:
                    sink.collect(T0 + tick, subject, STEP)
        sink.close()
    assert pq.read_table(c).equals(pq.read_table(d))
    assert pq.read_table(d).num_rows == 33
    for tick, subjects in enumerate(batches):
        for subject in subjects:
            a.collect(T0 + tick, subject, STEP)
        b.collect_many(T0 + tick, subjects, [STEP] * len(subjects))
    assert b.row_groups == a.row_groups == [7, 7, 7, 7]
    a.close()
    b.close()
    assert pq.read_table(one).equals(pq.read_table(many))
    assert (b.ledger.collected, b.ledger.acknowledged) == (30, 30)


def test_a_nested_field_outside_the_struct_fails_not_dropped(tmp_path: Path) -> None:
    """A subject whose fields are not the struct column's (a later group of another kind) is
    refused naming the nested field: pyarrow alone would drop its values silently."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(path, row_group_size=2)
    sink.collect(T0, Account(1, 1.0), STEP)
    sink.collect(T0, Account(2, 2.0), STEP)  # the first group fixes subject = {id, balance}
    sink.collect(T0, Tag("t"), STEP)
    with pytest.raises(SinkError, match=r"field 'subject\.label' is not a column \(value 't'\)"):
        sink.close()
    assert pq.read_table(path).num_rows == sink.ledger.acknowledged == 2


def test_a_mapper_with_an_unknown_nested_key_fails(tmp_path: Path) -> None:
    """A mapper's nested key outside a declared struct is an error, not a lost value."""
    path = tmp_path / "e.parquet"
    sink = ParquetSink(
        path,
        lambda ts, n, t: {"n": n, "s": {"a": n, "b": n} if n == 1 else {"a": n}},
        schema={"n": "int64", "s.a": "int64"},
    )
    feed(sink, 0, 3)
    with pytest.raises(SinkError, match=r"field 's\.b' is not a column \(value 1\)"):
        sink.close()
    assert pq.read_table(path).column("n").to_pylist() == [0, 2]


@pytest.mark.parametrize(
    ("path", "kwargs", "match"),
    [
        ("-", {}, "Parquet cannot go to standard output"),
        ("missing/dir/e.parquet", {}, "cannot write to the directory"),
        ("e.parquet", {"row_group_size": 0}, "row_group_size must be >= 1"),
        ("e.parquet", {"row_group_size": 2.5}, "row_group_size must be an integer"),
    ],
)
def test_bad_settings_are_refused_when_the_sink_is_made(
    tmp_path: Path, path: str, kwargs: dict[str, Any], match: str
) -> None:
    """Standard output, a missing directory and a bad row-group size are SinkConfigErrors."""
    where = path if path == "-" else str(tmp_path / path)
    with pytest.raises(SinkConfigError, match=match):
        ParquetSink(where, **kwargs)


KILL_SCRIPT = """
import sys
from dogesim.sinks.conformance import STEP, T0, record
from dogesim.sinks.parquet import ParquetSink

path = sys.argv[1]
first = ParquetSink(path, record)
for n in range(5):
    first.collect(T0, n, STEP)
first.close()
second = ParquetSink(path, record, row_group_size=100)
for n in range(10_000_000):
    second.collect(T0, n, STEP)
    if n == 250:
        print("groups written", flush=True)  # the parent kills the process now
"""


def test_kill_9_mid_run_leaves_the_finished_file_and_a_torn_partial(tmp_path: Path) -> None:
    """A process killed with SIGKILL while writing leaves the last finished file intact and a
    .partial without a footer, which Parquet readers refuse rather than misread."""
    import subprocess
    import sys

    path = tmp_path / "e.parquet"
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "groups written"
    child.kill()
    child.wait()
    assert pq.read_table(path).column("n").to_pylist() == list(range(5))
    partial = Path(f"{path}.partial")
    assert partial.stat().st_size > 0
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(partial)
