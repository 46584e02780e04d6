"""CSV rows of a tick built column by column: the bytes of ``csv.writer``.

`csv_lines` must give, for any records, either None or exactly `exact_lines` (the writer's
rows, ``lineterminator="\\n"``); `CsvSink.collect_many` built on it must give what
``collect`` per event gives, for hostile rows and for mappers that reuse their dict.
"""

from __future__ import annotations

import csv
import enum
import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim.model import Transition
from dogesim.sinks.csv_encoding import csv_lines, exact_lines
from dogesim.sinks.files import CsvSink
from tests.unit.test_encoding_batch import TICKS, Reusing, reusing_sinks
from tests.unit.test_sinks_files_batch import T0, both

ORDER = ("a", "b", "c")
COLUMNS = frozenset(ORDER)


class Level(enum.IntEnum):
    HIGH = 2


class Tag(str):
    def __str__(self) -> str:
        return "tag"


class Half(float):
    def __repr__(self) -> str:
        return "half"


hostile_cells = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(alphabet=st.sampled_from('ab ,"\n\r\t\\\x00é€'), max_size=6)
    | st.sampled_from([Level.HIGH, Tag("x"), Half(0.5), b"raw", ""])
)
plain_cells = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(alphabet=st.sampled_from("ab .;'\té€"), max_size=6)
)


def writer_text(records: list[dict[str, Any]], order: tuple[str, ...]) -> str:
    """All the rows through one csv.writer, as DictWriter with an empty restval writes."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [[record.get(name) for name in order] for record in records]
    )
    return out.getvalue()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from("abcd"), hostile_cells, min_size=0, max_size=4),
        max_size=8,
    )
)
def test_lines_are_none_or_the_writer_rows(records: list[dict[str, Any]]) -> None:
    """Hostile cells (quotes, delimiters, CR/LF, NUL, NaN, big ints, bools, IntEnum, str and
    float subclasses, bytes, missing and unknown keys): None or the writer's rows."""
    got = csv_lines(records, ORDER, COLUMNS)
    if got is not None:
        text, lines = got
        assert lines == exact_lines(records, ORDER)
        assert text == "".join(lines) == writer_text(records, ORDER)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({name: plain_cells for name in ORDER}), min_size=1),
    st.booleans(),
)
def test_plain_rows_take_the_column_path(records: list[dict[str, Any]], sparse: bool) -> None:
    """Rows of plain cells free of quoting, full or with keys missing: never None."""
    if sparse:
        for i, record in enumerate(records):
            del record[ORDER[i % 3]]
    got = csv_lines(records, ORDER, COLUMNS)
    assert got is not None
    assert got[1] == exact_lines(records, ORDER)


def test_lines_leave_to_the_writer_what_it_must_decide() -> None:
    """A quoted cell, an unknown key, one column, a subclass, no rows: None."""
    assert csv_lines([{"a": "x,y", "b": 1}], ORDER, COLUMNS) is None
    assert csv_lines([{"a": 1, "z": 2}], ORDER, COLUMNS) is None
    assert csv_lines([{"a": 1}], ("a",), frozenset("a")) is None
    assert csv_lines([{"a": Level.HIGH}], ORDER, COLUMNS) is None
    assert csv_lines([], ORDER, COLUMNS) is None
    assert csv_lines([{"a": 1, "b": None, "c": True}], ORDER, COLUMNS) == (
        "1,,True\n",
        ["1,,True\n"],
    )


def as_row(timestamp: int, subject: Any, transition: Transition) -> Any:
    """The generated record is the row."""
    return subject


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**45),
            st.lists(
                st.dictionaries(st.sampled_from("abcz"), hostile_cells, min_size=1, max_size=4),
                max_size=10,
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_sink_batches_of_hostile_rows_give_the_per_event_bytes(
    tmp_path: Path, batches: list[tuple[int, list[Any]]], named: bool
) -> None:
    """collect_many over hostile rows: the bytes, ledger and errors of collect per event."""
    columns = list(ORDER) if named else None
    both(lambda p: CsvSink(p, as_row, fieldnames=columns), tmp_path, batches, ".csv")


def test_a_csv_mapper_reusing_its_dict_is_read_record_by_record_once(tmp_path: Path) -> None:
    """A mapper refilling one dict: each row its own, the mapper called once per event."""
    sink, made = reusing_sinks(CsvSink)
    out = both(sink, tmp_path, TICKS, ".csv")
    rows = out.data.decode().splitlines()
    assert rows[0] == "n,ts,trigger" and rows[5] == f"11,{T0 + 1},back"
    events = sum(len(subjects) for _, subjects in TICKS)
    assert len(rows) == 1 + events and [m.calls for m in made] == [events, events]


def test_a_csv_mapper_starting_to_reuse_later_still_gives_each_row(tmp_path: Path) -> None:
    """Fresh dicts first, then one refilled dict: the per-event bytes all the same."""
    out = both(lambda p: CsvSink(p, Reusing(since=10)), tmp_path, TICKS, ".csv")
    assert [row.split(",")[0] for row in out.data.decode().splitlines()[-3:]] == [
        "55",
        "56",
        "57",
    ]
