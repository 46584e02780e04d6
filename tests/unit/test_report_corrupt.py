"""`dogesim report` and `dogesim fit` on damaged event logs: a corrupt ``.gz``/``.zst`` (not
compressed data at all, or a valid start then garbage) and a file cut short (a compressed
one ending inside a member, a plain one ending in a torn line) are refused with one line
naming the file and what is wrong, exit status 2, never a traceback.

Before, corrupt data gave zlib's or zstandard's traceback, and a gzip file cut short read
silently as if it were the whole log.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from dogesim.cli import main
from dogesim.errors import DogesimError
from dogesim.report.tables import read_event_log
from dogesim.sinks.compression import CompressedFileError, open_text

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "models" / "banking.yaml")
SUFFIXES = [".jsonl.gz", ".jsonl.zst", ".csv.gz", ".csv.zst"]
#: Bytes no gzip or zstd reader takes, the same every run.
GARBAGE = np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes()


def _log(tmp_path: Path, name: str) -> Path:
    """A small banking run's event log at `tmp_path / name` (compressed by its suffix)."""
    if name.endswith(".zst"):
        pytest.importorskip("zstandard")
    path = tmp_path / name
    argv = ["run", MODEL, "--subjects", "300", "--ticks", "120", "--out", str(path), "-q"]
    assert main(argv) == 0
    return path


def _commands(path: Path, tmp_path: Path) -> list[list[str]]:
    """`dogesim report` and `dogesim fit` of `path` against the banking model."""
    window = ["--subjects", "300", "--ticks", "120"]
    report = ["report", str(path), "-m", MODEL, "-o", str(tmp_path / "r.png"), "--no-simulation"]
    fit = ["fit", str(path), "--model", MODEL, "-o", str(tmp_path / "fit.yaml")]
    return [[*report, *window], [*fit, "--subjects", "300"]]


def _refused(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *words: str) -> None:
    """Both commands exit 2 with one message naming `path` and holding `words`."""
    for argv in _commands(path, tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path) in err, err
        said = err.replace(str(tmp_path), "")  # the test's directory names hold words too
        for word in words:
            assert word in said, err


