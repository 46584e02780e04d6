"""Sharded runs into compressed files: the merged ``.gz``/``.zst`` file is compressed as a
one-process sink compresses it (complete gzip members / zstd frames of whole lines) and
decompresses to the very bytes of the same run's uncompressed merge.

Before, the parts were merged by copying their plain lines: ``out.jsonl.gz`` held plain JSON
Lines, which gzip, zstd and ``dogesim report`` all refused.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from dogesim import LiveOptions, Model
from dogesim.cli import main
from dogesim.errors import SinkConfigError
from dogesim.examples.banking import build_banking_model, event_record, event_row
from dogesim.model import Transition
from dogesim.report.tables import read_event_log
from dogesim.shards import Shard, run_sharded
from dogesim.sinks import file_base
from dogesim.sinks.compression import open_text
from dogesim.sinks.files import JsonLinesSink
from tests.unit.shard_models import banking_run, banking_to_jsonl
from tests.unit.test_shards_control import StopAtFirstReport

ROOT = Path(__file__).resolve().parents[2]
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
STEP = Transition("step", "a", "b", 50)


def _decompress(path: Path) -> bytes:
    """The bytes of a .gz or .zst file, decompressed by the format's own library."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        assert data[:2] == GZIP_MAGIC, data[:40]
        return gzip.decompress(data)
    zstandard = pytest.importorskip("zstandard")
    assert data[:4] == ZSTD_MAGIC, data[:40]
    out = b""
    while data:  # frame by frame (a file of several frames is one stream)
        decoder = zstandard.ZstdDecompressor().decompressobj()
        out += decoder.decompress(data)
        data = decoder.unused_data
    return out


def _members(path: Path) -> list[bytes]:
    """Each gzip member of `path`, decompressed."""
    data, members = path.read_bytes(), []
    while data:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        members.append(decoder.decompress(data))
        assert decoder.eof
        data = decoder.unused_data
    return members


def banking_to_csv(path: str, shard: Shard) -> Model:
    """The banking model into this shard's CSV part of `path`."""
    return build_banking_model([shard.csv(path, event_row)])


def _run(build: Any, path: Path, **changes: Any) -> Any:
    return banking_run(functools.partial(build, str(path)), 4, **changes)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".csv.gz", ".csv.zst"])
def test_a_sharded_run_into_a_compressed_file_compresses_the_merge(
    tmp_path: Path, suffix: str
) -> None:
    """4 shards in 2 workers into ``.gz``/``.zst``: the merged file is compressed, decompresses
    to the uncompressed sharded run's file line for line, and its ledger counts those lines."""
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    build = banking_to_csv if suffix.startswith(".csv") else banking_to_jsonl
    plain = tmp_path / f"plain{suffix.rsplit('.', 1)[0]}"
    run_sharded(_run(build, plain), workers=2)
    packed = tmp_path / f"packed{suffix}"
    result = run_sharded(_run(build, packed), workers=2)
    expected = plain.read_bytes()
    assert expected.count(b"\n") > 1000
    assert _decompress(packed).splitlines() == expected.splitlines()
    assert _decompress(packed) == expected
    with open_text(packed) as stream:
        assert stream.read().encode() == expected
    (ledger,) = result.ledgers
    events = expected.count(b"\n") - (1 if suffix.startswith(".csv") else 0)
    assert ledger.collected == ledger.acknowledged == events == result.events
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([plain.name, packed.name])


