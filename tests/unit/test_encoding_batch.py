"""The JSON lines of a whole tick from one orjson call: the standard library's bytes.

`json_block_encoder` must give, for any list of records, either None or exactly the lines
`exact_encoder` gives record by record; `JsonLinesSink.collect_many` built on it (records
made for the tick first) must give what ``collect`` per event gives, for hostile records and
for mappers that reuse their dict; the default mapper's tick lines must be json.dumps's of
`default_record` per event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim.model import Transition
from dogesim.sinks import file_base
from dogesim.sinks.encoding import exact_encoder, json_block_encoder
from dogesim.sinks.files import (
    CsvSink,
    JsonLinesSink,
    _json_default,
    default_record,
    subject_fields,
    subjects_fields,
)
from tests.unit.test_sinks_files_batch import STEPS, T0, both
from tests.unit.test_sinks_files_fast import json_values

exact = exact_encoder(_json_default)
block = json_block_encoder(_json_default)
pytest.importorskip("orjson")


class Sub(dict):  # type: ignore[type-arg]
    """A dict subclass: orjson passes it to `default`, which refuses it."""


class Shade(enum.Enum):
    DARK = "dark"


#: Strings that look like the block's record boundary or hold what orjson may write otherwise.
tricky_text = st.sampled_from(
    ["},{", '"},{"', "}\n{", "\n", "null", "0.00001", "1e-05", "é€", "}]", "[{", "\\"]
) | st.text(alphabet=st.sampled_from('},{"[]\n\\ aé'), max_size=8)

hostile_leaves = (
    json_values
    | tricky_text
    | st.just(math.nan)
    | st.just(math.inf)
    | st.integers(min_value=2**63, max_value=2**80)
    | st.floats(min_value=1e-9, max_value=1e-4)
    | st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1))
    | st.just(Shade.DARK)
    | st.builds(Sub, st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    | st.lists(st.dictionaries(tricky_text, st.integers(), max_size=3), max_size=3)
)
hostile_records = st.dictionaries(
    tricky_text | st.integers(-3, 3) | st.none(), hostile_leaves, max_size=5
)


def reference(records: list[Any]) -> bytes | type[Exception]:
    """The lines of the records through the standard library, or the error's type."""
    try:
        return b"".join(map(exact, records))
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_records, max_size=8), st.booleans())
def test_block_is_none_or_the_standard_library_lines(records: list[Any], reuse: bool) -> None:
    """Hostile records (boundaries in strings, nested lists of dicts, NaN, big ints, non-str
    keys, dict subclasses, datetimes, one dict twice): None or json.dumps's lines."""
    if reuse and records:
        records.append(records[0])
    got = block(records)
    if got is not None:
        assert got == reference(records)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text(alphabet="abcxyz", max_size=5),
            st.integers(-(2**53), 2**53) | st.text(alphabet="abc é,:[]", max_size=6),
            max_size=4,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_block_is_taken_for_plain_records(records: list[dict[str, Any]]) -> None:
    """Records of ints and strings free of "},{" and "null" go through the block path."""
    got = block(records)
    assert got is not None and got == reference(records)


def test_block_refuses_what_it_cannot_prove() -> None:
    """A boundary inside a record, NaN, a dict subclass or a non-dict record: None."""
    assert block([{"a": "},{"}, {"b": 1}]) is None
    assert block([{"a": [{"x": 1}, {"y": 2}]}]) is None
    assert block([{"a": math.nan}]) is None
    assert block([Sub(a=1)]) is None
    assert block([[1, 2]]) is None
    assert block([]) is None
    assert block([{"a": 1}, {}]) == b'{"a":1}\n{}\n'


def each_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """A fresh record holding the generated value."""
    return {"ts": timestamp, "trigger": transition.trigger, "value": subject}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**45), st.lists(hostile_leaves, max_size=10)),
        min_size=1,
        max_size=5,
    )
)
def test_sink_batches_of_hostile_records_give_the_per_event_bytes(
    tmp_path: Path, batches: list[tuple[int, list[Any]]]
) -> None:
    """collect_many over hostile values: the bytes, ledger and errors of collect per event."""
    both(lambda p: JsonLinesSink(p, each_record), tmp_path, batches, ".jsonl")


