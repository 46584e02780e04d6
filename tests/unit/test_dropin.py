"""doge-datagen 1.0.4 programs and tests run on dogesim with only the package name changed.

The behaviours doge-datagen's own suite pins (call order of callbacks and sinks, vetoes, final
states, errors for unknown states), its module paths and public names, the attributes its
programs read (``subjects_states``, ``timestamp``, the ``__stay`` entries), and the
reproducibility of a program that calls ``random.seed(N)`` and gives no seed.
"""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest.mock import MagicMock, Mock

import pytest

import dogesim
from dogesim import DataOnlineGenerator, EventSink, ModelError, SubjectFactory, Transition
from dogesim.compat import SubjectStates

# -- recording helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    """A hashable subject, as doge-datagen's subjects had to be."""

    number: int


class BadgeFactory(SubjectFactory[Badge]):
    """Hands out badges 1, 2, 3, ... and is callable too (calling it is the wrong path)."""

    def __init__(self) -> None:
        self.issued = 0

    def create(self) -> Badge:
        self.issued += 1
        return Badge(self.issued)

    def __call__(self) -> str:
        return "called instead of create()"


class Journal(EventSink):
    """A real sink that writes down every event and every close."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, Any, str, str, str]] = []
        self.closes = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.lines.append(
            (timestamp, subject, transition.trigger, transition.from_state, transition.to_state)
        )

    def close(self) -> None:
        self.closes += 1


class Gate:
    """An action callback answering from a script of verdicts, writing down each attempt."""

    def __init__(self, *verdicts: bool) -> None:
        self.verdicts = list(verdicts)
        self.attempts: list[tuple[Any, str, str, str]] = []

    def __call__(self, subject: Any, transition: Transition) -> bool:
        self.attempts.append(
            (subject, transition.trigger, transition.from_state, transition.to_state)
        )
        return self.verdicts.pop(0) if self.verdicts else True


def _pipeline(
    states: list[str], subjects: int, ticks: int, *, start: int = 0, tick_ms: int = 250
) -> tuple[DataOnlineGenerator[Badge], BadgeFactory]:
    factory = BadgeFactory()
    gen: DataOnlineGenerator[Badge] = DataOnlineGenerator(
        states, states[0], factory, subjects, tick_ms, ticks, start
    )
    return gen, factory


# -- the behaviours of doge-datagen's own suite -------------------------------------------------


def test_certain_moves_run_subjects_in_creation_order_tick_by_tick() -> None:
    """Two subjects on two certain moves: callbacks and events per tick, in creation order."""
    gen, _ = _pipeline(["queued", "printing", "done"], 2, 3, start=10_000)
    gate, journal = Gate(), Journal()
    gen.add_transition("print", "queued", "printing", 100, gate, [journal])
    gen.add_transition("finish", "printing", "done", 100, gate, [journal])
    gen.start()
    one, two = Badge(1), Badge(2)
    assert gate.attempts == [
        (one, "print", "queued", "printing"),
        (two, "print", "queued", "printing"),
        (one, "finish", "printing", "done"),
        (two, "finish", "printing", "done"),
    ]
    assert journal.lines == [
        (10_000, one, "print", "queued", "printing"),
        (10_000, two, "print", "queued", "printing"),
        (10_250, one, "finish", "printing", "done"),
        (10_250, two, "finish", "printing", "done"),
    ]
    assert journal.closes == 1


def test_a_final_state_ends_the_walk() -> None:
    """A subject that reaches a state without outgoing moves makes no more attempts."""
    gen, _ = _pipeline(["open", "closed"], 1, 5)
    gate, journal = Gate(), Journal()
    gen.add_transition("shut", "open", "closed", 100, gate, [journal])
    gen.start()
    assert gate.attempts == [(Badge(1), "shut", "open", "closed")]
    assert journal.lines == [(0, Badge(1), "shut", "open", "closed")]
    assert journal.closes == 1


def test_a_vetoed_attempt_is_retried_next_tick_without_an_event() -> None:
    """A falsy callback result keeps the subject in place; the next tick's attempt moves it."""
    gen, _ = _pipeline(["draft", "sent", "read"], 1, 2)
    gate, journal = Gate(False, True), Journal()
    gen.add_transition("send", "draft", "sent", 100, gate, [journal])
    gen.add_transition("read", "sent", "read", 100, gate, [journal])
    gen.start()
    assert gate.attempts == [(Badge(1), "send", "draft", "sent")] * 2
    assert journal.lines == [(250, Badge(1), "send", "draft", "sent")]
    assert journal.closes == 1


