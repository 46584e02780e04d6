"""Part sinks and their index: a tick's batch (`collect_many`) writes the bytes and index of
the same events one by one (`collect`); the index measures each block's bytes, which the
merge copies whole and checks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.scale import parts
from dogesim.scale.parts import PartFile, PartSink
from dogesim.sinks.files import JsonLinesSink

GO = Transition("go", "a", "b", 10.0)
BACK = Transition("back", "b", "a", 10.0)

#: Three ticks of events: (timestamp, subject ids, transitions).
TICKS = [(0, [1, 2, 3], [GO, GO, BACK]), (60_000, [2], [BACK]), (120_000, [1, 3], [GO, BACK])]


class OneByOne:
    """A line-per-event sink without `collect_many` (the per-event path only)."""

    def __init__(self, path: str) -> None:
        self.inner = JsonLinesSink(path)

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.inner.collect(timestamp, subject, transition)

    def close(self) -> None:
        self.inner.close()


def write(path: Path, inner: Any, batched: bool) -> tuple[bytes, np.ndarray]:
    sink = PartSink(inner, PartFile(str(path), "jsonl:out", str(path), False))
    for stamp, ids, transitions in TICKS:
        subjects = [SimpleNamespace(id=i) for i in ids]
        if batched:
            sink.collect_many(stamp, subjects, transitions)
        else:
            for subject, transition in zip(subjects, transitions, strict=True):
                sink.collect(stamp, subject, transition)
    sink.close()
    return path.read_bytes(), np.load(f"{path}.idx")


@pytest.mark.parametrize("make", [JsonLinesSink, OneByOne])
def test_a_batch_writes_the_lines_and_index_of_one_by_one(tmp_path: Path, make: Any) -> None:
    """collect_many and collect give the same part bytes and the same (timestamp, lines)
    index, whether the inner sink batches or not."""
    one = write(tmp_path / "one.part", make(str(tmp_path / "one.part")), batched=False)
    many = write(tmp_path / "many.part", make(str(tmp_path / "many.part")), batched=True)
    assert one[0] == many[0] and one[0].count(b"\n") == 6
    assert one[1].tolist() == many[1].tolist()
    assert one[1][:, :2].tolist() == [[0, 3], [60_000, 1], [120_000, 2]]
    lines = one[0].splitlines(keepends=True)
    assert one[1][:, 2].tolist() == [len(b"".join(lines[a:b])) for a, b in ((0, 3), (3, 4), (4, 6))]


@pytest.mark.parametrize("chunk", [3, 1 << 24])
def test_block_sizes_measure_whole_lines_after_a_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Blocks of 2, 0 and 1 lines after a header line measure their bytes, also when the
    file is read in chunks that cut lines; a file that does not hold the lines gives None."""
    monkeypatch.setattr(parts, "_CHUNK", chunk)
    path = tmp_path / "p.csv"
    path.write_bytes(b"h1,h2\naa\nbbbb\nc\n")
    sizes = parts.block_sizes(str(path), np.array([2, 0, 1]), header=True)
    assert sizes is not None and sizes.tolist() == [8, 0, 2]
    assert parts.block_sizes(str(path), np.array([2, 2]), header=True) is None
    path.write_bytes(b"h1,h2\naa\nbbbb\nc")  # a cut last line
    assert parts.block_sizes(str(path), np.array([2, 1]), header=True) is None
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    assert parts.block_sizes(str(empty), np.array([], dtype=np.int64), header=False).size == 0


def test_a_part_that_differs_from_its_sizes_fails_the_merge(tmp_path: Path) -> None:
    """A part changed after its index was written (a line longer): the merge raises
    SinkError naming the part and leaves no merged file."""
    path = tmp_path / "one.part"
    write(path, JsonLinesSink(str(path)), batched=False)
    path.write_bytes(path.read_bytes().replace(b'"go"', b'"gone"', 1))
    part = PartFile(str(tmp_path / "out.jsonl"), "jsonl:out", str(path), False)
    with pytest.raises(SinkError, match="does not hold the block its index says"):
        parts.merge_parts(str(tmp_path / "out.jsonl"), [part])
    assert not (tmp_path / "out.jsonl").exists()
