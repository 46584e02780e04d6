"""Sharded runs into files: Parquet parts merged into the one file asked for (rows in the
order of the line merge: timestamp, shard, order in the shard), and plain file sinks that
several shards would write over refused.

Before, a model file's parquet sink was built once per shard at the same path, and each
shard's file replaced the one before: the run reported every event acknowledged while the
file held one shard's rows. A Python builder's plain file sink did the same.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pytest

pq = pytest.importorskip("pyarrow.parquet")

from dogesim import LiveOptions, Model  # noqa: E402
from dogesim.errors import SinkError  # noqa: E402
from dogesim.examples.banking import build_banking_model, event_record  # noqa: E402
from dogesim.shards import Shard, ShardedRun, run_sharded  # noqa: E402
from tests.unit.shard_models import banking_run  # noqa: E402
from tests.unit.test_shards_control import StopAtFirstReport  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _model_file(tmp_path: Path, kind: str) -> Path:
    """models/banking.yaml with its sink of type `kind` writing into `tmp_path`."""
    text = (ROOT / "models" / "banking.yaml").read_text()
    text = text.replace("type: jsonl", f"type: {kind}")
    text = text.replace("${DOGESIM_OUT_DIR:-out}/banking.jsonl", str(tmp_path / f"b.{kind}"))
    path = tmp_path / f"banking-{kind}.yaml"
    path.write_text(text)
    return path


def _file_run(path: Path, **changes: Any) -> ShardedRun:
    return ShardedRun(str(path), subjects=3000, ticks=300, seed=5, shards=2, **changes)


def _rows(path: Path) -> list[dict[str, Any]]:
    return list(pq.read_table(path).to_pylist())


def test_a_model_files_parquet_sink_holds_every_shards_rows(tmp_path: Path) -> None:
    """The merged Parquet file holds every event of both shards, the same records in the
    same order as the merged JSON Lines of the same run; its ledger counts those rows."""
    jsonl = run_sharded(_file_run(_model_file(tmp_path, "jsonl")))
    expected = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    result = run_sharded(_file_run(_model_file(tmp_path, "parquet")))
    rows = _rows(tmp_path / "b.parquet")
    assert len(rows) == len(expected) == jsonl.events > 1000
    assert rows == expected
    (ledger,) = result.ledgers
    assert ledger.collected == ledger.acknowledged == len(rows)
    assert sorted(p.name for p in tmp_path.iterdir() if ".part-" in p.name) == []


def banking_to_parquet(path: str, shard: Shard) -> Model:
    """The banking model into this shard's Parquet part of `path`."""
    return build_banking_model([shard.parquet(path, event_record)])


@pytest.mark.parametrize("workers", [1, 2])
def test_shard_parquet_merges_the_same_bytes_for_any_number_of_workers(
    tmp_path: Path, workers: int
) -> None:
    """`Shard.parquet` parts of a 4-shard run merge into the same bytes whether the shards
    ran in this process or in 2 processes."""
    reference = tmp_path / "ref.parquet"
    run_sharded(banking_run(functools.partial(banking_to_parquet, str(reference)), 4))
    out = tmp_path / "w.parquet"
    result = run_sharded(
        banking_run(functools.partial(banking_to_parquet, str(out)), 4), workers=workers
    )
    assert out.read_bytes() == reference.read_bytes()
    assert pq.read_table(out).num_rows == result.events


def test_cli_out_parquet_with_shards_writes_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dogesim run M --out x.parquet --shards 2`` writes the events of both shards, the
    records of ``--out x.jsonl`` of the same run, in the same order."""
    from dogesim.cli import main

    model = str(ROOT / "models" / "banking.yaml")
    common = ["--subjects", "2000", "--ticks", "200", "--shards", "2"]
    assert main(["run", model, "--out", str(tmp_path / "e.jsonl"), *common]) == 0
    assert main(["run", model, "--out", str(tmp_path / "e.parquet"), *common]) == 0
    capsys.readouterr()
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    rows = _rows(tmp_path / "e.parquet")
    assert len(rows) == len(lines) > 500
    assert [r["timestamp"] for r in rows] == [json.loads(line)["timestamp"] for line in lines]


def test_a_stopped_sharded_parquet_run_resumes_to_the_uninterrupted_file(tmp_path: Path) -> None:
    """A checkpointed 2-shard run into Parquet parts, stopped at its first report and
    resumed, merges the uninterrupted run's rows."""
    path = _model_file(tmp_path, "parquet")
    run_sharded(_file_run(path, timestamp_start=0))
    expected = _rows(tmp_path / "b.parquet")
    (tmp_path / "b.parquet").unlink()
    run = _file_run(path, timestamp_start=0, checkpoint=str(tmp_path / "ck"), checkpoint_every=40)
    stopper = StopAtFirstReport()
    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0))
    assert run_sharded(paced, progress=stopper, stop=stopper.stop).stopped
    assert not (tmp_path / "b.parquet").exists()
    run_sharded(dataclasses.replace(run, resume=True))
    assert _rows(tmp_path / "b.parquet") == expected


