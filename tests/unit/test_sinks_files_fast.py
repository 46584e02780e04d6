"""File sinks at speed: the fast JSON encoder's bytes, compressed output, flush points.

The fast encoder (orjson) must give the standard library's bytes for every record, so the
output does not depend on whether orjson is installed or on its version; compressed files
(``.gz``, ``.zst``) must hold exactly the plain file's bytes and never a torn line.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import enum
import functools
import gzip
import io
import json
import math
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim.errors import SinkError
from dogesim.examples.banking import banking_simulation
from dogesim.model import Transition
from dogesim.sinks import encoding, file_base
from dogesim.sinks.compression import (
    GZIP_LEVEL,
    CompressedFileError,
    compression_of,
    log_format,
    member_compressor,
    open_text,
)
from dogesim.sinks.encoding import exact_encoder, json_line_encoder
from dogesim.sinks.files import CsvSink, FlushPoint, JsonLinesSink
from dogesim.sinks.records import _json_default
from tests.unit.test_sinks_files import _FULL_DISK_CHILD, run_child

STEP = Transition("step", "a", "b", 50)
T0 = 1_700_000_000_000

fast = json_line_encoder(_json_default)
exact = exact_encoder(_json_default)


def outcome(encode: Any, record: Any) -> Any:
    """The bytes `encode` gives `record`, or the type of the error it raises."""
    try:
        return encode(record)
    except (TypeError, ValueError) as exc:
        return type(exc)


Point = collections.namedtuple("Point", "x y")


class Colour(enum.Enum):
    GREY = "grey"


class Size(enum.IntEnum):
    BIG = 3


class Name(str):
    pass


class Ratio(float):
    pass


@dataclasses.dataclass
class Dog:
    name: str
    _secret: int = 7
    tags: list[str] = dataclasses.field(default_factory=list)


EXAMPLES = [
    1e-05,
    -2.5e-07,
    9.99e-10,
    1e-10,
    1e16,
    1.2345678901234568e16,
    5e-324,
    -0.0,
    float("nan"),
    float("inf"),
    2**63,
    -(2**64),
    10**30,
    {1: "int key", "b": 2},
    {None: 1},
    Size.BIG,
    Colour.GREY,
    Name("sub"),
    Ratio(0.5),
    dt.datetime(2024, 2, 29, 23, 59, 59, 5, tzinfo=dt.timezone.utc),
    dt.date(2024, 1, 2),
    uuid.UUID(int=12345),
    Dog("Kabosu", tags=["shiba"]),
    {3, 1, 2},
    Path("a/b"),
    '\x00\x1f\x7f\u2028"\\/\b\f\n\r\t',
    "lone \ud800 surrogate",
    "null 0.00001 1e-5 e-mail",
    [[[[[[[[[[1]]]]]]]]]],
    functools.reduce(lambda inner, _: [inner], range(300), 0),  # deeper than orjson goes
    Point(1, 2),
    collections.OrderedDict(b=1, a=2),
    collections.defaultdict(list, k=[1]),
    (1, "two", None),
    True,
    object(),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:20])
def test_fast_encoder_matches_the_standard_library_on_edge_values(value: Any) -> None:
    """Each value where orjson and json differ gives json's bytes (or json's error)."""
    record = {"timestamp": T0, "value": value}
    assert outcome(fast, record) == outcome(exact, record)


def test_fast_encoder_refuses_what_json_refuses() -> None:
    """NaN, infinities, unknown objects and lone surrogates fail as in the standard library."""
    assert outcome(fast, {"x": math.nan}) is ValueError
    assert outcome(fast, {"x": object()}) is TypeError
    assert outcome(fast, {"x": "\udcff"}) is UnicodeEncodeError
    assert fast({"x": 1e-05, "y": None}) == b'{"x":1e-05,"y":null}\n'


def test_orjson_is_used_when_installed() -> None:
    """With orjson installed the fast path is on (the `fast` extra is part of `all`)."""
    pytest.importorskip("orjson")
    assert encoding.FAST


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=1e-12, max_value=1e-3)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_fast_encoder_gives_the_standard_library_bytes(record: dict[str, Any]) -> None:
    """For generated records the fast encoder's outcome is json.dumps's, byte for byte."""
    assert outcome(fast, record) == outcome(exact, record)


csv_cells = (
    st.none()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from('ab ,"\n\r\t\\é'), max_size=8)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abcd"), csv_cells, min_size=1), min_size=1))
def test_csv_bytes_equal_dictwriter(rows: list[dict[str, Any]]) -> None:
    """CsvSink writes exactly what csv.DictWriter writes for the same rows and columns; a
    row holding a CR as every Python quotes it (a CRLF-ended writer's row, its end cut)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, ["a", "b", "c", "d"], restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        line = io.StringIO()
        csv.DictWriter(line, ["a", "b", "c", "d"], restval="", lineterminator="\r\n").writerow(row)
        out.write(line.getvalue()[:-2] + "\n")
    target = io.BytesIO()
    sink = CsvSink("/dev/null", lambda ts, s, t: s, fieldnames=["a", "b", "c", "d"])
    sink._file = None  # keep the buffer: read what would be written
    sink._owned = True
    for row in rows:
        sink.collect(T0, row, STEP)
    target.write(bytes(sink._buffer))
    assert target.getvalue() == out.getvalue().encode("utf-8")


# -- compression ------------------------------------------------------------------------------


def banking_bytes(path: Path, seed: int = 3) -> bytes:
    """Run the seeded banking model into `path` (suffix picks the format); its bytes."""
    sink = JsonLinesSink(path) if log_format(path) == "jsonl" else CsvSink(path)
    result = banking_simulation([sink], subjects=150, ticks=500, seed=seed, timestamp_start=T0)
    result.run()
    return path.read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".csv.gz"])