class Reusing:
    """A mapper refilling one dict (from call `since` on, fresh dicts before), counting calls."""

    def __init__(self, since: int = 0) -> None:
        self.calls = 0
        self.since = since
        self.record: dict[str, Any] = {}

    def __call__(self, timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        self.calls += 1
        record = self.record if self.calls > self.since else {}
        record.update(n=subject, ts=timestamp, trigger=transition.trigger)
        return record


def reusing_sinks(
    kind: Callable[[Path, Reusing], Any],
) -> tuple[Callable[[Path], Any], list[Reusing]]:
    """A factory of `kind` sinks, each with a new `Reusing` mapper; the mappers it made."""
    made: list[Reusing] = []

    def make(path: Path) -> Any:
        made.append(Reusing())
        return kind(path, made[-1])

    return make, made


TICKS = [(T0 + k, list(range(k * 10, k * 10 + 3 + k))) for k in range(6)]
EVENTS = sum(len(subjects) for _, subjects in TICKS)


def test_a_mapper_reusing_its_dict_is_read_record_by_record_once(tmp_path: Path) -> None:
    """A mapper that refills one dict: every line its own, the mapper called once per event."""
    sink, made = reusing_sinks(JsonLinesSink)
    out = both(sink, tmp_path, TICKS, ".jsonl")
    assert out.data.count(b"\n") == EVENTS
    assert out.data.splitlines()[4] == b'{"n":11,"ts":%d,"trigger":"back"}' % (T0 + 1)
    assert [m.calls for m in made] == [EVENTS, EVENTS]


def test_a_mapper_starting_to_reuse_later_still_gives_each_line(tmp_path: Path) -> None:
    """Fresh dicts for two ticks, then one refilled dict: the per-event bytes all the same
    (the tick where the reuse shows is made again, record by record)."""
    out = both(lambda p: JsonLinesSink(p, Reusing(since=10)), tmp_path, TICKS, ".jsonl")
    assert [line.split(b",")[0] for line in out.data.splitlines()[-3:]] == [
        b'{"n":%d' % n for n in (55, 56, 57)
    ]


def failing_after(bad: int, fails: int) -> Any:
    """A mapper whose record for `bad` holds NaN and that raises for `fails`."""

    def mapper(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        if subject == fails:
            raise LookupError(subject)
        return {"n": subject, "x": math.nan if subject == bad else 0.5}

    return mapper


@pytest.mark.parametrize(("bad", "fails"), [(13, 16), (16, 13), (-1, 10), (12, -1)])
def test_the_first_failure_of_a_made_tick_is_the_one_reported(
    tmp_path: Path, bad: int, fails: int
) -> None:
    """An unwritable record and a raising mapper in one tick made beforehand: the earlier
    one fails, as one by one; the lines before it are written and counted."""
    ticks = [(T0, [0, 1, 2]), (T0 + 1, list(range(10, 20)))]
    out = both(lambda p: JsonLinesSink(p, failing_after(bad, fails)), tmp_path, ticks, ".jsonl")
    first = min(n for n in (bad, fails) if n >= 0)
    assert out.data.count(b"\n") == 3 + first - 10
    assert out.ledger["failed"] == 1


@dataclasses.dataclass
class Walker:
    """A subject with a few kinds of fields."""

    walker_id: int
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)
    weight: float | None = None


walkers = st.builds(
    Walker,
    st.integers(min_value=-(2**70), max_value=2**70),
    tricky_text,
    st.lists(tricky_text, max_size=2),
    st.none() | st.floats() | st.just(dt.datetime(2024, 1, 2)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(walkers, max_size=6))
def test_subjects_fields_equal_subject_fields_each(subjects: list[Walker]) -> None:
    """The fields of a tick's subjects, made at once, are subject_fields's (keys in order)."""
    made = subjects_fields(subjects)
    expected = [subject_fields(s) for s in subjects]
    if subjects:
        assert made is not None
        assert [list(r.items()) for r in made] == [list(r.items()) for r in expected]
    else:
        assert made is None


def test_subjects_fields_leave_other_subjects_to_the_mapper() -> None:
    """Subjects of two classes, or not dataclasses: None (default_record one by one)."""
    assert subjects_fields([Walker(1, "a"), {"id": 2}]) is None
    assert subjects_fields([3, 4]) is None


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**45), st.lists(walkers | st.integers(), max_size=8)),
        min_size=1,
        max_size=4,
    )
)
def test_default_record_batches_give_the_per_event_bytes(
    tmp_path: Path, batches: list[tuple[int, list[Any]]]
) -> None:
    """The default mapper's tick lines (heads once per transition, subjects' fields in one
    block): the bytes, ledger and errors of collect per event, for hostile field values."""
    both(JsonLinesSink, tmp_path, batches, ".jsonl")


