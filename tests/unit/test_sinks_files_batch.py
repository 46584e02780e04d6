"""File sinks' batch path: ``collect_many`` gives exactly what ``collect`` per event gives.

The same bytes (plain and compressed), the same ledger, flush points and error messages, for
generated payloads and for a bad event in the middle of a batch.
"""

from __future__ import annotations

import gzip
import json
import math
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.sinks import file_base
from dogesim.sinks.base import batch_collector
from dogesim.sinks.files import CsvSink, JsonLinesSink
from dogesim.sinks.records import _json_default
from tests.unit.test_sinks_files import _FULL_DISK_CHILD, run_child
from tests.unit.test_sinks_files_fast import json_values

STEPS = [Transition("step", "a", "b", 50), Transition("back", "b", "a", 50)]
T0 = 1_700_000_000_000

#: A batch: one timestamp, the subjects of the tick.
Batch = tuple[int, list[Any]]


@dataclass
class Outcome:
    """What a run of batches left: the file's bytes, the ledger, the errors, flush points."""

    data: bytes
    ledger: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    points: list[Any] = field(default_factory=list)


def feed(sink: Any, batches: Sequence[Batch], *, many: bool) -> list[str]:
    """Give `sink` the batches, by collect_many or by collect per event, as the engine does:
    a SinkError stops the batch (the tick); the next batch goes on. The errors' texts."""
    errors = []
    for timestamp, subjects in batches:
        transitions = [STEPS[i % 2] for i in range(len(subjects))]
        try:
            if many:
                sink.collect_many(timestamp, subjects, transitions)
            else:
                for subject, transition in zip(subjects, transitions, strict=True):
                    sink.collect(timestamp, subject, transition)
        except SinkError as exc:
            errors.append(str(exc))
    try:
        sink.close()
    except SinkError as exc:
        errors.append(str(exc))
    return errors


def run(make: Callable[[Path], Any], path: Path, batches: Sequence[Batch], many: bool) -> Outcome:
    """Feed a new sink `make(path)` the batches; what it left."""
    sink = make(path)
    errors = feed(sink, batches, many=many)
    return Outcome(path.read_bytes(), vars(sink.ledger), errors, list(sink.flush_points))


def both(make: Callable[[Path], Any], tmp: Path, batches: Sequence[Batch], suffix: str) -> Outcome:
    """Run the batches through both paths; assert they agree in everything; the outcome."""
    one = run(make, tmp / f"one{suffix}", batches, many=False)
    many = run(make, tmp / f"many{suffix}", batches, many=True)
    assert many.data == one.data
    assert many.ledger | {"sink": ""} == one.ledger | {"sink": ""}
    assert [e.replace("many", "one") for e in many.errors] == one.errors
    assert many.points == one.points
    return many


def test_file_sinks_offer_collect_many(tmp_path: Path) -> None:
    """The engine finds the batch path on both file sinks."""
    assert batch_collector(JsonLinesSink(tmp_path / "a.jsonl")) is not None
    assert batch_collector(CsvSink(tmp_path / "a.csv")) is not None


batches_of = st.lists(
    st.tuples(st.integers(0, 2**45), st.lists(json_values, max_size=12)), min_size=1, max_size=6
)


def as_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The test mapper: a fresh dict holding the event and the generated value."""
    return {"ts": timestamp, "trigger": transition.trigger, "value": subject}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches_of)
def test_jsonl_batches_give_the_per_event_bytes_and_json_dumps(
    tmp_path: Path, batches: list[Batch]
) -> None:
    """Generated payloads (unicode, floats, nesting, None, ints > 2^53, NaN, int keys): the
    same bytes and errors both ways, and the lines are json.dumps's up to each tick's first
    value it refuses."""
    out = both(lambda p: JsonLinesSink(p, as_record), tmp_path, batches, ".jsonl")
    expected = []
    for ts, values in batches:
        for i, value in enumerate(values):
            try:
                text = json.dumps(
                    as_record(ts, value, STEPS[i % 2]),
                    ensure_ascii=False,
                    separators=(",", ":"),
                    allow_nan=False,
                )
                expected.append((text + "\n").encode("utf-8"))
            except (TypeError, ValueError):
                break  # the tick ends at its failing event
    assert out.data == b"".join(expected)
    assert out.ledger["acknowledged"] == len(expected) == out.data.count(b"\n")


csv_cells = (
    st.none()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from('ab ,"\n\r\t\\é€'), max_size=6)
)


csv_batches = st.lists(
    st.tuples(
        st.integers(0, 2**45),
        st.lists(st.dictionaries(st.sampled_from("abc"), csv_cells, min_size=1), max_size=10),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=csv_batches, named=st.booleans())
def test_csv_batches_give_the_per_event_bytes(
    tmp_path: Path, batches: list[Batch], named: bool
) -> None:
    """Generated rows (quotes, commas, newlines in cells, missing keys): same bytes, ledger
    and errors both ways, with given columns or the first record's keys."""
    columns = ["a", "b", "c"] if named else None
    out = both(
        lambda p: CsvSink(p, lambda ts, s, t: s, fieldnames=columns), tmp_path, batches, ".csv"
    )
    if named:
        assert out.ledger["acknowledged"] == out.ledger["collected"] and not out.errors


