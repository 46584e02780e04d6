"""Cohorts in the engine: initial mixes, dwell and delay laws, per-subject rates, attribute
laws, callbacks that read the clock.

Each statistical test simulates with a fixed seed and checks against the law with a computed
bound: chi-square critical values from the chi-square CDF, or a normal bound for sums of
independent counts, at a false-alarm rate of 1e-6 per check. Exact rules (when the first
attempt comes, what a veto does, what a callback sees) are pinned by exact sequences.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim import MemorySink, Model, Simulation, Transition
from dogesim.engine import current_time
from dogesim.errors import ModelError, RunError
from dogesim.laws import Empirical, Fixed, Gamma, LogNormal, Uniform
from dogesim.report.analytic import approximations, initial_distribution
from tests.unit.cohorts_stats import Z_ALPHA, fits_pmf

MIX = {"school": 19, "FE": 14, "work": 7}


def _mix_model() -> Model:
    """Three final states and an initial mix over them (occupancy = initial states)."""
    return Model(["school", "FE", "work"], MIX)


def test_initial_mix_is_normalised_and_kept() -> None:
    """The weights are normalised into initial_mix; initial_state is the most likely state."""
    model = _mix_model()
    assert model.initial_mix == pytest.approx({"school": 0.475, "FE": 0.35, "work": 0.175})
    assert model.initial_state == "school"
    assert model.initial == pytest.approx(model.initial_mix)
    assert Model(["a", "b"], "b").initial_mix == {"b": 1.0}
    assert initial_distribution(model) == pytest.approx([0.475, 0.35, 0.175])


def test_initial_mix_follows_the_multinomial_law() -> None:
    """The population's initial states are multinomial with the mix's shares (chi-square)."""
    sim = Simulation(_mix_model(), 20_000, ticks=2, tick_ms=1000, seed=11)
    result = sim.run()
    counts = Counter(sim.subject_states())
    observed = [counts[s] for s in ("school", "FE", "work")]
    # the recorded occupancy is the drawn mix, not everyone in the initial state
    assert result.occupancy[0].tolist() == observed
    samples = np.repeat([1, 2, 3], observed)
    assert fits_pmf(samples, np.asarray([0.475, 0.35, 0.175]))


def test_initial_mix_is_deterministic_per_seed() -> None:
    """The same seed draws the same initial states; another seed others."""

    def states(seed: int) -> list[str]:
        sim = Simulation(_mix_model(), 500, ticks=1, tick_ms=1000, seed=seed)
        sim.run()
        return sim.subject_states()

    assert states(5) == states(5)
    assert states(5) != states(6)


def test_arrivals_draw_from_the_mix() -> None:
    """Newcomers draw their initial state from the mix too, and occupancy counts them there."""
    sim = Simulation(_mix_model(), 0, ticks=400, tick_ms=1000, seed=3, arrivals=20)
    result = sim.run()
    counts = Counter(sim.subject_states())
    observed = [counts[s] for s in ("school", "FE", "work")]
    assert sum(observed) == result.arrivals > 7000
    assert result.occupancy[-1].tolist() == observed
    assert fits_pmf(np.repeat([1, 2, 3], observed), np.asarray([0.475, 0.35, 0.175]))


@pytest.mark.parametrize(
    ("initial", "message"),
    [
        ({"school": 1, "nowhere": 2}, "initial mix: 'nowhere' is not one of the states"),
        ({"school": -1}, "weight of 'school' must be a finite number >= 0"),
        ({"school": math.inf}, "weight of 'school' must be a finite number >= 0"),
        ({"school": "3"}, "weight of 'school' must be a number"),
        ({"school": 0, "FE": 0}, "weights sum to 0"),
        ({}, "the initial mix is empty"),
        (3, "is not a state name"),
    ],
)
def test_bad_initial_mixes_are_refused(initial: Any, message: str) -> None:
    """Every bad mix is a ModelError naming the model, the state and the value."""
    with pytest.raises(ModelError, match=message):
        Model(["school", "FE"], initial, name="panel")


# -- dwell laws ------------------------------------------------------------------------------


def _leave_ticks(law: Any, subjects: int = 6000, seed: int = 1) -> list[int]:
    """Attempts (leave tick + 1) after which subjects that start in a dwell-law state leave."""
    sink = MemorySink()
    model = Model(
        ["school", "out"],
        "school",
        [Transition("leave", "school", "out", 10, event_sinks=[sink])],
        dwell={"school": law},
    )
    Simulation(model, subjects, ticks=400, tick_ms=1000, seed=seed).run()
    return [e.timestamp // 1000 + 1 for e in sink.events]


@pytest.mark.parametrize(
    "law",
    [Gamma(3, 4), LogNormal(12, 0.4), Uniform(3, 20), Empirical.of_ticks({10: 3, 22: 2, 34: 1})],
    ids=lambda law: law.name,
)
def test_initial_spells_follow_the_dwell_law(law: Any) -> None:
    """Subjects present from tick 0 leave at tick K - 1 (their K-th attempt, as the chain
    counts), K drawn from the law's discretised pmf."""
    leaves = _leave_ticks(law)
    assert len(leaves) == 6000  # every law here ends well before tick 400
    assert fits_pmf(leaves, law.pmf(399))


