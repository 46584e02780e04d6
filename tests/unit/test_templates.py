"""Payload templates: compiled mappers, the safe expression language, seeded Faker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim.engine import Simulation
from dogesim.errors import ModelError
from dogesim.model import Model, Transition
from dogesim.relations import EntityPool
from dogesim.sinks.files import JsonLinesSink
from dogesim.sinks.memory import MemorySink
from dogesim.templates import Template, TemplateSubjectFactory, compile_template, new_run_counter
from dogesim.templates.expressions import MAX_LENGTH, MAX_REPEAT

pytest.importorskip("faker")

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
BUY = Transition("buy", "browsing", "paying", 10)


def _user(**fields: Any) -> SimpleNamespace:
    base = {"id": 7, "balance": 250, "address": {"city": "Lyon"}, "tags": ["a", "b"]}
    return SimpleNamespace(**{**base, **fields})


def test_template_maps_subject_transition_time_and_constants_exactly() -> None:
    """One event gives exactly the payload the template describes."""
    mapper = compile_template(
        {
            "user": {"id": {"subject": "id"}, "city": {"subject": "address.city"}},
            "event": {"transition": "trigger"},
            "path": [{"transition": "from_state"}, {"transition": "to_state"}],
            "ms": {"time": "epoch_ms"},
            "s": {"time": "epoch_s"},
            "iso": {"time": "iso"},
            "day": {"time": "date"},
            "hm": {"time": "format", "format": "%H:%M"},
            "source": "shop",
            "version": 2,
            "meta": {"const": {"tags": ["x"], "time": 1}},
            "fee": {"expr": "round(subject.balance * 0.013, 2)"},
            "text": {"subject": "balance", "cast": "str"},
            "zip": {"subject": "address.zip", "default": None},
        }
    )
    assert mapper(T0, _user(), BUY) == {
        "user": {"id": 7, "city": "Lyon"},
        "event": "buy",
        "path": ["browsing", "paying"],
        "ms": T0,
        "s": T0 // 1000,
        "iso": "2023-11-14T22:13:20.123Z",
        "day": "2023-11-14",
        "hm": "22:13",
        "source": "shop",
        "version": 2,
        "meta": {"tags": ["x"], "time": 1},
        "fee": 3.25,
        "text": "250",
        "zip": None,
    }


def test_sequences_number_events_per_mapper_per_subject_and_per_run() -> None:
    """seq: event counts this mapper's events, seq: subject each subject's, seq: run the run's."""
    spec = {"e": {"seq": "event", "start": 1}, "s": {"seq": "subject"}, "r": {"seq": "run"}}
    counter = new_run_counter()
    first = Template(spec, path="a").mapper(0, counter)
    second = Template(spec, path="b").mapper(0, counter)
    alice, bob = _user(id=1), _user(id=2)
    got = [
        first(0, alice, BUY),
        first(0, bob, BUY),
        second(0, alice, BUY),
        first(0, alice, BUY),
    ]
    assert got == [
        {"e": 1, "s": 0, "r": 0},
        {"e": 2, "s": 0, "r": 1},
        {"e": 1, "s": 0, "r": 2},
        {"e": 3, "s": 1, "r": 3},
    ]


def test_a_new_run_mapper_starts_its_counters_again() -> None:
    """Template.mapper gives fresh counters for each run."""
    template = Template({"n": {"seq": "event"}})
    run1 = template.mapper(1)
    assert [run1(0, _user(), BUY)["n"] for _ in range(3)] == [0, 1, 2]
    assert template.mapper(1)(0, _user(), BUY) == {"n": 0}


def test_nested_paths_read_attributes_and_mapping_keys_alike() -> None:
    """A dotted path follows attributes of objects and keys of mappings, at any depth."""
    mapper = compile_template({"a": {"subject": "home.city.name"}, "b": {"subject": "tags"}})
    objects = _user(home=SimpleNamespace(city=SimpleNamespace(name="Oslo")))
    mixed = _user(home={"city": SimpleNamespace(name="Rome")})
    dicts = _user(home={"city": {"name": "Bern"}})
    assert [mapper(0, s, BUY)["a"] for s in (objects, mixed, dicts)] == ["Oslo", "Rome", "Bern"]
    with pytest.raises(ModelError, match=r"^value\.a: KeyError"):
        mapper(0, _user(home={}), BUY)


