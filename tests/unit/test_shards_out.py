"""A sharded run of a model file makes the same subjects whether its events go to the file's
own sinks or to `--out`: the stream is a function of (model, seed, shards) only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogesim.cli import main

MODEL = """\
name: drawn
seed: 9
states: [a, b]
initial_state: a
tick: 1m
ticks: 120
subjects:
  count: 60
  attributes:
    plan: {choice: [free, pro, team]}
    country: {choice: [de, fr, it, es, pl]}
    score: {uniform: [0, 100]}
sinks:
  events: {type: jsonl, path: own.jsonl}
default_sinks: [events]
transitions:
  - {trigger: go, from: a, to: b, probability: 10}
  - {trigger: back, from: b, to: a, probability: 20}
"""


def _subjects(path: Path) -> dict[int, tuple[object, ...]]:
    """Each subject id's attributes, as the lines of `path` show them (one value per id)."""
    seen: dict[int, tuple[object, ...]] = {}
    for line in path.read_text().splitlines():
        subject = json.loads(line)["subject"]
        attributes = (subject["plan"], subject["country"], subject["score"])
        assert seen.setdefault(subject["id"], attributes) == attributes
    return seen


@pytest.mark.parametrize("workers", ["1", "2"])
def test_out_and_the_files_own_sink_see_the_same_subjects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """--shards 2 into the file's sink and into --out: the same ids with the same drawn
    attributes and the same event times."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(MODEL)
    assert main(["run", "m.yaml", "--shards", "2", "--workers", workers, "-q"]) == 0
    assert (
        main(["run", "m.yaml", "--shards", "2", "--workers", workers, "-q", "--out", "o.jsonl"])
        == 0
    )
    own, out = _subjects(tmp_path / "own.jsonl"), _subjects(tmp_path / "o.jsonl")
    assert len(own) > 30 and own == out
    times = [
        json.loads(line)["timestamp"] for line in (tmp_path / "own.jsonl").read_text().splitlines()
    ]
    again = [
        json.loads(line)["timestamp"] for line in (tmp_path / "o.jsonl").read_text().splitlines()
    ]
    assert times == again


def test_a_sharded_result_carries_the_initial_mix_of_all_shards() -> None:
    """The merged result's initial and arrival counts are the shards' sums: its first
    occupancy row (and a report's start) equals the mix the shards drew."""
    from dogesim import Model
    from dogesim.shards import ShardedRun, run_sharded

    def build(shard: object) -> Model:
        model = Model(["a", "b", "c"], {"a": 50, "b": 30, "c": 20})
        model.add_transition("go", "a", "b", 10)
        return model

    result = run_sharded(
        ShardedRun(build, subjects=900, ticks=5, tick_ms=1000, seed=2, shards=3, arrivals=4.0)
    )
    assert int(result.initial_counts.sum()) == 900
    assert int(result.arrival_counts.sum()) == result.arrivals > 0
    assert result.started().tolist() == result.initial_counts.tolist()
    assert min(result.initial_counts) > 100  # every state drew its share
