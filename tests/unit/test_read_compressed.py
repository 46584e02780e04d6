"""Event logs read back whatever their compression, and ISO times read as milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from dogesim.examples.banking import banking_simulation  # noqa: E402
from dogesim.report.tables import read_event_log  # noqa: E402
from dogesim.sinks.files import CsvSink, JsonLinesSink  # noqa: E402


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".csv.gz"])
def test_read_event_log_reads_compressed_logs(tmp_path: Path, suffix: str) -> None:
    """A compressed log reads to the same frame as the plain log of the same seeded run."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    frames = []
    for name in ("plain" + suffix.rsplit(".", 1)[0], "packed" + suffix):
        path = tmp_path / name
        sink = CsvSink(path) if ".csv" in name else JsonLinesSink(path)
        banking_simulation([sink], subjects=100, ticks=300, seed=4).run()
        frames.append(read_event_log(path, subject="subject.user_id"))
    assert len(frames[0]) > 20
    assert frames[1].equals(frames[0])


def test_iso_timestamps_read_as_epoch_milliseconds() -> None:
    """ISO-8601 times (mixed precision) give the same milliseconds as the epoch column."""
    epoch = [1_772_352_000_000, 1_772_352_000_250, 1_772_352_060_000]
    iso = ["2026-03-01T08:00:00Z", "2026-03-01T08:00:00.250Z", "2026-03-01T08:01:00+00:00"]
    base = {"subject": [1, 1, 2], "from_state": ["a", "b", "a"], "to_state": ["b", "a", "b"]}
    by_epoch = read_event_log(pd.DataFrame({**base, "timestamp": epoch}))
    by_iso = read_event_log(pd.DataFrame({**base, "timestamp": iso}))
    assert by_iso["timestamp"].tolist() == by_epoch["timestamp"].tolist() == epoch