def test_key_templates_take_subject_and_transition_and_encode_as_text() -> None:
    """A key template is a Kafka key function (subject, transition) giving text or None."""
    key = Template({"expr": "str(subject.id) + '-' + trigger"}, path="k", kind="key")
    assert key.mapper(0, encode="text")(_user(), BUY) == "7-buy"
    assert (
        Template({"subject": "zip", "default": None}, kind="key").mapper(encode="text")(
            _user(), BUY
        )
        is None
    )
    with pytest.raises(ModelError, match=r"^k: a key template has no event time"):
        Template({"time": "iso"}, path="k", kind="key")
    with pytest.raises(ModelError, match="unknown name 'timestamp'"):
        Template({"expr": "timestamp"}, kind="key")
    with pytest.raises(ModelError, match="template kind 'row'"):
        Template({}, kind="row")


def test_json_encoding_gives_compact_text_of_the_payload() -> None:
    """encode='json' gives compact JSON text (non-ASCII kept), for Kafka values."""
    template = Template({"id": {"subject": "id"}, "city": "Zürich", "n": {"seq": "event"}})
    value = template.mapper(0, encode="json")
    assert value(0, _user(), BUY) == '{"id":7,"city":"Zürich","n":0}'
    assert value(0, _user(), BUY) == '{"id":7,"city":"Zürich","n":1}'
    with pytest.raises(ModelError, match="encode 'yaml'"):
        template.mapper(0, encode="yaml")


def test_constant_mappings_are_new_objects_for_every_event() -> None:
    """A stored payload is not changed by a later event (constants are rebuilt per event)."""
    mapper = compile_template({"meta": {"const": {"tags": ["x"]}}})
    first = mapper(0, _user(), BUY)
    first["meta"]["tags"].append("changed")
    assert mapper(0, _user(), BUY) == {"meta": {"tags": ["x"]}}


def test_expressions_compute_arithmetic_comparisons_and_functions() -> None:
    """The expression language gives Python's results for what it allows."""
    cases = {
        "subject.balance // 3 + subject.balance % 7": 250 // 3 + 250 % 7,
        "max(subject.balance, 300) - min(1, 2)": 299,
        "'rich' if subject.balance > 100 else 'poor'": "rich",
        "subject.tags[1] + str(len(subject.tags))": "b2",
        "subject.address['city']": "Lyon",
        "trigger == 'buy' and from_state != to_state": True,
        "int(timestamp / 1000) == 1700000000": True,
        "abs(-2) ** 3 * float('1.5')": 12.0,
        "not subject.balance in (1, 2)": True,
    }
    mapper = compile_template({k: {"expr": k} for k in cases}, path="v")
    assert mapper(T0, _user(), BUY) == cases


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.one_of(
            st.integers(-50, 50).map(str),
            st.just("subject.balance"),
            st.just("subject.n"),
        ),
        lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "<", "=="]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=12,
    )
)
def test_expressions_agree_with_python_on_random_arithmetic(text: str) -> None:
    """Random arithmetic over subject attributes gives the same value as Python itself."""
    subject = SimpleNamespace(balance=13, n=-4)
    expected = eval(text, {"__builtins__": {}}, {"subject": subject})
    assert compile_template({"x": {"expr": text}})(0, subject, BUY) == {"x": expected}