def bad_at(n: int, value: Any) -> Callable[[int, Any, Transition], dict[str, Any]]:
    """A mapper whose record for subject `n` holds `value`; others hold the subject."""
    return lambda ts, s, t: {"n": s, "value": value if s == n else s}


def raising_at(n: int) -> Callable[[int, Any, Transition], dict[str, Any]]:
    """A mapper that raises for subject `n`."""

    def mapper(ts: int, s: Any, t: Transition) -> dict[str, Any]:
        if s == n:
            raise LookupError(f"no record for {s}")
        return {"n": s, "value": s}

    return mapper


BAD_JSON = {
    "nan": bad_at(7, math.nan),
    "object": bad_at(7, object()),
    "surrogate": bad_at(7, "\ud800"),
    "mapper raises": raising_at(7),
}
TICKS = [(T0, list(range(0, 5))), (T0 + 60_000, list(range(5, 12))), (T0 + 120_000, [12, 13])]


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_jsonl_bad_event_in_a_batch_fails_as_one_by_one(tmp_path: Path, case: str) -> None:
    """A bad event mid-batch: events before it written and counted, it counted failed, the
    rest of the tick not collected; the same message as the per-event path."""
    out = both(lambda p: JsonLinesSink(p, BAD_JSON[case]), tmp_path, TICKS, ".jsonl")
    assert [json.loads(line)["n"] for line in out.data.splitlines()] == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        12,
        13,
    ]
    assert (out.ledger["collected"], out.ledger["acknowledged"], out.ledger["failed"]) == (10, 9, 1)
    assert "event #8 of this run" in out.errors[0] or "cannot be written as JSON" in out.errors[0]
    assert "lost 1 of 10" in out.errors[-1]


BAD_CSV = {
    "unknown key": lambda ts, s, t: {"n": s, "value": s} | ({"extra": 1} if s == 7 else {}),
    "surrogate": bad_at(7, "\udcff"),
    "mapper raises": raising_at(7),
    "not a mapping": lambda ts, s, t: [s] if s == 7 else {"n": s, "value": s},
    "str raises": bad_at(7, type("Bad", (), {"__str__": lambda self: 1 / 0})()),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_csv_bad_event_in_a_batch_fails_as_one_by_one(tmp_path: Path, case: str) -> None:
    """A bad CSV event mid-batch: the rows before it stay, it is counted failed, the message
    is the per-event path's."""
    out = both(lambda p: CsvSink(p, BAD_CSV[case]), tmp_path, TICKS, ".csv")
    assert out.data.decode().splitlines()[0] == "n,value"
    assert [int(row.split(",")[0]) for row in out.data.decode().splitlines()[1:]] == [
        0, 1, 2, 3, 4, 5, 6, 12, 13,
    ]  # fmt: skip
    assert (out.ledger["collected"], out.ledger["acknowledged"], out.ledger["failed"]) == (10, 9, 1)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".csv.gz"])
