"""Templates in model files: sink payloads, subject attributes, Faker locales, line-aware errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dogesim.errors import ModelError
from dogesim.model import Transition
from dogesim.modelfile import load_model_text
from dogesim.templates import Template

pytest.importorskip("faker")

MODEL = """\
name: tiny
seed: {seed}
states: [a, b]
initial_state: a
tick: 1m
ticks: 30
start: 2024-01-01T00:00:00Z
{faker}
subjects:
  count: 5
  attributes:
    id: {{sequence: 10}}
    budget: {{uniform_int: [1, 9]}}
    name: {{faker: name}}
sinks:
  events:
    type: jsonl
    path: {path}
    mapper:
      who: {{subject: id}}
      name: {{subject: name}}
      budget: {{subject: budget}}
      event: {{transition: trigger}}
      at: {{time: iso}}
      n: {{seq: event, start: 1}}
      city: {{faker: city}}
      fee: {{expr: "subject.budget * 2"}}
default_sinks: [events]
transitions:
  - {{trigger: go, from: a, to: b, probability: 30}}
  - {{trigger: back, from: b, to: a, probability: 30}}
"""


def _run(tmp_path: Path, seed: int = 3, faker: str = "", name: str = "e.jsonl") -> list[dict]:
    path = tmp_path / name
    spec = load_model_text(MODEL.format(seed=seed, faker=faker, path=path))
    spec.run()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_templated_jsonl_sink_writes_the_fields_and_the_same_seed_the_same_bytes(
    tmp_path: Path,
) -> None:
    """The mapper template gives each field; a second run of the seed is byte-identical."""
    first = _run(tmp_path, name="one.jsonl")
    assert first, "the run made events"
    assert [row["n"] for row in first] == list(range(1, len(first) + 1))
    for row in first:
        assert set(row) == {"who", "name", "budget", "event", "at", "n", "city", "fee"}
        assert 10 <= row["who"] < 15 and row["fee"] == row["budget"] * 2
        assert row["event"] in ("go", "back") and row["at"].startswith("2024-01-01T")
    names = {row["who"]: row["name"] for row in first}
    assert all(isinstance(n, str) and n for n in names.values())
    second = _run(tmp_path, name="two.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    other = _run(tmp_path, seed=4, name="three.jsonl")
    assert [r["city"] for r in other] != [r["city"] for r in second]


def test_the_faker_locale_reaches_every_template(tmp_path: Path) -> None:
    """``faker: {locale: de_DE}`` draws what a library template with that locale draws."""
    rows = _run(tmp_path, faker="faker: {locale: de_DE}")
    # The sink's faker field is the template at sinks.events.mapper, seeded by the run.
    template = Template({"city": {"faker": "city"}}, path="sinks.events.mapper", locale="de_DE")
    mapper = template.mapper(3)
    move = Transition("go", "a", "b", 30)
    expected = [mapper(0, SimpleNamespace(id=0), move)["city"] for _ in rows]
    assert [row["city"] for row in rows] == expected


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("city: {faker: city}", "city: {faker: citty}", 26, "sinks.events.mapper.city: 'citty'"),
        ('fee: {expr: "subject.budget * 2"}', 'fee: {expr: "open(1)"}', 27, "only these"),
        ("name: {faker: name}", "name: {faker: nmae}", 14, "subjects.attributes.name"),
        ("who: {subject: id}", "who: {subject: 1}", 20, "sinks.events.mapper.who"),
        ("at: {time: iso}", "at: {time: isoo}", 24, "time format 'isoo'"),
    ],
)
def test_template_errors_name_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    """A bad field is a ModelError at ``file:line: path``, when the file is loaded."""
    text = MODEL.format(seed=1, faker="", path=tmp_path / "x.jsonl")
    assert old in text
    with pytest.raises(ModelError) as caught:
        load_model_text(text.replace(old, new), source="m.yaml")
    assert str(caught.value).startswith(f"m.yaml:{line}: "), str(caught.value)
    assert message in str(caught.value)


def test_a_bad_locale_and_unknown_faker_keys_are_refused_at_their_line(tmp_path: Path) -> None:
    """``faker:`` takes only ``locale``, a Faker locale."""
    text = MODEL.format(seed=1, faker="faker: {locale: xx_YY}", path=tmp_path / "x.jsonl")
    with pytest.raises(ModelError, match=r"^m\.yaml:8: faker\.locale: .*xx_YY"):
        load_model_text(text, source="m.yaml")
    text = MODEL.format(seed=1, faker="faker: {locales: de_DE}", path=tmp_path / "x.jsonl")
    with pytest.raises(ModelError, match=r"^m\.yaml:8: .*locales"):
        load_model_text(text, source="m.yaml")


def test_kafka_key_and_value_templates_are_text_and_compact_json() -> None:
    """A kafka sink's key template gives text, its value template compact JSON."""
    text = (
        MODEL.format(seed=1, faker="", path="unused.jsonl")
        .replace("default_sinks: [events]", "default_sinks: [events, bus]")
        .replace(
            "sinks:\n",
            "sinks:\n  bus:\n    type: kafka\n    bootstrap_servers: 127.0.0.1:1\n"
            "    topic: t\n    key: {subject: id}\n"
            "    value: {id: {subject: id}, to: {transition: to_state}}\n",
        )
    )
    spec = load_model_text(text)
    settings = spec.sinks["bus"].settings
    subject, move = SimpleNamespace(id=12), Transition("go", "a", "b", 30)
    assert settings["key"](subject, move) == "12"
    assert settings["value"](0, subject, move) == '{"id":12,"to":"b"}'


def test_a_secret_from_the_environment_is_masked_in_template_errors(tmp_path: Path) -> None:
    """A ${VAR} value that lands in a bad field is shown as *** (found by the fuzz test)."""
    text = MODEL.format(seed=1, faker="", path=tmp_path / "x.jsonl")
    text = text.replace("who: {subject: id}", "who: {subject: '${TOKEN}'}")
    with pytest.raises(ModelError) as caught:
        load_model_text(text, source="m.yaml", environ={"TOKEN": "s3cr3t-Value-9"})
    assert "s3cr3t-Value-9" not in str(caught.value) and "***" in str(caught.value)
