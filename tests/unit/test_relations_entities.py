"""Several entity types in one model file: each its own run; references always resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogesim.errors import ModelError
from dogesim.modelfile import load_model_text
from dogesim.modelfile.entities import EntitiesSpec, entity_seed

MODEL = """\
name: duo
seed: 8
tick: 1m
ticks: 300
start: 2024-01-01T00:00:00Z
sinks:
  people:
    type: jsonl
    path: {out}/people.jsonl
    mapper: {{id: {{subject: id}}, event: {{transition: trigger}}, at: {{time: epoch_ms}}}}
  orders:
    type: jsonl
    path: {out}/orders.jsonl
    mapper:
      id: {{subject: id}}
      person: {{subject: person}}
      event: {{transition: trigger}}
      at: {{time: epoch_ms}}
entities:
  people:
    subjects: {{count: 5, attributes: {{id: {{sequence: 100}}}}}}
    arrivals: 6 per hour
    states: [new, here, gone]
    initial_state: new
    default_sinks: [people]
    transitions:
      - {{trigger: join, from: new, to: here, probability: 100}}
      - {{trigger: leave, from: here, to: gone, probability: 2}}
  orders:
    subjects:
      count: 0
      attributes:
        id: {{sequence: 1}}
        person: {{ref: people, law: {law}}}
    arrivals: 20 per hour
    states: [new, done]
    initial_state: new
    default_sinks: [orders]
    transitions:
      - {{trigger: place, from: new, to: done, probability: 100}}
"""


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("law", ["uniform", "zipf"])
def test_every_reference_names_an_entity_that_existed_when_the_order_was_placed(
    tmp_path: Path, law: str
) -> None:
    """Each order's person joined before (or in the tick of) the order and had not left."""
    spec = load_model_text(MODEL.format(out=tmp_path, law=law))
    assert isinstance(spec, EntitiesSpec)
    results = spec.run()
    assert list(results) == ["people", "orders"]
    people = _lines(tmp_path / "people.jsonl")
    joined = {row["id"]: row["at"] for row in people if row["event"] == "join"}
    left = {row["id"]: row["at"] for row in people if row["event"] == "leave"}
    orders = _lines(tmp_path / "orders.jsonl")
    assert len(orders) == results["orders"].events > 50
    assert left, "some people left, so removal is exercised"
    for order in orders:
        person = order["person"]
        assert person in joined, order
        assert joined[person] <= order["at"], order
        assert person not in left or order["at"] <= left[person], order
    assert len({o["person"] for o in orders}) > 3


def test_the_same_seed_gives_the_same_streams_and_each_type_its_own_seed(tmp_path: Path) -> None:
    """Two runs write the same bytes; each type runs with entity_seed(seed, name)."""
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        results = load_model_text(MODEL.format(out=folder, law="uniform")).run()
    assert results["orders"].seed == entity_seed(8, "orders") != entity_seed(8, "people")
    for name in ("people", "orders"):
        first = (tmp_path / "a" / f"{name}.jsonl").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{id: {sequence: 100}}}",
            "{id: {sequence: 100}, buddy: {ref: orders}}}",
            "unknown population 'orders'",
        ),
        ("person: {ref: people, law: uniform}", "person: {ref: peple}", "did you mean 'people'"),
        ("default_sinks: [orders]", "default_sinks: [people]", "sink 'people' is fed by"),
        ("  orders:\n    subjects:", "  orders:\n    colour: red\n    subjects:", "colour"),
        ("person: {ref: people, law: uniform}", "person: {ref: people, law: pareto}", "law"),
    ],
)
def test_entity_mistakes_name_the_file_and_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """A reference to a later type, a typo, a shared sink or an unknown key is refused."""
    text = MODEL.format(out=tmp_path, law="uniform")
    assert old in text
    with pytest.raises(ModelError) as caught:
        load_model_text(text.replace(old, new), source="duo.yaml")
    assert str(caught.value).startswith("duo.yaml:"), str(caught.value)
    assert message in str(caught.value)


def test_a_weight_that_is_no_attribute_is_refused_at_its_line(tmp_path: Path) -> None:
    """``weight:`` names one of the type's attributes (found by the fuzz test)."""
    text = MODEL.format(out=tmp_path, law="weighted").replace(
        "  people:\n    subjects:", "  people:\n    weight: size\n    subjects:"
    )
    with pytest.raises(ModelError, match=r"^duo\.yaml:21: entities\.people\.weight: 'size' is not"):
        load_model_text(text, source="duo.yaml")


def test_a_section_of_the_wrong_shape_is_a_clean_error(tmp_path: Path) -> None:
    """``transitions: 1`` in an entity type is refused with its line (found by the fuzz test)."""
    text = MODEL.format(out=tmp_path, law="uniform")
    head, _, _ = text.partition("    transitions:\n      - {trigger: place")
    with pytest.raises(ModelError, match=r"^duo\.yaml:\d+: .*transitions"):
        load_model_text(head + "    transitions: 0.0000001\n", source="duo.yaml")
