"""File sinks: JSON Lines and CSV bytes, ledgers and errors (no services needed)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dogesim.errors import SinkError
from dogesim.examples.banking import banking_simulation
from dogesim.model import Transition
from dogesim.sinks.files import (
    CsvSink,
    CsvSinkFactory,
    JsonLinesSink,
    JsonLinesSinkFactory,
    default_record,
    flat_record,
)
from dogesim.sinks.memory import MemorySink

LOGIN = Transition("login", "offline", "online", 10)
T0 = 1_700_000_000_000


@dataclass
class Dog:
    name: str
    age: int


class Plain:
    def __init__(self) -> None:
        self.colour = "grey"
        self.legs = 4


def test_jsonl_default_record_exact_bytes(tmp_path: Path) -> None:
    """A JSONL line is compact, keeps mapper key order and writes non-ASCII as UTF-8."""
    path = tmp_path / "e.jsonl"
    sink = JsonLinesSink(path)
    sink.collect(T0, Dog("Kabosu ü", 18), LOGIN)
    sink.close()
    assert (
        path.read_bytes()
        == (
            '{"timestamp":1700000000000,"trigger":"login","from_state":"offline",'
            '"to_state":"online","subject":{"name":"Kabosu ü","age":18}}\n'
        ).encode()
    )


def test_default_record_subject_kinds() -> None:
    """Dataclasses give their fields, plain objects their vars, other values their str()."""
    assert default_record(1, Dog("a", 2), LOGIN)["subject"] == {"name": "a", "age": 2}
    assert default_record(1, Plain(), LOGIN)["subject"] == {"colour": "grey", "legs": 4}
    assert default_record(1, 42, LOGIN)["subject"] == "42"


def test_jsonl_ledger_counts_after_close(tmp_path: Path) -> None:
    """Events count as acknowledged only once close() has flushed and fsynced the file."""
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    for i in range(5):
        sink.collect(T0 + i, Dog("d", i), LOGIN)
    assert (sink.ledger.collected, sink.ledger.acknowledged) == (5, 0)
    sink.close()
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (5, 5, 0)
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 5


def test_jsonl_converts_datetimes_and_rejects_unknown_objects(tmp_path: Path) -> None:
    """Datetimes become ISO strings; an object JSON cannot take fails naming the event."""
    sink = JsonLinesSink(tmp_path / "e.jsonl", lambda ts, s, t: {"at": dt.date(2024, 1, 2)})
    sink.collect(T0, None, LOGIN)
    with pytest.raises(SinkError, match=r"'login' at 1700000000001 cannot be written as JSON"):
        JsonLinesSink(tmp_path / "f.jsonl", lambda ts, s, t: {"x": object()}).collect(
            T0 + 1, None, LOGIN
        )
    sink.close()
    assert (tmp_path / "e.jsonl").read_text() == '{"at":"2024-01-02"}\n'


def test_jsonl_rejects_nan(tmp_path: Path) -> None:
    """NaN is not JSON: the sink refuses it instead of writing an unreadable line."""
    sink = JsonLinesSink(tmp_path / "e.jsonl", lambda ts, s, t: {"x": float("nan")})
    with pytest.raises(SinkError, match="cannot be written as JSON") as info:
        sink.collect(T0, None, LOGIN)
    assert info.value.ledgers[0].failed == 1
    with pytest.raises(SinkError, match="lost 1 of 1"):
        sink.close()


def test_jsonl_append(tmp_path: Path) -> None:
    """append=True adds to an existing file; the default replaces it."""
    path = tmp_path / "e.jsonl"
    for append in (False, True):
        sink = JsonLinesSink(path, lambda ts, s, t: {"ts": ts}, append=append)
        sink.collect(T0, None, LOGIN)
        sink.close()
    assert path.read_text() == '{"ts":1700000000000}\n' * 2
    sink = JsonLinesSink(path, lambda ts, s, t: {"ts": ts})
    sink.close()
    assert path.read_text() == ""


def test_jsonl_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """'-' writes to standard output, which close() flushes but does not close."""
    sink = JsonLinesSink("-", lambda ts, s, t: {"ts": ts, "trigger": t.trigger})
    sink.collect(T0, None, LOGIN)
    sink.close()
    assert capsys.readouterr().out == '{"ts":1700000000000,"trigger":"login"}\n'
    assert sink.ledger.acknowledged == 1


def test_jsonl_unopenable_path(tmp_path: Path) -> None:
    """A file that cannot be opened fails at construction, naming the path."""
    with pytest.raises(SinkError, match=r"cannot open .*missing"):
        JsonLinesSink(tmp_path / "missing" / "e.jsonl")


def _reference_events(seed: int) -> list[dict[str, Any]]:
    memory = MemorySink(lambda ts, s, t: json.loads(json.dumps(default_record(ts, s, t))))
    banking_simulation([memory], subjects=200, ticks=600, seed=seed, timestamp_start=T0).run()
    return memory.events


def test_jsonl_banking_equals_memory_sink_event_for_event(tmp_path: Path) -> None:
    """A seeded banking run into JSONL reads back equal to a MemorySink run of the seed."""
    path = tmp_path / "banking.jsonl"
    sink = JsonLinesSink(path)
    result = banking_simulation([sink], subjects=200, ticks=600, seed=11, timestamp_start=T0).run()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    expected = _reference_events(11)
    assert len(expected) > 100
    assert lines == expected
    assert result.ledgers[0].acknowledged == len(expected)


def test_jsonl_same_seed_same_bytes(tmp_path: Path) -> None:
    """Same model and seed give byte-identical JSONL files."""
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path in paths:
        banking_simulation([JsonLinesSink(path)], subjects=50, ticks=300, seed=5).run()
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].stat().st_size > 0


def test_csv_default_flattens_subject(tmp_path: Path) -> None:
    """The default CSV record has one column per subject field, prefixed 'subject.'."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path)
    sink.collect(T0, Dog("Kabosu", 18), LOGIN)
    sink.collect(T0 + 60_000, Dog("Cheems, the 2nd", 9), LOGIN)
    sink.close()
    assert path.read_text() == (
        "timestamp,trigger,from_state,to_state,subject.name,subject.age\n"
        "1700000000000,login,offline,online,Kabosu,18\n"
        '1700000060000,login,offline,online,"Cheems, the 2nd",9\n'
    )
    assert sink.ledger.acknowledged == 2
    assert flat_record(1, {"a": {"b": 1}}, LOGIN)["subject.a.b"] == 1


