"""Fuzzing the Python API: any argument to Model, Transition, add_transition, Rate or Profile
either builds or raises a `ModelError`, never another exception. Laws from their data forms
with extreme parameters (past int64, float's ends, NaN) build or raise a `ModelError`, and a
law that builds gives waits in ``1 .. HORIZON`` and a tiny run with it ends.

The fast profile runs in the default suite; the long one (``-m slow``) tries many more cases.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim import MemorySink, Model, ModelError, Simulation, Transition
from dogesim.laws import HORIZON, law_from_dict
from dogesim.rates import Profile, Rate, parse_duration, parse_rate

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))

STATES = ["a", "b", "c"]

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    # huge integers built by a map: the strategy's own repr could not print 10**5000
    st.sampled_from([400, 5000]).map(lambda digits: 10**digits),
    st.sampled_from([400, 5000]).map(lambda digits: -(10**digits)),
    st.sampled_from([2**53 + 1, 2**63, -1, 0, 1, 24, 100, 101]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.just(400).map(lambda digits: fractions.Fraction(10**digits, 3)),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.just(decimal.Decimal("1e400")),
    st.text(max_size=12),
    st.binary(max_size=6),
    st.sampled_from(
        [
            "a",
            "b",
            "c",
            "r",
            "1m",
            "10s",
            "5% per 1m",
            "100% per 1m",
            "6 per 1h",
            "1e400 per 1m",
            "1e300",
            "nan",
            "2024-02-30",
            "2024-01-01",
            dt.date(2024, 1, 1),
            dt.datetime(2024, 1, 1, 3),
            object(),
            print,
            len,
            MemorySink(),
            Rate.percent(30, "1m"),
            Rate.per(6, "1h"),
            Profile(),
            Transition("t", "a", "b", 5),
        ]
    ),
)


_keys = st.one_of(st.text(max_size=8), st.integers(), st.dates())


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=8),
        st.tuples(children, children),
        st.frozensets(st.text(max_size=3), max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.dates()), children, max_size=5
        ),
    )


garbage = st.recursive(_leaf, _containers, max_leaves=12)


def only_model_errors(build: Callable[[], Any]) -> Any:
    """Run `build`; a ModelError is an accepted outcome, any other exception fails the test."""
    try:
        return build()
    except ModelError as exc:
        assert str(exc), "a ModelError must say what is wrong"
        return None


def _model_case(data: st.DataObject) -> None:
    states = data.draw(st.one_of(garbage, st.lists(st.sampled_from(STATES), max_size=4)))
    initial = data.draw(st.one_of(garbage, st.sampled_from(STATES)))
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": garbage,
                "tick_ms": garbage,
                "resources": st.one_of(garbage, st.dictionaries(st.text(max_size=3), garbage)),
                "transitions": garbage,
            },
        )
    )
    model = only_model_errors(lambda: Model(states, initial, **kwargs))
    if model is not None:
        tick = data.draw(st.one_of(garbage, st.integers(1, 10**6)))
        only_model_errors(lambda: model.at_tick(tick))
        only_model_errors(lambda: model.leave_probability(data.draw(garbage)))


def _transition_case(data: st.DataObject, model: Model) -> None:
    chance = st.one_of(garbage, st.floats(0, 60), st.sampled_from(["30% per 1m", "6 per 1h"]))
    state = st.one_of(garbage, st.sampled_from(STATES))
    args = [
        data.draw(st.one_of(garbage, st.sampled_from(["go", "stop"]))),
        data.draw(state),
        data.draw(state),
        data.draw(chance),
    ]
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "action_callback": garbage,
                "event_sinks": garbage,
                "profile": st.one_of(garbage, st.just(Profile(hourly=[2.0] * 24))),
                "resource": st.one_of(garbage, st.just("r")),
                "hold": garbage,
            },
        )
    )
    only_model_errors(lambda: model.add_transition(*args, **kwargs))
    built = only_model_errors(lambda: Transition(*args, **kwargs))
    if built is not None:
        only_model_errors(lambda: model.add(built))


def _rate_case(data: st.DataObject) -> None:
    value, period = data.draw(garbage), data.draw(garbage)
    only_model_errors(lambda: Rate.percent(value, period))
    only_model_errors(lambda: Rate.per(value, period))
    only_model_errors(lambda: Rate(data.draw(garbage), value, period))
    only_model_errors(lambda: parse_rate(data.draw(garbage)))
    only_model_errors(lambda: parse_duration(value))
    rate = only_model_errors(lambda: Rate.per(data.draw(st.floats(0, 1e300)), "1m"))
    if rate is not None:
        only_model_errors(lambda: rate.per_tick(data.draw(garbage)))


def _profile_case(data: st.DataObject) -> None:
    numbers = st.lists(st.one_of(st.floats(0, 5), garbage), min_size=0, max_size=25)
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "hourly": st.one_of(garbage, numbers),
                "weekly": st.one_of(garbage, numbers),
                "dates": garbage,
                "utc_offset_hours": garbage,
            },
        )
    )
    only_model_errors(lambda: Profile(**kwargs))


#: Law parameters at and past every edge: int64 and the grid's horizon, float's ends.
_edges = st.sampled_from(
    [
        *(0, 1, 2**53 + 1, 2**62, 2**62 + 1, 2**63, 10**25, 10**400, -1, True, 0.5),
        *(5e-324, 1e-300, 1e300, 1e308, 1.7e308, math.inf, -math.inf, math.nan, "3 min"),
    ]
)
_positive = st.floats(min_value=5e-324, max_value=1.7e308)
_extreme = st.one_of(_edges, _positive, _edges, _positive, _positive, garbage)


def _law_value(key: str) -> st.SearchStrategy[Any]:
    """A value for the data-form key `key`: a list of bin edges or weights, a histogram,
    or one number (mostly at an edge; garbage now and then)."""
    if key.startswith(("edges", "weights")):
        return st.lists(_extreme, min_size=1, max_size=4)
    if key == "histogram":
        return st.dictionaries(st.one_of(_edges, st.integers(1, 99)), _extreme, max_size=3)
    return _extreme


#: The laws' data forms: each law's own keys and the forms the fit writes.
_FORMS = {
    "fixed": [("value_ticks",), ("value",), ("value_ms",), ("ticks",)],
    "uniform": [("low_ticks", "high_ticks"), ("low", "high"), ("low_ms", "high_ms")],
    "exponential": [("mean_ticks",), ("mean",), ("rate",)],
    "lognormal": [("median_ticks", "sigma"), ("median_ms", "sigma"), ("mu", "sigma")],
    "gamma": [("shape", "scale_ticks"), ("shape", "scale")],
    "empirical": [("edges_ticks", "weights"), ("edges_ms", "weights"), ("histogram",)],
    "geometric": [("p",)],
}


@st.composite
def law_forms(draw: st.DrawFn) -> Any:
    """A law's data form with extreme values (its keys, or a kernel), or garbage."""
    kind = draw(st.sampled_from([*_FORMS, "kernel", "garbage"]))
    if kind == "garbage":
        return draw(st.one_of(garbage, st.dictionaries(st.just("law"), garbage)))
    if kind == "kernel":
        lengths = draw(st.lists(st.one_of(_extreme, st.integers(1, 99)), min_size=1, max_size=3))
        shares = st.lists(_extreme, min_size=len(lengths), max_size=len(lengths))
        to = draw(st.dictionaries(st.sampled_from(["on", "a", "c"]), shares, min_size=1))
        return {"kernel": {"lengths": lengths, "weights": draw(shares), "to": to}}
    keys = draw(st.sampled_from(_FORMS[kind]))
    return {"law": kind, **{k: draw(_law_value(k)) for k in keys}}


