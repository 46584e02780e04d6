"""A `CsvSink` continuing its file reads the header back as the csv module wrote it: cells
holding ``\\r\\n`` or ``\\r`` (quoted by csv.writer) survive, so an appended or resumed file
is the uninterrupted run's bytes; `open_text` translates newlines unless told not to."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim import Model, Simulation
from dogesim.engine.options import RunOptions
from dogesim.errors import SinkConfigError
from dogesim.model import Transition
from dogesim.sinks.compression import open_text
from dogesim.sinks.csv_encoding import cr_quoted
from dogesim.sinks.csv_sink import CsvSink

#: Header cells csv.writer must quote: a CRLF, a lone CR, and a plain name.
COLUMNS = ["when", "line\r\nbreak", "carriage\rreturn"]
MOVE = Transition("move", "idle", "busy", 10)
T0 = 1_700_000_000_000


def record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """A row under the awkward header: the time, the trigger, the subject."""
    return {COLUMNS[0]: timestamp, COLUMNS[1]: transition.trigger, COLUMNS[2]: repr(subject)}


def text_of(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def write(sink: CsvSink, events: range) -> None:
    """Collect one event per number in `events` (its subject), then close."""
    for n in events:
        sink.collect(T0 + n, n, MOVE)
    sink.close()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
@pytest.mark.parametrize("given", [True, False], ids=["fieldnames", "from-record"])
def test_appending_under_a_header_with_cr_and_crlf_gives_the_whole_files_bytes(
    tmp_path: Path, suffix: str, given: bool
) -> None:
    """Two sinks, the second with append=True, write what one sink writes alone (its bytes,
    decompressed: each sink adds its own gzip members), the header given as fieldnames (was
    refused) or taken from the record (was mis-adopted, every row then refused)."""
    fieldnames = COLUMNS if given else None
    whole, halves = tmp_path / f"whole{suffix}", tmp_path / f"halves{suffix}"
    write(CsvSink(whole, record, fieldnames=fieldnames), range(10))
    write(CsvSink(halves, record, fieldnames=fieldnames), range(4))
    continued = CsvSink(halves, record, fieldnames=fieldnames, append=True)
    assert continued.fieldnames == COLUMNS
    write(continued, range(4, 10))
    assert text_of(halves) == text_of(whole)
    assert continued.ledger.acknowledged == 6


def test_appending_under_another_header_is_still_refused(tmp_path: Path) -> None:
    """The header check still compares cells exactly: ``a\\r\\nb`` is not ``a\\nb``."""
    path = tmp_path / "e.csv"
    write(CsvSink(path, record, fieldnames=COLUMNS), range(2))
    other = [COLUMNS[0], "line\nbreak", COLUMNS[2]]
    with pytest.raises(SinkConfigError, match="the file to continue has the columns"):
        CsvSink(path, record, fieldnames=other, append=True)


def model(sink: CsvSink) -> Model:
    """Two states and back, every move to `sink`."""
    model = Model(["idle", "busy"], "idle")
    model.add_transition("start", "idle", "busy", 20, event_sinks=[sink])
    model.add_transition("stop", "busy", "idle", 30, event_sinks=[sink])
    return model


def test_a_resumed_run_under_a_header_with_cr_and_crlf_gives_the_whole_runs_bytes(
    tmp_path: Path,
) -> None:
    """A run stopped at tick 40, checkpointed and resumed into its CSV file (append=True,
    the header read back) ends with the uninterrupted run's bytes."""
    options = RunOptions(ticks=100, tick_ms=1000, timestamp_start=T0, seed=3)
    whole, part = tmp_path / "whole.csv", tmp_path / "part.csv"
    Simulation(model(CsvSink(whole, record)), 6, options=options).run()
    sim: Simulation
    sim = Simulation(
        model(CsvSink(part, record, append=True)),
        6,
        options=RunOptions(
            ticks=100,
            tick_ms=1000,
            timestamp_start=T0,
            seed=3,
            progress=lambda t: sim.stop() if t >= 40 else None,
        ),
    )
    assert sim.run().stopped
    sim.checkpoint(tmp_path / "run.ckpt")
    Simulation.resume(tmp_path / "run.ckpt", model(CsvSink(part, record, append=True))).run()
    assert whole.read_bytes().count(b"\n") > 20
    assert part.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_open_text_keeps_line_ends_only_when_asked(tmp_path: Path, suffix: str) -> None:
    """`open_text` reads ``\\r\\n`` and ``\\r`` as ``\\n`` by default (the JSON Lines
    readers) and untouched with ``newline=""`` (what the csv module needs)."""
    data = b"a\r\nb\rc\n"
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    with open_text(path) as handle:
        assert handle.read() == "a\nb\nc\n"
    with open_text(path, newline="") as handle:
        assert handle.read() == "a\r\nb\rc\n"