@pytest.mark.parametrize("kind", [Mock, MagicMock])
def test_a_mock_sink_gets_every_event_through_collect(kind: type[Mock]) -> None:
    """doge-datagen programs and tests pass a bare ``Mock()`` as a sink and count its
    ``collect`` calls. A Mock answers every attribute, so asking it for ``collect_many``
    found one and the engine sent the tick there: ``collect`` was never called (doge-datagen's
    own suite failed so). Optional sink methods count only when the sink defines them."""
    gen, _ = _pipeline(["queued", "printing", "done"], 2, 3, start=10_000)
    sink = kind()
    gen.add_transition("print", "queued", "printing", 100, Gate(), [sink])
    gen.add_transition("finish", "printing", "done", 100, Gate(), [sink])
    gen.start()
    one, two = Badge(1), Badge(2)
    assert [(*c.args[:2], c.args[2].trigger) for c in sink.collect.call_args_list] == [
        (10_000, one, "print"),
        (10_000, two, "print"),
        (10_250, one, "finish"),
        (10_250, two, "finish"),
    ]
    called = {name for name, _args, _kwargs in sink.mock_calls}
    assert called <= {"collect", "close"}, called


def test_a_sink_that_sets_collect_many_on_itself_still_gets_the_batch() -> None:
    """A sink may offer ``collect_many`` as an instance attribute (the owner says what it
    means): the engine uses it, as before."""
    gen, _ = _pipeline(["queued", "printing"], 3, 1)
    journal, batches = Journal(), []
    journal.collect_many = lambda ts, subjects, transitions: batches.append(  # type: ignore[attr-defined]
        (ts, list(subjects), [t.trigger for t in transitions])
    )
    gen.add_transition("print", "queued", "printing", 100, Gate(), [journal])
    gen.start()
    assert batches == [(0, [Badge(1), Badge(2), Badge(3)], ["print"] * 3)]
    assert journal.lines == []


def test_unknown_states_are_value_errors() -> None:
    """An unknown from/to state in add_transition, or initial state, is a ValueError."""
    gen, _ = _pipeline(["x", "y"], 1, 1)
    with pytest.raises(ValueError, match="nowhere"):
        gen.add_transition("go", "nowhere", "y", 50)
    with pytest.raises(ValueError, match="nowhere"):
        gen.add_transition("go", "x", "nowhere", 50)
    with pytest.raises(ValueError, match="nowhere"):
        DataOnlineGenerator(["x", "y"], "nowhere", BadgeFactory(), 1, 1000, 1)


# -- subject factories ----------------------------------------------------------------------------


def test_callable_factory_with_create_is_used_through_create() -> None:
    """An object that has create() and is also callable makes subjects through create()."""
    gen, factory = _pipeline(["s"], 3, 1)
    gen.start()
    assert gen.subjects == [Badge(1), Badge(2), Badge(3)]
    assert factory.issued == 3


def test_mock_subject_factory_is_used_through_create() -> None:
    """A ``Mock(SubjectFactory)`` (callable, like every Mock) gives its create() results."""
    factory = Mock(SubjectFactory)
    factory.create = Mock(side_effect=["first", "second"])
    gen = DataOnlineGenerator(["s"], "s", factory, 2, 1000, 1)
    gen.start()
    assert gen.subjects == ["first", "second"]
    assert factory.create.call_count == 2
    factory.assert_not_called()


def test_plain_callable_factory_still_works() -> None:
    """A function (no create()) is called once per subject."""
    made = iter(range(100))
    gen = DataOnlineGenerator(["s"], "s", lambda: next(made), 4, 1000, 1)
    gen.start()
    assert gen.subjects == [0, 1, 2, 3]


