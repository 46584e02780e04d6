"""The simulation engine: subjects walk a `Model` on a SimPy clock, paid per event.

- `Simulation`: one run of a model over a population of subjects, driven by a
  `simpy.Environment` whose time unit is one tick.
- `effective_model`: a model as a run sees it (chances at the run's tick, churn added).
- `sink_name`: how a sink is named in ledgers and errors.
- `SEED_VARIABLE`: ``DOGESIM_SEED``, the seed of runs whose code gives none.

A run returns a `dogesim.result.RunResult` (re-exported here).

How it stays cheap. In the per-tick definition (doge-datagen's loop) every subject draws once
per tick and, with probability ``P_s = sum(p_i)/100``, attempts a transition of its state ``s``.
The number of quiet ticks before the next attempt is therefore geometric with parameter
``P_s`` and memoryless, so the engine draws it once — ``floor(ln U / ln(1 - P_s))`` — and files
the subject in a calendar of due subjects under that tick. A SimPy process walks the calendar
from one non-empty tick to the next; each due subject picks transition ``i`` with probability
``p_i / sum(p)``, runs its callback, moves, feeds the sinks, and is filed again. Cost grows with
the number of attempts, not with subjects x ticks, and the stream is exact in distribution.
Within a tick subjects are handled in creation order; events are stamped
``timestamp_start + t * tick_ms``.
"""

from __future__ import annotations

import gc
import logging
import math
import operator
import os
import pickle
import random
import secrets
import sys
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterable, Sequence
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any

import numpy as np
import simpy
import simpy.rt

from dogesim.calendar import Calendar
from dogesim.errors import ModelError, RunError, SinkError
from dogesim.model import Model, Transition
from dogesim.rates import Profile, Rate, parse_rate
from dogesim.result import RunResult
from dogesim.sinks.base import DeliveryLedger, ledger_of

__all__ = ["SEED_VARIABLE", "RunResult", "Simulation", "effective_model", "sink_name"]


LOGGER = logging.getLogger("dogesim")


def _positive_int(value: object, name: str) -> int:
    """`value` as an int when it is a positive whole number, else `ModelError`."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if isinstance(value, Integral):
        number = operator.index(value)
    elif float(value).is_integer():
        number = int(float(value))
    else:
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if number <= 0:
        raise ModelError(f"{name} must be positive, got {number}")
    return number


def _timestamp(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ModelError(f"timestamp_start must be a number of epoch milliseconds, got {value!r}")
    return int(float(value)) if not isinstance(value, Integral) else operator.index(value)


#: Environment variable that seeds runs whose code gives no seed (doge-datagen programs).
SEED_VARIABLE = "DOGESIM_SEED"


def _seed_from_environment() -> int | None:
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if not text:
        return None
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise ModelError(f"{SEED_VARIABLE} must be a non-negative integer, got {text!r}")
    return seed


def sink_name(sink: object) -> str:
    """A readable name for `sink`: its ledger's name, else its class and id."""
    ledger = ledger_of(sink)
    if ledger is not None:
        return ledger.sink
    return f"{type(sink).__name__}@{id(sink):x}"


#: A tick no run reaches (the horizon of runs without a tick count).
_FOREVER = 1 << 62


def _default_subject() -> SimpleNamespace:
    return SimpleNamespace()


def _threshold_lists(thresholds: np.ndarray, n_out: np.ndarray) -> list[list[float]]:
    """Per state, the thresholds that matter for bisection (its transitions' columns)."""
    return [row[: int(n)] for row, n in zip(thresholds.tolist(), n_out.tolist(), strict=True)]


def effective_model(
    model: Model,
    tick_ms: int,
    churn: float | Rate | str | None,
    churn_sinks: Sequence[Any],
) -> Model:
    """`model` as a run at `tick_ms` sees it: chances rescaled to the tick, plus a ``churn``
    transition from every non-final state to the final state ``churned`` when `churn` is
    given (the model `Simulation.model` holds, and reports need)."""
    model = model.at_tick(tick_ms)
    if churn is None:
        return model
    if isinstance(churn, str):
        churn = parse_rate(churn, "churn")
    chance = churn.per_tick(tick_ms) if isinstance(churn, Rate) else churn
    states = list(model.states)
    if "churned" not in states:
        states.append("churned")
    copy = Model(
        states, model.initial_state, name=model.name, tick_ms=tick_ms, resources=model.resources
    )
    for t in model.transitions:
        copy.add(t._copy(t.probability))
    for state in model.states:
        if state != "churned" and not model.is_final(state):
            copy.add_transition("churn", state, "churned", chance, event_sinks=churn_sinks)
    return copy


def _arrival_rate(arrivals: float | Rate | str | None, tick_ms: int) -> float | None:
    """Expected newcomers per tick."""
    if arrivals is None:
        return None
    if isinstance(arrivals, str):
        arrivals = parse_rate(arrivals, "arrivals")
    if isinstance(arrivals, Rate):
        if arrivals.kind != "count":
            raise ModelError(
                f"arrivals must be a count per period like '30 per hour', got {arrivals}"
            )
        return arrivals.value * tick_ms / arrivals.period_ms
    if isinstance(arrivals, bool) or not isinstance(arrivals, Real) or not 0 <= arrivals < math.inf:
        raise ModelError(f"arrivals must be a number of subjects per tick >= 0, got {arrivals!r}")
    return float(arrivals)