def write_tick(sink: CsvSink, values: list[Any], batched: bool) -> None:
    """The values as one tick's subjects, by collect_many or by collect per event; closed."""
    if batched:
        sink.collect_many(T0, values, [MOVE] * len(values))
    else:
        for value in values:
            sink.collect(T0, value, MOVE)
    sink.close()


@pytest.mark.parametrize("batched", [False, True], ids=["collect", "collect_many"])
def test_a_header_name_with_a_lone_cr_is_quoted_and_reads_back(
    tmp_path: Path, batched: bool
) -> None:
    """The header quotes a name holding a lone ``\\r`` (csv.writer before Python 3.11.9 /
    3.12.3 left it bare with ``lineterminator="\\n"``: no reader reads that back), and
    csv.reader gives every cell back."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path, lambda ts, s, t: {**record(ts, s, t), COLUMNS[2]: s})
    values = ["x\r\ny", "plain", 'a "b"']
    write_tick(sink, values, batched)
    assert path.read_bytes() == (
        b'when,"line\r\nbreak","carriage\rreturn"\n'
        b'1700000000000,move,"x\r\ny"\n'
        b"1700000000000,move,plain\n"
        b'1700000000000,move,"a ""b"""\n'
    )
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [COLUMNS] + [["1700000000000", "move", value] for value in values]
        assert list(csv.reader(handle)) == rows


cell_text = st.text(alphabet=st.sampled_from('ab ,"\r\n'), max_size=5)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(cell_text, min_size=2, max_size=4))
def test_a_row_reads_back_and_is_the_writers_unless_it_holds_a_cr(cells: list[str]) -> None:
    """Random cells of quotes, commas, CRs and LFs: `cr_quoted`'s row reads back to the
    cells through csv.reader, and is csv.writer's own row whenever that holds no ``\\r``."""
    row = cr_quoted(cells)
    assert list(csv.reader(io.StringIO(row, newline=""))) == [cells]
    plain = io.StringIO()
    csv.writer(plain, lineterminator="\n").writerow(cells)
    if "\r" not in plain.getvalue():
        assert row == plain.getvalue()


@pytest.mark.parametrize("batched", [False, True], ids=["collect", "collect_many"])
def test_a_value_with_a_lone_cr_is_quoted_and_reads_back(tmp_path: Path, batched: bool) -> None:
    """A value holding a lone ``\\r`` is quoted on every Python, per event and per tick, so
    csv.reader and pandas read every row back (it was bare before Python 3.11.9)."""
    path = tmp_path / "e.csv"
    sink = CsvSink(path, lambda ts, s, t: {"n": s[0], "text": s[1]})
    values = [(0, "x\ry"), (1, "plain"), (2, "\r")]
    write_tick(sink, values, batched)
    assert path.read_bytes() == b'n,text\n0,"x\ry"\n1,plain\n2,"\r"\n'
    with path.open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle))[1:] == [[str(n), text] for n, text in values]


def test_continuing_a_corrupt_gzip_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A ``.csv.gz`` to continue that is not gzip: `SinkConfigError` naming the file and the
    fault (zlib's own error escaped before)."""
    path = tmp_path / "t.csv.gz"
    path.write_bytes(b"not gzip at all\n" * 10)
    with pytest.raises(SinkConfigError, match=r"the file to continue: .*corrupt gzip data"):
        sink = CsvSink(path, append=True)
        sink.collect(0, {"a": 1}, MOVE)
        sink.close()
