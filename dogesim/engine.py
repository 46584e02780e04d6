"""The simulation engine: subjects walk a `Model` on a SimPy clock, paid per event.

- `Simulation`: one run of a model over a population of subjects, driven by a
  `simpy.Environment` whose time unit is one tick.
- `RunResult`: what a run returns: the seed, occupancy per tick, events per transition per
  tick, attempts and vetoes per transition, the delivery ledger of every sink, wall time.

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

import itertools
import logging
import math
import random
import secrets
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any

import numpy as np
import simpy

from dogesim.errors import ModelError, RunError, SinkError
from dogesim.model import Model, Transition
from dogesim.sinks.base import DeliveryLedger, ledger_of

__all__ = ["RunResult", "Simulation", "sink_name"]

LOGGER = logging.getLogger("dogesim")

#: Uniform variates are drawn from numpy in chunks of this size (the stream does not depend
#: on it: PCG64 yields one double per 64-bit output).
_CHUNK = 1 << 15


def _positive_int(value: object, name: str) -> int:
    """`value` as an int when it is a positive whole number, else `ModelError`."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if isinstance(value, Integral):
        number = int(value)
    elif float(value).is_integer():
        number = int(value)
    else:
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if number <= 0:
        raise ModelError(f"{name} must be positive, got {number}")
    return number


