"""Model files: every shipped model runs; every mistake is reported at file:line: key."""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from dogesim import MemorySink, ModelError, RunError
from dogesim.examples import banking
from dogesim.modelfile import (
    SINK_TYPES,
    LiveSpec,
    dump_model,
    format_duration,
    load_model_file,
    load_model_text,
    parse_duration,
    parse_timestamp,
)
from dogesim.modelfile.online import RandomHold
from dogesim.rates import Rate

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


def test_models_directory_has_the_shipped_models() -> None:
    """models/ ships banking, ecommerce, iot_fleet and support_center."""
    assert {p.stem for p in MODELS} >= {"banking", "ecommerce", "iot_fleet", "support_center"}


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
        files = sorted(p for p in out_dir.rglob("*") if p.is_file())
        assert files, "the model writes a file under DOGESIM_OUT_DIR"
        lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
        # What reached the files: collected, less faults' drops, plus their duplicates.
        written = [
            ledger.collected
            + getattr(ledger, "injected_duplicates", 0)
            - getattr(ledger, "injected_drops", 0)
            for ledger in result.ledgers
        ]
        assert lines == sum(written)
        outputs.append(b"".join(f.read_bytes() for f in files))
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
    """An interpolated value where a number belongs is refused at its key, the environment's
    text shown (it is no secret: see tests/unit/test_secrets.py for those)."""
    text = BASE.replace("ticks: 20", "ticks: ${TICKS}")
    message = error_of(tmp_path, text, environ={"TICKS": "lots-of-ticks"})
    assert message == "m.yaml:6: ticks: 'lots-of-ticks' is not a whole number"


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


# -- online and realistic: rates, profiles, resources, arrivals, churn, jitter, live -------

ONLINE = """\
name: online
seed: 5
states: [idle, waiting, talking]
initial_state: idle
tick: 1m
ticks: 120
start: 2024-01-01T08:00:00Z
subjects: {count: 20}
profiles:
  office:
    hourly: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    weekly: [1, 1, 1, 1, 1, 0.5, 0]
    dates: {2024-01-02: 0}
    utc_offset_hours: 1
resources: {agents: 2}
arrivals: {rate: 30 per hour, profile: office}
churn: {rate: 20% per hour, sinks: [gone]}
jitter: true
live: {enabled: false, speed: 60, max_lag: 2s, on_lag: fail, timestamps: start}
sinks:
  mem: {type: memory}
  gone: {type: memory}
default_sinks: [mem]
transitions:
  - {trigger: call, from: idle, to: waiting, probability: 6 per hour, profile: office}
  - {trigger: answer, from: waiting, to: talking, probability: 90, resource: agents, hold: 5m}
  - trigger: hang_up
    from: talking
    to: idle
    probability: 50% per 10m
    profile:
      hourly: [2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
"""
HOUR = 3_600_000


def test_online_keys_are_read(tmp_path: Path) -> None:
    """Rates, named and inline profiles, resources, arrivals, churn, jitter and live settings
    all land in the ModelSpec with their values."""
    spec = load_model_file(write(tmp_path, ONLINE))
    call, answer, hang_up = spec.transitions
    assert call.probability == Rate("count", 6, HOUR)
    assert hang_up.probability == Rate("percent", 50, 600_000)
    assert answer.probability == 90
    office = spec.profiles["office"]
    assert call.profile is office and call.profile_name == "office"
    assert office.hourly[8] == 1 and office.hourly[7] == 0 and office.weekly[5] == 0.5
    assert office.dates == {_dt.date(2024, 1, 2): 0.0} and office.utc_offset_hours == 1
    assert hang_up.profile is not None and hang_up.profile_name is None
    assert hang_up.profile.hourly[0] == 2
    assert (answer.resource, answer.hold) == ("agents", 5)
    assert spec.resources == {"agents": 2}
    assert spec.arrivals == Rate("count", 30, HOUR) and spec.arrivals_profile is office
    assert spec.churn == Rate("percent", 20, HOUR) and spec.churn_sinks == ("gone",)
    assert spec.jitter is True
    assert spec.live == LiveSpec(False, 60.0, 2000, "fail", "start", False)
    assert spec.used_sinks() == ["mem", "gone"]
    model = spec.model  # chances as percent per tick of the file's 1-minute tick
    assert model.transitions[0].probability == pytest.approx(100 * (1 - math.exp(-0.1)))
    assert model.transitions[2].probability == pytest.approx(100 * (1 - 0.5**0.1))
    assert model.resources == {"agents": 2}
    assert "arrivals 30 per 1h (calendar-shaped)" in spec.summary()


def test_short_forms_of_arrivals_and_churn(tmp_path: Path) -> None:
    """arrivals and churn may be plain numbers or rate text; churn then uses default_sinks."""
    text = ONLINE.replace("arrivals: {rate: 30 per hour, profile: office}", "arrivals: 0.5")
    text = text.replace("churn: {rate: 20% per hour, sinks: [gone]}", "churn: 1 per day")
    spec = load_model_file(write(tmp_path, text))
    assert spec.arrivals == 0.5 and spec.arrivals_profile is None
    assert spec.churn == Rate("count", 1, 24 * HOUR) and spec.churn_sinks == ("mem",)
    text = text.replace("churn: 1 per day", "churn: 0.25")
    assert load_model_file(write(tmp_path, text)).churn == 0.25


