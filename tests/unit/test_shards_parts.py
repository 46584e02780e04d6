"""Part sinks: a tick's batch (`collect_many`) writes the bytes and the index that the same
events one by one (`collect`) write, through a JSONL sink that batches and one that does not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim.model import Transition
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
    assert one[1].tolist() == many[1].tolist() == [[0, 3], [60_000, 1], [120_000, 2]]
