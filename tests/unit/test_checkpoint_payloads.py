"""Checkpoints of model files whose payloads keep state across events (templates with
sequences or Faker, faults) are refused before the run starts, naming what keeps state:
their counters and streams would restart on a resume and the output would differ from the
uninterrupted run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogesim.cli import main

BASE = """\
name: stateful
seed: 2
states: [a, b]
initial_state: a
tick: 1m
ticks: 50
subjects: {{count: 20}}
sinks:
  events:
    type: jsonl
    path: events.jsonl
{extra}
default_sinks: [events]
transitions:
  - {{trigger: go, from: a, to: b, probability: 20}}
  - {{trigger: back, from: b, to: a, probability: 20}}
"""

CASES = {
    "template": "    mapper: {n: {seq: event, start: 1}, who: {subject: id}}",
    "faults": "    faults: {duplicate: 5%}",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpointing_a_stateful_payload_is_refused_before_the_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    """--checkpoint with a templated or faulty sink: exit 2 naming the sink, nothing run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(BASE.format(extra=CASES[case]))
    assert main(["run", "m.yaml", "--checkpoint", "c.ckpt"]) == 2
    err = capsys.readouterr().err
    assert "sinks.events" in err and "checkpoint" in err, err
    assert not (tmp_path / "events.jsonl").exists()
    assert main(["run", "m.yaml"]) == 0  # without a checkpoint it runs


def test_a_templated_sink_named_by_sink_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--sink events` picks the file's templated sink: --checkpoint is refused as above."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(BASE.format(extra=CASES["template"]))
    assert main(["run", "m.yaml", "--sink", "events", "--checkpoint", "c.ckpt"]) == 2
    assert "sinks.events" in capsys.readouterr().err