def odd_records(path: str, shard: Shard) -> Model:
    """Banking into Parquet parts whose column ``v`` is an integer in shard 0 and a string
    in shard 1 (each shard infers its own schema)."""

    def record(ts: int, subject: Any, transition: Any) -> dict[str, Any]:
        return {"ts": ts, "v": 1 if shard.index == 0 else "one"}

    return build_banking_model([shard.parquet(path, record)])


def test_parts_with_different_schemas_fail_the_merge_naming_them(tmp_path: Path) -> None:
    """Shards that inferred different schemas: the run fails naming the parts' columns and
    saying to declare the schema; no merged file is written."""
    out = tmp_path / "odd.parquet"
    with pytest.raises(
        SinkError,
        match=r"\(ts: int64, v: string\), an earlier part \(ts: int64, v: int64\): the "
        "shards inferred different schemas; declare",
    ):
        run_sharded(banking_run(functools.partial(odd_records, str(out)), 2))
    assert not out.exists()


def test_a_file_sink_type_shards_cannot_merge_is_refused(tmp_path: Path) -> None:
    """A third party's sink type that writes a `path` is refused for shards > 1 before any
    event, naming the sink, its file and the types that merge (each shard would write the
    one file over the others'); with shards=1 it runs."""
    from dogesim.errors import ModelError
    from dogesim.sinks import registry
    from dogesim.sinks.registry import Setting, SinkType

    kind = SinkType(
        "one_file_only",
        "dogesim.sinks.builders:build_jsonl",
        settings={"path": Setting("path", required=True), "mapper": Setting("callable")},
    )
    registry.register(kind, replace=True)
    path = _model_file(tmp_path, "one_file_only")
    with pytest.raises(ModelError, match=r"sinks.events \(type one_file_only\) writes the file"):
        run_sharded(_file_run(path))
    assert not (tmp_path / "b.one_file_only").exists()
    result = run_sharded(dataclasses.replace(_file_run(path), shards=1))
    assert result.events > 0


def banking_to_one_plain_file(path: str, shard: Shard) -> Model:
    """Banking into a plain JsonLinesSink at `path` in every shard (not a shard's part)."""
    from dogesim.sinks.files import JsonLinesSink

    return build_banking_model([JsonLinesSink(path, event_record)])


def banking_to_a_file_per_shard(path: str, shard: Shard) -> Model:
    """Banking into a plain JsonLinesSink of this shard's own path."""
    from dogesim.sinks.files import JsonLinesSink

    return build_banking_model([JsonLinesSink(f"{path}.{shard.index}", event_record)])


@pytest.mark.parametrize("workers", [1, 2])
def test_shards_writing_one_plain_file_fail_the_run_saying_so(tmp_path: Path, workers: int) -> None:
    """Every shard's builder makes a plain file sink of one path: the run fails naming the
    file and saying to use shard.jsonl(path) (before, each shard wrote over the others'
    events and the result counted them all delivered)."""
    out = tmp_path / "one.jsonl"
    run = banking_run(functools.partial(banking_to_one_plain_file, str(out)), 2)
    with pytest.raises(Exception, match=r"is written by a sink of another shard too.*shard\.jsonl"):
        run_sharded(run, workers=workers)


def test_shards_writing_a_file_each_run(tmp_path: Path) -> None:
    """Plain file sinks with a path per shard are fine: both files hold their events."""
    out = tmp_path / "each.jsonl"
    result = run_sharded(banking_run(functools.partial(banking_to_a_file_per_shard, str(out)), 2))
    lines = sum(len(Path(f"{out}.{k}").read_text().splitlines()) for k in (0, 1))
    assert lines == result.events > 0