def _law_case(data: st.DataObject) -> None:
    """A law from its data form, at a tick: waits in 1 .. HORIZON, its pmf, CDF and mean
    computed without error, and a tiny run with it as a dwell and a delay ends."""
    law = only_model_errors(lambda: law_from_dict(data.draw(law_forms()), "fuzz"))
    if law is None:
        return
    law = only_model_errors(lambda: law.at_tick(data.draw(st.sampled_from([1, 1000, 2**40]))))
    if law is None:
        return
    waits = law.ticks(np.random.default_rng(0), 64)
    assert waits.min() >= 1 and waits.max() <= HORIZON
    law.pmf(4)
    law.expectation()
    for x in (0.0, 1.0, 1e300, math.inf):
        assert 0.0 <= law.cdf(x) <= 1.0
    model = only_model_errors(
        lambda: Model(
            ["a", "b", "c"],
            "a",
            [Transition("go", "a", "b", 50, delay=law), Transition("on", "b", "a", 50)],
            dwell={"b": law},
        )
    )
    if model is not None:
        subjects = data.draw(st.sampled_from([3, 64]))
        only_model_errors(lambda: Simulation(model, subjects, ticks=10, tick_ms=1, seed=1).run())


def _fresh_model() -> Model:
    return Model(STATES, "a", name="m", resources={"r": 1})


def _all_cases(data: st.DataObject) -> None:
    _model_case(data)
    model = _fresh_model()
    for _ in range(data.draw(st.integers(1, 4))):
        _transition_case(data, model)
    only_model_errors(lambda: model.at_tick(data.draw(st.integers(1, 10**7))))
    _rate_case(data)
    _profile_case(data)
    _law_case(data)


@FAST
@given(st.data())
def test_python_api_raises_only_model_errors(data: st.DataObject) -> None:
    """Garbage in every argument of the Python API: a ModelError or a model, nothing else."""
    _all_cases(data)


@pytest.mark.slow
@LONG
@given(st.data())
def test_python_api_raises_only_model_errors_long(data: st.DataObject) -> None:
    """The same property over thousands of cases (run with -m slow)."""
    _all_cases(data)
