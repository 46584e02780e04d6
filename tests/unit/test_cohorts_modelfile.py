"""Model-file keys of cohorts: ``initial_state`` mixes, ``dwell:``, ``delay:``,
``rate_attribute:``, callback ``args:``, lognormal and gamma attributes, and callbacks in
modules beside the model file. Errors name the file, the line and the key."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from dogesim import MemorySink, Simulation
from dogesim.errors import ModelError
from dogesim.laws import Fixed, Gamma, LogNormal
from dogesim.modelfile import dump_model, load_model_file, load_model_text

COHORT = """\
name: cohort
seed: 3
states: [school, FE, work]
initial_state: {school: 19, FE: 14, work: 7}
dwell:
  school: {law: fixed, value_ticks: 24}
  FE: {law: gamma, shape: 2, scale: 2 min}
tick: 1 min
ticks: 100
subjects:
  count: 400
  attributes:
    activity: {lognormal: [0, 0.5]}
    drive: {gamma: [2, 0.5]}
transitions:
  - {trigger: leave, from: school, to: FE, probability: 50}
  - trigger: job
    from: FE
    to: work
    probability: 20
    delay: {law: uniform, low_ticks: 1, high_ticks: 3}
  - {trigger: work_event, from: work, to: work, probability: 10, rate_attribute: activity}