def test_compressed_file_holds_the_plain_bytes(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .gz/.zst sink writes, in several members, exactly the plain file's bytes."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 2048)  # many members/frames
    plain = banking_bytes(tmp_path / ("plain" + suffix.rsplit(".", 1)[0]))
    packed = banking_bytes(tmp_path / ("packed" + suffix))
    assert len(plain) > 10_000 and len(packed) < len(plain) / 3
    with open_text(tmp_path / ("packed" + suffix)) as stream:
        assert stream.read().encode("utf-8") == plain
    if suffix.endswith(".gz"):
        assert gzip.decompress(packed) == plain
        assert packed.count(b"\x1f\x8b\x08") > 3  # one member per buffer
    assert banking_bytes(tmp_path / ("again" + suffix)) == packed  # deterministic


def test_compression_by_suffix() -> None:
    """The suffix names the compression; the log format looks past it."""
    assert compression_of("a.jsonl.gz") == "gzip" and compression_of("a.JSONL.ZST") == "zstd"
    assert compression_of("a.jsonl") is None and compression_of("-") is None
    assert log_format("a.csv.gz") == "csv" and log_format("a.jsonl.zst") == "jsonl"
    assert log_format("a.csv") == "csv" and log_format("a.json") == "jsonl"
    with pytest.raises(SinkError, match="unknown compression 'lz5'"):
        member_compressor("lz5")


def test_zstd_without_zstandard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A .zst sink without zstandard installed fails at construction, naming the extra."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(SinkError, match=r"pip install 'dogesim\[zstd\]'"):
        JsonLinesSink("/dev/null/never.jsonl.zst")


def test_full_disk_under_gzip_counts_exactly_the_lines_in_whole_members(tmp_path: Path) -> None:
    """Disk full mid-member: the cut member is removed; ledger = lines in the whole members."""
    lines = [json.dumps({"n": f"{n:06d}", "pad": "x" * 40}).replace(" ", "") for n in range(60_000)]
    per_member = file_base.BUFFER_BYTES // 64  # 64-byte lines: a buffer holds this many
    members = [
        gzip.compress(
            "".join(f"{line}\n" for line in lines[i : i + per_member]).encode(), GZIP_LEVEL, mtime=0
        )
        for i in range(0, 3 * per_member, per_member)
    ]
    limit = len(members[0]) + len(members[1]) + len(members[2]) // 2  # cut in member 3
    path = tmp_path / "full.jsonl.gz"
    report = run_child(_FULL_DISK_CHILD, path, limit, 60_000)
    assert path.read_bytes() == members[0] + members[1]
    numbers = [json.loads(line)["n"] for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert numbers == [f"{n:06d}" for n in range(2 * per_member)]
    ledger = report["ledger"]
    assert ledger["acknowledged"] == 2 * per_member
    assert ledger["failed"] == ledger["collected"] - 2 * per_member > 0
    assert "File too large" in report["errors"][0]


def test_flush_points_record_each_write_and_the_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every buffer write is a flush point; the last one is the fsync, at the ledger's count."""
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 1000)
    path = tmp_path / "e.jsonl"
    size = len(fast({"n": "000", "pad": "x" * 40}))
    per_write = -(-1000 // size)  # lines buffered when a write starts
    sink = JsonLinesSink(path, lambda ts, s, t: {"n": f"{s:03d}", "pad": "x" * 40})
    for n in range(100):
        sink.collect(T0, n, STEP)
    written = list(sink.flush_points)
    assert len(written) == 100 // per_write and not any(p.synced for p in written)
    assert [p.lines for p in written] == [per_write * (i + 1) for i in range(len(written))]
    assert all(p.offset == p.lines * size for p in written)
    assert sink.ledger.acknowledged == 0  # written is not yet durable
    sink.close()
    assert sink.flush_points[-1] == FlushPoint(100, 100 * size, True)
    assert sink.ledger.acknowledged == 100 == len(path.read_bytes().splitlines())


def test_factories_write_compressed_streams(tmp_path: Path) -> None:
    """compression='gzip' names files <name>.jsonl.gz / <name>.csv.gz and compresses them."""
    from dogesim.sinks.files import CsvSinkFactory, JsonLinesSinkFactory

    jsonl = JsonLinesSinkFactory(tmp_path, compression="gzip").create("clicks")
    table = CsvSinkFactory(tmp_path, compression="gzip").create("trx.csv.gz", lambda ts, s, t: s)
    jsonl.collect(T0, 1, STEP)
    table.collect(T0, {"n": 1}, STEP)
    jsonl.close()
    table.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.jsonl.gz", "trx.csv.gz"]
    assert gzip.decompress((tmp_path / "trx.csv.gz").read_bytes()) == b"n\n1\n"
    with pytest.raises(SinkError, match="unknown compression 'zip'; give one of gzip, zstd"):
        JsonLinesSinkFactory(tmp_path, compression="zip").create("x")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_a_compressed_file_cut_anywhere_reads_as_its_complete_lines(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .gz/.zst file cut at any byte (kill -9 mid-write) reads as a prefix of whole lines
    with ``cut_short="complete"``; by default a cut inside a member is refused, naming them,
    and so is a file cut to 0 bytes (no gzip member or zstd frame at all)."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 2000)
    whole = tmp_path / f"whole{suffix}"
    sink = JsonLinesSink(whole, lambda ts, s, t: {"n": s, "pad": "y" * (s % 17)})
    for n in range(3000):
        sink.collect(T0, n, STEP)
    sink.close()
    data = whole.read_bytes()
    ends = [point.offset for point in sink.flush_points if not point.synced]
    lines_at = {point.offset: point.lines for point in sink.flush_points}
    cut = tmp_path / f"cut{suffix}"
    for size in sorted({0, 1, 7, ends[0], ends[0] + 5, ends[3] - 1, len(data) - 3, len(data)}):
        cut.write_bytes(data[:size])
        with open_text(cut, cut_short="complete") as stream:
            text = stream.read()
        if size == 0:  # no member at all (gzip -t: unexpected end of file)
            with pytest.raises(CompressedFileError, match="cut short: 0 bytes") as caught:
                open_text(cut)
            assert caught.value.lines == 0 and text == ""
        elif size == len(data) or size in ends:
            with open_text(cut) as stream:
                assert stream.read() == text
        else:
            refused = pytest.raises(CompressedFileError, match="cut short")
            with refused as caught, open_text(cut) as stream:
                stream.read()
            assert caught.value.lines == text.count("\n")
        assert text.endswith("\n") or text == ""
        numbers = [json.loads(line)["n"] for line in text.splitlines()]
        assert numbers == list(range(len(numbers)))  # whole lines, in order, none torn
        whole_blocks = max((end for end in ends if end <= size), default=0)
        assert len(numbers) >= lines_at.get(whole_blocks, 0)
    assert len(numbers) == 3000


_KILLED_CHILD = r"""
import sys
from dogesim.model import Transition
from dogesim.sinks import file_base as files
from dogesim.sinks.files import JsonLinesSink

files.BUFFER_BYTES = 4096
sink = JsonLinesSink(sys.argv[1], lambda ts, s, t: {"n": s, "pad": "z" * 30})
step = Transition("step", "a", "b", 50)
n = 0
while True:
    sink.collect(n, n, step)
    n += 1
"""


def test_kill_9_leaves_a_gzip_file_of_complete_lines(tmp_path: Path) -> None:
    """A writer killed with SIGKILL leaves a .jsonl.gz that reads as lines 0..k-1, whole."""
    import signal
    import subprocess
    import time

    path = tmp_path / "killed.jsonl.gz"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(path)])
    try:
        for _ in range(600):  # bounded by polls, not by a wall-clock assertion
            if path.exists() and path.stat().st_size > 20_000:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert path.stat().st_size > 20_000
    with open_text(path, cut_short="complete") as stream:
        numbers = [json.loads(line)["n"] for line in stream]
    assert len(numbers) > 1000 and numbers == list(range(len(numbers)))