def test_simulation_gets_every_online_setting(tmp_path: Path) -> None:
    """spec.simulation() hands rates, profiles, resources, arrivals, churn (into its own
    sinks), jitter and live settings to the Simulation, and the run shows each of them."""
    spec = load_model_file(write(tmp_path, ONLINE))
    mem = MemorySink(lambda ts, s, t: (ts, s.id, t.trigger))
    gone = MemorySink(lambda ts, s, t: (ts, s.id, t.trigger))
    sim = spec.simulation(sinks={"mem": mem, "gone": gone})
    assert sim.jitter and not sim.live and sim.ticks == 120
    assert sim.model.states == ("idle", "waiting", "talking", "churned")
    result = sim.run()
    assert result.arrivals > 0 and len(sim.subjects) == 20 + result.arrivals
    assert gone.events and {t for _, _, t in gone.events} == {"churn"}
    assert "churn" not in {t for _, _, t in mem.events}
    stamps = [ts for ts, _, _ in mem.events]
    assert any(ts % 60_000 for ts in stamps)  # jittered within the minute
    assert all(spec.timestamp_start <= ts < spec.timestamp_start + 120 * 60_000 for ts in stamps)
    talking = [i for _, i, t in mem.events if t == "answer"]
    assert talking  # callers were answered by the 2 agents


def test_live_settings_and_overrides(tmp_path: Path) -> None:
    """The live block configures live runs; arguments override it; timestamps: wall starts
    at the wall clock; until_stopped runs without a tick count, only in live mode."""
    spec = load_model_file(write(tmp_path, ONLINE))
    sim = spec.simulation(sinks=[], live=True, speed=1000)
    assert sim.live and sim.speed == 1000 and sim.max_lag_ms == 2000 and sim.on_lag == "fail"
    assert sim.timestamp_start == spec.timestamp_start  # timestamps: start
    wall = load_model_file(
        write(
            tmp_path, ONLINE.replace("timestamps: start", "timestamps: wall, until_stopped: true")
        )
    )
    before = int(time.time() * 1000)
    live = wall.simulation(sinks=[], live=True, on_lag="warn", max_lag_ms=50)
    assert live.ticks is None and live.on_lag == "warn" and live.max_lag_ms == 50
    assert before <= live.timestamp_start <= int(time.time() * 1000)
    assert wall.simulation(sinks=[]).ticks == 120  # until_stopped applies only when live
    with pytest.raises(ModelError, match="running until stopped needs live mode"):
        spec.simulation(sinks=[], until_stopped=True)


PER_MINUTE = """\
name: rescaled
states: [in, out]
initial_state: in
tick: 10s
probability_tick: 1m
ticks: 6
subjects: {count: 1}
transitions:
  - {trigger: leave, from: in, to: out, probability: 5}
"""


def test_probability_tick_rescales_per_tick_probabilities(tmp_path: Path) -> None:
    """probability_tick says what tick the numbers are per; a run at 10 s ticks keeps the
    per-minute law: p' = 1 - (1 - p) ** (10 s / 1 m)."""
    spec = load_model_file(write(tmp_path, PER_MINUTE))
    assert spec.probability_tick == 60_000
    assert spec.model.transitions[0].probability == pytest.approx(100 * (1 - 0.95 ** (1 / 6)))
    same = load_model_file(write(tmp_path, PER_MINUTE.replace("tick: 10s", "tick: 1m")))
    assert same.model.transitions[0].probability == pytest.approx(5)


QUEUE = """\
name: queue
states: [waiting, talking, done]
initial_state: waiting
tick: 1m
ticks: 40
subjects: {count: 10}
resources: {agents: 2}
sinks: {mem: {type: memory}}
default_sinks: [mem]
transitions:
  - {trigger: answer, from: waiting, to: talking, probability: 100, resource: agents, hold: 5m}
  - {trigger: hang_up, from: talking, to: done, probability: 100}
"""