@pytest.mark.parametrize(
    ("spec", "where", "why"),
    [
        ({"a": {"expr": "__import__('os')"}}, "value.a", "only these functions"),
        ({"a": {"expr": "__builtins__"}}, "value.a", "unknown name '__builtins__'"),
        ({"a": {"expr": "subject.__class__"}}, "value.a", "starts with '_'"),
        ({"a": {"expr": "(1).real"}}, "value.a", "only be read from subject"),
        ({"a": {"expr": "open('x')"}}, "value.a", "only these functions"),
        ({"a": {"expr": "round(1, ndigits=2)"}}, "value.a", "positional"),
        ({"a": {"expr": "[x for x in subject.tags]"}}, "value.a", "not allowed"),
        ({"a": {"expr": "lambda: 1"}}, "value.a", "not allowed"),
        ({"a": {"expr": "2 ** subject.balance"}}, "value.a", "exponent"),
        ({"a": {"expr": "2 ** 100000"}}, "value.a", "exponent"),
        ({"a": {"expr": "subject.tags[subject.balance]"}}, "value.a", "index"),
        ({"a": {"expr": "1 +"}}, "value.a", "does not parse"),
        ({"a": {"expr": "1" + "+1" * MAX_LENGTH}}, "value.a", "too long"),
        ({"a": {"expr": "+".join(["1"] * 150)}}, "value.a", "parts"),
        ({"a": {"expr": 5}}, "value.a", "not a string"),
        ({"a": {"expr": "round"}}, "value.a", "is a function"),
        ({"u": {"n": {"subject": "_secret"}}}, "value.u.n", "dotted path"),
        ({"u": {"n": {"subject": "a..b"}}}, "value.u.n", "dotted path"),
        ({"u": {"n": {"subject": "a.class"}}}, "value.u.n", "dotted path"),
        ({"u": {"n": {"subject": 3}}}, "value.u.n", "dotted path"),
        ({"t": {"time": "unix"}}, "value.t", "time format 'unix'"),
        ({"t": {"time": "iso", "format": "%Y"}}, "value.t", "exactly with time: format"),
        ({"t": {"transition": "probability"}}, "value.t", "transition field"),
        ({"q": {"seq": "tick"}}, "value.q", "sequence 'tick'"),
        ({"q": {"seq": "event", "start": "1"}}, "value.q.start", "whole number"),
        ({"c": {"subject": "id", "cast": "list"}}, "value.c.cast", "give one of"),
        ({"c": {"subject": "id", "fmt": 1}}, "value.c", "unknown option 'fmt'"),
        ({"c": {"subject": "id", "const": 1}}, "value.c", "several directives"),
        ({"c": {"object": [1]}}, "value.c.object", "not a mapping"),
        ({"c": {"const": {1: 2}}}, "value.c", "not a string"),
        ({"c": {"const": object()}}, "value.c", "not a string, number"),
        ({"f": {"faker": "no_such_provider"}}, "value.f", "not a Faker provider"),
        ({"f": {"faker": "seed_instance"}}, "value.f", "not a Faker provider"),
        ({"f": {"faker": "_get_weights"}}, "value.f", "not a Faker provider"),
        ({"f": {"faker": "pyint", "args": {"nope": 1}}}, "value.f", "fails"),
        ({"f": {"faker": "pyint", "args": 3}}, "value.f.args", "mapping or a list"),
        ({"f": {"faker": "name", "locale": 5}}, "value.f.locale", "not a locale"),
        ({"f": {"faker": "name", "locale": "xx_NOPE"}}, "value.f", "locale"),
        ({"r": {"ref": "custmers"}}, "value.r", "did you mean 'customers'"),
        ({"r": {"ref": "customers", "law": "pareto"}}, "value.r", "unknown law 'pareto'"),
        ({"r": {"ref": "customers", "law": "zipf", "s": 0}}, "value.r", "s=0"),
    ],
)
def test_compile_errors_name_the_field_path_and_the_bad_value(
    spec: dict[str, Any], where: str, why: str
) -> None:
    """Every invalid field is a ModelError at build time naming its path and what is wrong."""
    with pytest.raises(ModelError) as caught:
        Template(spec, pools={"customers": EntityPool("customers")})
    message = str(caught.value)
    assert message.startswith(f"{where}:"), message
    assert why in message, message


def test_event_directives_are_refused_in_a_subject_template() -> None:
    """A subject template has no event: subject, transition and time fields are errors."""
    for field in ({"subject": "id"}, {"transition": "trigger"}, {"time": "iso"}):
        with pytest.raises(ModelError, match=r"^subjects\.attributes\.x: .* needs an event"):
            TemplateSubjectFactory({"x": field})
    with pytest.raises(ModelError, match="unknown name 'subject'"):
        TemplateSubjectFactory({"x": {"expr": "subject.id"}})


def test_runtime_failures_name_the_failing_field() -> None:
    """A field that fails on an event raises a ModelError naming that field and the event."""
    mapper = compile_template(
        {"ok": {"subject": "id"}, "user": {"name": {"subject": "name"}}}, path="value"
    )
    with pytest.raises(ModelError, match=r"^value\.user\.name: AttributeError: .*'buy' at 5"):
        mapper(5, _user(), BUY)