def test_factory_without_create_or_call_is_named() -> None:
    """A factory that neither has create() nor is callable is refused, naming it."""
    with pytest.raises(ModelError, match="subject_factory must have a create"):
        DataOnlineGenerator(["s"], "s", 42, 1, 1000, 1)  # type: ignore[arg-type]


# -- attributes doge-datagen programs read ------------------------------------------------------


def test_subjects_states_maps_each_subject_to_its_state() -> None:
    """subjects_states: {} before start, then {subject: state} in creation order, kept after."""
    gen, _ = _pipeline(["a", "b"], 3, 1)
    gen.add_transition("ab", "a", "b", 100, Gate(True, False, True))
    assert gen.subjects_states == {}
    gen.start()
    states = gen.subjects_states
    assert type(states) is dict
    assert list(states.items()) == [(Badge(1), "b"), (Badge(2), "a"), (Badge(3), "b")]


def test_subjects_states_is_live_during_the_run() -> None:
    """A callback reading subjects_states sees every subject's current state."""
    gen, _ = _pipeline(["a", "b", "c"], 2, 3)
    seen: list[dict[Any, str]] = []

    def look(subject: Any, transition: Transition) -> bool:
        seen.append(dict(gen.subjects_states))
        return True

    gen.add_transition("ab", "a", "b", 100, look)
    gen.add_transition("bc", "b", "c", 100, look)
    gen.start()
    one, two = Badge(1), Badge(2)
    assert seen == [
        {one: "a", two: "a"},
        {one: "b", two: "a"},
        {one: "b", two: "b"},
        {one: "c", two: "b"},
    ]


@dataclass
class Ticket:
    """An unhashable subject (a dataclass with eq and no __hash__): doge could not run it."""

    number: int


def test_subjects_states_of_unhashable_subjects_is_an_identity_mapping() -> None:
    """Equal but distinct unhashable subjects each keep their own entry."""
    twins = iter([Ticket(7), Ticket(7)])
    gen: DataOnlineGenerator[Ticket] = DataOnlineGenerator(
        ["a", "b"], "a", lambda: next(twins), 2, 1000, 1
    )
    gen.add_transition("ab", "a", "b", 100, Gate(False, True))
    gen.start()
    states = gen.subjects_states
    assert isinstance(states, SubjectStates) and isinstance(states, Mapping)
    first, second = gen.subjects
    assert (states[first], states[second]) == ("a", "b")
    assert list(states) == [first, second] and len(states) == 2
    with pytest.raises(KeyError):
        states[Ticket(7)]  # equal to both, identical to neither


def test_timestamp_before_during_and_after_the_run() -> None:
    """timestamp: start before, the tick's stamp in callbacks, start + ticks * tick after."""
    gen, _ = _pipeline(["a"], 1, 4, start=5_000, tick_ms=100)
    stamps: list[int] = []

    def note(subject: Any, transition: Transition) -> bool:
        stamps.append(gen.timestamp)
        return True

    gen.add_transition("beat", "a", "a", 100, note)
    assert gen.timestamp == 5_000
    gen.start()
    assert stamps == [5_000, 5_100, 5_200, 5_300]
    assert gen.timestamp == 5_000 + 4 * 100


def test_timestamp_set_before_start_moves_the_events() -> None:
    """Assigning timestamp before start (a plain attribute on doge) sets the first tick's stamp."""
    gen, _ = _pipeline(["a"], 1, 2, tick_ms=10)
    journal = Journal()
    gen.add_transition("beat", "a", "a", 100, event_sinks=[journal])
    gen.timestamp = 700
    gen.start()
    assert [line[0] for line in journal.lines] == [700, 710]