def test_the_merge_writes_one_gzip_member_per_buffer_of_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a one-process sink does, the merge compresses a member per `BUFFER_BYTES` of lines
    (lowered here): every member holds whole lines, so a cut file loses whole lines only."""
    plain = tmp_path / "plain.jsonl"
    run_sharded(_run(banking_to_jsonl, plain))
    monkeypatch.setattr(file_base, "BUFFER_BYTES", 20_000)
    packed = tmp_path / "packed.jsonl.gz"
    run_sharded(_run(banking_to_jsonl, packed))
    members = _members(packed)
    assert len(members) > 5
    assert all(member.endswith(b"\n") and len(member) >= 20_000 for member in members[:-1])
    assert b"".join(members) == plain.read_bytes()
    one = tmp_path / "one.jsonl.gz"  # a one-process sink writing the merged lines
    sink = JsonLinesSink(one, lambda timestamp, record, transition: record)
    for line in plain.read_text().splitlines():
        sink.collect(0, json.loads(line), STEP)
    sink.close()
    assert one.read_bytes() == packed.read_bytes()


def test_dogesim_report_reads_the_merged_gzip_file_of_a_sharded_cli_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dogesim run --shards 2 --workers 2 --out x.jsonl.gz`` writes gzip, which ``dogesim
    report`` reads to the same events as the plain run's file."""
    model = str(ROOT / "models" / "banking.yaml")
    common = ["run", model, "--subjects", "2000", "--ticks", "200", "--shards", "2", "-q"]
    packed, plain = tmp_path / "x.jsonl.gz", tmp_path / "x.jsonl"
    assert main([*common, "--workers", "2", "--out", str(packed)]) == 0, capsys.readouterr()
    assert main([*common, "--out", str(plain)]) == 0, capsys.readouterr()
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    frames = [read_event_log(path, subject="subject.user_id") for path in (packed, plain)]
    assert len(frames[0]) > 1000 and frames[0].equals(frames[1])
    report = ["report", str(packed), "-m", model, "-o", str(tmp_path / "r.png")]
    assert main([*report, "--no-simulation", "--subjects", "2000", "--ticks", "200"]) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stopped_sharded_run_into_gzip_resumes_to_the_uninterrupted_file(
    tmp_path: Path, workers: int
) -> None:
    """A checkpointed run into ``.jsonl.gz`` stopped at its first report keeps plain parts;
    the resume merges them into the gzip file the uninterrupted run writes."""
    reference = tmp_path / "ref.jsonl.gz"
    run_sharded(_run(banking_to_jsonl, reference, timestamp_start=0))
    out = tmp_path / "c.jsonl.gz"
    run = _run(banking_to_jsonl, out, checkpoint=str(tmp_path / "run.ckpt"), timestamp_start=0)
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    first = run_sharded(paced, workers=workers, progress=stopper, stop=stopper.stop)
    assert first.stopped and first.parts_kept and not out.exists()
    again = run_sharded(dataclasses.replace(run, resume=True), workers=workers)
    assert out.read_bytes() == reference.read_bytes()
    (ledger,) = again.ledgers
    assert ledger.acknowledged == gzip.decompress(out.read_bytes()).count(b"\n") > 1000


def test_zstd_without_zstandard_fails_the_sharded_run_before_any_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are plain, so only the merge would need zstandard: a shard refuses the merged
    ``.zst`` target when it is built, naming the extra, before the run writes anything."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    out = tmp_path / "z.jsonl.zst"
    with pytest.raises(SinkConfigError, match=r"pip install 'dogesim\[zstd\]'") as caught:
        run_sharded(_run(banking_to_jsonl, out))
    assert str(out) in str(caught.value)
    assert sorted(tmp_path.iterdir()) == []


def banking_to_parquet(path: str, settings: dict[str, Any], shard: Shard) -> Model:
    """The banking model into this shard's Parquet part of `path`, with sink `settings`."""
    return build_banking_model([shard.parquet(path, event_record, **settings)])


@pytest.mark.parametrize(
    ("settings", "codec"),
    [
        ({"compression": "none"}, "UNCOMPRESSED"),
        ({"compression": "gzip", "row_group_size": 1000}, "GZIP"),
        ({}, "ZSTD"),
    ],
)
def test_a_merged_parquet_file_has_the_sinks_codec_and_row_groups(
    tmp_path: Path, settings: dict[str, Any], codec: str
) -> None:
    """The merged Parquet file is laid out as the sink lays out its file: its codec (also
    ``none``, whose merge failed before) and `row_group_size` rows per row group (before:
    the size of the first part's first group, a shard's whole output in a small run)."""
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "p.parquet"
    build = functools.partial(banking_to_parquet, str(out), settings)
    result = run_sharded(banking_run(build, 4), workers=2)
    meta = pq.ParquetFile(out).metadata
    size = settings.get("row_group_size", 100_000)
    rows = result.events
    assert meta.num_rows == rows > 2 * 1000
    expected = [size] * (rows // size) + ([rows % size] if rows % size else [])
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == expected
    assert {meta.row_group(0).column(i).compression for i in range(3)} == {codec}
    plain = tmp_path / "p.jsonl"
    run_sharded(_run(banking_to_jsonl, plain))
    expected_rows = [json.loads(line) for line in plain.read_text().splitlines()]
    assert pq.read_table(out).to_pylist() == expected_rows


def _never(path: str, shard: Shard) -> Model:
    """A model whose only transition never fires, into this shard's part of `path`."""
    model = Model(["a", "b"], "a")
    model.add_transition("step", "a", "b", 0, event_sinks=[shard.jsonl(path)])
    return model


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_a_sharded_run_with_no_event_merges_a_valid_empty_file(tmp_path: Path, suffix: str) -> None:
    """No shard wrote a line: the merged file is one empty member or frame, as a one-process
    sink leaves it (it was 0 bytes, which every reader refuses as cut short)."""
    out = tmp_path / ("none" + suffix)
    result = run_sharded(_run(_never, out, subjects=40, ticks=5, subject_factory=None))
    assert result.events == 0
    assert out.stat().st_size > 0
    assert _decompress(out) == b""
    alone = tmp_path / ("alone" + suffix)
    JsonLinesSink(alone).close()
    assert out.read_bytes() == alone.read_bytes()
