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


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".csv.gz", ".csv.zst"])
def test_a_compressed_sink_that_got_no_event_writes_a_valid_empty_file(
    tmp_path: Path, suffix: str
) -> None:
    """A compressed file sink closed without an event leaves one empty gzip member or zstd
    frame, which every reader takes as a whole empty file (it left 0 bytes, which gzip -t,
    zstd -t and `dogesim report` refuse as cut short); reading it as an event log says it
    holds no events."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    import gzip

    from dogesim.sinks.compression import open_text

    path = tmp_path / ("empty" + suffix)
    sink = CsvSink(path) if ".csv" in suffix else JsonLinesSink(path)
    sink.close()
    data = path.read_bytes()
    assert data, "a valid compressed file is never 0 bytes"
    if suffix.endswith(".gz"):
        assert gzip.decompress(data) == b""
    else:
        import zstandard

        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == b""
    with open_text(path) as handle:
        assert handle.read() == ""
    with pytest.raises(Exception, match="holds no events") as refused:
        read_event_log(path)  # what report and fit read: no events, but not cut short
    assert "cut short" not in str(refused.value)