def test_string_repetition_is_bounded() -> None:
    """'x' * a huge number is refused mid-run instead of exhausting memory."""
    mapper = compile_template({"pad": {"expr": "subject.s * subject.n"}})
    assert mapper(0, SimpleNamespace(s="ab", n=3), BUY) == {"pad": "ababab"}
    with pytest.raises(ModelError, match=rf"^value\.pad: .*exceeds {MAX_REPEAT}"):
        mapper(0, SimpleNamespace(s="ab", n=10**9), BUY)


def _faker_spec() -> dict[str, Any]:
    return {
        "name": {"faker": "name"},
        "email": {"faker": "email"},
        "price": {
            "faker": "pydecimal",
            "args": {"left_digits": 3, "right_digits": 2, "positive": True},
        },
        "born": {"faker": "date_of_birth"},
        "city_de": {"faker": "city", "locale": "de_DE"},
    }


def _draws(mapper: Any, n: int = 20) -> list[dict[str, Any]]:
    return [mapper(i, _user(), BUY) for i in range(n)]


def test_faker_fields_are_reproducible_from_the_run_seed_and_template_path() -> None:
    """Same seed and path: the same values; another seed or path: other values."""
    template = Template(_faker_spec(), path="sinks.orders.value")
    first = _draws(template.mapper(42))
    # Another template built and drawn from in between changes nothing.
    _draws(Template(_faker_spec(), path="sinks.other.value").mapper(42))
    assert _draws(Template(_faker_spec(), path="sinks.orders.value").mapper(42)) == first
    assert _draws(template.mapper(43)) != first
    assert _draws(Template(_faker_spec(), path="sinks.x.value").mapper(42)) != first


def test_faker_values_are_plain_and_follow_provider_arguments() -> None:
    """pydecimal gives floats within its digits, dates become ISO text, locales apply."""
    rows = _draws(compile_template(_faker_spec(), seed=3), 200)
    assert all(isinstance(r["price"], float) and 0 < r["price"] < 1000 for r in rows)
    assert all(round(r["price"], 2) == r["price"] for r in rows)
    assert all(isinstance(r["born"], str) and len(r["born"]) == 10 for r in rows)
    assert all(isinstance(r["name"], str) and " " in r["name"] for r in rows)
    assert len({r["email"] for r in rows}) > 150
    json.dumps(rows)  # every value is writable as JSON
    german = compile_template({"n": {"faker": "first_name"}}, seed=3, locale="de_DE")
    english = compile_template({"n": {"faker": "first_name"}}, seed=3, locale="en_US")
    assert _draws(german) != _draws(english)


def test_several_locales_are_each_used_and_reproducible() -> None:
    """With a list of locales every event picks one (seeded), so all of them appear."""
    spec = {"country": {"faker": "current_country_code"}}
    mapper = compile_template(spec, seed=1, locale=["de_DE", "fr_FR"])
    codes = [row["country"] for row in _draws(mapper, 60)]
    assert set(codes) == {"DE", "FR"}
    again = compile_template(spec, seed=1, locale=["de_DE", "fr_FR"])
    assert [row["country"] for row in _draws(again, 60)] == codes