def test_csv_fieldnames_and_unknown_keys(tmp_path: Path) -> None:
    """Given fieldnames fix the columns; a missing key is an empty cell, an extra key an error."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path, lambda ts, s, t: s, fieldnames=["a", "b"])
    sink.collect(T0, {"a": 1}, LOGIN)
    with pytest.raises(SinkError, match=r"keys \['c'\] that are not columns \['a', 'b'\]"):
        sink.collect(T0, {"a": 1, "c": 2}, LOGIN)
    with pytest.raises(SinkError, match="lost 1 of 2"):
        sink.close()
    assert list(csv.reader(path.open())) == [["a", "b"], ["1", ""]]


def test_csv_header_only_when_no_events(tmp_path: Path) -> None:
    """With fieldnames and no events, the file still gets its header."""
    path = tmp_path / "e.csv"
    CsvSink(path, fieldnames=["x", "y"]).close()
    assert path.read_text() == "x,y\n"


def test_csv_refuses_stdout() -> None:
    """CSV to '-' is refused with a clear message."""
    with pytest.raises(SinkError, match="standard output"):
        CsvSink("-")


def test_factories_name_files_in_directory(tmp_path: Path) -> None:
    """Factories put <name>.jsonl / <name>.csv in their directory, creating it."""
    jsonl = JsonLinesSinkFactory(tmp_path / "out").create("clicks")
    csv_sink = CsvSinkFactory(tmp_path / "out").create("trx.csv")
    for sink in (jsonl, csv_sink):
        sink.collect(T0, Dog("a", 1), LOGIN)
        sink.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clicks.jsonl", "trx.csv"]


#: A child process that writes 64-byte JSONL lines under a file size limit (a disk that
#: fills up: writes past the limit fail with EFBIG once SIGXFSZ is ignored); one by one, or
#: through collect_many with a fourth argument ``batch``; 64-byte CSV rows for a ``.csv``.
_FULL_DISK_CHILD = r"""
import json, resource, signal, sys
from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.sinks.files import CsvSink, JsonLinesSink

path, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if path.endswith(".csv"):  # 64-byte rows after the 6-byte header "n,pad"
    sink = CsvSink(path, lambda ts, s, t: {"n": "%06d" % s, "pad": "x" * 56})