def test_default_record_block_is_taken_for_plain_subjects(tmp_path: Path) -> None:
    """Plain dataclass subjects: the tick's lines are made without records, as json.dumps
    of default_record gives them."""
    sink = JsonLinesSink(tmp_path / "a.jsonl")
    subjects = [Walker(i, f"w{i}", ["x"], 0.5) for i in range(5)]
    transitions = [STEPS[i % 2] for i in range(5)]
    block = sink._default_block(T0, subjects, transitions)
    assert block == b"".join(
        exact(default_record(T0, s, t)) for s, t in zip(subjects, transitions, strict=True)
    )
    sink.close()


PART_CASES: dict[str, Callable[[Path], Any]] = {
    "jsonl default": JsonLinesSink,
    "jsonl fresh": lambda p: JsonLinesSink(p, failing_after(23, 26)),
    "jsonl reusing later": lambda p: JsonLinesSink(p, Reusing(since=12)),
    "csv fresh": lambda p: CsvSink(p, failing_after(-1, 26)),
    "csv reusing later": lambda p: CsvSink(p, Reusing(since=12)),
}


@pytest.mark.parametrize("case", sorted(PART_CASES))
def test_a_tick_taken_in_parts_gives_the_per_event_bytes(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ticks longer than TICK_PART: written part after part, the bytes, ledger and errors
    of collect per event (a failure in a later part stops the tick there)."""
    monkeypatch.setattr(file_base, "TICK_PART", 3)
    subjects: list[Any] = list(range(20, 30))
    if case == "jsonl default":
        subjects = [Walker(n, "w") for n in subjects]
    out = both(PART_CASES[case], tmp_path, [(T0, [0, 1]), (T0 + 1, subjects)], ".jsonl")
    assert out.data.count(b"\n") > 4


@dataclasses.dataclass
class Plain:
    """A subject whose fields the kernel writes itself (or hands back)."""

    n: int
    x: float
    name: str
    flag: bool | None


plain_subjects = st.builds(
    Plain,
    st.integers(min_value=-(2**70), max_value=2**70)
    # the kernel reads one-digit ints (below 2**30) directly and 64-bit ones by conversion
    | st.sampled_from([0, 2**30 - 1, 2**30, -(2**30), 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    st.floats() | st.sampled_from([-0.0, 1e-7, 1e-5, 2.5e-7, 1e300, 123456789.125]),
    st.text(max_size=6) | st.sampled_from(["plain", "a b", 'q"', "back\\", "é", "\x7f", "\t"]),
    st.sampled_from([True, False, None]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(plain_subjects, max_size=8))
def test_the_kernels_lines_are_none_or_the_standard_librarys(subjects: list[Plain]) -> None:
    """`_kernel.json_lines`: each subject's fields after its head, exactly json.dumps's
    text (ints of any size, float repr, ASCII strings without escapes, true/false/null), or
    None for what it leaves to the slow path (NaN, escapes, non-ASCII)."""
    from dogesim.engine import kernel

    native = kernel.compiled()
    if native is None:
        pytest.skip("the compiled kernel is not built")
    names = ("n", "x", "name", "flag")
    keys = tuple(
        ("{" if i == 0 else ",").encode() + f'"{k}":'.encode() for i, k in enumerate(names)
    )
    moves = [STEPS[k % 2] for k in range(len(subjects))]
    heads = {step: f'{{"t":"{step.trigger}","subject":'.encode() for step in STEPS}
    lines = native.json_lines(heads, moves, subjects, Plain, names, keys)
    try:
        expected = b"".join(
            heads[move] + exact(subject_fields(s))[:-1] + b"}\n"
            for move, s in zip(moves, subjects, strict=True)
        )
    except ValueError:  # NaN or infinity: json.dumps refuses them
        assert lines is None
        return
    plain = all(
        math.isfinite(s.x)
        and s.name.isascii()
        and s.name.isprintable()
        and not set(s.name) & {'"', "\\"}
        for s in subjects
    )
    if plain:
        assert lines == expected
    else:
        assert lines in (None, expected)


@pytest.mark.parametrize("path", ["c", "python"])
def test_default_record_lines_are_the_same_with_or_without_the_kernel(
    tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default record's tick lines through the kernel and through the Python block
    encoding are json.dumps of default_record, event by event."""
    from dogesim.sinks import files

    if path == "python":
        monkeypatch.setattr(files, "_native_kernel", lambda: None)
    sink = JsonLinesSink(tmp_path / "a.jsonl")
    subjects = [Plain(i * 10**k, i / 3, f"w{i}", i % 2 == 0) for k, i in enumerate(range(6))]
    transitions = [STEPS[i % 2] for i in range(6)]
    sink.collect_many(T0, subjects, transitions)
    sink.close()
    assert (tmp_path / "a.jsonl").read_bytes() == b"".join(
        exact(default_record(T0, s, t)) for s, t in zip(subjects, transitions, strict=True)
    )


def test_the_kernel_hands_back_what_it_cannot_write() -> None:
    """`_kernel.json_lines` says None for a subject of another type than `kind` and for a
    transition without a head (the caller's Python path then writes the tick)."""
    from dogesim.engine import kernel

    native = kernel.compiled()
    if native is None:
        pytest.skip("the compiled kernel is not built")
    names, keys = ("n",), (b'{"n":',)
    heads = {STEPS[0]: b'{"subject":'}
    assert native.json_lines(heads, [STEPS[0]], [Plain(1, 0.5, "a", None)], Plain, names, keys)
    other = Walker(1, "w")
    assert (
        native.json_lines(
            heads, [STEPS[0]] * 2, [Plain(1, 0.5, "a", None), other], Plain, names, keys
        )
        is None
    )
    assert (
        native.json_lines(heads, [STEPS[1]], [Plain(1, 0.5, "a", None)], Plain, names, keys) is None
    )


#: A tick of the kernel's parts: plain subjects, one part holding one it hands back (a NaN,
#: which json.dumps refuses: the tick stops there), one a subject of another dataclass.
KERNEL_TICKS: dict[str, list[Any]] = {
    "plain": [Plain(n, n / 7, f"p{n}", None) for n in range(11)],
    "another type in a later part": [Plain(n, 0.5, "p", True) for n in range(7)]
    + [Walker(7, "w")]
    + [Plain(n, 0.5, "p", False) for n in range(8, 11)],
    "escapes in a later part": [Plain(n, 0.5, f'p"{n}' if n > 5 else "p", None) for n in range(11)],
    "nan in a later part": [Plain(n, math.nan if n == 8 else 1.0, "p", None) for n in range(11)],
}


@pytest.mark.parametrize("case", sorted(KERNEL_TICKS))
def test_a_tick_written_by_the_kernel_in_parts_gives_the_per_event_bytes(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ticks longer than KERNEL_PART: the kernel's parts, and the Python path for a part it
    hands back, give the bytes, ledger, errors and flush points of collect per event."""
    monkeypatch.setattr(file_base, "KERNEL_PART", 3)
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 200)
    subjects = KERNEL_TICKS[case]
    out = both(JsonLinesSink, tmp_path, [(T0, subjects[:2]), (T0 + 1, subjects)], ".jsonl")
    assert out.data.count(b"\n") >= 8