def test_faker_streams_do_not_depend_on_pythonhashseed(tmp_path: Path) -> None:
    """Two interpreters with different hash seeds draw the same Faker values."""
    script = (
        "import json; from types import SimpleNamespace as S; "
        "from dogesim.templates import compile_template; "
        "from dogesim.model import Transition; "
        "m = compile_template({'n': {'faker': 'name'}, 'a': {'faker': 'address'}, "
        "'w': {'faker': 'words', 'args': {'nb': 3}}, 'c': {'faker': 'city', 'locale': "
        "['de_DE', 'fr_FR']}}, seed=5); t = Transition('x', 'a', 'b', 1); "
        "print(json.dumps([m(i, S(id=i), t) for i in range(30)]))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1000


def test_templates_without_faker_fields_do_not_import_faker() -> None:
    """Compiling and running a template with no faker field leaves faker unimported."""
    script = (
        "import sys; from dogesim.templates import compile_template; "
        "from dogesim.relations import EntityPool; import dogesim.faults; "
        "m = compile_template({'a': {'expr': '1 + 2'}, 't': {'time': 'iso'}}); "
        "print('faker' in sys.modules, 'dogesim.templates' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def _model(*sinks: Any) -> Model:
    return Model(
        ["browsing", "paying", "gone"],
        "browsing",
        [
            Transition("buy", "browsing", "paying", 30, event_sinks=list(sinks)),
            Transition("paid", "paying", "browsing", 50, event_sinks=list(sinks)),
            Transition("leave", "browsing", "gone", 2, event_sinks=list(sinks)),
        ],
    )


def _run_to_file(path: Path, seed: int) -> bytes:
    pool = EntityPool("customers")
    factory = TemplateSubjectFactory(
        {"name": {"faker": "name"}, "balance": {"faker": "pyint", "args": [0, 900]}},
        seed,
        pool=pool,
    )
    value = Template(
        {
            "id": {"seq": "event"},
            "at": {"time": "iso"},
            "customer": {"subject": "id"},
            "name": {"subject": "name"},
            "event": {"transition": "trigger"},
            "referrer": {"ref": "customers", "law": "zipf", "s": 1.1},
            "coupon": {"faker": "bothify", "args": {"text": "??-####"}},
        },
        path="sinks.events.value",
        pools={"customers": pool},
    )
    sink = JsonLinesSink(path, value.mapper(seed))
    Simulation(_model(sink), 30, subject_factory=factory, ticks=50, tick_ms=1000, seed=seed).run()
    return path.read_bytes()


def test_a_templated_run_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    """The same seed writes the same file, byte for byte; another seed another file."""
    first = _run_to_file(tmp_path / "a.jsonl", 11)
    assert first.count(b"\n") > 100
    assert _run_to_file(tmp_path / "b.jsonl", 11) == first
    assert _run_to_file(tmp_path / "c.jsonl", 12) != first


def test_subject_factory_numbers_subjects_and_joins_a_pool() -> None:
    """Subjects get ids 0, 1, ..., template attributes, and enter the pool as created."""
    pool = EntityPool("customers")
    factory = TemplateSubjectFactory(
        {
            "name": {"faker": "name"},
            "code": {"expr": "'C' + str(index * 10)"},
            "rank": {"seq": "subject", "start": 1},
            "vip": {"faker": "boolean"},
            "home": {"city": {"const": "Oslo"}},
            "weight": {"expr": "index + 1"},
        },
        5,
        pool=pool,
        weight="weight",
    )
    people = [factory() for _ in range(3)]
    assert [(p.id, p.code, p.rank, p.home) for p in people] == [
        (0, "C0", 1, {"city": "Oslo"}),
        (1, "C10", 2, {"city": "Oslo"}),
        (2, "C20", 3, {"city": "Oslo"}),
    ]
    assert pool.ids() == [0, 1, 2]
    again = TemplateSubjectFactory({"name": {"faker": "name"}}, 5)
    other = TemplateSubjectFactory({"name": {"faker": "name"}}, 6)
    names = [again().name for _ in range(5)]
    replay = again.template.mapper(5)
    assert names == [replay(i)["name"] for i in range(5)]
    assert names != [other().name for _ in range(5)]


def test_subject_factory_refuses_bad_attribute_names() -> None:
    """Attribute names must be identifiers; the weight must be an attribute."""
    with pytest.raises(ModelError, match="attribute name 'a b'"):
        TemplateSubjectFactory({"a b": 1})
    with pytest.raises(ModelError, match="weight attribute 'w'"):
        TemplateSubjectFactory({"a": 1}, weight="w")


def test_templates_feed_a_memory_sink_through_the_engine() -> None:
    """Through a real run, every stored payload is the template applied to its event."""
    value = compile_template(
        {"who": {"subject": "id"}, "what": {"transition": "trigger"}, "at": {"time": "epoch_ms"}}
    )
    sink = MemorySink(value)
    raw = MemorySink()
    Simulation(_model(sink, raw), 10, ticks=20, tick_ms=500, seed=2).run()
    assert len(sink.events) > 20
    assert sink.events == [
        {"who": e.subject.id, "what": e.trigger, "at": e.timestamp} for e in raw.events
    ]


def test_a_failing_subject_attribute_names_the_attribute_and_the_subject() -> None:
    """A subject template failing for one subject names the attribute and its index."""
    factory = TemplateSubjectFactory({"x": {"expr": "10 // (index - 2)"}})
    assert [factory().x for _ in range(2)] == [-5, -10]
    with pytest.raises(ModelError, match=r"^subjects\.attributes\.x: ZeroDivisionError.*#2\)"):
        factory()
