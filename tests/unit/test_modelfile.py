"""Model files: every shipped model runs; every mistake is reported at file:line: key."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dogesim import MemorySink, ModelError
from dogesim.examples import banking
from dogesim.modelfile import (
    SINK_TYPES,
    dump_model,
    format_duration,
    load_model_file,
    load_model_text,
    parse_duration,
    parse_timestamp,
)

MODELS = sorted((Path(__file__).resolve().parents[2] / "models").glob("*.yaml"))

BASE = """\
name: tiny
seed: 5
states: [a, b, c]
initial_state: a
tick: 1s
ticks: 20
start: 2024-01-01T00:00:00Z
subjects:
  count: 30
  attributes:
    size: {uniform_int: [1, 3]}
sinks:
  mem: {type: memory}
  tally: {type: counting}
default_sinks: [mem]
transitions:
  - {trigger: go, from: a, to: b, probability: 30}
  - {trigger: on, from: b, to: c, probability: 40, sinks: [mem, tally]}
  - trigger: back
    from: c
    to: a
    probability: 50
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, **kwargs: Any) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ModelError) as info:
        load_model_file(path, **kwargs)
    return str(info.value).replace(str(path), "m.yaml")


# -- the shipped models ------------------------------------------------------------------


def test_models_directory_has_the_three_models() -> None:
    """models/ ships banking, ecommerce and iot_fleet."""
    assert {p.stem for p in MODELS} >= {"banking", "ecommerce", "iot_fleet"}


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_loads_and_runs_reproducibly(path: Path, tmp_path: Path) -> None:
    """Each model runs a short seeded run into its own sinks; the same seed gives the same
    bytes, and every event reaches the file."""
    outputs = []
    for run in range(2):
        out_dir = tmp_path / f"run{run}"
        spec = load_model_file(path, ticks=60, environ={"DOGESIM_OUT_DIR": str(out_dir)})
        result = spec.run(seed=11)
        assert result.ticks == 60
        assert result.events > 0
        for ledger in result.ledgers:
            assert ledger.ok and ledger.collected > 0
        files = sorted(out_dir.glob("*"))
        assert files, "the model writes a file under DOGESIM_OUT_DIR"
        lines = files[0].read_text(encoding="utf-8").splitlines()
        assert len(lines) == sum(ledger.collected for ledger in result.ledgers)
        outputs.append(files[0].read_bytes())
    assert outputs[0] == outputs[1]


def test_banking_file_is_the_readme_model() -> None:
    """models/banking.yaml gives exactly the event stream of the Python banking model."""
    spec = load_model_file(Path(MODELS[0]).parent / "banking.yaml")
    file_sink = MemorySink(banking.event_record)
    from_file = spec.run(sinks=[file_sink], seed=3)
    python_sink = MemorySink(banking.event_record)
    banking.banking_simulation(
        [python_sink],
        subjects=spec.subjects.count,
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
        seed=3,
    ).run()
    assert [t.trigger for t in spec.transitions] == [row[0] for row in banking.TRANSITIONS]
    assert [t.probability for t in spec.transitions] == [row[3] for row in banking.TRANSITIONS]
    assert [t.callback for t in spec.transitions] == [row[4] for row in banking.TRANSITIONS]
    assert file_sink.events == python_sink.events
    assert from_file.events == len(python_sink.events) > 0


def test_banking_default_sink_writes_readme_kafka_value(tmp_path: Path) -> None:
    """The default sink writes the README's Kafka value shape to <out>/banking.jsonl."""
    spec = load_model_file(
        Path(MODELS[0]).parent / "banking.yaml",
        subjects=200,
        environ={"DOGESIM_OUT_DIR": str(tmp_path)},
    )
    result = spec.run()
    lines = (tmp_path / "banking.jsonl").read_text().splitlines()
    assert len(lines) == result.events
    record = json.loads(lines[0])
    assert list(record) == ["timestamp", "user", "event"]
    assert list(record["user"]) == ["user_id", "balance", "loan_balance"]


# -- the format --------------------------------------------------------------------------


