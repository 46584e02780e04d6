"""Every invalid model is refused when it is built, with a message naming what is wrong."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from dogesim import DataOnlineGenerator, MemorySink, Model, ModelError, Simulation, Transition
from dogesim.rates import Profile, Rate


def model() -> Model:
    return Model(["offline", "online"], "offline", name="m")


@pytest.mark.parametrize(
    ("states", "initial", "message"),
    [
        ([], "a", "state list is empty"),
        (["a", "a"], "a", "state 'a' is listed twice"),
        (["a", ""], "a", "non-empty strings, got ''"),
        (["a", 3], "a", "non-empty strings, got 3"),
        ("abc", "a", "must be a list of state names"),
        (["a", "b"], "c", "initial state 'c' is not one of the states ['a', 'b']"),
    ],
)
def test_bad_state_lists(states: Any, initial: str, message: str) -> None:
    """Empty, duplicate, non-string states and unknown initial states are refused."""
    with pytest.raises(ModelError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Model(states, initial)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("login", "offline", "away", 1), "to_state 'away' is not one of the states"),
        (("login", "nowhere", "online", 1), "from_state 'nowhere' is not one of the states"),
        (("login", "offline", "online", -0.5), r"probability must be >= 0%, got -0.5%"),
        (("login", "offline", "online", math.nan), "probability must be finite, got nan"),
        (("login", "offline", "online", math.inf), "probability must be finite, got inf"),
        (("login", "offline", "online", 100.5), r"at most 100%, got 100.5%"),
        (("login", "offline", "online", "5"), "'5' is not a rate"),
        (("login", "offline", "online", True), r"got True \(bool\)"),
        (("", "offline", "online", 1), "trigger must be a non-empty string"),
    ],
)
def test_bad_transitions(args: tuple[Any, ...], message: str) -> None:
    """Unknown states and bad probabilities name the transition and the value."""
    m = model()
    with pytest.raises(ModelError, match=message) as info:
        m.add_transition(*args)
    if args[0]:
        assert f"transition {args[0]!r}" in str(info.value)
    assert m.transitions == []


def test_sum_over_100_names_state_and_every_probability() -> None:
    """A state whose outgoing probabilities exceed 100% is refused with the whole sum."""
    m = model()
    m.add_transition("logout", "online", "offline", 70)
    m.add_transition("stay_busy", "online", "online", 30)
    with pytest.raises(ModelError) as info:
        m.add_transition("crash", "online", "offline", 4)
    text = str(info.value)
    assert "state 'online'" in text
    assert "sum to 104%" in text
    assert "logout 70%" in text and "crash 4%" in text
    assert [t.trigger for t in m.transitions] == ["logout", "stay_busy"]


def test_float_rounding_to_exactly_100_is_accepted() -> None:
    """33.3 + 33.3 + 33.4 is 100% even if floating point says 100.00000000000001."""
    m = model()
    for trigger, p in (("a", 33.3), ("b", 33.3), ("c", 33.4)):
        m.add_transition(trigger, "offline", "online", p)
    assert m.leave_probability("offline") == pytest.approx(100)


def test_duplicate_trigger_from_one_state() -> None:
    """Two transitions with one trigger from the same state are refused (doge overwrote)."""
    m = model()
    m.add_transition("login", "offline", "online", 1)
    with pytest.raises(ModelError, match="state 'offline' already has a transition with trigger"):
        m.add_transition("login", "offline", "offline", 2)
    m.add_transition("login", "online", "online", 1)  # same trigger from another state is fine


def test_sink_without_collect_and_non_callable_callback() -> None:
    """Sinks must have collect(); callbacks must be callable."""
    m = model()
    with pytest.raises(ModelError, match=r"event_sinks\[1\] = 'oops' has no collect"):
        m.add_transition("login", "offline", "online", 1, event_sinks=[MemorySink(), "oops"])
    with pytest.raises(ModelError, match="action_callback must be callable"):
        m.add_transition("login", "offline", "online", 1, action_callback=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ticks": 0}, "ticks must be positive, got 0"),
        ({"ticks": -5}, "ticks must be positive, got -5"),
        ({"ticks": 2.5}, "ticks must be a positive whole number, got 2.5"),
        ({"tick_ms": 0}, "tick_ms must be positive, got 0"),
        ({"tick_ms": "60s"}, "tick_ms must be a positive whole number, got '60s'"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"timestamp_start": math.nan}, "timestamp_start must be a number"),
    ],
)
def test_bad_run_settings(kwargs: dict[str, Any], message: str) -> None:
    """Non-positive or non-integral tick settings are refused before anything runs."""
    settings: dict[str, Any] = {"ticks": 10, "tick_ms": 1000, **kwargs}
    with pytest.raises(ModelError, match=message):
        Simulation(model(), 10, **settings)


@pytest.mark.parametrize("subjects", [0, -3, [], True])
def test_bad_subject_counts(subjects: Any) -> None:
    """Zero, negative or empty populations are refused."""
    with pytest.raises(ModelError, match="subjects"):
        Simulation(model(), subjects, ticks=10, tick_ms=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["a"], "b", object, 1, 1, 1), "initial state 'b' is not one of the states"),
        (([], "a", object, 1, 1, 1), "state list is empty"),
        ((["a"], "a", object, 0, 1, 1), "subjects_num must be positive, got 0"),
        ((["a"], "a", object, 1, -1, 1), "tick_ms must be positive, got -1"),
        ((["a"], "a", object, 1, 1, 0), "ticks_num must be positive, got 0"),
        ((["a"], "a", None, 1, 1, 1), "subject_factory must have a create"),
    ],
)
def test_doge_constructor_errors_are_value_errors(args: tuple[Any, ...], message: str) -> None:
    """doge-datagen callers catching ValueError keep working; messages name the value."""
    with pytest.raises(ValueError, match=message):
        DataOnlineGenerator(*args)


def test_doge_add_transition_errors_are_value_errors() -> None:
    """add_transition raises ValueError subclasses at build time, before start()."""
    gen = DataOnlineGenerator(["a", "b"], "a", object, 1, 1, 1)
    gen.add_transition("go", "a", "b", 60)
    with pytest.raises(ValueError, match="sum to 120%"):
        gen.add_transition("run", "a", "b", 60)


# -- Python API input: a ModelError naming the field and value, never another exception ------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: model().add_transition("go", "offline", "online", 10**400), "probability"),
        (lambda: model().add_transition("go", "offline", "online", -(10**400)), "probability"),
        (lambda: Model(["a", "b"], ["a"]), r"initial state \['a'\] is not a state name"),  # type: ignore[arg-type]
        (lambda: Model(["a", ["b"]], "a"), r"non-empty strings, got \['b'\]"),  # type: ignore[list-item]
        (lambda: Model({"a", "b"}, "a"), "a set of states has no fixed order.*; pass a list"),
        (lambda: Model(frozenset("ab"), "a"), "pass a list"),
        (lambda: Model(None, "a"), "states must be a list of state names, got None"),  # type: ignore[arg-type]
        (lambda: Model(["a"], "a", resources=[("r", 1)]), r"resources must be a mapping"),  # type: ignore[arg-type]
        (lambda: Model(["a"], "a", resources={"r": 1.5}), "resource 'r': capacity"),
        (lambda: Model(["a"], "a", name=3), "name must be a string"),  # type: ignore[arg-type]
        (lambda: Model(["a"], "a", transitions=[3]), r"transitions\[0\] is not a Transition"),  # type: ignore[list-item]
        (lambda: Model(["a"], "a", tick_ms=10**400), "tick_ms"),
        (lambda: Profile(hourly=None), "profile: hourly must be a list of 24 numbers, got None"),  # type: ignore[arg-type]
        (lambda: Profile(hourly=["x"] * 24), r"profile: hourly\[0\] must be a number, got 'x'"),
        (lambda: Profile(hourly="1" * 24), "profile: hourly must be a list of 24 numbers"),
        (lambda: Profile(hourly=[10**400] * 24), r"profile: hourly\[0\] must be a finite"),
        (lambda: Profile(weekly=[1] * 6), "weekly needs 7 multipliers"),
        (lambda: Profile(dates=[1]), "profile: dates must be a mapping"),  # type: ignore[arg-type]
        (lambda: Profile(dates={"2024-01-01": "x"}), r"dates\['2024-01-01'\] must be a number"),
        (lambda: Profile(utc_offset_hours="2"), "utc_offset_hours must be a number of hours"),  # type: ignore[arg-type]
        (lambda: Profile(utc_offset_hours=1e9), "utc_offset_hours must be between -24 and 24"),
        (lambda: Profile(utc_offset_hours=10**400), "utc_offset_hours must be a finite number"),
        (lambda: Rate.percent(None, "1m"), "rate: value must be a number, got None"),  # type: ignore[arg-type]
        (lambda: Rate.per(10**400, "1m"), "rate: value must be a finite number"),
        (lambda: Rate.percent(5, None), "rate period"),  # type: ignore[arg-type]
        (lambda: Rate("percent", 5, 0), "rate: period_ms must be a whole number of ms >= 1"),
        (lambda: Rate(["percent"], 5, 10), "rate kind must be 'percent' or 'count'"),  # type: ignore[arg-type]
        (lambda: Rate.percent(5, "1m").per_tick(0), "tick_ms must be a whole number"),
    ],
)
def test_python_api_garbage_is_a_named_model_error(build: Any, message: str) -> None:
    """Bad arguments to Model, add_transition, Profile and Rate raise ModelError naming them."""
    with pytest.raises(ModelError, match=message):
        build()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("go", ["offline"], "online", 1), {}, r"from_state \['offline'\] is not one of"),
        (("go", "offline", "online", 1, None, 5), {}, "event_sinks must be a list of sinks"),
        (("go", "offline", "online", 1, None, "ab"), {}, "event_sinks must be a list of sinks"),
        (("go", "offline", "online", 1), {"resource": ["r"]}, r"resource \['r'\] is not declared"),
        (("go", "offline", "online", 1), {"profile": [1.0] * 24}, "profile must be a dogesim"),
        (("go", "offline", "online", 1), {"hold": 2.5}, "hold"),
        ((3, "offline", "online", 1), {}, "trigger must be a non-empty string, got 3"),
        (("go", "offline", "online", None), {}, "probability must be a number"),
        (("go", "offline", "online", 1j), {}, "probability must be a number"),
    ],
)
def test_add_transition_garbage_is_a_named_model_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    """Each bad add_transition argument is a ModelError naming the model and transition."""
    m = model()
    with pytest.raises(ModelError, match=message) as info:
        m.add_transition(*args, **kwargs)
    assert str(info.value).startswith("m: ")
    assert m.transitions == []


def test_a_single_sink_is_taken_as_a_list_of_one() -> None:
    """event_sinks=sink (not a list) means [sink]: its collect() gets every event."""
    m = model()
    sink = MemorySink()
    t = m.add_transition("login", "offline", "online", 100, event_sinks=sink)
    assert t.event_sinks == (sink,)
    Simulation(m, 3, ticks=1, tick_ms=1, seed=1).run()
    assert len(sink.events) == 3


def test_states_from_a_generator_or_tuple_keep_their_order() -> None:
    """Any ordered iterable of names is accepted, in its order; only sets are refused."""
    assert Model((s for s in "cba"), "a").states == ("c", "b", "a")
    assert Model(("x", "y"), "y").states == ("x", "y")


# -- Transition is an immutable value ------------------------------------------------------


def test_transition_is_frozen_and_keeps_doge_attributes() -> None:
    """doge-datagen's attributes stay readable; assigning one is refused."""
    sink = MemorySink()
    t = Transition("go", "a", "b", 5, bool, [sink])
    assert (t.trigger, t.from_state, t.to_state, t.probability) == ("go", "a", "b", 5.0)
    assert t.action_callback is bool and t.event_sinks == (sink,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.probability = 7  # type: ignore[misc]


def test_copies_keep_every_field() -> None:
    """`_copy` and `at_tick` carry every dataclass field, so a new field cannot be dropped."""
    profile = Profile(hourly=[2.0] * 24)
    m = Model(["a", "b"], "a", tick_ms="1m", resources={"desk": 1})
    t = m.add_transition(
        "go", "a", "b", 5, bool, [MemorySink()], profile=profile, resource="desk", hold=4
    )
    rescaled = m.at_tick(10_000).transitions[0]
    for copy in (t._copy(9.0), rescaled):
        for f in dataclasses.fields(Transition):
            if f.name not in ("probability", "rate"):
                assert getattr(copy, f.name) == getattr(t, f.name), f.name
    assert t._copy(9.0).probability == 9.0 and t.probability == 5.0
    assert t._copy(9.0).rate is None
    assert rescaled.rate == Rate("percent", 5, 60_000)  # what a 1-minute model's 5% means


def test_transitions_are_compared_by_identity() -> None:
    """Two equal-looking transitions are distinct objects (sinks and engine key on identity)."""
    a = Transition("go", "a", "b", 5)
    assert a != Transition("go", "a", "b", 5) and a == a
    assert len({a, Transition("go", "a", "b", 5)}) == 2


# -- linear validation -----------------------------------------------------------------------


class CountingName(str):
    """A state or trigger name that counts how often it is compared."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingName.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_validation_is_linear_in_states_and_transitions() -> None:
    """20k states and 20k transitions (10k from one state): O(n) name comparisons, not n^2."""
    states = [CountingName(f"s{i}") for i in range(20_000)]
    CountingName.comparisons = 0
    m = Model(states, states[0])
    for i in range(10_000):
        m.add_transition(CountingName(f"t{i}"), states[0], states[i + 1], 0.001)
    for i in range(10_000, 20_000):
        m.add_transition(CountingName(f"t{i}"), states[i], states[(i + 1) % 20_000], "1 per 1h")
    m.at_tick(1_000)
    assert len(m.transitions) == 20_000 and not m.is_final(states[0])
    # a check of each new trigger against every earlier one costs 5e7 comparisons
    assert CountingName.comparisons <= 10 * 40_000
