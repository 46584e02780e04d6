"""``faults:`` on a model file's sink: counted per kind, within the binomial bounds, reconciled."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dogesim.errors import ModelError
from dogesim.faults import FaultLedger, FaultySink
from dogesim.modelfile import load_model_text

SIGMAS = 5.0  # a false alarm has probability < 1e-6 per bound

MODEL = """\
name: faulty
seed: 5
states: [a, b]
initial_state: a
tick: 1s
ticks: 400
subjects: {{count: 50}}
sinks:
  events:
    type: jsonl
    path: {path}
    mapper: {{id: {{subject: id}}, at: {{time: epoch_ms}}, n: {{seq: event}}}}
    faults: {faults}
default_sinks: [events]
transitions:
  - {{trigger: go, from: a, to: b, probability: 40}}
  - {{trigger: back, from: b, to: a, probability: 40}}
"""


def _within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1


def test_faults_are_injected_at_their_rates_and_the_ledger_reconciles(tmp_path: Path) -> None:
    """Duplicates, drops and late events follow their rates; the file holds exactly
    collected - drops + duplicates lines, duplicates identical to their originals."""
    path = tmp_path / "e.jsonl"
    faults = "{duplicate: 2%, drop: 0.01, late: 5%, delay: {uniform: [0, 3000]}}"
    result = load_model_text(MODEL.format(path=path, faults=faults)).run()
    (book,) = result.ledgers
    assert isinstance(book, FaultLedger)
    n = book.collected
    assert n == result.events > 5000
    assert _within(book.injected_duplicates, n, 0.02)
    assert _within(book.injected_drops, n, 0.01)
    assert _within(book.injected_late, n - book.injected_drops, 0.05)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == n - book.injected_drops + book.injected_duplicates
    numbers = [json.loads(line)["n"] for line in lines]
    assert len(set(numbers)) == n - book.injected_drops  # a duplicate repeats its record
    stamps = [json.loads(line)["at"] for line in lines]
    assert stamps != sorted(stamps)  # late events arrive out of order


def test_the_same_seed_injects_the_same_faults(tmp_path: Path) -> None:
    """Two runs of the file write the same bytes, faults included."""
    faults = "{duplicate: 0.05, late: 0.05, malformed: 0.02}"
    for name in ("one", "two"):
        load_model_text(MODEL.format(path=tmp_path / f"{name}.jsonl", faults=faults)).run()
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_a_built_faulty_sink_wraps_the_sink_of_the_file(tmp_path: Path) -> None:
    """The file's sink is a FaultySink around the jsonl sink, named after the sink."""
    spec = load_model_text(MODEL.format(path=tmp_path / "e.jsonl", faults="{drop: 0.5}"))
    sink = spec.sinks["events"].build()
    try:
        assert isinstance(sink, FaultySink)
        assert sink.ledger.sink == "faults:events"
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ("{duplicate: 2}", "faults.duplicate: rate 2 must be in [0, 1]"),
        ("{duplicat: 0.1}", "unknown key 'duplicat'"),
        ("{late: 0.1, delay: {gamma: 3}}", "delay law 'gamma' is unknown"),
        ("{delay: 500}", "a delay needs a late rate"),
        ("{drop: abc}", "'abc' is not a rate"),
        ("{malformed: 0.1, malformed_kinds: [typo]}", "malformed_kinds"),
    ],
)
def test_bad_faults_name_the_file_line_and_key(tmp_path: Path, faults: str, message: str) -> None:
    """Each mistake in ``faults:`` is a ModelError at its line, saying what is right."""
    text = MODEL.format(path=tmp_path / "e.jsonl", faults=faults)
    with pytest.raises(ModelError) as caught:
        load_model_text(text, source="f.yaml")
    assert str(caught.value).startswith("f.yaml:13: sinks.events.faults"), str(caught.value)
    assert message in str(caught.value)


def test_faults_behind_a_pacing_cap_follow_the_run_seed(tmp_path: Path) -> None:
    """With ``max_rate`` too, the FaultySink inside the pacing wrapper is reseeded with the
    run's seed when the run is built."""
    text = MODEL.format(path=tmp_path / "e.jsonl", faults="{duplicate: 0.2}").replace(
        "    faults:", "    max_rate: 1000000\n    faults:"
    )
    simulation = load_model_text(text).simulation(seed=5)
    try:
        (outer,) = simulation.model.sinks()
        assert not isinstance(outer, FaultySink)  # the pacing wrapper is outside
        assert isinstance(outer.inner, FaultySink) and outer.inner.seed == 5
    finally:
        outer.close()