def test_batches_write_the_buffer_where_one_by_one_does(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches larger than the buffer: writes at the same lines, so the same flush points and
    the same gzip members (compressed bytes too)."""
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 700)
    batches = [(T0 + k, list(range(k * 90, k * 90 + 90))) for k in range(8)]
    mapper = lambda ts, s, t: {"n": s, "pad": "é" * (s % 13)}  # noqa: E731
    make = (
        (lambda p: JsonLinesSink(p, mapper))
        if ".jsonl" in suffix
        else (lambda p: CsvSink(p, mapper))
    )
    out = both(make, tmp_path, batches, suffix)
    assert len(out.points) > 10
    text = gzip.decompress(out.data) if suffix.endswith(".gz") else out.data
    assert text.count(b"\n") == 720 + (".csv" in suffix)


def test_jsonl_stdout_batches_write_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    """On standard output a batch is written line by line, as collected."""
    sink = JsonLinesSink("-", lambda ts, s, t: {"n": s})
    errors = feed(sink, [(T0, [1, 2]), (T0 + 1, [3])], many=True)
    assert capsys.readouterr().out == '{"n":1}\n{"n":2}\n{"n":3}\n' and not errors


def test_full_disk_in_a_batch_counts_exactly_the_lines_on_disk(tmp_path: Path) -> None:
    """Disk full mid-line during collect_many: torn line cut off, the ledger is the lines on
    disk, and the write fails at the event where one by one it would (the 1 MiB mark)."""
    path = tmp_path / "full.jsonl"
    limit = 46_875 * 64 + 10
    report = run_child(_FULL_DISK_CHILD, path, limit, 60_000, "batch")
    data = path.read_bytes()
    assert len(data) == 46_875 * 64 and data.endswith(b"\n")
    assert [int(json.loads(line)["n"]) for line in data.splitlines()] == list(range(46_875))
    ledger = report["ledger"]
    # One by one the third 1 MiB write fails at event 3 * 16,384 (64-byte lines).
    assert (ledger["collected"], ledger["acknowledged"]) == (3 * 16_384, 46_875)
    assert ledger["failed"] == 3 * 16_384 - 46_875
    assert "46875 complete lines are in the file" in report["errors"][0]


def test_jsonl_batch_encoder_matches_the_line_encoder() -> None:
    """The batch encoder gives, record for record, the single-line encoder's bytes, and stops
    at a record JSON refuses with the lines before it written."""
    from dogesim.sinks.encoding import Unwritable, json_line_encoder, json_lines_encoder

    records = [{"x": 1e-05}, {"y": None}, {"z": 2**64}, {"w": "null"}, {"v": [1.5, "é"]}]
    out = bytearray()
    json_lines_encoder(_json_default)(iter(records), out)
    assert out == b"".join(json_line_encoder(_json_default)(r) for r in records)
    out.clear()
    with pytest.raises(Unwritable) as caught:
        json_lines_encoder(_json_default)(iter([{"a": 1}, {"b": math.inf}, {"c": 3}]), out)
    assert out == b'{"a":1}\n' and isinstance(caught.value.cause, ValueError)


#: A child writing JSON lines through collect_many forever (4 KiB buffer); after each tick it
#: prints how many lines its flush points say are in the file.
_KILLED_CHILD = r"""
import sys
from dogesim.model import Transition
from dogesim.sinks import file_base as files
from dogesim.sinks.files import JsonLinesSink

files.BUFFER_BYTES = 4096
sink = JsonLinesSink(sys.argv[1], lambda ts, s, t: {"n": s, "pad": "z" * (s % 50)})
step = Transition("step", "a", "b", 50)
first = 0
while True:
    sink.collect_many(first, list(range(first, first + 100)), [step] * 100)
    first += 100
    print(sink.flush_points[-1].lines if sink.flush_points else 0, flush=True)
"""


def test_kill_9_leaves_the_counted_lines_whole_and_at_most_one_torn_tail(tmp_path: Path) -> None:
    """A JSONL writer killed with SIGKILL: the file holds lines 0..k-1 whole, k at least the
    count its last flush point reported, and nothing after them but part of line k."""
    path = tmp_path / "killed.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    reported = 0
    try:
        for line in child.stdout:  # bounded by what the child reports, not by the clock
            reported = int(line)
            if reported > 5_000:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    data = path.read_bytes()
    whole, _, tail = data.rpartition(b"\n")
    numbers = [json.loads(line)["n"] for line in whole.splitlines()]
    assert numbers == list(range(len(numbers))) and len(numbers) >= reported > 5_000
    k = len(numbers)
    expected_next = json.dumps({"n": k, "pad": "z" * (k % 50)}, separators=(",", ":"))
    assert expected_next.encode().startswith(tail)
