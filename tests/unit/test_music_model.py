"""The fine-tick music model: its shape, a short run at 1 s ticks, and the benchmark's peer.

The peer (benchmarks/heapq_peer.py) must simulate the same law as the engine, or the
fine-tick benchmark compares different work: totals are compared with a z-bound computed
from per-listener variances (listeners are i.i.d.; Z = 5, fixed seeds).
"""

from __future__ import annotations

import configparser
import importlib.util
import itertools
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim import CountingSink, MemorySink, Model, Profile, Simulation, Transition
from dogesim.examples import music
from dogesim.laws import Fixed, LogNormal
from dogesim.modelfile import ModelSpec, load_model_file
from dogesim.result import RunResult
from tests.unit.cohorts_stats import chi_square_critical

Z = 5.0
HOUR_MS = 3_600_000
#: Monday 10:00 UTC: the session profile is near 1, far below its peak, so thinning matters.
MORNING = music.TIMESTAMP_START + 10 * HOUR_MS


def _peer() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "heapq_peer.py"
    spec = importlib.util.spec_from_file_location("benchmarks_heapq_peer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


class PerListener:
    """Counts the events each listener sends."""

    def __init__(self, n: int) -> None:
        self.counts = np.zeros(n, dtype=np.int64)

    def collect(self, timestamp: int, subject: music.Listener, transition: Transition) -> None:
        self.counts[subject.user_id] += 1


def _listeners(n: int, seed: int) -> list[music.Listener]:
    random.seed(seed)
    factory = music.ListenerFactory()
    return [factory.create() for _ in range(n)]


def test_model_has_the_benchmark_shape() -> None:
    """46 states and 255 transitions, all reachable from offline; every page times out."""
    model = music.build_model([CountingSink()])
    assert (len(model.states), len(model.transitions)) == (46, 255)
    reached, frontier = {music.OFFLINE}, [music.OFFLINE]
    while frontier:
        for t in model.outgoing(frontier.pop()):
            if t.to_state not in reached:
                reached.add(t.to_state)
                frontier.append(t.to_state)
    assert reached == set(model.states)
    for state in model.states[1:]:
        timeouts = [t for t in model.outgoing(state) if t.trigger == "session_timeout"]
        assert [t.to_state for t in timeouts] == [music.OFFLINE], state
        assert timeouts[0].event_sinks == ()
    seen = [t for t in model.transitions if t.trigger != "session_timeout"]
    assert all(len(t.event_sinks) == 1 for t in seen)


def test_session_gap_is_a_per_second_chance() -> None:
    """At 1 s ticks a page times out with about 1/1800 per tick (the 30-minute gap)."""
    model = music.build_model().at_tick(music.TICK_MS)
    timeout = next(t for t in model.outgoing("free:home") if t.trigger == "session_timeout")
    # Rescaling a page's rates per transition or per state (its total, split in proportion)
    # differ by less than half the page's total rate per tick (< 3% here).
    assert timeout.probability == pytest.approx(100 / 1800, rel=0.03)
    assert max(model.leave_probability(s) for s in model.states) < 10.0


def test_one_hour_run_feeds_many_transitions_and_callbacks_keep_count() -> None:
    """100 listeners for an hour: events on dozens of transitions, vetoes, and the listeners'
    counters equal the events of the moves their callbacks allowed."""
    sink = CountingSink()
    listeners = _listeners(100, 3)
    sim = Simulation(
        music.build_model([sink]),
        listeners,
        ticks=3600,
        tick_ms=music.TICK_MS,
        timestamp_start=MORNING + 8 * HOUR_MS,
        seed=11,
    )
    result = sim.run()
    by_trigger = result.events_by_trigger()
    assert int((result.events_per_transition > 0).sum()) >= 60
    assert int(result.vetoes.sum()) > 0
    seen = zip(result.transitions, result.events_per_transition.tolist(), strict=True)
    assert sink.count == sum(n for t, n in seen if t.event_sinks)
    assert by_trigger["session_timeout"] > 0
    songs = sum(by_trigger.get(k, 0) for k in ("play", "next_song", "skip"))
    assert sum(x.songs_played for x in listeners) == songs > 0
    starts = sum(by_trigger.get(k, 0) for k in ("open_app", "resume_free", "resume_paid"))
    assert sum(x.sessions for x in listeners) == starts > 0
    assert sum(x.likes for x in listeners) == by_trigger.get("like", 0)
    assert sum(x.ads_heard for x in listeners) == by_trigger.get("ad_end", 0)


def _z(a: np.ndarray, b: np.ndarray) -> float:
    """The z-score of the difference of two totals of i.i.d. per-listener counts."""
    spread = math.sqrt(len(a) * a.var(ddof=1) + len(b) * b.var(ddof=1))
    return float(a.sum() - b.sum()) / spread


def test_heapq_peer_simulates_the_same_law_as_the_engine() -> None:
    """The benchmark's peer and the engine send as many events and start as many sessions
    (totals within Z standard deviations, from per-listener variances)."""
    peer = _peer()
    n, ticks = 4000, 3 * 3600
    counts: list[np.ndarray] = []
    sessions: list[np.ndarray] = []
    for engine in ("dogesim", "peer"):
        sink = PerListener(n)
        listeners = _listeners(n, 5)
        model = music.build_model([sink])
        common: dict[str, Any] = {
            "ticks": ticks,
            "tick_ms": music.TICK_MS,
            "timestamp_start": MORNING,
        }
        if engine == "dogesim":
            Simulation(model, listeners, seed=21, seed_globals=False, **common).run()
        else:
            peer.run_peer(model, listeners, seed=22, **common)
        counts.append(sink.counts)
        sessions.append(np.asarray([x.sessions for x in listeners], dtype=np.int64))
    assert counts[0].sum() > 30_000
    assert abs(_z(*counts)) < Z
    assert abs(_z(*sessions)) < Z


class Recorder:
    """Keeps every event as (timestamp, subject id, trigger)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, str]] = []

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.events.append((timestamp, subject.id, transition.trigger))


def _veto_first_of_one(subject: Any, transition: Transition) -> bool:
    """Subject 1's first try is vetoed, every other goes ahead."""
    subject.tries += 1
    return not (subject.id == 1 and subject.tries == 1)


def test_peer_and_engine_give_the_contracts_stream_on_a_certain_model() -> None:
    """With chances of 100% the stream is fixed: subjects in creation order within a tick,
    a profile at 0 thins every attempt of its hour away, a veto keeps the subject in place."""
    peer = _peer()
    night = Profile(hourly=(0.0, *([1.0] * 23)))
    streams = []
    for engine in ("dogesim", "peer"):
        sink = Recorder()
        model = Model(("a", "b"), "a", name="certain")
        model.add_transition("go", "a", "b", 100, _veto_first_of_one, [sink], profile=night)
        model.add_transition("back", "b", "a", 100, None, [sink])
        subjects = [SimpleNamespace(id=i, tries=0) for i in range(3)]
        common: dict[str, Any] = {"ticks": 5, "tick_ms": HOUR_MS, "timestamp_start": 0}
        if engine == "dogesim":
            Simulation(model, subjects, seed=1, **common).run()
        else:
            peer.run_peer(model, subjects, seed=2, **common)
        streams.append(sink.events)
    h = HOUR_MS
    expected = [
        (h, 0, "go"), (h, 2, "go"),
        (2 * h, 0, "back"), (2 * h, 1, "go"), (2 * h, 2, "back"),
        (3 * h, 0, "go"), (3 * h, 1, "back"), (3 * h, 2, "go"),
        (4 * h, 0, "back"), (4 * h, 1, "go"), (4 * h, 2, "back"),
    ]  # fmt: skip
    assert streams == [expected, expected]


# -- models/music.yaml: the same service written naturally in a model file ------------------

MUSIC_YAML = Path(__file__).resolve().parents[2] / "models" / "music.yaml"
ALPHA = 1e-6
#: What the file means, typed here again: a song lasts LogNormal(3.3 min, 0.35), an ad 30 s,
#: a redirect 1 s, and no session opens within 30 minutes of the last one's end.
SONG = LogNormal("3.3 min", 0.35).at_tick(1000)
AD_MS, REDIRECT_MS, GAP_MS = 30_000, 1_000, 1_800_000
#: Sessions open by hour of day (UTC) and weekday (Monday first): the intended profile.
SESSIONS = Profile(
    hourly=(
        0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.7, 1.3, 1.5, 1.1, 0.9, 0.9,
        1.1, 1.0, 0.9, 1.0, 1.2, 1.5, 1.7, 1.8, 1.7, 1.4, 1.0, 0.5,
    ),
    weekly=(1, 1, 1, 1, 1, 0.7, 0.6),
)  # fmt: skip
#: A listener's pace: log-normal with mean 1 (median e^-0.18, sigma 0.6).
PACE = LogNormal(math.exp(-0.18), 0.6)
REDIRECTS = ("submit_registration", "login", "logout", "save_settings", "submit_upgrade",
             "submit_downgrade")  # fmt: skip


@dataclass(frozen=True)
class Move:
    """One move of a listener as the recording sink saw it."""

    ts: int
    user: int
    pace: float
    trigger: str
    source: str
    target: str


class MoveLog:
    """Every move (the unseen session ends too), in stream order."""

    def __init__(self) -> None:
        self.moves: list[Move] = []

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.moves.append(
            Move(
                timestamp,
                subject.user_id,
                subject.pace,
                transition.trigger,
                transition.from_state,
                transition.to_state,
            )
        )

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class MusicRun:
    """One seeded run of the model file, its moves per listener and what it started from."""

    spec: ModelSpec
    model: Model
    result: RunResult
    by_user: dict[int, list[Move]]
    first_state: dict[int, str]
    end_ms: int


@pytest.fixture(scope="module")
def music_run() -> MusicRun:
    """300 listeners for the file's two days of 1 s ticks (Sunday and Monday), seed 17."""
    spec = load_model_file(MUSIC_YAML, subjects=300)
    log = MoveLog()
    sim = spec.simulation(sinks=[log], seed=17)
    result = sim.run()
    by_user: dict[int, list[Move]] = {}
    for move in log.moves:
        by_user.setdefault(move.user, []).append(move)
    final = dict(zip((s.user_id for s in sim.subjects), sim.subject_states(), strict=True))
    first = {u: (by_user[u][0].source if u in by_user else final[u]) for u in final}
    end_ms = spec.timestamp_start + spec.ticks * spec.tick_ms
    return MusicRun(spec, sim.model, result, by_user, first, end_ms)


def _pairs(run: MusicRun) -> list[tuple[Move, Move]]:
    """Each move with the same listener's next move."""
    return [(a, b) for moves in run.by_user.values() for a, b in itertools.pairwise(moves)]


def _ks_bound(n: int) -> float:
    """The DKW bound on sup |F_n - F| for `n` draws, exceeded with probability <= ALPHA."""
    return math.sqrt(math.log(2 / ALPHA) / (2 * n))


def test_music_file_is_written_without_tricks(music_run: MusicRun) -> None:
    """No callback vetoes, no resources, no state per delay: pages x segments plus a gap and
    an offline state per segment; songs, ads and the session gap are dwell laws, redirects
    delays, pace a per-listener rate."""
    model = music_run.model
    assert int(music_run.result.vetoes.sum()) == 0
    assert not model.resources
    pages = {s.split(":", 1)[1] for s in model.states if ":" in s and not s.startswith("off")}
    segments = ("anon-free", "anon-paid", "free", "paid")
    assert 30 <= len(pages) <= 45 and len(model.states) < 75
    gaps = {f"gap:{s}" for s in segments}
    assert set(model.dwell) == {"free:player", "paid:player", "free:roll_advert", *gaps}
    assert model.dwell["free:player"] == SONG
    assert {model.dwell[g] for g in gaps} == {Fixed(GAP_MS // 1000)}
    delayed = {t.to_state.split(":")[-1] for t in model.transitions if t.delay is not None}
    assert delayed == set(REDIRECTS)
    pages_moves = [
        t
        for t in model.transitions
        if t.from_state.split(":")[0] in segments and t.from_state.split(":")[1] not in REDIRECTS
    ]
    paced = {t.from_state for t in pages_moves if t.rate_attribute == "pace"}
    assert paced == {t.from_state for t in pages_moves} - set(model.dwell)
    assert len(model.initial_mix) > 1
    assert music_run.result.occupancy.min() >= 0


def test_song_to_song_gaps_follow_the_song_length_law(music_run: MusicRun) -> None:
    """The gap from a song's start to the listener's next move is the song's length:
    KS distance to LogNormal(3.3 min, 0.35) on the 1 s grid within the DKW bound."""
    horizon = music_run.end_ms - HOUR_MS  # a song started later may still be playing
    gaps = np.asarray(
        [
            (b.ts - a.ts) // 1000
            for a, b in _pairs(music_run)
            if a.target.endswith(":player") and a.ts < horizon
        ]
    )
    assert len(gaps) > 5000
    ks = np.arange(1, int(gaps.max()) + 1)
    empirical = np.searchsorted(np.sort(gaps), ks, side="right") / len(gaps)
    law = np.asarray([SONG.cdf(float(k)) for k in ks])
    assert float(np.abs(empirical - law).max()) < _ks_bound(len(gaps))
    # the geometric stay of the same mean would be far outside the bound
    geometric = 1 - np.exp(-ks / SONG.expectation())
    assert float(np.abs(empirical - geometric).max()) > 5 * _ks_bound(len(gaps))


def test_redirects_land_after_one_second_and_ads_last_thirty(music_run: MusicRun) -> None:
    """Every move to a submitting page is followed by its redirect exactly 1 s later; every
    ad by the next move exactly 30 s later."""
    redirects = [b.ts - a.ts for a, b in _pairs(music_run) if a.target.split(":")[-1] in REDIRECTS]
    ads = [b.ts - a.ts for a, b in _pairs(music_run) if a.target == "free:roll_advert"]
    assert len(redirects) > 100 and len(ads) > 100
    assert set(redirects) == {REDIRECT_MS}
    assert set(ads) == {AD_MS}


def test_no_session_opens_within_the_session_gap(music_run: MusicRun) -> None:
    """A session's end (unseen) is followed by the end of its gap (unseen) exactly 30 minutes
    later; the gap between seen events across sessions is longer than 30 minutes."""
    ends = [b.ts - a.ts for a, b in _pairs(music_run) if a.trigger == "session_end"]
    assert len(ends) > 500
    assert set(ends) == {GAP_MS}
    for moves in music_run.by_user.values():
        seen = [m for m in moves if m.trigger not in ("session_end", "gap_over")]
        for a, b in itertools.pairwise(seen):
            if b.source.startswith("offline:"):
                assert b.ts - a.ts > GAP_MS


def test_sessions_open_by_the_hour_and_weekday_profile(music_run: MusicRun) -> None:
    """Session starts per hour of the run match the profile: the expected count sums each
    open tick's chance (rate x hourly x weekly) over the listeners free to start (offline,
    past their gap); chi-square over hours pooled to >= 10 expected, within alpha 1e-6."""
    run = music_run
    start_ms, ticks, tick_ms = run.spec.timestamp_start, run.spec.ticks, run.spec.tick_ms
    chance = {
        t.from_state: t.probability / 100
        for t in run.model.transitions
        if t.from_state.startswith("offline:")
    }
    profiles = [t.profile for t in run.model.transitions if t.profile is not None]
    assert len(profiles) == 4 and all(p == SESSIONS for p in profiles)
    profile = SESSIONS
    free = {state: np.zeros(ticks + 1) for state in chance}  # +1/-1 where a spell opens/ends
    opened = np.zeros(ticks // 3600)
    for user, first in run.first_state.items():
        state, since = (first, 0) if first in chance else (None, 0)
        for move in run.by_user.get(user, []):
            tick = (move.ts - start_ms) // tick_ms
            if move.trigger == "gap_over":  # offline now: the first chance is the next tick
                state, since = move.target, tick + 1
            elif state is not None and move.source == state:
                free[state][since] += 1
                free[state][tick + 1] -= 1
                opened[tick // 3600] += 1
                state = None
        if state is not None and since < ticks:
            free[state][since] += 1
            free[state][ticks] -= 1
    hourly = np.asarray([profile.multiplier(start_ms + h * HOUR_MS) for h in range(ticks // 3600)])
    exposure = sum(
        np.cumsum(spell)[:ticks].reshape(-1, 3600).sum(axis=1) * chance[state]
        for state, spell in free.items()
    )
    expected = exposure * hourly
    assert opened.sum() > 1000
    chi2, df = _pooled_chi2(opened, expected)
    assert df >= 30 and chi2 < chi_square_critical(df, ALPHA)
    # the same starts against a flat day (the same exposure, no profile) are far outside
    flat = exposure * (expected.sum() / exposure.sum())
    chi2_flat, df_flat = _pooled_chi2(opened, flat)
    assert chi2_flat > 3 * chi_square_critical(df_flat, ALPHA)


def _pooled_chi2(observed: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """Pearson's chi-square over consecutive bins pooled until each expects >= 10, and its
    degrees of freedom (the pooled bins: the expectation is fully specified)."""
    pooled: list[list[float]] = [[0.0, 0.0]]
    for obs, exp in zip(observed.tolist(), expected.tolist(), strict=True):
        if pooled[-1][1] >= 10:
            pooled.append([0.0, 0.0])
        pooled[-1][0] += obs
        pooled[-1][1] += exp
    o, e = np.asarray(pooled).T
    return float(((o - e) ** 2 / e).sum()), len(pooled)


def test_page_waits_follow_each_listeners_pace(music_run: MusicRun) -> None:
    """Paces follow LogNormal(e^-0.18, 0.6) across listeners (KS within the DKW bound); on a
    page the wait for the next move is geometric with the page's hazard times the
    listener's pace: the total of the waits is within Z standard deviations of its mean
    (per visit 1/q, variance (1-q)/q^2); with pace ignored it would not be."""
    run = music_run
    hazard: dict[str, float] = {}
    for state in run.model.states:
        outgoing = list(run.model.outgoing(state))
        if outgoing and all(t.rate_attribute == "pace" for t in outgoing):
            hazard[state] = -math.log1p(-sum(t.probability for t in outgoing) / 100)
    horizon = run.end_ms - 3 * HOUR_MS
    waits, q, q_flat = [], [], []
    for a, b in _pairs(run):
        if a.target in hazard and a.ts < horizon:
            waits.append((b.ts - a.ts) // 1000)
            q.append(-math.expm1(-hazard[a.target] * a.pace))
            q_flat.append(-math.expm1(-hazard[a.target]))
    assert len(waits) > 5000
    paces = np.sort([moves[0].pace for moves in run.by_user.values()])
    ranks = np.arange(1, len(paces) + 1) / len(paces)
    law = np.asarray([PACE.cdf(float(x)) for x in paces])
    assert float(np.max(np.maximum(ranks - law, law - (ranks - 1 / len(paces))))) < _ks_bound(
        len(paces)
    )
    total, p, p_flat = float(sum(waits)), np.asarray(q), np.asarray(q_flat)
    z = (total - float((1 / p).sum())) / math.sqrt(float(((1 - p) / p**2).sum()))
    z_flat = (total - float((1 / p_flat).sum())) / math.sqrt(
        float(((1 - p_flat) / p_flat**2).sum())
    )
    assert abs(z) < Z
    assert abs(z_flat) > 3 * Z


def test_music_file_callbacks_read_the_clock_and_take_args(music_run: MusicRun) -> None:
    """The callbacks beside the file ran with the event's time and the file's args: session
    ids count the sessions a listener opened, song ids lie in the catalogue of 20000."""
    spec = load_model_file(MUSIC_YAML, subjects=50, ticks=6 * 3600)
    sink = MemorySink()
    sim = spec.simulation(sinks=[sink], seed=4)
    sim.run()
    opened: dict[int, int] = {}
    for event in sink.events:
        if event.from_state.startswith("offline:"):
            opened[event.subject.user_id] = opened.get(event.subject.user_id, 0) + 1
    assert opened
    for subject in sim.subjects:
        assert subject.session_id == opened.get(subject.user_id, 0)
        if subject.session_id:
            assert (
                spec.timestamp_start <= subject.session_start < spec.timestamp_start + 6 * HOUR_MS
            )
        if subject.songs:
            assert 0 <= subject.song_id < 20_000
            assert subject.song_start % 1000 == 0


def test_the_wheel_ships_the_callbacks_beside_the_music_file() -> None:
    """setup.cfg ships dogesim/models/*.py as package data, where music_callbacks.py sits
    next to music.yaml (callback paths resolve against the model file's folder)."""
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    assert "models/*.py" in config["options.package_data"]["dogesim"].split()
    assert (MUSIC_YAML.resolve().parent / "music_callbacks.py").is_file()
    spec = load_model_file(MUSIC_YAML, subjects=5, ticks=10)
    assert {t.callback_path for t in spec.transitions if t.callback_path} == {
        "music_callbacks:start_session",
        "music_callbacks:play",
        "music_callbacks:change_level",
    }