"""


def test_cohort_keys_are_read_into_the_model() -> None:
    """initial_state mixes, dwell laws (durations rescaled), delays and rate attributes
    reach the Model."""
    spec = load_model_text(COHORT)
    model = spec.build_model({})
    assert model.initial_mix == pytest.approx({"school": 0.475, "FE": 0.35, "work": 0.175})
    assert model.dwell == {"school": Fixed(24), "FE": Gamma(2, 2)}
    job = next(t for t in model.transitions if t.trigger == "job")
    assert job.delay is not None and job.delay.pmf(4).tolist() == pytest.approx(
        [0.0, 0.5, 0.5, 0.0]
    )
    event = next(t for t in model.transitions if t.trigger == "work_event")
    assert event.rate_attribute == "activity"


def test_a_cohort_model_file_runs() -> None:
    """The cohort file runs: school leavers leave at their 24th attempt, the mix is drawn."""
    spec = load_model_text(COHORT)
    sink = MemorySink()
    model = spec.build_model([sink])
    sim = Simulation(
        model,
        spec.subjects.count,
        subject_factory=spec.subject_factory(3),
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        seed=3,
    )
    sim.run()
    leaves = {e.timestamp // 60_000 for e in sink.events if e.trigger == "leave"}
    assert leaves == {23}
    first = Counter(s for s in sim.subject_states())
    assert sum(first.values()) == 400
    assert all(s.activity > 0 and s.drive > 0 for s in sim.subjects)


def test_fitted_mix_and_law_forms_load() -> None:
    """What the fit writes loads: counts per state and DwellLaw.spec() forms."""
    text = COHORT.replace(
        "  school: {law: fixed, value_ticks: 24}", "  school: {law: fixed, ticks: 24}"
    ).replace(
        "FE: {law: gamma, shape: 2, scale: 2 min}", "FE: {law: lognormal, mu: 1.0, sigma: 0.5}"
    )
    model = load_model_text(text).build_model({})
    assert model.dwell["school"] == Fixed(24)
    assert model.dwell["FE"] == LogNormal(2.718281828459045, 0.5)


def test_dump_model_writes_the_cohort_keys_back() -> None:
    """dump_model keeps the mix, the dwell laws, delays and rate attributes (round trip)."""
    spec = load_model_text(COHORT)
    text = dump_model(spec)
    again = load_model_text(text).build_model({})
    model = spec.build_model({})
    assert again.initial_mix == pytest.approx(model.initial_mix)
    assert again.dwell == model.dwell
    assert [t.delay for t in again.transitions] == [t.delay for t in model.transitions]
    assert [t.rate_attribute for t in again.transitions] == [
        t.rate_attribute for t in model.transitions
    ]


def test_callbacks_take_args_and_resolve_beside_the_model_file(tmp_path: Path) -> None:
    """callback: helpers:gate finds helpers.py beside the file; args: are its keywords."""
    (tmp_path / "h16_helpers_beside.py").write_text(
        textwrap.dedent(
            """
            from dogesim.engine import current_time

            SEEN = []

            def gate(subject, transition, *, after_ms):
                SEEN.append(current_time())
                return current_time() >= after_ms
            """
        ),
        encoding="utf-8",
    )
    path = tmp_path / "m.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            states: [a, b]
            initial_state: a
            tick: 1s
            ticks: 10
            subjects: {count: 5}
            transitions:
              - trigger: go
                from: a
                to: b
                probability: 100
                callback: h16_helpers_beside:gate
                args: {after_ms: 3000}
            """
        ),
        encoding="utf-8",
    )
    spec = load_model_file(path)
    sink = MemorySink()
    model = spec.build_model([sink])
    Simulation(model, 5, ticks=10, tick_ms=1000, seed=1).run()
    import h16_helpers_beside  # type: ignore[import-not-found]

    seen = h16_helpers_beside.SEEN
    assert seen == [t * 1000 for t in range(4) for _ in range(5)]
    assert [e.timestamp for e in sink.events] == [3000] * 5


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "initial_state: {school: 19, FE: 14, work: 7}",
            "initial_state: {school: 19, FEE: 14}",
            r"cohort:4: initial_state\.FEE: 'FEE' is not one of the states school, FE, work "
            r"\(did you mean 'FE'",
        ),
        (
            "initial_state: {school: 19, FE: 14, work: 7}",
            "initial_state: {school: -1}",
            r"initial_state\.school: weight -1 is not a number >= 0",
        ),
        (
            "initial_state: {school: 19, FE: 14, work: 7}",
            "initial_state: {school: 0}",
            "the mix has no positive weight",
        ),
        (
            "  school: {law: fixed, value_ticks: 24}",
            "  skool: {law: fixed, value_ticks: 24}",
            r"cohort:6: dwell\.skool: 'skool' is not one of the states school, FE, work "
            r"\(did you mean 'school'",
        ),
        (
            "  school: {law: fixed, value_ticks: 24}",
            "  school: {law: weibull, k: 2}",
            r"cohort:6: dwell\.school: unknown law 'weibull'",
        ),
        (
            "  school: {law: fixed, value_ticks: 24}",
            "  school: 24",
            r"dwell\.school: 24: give a law as a mapping",
        ),
        (
            "delay: {law: uniform, low_ticks: 1, high_ticks: 3}",
            "delay: {law: uniform, low_ticks: 3, high_ticks: 1}",
            r"transitions\[1\]\.delay: uniform law: low must be at most high",
        ),
        (
            "rate_attribute: activity}",
            "rate_attribute: activity, args: {x: 1}}",
            r"transitions\[2\]\.args: args are keyword arguments for a callback",
        ),
        (
            "drive: {gamma: [2, 0.5]}",
            "drive: {gamma: [0, 0.5]}",
            r"shape and scale must be > 0",
        ),
    ],
)
def test_bad_cohort_keys_name_file_line_and_key(old: str, new: str, message: str) -> None:
    """Each mistake in the cohort keys is one ModelError at file:line: key."""
    text = COHORT.replace(old, new)
    assert text != COHORT
    with pytest.raises(ModelError, match=message):
        load_model_text(text, source="cohort")


def test_callback_args_must_fit_the_signature() -> None:
    """args the callback cannot take are refused at load."""
    text = COHORT.replace(
        "rate_attribute: activity}",
        "callback: dogesim.examples.banking:income_callback, args: {nope: 1}}",
    )
    with pytest.raises(ModelError, match=r"transitions\[2\]\.callback"):
        load_model_text(text, source="cohort")