def _fingerprint(model: Model) -> tuple[Any, ...]:
    """What a checkpoint must match: states and every transition's shape and chance."""
    return (
        model.states,
        model.initial_state,
        tuple(
            (t.trigger, t.from_state, t.to_state, round(t.probability, 12))
            for t in model.transitions
        ),
    )


class Simulation:
    """One run of `model` over a population of subjects.

    Args:
        model: the validated state machine.
        subjects: how many subjects to create with `subject_factory`, or the subjects
            themselves (any objects, hashable or not), in creation order.
        subject_factory: called once per subject, in order, to create it; either a callable
            or an object with a ``create()`` method (doge-datagen's `SubjectFactory`). Without
            one, subjects are ``SimpleNamespace(id=i)``.
        ticks: number of ticks to simulate (ticks ``0 .. ticks-1``); None in live mode runs
            until `stop` is called.
        tick_ms: length of a tick in milliseconds.
        timestamp_start: timestamp of tick 0, epoch milliseconds (default 0; in live mode the
            wall clock at the start).
        seed: the seed; the same model and seed give the same event stream. Without one the
            ``DOGESIM_SEED`` environment variable is used when set (so programs that give no
            seed, like doge-datagen's, can be made reproducible unchanged), else a seed is
            picked at random; either way `RunResult.seed` reports it.
        seed_globals: also seed Python's global `random` module (and numpy's legacy global
            generator) with `seed` before subjects are created, so factories and callbacks
            that draw from them, as doge-datagen programs do, are reproducible too.
        env: the SimPy environment to run in (a fresh one when omitted). Time unit: ticks.
        progress: called with the number of ticks done after every tick that had events.
        jitter: spread event timestamps uniformly within their tick (opt-in); events of a
            tick then come in timestamp order.
        live: pace the run in real time (`simpy.rt`): tick ``t`` is handled when
            ``t * tick_ms / speed`` ms have passed since the start.
        speed: live mode's speed-up factor (2.0: twice as fast as real time).
        max_lag_ms: in live mode, how far behind real time the run may fall before
            `on_lag` applies (default: one tick).
        on_lag: ``"warn"`` (log a warning, count it in the result) or ``"fail"``
            (stop with `RunError`) when live mode falls behind by more than `max_lag_ms`.
        arrivals: new subjects per tick (a number, a `Rate` or rate text like
            ``"30 per hour"``), created by `subject_factory` in the initial state.
        arrivals_profile: a `Profile` shaping the arrival rate over the calendar.
        churn: a chance per tick (percent, `Rate` or rate text) that a subject in any
            non-final state leaves for the final state ``churned``.
        churn_sinks: sinks fed by the ``churn`` transitions.
    """

    def __init__(
        self,
        model: Model,
        subjects: int | Sequence[Any] | Iterable[Any],
        *,
        subject_factory: Callable[[], Any] | Any | None = None,
        ticks: int | None,
        tick_ms: int,
        timestamp_start: int | None = None,
        seed: int | None = None,
        seed_globals: bool = True,
        env: simpy.Environment | None = None,
        progress: Callable[[int], None] | None = None,
        jitter: bool = False,
        live: bool = False,
        speed: float = 1.0,
        max_lag_ms: float | None = None,
        on_lag: str = "warn",
        arrivals: float | Rate | str | None = None,
        arrivals_profile: Profile | None = None,
        churn: float | Rate | str | None = None,
        churn_sinks: Sequence[Any] = (),
    ) -> None:
        if not isinstance(model, Model):
            raise ModelError(f"model must be a dogesim.Model, got {type(model).__name__}")
        self.tick_ms: int = _positive_int(tick_ms, "tick_ms")
        if ticks is None and not live:
            raise ModelError("ticks must be given (ticks=None, run until stopped, needs live=True)")
        self.ticks: int | None = None if ticks is None else _positive_int(ticks, "ticks")
        self.live: bool = bool(live)
        if (
            isinstance(speed, bool)
            or not isinstance(speed, Real)
            or not 0 < float(speed) < math.inf
        ):
            raise ModelError(f"speed must be a positive number, got {speed!r}")
        self.speed: float = float(speed)
        if on_lag not in ("warn", "fail"):
            raise ModelError(f"on_lag must be 'warn' or 'fail', got {on_lag!r}")
        self.on_lag: str = on_lag
        self.max_lag_ms: float = float(
            self.tick_ms / self.speed if max_lag_ms is None else max_lag_ms
        )
        if timestamp_start is None:
            timestamp_start = int(time.time() * 1000) if live else 0
        self.timestamp_start: int = _timestamp(timestamp_start)
        self.jitter: bool = bool(jitter)
        self.model: Model = effective_model(model, self.tick_ms, churn, churn_sinks)
        self._arrival_rate: float | None = _arrival_rate(arrivals, self.tick_ms)
        self.arrivals_profile: Profile | None = arrivals_profile
        if seed is None:
            seed = _seed_from_environment()
        if seed is None:
            seed = secrets.randbits(63)
        elif isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
            raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed: int = int(seed)
        self.seed_globals: bool = seed_globals
        self._given_subjects: list[Any] | None = None
        if isinstance(subjects, Integral) and not isinstance(subjects, bool):
            self.subjects_num: int = operator.index(subjects)
            if self.subjects_num < 0 or (self.subjects_num == 0 and self._arrival_rate is None):
                raise ModelError(f"subjects must be positive, got {self.subjects_num}")
        elif isinstance(subjects, Iterable) and not isinstance(subjects, (str, bytes)):
            self._given_subjects = list(subjects)
            if not self._given_subjects:
                raise ModelError("subjects: the list of subjects is empty")
            self.subjects_num = len(self._given_subjects)
        else:
            raise ModelError(f"subjects must be a count or a list of subjects, got {subjects!r}")
        if subject_factory is not None and not callable(subject_factory):
            create = getattr(subject_factory, "create", None)
            if not callable(create):
                raise ModelError(
                    f"subject_factory must be callable or have a create() method, "
                    f"got {subject_factory!r}"
                )
            subject_factory = create
        self._factory: Callable[[], Any] | None = subject_factory
        if self._arrival_rate is not None and self._factory is None:
            self._factory = _default_subject
        if env is None:
            env = (
                simpy.rt.RealtimeEnvironment(factor=self.tick_ms / 1000 / self.speed, strict=False)
                if self.live
                else simpy.Environment()
            )
        self.env: simpy.Environment = env
        self.progress: Callable[[int], None] | None = progress
        self.subjects: list[Any] = []
        self._state_array: array[int] = array("i")
        self._state: np.ndarray = np.empty(0, dtype=np.intc)
        self._ran: bool = False
        self._stop_requested: bool = False
        self._restored: dict[str, Any] | None = None
        self.result: RunResult | None = None

    # -- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop after the tick in progress (safe from signal handlers and other
        threads). `run` then closes the sinks and returns a result with ``stopped=True``."""
        self._stop_requested = True

    def run(self) -> RunResult:
        """Run the simulation to the end (or to `stop`), close every sink once, return the result.

        Raises:
            SinkError: a sink lost events or failed to close (after every sink was closed).
            RunError: the simulation already ran, or live mode fell behind with on_lag="fail".
            Exception: whatever a factory, callback or sink raised, after every sink was
                closed (the original exception propagates; close failures are attached as
                notes).
        """
        if self._ran:
            raise RunError("this Simulation already ran and its sinks are closed; build a new one")
        self._ran = True
        sinks = self.model.sinks()
        started = time.perf_counter()
        LOGGER.info("run start: %d subjects, seed %d", self.subjects_num, self.seed)
        self._failure: BaseException | None = None
        try:
            if self._restored is None:
                self._create_subjects()
            self._prepare()
            done = self.env.process(self._ticker())
            self.env.run(until=done)
            if self._failure is not None:
                raise self._failure
            # The global generators as the run left them: what a checkpoint must restore,
            # whatever else draws from them before it is taken.
            self._globals_at_end = (random.getstate(), np.random.get_state())
        except BaseException as exc:
            for error in self._close_sinks(sinks):
                _add_note(exc, f"while stopping, closing a sink also failed: {error}")
            raise
        errors = self._close_sinks(sinks)
        ledgers = self._ledgers(sinks)
        wall = time.perf_counter() - started
        self.result = self._result(ledgers, wall)
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise SinkError("; ".join(str(e) for e in errors), ledgers) from errors[0]
        LOGGER.info("run done: %d events in %.3f s", self.result.events, wall)
        return self.result

    def subject_states(self) -> list[str]:
        """The current state of every subject, in creation order."""
        names = self.model.states
        return [names[s] for s in self._state_array]

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Save where a stopped run is (subjects, states, calendar, RNG states, clock), so that
        `Simulation.resume` continues it with no event lost or repeated.

        Subjects queueing for or holding a resource are saved with their place in the queue
        and their grant tick; `resume` starts their processes again in the same order.

        Raises:
            RunError: the run has not stopped yet.
        """
        if not self._ran or self.result is None:
            raise RunError("checkpoint() needs a run that has stopped; call run() first")
        state = {
            "version": 1,
            "fingerprint": _fingerprint(self.model),
            "seed": self.seed,
            "tick_ms": self.tick_ms,
            "timestamp_start": self.timestamp_start,
            "ticks": self.ticks,
            "next_tick": self._next_tick,
            "subjects": self.subjects,
            "states": self._state_array,
            "calendar": self._calendar,
            "rng": self._rng.bit_generator.state,
            "random": self._globals_at_end[0],
            "numpy_random": self._globals_at_end[1],
            "rows": self._rows,
            "arrivals": self._arrival_rows,
            "initial_subjects": self._initial_subjects,
            "jitter": self.jitter,
            "services": sorted(self._services.values(), key=lambda s: s[0]),
            "last_stamp": self._last_stamp,
        }
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        model: Model,
        *,
        progress: Callable[[int], None] | None = None,
        live: bool = False,
        speed: float = 1.0,
        env: simpy.Environment | None = None,
        arrivals: float | Rate | str | None = None,
        arrivals_profile: Profile | None = None,
        churn: float | Rate | str | None = None,
        churn_sinks: Sequence[Any] = (),
        subject_factory: Callable[[], Any] | Any | None = None,
    ) -> Simulation:
        """A `Simulation` that continues the run saved by `checkpoint`, into `model`'s sinks.

        The model must be the same as the checkpointed one (states, transitions, chances);
        its sinks are new (open file sinks in append mode). The resumed run draws exactly
        what the uninterrupted run would have, so the two halves together equal it.
        """
        with open(path, "rb") as handle:
            saved = pickle.load(handle)
        if not isinstance(saved, dict) or saved.get("version") != 1:
            raise RunError(f"{os.fspath(path)} is not a dogesim checkpoint")
        sim = cls(
            model,
            max(len(saved["subjects"]), 1),
            subject_factory=subject_factory,
            ticks=saved["ticks"],
            tick_ms=saved["tick_ms"],
            timestamp_start=saved["timestamp_start"],
            seed=saved["seed"],
            progress=progress,
            live=live,
            speed=speed,
            env=env,
            jitter=saved["jitter"],
            arrivals=arrivals,
            arrivals_profile=arrivals_profile,
            churn=churn,
            churn_sinks=churn_sinks,
        )
        if _fingerprint(sim.model) != saved["fingerprint"]:
            raise RunError(
                f"{os.fspath(path)} was saved from a different model (states, transitions or "
                "chances changed); resume it with the model it was run with"
            )
        sim._restored = saved
        sim.subjects = saved["subjects"]
        sim.subjects_num = len(sim.subjects)
        return sim

    # -- set-up ----------------------------------------------------------------------------

    def _create_subjects(self) -> None:
        if self.seed_globals:
            random.seed(self.seed)
            if "numpy" in sys.modules:
                np.random.seed(self.seed % (1 << 32))
        if self._given_subjects is not None:
            self.subjects = list(self._given_subjects)
            return
        self.subjects = self._make_subjects(self.subjects_num)

    def _make_subjects(self, count: int) -> list[Any]:
        # Creating a population only allocates: the cyclic garbage collector would scan the
        # growing heap again and again for nothing (a third of the time for 1M subjects).
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self._factory is not None:
                factory = self._factory
                return [factory() for _ in range(count)]
            start = len(self.subjects)
            return [SimpleNamespace(id=start + i) for i in range(count)]
        finally:
            if collecting:
                gc.enable()

    def _prepare(self) -> None:
        """Build the per-state lookup tables and file every subject at its first attempt."""
        model = self.model
        n_states = len(model.states)
        # Transitions grouped by their from-state; `_order[j]` is the j-th of that grouping.
        order: list[Transition] = []
        first = np.zeros(n_states, dtype=np.int64)
        n_out = np.zeros(n_states, dtype=np.int64)
        width = max((len(model.outgoing(s)) for s in model.states), default=1)
        # Per state: the cumulative chances of its transitions divided by the most the state
        # can ever have (`peak`); a draw u < 1 picks the first transition whose threshold
        # exceeds u, and none (no attempt after all) when u is above the last threshold,
        # which happens only when a calendar profile lowers the chances (thinning).
        thresholds = np.full((n_states, max(width, 1)), 2.0)
        peak = np.zeros(n_states)
        invlog = np.full(n_states, np.nan)
        profiled = any(t.profile is not None for t in model.transitions)
        for s, name in enumerate(model.states):
            outgoing = list(model.outgoing(name))
            first[s] = len(order)
            n_out[s] = len(outgoing)
            order.extend(outgoing)
            top = [t.probability / 100.0 * (t.profile.peak if t.profile else 1.0) for t in outgoing]
            total = sum(top)
            if total > 1.0 + 1e-9:
                raise ModelError(
                    f"{model.name}: state {name!r}: at the peaks of their calendar profiles the "
                    f"outgoing probabilities reach {100 * total:g}% per tick, at most 100%"
                )
            peak[s] = total
            if total <= 0.0:
                continue  # never moves: stays out of the calendar
            cumulative = 0.0
            for k, chance in enumerate(top):
                cumulative += chance
                thresholds[s, k] = cumulative / total
            thresholds[s, len(outgoing) - 1] = 1.0
            if total >= 1.0:
                invlog[s] = 0.0
            elif total > 1e-300:
                inv = 1.0 / math.log1p(-total)
                invlog[s] = inv if math.isfinite(inv) else np.nan
        position = {id(t): j for j, t in enumerate(model.transitions)}
        self._order = order
        self._order_to_model = np.asarray([position[id(t)] for t in order], dtype=np.int64)
        self._first = first
        self._first_list: list[int] = first.tolist()
        self._n_out = n_out
        self._n_out_list: list[int] = n_out.tolist()
        self._peak = peak
        self._thresholds = thresholds
        self._threshold_lists = _threshold_lists(thresholds, n_out)
        self._draw_choice = profiled or bool((n_out > 1).any())
        self._profiled = profiled
        self._profile_cache: dict[tuple[Any, ...], tuple[np.ndarray, list[list[float]]]] = {}
        self._invlog = invlog
        self._invlog_list: list[float | None] = [
            None if math.isnan(x) else x for x in invlog.tolist()
        ]
        self._to = np.asarray([model.index(t.to_state) for t in order], dtype=np.int64)
        self._to_list: list[int] = self._to.tolist()
        self._callbacks = [t.action_callback for t in order]
        self._collectors = [tuple(s.collect for s in t.event_sinks) for t in order]
        self._resource_of: list[simpy.Resource | None] = []
        resources = {name: simpy.Resource(self.env, cap) for name, cap in model.resources.items()}
        for t in order:
            self._resource_of.append(resources[t.resource] if t.resource else None)
        self._python = [
            bool(self._callbacks[j] is not None or self._collectors[j] or self._resource_of[j])
            for j in range(len(order))
        ]
        self._has_resources = any(r is not None for r in self._resource_of)
        self._in_service = 0
        self._services: dict[int, list[Any]] = {}
        self._service_seq = 0
        self._last_stamp = self.timestamp_start
        self._wall0 = time.monotonic()
        self._last_intended_ms = 0
        self._wakeup = self.env.event()
        self.max_lag_ms_seen = 0.0
        self.lag_warnings = 0
        self.stopped = False

        restored = self._restored
        if restored is not None:
            self._rows: list[tuple[int, Any, Any]] = restored["rows"]
            self._arrival_rows: list[tuple[int, int]] = restored["arrivals"]
            self._initial_subjects = restored["initial_subjects"]
            self._state_array = restored["states"]
            self._state = np.frombuffer(self._state_array, dtype=np.intc)
            self._calendar = restored["calendar"]
            self._rng = np.random.default_rng(self.seed)
            self._rng.bit_generator.state = restored["rng"]
            random.setstate(restored["random"])
            np.random.set_state(restored["numpy_random"])
            self._first_tick = restored["next_tick"]
            self._next_tick = self._first_tick
            self._origin = self.env.now - self._first_tick
            self._last_stamp = restored["last_stamp"]
            self._restart_services(restored["services"])
            return
        self._rows = []  # (tick, events per transition, vetoes per transition or None)
        self._arrival_rows = []  # (tick, subjects arrived)
        self._rng = np.random.default_rng(self.seed)
        n = len(self.subjects)
        self._initial_subjects = n
        initial = model.index(model.initial_state)
        # One buffer, two views: `array` indexing is fast for the per-subject path, the numpy
        # view for bulk gathers and scatters.
        self._state_array = array("i", [initial]) * n
        self._state = np.frombuffer(self._state_array, dtype=np.intc)
        self._calendar = Calendar()
        self._first_tick = 0
        self._next_tick = 0
        self._origin = self.env.now
        self._file(np.arange(n, dtype=np.int64), self._state, -1)

    def _restart_services(self, saved: list[list[Any]]) -> None:
        """Start again the resource processes a checkpoint saved: holders first (they had
        their units), then the queue, each in its original order."""
        holders = sorted((s for s in saved if s[4] is not None), key=lambda s: s[0])
        queue = sorted((s for s in saved if s[4] is None), key=lambda s: s[0])
        for entry in (*holders, *queue):
            entry = list(entry)
            self._services[entry[1]] = entry
            self._in_service += 1
            self.env.process(self._service(entry))
        self._service_seq = max((s[0] for s in saved), default=0)

    def _file(
        self, subjects: np.ndarray, states: np.ndarray, tick: int, skip: list[int] | None = None
    ) -> None:
        """File `subjects` (now in `states`, just handled at `tick`) at their next attempt.

        One wait is drawn per subject, also for the positions in `skip` (subjects now queueing
        for a resource, filed later), so that the draws do not depend on who is skipped."""
        waits = np.log1p(-self._rng.random(len(subjects))) * self._invlog[states]
        if skip:
            waits[skip] = np.nan
        horizon = self.ticks if self.ticks is not None else _FOREVER
        keep = waits < horizon - tick - 1  # NaN (never moves) compares False
        if not keep.all():
            subjects, waits = subjects[keep], waits[keep]
        due = waits.astype(np.int64)
        due += tick + 1
        self._calendar.file(subjects, due)

    # -- the run ---------------------------------------------------------------------------

    def _ticker(self) -> Generator[simpy.events.Event, Any, None]:
        """The SimPy process that walks the calendar from one busy tick to the next."""
        try:
            yield from self._walk()
        except BaseException as exc:
            # SimPy would re-raise a re-built copy of the exception (losing attributes such
            # as a SinkError's ledgers); keep the original and raise it from run().
            self._failure = exc

    def _walk(self) -> Generator[simpy.events.Event, Any, None]:
        env = self.env
        origin = env.now - self._first_tick  # env time of tick 0
        calendar = self._calendar
        progress = self.progress
        horizon = self.ticks if self.ticks is not None else _FOREVER
        # Arrivals can come at any tick, and a live run must notice stop() and its lag on
        # time even through quiet stretches: both walk every tick.
        every_tick = self._arrival_rate is not None or self.live
        wall0 = time.monotonic() - self._first_tick * self.tick_ms / 1000 / self.speed
        self._wall0 = wall0
        t = self._first_tick
        while t < horizon:
            if every_tick:
                busy: int | None = t
            else:
                busy = calendar.next_tick()
                if busy is None or busy >= horizon:
                    if not self._in_service:
                        break
                    # Subjects are queueing for or holding a resource: wait until one is
                    # filed back (or the run's end).
                    self._wakeup = env.event()
                    until = horizon if horizon < _FOREVER else None
                    if until is None:
                        yield self._wakeup
                    else:
                        yield self._wakeup | env.timeout(origin + until - env.now)
                    t = max(t, math.ceil(env.now - origin))
                    continue
            assert busy is not None
            wait = origin + busy - env.now
            if wait > 0:
                if self._has_resources:
                    self._wakeup = env.event()
                    yield env.timeout(wait) | self._wakeup
                    if env.now < origin + busy:
                        t = max(t, math.ceil(env.now - origin))
                        continue  # woken: a subject was filed back, maybe earlier
                else:
                    yield env.timeout(wait)
            if self._has_resources:
                # Let every release and grant due now happen first, whatever order SimPy
                # queued them in: the ticker is always last at its time, so a resumed run
                # (whose SimPy events are queued anew) interleaves exactly as the original.
                while env.peek() <= env.now:
                    yield env.timeout(0)
                if calendar.next_tick() != busy and not every_tick:
                    t = max(t, math.ceil(env.now - origin))
                    continue  # a grant filed someone earlier than `busy`
            t = busy
            if self._arrival_rate is not None:
                self._arrive(t)
            self._last_intended_ms = t * self.tick_ms
            if calendar.next_tick() == t:
                self._tick(t, calendar.take(t))
            if self.live:
                self._check_lag(t, wall0)
            t += 1
            self._next_tick = t
            if progress is not None:
                progress(t)
            if self._stop_requested:
                self.stopped = True
                break
        if self._has_resources:
            # Requests made during the last tick are granted at its time, after the ticker:
            # let them happen before the run ends (or stops and is saved).
            while env.peek() <= env.now:
                yield env.timeout(0)
        if progress is not None and not self.stopped and self.ticks is not None:
            progress(self.ticks)
        if not self.stopped and self.ticks is not None:
            self._next_tick = self.ticks

    def _check_lag(self, t: int, wall0: float) -> None:
        """After tick `t`: how late its last event left, against when it was due."""
        due_ms = self._last_intended_ms / self.speed
        behind_ms = (time.monotonic() - wall0) * 1000 - due_ms
        self.max_lag_ms_seen = max(self.max_lag_ms_seen, behind_ms)
        if behind_ms > self.max_lag_ms:
            self.lag_warnings += 1
            message = (
                f"live run is {behind_ms:.0f} ms behind real time at tick {t} "
                f"(allowed {self.max_lag_ms:.0f} ms): the sinks or callbacks cannot keep up"
            )
            if self.on_lag == "fail":
                raise RunError(message)
            if self.lag_warnings == 1 or self.lag_warnings % 100 == 0:
                LOGGER.warning(message)

    def _arrive(self, t: int) -> None:
        """Create this tick's newcomers in the initial state and file their first attempts."""
        rate = self._arrival_rate or 0.0
        if self.arrivals_profile is not None:
            rate *= self.arrivals_profile.multiplier(self.timestamp_start + t * self.tick_ms)
        count = int(self._rng.poisson(rate)) if rate > 0 else 0
        if count == 0:
            return
        start = len(self.subjects)
        self.subjects.extend(self._make_subjects(count))
        initial = self.model.index(self.model.initial_state)
        # The numpy view pins the buffer: drop it, grow the array, view it again.
        self._state = np.empty(0, dtype=np.intc)
        self._state_array.extend([initial] * count)
        self._state = np.frombuffer(self._state_array, dtype=np.intc)
        self._arrival_rows.append((t, count))
        self._file(
            np.arange(start, start + count, dtype=np.int64),
            np.full(count, initial, dtype=np.int64),
            t - 1,
        )

    def _choice_tables(self, t: int) -> tuple[np.ndarray, list[list[float]]]:
        """The choice thresholds at tick `t` (they change only under calendar profiles)."""
        if not self._profiled:
            return self._thresholds, self._threshold_lists
        ts = self.timestamp_start + t * self.tick_ms
        order = self._order
        key = tuple(t.profile.key(ts) if t.profile else None for t in order)
        cached = self._profile_cache.get(key)
        if cached is None:
            thresholds = np.full_like(self._thresholds, 2.0)
            for s in range(len(self.model.states)):
                peak = self._peak[s]
                if peak <= 0:
                    continue
                cumulative = 0.0
                begin = self._first_list[s]
                for k in range(int(self._n_out[s])):
                    tr = order[begin + k]
                    factor = tr.profile.multiplier(ts) if tr.profile else 1.0
                    cumulative += tr.probability / 100.0 * factor
                    thresholds[s, k] = min(cumulative / peak, 1.0)
            cached = (thresholds, _threshold_lists(thresholds, self._n_out))
            if len(self._profile_cache) < 4096:
                self._profile_cache[key] = cached
        return cached

    def _tick(self, t: int, due: np.ndarray | list[int]) -> None:
        """Handle the subjects `due` at tick `t` (sorted: creation order)."""
        if isinstance(due, list) and not self.jitter:
            self._tick_scalar(t, due)
            return
        due = np.asarray(due, dtype=np.int64)
        n_due = len(due)
        thresholds, _ = self._choice_tables(t)
        states = self._state[due]
        local = np.zeros(n_due, dtype=np.int64)
        if self._draw_choice:
            u = self._rng.random(n_due)
            local = (thresholds[states] <= u[:, None]).sum(axis=1)
        attempting = local < self._n_out[states]  # False: thinned away, no attempt
        chosen = self._first[states] + np.where(attempting, local, 0)
        # Who attempts, in which order: everyone not thinned away, in creation order, or
        # with jitter in the order of their timestamps within the tick.
        stamps: np.ndarray | None = None
        if self.jitter:
            offsets = (self._rng.random(n_due) * self.tick_ms).astype(np.int64)
            stamps = offsets + (self.timestamp_start + t * self.tick_ms)
            self._last_stamp = max(self._last_stamp, int(stamps.max()))
            run = np.argsort(offsets, kind="stable")
            run = run[attempting[run]]
        elif not attempting.all():
            run = np.flatnonzero(attempting)
        else:
            run = None
        if run is None:
            vetoed, deferred = self._dispatch(t, due.tolist(), chosen.tolist(), None)
        else:
            vetoed, deferred = self._dispatch(
                t,
                due[run].tolist(),
                chosen[run].tolist(),
                None if stamps is None else stamps[run].tolist(),
            )
            vetoed = run[vetoed].tolist() if vetoed else []
            deferred = run[deferred].tolist() if deferred else []
        n_tr = len(self._order)
        moved = attempting.copy()
        veto_counts: Any = None
        if vetoed:
            moved[vetoed] = False
            veto_counts = np.bincount(chosen[vetoed], minlength=n_tr)
        if deferred:
            moved[deferred] = False
        targets = np.where(moved, self._to[chosen], states)
        self._state[due] = targets
        self._rows.append((t, np.bincount(chosen[moved], minlength=n_tr), veto_counts))
        for k in deferred:
            self._serve(int(due[k]), int(chosen[k]), t)
        self._file(due, targets, t, deferred)

    def _tick_scalar(self, t: int, due: list[int]) -> None:
        """`_tick` for a few subjects, in one plain-Python pass (numpy's fixed cost per call
        outweighs its speed on short arrays).

        It draws the same uniforms in the same order as the vectorised path — the choices
        for every due subject, then their waits — and makes the same choices (a transition is
        the count of thresholds <= u, here by bisection), so the stream does not depend on
        which path a tick takes."""
        n_due = len(due)
        rng = self._rng
        draws = rng.random(n_due).tolist() if self._draw_choice else None
        waits = rng.random(n_due).tolist()
        thresholds = self._choice_tables(t)[1] if draws is not None else None
        state = self._state_array
        first = self._first_list
        n_out = self._n_out_list
        to = self._to_list
        invlog = self._invlog_list
        callbacks = self._callbacks
        collectors = self._collectors
        resource_of = self._resource_of if self._has_resources else None
        order = self._order
        subjects = self.subjects
        events = [0] * len(order)
        vetoes: list[int] | None = None
        ts = self.timestamp_start + t * self.tick_ms
        after = t + 1
        horizon = self.ticks if self.ticks is not None else _FOREVER
        log1p = math.log1p
        filed: list[int] = []
        ticks: list[int] = []
        for k, i in enumerate(due):
            s = state[i]
            if thresholds is not None:
                local = bisect_right(thresholds[s], draws[k])  # type: ignore[index]
                if local >= n_out[s]:  # thinned away by a calendar profile: no attempt
                    local = -1
            else:
                local = 0
            if local >= 0:
                j = first[s] + local
                transition = order[j]
                callback = callbacks[j]
                if callback is not None and not callback(subjects[i], transition):
                    if vetoes is None:
                        vetoes = [0] * len(order)
                    vetoes[j] += 1
                elif resource_of is not None and resource_of[j] is not None:
                    self._serve(i, j, t)
                    continue  # filed again once the resource is granted
                else:
                    sinks = collectors[j]
                    if sinks:
                        subject = subjects[i]
                        for collect in sinks:
                            collect(ts, subject, transition)
                    events[j] += 1
                    s = to[j]
                    state[i] = s
            inv = invlog[s]
            if inv is not None:
                due_at = after + int(log1p(-waits[k]) * inv) if inv else after
                if due_at < horizon:
                    filed.append(i)
                    ticks.append(due_at)
        self._rows.append((t, events, vetoes))
        self._calendar.file_lists(filed, ticks)

    def _dispatch(
        self, t: int, due: list[int], chosen: list[int], stamps: list[int] | None
    ) -> tuple[list[int], list[int]]:
        """Run callbacks and feed sinks, subject by subject.

        Returns the positions vetoed by their callback and the positions deferred because
        their transition must first acquire a resource."""
        vetoed: list[int] = []
        deferred: list[int] = []
        python = self._python
        if not any(python[j] for j in set(chosen)):
            return vetoed, deferred
        subjects = self.subjects
        callbacks = self._callbacks
        collectors = self._collectors
        resource_of = self._resource_of if self._has_resources else None
        order = self._order
        ts = self.timestamp_start + t * self.tick_ms
        pace = stamps is not None and self.live
        for k, (i, j) in enumerate(zip(due, chosen, strict=True)):
            if stamps is not None:
                ts = stamps[k]
                if pace:
                    # Live and jittered: each event leaves at its own moment in the tick.
                    offset_ms = ts - self.timestamp_start
                    delay = self._wall0 + offset_ms / 1000 / self.speed - time.monotonic()
                    if delay > 0.0005:
                        time.sleep(delay)
                    self._last_intended_ms = offset_ms
            callback = callbacks[j]
            subject = subjects[i]
            transition = order[j]
            if callback is not None and not callback(subject, transition):
                vetoed.append(k)
                continue
            if resource_of is not None and resource_of[j] is not None:
                deferred.append(k)
                continue
            for collect in collectors[j]:
                collect(ts, subject, transition)
        return vetoed, deferred

    def _serve(self, subject: int, j: int, t: int) -> None:
        """Start the SimPy process of a subject that must acquire a resource to move."""
        self._service_seq += 1
        # seq, subject, transition, tick asked, tick granted, ticks held (once granted)
        entry = [self._service_seq, subject, j, t, None, None]
        self._services[subject] = entry
        self._in_service += 1
        self.env.process(self._service(entry))

    def _service(self, entry: list[Any]) -> Generator[simpy.events.Event, Any, None]:
        """Queue for the transition's resource, move when granted, hold it, file back.

        `entry` is the subject's record in `_services` (what a checkpoint saves): when its
        grant tick is already set (a resumed holder), the move has happened and only the rest
        of the hold remains."""
        _, i, j, _, granted, _ = entry
        resource = self._resource_of[j]
        assert resource is not None
        transition = self._order[j]
        origin = self._origin
        try:
            with resource.request() as request:
                yield request
                if granted is None:
                    granted = math.ceil(self.env.now - origin - 1e-9)
                    if self.ticks is not None and granted >= self.ticks:
                        return
                    entry[4] = granted
                    entry[5] = self._grant(i, j, granted, transition)
                remaining = origin + granted + entry[5] - self.env.now
                if remaining > 0:
                    yield self.env.timeout(remaining)
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
        finally:
            self._services.pop(i, None)
            self._in_service -= 1
            if not self._wakeup.triggered:
                self._wakeup.succeed()

    def _grant(self, i: int, j: int, granted: int, transition: Transition) -> int:
        """The move of a subject granted its resource at tick `granted`; returns the ticks it
        holds the resource."""
        hold = transition.hold
        if callable(hold):
            drawn = hold(self.subjects[i], transition)
            if isinstance(drawn, bool) or not isinstance(drawn, Integral) or drawn < 1:
                raise ModelError(
                    f"{self.model.name}: transition {transition.trigger!r}: hold() returned "
                    f"{drawn!r}; it must return a whole number of ticks >= 1"
                )
            hold = int(drawn)
        target = self._to_list[j]
        self._state_array[i] = target
        ts = self.timestamp_start + granted * self.tick_ms
        if self.jitter:
            # Keep every sink's stream in timestamp order: a grant never goes before the
            # jittered events of its tick already sent.
            ts = max(ts, self._last_stamp)
            self._last_stamp = ts
        subject = self.subjects[i]
        for collect in self._collectors[j]:
            collect(ts, subject, transition)
        events = [0] * len(self._order)
        events[j] = 1
        self._rows.append((granted, events, None))
        # The next attempt comes after the hold, as after any move.
        self._file(
            np.asarray([i], dtype=np.int64),
            np.asarray([target], dtype=np.int64),
            granted + hold - 1,
        )
        if not self._wakeup.triggered:
            self._wakeup.succeed()
        return hold

    # -- the end ---------------------------------------------------------------------------

    def _close_sinks(self, sinks: list[Any]) -> list[BaseException]:
        """Close every sink exactly once; return the errors (wrapped as `SinkError`)."""
        errors: list[BaseException] = []
        for sink in sinks:
            close = getattr(sink, "close", None)
            if close is None:
                continue
            try:
                close()
            except SinkError as exc:
                errors.append(exc)
            except Exception as exc:
                wrapped = SinkError(f"sink {sink_name(sink)} failed to close: {exc!r}")
                wrapped.__cause__ = exc
                errors.append(wrapped)
        return errors

    def _ledgers(self, sinks: list[Any]) -> list[DeliveryLedger]:
        """Each sink's own ledger, or one built from what the engine handed it."""
        handed: dict[int, int] = {}
        totals = np.zeros(len(self._order), dtype=np.int64)
        for t, events, _ in self._rows:
            if t >= self._first_tick:
                totals += np.asarray(events, dtype=np.int64)
        for position, transition in enumerate(self._order):
            count = int(totals[position])
            for sink in transition.event_sinks:
                handed[id(sink)] = handed.get(id(sink), 0) + count
        out = []
        for sink in sinks:
            ledger = ledger_of(sink)
            if ledger is None:
                count = handed.get(id(sink), 0)
                ledger = DeliveryLedger(sink_name(sink), count, count, 0)
            out.append(ledger)
        return out

    def _result(self, ledgers: list[DeliveryLedger], wall: float) -> RunResult:
        model = self.model
        n_tr = len(self._order)
        ticks = self._next_tick
        per_tick = np.zeros((ticks, n_tr), dtype=np.int64)
        vetoes = np.zeros(n_tr, dtype=np.int64)
        for t, events, vetoed in self._rows:
            if t < ticks:
                per_tick[t] += np.asarray(events, dtype=np.int64)
            if vetoed is not None:
                vetoes += np.asarray(vetoed, dtype=np.int64)
        # Columns back in model order.
        to_model = np.empty(n_tr, dtype=np.int64)
        to_model[self._order_to_model] = np.arange(n_tr)
        per_tick = per_tick[:, to_model]
        vetoes = vetoes[to_model]
        flow = np.zeros((n_tr, len(model.states)), dtype=np.int64)
        for j, transition in enumerate(model.transitions):
            flow[j, model.index(transition.from_state)] -= 1
            flow[j, model.index(transition.to_state)] += 1
        change = per_tick @ flow
        initial = model.index(model.initial_state)
        for t, count in self._arrival_rows:
            if t < ticks:
                change[t, initial] += count
        occupancy = np.cumsum(change, axis=0)
        occupancy[:, initial] += self._initial_subjects
        return RunResult(
            seed=self.seed,
            states=model.states,
            transitions=tuple(model.transitions),
            subjects=len(self.subjects),
            ticks=ticks,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp_start,
            initial_state=model.initial_state,
            occupancy=occupancy,
            events_per_tick=per_tick,
            attempts=per_tick.sum(axis=0) + vetoes,
            vetoes=vetoes,
            ledgers=ledgers,
            wall_time=wall,
            stopped=self.stopped,
            max_lag_ms=self.max_lag_ms_seen if self.live else None,
            lag_warnings=self.lag_warnings,
            arrivals=sum(c for t, c in self._arrival_rows if t < ticks),
        )


def _add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)  # Python >= 3.11
    if add is not None:
        add(note)
    else:  # pragma: no cover - Python 3.10
        LOGGER.error(note)