def test_resource_from_a_model_file_queues_subjects(tmp_path: Path) -> None:
    """Ten callers, two agents held 5 ticks each: answered two at a time, every 5 ticks."""
    spec = load_model_file(write(tmp_path, QUEUE))
    sink = MemorySink(lambda ts, s, t: (ts // 60_000, s.id, t.trigger))
    spec.simulation(sinks={"mem": sink}).run()
    answers = [(t, i) for t, i, trigger in sink.events if trigger == "answer"]
    assert answers == [(5 * (k // 2), k) for k in range(10)]


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)


ONLINE_ERRORS = [
    # (replace this, with this, expected message after "m.yaml:<line>: ", line marker or None
    # for the line of the replacement)
    (
        "probability: 6 per hour,",
        "probability: 6 per fortnight,",
        "transitions[0].probability: '6 per fortnight' is not a number (percent per tick) nor "
        "a rate ('fortnight' is not a duration",
        None,
    ),
    (
        "probability: 6 per hour,",
        "probability: lots,",
        "transitions[0].probability: 'lots' is not a number (percent per tick) nor a rate; "
        "write e.g. '0.1% per minute', '6 per day' or '6/1d'",
        None,
    ),
    (
        "probability: 6 per hour,",
        "probability: 150% per hour,",
        "transitions[0].probability: '150% per hour' is not a number (percent per tick) nor a "
        "rate (rate must be at most 100% per period",
        None,
    ),
    (
        "0, 0, 0, 0, 0, 0, 0]\n    weekly",
        "0, 0, 0, 0, 0, 0]\n    weekly",
        "profiles.office.hourly: 23 multipliers; give 24, one per hour of the day",
        "hourly: [0",
    ),
    (
        "weekly: [1, 1, 1, 1, 1, 0.5, 0]",
        "weekly: [1, 1, 1, 1, 1, 0.5]",
        "profiles.office.weekly: 6 multipliers; give 7, one per day of the week, Monday first",
        None,
    ),
    (
        "weekly: [1, 1, 1, 1, 1, 0.5, 0]",
        "weekly: [1, 1, 1, 1, 1, -0.5, 0]",
        "profiles.office.weekly[5]: -0.5 is not a multiplier (a finite number >= 0)",
        None,
    ),
    (
        "dates: {2024-01-02: 0}",
        "dates: {tomorrow: 0}",
        "profiles.office.dates.tomorrow: 'tomorrow' is not a date; write YYYY-MM-DD",
        None,
    ),
    (
        "utc_offset_hours: 1",
        "utc_offset: 1",
        "profiles.office.utc_offset: unknown key 'utc_offset' (did you mean 'utc_offset_hours'?)",
        None,
    ),
    (
        "utc_offset_hours: 1",
        "utc_offset_hours: 20",
        "profiles.office.utc_offset_hours: 20 is not a time-zone offset between -14 and 14",
        None,
    ),
    (
        "6 per hour, profile: office}",
        "6 per hour, profile: ofice}",
        "transitions[0].profile: no profile named 'ofice' (did you mean 'office'?); profiles "
        "defined under 'profiles:' are office",
        None,
    ),
    (
        "      hourly: [2, 2,",
        "      hourly: [2, 2, 2,",
        "transitions[2].profile.hourly: 25 multipliers; give 24",
        None,
    ),
    (
        "0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1,",
        "0, 0, 0, 0, 0, 0, 0, 0, 30, 1, 1,",
        "transitions[0].profile: state 'idle': at the peaks of their calendar profiles the "
        "outgoing probabilities reach",
        "trigger: call",
    ),
    (
        "resource: agents,",
        "resource: desks,",
        "transitions[1].resource: resource 'desks' is not declared; resources under "
        "'resources:' are agents",
        None,
    ),
    (
        "resource: agents, hold: 5m",
        "hold: 5m",
        "transitions[1].hold: hold needs a resource to hold; add resource: NAME",
        None,
    ),
    (
        "hold: 5m",
        "hold: 90s",
        "transitions[1].hold: '90s' is not a whole number of 1m ticks",
        None,
    ),
    ("hold: 5m", "hold: 0", "transitions[1].hold: 0 is too small; it must be at least 1", None),
    (
        "hold: 5m",
        "hold: {gamma: 3}",
        "transitions[1].hold: {'gamma': 3}: a random hold is {exponential: MEAN} or "
        "{uniform: [LOW, HIGH]}",
        None,
    ),
    (
        "hold: 5m",
        "hold: {uniform: [20m, 5m]}",
        "transitions[1].hold.uniform: low 20 is above high 5 (ticks)",
        None,
    ),
    (
        "hold: 5m",
        "hold: {exponential: soon}",
        "transitions[1].hold.exponential: 'soon' is not a duration",
        None,
    ),
    (
        "resources: {agents: 2}",
        "resources: {agents: 0}",
        "resources.agents: 0 is too small; it must be at least 1",
        None,
    ),
    (
        "rate: 30 per hour, profile: office}",
        "rate: 5% per hour, profile: office}",
        "arrivals.rate: '5% per hour' is a probability; arrivals are a count per period",
        None,
    ),
    (
        "arrivals: {rate: 30 per hour, profile: office}",
        "arrivals: -2",
        "arrivals: -2 is not a number of subjects per tick >= 0",
        None,
    ),
    (
        "{rate: 30 per hour, profile: office}",
        "{rate: 30 per hour, shape: office}",
        "arrivals.shape: unknown key 'shape'; allowed keys: rate, profile",
        None,
    ),
    ("sinks: [gone]}", "sinks: [lost]}", "churn.sinks: no sink named 'lost'", None),
    (
        "churn: {rate: 20% per hour, sinks: [gone]}",
        "churn: 150",
        "churn: 150 is not a percentage per tick between 0 and 100",
        None,
    ),
    (
        "trigger: hang_up",
        "trigger: churn",
        "churn: online: state 'talking' already has a transition with trigger 'churn'",
        "churn: {rate",
    ),
    ("on_lag: fail", "on_lag: panic", "live.on_lag: 'panic' is not one of warn, fail", None),
    (
        "speed: 60,",
        "sped: 60,",
        "live.sped: unknown key 'sped' (did you mean 'speed'?); allowed keys: enabled, speed",
        None,
    ),
    ("speed: 60,", "speed: 0,", "live.speed: 0 is not a speed-up factor > 0", None),
    ("max_lag: 2s", "max_lag: soon", "live.max_lag: 'soon' is not a duration", None),
    ("timestamps: start", "timestamps: utc", "live.timestamps: 'utc' is not one of wall", None),
    ("jitter: true", "jitter: maybe", "jitter: 'maybe' is not true or false", None),
    (
        "tick: 1m",
        "tick: 1m\nprobability_tick: 1 fortnight",
        "probability_tick: '1 fortnight' is not a duration",
        "probability_tick",
    ),
    (
        "{trigger: call,",
        "{trigger: call, rate: 1,",
        "transitions[0].rate: unknown key 'rate'",
        None,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected", "marker"), ONLINE_ERRORS, ids=[e[2][:60] for e in ONLINE_ERRORS]
)
def test_online_errors_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, expected: str, marker: str | None
) -> None:
    """Each mistake in the online keys is a ModelError starting `file:line: key:`."""
    assert old in ONLINE
    text = ONLINE.replace(old, new, 1)
    line = line_of(text, marker or new.splitlines()[-1])
    message = error_of(tmp_path, text)
    assert message.startswith(f"m.yaml:{line}: {expected}"), message
    assert "\n" not in message


def test_no_subjects_needs_arrivals(tmp_path: Path) -> None:
    """count: 0 is fine when subjects arrive over time, and an error when none ever would."""
    spec = load_model_file(write(tmp_path, ONLINE.replace("{count: 20}", "{count: 0}")))
    assert spec.subjects.count == 0
    text = ONLINE.replace("{count: 20}", "{count: 0}").replace(
        "arrivals: {rate: 30 per hour, profile: office}\n", ""
    )
    assert error_of(tmp_path, text).startswith(
        "m.yaml:8: subjects.count: 0 subjects and no arrivals"
    )


def test_dump_model_says_what_it_left_out(tmp_path: Path) -> None:
    """dump_model writes per-tick probabilities and names the online settings it drops."""
    spec = load_model_file(write(tmp_path, ONLINE))
    text = dump_model(spec, sinks={})
    assert (
        "# rates, calendar profiles, resources, arrivals, churn, jitter, live settings were "
        "not written back; probabilities are per tick of 1m"
    ) in text
    again = load_model_text(text)
    assert again.transitions[0].probability == pytest.approx(100 * (1 - math.exp(-0.1)), 1e-5)


RESUMABLE = """\
name: resumable
seed: 21
states: [idle, busy]
initial_state: idle
tick: 1m
ticks: 300
start: 2026-12-24T12:00:00Z
subjects:
  count: 30
  attributes:
    id: {sequence: 100}
    plan: {choice: {basic: 3, pro: 1}}
profiles:
  day: {hourly: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0],
        dates: {2026-12-25: 0.5}}
arrivals: {rate: 20 per hour, profile: day}
churn: 5% per hour
jitter: true
sinks:
  out: {type: jsonl, path: 'OUT'}
default_sinks: [out]
transitions:
  - {trigger: work, from: idle, to: busy, probability: 3 per hour, profile: day}
  - {trigger: rest, from: busy, to: idle, probability: 20}
"""


def test_stop_checkpoint_and_resume_a_model_file(tmp_path: Path) -> None:
    """A model file run stopped at tick 120, checkpointed and resumed with spec.resume()
    appends to its JSONL file exactly what the uninterrupted run writes after tick 120
    (newcomers, churn, jitter and profiles included)."""
    whole_path = tmp_path / "whole.jsonl"
    load_model_file(write(tmp_path, RESUMABLE.replace("OUT", str(whole_path)), "w.yaml")).run()
    part_path = tmp_path / "part.jsonl"
    spec = load_model_file(write(tmp_path, RESUMABLE.replace("OUT", str(part_path)), "p.yaml"))

    def stop_at(ticks_done: int) -> None:
        if ticks_done >= 120:
            sim.stop()

    sim = spec.simulation(progress=stop_at)
    first = sim.run()
    assert first.stopped and first.ticks == 120
    sim.checkpoint(tmp_path / "run.ckpt")
    half = part_path.read_bytes()
    assert 0 < len(half) < whole_path.stat().st_size
    rest = spec.resume(tmp_path / "run.ckpt").run()
    assert not rest.stopped and rest.ticks == 300 and rest.arrivals > first.arrivals
    assert part_path.read_bytes() == whole_path.read_bytes()


def test_resume_errors_are_clear(tmp_path: Path) -> None:
    """A missing or foreign checkpoint is a RunError; a CSV sink cannot be continued."""
    spec = load_model_file(write(tmp_path, RESUMABLE.replace("OUT", str(tmp_path / "o.jsonl"))))
    with pytest.raises(RunError, match="no such checkpoint file"):
        spec.resume(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(RunError, match="cannot be read as a dogesim checkpoint"):
        spec.resume(tmp_path / "junk.ckpt")
    csv_spec = load_model_file(
        write(tmp_path, RESUMABLE.replace("{type: jsonl, path: 'OUT'}", "{type: csv, path: x.csv}"))
    )
    with pytest.raises(ModelError, match="a csv sink cannot be appended to"):
        csv_spec.resume(tmp_path / "junk.ckpt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hold: {exponential: 10m}", RandomHold("exponential", 10.0)),
        ("hold: {uniform: [5m, 20m]}", RandomHold("uniform", 5, 20)),
        ("hold: {uniform: [2, 3]}", RandomHold("uniform", 2, 3)),
    ],
)
def test_random_holds_are_read(tmp_path: Path, text: str, expected: RandomHold) -> None:
    """hold: {exponential: MEAN} and {uniform: [LOW, HIGH]} become per-grant draws in ticks,
    and a run with them draws lengths inside those bounds."""
    spec = load_model_file(write(tmp_path, ONLINE.replace("hold: 5m", text)))
    answer = spec.transitions[1]
    assert answer.hold == expected
    model = spec.model
    assert model.transitions[1].hold == expected
    lengths = [expected(None, model.transitions[1]) for _ in range(500)]
    if expected.kind == "uniform":
        assert set(lengths) == set(range(int(expected.low), int(expected.high) + 1))
    else:
        assert min(lengths) >= 1 and abs(sum(lengths) / 500 - 10) < 5 * 10 / math.sqrt(500)


# -- bad input: a clear error, bounded time and memory -----------------------------------


@pytest.mark.parametrize(
    "start",
    ["2024-02-30", "2024-01-01T25:00:00", "2024-13-01", "2023-02-29T00:00:00Z", "0000-01-01"],
)
def test_invalid_unquoted_dates_are_model_errors(tmp_path: Path, start: str) -> None:
    """An unquoted date or time YAML cannot build is refused at `start:` with its text."""
    message = error_of(tmp_path, BASE.replace("start: 2024-01-01T00:00:00Z", f"start: {start}"))
    assert message.startswith(f"m.yaml:7: start: '{start}' is not an ISO-8601 time"), message


def test_invalid_unquoted_date_elsewhere_stays_text(tmp_path: Path) -> None:
    """An impossible date under a key that takes text is just text."""
    spec = load_model_file(
        write(tmp_path, BASE.replace("name: tiny", "name: tiny\ndescription: 2024-02-30"))
    )
    assert spec.description == "2024-02-30"


@pytest.mark.parametrize(
    "start", ["99999999999999999", "'10000-01-01T00:00:00'", "-99999999999999999"]
)
def test_start_outside_the_calendar_is_refused(tmp_path: Path, start: str) -> None:
    """A start no calendar can print is refused at load, so validate and run agree."""
    message = error_of(tmp_path, BASE.replace("start: 2024-01-01T00:00:00Z", f"start: {start}"))
    assert message.startswith("m.yaml:7: start: "), message


def test_run_ending_after_the_calendar_is_refused(tmp_path: Path) -> None:
    """start + ticks x tick past year 9999 is refused at load and by an override."""
    late = BASE.replace("start: 2024-01-01T00:00:00Z", "start: 9999-12-31T23:59:50Z")
    message = error_of(tmp_path, late)
    assert "after the calendar's end" in message
    fits = load_model_file(write(tmp_path, late.replace("ticks: 20", "ticks: 5")))
    assert "from 9999-12-31T23:59:50Z" in fits.summary()
    assert fits.run(sinks=[MemorySink()]).ticks == 5
    with pytest.raises(ModelError, match="after the calendar's end"):
        load_model_file(write(tmp_path, late.replace("ticks: 20", "ticks: 5")), ticks=11)


@pytest.mark.parametrize("digits", [400, 4301, 5000])
@pytest.mark.parametrize(
    ("old", "where"),
    [
        ("probability: 30", "17: transitions[0].probability"),
        ("ticks: 20", "6: ticks"),
        ("seed: 5", "2: seed"),
        ("count: 30", "9: subjects.count"),
        ("start: 2024-01-01T00:00:00Z", "7: start"),
    ],
)
def test_huge_numbers_are_model_errors(tmp_path: Path, digits: int, old: str, where: str) -> None:
    """Integers of hundreds or thousands of digits are refused at their line and key (no
    OverflowError, no int-str limit ValueError), and the message stays short."""
    key = old.split(":")[0]
    message = error_of(tmp_path, BASE.replace(old, f"{key}: 1{'0' * (digits - 1)}"))
    assert message.startswith(f"m.yaml:{where}: "), message
    assert f"a number of {digits} digits is out of range" in message
    assert len(message) < 300


def test_huge_number_where_any_value_goes_is_shown_short(tmp_path: Path) -> None:
    """A huge integer in a list of numbers is named by its digits, not printed whole."""
    text = BASE.replace("size: {uniform_int: [1, 3]}", f"size: {{uniform_int: [1, 1{'0' * 5000}]}}")
    message = error_of(tmp_path, text)
    assert message.startswith("m.yaml:11: subjects.attributes.size.uniform_int[1]: 100000")
    assert "(5001 digits, out of range) is not a number" in message and len(message) < 200


@pytest.mark.parametrize(
    "where", ["description: {deep}", "sinks:\n  mem: {{type: memory, mapper: {deep}}}"]
)
def test_deep_nesting_is_a_model_error(tmp_path: Path, where: str) -> None:
    """~500 nested lists or mappings are refused at their line, not a RecursionError."""
    for deep in ("[" * 500 + "]" * 500, "{a: " * 500 + "1" + "}" * 500):
        text = BASE.replace("sinks:\n  mem: {type: memory}", where.format(deep=deep))
        message = error_of(tmp_path, text)
        assert "nest more than 64 levels" in message, message


_BOMB_LEAF = ", ".join(["'${HOME}'"] * 9)
# l0 holds 9 strings, each next level 9 aliases of the one before: 9**9 values in all.
ALIAS_BOMB = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else _BOMB_LEAF}]\n" for i in range(9)
)


