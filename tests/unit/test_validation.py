"""Every invalid model is refused when it is built, with a message naming what is wrong."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dogesim import DataOnlineGenerator, MemorySink, Model, ModelError, Simulation


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
