"""`dogesim run --shards S [--workers N | --dask ADDRESS]` and the model file's `shards:`:
the merged output is a function of the model, the seed and the shards, never of who ran it;
what a sharded run cannot do exits 2 with one line; `import dogesim` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dogesim.cli import main

ROOT = Path(__file__).resolve().parents[2]

MODEL = """\
name: shop
seed: 11
states: [browsing, cart, paid]
initial_state: browsing
tick: 1m
ticks: 120
start: 2026-01-01T00:00:00Z
subjects:
  count: 40
  attributes:
    tier: {{choice: {{free: 3, gold: 1}}}}
{shards}sinks:
  log: {{type: jsonl, path: '{log}'}}
default_sinks: [log]
transitions:
  - {{trigger: add, from: browsing, to: cart, probability: 8}}
  - {{trigger: drop, from: cart, to: browsing, probability: 20}}
  - {{trigger: pay, from: cart, to: paid, probability: 10}}
"""

QUEUE = """\
name: queue
seed: 3
states: [waiting, talking, done]
initial_state: waiting
tick: 1s
ticks: 20
subjects: {count: 4}
resources: {agents: 2}
transitions:
  - {trigger: answer, from: waiting, to: talking, probability: 100, resource: agents}
  - {trigger: hang_up, from: talking, to: done, probability: 100}
"""


def shop(tmp_path: Path, log: Path, *, shards: int | None = None) -> Path:
    path = tmp_path / "shop.yaml"
    key = f"shards: {shards}\n" if shards is not None else ""
    path.write_text(MODEL.format(shards=key, log=log), encoding="utf-8")
    return path


def test_out_is_the_same_bytes_for_one_and_two_workers(tmp_path: Path) -> None:
    """--shards 4 --out: --workers 1 and --workers 2 write byte-identical, non-empty files."""
    model = shop(tmp_path, tmp_path / "unused.jsonl")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["run", str(model), "--shards", "4", "--workers", "1", "--out", str(one)]) == 0
    assert (
        main(["run", str(model), "--shards", "4", "--workers", "2", "-q", "--out", str(two)]) == 0
    )
    assert one.read_bytes() == two.read_bytes()
    lines = one.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 40
    assert not (tmp_path / "unused.jsonl").exists()


def test_shards_key_of_the_file_merges_its_sinks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shards: 3` in the file: its jsonl sink is merged to the same bytes for 1 and 2
    workers, and the summary says 3 shards."""
    log = tmp_path / "log.jsonl"
    model = shop(tmp_path, log, shards=3)
    assert main(["run", str(model), "--workers", "1"]) == 0
    assert "3 shards on 1 worker(s)" in capsys.readouterr().out
    first = log.read_bytes()
    log.unlink()
    assert main(["run", str(model), "--workers", "2", "-q"]) == 0
    assert log.read_bytes() == first and first.count(b"\n") > 40


def test_shards_change_the_stream_and_one_shard_is_one_process(tmp_path: Path) -> None:
    """The stream is a function of the shards: --shards 1 differs from --shards 4 (same
    seed); the line count is the same law, not the same draw."""
    model = shop(tmp_path, tmp_path / "log.jsonl")
    one, four = tmp_path / "s1.jsonl", tmp_path / "s4.jsonl"
    assert main(["run", str(model), "--shards", "1", "-q", "--out", str(one)]) == 0
    assert main(["run", str(model), "--shards", "4", "-q", "--out", str(four)]) == 0
    assert one.read_bytes() != four.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "2"], "share the resources ['agents'], so they cannot be cut into 2"),
        (["--workers", "2"], "--workers runs shards; add --shards S"),
        (["--dask", "tcp://127.0.0.1:1"], "--dask runs shards; add --shards S"),
        (["--shards", "2", "--live", "--until-stopped"], "--until-stopped cannot be used with"),
        (
            ["--shards", "2", "--resume", "a.ckpt", "--checkpoint", "b.ckpt"],
            "resumes and checkpoints at one path",
        ),
        (["--shards", "0"], "0 must be at least 1"),
        (["--shards", "1", "--no-callbacks"], "--no-callbacks without --out cannot be used"),
    ],
)
def test_what_a_sharded_run_cannot_do_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Resources with --shards 2, workers without shards, and other combinations that mean
    nothing exit 2 with one line saying why."""
    model = tmp_path / "queue.yaml"
    model.write_text(QUEUE, encoding="utf-8")
    assert main(["run", str(model), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_more_shards_than_subjects_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--shards 41 for 40 subjects exits 2 saying at most 40 shards fit."""
    model = shop(tmp_path, tmp_path / "log.jsonl")
    assert main(["run", str(model), "--shards", "41", "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "the run has 40 subjects" in err and "at most shards=40" in err, err
    assert len(err.strip().splitlines()) == 1


def test_model_file_shards_must_be_a_whole_number(tmp_path: Path) -> None:
    """`shards: 0` in a model file is refused at load, naming the key."""
    model = shop(tmp_path, tmp_path / "log.jsonl", shards=0)
    from dogesim.errors import ModelError
    from dogesim.modelfile import load_model_file

    with pytest.raises(ModelError, match="shards"):
        load_model_file(model)


def test_import_stays_light_and_exports_the_sharded_run() -> None:
    """`import dogesim` loads no Kafka, SQL, plotting or Dask module; `dogesim.ShardedRun` and
    `dogesim.run_sharded` come from `dogesim.shards` on first use, and `__all__` is sorted."""
    code = (
        "import sys, dogesim\n"
        "heavy = ('confluent_kafka', 'sqlalchemy', 'matplotlib', 'dask', 'distributed')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "assert 'dogesim.shards' not in sys.modules\n"
        "assert dogesim.__all__ == sorted(dogesim.__all__)\n"
        "assert {'ShardedRun', 'run_sharded'} <= set(dogesim.__all__)\n"
        "import dogesim.shards as s\n"
        "assert dogesim.ShardedRun is s.ShardedRun and dogesim.run_sharded is s.run_sharded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