def _timestamp(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ModelError(f"timestamp_start must be a number of epoch milliseconds, got {value!r}")
    return int(value)


def sink_name(sink: object) -> str:
    """A readable name for `sink`: its ledger's name, else its class and id."""
    ledger = ledger_of(sink)
    if ledger is not None:
        return ledger.sink
    return f"{type(sink).__name__}@{id(sink):x}"


@dataclass
class RunResult:
    """The outcome of one `Simulation.run`.

    Attributes:
        seed: the seed of the run; pass it again to reproduce the event stream exactly.
        states: the model's state names (columns of `occupancy`).
        transitions: the model's transitions (columns of `events_per_tick`).
        subjects: number of subjects.
        ticks: number of ticks simulated.
        tick_ms: tick length in milliseconds.
        timestamp_start: timestamp of tick 0 in epoch milliseconds.
        occupancy: ``(ticks, states)`` counts of subjects per state after each tick's moves.
        events_per_tick: ``(ticks, transitions)`` successful moves per transition and tick.
        attempts: attempts per transition (moves plus vetoes).
        vetoes: attempts per transition vetoed by the action callback.
        ledgers: the delivery ledger of every sink, in first-use order.
        wall_time: seconds the run took.
    """

    seed: int
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    subjects: int
    ticks: int
    tick_ms: int
    timestamp_start: int
    initial_state: str
    occupancy: np.ndarray
    events_per_tick: np.ndarray
    attempts: np.ndarray
    vetoes: np.ndarray
    ledgers: list[DeliveryLedger] = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def events(self) -> int:
        """Total number of successful moves (events, counted once per move)."""
        return int(self.events_per_tick.sum())

    @property
    def events_per_transition(self) -> np.ndarray:
        """Successful moves per transition over the whole run."""
        return self.events_per_tick.sum(axis=0)

    def events_by_trigger(self) -> dict[str, int]:
        """Successful moves per trigger name, in first-use order."""
        out: dict[str, int] = {}
        for transition, count in zip(self.transitions, self.events_per_transition, strict=True):
            out[transition.trigger] = out.get(transition.trigger, 0) + int(count)
        return out

    def timestamps(self) -> np.ndarray:
        """The timestamp (epoch ms) of every tick."""
        return self.timestamp_start + np.arange(self.ticks, dtype=np.int64) * self.tick_ms

    def summary(self) -> str:
        """A few lines for humans: events per trigger, the ledgers, speed."""
        rate = self.events / self.wall_time if self.wall_time > 0 else float("inf")
        lines = [
            f"seed {self.seed}: {self.subjects} subjects x {self.ticks} ticks of "
            f"{self.tick_ms} ms -> {self.events} events in {self.wall_time:.3f} s "
            f"({rate:,.0f} events/s)"
        ]
        for trigger, count in self.events_by_trigger().items():
            lines.append(f"  {trigger}: {count}")
        lines.extend(f"  sink {ledger.summary()}" for ledger in self.ledgers)
        return "\n".join(lines)


def _uniforms(rng: np.random.Generator) -> Callable[[], float]:
    """A fast ``next()`` over an endless stream of uniform [0, 1) floats from `rng`."""
    chunks: Iterator[list[float]] = iter(lambda: rng.random(_CHUNK).tolist(), None)
    return itertools.chain.from_iterable(chunks).__next__


class Simulation:
    """One run of `model` over a population of subjects.

    Args:
        model: the validated state machine.
        subjects: how many subjects to create with `subject_factory`, or the subjects
            themselves (any objects, hashable or not), in creation order.
        subject_factory: called once per subject, in order, to create it; either a callable
            or an object with a ``create()`` method (doge-datagen's `SubjectFactory`). Without
            one, subjects are ``SimpleNamespace(id=i)``.
        ticks: number of ticks to simulate (ticks ``0 .. ticks-1``).
        tick_ms: length of a tick in milliseconds.
        timestamp_start: timestamp of tick 0, epoch milliseconds.
        seed: the seed; the same model and seed give the same event stream. Without one a
            seed is picked at random and reported in the result.
        seed_globals: also seed Python's global `random` module (and numpy's legacy global
            generator) with `seed` before subjects are created, so factories and callbacks
            that draw from them, as doge-datagen programs do, are reproducible too.
        env: the SimPy environment to run in (a fresh one when omitted). Time unit: ticks.
        progress: called with the number of ticks done after every tick that had events.
    """

    def __init__(
        self,
        model: Model,
        subjects: int | Sequence[Any] | Iterable[Any],
        *,
        subject_factory: Callable[[], Any] | Any | None = None,
        ticks: int,
        tick_ms: int,
        timestamp_start: int = 0,
        seed: int | None = None,
        seed_globals: bool = True,
        env: simpy.Environment | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if not isinstance(model, Model):
            raise ModelError(f"model must be a dogesim.Model, got {type(model).__name__}")
        self.model = model
        self.ticks = _positive_int(ticks, "ticks")
        self.tick_ms = _positive_int(tick_ms, "tick_ms")
        self.timestamp_start = _timestamp(timestamp_start)
        if seed is None:
            seed = secrets.randbits(63)
        elif isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
            raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.seed_globals = seed_globals
        self._given_subjects: list[Any] | None = None
        if isinstance(subjects, Integral) and not isinstance(subjects, bool):
            self.subjects_num = _positive_int(subjects, "subjects")
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
        self.env = env if env is not None else simpy.Environment()
        self.progress = progress
        self.subjects: list[Any] = []
        self._state: list[int] = []
        self._ran = False
        self.result: RunResult | None = None

    # -- public ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the simulation to the end, close every sink once, and return the result.

        Raises:
            SinkError: a sink lost events or failed to close (after every sink was closed).
            RunError: the simulation already ran.
            Exception: whatever a factory, callback or sink raised, after every sink was
                closed (the original exception propagates; close failures are attached as
                notes).
        """
        if self._ran:
            raise RunError(
                "this Simulation already ran and its sinks are closed; build a new one"
            )
        self._ran = True
        sinks = self.model.sinks()
        started = time.perf_counter()
        LOGGER.info(
            "run start: %d subjects x %d ticks, seed %d",
            self.subjects_num,
            self.ticks,
            self.seed,
        )
        try:
            self._create_subjects()
            self._prepare()
            self.env.process(self._ticker())
            self.env.run()
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
        return [names[s] for s in self._state]

    # -- set-up ----------------------------------------------------------------------------

    def _create_subjects(self) -> None:
        if self.seed_globals:
            random.seed(self.seed)
            if "numpy" in sys.modules:
                np.random.seed(self.seed % (1 << 32))
        if self._given_subjects is not None:
            self.subjects = list(self._given_subjects)
        elif self._factory is not None:
            factory = self._factory
            self.subjects = [factory() for _ in range(self.subjects_num)]
        else:
            self.subjects = [SimpleNamespace(id=i) for i in range(self.subjects_num)]

    def _prepare(self) -> None:
        """Build the lookup tables and file every subject under its first attempt tick."""
        model = self.model
        n_states = len(model.states)
        transitions = list(model.transitions)
        self._transitions = transitions
        index = {t: j for j, t in enumerate(transitions)}
        # Per state: index of its first transition, bisect thresholds (None when only one),
        # and 1/ln(1-P) for the geometric skip (None when the state never moves).
        self._first: list[int] = [0] * n_states
        self._thresholds: list[list[float] | None] = [None] * n_states
        self._invlog: list[float | None] = [None] * n_states
        order: list[Transition] = []
        for s, name in enumerate(model.states):
            outgoing = list(model.outgoing(name))
            self._first[s] = len(order)
            order.extend(outgoing)
            total = sum(t.probability for t in outgoing) / 100.0
            if total <= 0.0:
                continue
            if len(outgoing) > 1:
                cumulative, thresholds = 0.0, []
                for t in outgoing[:-1]:
                    cumulative += t.probability / 100.0
                    thresholds.append(cumulative / total)
                self._thresholds[s] = thresholds
            if total >= 1.0:
                self._invlog[s] = 0.0
            else:
                inv = 1.0 / math.log1p(-total) if total > 1e-300 else -math.inf
                self._invlog[s] = inv if math.isfinite(inv) else None
        # Tables indexed by position in `order` (grouped by state); map back to model order.
        self._order = order
        self._order_to_model = [index[t] for t in order]
        self._to = [model.index(t.to_state) for t in order]
        self._callbacks = [t.action_callback for t in order]
        self._collectors = [tuple(s.collect for s in t.event_sinks) for t in order]
        self._events = [0] * len(order)
        self._vetoes = [0] * len(order)
        self._snap_ticks: list[int] = []
        self._snap_events: list[list[int]] = []

        rng = np.random.default_rng(self.seed)
        n = self.subjects_num
        initial = model.index(model.initial_state)
        self._state = [initial] * n
        self._buckets: list[list[int] | None] = [None] * self.ticks
        inv = self._invlog[initial]
        if inv is not None:
            u = rng.random(n)
            if inv == 0.0:
                first = np.zeros(n, dtype=np.int64)
            else:
                raw = np.minimum(np.log1p(-u) * inv, float(self.ticks))
                first = raw.astype(np.int64)
            due = np.flatnonzero(first < self.ticks)
            ticks_due = first[due]
            ranked = due[np.argsort(ticks_due, kind="stable")]
            counts = np.bincount(ticks_due, minlength=self.ticks)
            ends = np.cumsum(counts)
            starts = ends - counts
            for t in np.flatnonzero(counts).tolist():
                self._buckets[t] = ranked[starts[t] : ends[t]].tolist()
        self._uniform = _uniforms(rng)

    # -- the run ---------------------------------------------------------------------------

    def _ticker(self) -> Iterator[simpy.events.Event]:
        """The SimPy process that walks the calendar from one busy tick to the next."""
        env = self.env
        base = env.now
        buckets = self._buckets
        ticks = self.ticks
        progress = self.progress
        t = 0
        while t < ticks:
            if buckets[t] is None:
                t += 1
                continue
            wait = base + t - env.now
            if wait > 0:
                yield env.timeout(wait)
            self._tick(t)
            self._snap_ticks.append(t)
            self._snap_events.append(self._events[:])
            t += 1
            if progress is not None:
                progress(t)
        if progress is not None:
            progress(ticks)

    def _tick(self, t: int) -> None:
        """Handle every subject due at tick `t`, in creation order."""
        due = self._buckets[t]
        self._buckets[t] = None
        if due is None:
            return
        due.sort()
        buckets = self._buckets
        ticks = self.ticks
        state = self._state
        subjects = self.subjects
        first = self._first
        thresholds = self._thresholds
        invlog = self._invlog
        to = self._to
        callbacks = self._callbacks
        collectors = self._collectors
        order = self._order
        events = self._events
        vetoes = self._vetoes
        uniform = self._uniform
        log = math.log
        ts = self.timestamp_start + t * self.tick_ms
        after = t + 1
        for i in due:
            s = state[i]
            thr = thresholds[s]
            j = first[s] if thr is None else first[s] + bisect_right(thr, uniform())
            callback = callbacks[j]
            if callback is not None and not callback(subjects[i], order[j]):
                vetoes[j] += 1
                s_next = s
            else:
                s_next = to[j]
                state[i] = s_next
                sinks = collectors[j]
                if sinks:
                    subject = subjects[i]
                    transition = order[j]
                    for collect in sinks:
                        collect(ts, subject, transition)
                events[j] += 1
            inv = invlog[s_next]
            if inv is None:
                continue
            nt = after + int(log(1.0 - uniform()) * inv) if inv else after
            if nt < ticks:
                bucket = buckets[nt]
                if bucket is None:
                    buckets[nt] = [i]
                else:
                    bucket.append(i)

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
        for position, transition in enumerate(self._order):
            count = self._events[position] if hasattr(self, "_events") else 0
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
        n_tr = len(self._order)
        n_states = len(self.model.states)
        per_tick = np.zeros((self.ticks, n_tr), dtype=np.int64)
        if self._snap_ticks:
            cumulative = np.asarray(self._snap_events, dtype=np.int64).reshape(-1, n_tr)
            per_tick[np.asarray(self._snap_ticks)] = np.diff(
                cumulative, axis=0, prepend=np.zeros((1, n_tr), dtype=np.int64)
            )
        # Columns back in model order.
        model_order = np.empty(n_tr, dtype=np.int64)
        model_order[np.asarray(self._order_to_model, dtype=np.int64)] = np.arange(n_tr)
        per_tick = per_tick[:, model_order] if n_tr else per_tick
        flow = np.zeros((n_tr, n_states), dtype=np.int64)
        for j, t in enumerate(self.model.transitions):
            flow[j, self.model.index(t.from_state)] -= 1
            flow[j, self.model.index(t.to_state)] += 1
        occupancy = np.cumsum(per_tick @ flow, axis=0)
        occupancy[:, self.model.index(self.model.initial_state)] += self.subjects_num
        vetoes = np.asarray(self._vetoes, dtype=np.int64)[model_order]
        return RunResult(
            seed=self.seed,
            states=self.model.states,
            transitions=tuple(self.model.transitions),
            subjects=self.subjects_num,
            ticks=self.ticks,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp_start,
            initial_state=self.model.initial_state,
            occupancy=occupancy,
            events_per_tick=per_tick,
            attempts=per_tick.sum(axis=0) + vetoes,
            vetoes=vetoes,
            ledgers=ledgers,
            wall_time=wall,
        )


def _add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)  # Python >= 3.11
    if add is not None:
        add(note)
    else:  # pragma: no cover - Python 3.10
        LOGGER.error(note)