def test_base_model_loads_with_sinks_routed(tmp_path: Path) -> None:
    """Transitions without `sinks` get default_sinks; listed sinks are used in order."""
    spec = load_model_file(write(tmp_path, BASE))
    assert spec.states == ("a", "b", "c")
    assert spec.tick_ms == 1000 and spec.ticks == 20 and spec.seed == 5
    assert spec.timestamp_start == 1_704_067_200_000
    assert [t.sinks for t in spec.transitions] == [("mem",), ("mem", "tally"), ("mem",)]
    sinks = spec.build_sinks()
    assert set(sinks) == {"mem", "tally"}
    model = spec.build_model(sinks)
    assert model.transitions[1].event_sinks == (sinks["mem"], sinks["tally"])
    result = spec.simulation(sinks=sinks).run()
    assert len(sinks["mem"]) == result.events
    assert sinks["tally"].count == result.events_by_trigger()["on"]


def test_attributes_are_seeded_and_in_range(tmp_path: Path) -> None:
    """Attribute distributions draw from the run's seed: same seed, same subjects; values
    respect the declared ranges and choices."""
    text = BASE.replace(
        "    size: {uniform_int: [1, 3]}",
        textwrap.indent(
            textwrap.dedent(
                """\
                id: {sequence: 100}
                size: {uniform_int: [1, 3]}
                budget: {uniform: [10, 20]}
                height: {normal: [170, 10]}
                colour: {choice: [red, green]}
                tier: {choice: {gold: 1, basic: 3}}
                country: {constant: PL}
                flag: true
                """
            ),
            "    ",
        ),
    )
    spec = load_model_file(write(tmp_path, text), subjects=4000)
    first = [spec.subject_factory(9)() for _ in range(3)]
    again = [spec.subject_factory(9)() for _ in range(3)]
    assert first == again
    factory = spec.subject_factory(9)
    people = [factory() for _ in range(4000)]
    assert [p.id for p in people[:3]] == [100, 101, 102]
    assert people[-1].id == 4099
    assert {p.size for p in people} == {1, 2, 3}
    assert all(10 <= p.budget < 20 for p in people)
    assert {p.colour for p in people} == {"red", "green"}
    assert {p.country for p in people} == {"PL"} and {p.flag for p in people} == {True}
    gold = sum(p.tier == "gold" for p in people)
    # Binomial(4000, 1/4): mean 1000, sd 27.4; 5 sd either side.
    assert abs(gold - 1000) <= 5 * (4000 * 0.25 * 0.75) ** 0.5
    mean_height = sum(p.height for p in people) / 4000
    assert abs(mean_height - 170) <= 5 * 10 / 4000**0.5


def test_subjects_get_an_id_by_default(tmp_path: Path) -> None:
    """Without an `id` attribute subjects are numbered 0, 1, 2, ..."""
    spec = load_model_file(write(tmp_path, BASE))
    factory = spec.subject_factory(1)
    assert [factory().id for _ in range(3)] == [0, 1, 2]


def test_factory_import_path_and_args(tmp_path: Path) -> None:
    """`factory: module:Class` is instantiated (with factory_args) and its create() used."""
    text = BASE.replace(
        "  attributes:\n    size: {uniform_int: [1, 3]}",
        "  factory: collections:Counter\n  factory_args: {x: 1}",
    )
    with pytest.raises(ModelError, match="no create"):
        load_model_file(write(tmp_path, text)).subject_factory(1)
    text = BASE.replace(
        "  attributes:\n    size: {uniform_int: [1, 3]}",
        "  factory: dogesim.examples.banking:UserFactory",
    )
    factory = load_model_file(write(tmp_path, text)).subject_factory(1)
    assert isinstance(factory(), banking.User)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("1s", 1000),
        ("1m", 60_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("1.5s", 1500),
        (250, 250),
        ("250", 250),
    ],
)
def test_durations(text: object, ms: int) -> None:
    """Tick lengths take ms, s, m, h, d units or a plain number of ms."""
    assert parse_duration(text) == ms


def test_duration_formatting_round_trips() -> None:
    """format_duration picks the largest exact unit."""
    for ms in (1, 500, 1500, 60_000, 90_000, 3_600_000, 86_400_000):
        assert parse_duration(format_duration(ms)) == ms
    assert format_duration(60_000) == "1m"


def test_start_times() -> None:
    """Start times: epoch ms, ISO-8601 with or without zone (UTC), dates."""
    import datetime as dt

    assert parse_timestamp(1_700_000_000_000) == 1_700_000_000_000
    assert parse_timestamp("2024-01-01T00:00:00Z") == 1_704_067_200_000
    assert parse_timestamp("2024-01-01T01:00:00+01:00") == 1_704_067_200_000
    assert parse_timestamp("2024-01-01 00:00:00") == 1_704_067_200_000
    assert parse_timestamp(dt.date(2024, 1, 1)) == 1_704_067_200_000
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_timestamp("yesterday")