else:
    sink = JsonLinesSink(path, lambda ts, s, t: {"n": "%06d" % s, "pad": "x" * 40})
step = Transition("step", "a", "b", 50)
errors = []
try:
    if sys.argv[4:] == ["batch"]:  # collect_many, 1000 events a tick
        for first in range(0, count, 1000):
            subjects = list(range(first, min(first + 1000, count)))
            sink.collect_many(first, subjects, [step] * len(subjects))
    else:
        for n in range(count):
            sink.collect(n, n, step)
except SinkError as exc:
    errors.append(str(exc))
try:
    sink.close()
except SinkError as exc:
    errors.append(str(exc))
print(json.dumps({"ledger": vars(sink.ledger), "errors": errors}))
"""


def run_child(script: str, path: Path, limit: int, count: int, *extra: str) -> Any:
    """Run a child `script` writing `count` lines to `path` under a `limit`; its JSON report."""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(limit), str(count), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def test_full_disk_counts_exactly_the_complete_lines_on_disk(tmp_path: Path) -> None:
    """Disk full mid-line: the torn line is cut off and the ledger counts the lines on disk."""
    path = tmp_path / "full.jsonl"
    limit = 46_875 * 64 + 10  # 46,875 whole lines, then 10 bytes of a torn one
    report = run_child(_FULL_DISK_CHILD, path, limit, 60_000)
    data = path.read_bytes()
    assert len(data) == 46_875 * 64 and data.endswith(b"\n")
    numbers = [int(json.loads(line)["n"]) for line in data.splitlines()]
    assert numbers == list(range(46_875))
    ledger = report["ledger"]
    assert (ledger["acknowledged"], ledger["failed"]) == (46_875, ledger["collected"] - 46_875)
    assert report["errors"] and "File too large" in report["errors"][0]
    assert "46875 complete lines are in the file" in report["errors"][0]
    assert report["errors"][-1] == report["errors"][0]  # close() repeats the write failure


@pytest.mark.parametrize("way", [(), ("batch",)], ids=["collect", "collect_many"])
def test_csv_full_disk_counts_exactly_the_complete_rows_on_disk(
    tmp_path: Path, way: tuple[str, ...]
) -> None:
    """CSV, disk full mid-row: the torn row is cut off, the ledger counts the rows on disk."""
    path = tmp_path / "full.csv"
    limit = 6 + 40_000 * 64 + 10  # the header, 40,000 whole rows, 10 bytes of a torn one
    report = run_child(_FULL_DISK_CHILD, path, limit, 60_000, *way)
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[0] == b"n,pad\n" and len(lines) == 40_001
    assert [int(row.split(b",")[0]) for row in lines[1:]] == list(range(40_000))
    assert all(len(row) == 64 for row in lines[1:])
    ledger = report["ledger"]
    assert (ledger["acknowledged"], ledger["failed"]) == (40_000, ledger["collected"] - 40_000)
    assert "40000 complete lines are in the file" in report["errors"][0]


def test_lone_surrogate_fails_alone(tmp_path: Path) -> None:
    """A line UTF-8 cannot encode is a SinkError naming the sink and event; the rest arrive."""
    path = tmp_path / "e.jsonl"
    sink = JsonLinesSink(path, lambda ts, s, t: {"n": s, "text": "\ud800" if s == 1 else "ok"})
    sink.collect(T0, 0, LOGIN)
    with pytest.raises(SinkError, match=r"jsonl:.*e\.jsonl: encoding the line as UTF-8 failed "):
        sink.collect(T0, 1, LOGIN)
    sink.collect(T0, 2, LOGIN)
    with pytest.raises(SinkError, match="lost 1 of 3"):
        sink.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 2]
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (3, 2, 1)


def test_csv_lone_surrogate_fails_alone(tmp_path: Path) -> None:
    """A CSV row UTF-8 cannot encode fails alone, counted as failed, never acknowledged."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path, lambda ts, s, t: {"n": s, "text": "\udcff" if s == 1 else "ok"})
    for n in range(3):
        try:
            sink.collect(T0, n, LOGIN)
        except SinkError as exc:
            assert "event #2 of this run" in str(exc)
    with pytest.raises(SinkError, match="lost 1 of 3"):
        sink.close()
    assert path.read_text() == "n,text\n0,ok\n2,ok\n"