def test_stay_entries_appear_in_both_matrices_once_started() -> None:
    """After start every state has a last ``__stay`` entry: 100 minus its outgoing chances."""
    gen, _ = _pipeline(["idle", "busy", "gone"], 1, 1)
    work = gen.add_transition("work", "idle", "busy", 30)
    quit_ = gen.add_transition("quit", "idle", "gone", 12.5)
    rest = gen.add_transition("rest", "busy", "idle", 100)
    assert all("__stay" not in row for row in gen.transition_matrix.values())
    gen.start()
    matrix = gen.transition_matrix
    assert list(matrix["idle"]) == ["work", "quit", "__stay"]
    assert (matrix["idle"]["work"], matrix["idle"]["quit"], matrix["busy"]["rest"]) == (
        work,
        quit_,
        rest,
    )
    for state, chance in (("idle", 57.5), ("busy", 0.0), ("gone", 100.0)):
        stay = matrix[state]["__stay"]
        assert isinstance(stay, Transition)
        assert (stay.trigger, stay.from_state, stay.to_state) == ("__stay", state, state)
        assert stay.probability == pytest.approx(chance)
        assert gen.probability_matrix[state]["__stay"] == pytest.approx(chance)
    assert gen.probability_matrix["idle"] == pytest.approx(
        {"work": 30, "quit": 12.5, "__stay": 57.5}
    )
    assert gen.transition_matrix["gone"]["__stay"] is stay  # the same objects on every read


@pytest.mark.parametrize("tick_ms", [0.5, 0.001])
def test_sub_millisecond_tick_is_a_clear_error(tick_ms: float) -> None:
    """tick_ms below 1 ms is refused, naming the value and what would be right."""
    with pytest.raises(ValueError, match=r"tick_ms must be a whole number of milliseconds >= 1"):
        DataOnlineGenerator(["a"], "a", BadgeFactory(), 1, tick_ms, 1)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=repr(tick_ms)):
        DataOnlineGenerator(["a"], "a", BadgeFactory(), 1, tick_ms, 1)  # type: ignore[arg-type]


# -- module paths and public names --------------------------------------------------------------

#: doge-datagen 1.0.4's modules (plus ``graph``, added after 1.0.4) and the public names each
#: offers: the classes, functions and type variables it defines, and its doge-datagen imports.
DOGE_NAMES: dict[str, set[str]] = {
    "dogesim": {
        "Subject",
        "SubjectFactory",
        "Transition",
        "DataOnlineGenerator",
        "EventSink",
        "DataOnlineGeneratorGrapher",
        "DbSinkFactory",
        "DbSink",
        "KafkaSinkFactory",
        "KafkaSink",
        "KafkaAvroSinkFactory",
        "PrintingSink",
    },
    "dogesim.doge": {
        "Subject",
        "SubjectFactory",
        "EventSink",
        "Transition",
        "DataOnlineGenerator",
        "LOGGER",
    },
    "dogesim.db_sink_factory": {"Subject", "Transition", "EventSink", "DbSink", "DbSinkFactory"},
    "dogesim.kafka_sink_factory": {
        "Subject",
        "Transition",
        "EventSink",
        "K",
        "V",
        "CounterHolder",
        "KafkaSink",
        "KafkaSinkFactory",
    },
    "dogesim.kafka_avro_sink_factory": {
        "Subject",
        "Transition",
        "KafkaSinkFactory",
        "KafkaSink",
        "KafkaAvroSinkFactory",
    },
    "dogesim.printing_sink": {"Subject", "Transition", "EventSink", "PrintingSink"},
    "dogesim.graph": {"DataOnlineGenerator", "DataOnlineGeneratorGrapher"},
}

#: Where each name's dogesim object lives: every path must hand out that very object.
HOMES = {
    "DataOnlineGenerator": "dogesim.compat",
    "SubjectFactory": "dogesim.compat",
    "Subject": "dogesim.compat",
    "Transition": "dogesim.model",
    "EventSink": "dogesim.sinks.base",
    "PrintingSink": "dogesim.sinks.printing",
    "DbSink": "dogesim.sinks.db",
    "DbSinkFactory": "dogesim.sinks.db",
    "KafkaSink": "dogesim.sinks.kafka",
    "KafkaSinkFactory": "dogesim.sinks.kafka",
    "KafkaAvroSinkFactory": "dogesim.sinks.kafka_avro",
    "DataOnlineGeneratorGrapher": "dogesim.graph",
}