# -- ${ENV} interpolation ----------------------------------------------------------------


def test_env_interpolation(tmp_path: Path) -> None:
    """${VAR} and ${VAR:-default} fill strings; a whole-value reference may be a number;
    $${ is a literal."""
    text = BASE.replace("ticks: 20", "ticks: ${TICKS:-20}").replace(
        "  tally: {type: counting}",
        "  tally: {type: counting}\n"
        "  file: {type: jsonl, path: '${OUT}/x-${SUFFIX:-dflt}.jsonl'}\n"
        "  literal: {type: jsonl, path: 'cost-$${price}.jsonl'}",
    )
    spec = load_model_file(write(tmp_path, text), environ={"OUT": "/data", "TICKS": "7"})
    assert spec.ticks == 7
    assert spec.sinks["file"].settings["path"] == "/data/x-dflt.jsonl"
    assert spec.sinks["literal"].settings["path"] == "cost-${price}.jsonl"


def test_missing_env_var_names_the_line(tmp_path: Path) -> None:
    """A missing variable without default is an error at its line and key."""
    text = BASE.replace("  tally: {type: counting}", "  f: {type: jsonl, path: '${NOPE}/x'}")
    message = error_of(tmp_path, text, environ={})
    assert message.startswith("m.yaml:14: sinks.f.path: environment variable NOPE is not set")


def test_interpolated_non_number(tmp_path: Path) -> None:
    """An interpolated value where a number belongs is reported like any other."""
    text = BASE.replace("ticks: 20", "ticks: ${TICKS}")
    message = error_of(tmp_path, text, environ={"TICKS": "lots"})
    assert message == "m.yaml:6: ticks: 'lots' is not a whole number"


# -- every error names file:line: key ----------------------------------------------------

ERRORS = [
    # (replace this, with this, expected message prefix after "m.yaml:")
    (
        "probability: 30}",
        "probability: abc}",
        "17: transitions[0].probability: 'abc' is not a number",
    ),
    (
        "probability: 30}",
        "probability: 130}",
        "17: transitions[0].probability: 130 is not a percentage",
    ),
    (
        "probability: 30}",
        "probability: .nan}",
        "17: transitions[0].probability: nan is not a finite",
    ),
    ("probability: 50\n", "probability: 70\n", None),  # fine: c leaves with 70%
    (
        "to: b, probability: 30}",
        "to: q, probability: 30}",
        "17: transitions[0].to: 'q' is not a state",
    ),
    (
        "{trigger: go, from: a,",
        "{trigger: go, form: a,",
        "17: transitions[0].form: unknown key 'form' (did you mean 'from'?); allowed keys: "
        "trigger, from, to, probability, callback, sinks, description",
    ),
    ("initial_state: a", "initial_state: z", "4: initial_state: 'z' is not one of the states"),
    ("states: [a, b, c]", "states: [a, b, a]", "3: states: state 'a' is listed twice"),
    ("states: [a, b, c]", "states: []", "3: states: the state list is empty"),
    ("tick: 1s", "tick: 1 fortnight", "5: tick: '1 fortnight' is not a duration"),
    ("tick: 1s", "tick: -5", "5: tick: -5 is not a positive duration"),
    ("ticks: 20", "ticks: 0", "6: ticks: 0 is too small; it must be at least 1"),
    ("start: 2024-01-01T00:00:00Z", "start: soon", "7: start: 'soon' is not an ISO-8601 time"),
    ("seed: 5", "seed: -1", "2: seed: -1 is too small"),
    ("  count: 30", "  count: many", "9: subjects.count: 'many' is not a whole number"),
    (
        "{uniform_int: [1, 3]}",
        "{uniform_int: [3, 1]}",
        "11: subjects.attributes.size.uniform_int: [3, 1]: low must not exceed high",
    ),
    (
        "{uniform_int: [1, 3]}",
        "{gaussian: [1, 3]}",
        "11: subjects.attributes.size.gaussian: unknown distribution 'gaussian'",
    ),
    (
        "{uniform_int: [1, 3]}",
        "{normal: [1]}",
        "11: subjects.attributes.size.normal: [1]: give two numbers [mean, sd]",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: mongo}",
        "13: sinks.mem.type: unknown sink type 'mongo'",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: memory, colour: red}",
        "13: sinks.mem.colour: unknown key 'colour'; allowed keys: type, mapper",
    ),
    ("  mem: {type: memory}", "  mem: {type: jsonl}", "13: sinks.mem: missing required key 'path'"),
    (
        "  mem: {type: memory}",
        "  mem: {type: memory, mapper: json.dumps}",
        "13: sinks.mem.mapper: 'json.dumps' is not an import path; write module:name",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: memory, mapper: 'no_such_mod:f'}",
        "13: sinks.mem.mapper: cannot import module 'no_such_mod'",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: memory, mapper: 'json:nope'}",
        "13: sinks.mem.mapper: 'json:nope': module 'json' has no attribute 'nope'",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: memory, mapper: 'math:pi'}",
        "13: sinks.mem.mapper: 'math:pi' is 3.14",
    ),
    (
        "  mem: {type: memory}",
        "  mem: {type: printing, template: '{user}'}",
        "13: sinks.mem.template: '{user}' uses {user}; fields are",
    ),
    ("default_sinks: [mem]", "default_sinks: [disk]", "15: default_sinks: no sink named 'disk'"),
    (
        "sinks: [mem, tally]}",
        "sinks: [mem, disk]}",
        "18: transitions[1].sinks: no sink named 'disk'",
    ),
    (
        "    probability: 50\n",
        "    probability: 50\n    callback: nowhere.mod:cb\n",
        "23: transitions[2].callback: cannot import module 'nowhere.mod' for "
        "'nowhere.mod:cb': ModuleNotFoundError",
    ),
    (
        "    probability: 50\n",
        "    probability: 50\n    callback: math:pi\n",
        "23: transitions[2].callback: 'math:pi' is 3.14",
    ),
    (
        "  - {trigger: on, from: b,",
        "  - {trigger: go, from: a,",
        "18: transitions[1]: tiny: state 'a' already has a transition with trigger 'go'",
    ),
    (
        "  - {trigger: on, from: b, to: c, probability: 40",
        "  - {trigger: on, from: a, to: c, probability: 80",
        "18: transitions[1]: tiny: state 'a': outgoing probabilities sum to 110%, at most 100%",
    ),
    (
        "name: tiny",
        "name: tiny\ncolour: red",
        "2: colour: unknown key 'colour'; allowed keys: name, description, seed, states",
    ),
    ("name: tiny", "name: tiny\nticks: 3", "7: this is not valid YAML"),
    ("seed: 5\n", "seed: 5\n  bad: [\n", "3: this is not valid YAML"),
]