def test_a_fixed_dwell_is_exact() -> None:
    """A fixed 24-tick dwell: everyone leaves at its 24th attempt (tick 23), none before."""
    assert set(_leave_ticks(Fixed(24), subjects=50)) == {24}


def test_spells_after_a_move_follow_the_dwell_law() -> None:
    """A subject entering a dwell state at tick t leaves at t + K (spell K ~ the law)."""
    sink = MemorySink()
    law = Gamma(2, 5)
    model = Model(
        ["home", "school", "out"],
        "home",
        [
            Transition("enrol", "home", "school", 5, event_sinks=[sink]),
            Transition("leave", "school", "out", 50, event_sinks=[sink]),
        ],
        dwell={"school": law},
    )
    Simulation(model, 8000, ticks=2000, tick_ms=1, seed=2).run()
    entered: dict[int, int] = {}
    spells = []
    for event in sink.events:
        if event.trigger == "enrol":
            entered[id(event.subject)] = event.timestamp
        else:
            spells.append(event.timestamp - entered.pop(id(event.subject)))
    assert len(spells) > 7000
    assert fits_pmf(spells, law.pmf(1000))


def test_a_wrong_law_fails_the_spell_check() -> None:
    """The spell check can fail: gamma spells are rejected against a uniform of equal mean."""
    leaves = _leave_ticks(Gamma(3, 4))
    assert not fits_pmf(leaves, Uniform(2, 22).pmf(399))


def test_leaving_a_dwell_state_chooses_in_proportion() -> None:
    """At the end of a dwell the transition is chosen in proportion to the chances (30:10)."""
    sink = MemorySink()
    model = Model(
        ["s", "a", "b"],
        "s",
        [
            Transition("to_a", "s", "a", 30, event_sinks=[sink]),
            Transition("to_b", "s", "b", 10, event_sinks=[sink]),
        ],
        dwell={"s": Fixed(3)},
    )
    Simulation(model, 20_000, ticks=10, tick_ms=1000, seed=4).run()
    to_a = sum(e.trigger == "to_a" for e in sink.events)
    assert len(sink.events) == 20_000
    assert {e.timestamp for e in sink.events} == {2000}
    n, p = 20_000, 0.75
    assert abs(to_a - n * p) < Z_ALPHA * math.sqrt(n * p * (1 - p))


def test_a_veto_restarts_the_dwell() -> None:
    """A vetoed attempt leaves the subject in the state for a new wait from the law."""
    sink = MemorySink()
    tries: list[int] = []

    def second_time(subject: Any, transition: Transition) -> bool:
        tries.append(current_time() or 0)
        subject.tries = getattr(subject, "tries", 0) + 1
        return subject.tries >= 2

    model = Model(
        ["s", "t"],
        "s",
        [Transition("go", "s", "t", 10, second_time, [sink])],
        dwell={"s": Fixed(4)},
    )
    Simulation(model, 3, ticks=20, tick_ms=1000, seed=1).run()
    assert tries == [3000] * 3 + [7000] * 3
    assert [e.timestamp for e in sink.events] == [7000] * 3