def test_csv_reopened_after_close_appends_without_a_second_header(tmp_path: Path) -> None:
    """A CSV sink used again after close() continues its file: one header, every row."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path, lambda ts, s, t: {"n": s})
    sink.collect(T0, 0, LOGIN)
    sink.close()
    sink.collect(T0, 1, LOGIN)
    sink.close()
    assert path.read_text() == "n\n0\n1\n"
    assert (sink.ledger.collected, sink.ledger.acknowledged) == (1, 1)


def test_jsonl_stdout_writes_each_line_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """On standard output every event is written when collected (live runs watch it)."""
    sink = JsonLinesSink("-", lambda ts, s, t: {"n": s})
    sink.collect(T0, 1, LOGIN)
    assert capsys.readouterr().out == '{"n":1}\n'
    with pytest.raises(SinkError, match="encoding the line as UTF-8 failed"):
        sink.collect(T0, "\ud800", LOGIN)
    sink.collect(T0, 3, LOGIN)
    with pytest.raises(SinkError, match="lost 1 of 3"):
        sink.close()
    assert capsys.readouterr().out == '{"n":3}\n'
    assert (sink.ledger.acknowledged, sink.ledger.failed) == (2, 1)


#: A child process whose close() is interrupted (KeyboardInterrupt from a SIGXFSZ handler)
#: right after a write that reached the file size limit mid-line.
_INTERRUPTED_CLOSE_CHILD = r"""
import json, resource, signal, sys
from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.sinks.files import JsonLinesSink

def interrupt(signum, frame):
    raise KeyboardInterrupt

path, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signal.signal(signal.SIGXFSZ, interrupt)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sink = JsonLinesSink(path, lambda ts, s, t: {"n": "%06d" % s, "pad": "x" * 40})
step = Transition("step", "a", "b", 50)
for n in range(count):
    sink.collect(n, n, step)
outcome = []
for attempt in (1, 2):
    try:
        sink.close()
        outcome.append("closed")
    except KeyboardInterrupt:
        outcome.append("KeyboardInterrupt")
    except SinkError as exc:
        outcome.append(str(exc))
print(json.dumps({"ledger": vars(sink.ledger), "outcome": outcome}))
"""


def test_interrupt_in_close_keeps_every_complete_line(tmp_path: Path) -> None:
    """An interrupt right after a short write in close(): lines on disk stay and are counted."""
    path = tmp_path / "cut.jsonl"
    # 16,384 lines (1 MiB) are written while collecting; close() writes the rest and the
    # limit stops it 10 bytes into line 17,001.
    limit = 17_000 * 64 + 10
    report = run_child(_INTERRUPTED_CLOSE_CHILD, path, limit, 20_000)
    data = path.read_bytes()
    assert len(data) == 17_000 * 64 and data.endswith(b"\n")
    assert report["outcome"][0] == "KeyboardInterrupt"
    assert "close() was interrupted (KeyboardInterrupt)" in report["outcome"][1]
    ledger = report["ledger"]
    assert (ledger["collected"], ledger["acknowledged"], ledger["failed"]) == (
        20_000,
        17_000,
        3_000,
    )


def test_subject_fields_of_dataclasses_are_every_field_in_order() -> None:
    """Every dataclass field (underscored, init=False, slotted; no ClassVar) in field order,
    read when called: the dict `dataclasses.fields` and getattr give."""
    import dataclasses
    from typing import ClassVar

    from dogesim.sinks.files import subject_fields

    @dataclasses.dataclass
    class Account:
        owner: str
        _pin: int = 1234
        tags: list[str] = dataclasses.field(default_factory=list)
        kind: ClassVar[str] = "bank"
        opened: int = dataclasses.field(default=0, init=False)

    @dataclasses.dataclass(slots=True)
    class Slotted:
        a: int
        b: Any = None

    @dataclasses.dataclass
    class Empty:
        pass

    account = Account("kabosu", tags=["x"])
    for subject in (account, Slotted(1, {"n": 2}), Empty()):
        expected = {f.name: getattr(subject, f.name) for f in dataclasses.fields(subject)}
        assert subject_fields(subject) == expected
        assert list(subject_fields(subject)) == list(expected)
    account.opened = 9
    assert subject_fields(account)["opened"] == 9  # values are read at each call