@pytest.mark.parametrize(("old", "new", "expected"), ERRORS, ids=[e[2] or "ok" for e in ERRORS])
def test_errors_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, expected: str | None
) -> None:
    """Each mistake is a ModelError starting `file:line: key:` that says what is wrong."""
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if expected is None:
        load_model_file(write(tmp_path, text))
        return
    message = error_of(tmp_path, text)
    assert message.startswith("m.yaml:" + expected), message
    assert "\n" not in message


def test_transitions_must_be_a_list(tmp_path: Path) -> None:
    """`transitions:` holding a scalar is reported at its line."""
    text = BASE[: BASE.index("transitions:")] + "transitions: 5\n"
    assert error_of(tmp_path, text) == "m.yaml:16: transitions: 5 is not a list"


def test_missing_required_keys_listed(tmp_path: Path) -> None:
    """A missing top-level key is named, with the allowed keys."""
    message = error_of(tmp_path, BASE.replace("initial_state: a\n", ""))
    assert message.startswith("m.yaml:1: missing required key 'initial_state'; allowed keys:")


def test_missing_file_and_not_a_mapping(tmp_path: Path) -> None:
    """A missing file and a file that is not a mapping are clear errors."""
    with pytest.raises(ModelError, match=r"nope.yaml: no such model file"):
        load_model_file(tmp_path / "nope.yaml")
    assert error_of(tmp_path, "- a\n- b\n").startswith("m.yaml:1: a model file is a mapping")


def test_error_is_a_value_error(tmp_path: Path) -> None:
    """ModelError from a model file is still a ValueError (doge-datagen habits keep working)."""
    with pytest.raises(ValueError):
        load_model_text("states: 5", source="inline")