def test_alias_bomb_is_refused_without_expanding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A billion-value alias bomb under an unknown key is refused, and ${} interpolation
    does not walk it first (counted)."""
    from dogesim.modelfile import source

    calls = {"n": 0}
    real = source._interpolate_str

    def counted(*args: Any) -> str:
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(source, "_interpolate_str", counted)
    message = error_of(tmp_path, BASE + ALIAS_BOMB)
    assert "aliases expand this file" in message
    assert calls["n"] == 0
    # The same bomb under a known key that reads no such value is refused as well.
    known = BASE.replace(
        "name: tiny", "name: tiny\ndescription:\n  " + ALIAS_BOMB.replace("\n", "\n  ")
    )
    assert "aliases expand this file" in error_of(tmp_path, known)
    assert calls["n"] == 0


def test_unknown_key_is_refused_before_interpolation(tmp_path: Path) -> None:
    """An unknown top-level key is reported even when its value names an unset variable."""
    message = error_of(tmp_path, BASE + "extra: ${NOT_SET_ANYWHERE}\n", environ={})
    assert message.startswith("m.yaml:23: extra: unknown key 'extra'")


def test_aliased_values_are_interpolated_once(tmp_path: Path) -> None:
    """A list shared through an alias keeps its $${ escape: it is interpolated once."""
    text = BASE.replace(
        "    size: {uniform_int: [1, 3]}",
        "    x: {choice: &d ['$${A}', '$${B}']}\n    y: {choice: *d}",
    )
    spec = load_model_file(write(tmp_path, text), environ={})
    assert spec.subjects.attributes["x"].params == ("${A}", "${B}")
    assert spec.subjects.attributes["y"].params == ("${A}", "${B}")


@pytest.mark.parametrize(
    ("sink", "key"),
    [
        ("{type: jsonl, path: null}", "path"),
        ("{type: jsonl, path: }", "path"),
        ("{type: csv, path: ~}", "path"),
        ("{type: db, url: null, table: t}", "url"),
        ("{type: db, url: 'sqlite://', table: null}", "table"),
        ("{type: kafka, bootstrap_servers: null, topic: t}", "bootstrap_servers"),
        ("{type: kafka, bootstrap_servers: 'x:1', topic: null}", "topic"),
    ],
)
def test_required_sink_key_set_to_null_is_missing(tmp_path: Path, sink: str, key: str) -> None:
    """A required key set to null fails validation (it crashed the run before)."""
    message = error_of(tmp_path, BASE.replace("tally: {type: counting}", f"tally: {sink}"))
    # The sink schema names the key itself (sinks.tally.path), saying it is null and required.
    assert message.startswith(f"m.yaml:14: sinks.tally.{key}: {key!r} is null; it is required"), (
        message
    )


@pytest.mark.parametrize(
    ("body", "raised"),
    [
        ("import sys\nsys.exit(7)\n", "SystemExit: 7"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("def cb(:\n", "SyntaxError"),
    ],
)
def test_callback_module_failing_at_import_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, raised: str
) -> None:
    """A callback module that exits, raises KeyboardInterrupt or fails at import gives a
    ModelError naming the file, line, key and module."""
    module = f"h7_bad_import_{abs(hash(body))}"
    (tmp_path / f"{module}.py").write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = BASE.replace("probability: 30}", f"probability: 30, callback: '{module}:cb'}}")
    message = error_of(tmp_path, text)
    assert message.startswith(
        f"m.yaml:17: transitions[0].callback: cannot import module {module!r}"
    )
    assert raised in message


def test_sink_path_under_a_file_is_a_sink_config_error(tmp_path: Path) -> None:
    """A file sink whose directory is a file fails to build with a SinkConfigError naming the
    sink, not an OSError."""
    from dogesim.errors import SinkConfigError

    (tmp_path / "plain").write_text("x")
    text = BASE.replace(
        "tally: {type: counting}", f"tally: {{type: jsonl, path: '{tmp_path}/plain/e.jsonl'}}"
    )
    spec = load_model_file(write(tmp_path, text))
    with pytest.raises(SinkConfigError, match=r"m.yaml:14: sinks.tally: cannot open jsonl"):
        spec.build_sinks(["tally"])


def _validation_seconds(n: int, monkeypatch: pytest.MonkeyPatch) -> float:
    """CPU seconds to validate a chain of `n` states, YAML parsing excluded."""
    import yaml

    from dogesim.modelfile import parse as parse_module
    from dogesim.modelfile.source import _LineLoader

    states = ", ".join(f"s{i}" for i in range(n))
    rows = "".join(
        f"  - {{trigger: t{i}, from: s{i}, to: s{i + 1}, probability: 1}}\n" for i in range(n - 1)
    )
    text = (
        f"states: [{states}]\ninitial_state: s0\ntick: 1s\nticks: 10\n"
        f"subjects: {{count: 1}}\ntransitions:\n{rows}"
    )
    parsed = yaml.load(text, Loader=_LineLoader)
    monkeypatch.setattr(parse_module.yaml, "load", lambda *_a, **_k: parsed)
    best = float("inf")
    for _ in range(2):
        started = time.process_time()
        load_model_text(text)
        best = min(best, time.process_time() - started)
    monkeypatch.undo()
    return best


@pytest.mark.slow
def test_validation_is_linear_in_states_and_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating 16x the states and transitions costs about 16x, not 256x (a generous
    bound on a CPU-time ratio; the quadratic checks made it ~80x at this size). A ratio of
    CPU times still moves on a loaded machine, so it runs in the slow profile; the model's
    own checks are bounded by counted comparisons in test_validation.py."""
    small = _validation_seconds(1_000, monkeypatch)
    large = _validation_seconds(16_000, monkeypatch)
    assert large / max(small, 1e-3) < 40, (small, large)


@pytest.mark.parametrize(
    "arrivals", ["arrivals: 1.0e+15", "arrivals: '1e12 per 1ms'", "arrivals: {rate: 1000000000}"]
)
def test_arrivals_beyond_the_subject_limit_are_refused(tmp_path: Path, arrivals: str) -> None:
    """Arrivals that would bring more than MAX_SUBJECTS subjects are refused at load (numpy's
    Poisson draw failed mid-run with `lam value too large`, found by the fuzz test)."""
    message = error_of(tmp_path, BASE + arrivals + "\n")
    assert "arrivals: about" in message and "999,999,999 subjects in all" in message
    fine = load_model_file(write(tmp_path, BASE + "arrivals: 2\n"))
    assert fine.run(sinks=[MemorySink()]).ticks == 20


def test_messages_quote_long_values_shortened(tmp_path: Path) -> None:
    """A 100,000-character value is quoted by its start and length, in quotes or in a list
    of names (messages stay short whatever the file holds)."""
    long_name = "x" * 100_000
    message = error_of(tmp_path, BASE.replace("from: a, to: b", f"from: {long_name}, to: b"))
    assert message.startswith("m.yaml:17: transitions[0].from: 'xxxxx")
    assert "(100,000 characters)" in message and len(message) < 400
    listed = error_of(tmp_path, BASE.replace("states: [a, b, c]", f"states: [{long_name}, b, c]"))
    assert "is not one of the states xxxxx" in listed and len(listed) < 400


@pytest.mark.parametrize(
    ("key", "target", "expected"),
    [
        ("factory", "os:system", "'os:system' cannot be called as factory()"),
        ("callback", "os:getcwd", "'os:getcwd' cannot be called as callback(subject, transition)"),
    ],
)
def test_functions_that_cannot_take_the_call_are_refused_at_load(
    tmp_path: Path, key: str, target: str, expected: str
) -> None:
    """A factory or callback whose signature cannot take the run's call is a ModelError at
    load (it was a TypeError mid-run)."""
    if key == "factory":
        text = BASE.replace(
            "  attributes:\n    size: {uniform_int: [1, 3]}\n", f"  factory: '{target}'\n"
        )
    else:
        text = BASE.replace("probability: 30}", f"probability: 30, callback: '{target}'}}")
    assert expected in error_of(tmp_path, text)


def test_factory_that_exits_fails_the_run_naming_it(tmp_path: Path) -> None:
    """A subject factory calling sys.exit fails the run with a RunError naming it, not a bare
    SystemExit."""
    text = BASE.replace(
        "  attributes:\n    size: {uniform_int: [1, 3]}\n", "  factory: 'sys:exit'\n"
    )
    spec = load_model_file(write(tmp_path, text))
    with pytest.raises(RunError, match=r"subjects.factory 'sys:exit' raised SystemExit"):
        spec.run(sinks=[MemorySink()])


# -- run settings as one options object ---------------------------------------------------


def test_options_carry_the_file_settings_and_the_overrides() -> None:
    """`ModelSpec.options` is the file's settings with the given overrides in their place."""
    spec = load_model_text(BASE + "jitter: true\nrecord_every: 5s\n")
    run, live = spec.options()
    assert (run.ticks, run.tick_ms, run.seed, run.jitter, run.record_every) == (
        20,
        1000,
        5,
        True,
        5,
    )
    assert run.timestamp_start == 1704067200000 and not live.enabled
    run, live = spec.options(seed=9, jitter=False, record_every="10s", live=True, speed=4.0)
    assert (run.seed, run.jitter, run.record_every) == (9, False, "10s")
    assert (live.enabled, live.speed) == (True, 4.0)
    assert run.timestamp_start is None  # live runs start at the wall clock


def test_options_without_a_seed_leave_the_choice_to_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No seed in the file or the call gives seed=None, so DOGESIM_SEED decides the run."""
    spec = load_model_text(BASE.replace("seed: 5\n", ""))
    assert spec.options()[0].seed is None
    monkeypatch.setenv("DOGESIM_SEED", "123")
    first = spec.run(sinks=[MemorySink()])
    second = spec.run(sinks=[MemorySink()])
    assert first.seed == second.seed == 123
    assert first.events_by_trigger() == second.events_by_trigger()


def test_seeded_spec_run_equals_the_python_api_with_its_options() -> None:
    """A spec run and a Simulation built by hand from the spec's options give the same events."""
    from dogesim import Simulation

    spec = load_model_text(BASE)
    via_spec = MemorySink()
    spec.run(sinks=[via_spec], seed=77)
    by_hand = MemorySink()
    run, live = spec.options([by_hand], seed=77)
    Simulation(
        spec.build_model([by_hand]),
        spec.subjects.count,
        subject_factory=spec.subject_factory(77),
        options=run,
        live=live,
    ).run()
    assert len(via_spec.events) > 0
    assert via_spec.events == by_hand.events  # timestamps, subjects (with attributes), moves


def test_an_unknown_run_option_is_named() -> None:
    """A misspelt override is refused, naming it and its near miss, before sinks open."""
    spec = load_model_text(BASE)
    with pytest.raises(ModelError, match=r"'recrd_every' is not a run setting \(did you mean "):
        spec.simulation(recrd_every=5)


def test_record_every_key_sets_the_result_resolution() -> None:
    """`record_every: 5s` at 1 s ticks gives per-tick tables of one row per 5 ticks."""
    result = load_model_text(BASE + "record_every: 5s\n").run(sinks=[MemorySink()])
    assert list(result.row_ticks()) == [4, 9, 14, 19]
    assert result.occupancy.sum(axis=1).tolist() == [30] * 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1500ms", "record_every: '1500ms' is not a whole number of ticks of 1s"),
        ("0", "record_every"),
        ("[1]", "record_every: [1]"),
    ],
)
def test_bad_record_every_is_named(tmp_path: Path, value: str, expected: str) -> None:
    """A record_every that is not a whole number of ticks is refused at its line."""
    message = error_of(tmp_path, BASE + f"record_every: {value}\n")
    assert message.startswith("m.yaml:"), message
    assert expected in message, message