@pytest.mark.parametrize("module_name", sorted(DOGE_NAMES))
def test_every_doge_module_path_offers_its_public_names(module_name: str) -> None:
    """Each doge-datagen module path imports as dogesim.<path> with the same public names."""
    module = importlib.import_module(module_name)
    missing = {name for name in DOGE_NAMES[module_name] if not hasattr(module, name)}
    assert not missing, f"{module_name} lacks {sorted(missing)}"
    for name in DOGE_NAMES[module_name] & set(HOMES):
        home = importlib.import_module(HOMES[name])
        assert getattr(module, name) is getattr(home, name), f"{module_name}.{name}"
    assert set(module.__all__) >= DOGE_NAMES[module_name]


def test_type_variables_and_counter_holder() -> None:
    """Subject, K and V are type variables; CounterHolder starts its counter at 0."""
    from dogesim import kafka_sink_factory

    for variable in (dogesim.Subject, kafka_sink_factory.K, kafka_sink_factory.V):
        assert isinstance(variable, TypeVar)
    assert kafka_sink_factory.CounterHolder().counter == 0


def test_doge_positional_kafka_factory_signatures() -> None:
    """1.0.4's positional (servers, [registry_url,] client_id, buffer_size) calls construct."""
    from dogesim.kafka_avro_sink_factory import KafkaAvroSinkFactory
    from dogesim.kafka_sink_factory import KafkaSinkFactory

    # Nothing listens on port 9: building a factory must not need a broker.
    plain = KafkaSinkFactory(["127.0.0.1:9"], "doge-client", 500)
    assert plain.buffer_size == 500
    avro = KafkaAvroSinkFactory(["127.0.0.1:9"], "mock://dropin", "doge-avro", 500)
    assert avro.factory.buffer_size == 500


def test_doge_module_paths_are_attributes_of_the_package() -> None:
    """``import dogesim`` then ``dogesim.doge`` etc. work, as doge_datagen's package did."""
    for name in ("doge", "db_sink_factory", "kafka_sink_factory", "printing_sink", "graph"):
        module = getattr(dogesim, name)
        assert module is importlib.import_module(f"dogesim.{name}")
        assert name in dir(dogesim)