def test_sink_settings_pass_through(tmp_path: Path) -> None:
    """Kafka `conf` keeps librdkafka's dotted keys untouched; db settings are typed."""
    text = BASE.replace(
        "  tally: {type: counting}",
        "  tally: {type: counting}\n"
        "  k:\n"
        "    type: kafka\n"
        "    bootstrap_servers: ${BROKERS:-127.0.0.1:19092}\n"
        "    topic: events\n"
        "    conf: {security.protocol: SASL_SSL, sasl.password: '${PW}', linger.ms: 5}\n"
        "  d: {type: db, url: 'sqlite:///x.db', table: ev, batch_size: 50, create_table: true}",
    )
    spec = load_model_file(write(tmp_path, text), environ={"PW": "s3cret"})
    kafka = spec.sinks["k"].settings
    assert kafka["conf"] == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "s3cret",
        "linger.ms": 5,
    }
    assert kafka["bootstrap_servers"] == "127.0.0.1:19092"
    assert type(kafka["conf"]["sasl.password"]) is str
    assert spec.sinks["d"].settings == {
        "url": "sqlite:///x.db",
        "table": "ev",
        "batch_size": 50,
        "create_table": True,
    }
    assert set(SINK_TYPES) >= {
        "jsonl",
        "csv",
        "printing",
        "stdout",
        "memory",
        "kafka",
        "kafka_avro",
        "db",
        "counting",
    }


def test_sqlite_db_sink_from_model_file(tmp_path: Path) -> None:
    """A `db` sink on SQLite (no server) receives every event as a row."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'events.db'}"
    text = BASE.replace(
        "default_sinks: [mem]",
        "  db: {type: db, url: '" + url + "', table: events, create_table: true, batch_size: 7}\n"
        "default_sinks: [db]",
    )
    spec = load_model_file(write(tmp_path, text))
    result = spec.run()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select trigger, subject_size from events")).all()
    engine.dispose()
    counted = result.events_by_trigger()
    # `on` lists its own sinks; `go` and `back` use the default (the database).
    assert len(rows) == counted["go"] + counted["back"] > 0
    assert {r[0] for r in rows} == {"go", "back"}
    assert {r[1] for r in rows} <= {1, 2, 3}


def test_printing_template_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`printing` formats a template; `csv` writes a header and one row per event."""
    text = BASE.replace(
        "default_sinks: [mem]",
        "  p: {type: printing, template: '{timestamp} {subject.id} {trigger} {to_state}'}\n"
        f"  c: {{type: csv, path: '{tmp_path / 'ev.csv'}'}}\n"
        "default_sinks: [p, c]",
    )
    result = load_model_file(write(tmp_path, text)).run()
    counted = result.events_by_trigger()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == counted["go"] + counted["back"] > 0
    assert re.fullmatch(r"\d+ \d+ (go|back) [ab]", printed[0])
    rows = (tmp_path / "ev.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["timestamp", "trigger", "from_state", "to_state"]
    assert len(rows) == len(printed) + 1


def test_dump_model_round_trips(tmp_path: Path) -> None:
    """dump_model writes a file that loads back to the same chain, callbacks included."""
    spec = load_model_file(Path(MODELS[0]).parent / "banking.yaml")
    text = dump_model(spec, tmp_path / "copy.yaml")
    again = load_model_file(tmp_path / "copy.yaml")
    assert [
        (t.trigger, t.from_state, t.to_state, t.probability, t.callback) for t in again.transitions
    ] == [
        (t.trigger, t.from_state, t.to_state, t.probability, t.callback) for t in spec.transitions
    ]
    assert (again.tick_ms, again.ticks, again.timestamp_start, again.seed) == (
        spec.tick_ms,
        spec.ticks,
        spec.timestamp_start,
        spec.seed,
    )
    assert again.subjects.factory is banking.UserFactory
    assert "sinks were not written back" in text


def test_dump_model_of_bare_model_rounds_down(tmp_path: Path) -> None:
    """Probabilities are written with 6 significant digits, rounded down so sums stay <= 100."""
    from dogesim import Model

    model = Model(["x", "y"], "x", name="bare")
    model.add_transition("t1", "x", "y", 100 / 3)
    model.add_transition("t2", "x", "x", 200 / 3)
    text = dump_model(model, None, tick_ms=1500, ticks=10, subjects=3)
    spec = load_model_text(text)
    assert [t.probability for t in spec.transitions] == [33.3333, 66.6666]
    assert spec.tick_ms == 1500 and spec.subjects.count == 3


def test_overrides_are_checked(tmp_path: Path) -> None:
    """subjects/ticks/seed overrides replace the file's values and are validated."""
    spec = load_model_file(write(tmp_path, BASE), subjects=3, ticks=4, seed=9)
    assert (spec.subjects.count, spec.ticks, spec.seed) == (3, 4, 9)
    with pytest.raises(ModelError, match="ticks must be a whole number >= 1"):
        load_model_file(write(tmp_path, BASE), ticks=0)