# -- periodic checkpoints, shards, resume checks ----------------------------------------


def test_checkpoint_block_and_shards_key_are_read(tmp_path: Path) -> None:
    """`checkpoint: {path, every: 10s}` becomes RunOptions(checkpoint_path, checkpoint_every
    in ticks) through options(); `shards: 3` is ModelSpec.shards; overrides replace them."""
    text = BASE + "checkpoint: {path: run.ckpt, every: 10s}\nshards: 3\n"
    spec = load_model_file(write(tmp_path, text))
    assert (spec.checkpoint_path, spec.checkpoint_every, spec.shards) == ("run.ckpt", 10, 3)
    run, _ = spec.options()
    assert (run.checkpoint_path, run.checkpoint_every) == ("run.ckpt", 10)
    run, _ = spec.options(checkpoint_path="other.ckpt", checkpoint_every="1m")
    assert (run.checkpoint_path, run.checkpoint_every) == ("other.ckpt", "1m")
    assert "3 shards, checkpoint every 10 ticks" in spec.summary()
    plain = load_model_file(write(tmp_path, BASE, "plain.yaml"))
    assert (plain.checkpoint_path, plain.checkpoint_every, plain.shards) == (None, None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("checkpoint: {every: 10s}", "checkpoint: missing required key 'path'"),
        ("checkpoint: {path: c.ckpt, every: 1500ms}", "not a whole number of ticks of 1s"),
        ("checkpoint: {path: c.ckpt, evry: 10}", "evry"),
        ("shards: 0", "shards: 0 is too small; it must be at least 1"),
        ("shards: two", "shards: 'two' is not a whole number"),
    ],
)
def test_checkpoint_and_shards_mistakes_are_named(tmp_path: Path, extra: str, message: str) -> None:
    """A checkpoint block without a path, with an `every` of part ticks or an unknown key,
    and shards that are not a whole number >= 1 are refused at load, naming the key."""
    assert message in error_of(tmp_path, BASE + extra + "\n")