def test_dwell_states_reject_unknown_names() -> None:
    """A dwell law for a state the model lacks is refused, naming it."""
    with pytest.raises(ModelError, match="dwell: 'nowhere' is not one of the states"):
        Model(["a"], "a", dwell={"nowhere": Fixed(2)})


# -- delay laws ------------------------------------------------------------------------------


def test_delay_sets_the_gap_to_the_next_attempt() -> None:
    """After a move with a delay law the next attempt is K ticks later (gaps ~ the law)."""
    sink = MemorySink()
    song = Uniform(2, 9)
    model = Model(
        ["listening"],
        "listening",
        [Transition("next_song", "listening", "listening", 100, event_sinks=[sink], delay=song)],
    )
    Simulation(model, 200, ticks=3000, tick_ms=1000, seed=8).run()
    times: dict[int, list[int]] = {}
    for event in sink.events:
        times.setdefault(id(event.subject), []).append(event.timestamp // 1000)
    gaps = [b - a for ts in times.values() for a, b in itertools.pairwise(ts)]
    assert {ts[0] for ts in times.values()} == {0}  # geometric at 100%: at once
    assert len(gaps) > 50_000
    assert fits_pmf(gaps, song.pmf(20))


def test_delays_depend_on_the_transition_taken() -> None:
    """A redirect after 1 tick, a song after 5: each transition's own gap, exactly."""
    sink = MemorySink()
    model = Model(
        ["page", "player"],
        "page",
        [
            Transition("redirect", "page", "player", 100, event_sinks=[sink], delay=Fixed(1)),
            Transition("song", "player", "page", 100, event_sinks=[sink], delay=Fixed(5)),
        ],
    )
    Simulation(model, 1, ticks=14, tick_ms=1000, seed=1).run()
    assert [(e.trigger, e.timestamp // 1000) for e in sink.events] == [
        ("redirect", 0),
        ("song", 1),
        ("redirect", 6),
        ("song", 7),
        ("redirect", 12),
        ("song", 13),
    ]


def test_delay_in_durations_is_rescaled_to_the_tick() -> None:
    """A delay of 3 min at 1-minute ticks is 3 ticks; at 30 s ticks, 6."""
    for tick_ms, gap in ((60_000, 3), (30_000, 6)):
        sink = MemorySink()
        model = Model(
            ["x"], "x", [Transition("e", "x", "x", 100, event_sinks=[sink], delay=Fixed("3 min"))]
        )
        Simulation(model, 1, ticks=4 * gap, tick_ms=tick_ms, seed=1).run()
        stamps = [e.timestamp // tick_ms for e in sink.events]
        assert stamps == [0, gap, 2 * gap, 3 * gap]


# -- per-subject rates -----------------------------------------------------------------------


def _counts_by_activity(activities: list[float], chance: float, ticks: int) -> list[int]:
    sink = MemorySink(mapper=lambda ts, subject, t: subject["id"])
    model = Model(
        ["on"],
        "on",
        [Transition("play", "on", "on", chance, event_sinks=[sink], rate_attribute="activity")],
    )
    subjects = [{"id": i, "activity": a} for i, a in enumerate(activities)]
    Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=9).run()
    counts = Counter(sink.events)
    return [counts[i] for i in range(len(activities))]


def test_per_subject_rate_scales_the_event_rate() -> None:
    """A subject of activity a fires each tick with chance 1 - (1 - p)^a (sum of binomials)."""
    activities = [0.0, 0.5, 1.0, 3.0] * 250
    ticks, p = 400, 0.1
    counts = _counts_by_activity(activities, 100 * p, ticks)
    for level in (0.5, 1.0, 3.0):
        q = 1 - (1 - p) ** level
        total = sum(c for c, a in zip(counts, activities, strict=True) if a == level)
        n = 250 * ticks
        assert abs(total - n * q) < Z_ALPHA * math.sqrt(n * q * (1 - q)), level
    assert sum(c for c, a in zip(counts, activities, strict=True) if a == 0) == 0


def test_per_subject_rate_shapes_the_choice() -> None:
    """With one scaled (a=2) and one plain transition of equal chance, the scaled one takes
    2/3 of the moves."""
    sink = MemorySink()
    model = Model(
        ["s"],
        "s",
        [
            Transition("x", "s", "s", 10, event_sinks=[sink], rate_attribute="activity"),
            Transition("y", "s", "s", 10, event_sinks=[sink]),
        ],
    )
    subjects = [SimpleNamespace(activity=2.0) for _ in range(200)]
    Simulation(model, subjects, ticks=500, tick_ms=1000, seed=5).run()
    n = len(sink.events)
    x = sum(e.trigger == "x" for e in sink.events)
    hazard = -math.log(0.8)
    chance = 1 - math.exp(-hazard * 1.5)  # shares 1/2 each, one doubled
    expected = 200 * 500 * chance
    assert abs(n - expected) < Z_ALPHA * math.sqrt(expected)
    assert abs(x - n * 2 / 3) < Z_ALPHA * math.sqrt(n * 2 / 9)


def test_declared_attribute_laws_are_drawn_per_subject() -> None:
    """Model(attributes=...) draws each subject's activity; its events follow its own rate."""
    sink = MemorySink(mapper=lambda ts, subject, t: subject.id)
    law = LogNormal(math.exp(-0.18), 0.6)
    model = Model(
        ["on"],
        "on",
        [Transition("play", "on", "on", 5, event_sinks=[sink], rate_attribute="activity")],
        attributes={"activity": law},
    )
    sim = Simulation(model, 2000, ticks=300, tick_ms=1000, seed=12)
    sim.run()
    activity = np.asarray([s.activity for s in sim.subjects])
    assert len(set(activity.tolist())) == 2000
    counts = Counter(sink.events)
    observed = np.asarray([counts[i] for i in range(2000)])
    q = 1 - 0.95**activity
    z = (observed.sum() - (300 * q).sum()) / math.sqrt((300 * q * (1 - q)).sum())
    assert abs(z) < Z_ALPHA
    # and the activity matters: the busiest tenth fires well over the quietest tenth
    order = np.argsort(activity)
    assert observed[order[-200:]].mean() > 2 * observed[order[:200]].mean()


def test_a_missing_or_bad_attribute_is_a_run_error() -> None:
    """A subject without the attribute, or with a negative one, fails the run by name."""
    model = Model(["on"], "on", [Transition("p", "on", "on", 5, rate_attribute="activity")])
    with pytest.raises(RunError, match="subject 0 has no attribute 'activity'"):
        Simulation(model, 1, ticks=3, tick_ms=1000, seed=1).run()
    with pytest.raises(RunError, match="rate attribute 'activity' = -1"):
        Simulation(model, [{"activity": -1}], ticks=3, tick_ms=1000, seed=1).run()


def test_a_certain_state_cannot_be_scaled() -> None:
    """A state whose chances sum to 100% has no rate to scale: refused with the sum."""
    model = Model(["on"], "on", [Transition("p", "on", "on", 100, rate_attribute="activity")])
    with pytest.raises(ModelError, match="chances sum to 100%"):
        Simulation(model, 1, ticks=3, tick_ms=1000, seed=1).run()


# -- the clock and the analytic side ---------------------------------------------------------


def test_callbacks_read_the_event_time() -> None:
    """current_time() in a two-argument callback is the timestamp of its event."""
    sink = MemorySink()
    seen: list[int | None] = []

    def note(subject: Any, transition: Transition) -> bool:
        seen.append(current_time())
        return True

    model = Model(["a"], "a", [Transition("e", "a", "a", 30, note, [sink])])
    Simulation(model, 20, ticks=50, tick_ms=250, timestamp_start=10_000, seed=2).run()
    assert seen == [e.timestamp for e in sink.events]
    assert len(seen) > 100


def test_same_seed_same_stream_with_every_feature() -> None:
    """Mix, dwell, delay, rates and attribute laws together: one seed, one stream."""

    def stream(seed: int) -> list[tuple[int, str]]:
        sink = MemorySink(mapper=lambda ts, s, t: (ts, t.trigger))
        model = Model(
            ["a", "b", "c"],
            {"a": 2, "b": 1},
            [
                Transition("ab", "a", "b", 20, event_sinks=[sink], rate_attribute="activity"),
                Transition("bc", "b", "c", 30, event_sinks=[sink], delay=Uniform(1, 4)),
                Transition("ca", "c", "a", 10, event_sinks=[sink]),
            ],
            dwell={"b": Gamma(2, 3)},
            attributes={"activity": LogNormal(1, 0.5)},
        )
        Simulation(model, 300, ticks=200, tick_ms=1000, seed=seed, arrivals=0.5).run()
        return list(sink.events)

    assert stream(1) == stream(1)
    assert stream(1) != stream(2)


def test_analytic_line_says_when_it_approximates() -> None:
    """approximations() names dwell laws, delays and scaled transitions (none for a chain)."""
    plain = Model(["a", "b"], "a", [Transition("go", "a", "b", 10)])
    assert approximations(plain) == []
    model = Model(
        ["a", "b"],
        "a",
        [Transition("go", "a", "b", 10, delay=Fixed(2), rate_attribute="activity")],
        dwell={"a": Fixed(3)},
    )
    notes = " ".join(approximations(model))
    assert "'a'" in notes and "dwell-time laws" in notes
    assert "delay laws" in notes and "subject attribute" in notes


def test_a_factory_attribute_wins_over_the_declared_law() -> None:
    """A subject whose factory set the attribute keeps it; the others get the law's draw."""
    model = Model(["on"], "on", attributes={"activity": Fixed(7)})
    given = [{"activity": 0.5}, {}, SimpleNamespace(activity=2.0), SimpleNamespace()]
    sim = Simulation(model, given, ticks=1, tick_ms=1000, seed=1)
    sim.run()
    assert [given[0]["activity"], given[1]["activity"]] == [0.5, 7.0]
    assert [given[2].activity, given[3].activity] == [2.0, 7.0]


def test_stop_and_resume_with_cohort_laws_equals_the_whole_run(tmp_path: Path) -> None:
    """With a mix, dwell and delay laws and rates, the two halves of a stopped run equal it."""

    def model_with(sink: MemorySink) -> Model:
        return Model(
            ["a", "b", "c"],
            {"a": 2, "b": 1},
            [
                Transition("ab", "a", "b", 20, event_sinks=[sink], rate_attribute="activity"),
                Transition("bc", "b", "c", 30, event_sinks=[sink], delay=Uniform(1, 4)),
                Transition("ca", "c", "a", 10, event_sinks=[sink]),
            ],
            dwell={"b": Gamma(2, 3)},
            attributes={"activity": LogNormal(1, 0.5)},
        )

    def mapper(ts: int, s: Any, t: Any) -> tuple[int, str]:
        return ts, t.trigger

    whole = MemorySink(mapper)
    result = Simulation(model_with(whole), 50, ticks=600, tick_ms=1, seed=4, arrivals=0.05).run()
    first = MemorySink(mapper)

    def progress(done: int) -> None:
        if done >= 250:
            sim.stop()

    sim = Simulation(
        model_with(first), 50, ticks=600, tick_ms=1, seed=4, arrivals=0.05, progress=progress
    )
    assert sim.run().stopped
    sim.checkpoint(tmp_path / "a.ckpt")
    rest = MemorySink(mapper)
    resumed = Simulation.resume(tmp_path / "a.ckpt", model_with(rest), arrivals=0.05).run()
    assert first.events + rest.events == whole.events
    assert len(rest.events) > 100
    assert resumed.occupancy[-1].tolist() == result.occupancy[-1].tolist()


def test_jitter_with_dwell_laws_keeps_ticks_and_order() -> None:
    """With jitter, a fixed dwell still leaves in its tick, stamps inside it and in order."""
    sink = MemorySink()
    seen: list[int | None] = []

    def note(subject: Any, transition: Transition) -> bool:
        seen.append(current_time())
        return True

    model = Model(
        ["s", "t"], "s", [Transition("go", "s", "t", 10, note, [sink])], dwell={"s": Fixed(5)}
    )
    Simulation(model, 200, ticks=10, tick_ms=1000, seed=3, jitter=True).run()
    stamps = [e.timestamp for e in sink.events]
    assert len(stamps) == 200
    assert stamps == sorted(stamps) == seen
    assert all(4000 <= ts < 5000 for ts in stamps)
    assert len(set(stamps)) > 100


def test_mixed_occupancy_is_right_in_coarse_bins() -> None:
    """With record_every, a mixed population's and its newcomers' occupancy is still exact."""
    model = Model(["a", "b", "c"], {"a": 1, "b": 2, "c": 1}, [Transition("ab", "a", "b", 5)])
    sim = Simulation(model, 300, ticks=100, tick_ms=1000, seed=2, arrivals=2, record_every=7)
    result = sim.run()
    counts = Counter(sim.subject_states())
    assert result.occupancy[-1].tolist() == [counts["a"], counts["b"], counts["c"]]
    assert result.occupancy.sum(axis=1)[0] > 300


def test_simulate_then_fit_recovers_the_dwell_law() -> None:
    """The fit (dogesim.report.spells) reads the engine's spells as the law simulated: a
    fixed 24 comes back as fixed 24, a gamma's parameters within their sampling error, and
    its model-file form reads back as a law of the same pmf."""
    pytest.importorskip("scipy")
    from dogesim.laws import law_from_dict
    from dogesim.report.spells import fit_dwell

    assert fit_dwell(_leave_ticks(Fixed(24), subjects=200)).best.spec() == {
        "law": "fixed",
        "ticks": 24,
    }
    fitted = fit_dwell(_leave_ticks(Gamma(3, 4), subjects=6000)).law("gamma")
    params = fitted.params()
    # five standard errors: the shape's MLE has variance k / (n (k psi'(k) - 1)) = 0.0027
    # (sd 0.052) at k = 3, n = 6000; the mean's is k scale^2 / n = 0.008 (sd 0.089)
    assert abs(params["shape"] - 3) < 5 * 0.052
    assert abs(params["shape"] * params["scale"] - 12) < 5 * 0.089
    again = law_from_dict(fitted.spec())
    assert np.abs(again.pmf(80) - Gamma(3, 4).pmf(80)).max() < 0.01


def test_a_final_state_with_a_dwell_law_is_never_filed() -> None:
    """A dwell law on a final state costs nothing: its subjects are never filed again."""
    model = Model(["a", "end"], "a", [Transition("go", "a", "end", 100)], dwell={"end": Fixed(1)})
    handled: list[int] = []
    sim = Simulation(model, 50, ticks=1000, tick_ms=1000, seed=1, progress=handled.append)
    sim.run()
    assert sim.subject_states() == ["end"] * 50
    assert handled == [1, 1000]  # tick 0 handled, then nothing until the end


def test_resources_queue_subjects_of_a_dwell_state() -> None:
    """A dwell state's move that needs a busy resource queues; one agent serves one at a time."""
    sink = MemorySink()
    model = Model(
        ["wait", "call", "done"],
        "wait",
        [
            Transition("ring", "wait", "call", 50, event_sinks=[sink], resource="agents", hold=3),
            Transition("hang", "call", "done", 100, event_sinks=[sink]),
        ],
        resources={"agents": 1},
        dwell={"wait": Fixed(2)},
    )
    Simulation(model, 4, ticks=30, tick_ms=1000, seed=1).run()
    rings = [e.timestamp // 1000 for e in sink.events if e.trigger == "ring"]
    hangs = [e.timestamp // 1000 for e in sink.events if e.trigger == "hang"]
    assert rings == [1, 4, 7, 10]  # all due at tick 1; each grant waits for the last hold
    assert hangs == [4, 7, 10, 13]
