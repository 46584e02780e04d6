"""The sink conformance suite (`dogesim.sinks.conformance`) for every built-in sink.

One ``sink_under_test`` fixture, parametrised over the sink types: memory, counting,
printing, jsonl, csv (also gzip- and zstd-compressed) and a SQLite database. A new sink
type joins with one more harness.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dogesim.errors import SinkError
from dogesim.sinks.base import CountingSink
from dogesim.sinks.compression import log_format, open_text
from dogesim.sinks.conformance import RecordMapper, SinkConformance, SinkHarness
from dogesim.sinks.files import CsvSink, JsonLinesSink
from dogesim.sinks.memory import MemorySink
from dogesim.sinks.printing import PrintingSink


def memory_harness(tmp_path: Path) -> SinkHarness:
    """MemorySink: the backend is its events list."""
    made: list[MemorySink] = []

    def make(mapper: RecordMapper) -> MemorySink:
        made.append(MemorySink(mapper))
        return made[-1]

    def values() -> list[int]:
        return [event["n"] for sink in made for event in sink.events]

    return SinkHarness("memory", make, lambda: len(values()), values)


def counting_harness(tmp_path: Path) -> SinkHarness:
    """CountingSink: it keeps no values, only its count (which is its backend)."""
    made: list[CountingSink] = []

    def make(mapper: RecordMapper) -> CountingSink:
        made.append(CountingSink())
        return made[-1]

    return SinkHarness("counting", make, lambda: sum(sink.count for sink in made), maps=False)


def printing_harness(tmp_path: Path) -> SinkHarness:
    """PrintingSink into a text buffer, one JSON line per event."""
    out = io.StringIO()

    def make(mapper: RecordMapper) -> PrintingSink:
        return PrintingSink(lambda ts, s, t: json.dumps(dict(mapper(ts, s, t))), file=out)

    def values() -> list[int]:
        return [json.loads(line)["n"] for line in out.getvalue().splitlines()]

    return SinkHarness("printing", make, lambda: len(out.getvalue().splitlines()), values)


def lines(path: Path) -> list[bytes]:
    """The complete lines of `path` (a torn last line is not one)."""
    data = path.read_bytes() if path.exists() else b""
    return data.split(b"\n")[:-1]


def jsonl_harness(tmp_path: Path) -> SinkHarness:
    """JsonLinesSink to a file; read back line by line."""
    path = tmp_path / "events.jsonl"

    def values() -> list[int]:
        return [json.loads(line)["n"] for line in lines(path)]

    return SinkHarness(
        "jsonl",
        lambda mapper: JsonLinesSink(path, mapper),
        lambda: len(lines(path)),
        values,
        full_disk=lambda mapper: JsonLinesSink("/dev/full", mapper, append=True),
    )


def csv_harness(tmp_path: Path) -> SinkHarness:
    """CsvSink to a file; read back with the csv module (the header is not a record)."""
    path = tmp_path / "events.csv"

    def values() -> list[int]:
        if not path.exists():
            return []
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
            return [int(row["n"]) for row in csv.DictReader(f)]

    return SinkHarness(
        "csv",
        lambda mapper: CsvSink(path, mapper),
        lambda: len(values()),
        values,
        full_disk=lambda mapper: CsvSink("/dev/full", mapper),
    )


def compressed_harness(suffix: str) -> Callable[[Path], SinkHarness]:
    """JsonLinesSink / CsvSink to a compressed file (`suffix`); read back decompressed."""

    def harness(tmp_path: Path) -> SinkHarness:
        if suffix.endswith(".zst"):
            pytest.importorskip("zstandard")
        path = tmp_path / f"events{suffix}"
        is_csv = log_format(path) == "csv"

        def values() -> list[int]:
            if not path.exists():
                return []
            with open_text(path) as stream:
                if is_csv:
                    return [int(row["n"]) for row in csv.DictReader(stream)]
                return [json.loads(line)["n"] for line in stream]

        def make(mapper: RecordMapper) -> Any:
            return CsvSink(path, mapper) if is_csv else JsonLinesSink(path, mapper)

        return SinkHarness(suffix.lstrip("."), make, lambda: len(values()), values)

    return harness


def sqlite_harness(tmp_path: Path) -> SinkHarness:
    """DbSink on a SQLite file; read back with ``SELECT``."""
    sa = pytest.importorskip("sqlalchemy")
    from dogesim.sinks.db import DbSinkFactory

    url = f"sqlite:///{tmp_path / 'events.db'}"
    reader = sa.create_engine(url)
    with reader.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE events (timestamp BIGINT, trigger TEXT, n BIGINT)")
    factory = DbSinkFactory(url)

    def values() -> list[int]:
        with reader.connect() as conn:
            return [row[0] for row in conn.exec_driver_sql("SELECT n FROM events ORDER BY rowid")]

    def stored() -> int:
        with reader.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())

    return SinkHarness("sqlite", lambda mapper: factory.create("events", mapper, 4), stored, values)


HARNESSES: dict[str, Callable[[Path], SinkHarness]] = {
    "memory": memory_harness,
    "counting": counting_harness,
    "printing": printing_harness,
    "jsonl": jsonl_harness,
    "csv": csv_harness,
    "sqlite": sqlite_harness,
    "jsonl.gz": compressed_harness(".jsonl.gz"),
    "jsonl.zst": compressed_harness(".jsonl.zst"),
    "csv.gz": compressed_harness(".csv.gz"),
}


@pytest.fixture(params=sorted(HARNESSES))
def sink_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """One built-in sink type, with a fresh backend in `tmp_path`."""
    return HARNESSES[request.param](tmp_path)


class TestBuiltinSinks(SinkConformance):
    """Every built-in sink keeps the sink contract."""


class _ForgetfulSink(MemorySink):
    """Claims every event but keeps only the first 20 (a sink the suite must catch)."""

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        super().collect(timestamp, subject, transition)
        del self.events[20:]
        self.ledger.collected += 1

    def _close(self) -> None:
        self.closed_count += 1
        self.ledger.acknowledged = self.ledger.collected


def test_the_suite_catches_a_sink_that_loses_events() -> None:
    """A sink whose ledger claims more than its backend holds fails the suite."""
    made: list[_ForgetfulSink] = []

    def make(mapper: RecordMapper) -> _ForgetfulSink:
        made.append(_ForgetfulSink(mapper))
        return made[-1]

    harness = SinkHarness("forgetful", make, lambda: sum(len(s.events) for s in made))
    with pytest.raises(AssertionError):
        SinkConformance().test_ledger_equals_backend(harness)


class _OneRunSink(MemorySink):
    """A sink that cannot reopen: the other rule a sink may choose."""

    def _reopen(self) -> None:
        raise SinkError("this sink serves one run")


def test_a_sink_that_cannot_reopen_refuses_loudly() -> None:
    """A sink whose _reopen fails raises SinkError at the first event after close, counted."""
    made: list[_OneRunSink] = []

    def make(mapper: RecordMapper) -> _OneRunSink:
        made.append(_OneRunSink(mapper))
        return made[-1]

    harness = SinkHarness("one-run", make, lambda: sum(len(s.events) for s in made), reopens=False)
    SinkConformance().test_reused_after_close_delivers_everything(harness)
    sink = made[0]
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)
    with pytest.raises(SinkError, match="cannot reopen: this sink serves one run"):
        sink.close()