def test_periodic_checkpoint_of_a_model_file_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    """A run of a file with `checkpoint: {path, every: 30}` stopped at tick 100 leaves its
    periodic checkpoint of tick 90; resuming that equals the uninterrupted run's bytes."""
    whole_path = tmp_path / "whole.jsonl"
    load_model_file(write(tmp_path, RESUMABLE.replace("OUT", str(whole_path)), "w.yaml")).run()
    part_path = tmp_path / "part.jsonl"
    ckpt = tmp_path / "every.ckpt"
    text = RESUMABLE.replace("OUT", str(part_path)) + f"checkpoint: {{path: '{ckpt}', every: 30}}\n"
    spec = load_model_file(write(tmp_path, text, "p.yaml"))

    def stop_at(ticks_done: int) -> None:
        if ticks_done >= 100:
            sim.stop()

    sim = spec.simulation(progress=stop_at)
    assert sim.run().stopped
    assert ckpt.is_file()
    rest = spec.resume(ckpt).run()
    assert rest.ticks == 300 and not rest.stopped
    assert part_path.read_bytes() == whole_path.read_bytes()


def test_resume_names_a_changed_seed_or_ticks(tmp_path: Path) -> None:
    """spec.resume checks the file's seed, ticks and subjects against the checkpoint and
    names the one that changed."""
    out = str(tmp_path / "o.jsonl")
    spec = load_model_file(write(tmp_path, RESUMABLE.replace("OUT", out)))
    sim = spec.simulation(progress=lambda done: sim.stop() if done >= 50 else None)
    sim.run()
    sim.checkpoint(tmp_path / "c.ckpt")
    for changes, named in (({"seed": 99}, "-> 99"), ({"ticks": 301}, "ticks: 300 -> 301")):
        changed = load_model_file(write(tmp_path, RESUMABLE.replace("OUT", out)), **changes)
        with pytest.raises(RunError, match=re.escape(named)):
            changed.resume(tmp_path / "c.ckpt")