def _valid_start(data: bytes) -> bytes:
    """The first bytes of a compressed file that its format accepts (gzip's 10-byte header,
    zstd's magic number and frame header)."""
    return data[:10] if data[:2] == b"\x1f\x8b" else data[:6]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_garbage_named_gz_or_zst_is_refused_naming_the_file(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of random bytes named ``.gz``/``.zst``: exit 2, "corrupt", no traceback."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    path = tmp_path / f"events{suffix}"
    path.write_bytes(GARBAGE)
    _refused(path, tmp_path, capsys, "corrupt", "0 complete lines")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_valid_start_then_garbage_is_refused_naming_the_file(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid header followed by garbage: exit 2, "corrupt", no traceback."""
    path = _log(tmp_path, f"events{suffix}")
    path.write_bytes(_valid_start(path.read_bytes()) + GARBAGE)
    _refused(path, tmp_path, capsys, "corrupt")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_compressed_log_cut_short_is_refused_with_its_complete_lines(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log cut 5 bytes before its end (inside its last member: a writer killed mid-write,
    a copy not finished) is refused, naming the complete lines before the cut, not read as
    if it were whole."""
    path = _log(tmp_path, f"events{suffix}")
    with open_text(path) as stream:
        lines = stream.read().count("\n")
    path.write_bytes(path.read_bytes()[:-5])
    with open_text(path, cut_short="complete") as stream:
        complete = stream.read().count("\n")
    assert 0 <= complete <= lines  # a cut in the trailer leaves every line, unchecked
    _refused(path, tmp_path, capsys, "cut short", f"{complete} complete lines")


def test_open_text_refuses_a_cut_file_unless_asked_for_its_complete_lines(
    tmp_path: Path,
) -> None:
    """`open_text` raises `CompressedFileError` at the cut (a `DogesimError` naming the file
    and the complete lines); ``cut_short="complete"`` reads those lines instead."""
    lines = b"".join(b'{"n":%d}\n' % n for n in range(5000))
    path = tmp_path / "cut.jsonl.gz"
    second = gzip.compress(lines[20_000:])
    path.write_bytes(gzip.compress(lines[:20_000]) + second[: len(second) // 2])
    with pytest.raises(CompressedFileError, match="cut short") as caught, open_text(path) as s:
        s.read()
    assert isinstance(caught.value, DogesimError) and str(path) in str(caught.value)
    with open_text(path, cut_short="complete") as stream:
        text = stream.read()
    complete = text.count("\n")
    assert lines[:20_000].count(b"\n") <= complete < 5000
    assert text.encode() == lines[: len(text)] and text.endswith("\n")
    assert f"after {complete} complete lines" in str(caught.value)
    assert caught.value.cut_short and caught.value.lines == complete
    with pytest.raises(ValueError, match="cut_short"):
        open_text(path, cut_short="maybe")


def test_a_plain_log_with_a_torn_last_line_is_refused_as_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain ``.jsonl`` ending inside its last line (as a writer killed mid-line leaves
    it; a file sink never does) is refused the same way as a cut compressed file, naming its
    complete lines; the same file whose last line is whole but has no newline reads."""
    path = _log(tmp_path, "events.jsonl")
    data = path.read_bytes()
    lines = data.count(b"\n")
    path.write_bytes(data[:-20])
    _refused(path, tmp_path, capsys, "cut short", f"{lines - 1} complete lines")
    with pytest.raises(DogesimError, match=f"line {lines} is torn"):
        read_event_log(path, subject="subject.user_id")
    path.write_bytes(data[:-1])
    assert len(read_event_log(path, subject="subject.user_id")) == lines


def test_a_bad_line_inside_a_plain_log_is_still_named_as_not_json(tmp_path: Path) -> None:
    """A line that is not JSON before the end is a bad line, not a cut: named by number."""
    path = _log(tmp_path, "events.jsonl")
    text = path.read_text().splitlines(keepends=True)
    text[3] = "{not json\n"
    path.write_text("".join(text))
    with pytest.raises(DogesimError, match=r"events.jsonl:4: not a JSON line"):
        read_event_log(path, subject="subject.user_id")


def test_a_log_that_is_not_utf8_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whole gzip data that is not UTF-8 text: exit 2 naming the file, no traceback."""
    path = tmp_path / "binary.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n' + GARBAGE + b"\n"))
    _refused(path, tmp_path, capsys, "UTF-8")


@pytest.mark.parametrize("name", ["roster.jsonl.gz", "roster.csv.gz"])
def test_a_corrupt_compressed_roster_is_refused_naming_it(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim fit --roster` of a corrupt ``.gz``: exit 2 naming the roster."""
    log = _log(tmp_path, "events.jsonl")
    roster = tmp_path / name
    roster.write_bytes(GARBAGE)
    argv = [*_commands(log, tmp_path)[1][:-2], "--roster", str(roster)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(roster) in err, err
    assert "corrupt" in err.replace(str(tmp_path), ""), err


def test_a_gzip_roster_reads_as_its_plain_file(tmp_path: Path) -> None:
    """A roster ``.csv.gz`` is CSV (it was read as JSON before): the same fit as plain."""
    from dogesim.report.observed import _read_table

    rows = [{"subject": n, "group": "ab"[n % 2]} for n in range(10)]
    plain, packed = tmp_path / "r.csv", tmp_path / "r.csv.gz"
    plain.write_text("subject,group\n" + "".join(f"{r['subject']},{r['group']}\n" for r in rows))
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert _read_table(packed, "roster").equals(_read_table(plain, "roster"))
    lines = tmp_path / "r.jsonl.gz"
    lines.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert _read_table(lines, "roster").equals(_read_table(plain, "roster"))


@pytest.mark.parametrize("cut", [30, 3])
def test_a_plain_csv_log_with_a_torn_last_row_is_refused_as_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: int
) -> None:
    """A plain ``.csv`` ending inside its last row is refused as cut short, naming its
    complete lines (before, its cells were read as missing values: "states [nan] are not in
    model"); without only its final newline it is refused too (a row cut inside its last
    cell has as many cells as a whole one), saying how to accept a complete file."""
    path = _log(tmp_path, "events.csv")
    data = path.read_bytes()
    lines = data.count(b"\n")
    path.write_bytes(data[:-cut])
    _refused(path, tmp_path, capsys, "cut short", f"line {lines} is torn", f"{lines - 1} complete")
    path.write_bytes(data[:-1])
    _refused(path, tmp_path, capsys, f"line {lines} has no newline", "if the file is complete")


def _edit_line(path: Path, number: int, text: str) -> None:
    """Line `number` (from 1) of the text file `path` replaced by `text` and a newline."""
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("line", ["[1,2,3]", "1", '"x"', "null", "true", "{not json"])
def test_a_line_that_is_not_an_event_object_is_refused_naming_its_line(
    tmp_path: Path, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid JSON that is no object (an array, a number, a string, null): exit 2 naming the
    file and the line; before, a TypeError traceback ("All items in data must be of type
    dict"), fit's KeyError 'subject', or (null) a report drawn with exit 0."""
    path = _log(tmp_path, "events.jsonl")
    _edit_line(path, 4, line)
    _refused(path, tmp_path, capsys, "events.jsonl:4:")


def _with(record: dict, dotted: str, value: object) -> dict:
    """`record` with the (dotted, nested) field set to `value`, or removed for `_GONE`."""
    *parents, name = dotted.split(".")
    inner = record
    for key in parents:
        inner = inner[key]
    if value is _GONE:
        del inner[name]
    else:
        inner[name] = value
    return record


_GONE = object()
BAD_FIELDS = [
    ("subject.user_id", [1], "subject"),
    ("subject.user_id", None, "subject"),
    ("subject", {"user_id": {"id": 1}}, "subject"),
    ("timestamp", _GONE, "timestamp"),
    ("timestamp", "yesterday", "timestamp"),
    ("timestamp", True, "timestamp"),
    ("timestamp", 1e300, "timestamp"),
    ("trigger", None, "trigger"),
    ("to_state", _GONE, "to_state"),
    ("from_state", ["online"], "from_state"),
    ("to_state", False, "to_state"),
]


@pytest.mark.parametrize(("field", "value", "word"), BAD_FIELDS)
def test_an_event_with_a_bad_field_is_refused_naming_its_line(
    tmp_path: Path, field: str, value: object, word: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Line 4 of a log with a field missing, null or of the wrong type (an array subject, a
    string or boolean timestamp, a state that is a list): exit 2, one message naming the
    file, the line and the field; before, tracebacks (unhashable type 'list'), or a state
    'nan' or 'False' refused without its line."""
    path = _log(tmp_path, "events.jsonl")
    record = json.loads(path.read_text().splitlines()[3])
    _edit_line(path, 4, json.dumps(_with(record, field, value)))
    _refused(path, tmp_path, capsys, "events.jsonl:4:", word)


def test_nan_in_a_json_line_is_refused_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``NaN`` (which Python's json reads, and no JSON reader should) in line 4: refused."""
    path = _log(tmp_path, "events.jsonl")
    line = path.read_text().splitlines()[3]
    _edit_line(path, 4, line.replace('"timestamp":', '"timestamp":NaN,"was":', 1))
    _refused(path, tmp_path, capsys, "events.jsonl:4:", "NaN")


def test_a_csv_row_with_an_empty_cell_is_refused_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV row whose to_state cell is empty (read as NaN, then the state 'nan'): refused
    naming line 5 (the header is line 1); a CSV without a subject column names the file."""
    path = _log(tmp_path, "events.csv")
    lines = path.read_text().splitlines()
    cells = lines[4].split(",")
    cells[3] = ""
    _edit_line(path, 5, ",".join(cells))
    _refused(path, tmp_path, capsys, "events.csv:5:", "to_state")
    header = lines[0].split(",")
    keep = [k for k, name in enumerate(header) if not name.startswith("subject")]
    path.write_text("".join(",".join(line.split(",")[k] for k in keep) + "\n" for line in lines))
    _refused(path, tmp_path, capsys, "subject field")


EMPTY = [
    ("events.jsonl", b""),
    ("events.jsonl", b"\n  \n\n"),
    ("events.csv", b"timestamp,trigger,from_state,to_state,subject.user_id\n"),
    ("events.csv", b"\n\n"),
    ("events.jsonl.gz", gzip.compress(b"", mtime=0)),
]


@pytest.mark.parametrize(("name", "data"), EMPTY)
def test_a_log_without_events_is_refused(
    tmp_path: Path, name: str, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty file, blank lines, a CSV header alone, a gzip file of nothing: "holds no
    events", exit 2 (fit wrote a model of zero chances, report printed a TVD)."""
    path = tmp_path / name
    path.write_bytes(data)
    _refused(path, tmp_path, capsys, "holds no events")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".csv.gz"])
def test_a_zero_byte_compressed_log_is_refused_as_cut_short(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0-byte ``.gz``/``.zst`` is no gzip or zstd data (``gzip -t``: unexpected end of
    file): refused as cut short, holding no events; ``cut_short="complete"`` reads nothing."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    path = tmp_path / f"events{suffix}"
    path.write_bytes(b"")
    _refused(path, tmp_path, capsys, "cut short", "0 bytes", "no events")
    with open_text(path, cut_short="complete") as stream:
        assert stream.read() == ""


def test_a_path_that_is_not_a_file_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``/dev/null`` is a character device and a directory a directory, not "no such event
    log"; a missing path still is one."""
    for path, what in (
        (Path("/dev/null"), "a character device"),
        (tmp_path, "a directory"),
        (tmp_path / "gone.jsonl", "no such event log"),
    ):
        for argv in _commands(path, tmp_path):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert "Traceback" not in err and f"{path}: {what}" in err, err


def test_records_that_are_not_mappings_are_refused(tmp_path: Path) -> None:
    """A list of records holding a non-mapping: a DogesimError naming its position."""
    good = {"subject": 1, "timestamp": 1, "trigger": "t", "from_state": "a", "to_state": "b"}
    with pytest.raises(DogesimError, match="record 2"):
        read_event_log([good, [1, 2]])


@pytest.mark.parametrize("flag", ["--by", "--weight"])
def test_a_group_or_weight_that_is_an_array_is_refused_naming_its_line(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fit --by``/``--weight`` of a log field that is an array in line 4: exit 2 naming the
    line (a TypeError "unhashable type: 'list'" traceback before)."""
    path = _log(tmp_path, "events.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for number, record in enumerate(records, start=1):
        record["subject"]["extra"] = [1] if number == 4 else 1
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    argv = [*_commands(path, tmp_path)[1], flag, "subject.extra"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{path}:4:" in err and "an array" in err, err