def test_doge_star_imports_stay_light() -> None:
    """The doge and printing_sink paths, star-imported, leave Kafka and SQL unimported."""
    code = textwrap.dedent(
        """
        import sys
        from dogesim.doge import *
        from dogesim.printing_sink import *
        print(sorted(m for m in ("confluent_kafka", "sqlalchemy") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- random.seed(N) makes a seedless program reproducible -----------------------------------------


def _banking_lines(seed: int) -> list[str]:
    """The banking model (README's transitions) run after random.seed(seed), as lines."""
    from dogesim.examples.banking import (
        UserFactory,
        income_callback,
        spending_callback,
        take_loan_callback,
    )

    random.seed(seed)
    journal = Journal()
    gen = DataOnlineGenerator(
        ["offline", "online", "loan_screen"], "offline", UserFactory(), 10, 60000, 500
    )
    gen.add_transition("income", "offline", "offline", 0.01, income_callback, [journal])
    gen.add_transition("spending", "offline", "offline", 0.1, spending_callback, [journal])
    gen.add_transition("login", "offline", "online", 0.1, event_sinks=[journal])
    gen.add_transition("logout", "online", "offline", 70, event_sinks=[journal])
    gen.add_transition("open_loan_screen", "online", "loan_screen", 30, event_sinks=[journal])
    gen.add_transition("close_loan_screen", "loan_screen", "online", 40, event_sinks=[journal])
    gen.add_transition("take_loan", "loan_screen", "online", 10, take_loan_callback, [journal])
    gen.start()
    return [f"{ts} {vars(user)} {trigger}" for ts, user, trigger, _, _ in journal.lines]


def test_random_seed_makes_a_seedless_generator_reproducible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """random.seed(N) before a run without seed=/DOGESIM_SEED gives the same events again."""
    monkeypatch.delenv("DOGESIM_SEED", raising=False)
    first = _banking_lines(7)
    assert len(first) > 10
    assert _banking_lines(7) == first
    assert _banking_lines(8) != first


README_PROGRAM = textwrap.dedent(
    """
    import random
    import sys

    random.seed(7)

    # doge-datagen's README program with its imports changed: its User, UserFactory and
    # callbacks come from dogesim.examples.banking, and its four sinks print (the README's
    # are Kafka and SQL sinks).
    from dogesim import DataOnlineGenerator, PrintingSink, Subject, Transition
    from dogesim.examples.banking import (
        UserFactory, income_callback, spending_callback, take_loan_callback)


    def format_function(timestamp: int, user: Subject, transition: Transition) -> str:
        return ('[{}] User id: {}, balance: {}, loan_balance: {} '
                'made a transition {} from {} to {}').format(timestamp,
                    user.user_id,
                    user.balance,
                    user.loan_balance,
                    transition.trigger,
                    transition.from_state,
                    transition.to_state)


    balance_sink = PrintingSink(lambda ts, u, t: 'balance ' + format_function(ts, u, t))
    trx_sink = PrintingSink(lambda ts, u, t: 'trx ' + format_function(ts, u, t))
    clickstream_sink = PrintingSink(lambda ts, u, t: 'click ' + format_function(ts, u, t))
    loan_sink = PrintingSink(lambda ts, u, t: 'loan ' + format_function(ts, u, t))

    datagen = DataOnlineGenerator(['offline', 'online', 'loan_screen'], 'offline',
                                  UserFactory(), 10, 60000, 1000)
    datagen.add_transition('income', 'offline', 'offline', 0.01,
                           action_callback=income_callback, event_sinks=[balance_sink])
    datagen.add_transition('spending', 'offline', 'offline', 0.1,
                           action_callback=spending_callback, event_sinks=[trx_sink, balance_sink])
    datagen.add_transition('login', 'offline', 'online', 0.1, event_sinks=[clickstream_sink])
    datagen.add_transition('logout', 'online', 'offline', 70, event_sinks=[])
    datagen.add_transition('open_loan_screen ', 'online', 'loan_screen', 30,
                           event_sinks=[clickstream_sink])
    datagen.add_transition('close_loan_screen', 'loan_screen', 'online', 40,
                           event_sinks=[clickstream_sink])
    datagen.add_transition('take_loan', 'loan_screen', 'online', 10,
                           action_callback=take_loan_callback,
                           event_sinks=[clickstream_sink, loan_sink, balance_sink])
    datagen.start()
    """
)


def test_readme_banking_program_after_random_seed_prints_the_same_stream(tmp_path: Path) -> None:
    """The README banking program with random.seed(7) and no seed prints the same lines twice."""
    script = tmp_path / "readme_banking.py"
    script.write_text(README_PROGRAM)
    env = {k: v for k, v in os.environ.items() if k != "DOGESIM_SEED"}
    runs = []
    for hash_seed in ("1", "2"):  # also independent of PYTHONHASHSEED
        env["PYTHONHASHSEED"] = hash_seed
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout)
    lines = runs[0].splitlines()
    assert len(lines) > 10 and all("made a transition" in line for line in lines)
    assert {line.split(" ", 1)[0] for line in lines} >= {"balance", "click", "trx"}
    assert runs[1] == runs[0]


def test_grapher_source_is_doge_datagens() -> None:
    """generate_graph() gives doge-datagen's DOT: unnamed, nodes, then edges grouped by state."""
    pytest.importorskip("graphviz")
    from dogesim.graph import DataOnlineGeneratorGrapher

    gen, _ = _pipeline(["up", "down"], 1, 1)
    gen.add_transition("fall", "up", "down", 2.5)
    gen.add_transition("rise", "down", "up", 50)
    gen.add_transition("wobble", "up", "up", 1)
    assert DataOnlineGeneratorGrapher(gen).generate_graph().source == (
        "digraph {\n\tup\n\tdown\n"
        '\tup -> down [label="fall(P=2.5%)"]\n'
        '\tup -> up [label="wobble(P=1%)"]\n'
        '\tdown -> up [label="rise(P=50%)"]\n'
        "}\n"
    )