BOXES = '''
"""Subjects that are not data: a checkpoint can hold them only as a pickle."""


class Box:
    def __init__(self):
        self.id = 0


def box():
    return Box()
'''


def test_resume_of_pickled_subjects_needs_allow_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subjects of a factory class are checkpointed only as a pickle; spec.resume refuses
    that file unless allow_pickle=True, and with it runs to the end."""
    (tmp_path / "h19_boxes.py").write_text(BOXES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (
        BASE.replace("  attributes:\n    size: {uniform_int: [1, 3]}", "  factory: 'h19_boxes:box'")
        .replace("sinks: [mem, tally]", "sinks: [tally]")
        .replace("default_sinks: [mem]", "default_sinks: [tally]")
    )
    spec = load_model_file(write(tmp_path, text))
    sim = spec.simulation(progress=lambda done: sim.stop() if done >= 5 else None)
    sim.run()
    with pytest.raises(RunError):
        sim.checkpoint(tmp_path / "c.ckpt")
    sim.checkpoint(tmp_path / "c.ckpt", allow_pickle=True)
    with pytest.raises(RunError, match="pickle"):
        spec.resume(tmp_path / "c.ckpt")
    rest = spec.resume(tmp_path / "c.ckpt", allow_pickle=True).run()
    assert rest.ticks == 20 and not rest.stopped
