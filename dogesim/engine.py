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

import gc
import logging
import math
import operator
import os
import random
import secrets
import sys
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any

import numpy as np
import simpy

from dogesim.calendar import Calendar
from dogesim.errors import ModelError, RunError, SinkError
from dogesim.model import Model, Transition
from dogesim.sinks.base import DeliveryLedger, ledger_of

__all__ = ["RunResult", "Simulation", "sink_name"]


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
        seed: the seed; the same model and seed give the same event stream. Without one the
            ``DOGESIM_SEED`` environment variable is used when set (so programs that give no
            seed, like doge-datagen's, can be made reproducible unchanged), else a seed is
            picked at random; either way `RunResult.seed` reports it.
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
            seed = _seed_from_environment()
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
        self._state: np.ndarray = np.empty(0, dtype=np.int32)
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
            raise RunError("this Simulation already ran and its sinks are closed; build a new one")
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
            self._failure: BaseException | None = None
            self.env.process(self._ticker())
            self.env.run()
            if self._failure is not None:
                raise self._failure
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
        return [names[s] for s in self._state.tolist()]

    # -- set-up ----------------------------------------------------------------------------

    def _create_subjects(self) -> None:
        if self.seed_globals:
            random.seed(self.seed)
            if "numpy" in sys.modules:
                np.random.seed(self.seed % (1 << 32))
        if self._given_subjects is not None:
            self.subjects = list(self._given_subjects)
            return
        # Creating a population only allocates: the cyclic garbage collector would scan the
        # growing heap again and again for nothing (a third of the time for 1M subjects).
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self._factory is not None:
                factory = self._factory
                self.subjects = [factory() for _ in range(self.subjects_num)]
            else:
                self.subjects = [SimpleNamespace(id=i) for i in range(self.subjects_num)]
        finally:
            if collecting:
                gc.enable()

    def _prepare(self) -> None:
        """Build the per-state lookup arrays and file every subject at its first attempt."""
        model = self.model
        n_states = len(model.states)
        # Transitions grouped by their from-state; `_order[j]` is the j-th of that grouping.
        order: list[Transition] = []
        first = np.zeros(n_states, dtype=np.int64)
        width = max((len(model.outgoing(s)) for s in model.states), default=1)
        thresholds = np.full((n_states, max(width - 1, 0)), 2.0)
        invlog = np.full(n_states, np.nan)
        for s, name in enumerate(model.states):
            outgoing = list(model.outgoing(name))
            first[s] = len(order)
            order.extend(outgoing)
            total = sum(t.probability for t in outgoing) / 100.0
            if total <= 0.0:
                continue  # never moves: stays out of the calendar
            cumulative = 0.0
            for k, t in enumerate(outgoing[:-1]):
                cumulative += t.probability / 100.0
                thresholds[s, k] = cumulative / total
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
        self._thresholds = thresholds
        self._threshold_lists: list[list[float]] = [
            [x for x in row if x <= 1.0] for row in thresholds.tolist()
        ]
        self._invlog = invlog
        self._invlog_list: list[float | None] = [
            None if math.isnan(x) else x for x in invlog.tolist()
        ]
        self._to = np.asarray([model.index(t.to_state) for t in order], dtype=np.int64)
        self._to_list: list[int] = self._to.tolist()
        self._callbacks = [t.action_callback for t in order]
        self._collectors = [tuple(s.collect for s in t.event_sinks) for t in order]
        self._python = [
            bool(self._callbacks[j] is not None or self._collectors[j]) for j in range(len(order))
        ]
        self._rows: list[tuple[int, Any, Any]] = []  # (tick, events, vetoes or None)

        self._rng = np.random.default_rng(self.seed)
        n = self.subjects_num
        initial = model.index(model.initial_state)
        # One buffer, two views: `array` indexing is fast for the per-subject path, the numpy
        # view for bulk gathers and scatters.
        self._state_array = array("i", [initial]) * n
        self._state = np.frombuffer(self._state_array, dtype=np.intc)
        self._calendar = Calendar()
        self._file(np.arange(n, dtype=np.int64), self._state, -1)

    def _file(self, subjects: np.ndarray, states: np.ndarray, tick: int) -> None:
        """File `subjects` (now in `states`, just handled at `tick`) at their next attempt."""
        waits = np.log1p(-self._rng.random(len(subjects))) * self._invlog[states]
        keep = waits < self.ticks - tick - 1  # NaN (never moves) compares False
        if not keep.all():
            subjects, waits = subjects[keep], waits[keep]
        due = waits.astype(np.int64)
        due += tick + 1
        self._calendar.file(subjects, due)

    # -- the run ---------------------------------------------------------------------------

    def _ticker(self) -> Generator[simpy.events.Event, Any, None]:
        """The SimPy process that walks the calendar from one busy tick to the next."""
        env = self.env
        base = env.now
        calendar = self._calendar
        progress = self.progress
        try:
            while (t := calendar.next_tick()) is not None:
                wait = base + t - env.now
                if wait > 0:
                    yield env.timeout(wait)
                self._tick(t, calendar.take(t))
                if progress is not None:
                    progress(t + 1)
            if progress is not None:
                progress(self.ticks)
        except BaseException as exc:
            # SimPy would re-raise a re-built copy of the exception (losing attributes such
            # as a SinkError's ledgers); keep the original and raise it from run().
            self._failure = exc

    def _tick(self, t: int, due: np.ndarray | list[int]) -> None:
        """Handle the subjects `due` at tick `t` (sorted: creation order)."""
        if isinstance(due, list):
            self._tick_scalar(t, due)
            return
        n_due = len(due)
        states = self._state[due]
        chosen = self._first[states]
        if self._thresholds.shape[1]:
            u = self._rng.random(n_due)
            chosen += (self._thresholds[states] <= u[:, None]).sum(axis=1)
        vetoed = self._dispatch(t, due.tolist(), chosen.tolist())
        n_tr = len(self._order)
        targets = self._to[chosen]
        if vetoed:
            moved = np.ones(n_due, dtype=bool)
            moved[vetoed] = False
            veto_counts: Any = np.bincount(chosen[~moved], minlength=n_tr)
            targets = np.where(moved, targets, states)
            event_counts = np.bincount(chosen[moved], minlength=n_tr)
        else:
            veto_counts = None
            event_counts = np.bincount(chosen, minlength=n_tr)
        self._state[due] = targets
        self._rows.append((t, event_counts, veto_counts))
        self._file(due, targets, t)

    def _tick_scalar(self, t: int, due: list[int]) -> None:
        """`_tick` for a few subjects: plain Python beats numpy's fixed cost per call.

        It draws the same uniforms in the same order as the vectorised path and makes the same
        choices (a transition is the count of thresholds <= u, here by bisection)."""
        n_due = len(due)
        rng = self._rng
        state = self._state_array
        states = [state[i] for i in due]
        first = self._first_list
        if self._thresholds.shape[1]:
            thresholds = self._threshold_lists
            chosen = [
                first[s] + bisect_right(thresholds[s], x)
                for s, x in zip(states, rng.random(n_due).tolist(), strict=True)
            ]
        else:
            chosen = [first[s] for s in states]
        vetoed = self._dispatch(t, due, chosen)
        to = self._to_list
        targets = [to[j] for j in chosen]
        n_tr = len(self._order)
        event_counts = [0] * n_tr
        for j in chosen:
            event_counts[j] += 1
        veto_counts: list[int] | None = None
        if vetoed:
            veto_counts = [0] * n_tr
            for k in vetoed:
                targets[k] = states[k]
                event_counts[chosen[k]] -= 1
                veto_counts[chosen[k]] += 1
        for i, s in zip(due, targets, strict=True):
            state[i] = s
        self._rows.append((t, event_counts, veto_counts))
        invlog = self._invlog_list
        after = t + 1
        horizon = self.ticks
        log1p = math.log1p
        filed: list[int] = []
        ticks: list[int] = []
        for i, s, x in zip(due, targets, rng.random(n_due).tolist(), strict=True):
            inv = invlog[s]
            if inv is not None:
                due_at = after + int(log1p(-x) * inv) if inv else after
                if due_at < horizon:
                    filed.append(i)
                    ticks.append(due_at)
        self._calendar.file_lists(filed, ticks)

    def _dispatch(self, t: int, due: list[int], chosen: list[int]) -> list[int]:
        """Run callbacks and feed sinks, subject by subject; return the vetoed positions."""
        vetoed: list[int] = []
        python = self._python
        if not any(python[j] for j in set(chosen)):
            return vetoed
        subjects = self.subjects
        callbacks = self._callbacks
        collectors = self._collectors
        order = self._order
        ts = self.timestamp_start + t * self.tick_ms
        for k, (i, j) in enumerate(zip(due, chosen, strict=True)):
            callback = callbacks[j]
            if callback is not None:
                subject = subjects[i]
                transition = order[j]
                if not callback(subject, transition):
                    vetoed.append(k)
                    continue
                for collect in collectors[j]:
                    collect(ts, subject, transition)
            else:
                sinks = collectors[j]
                if sinks:
                    subject = subjects[i]
                    transition = order[j]
                    for collect in sinks:
                        collect(ts, subject, transition)
        return vetoed

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
        for _, events, _ in self._rows:
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
        per_tick = np.zeros((self.ticks, n_tr), dtype=np.int64)
        vetoes = np.zeros(n_tr, dtype=np.int64)
        for t, events, vetoed in self._rows:
            per_tick[t] = events
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
        occupancy = np.cumsum(per_tick @ flow, axis=0)
        occupancy[:, model.index(model.initial_state)] += self.subjects_num
        return RunResult(
            seed=self.seed,
            states=model.states,
            transitions=tuple(model.transitions),
            subjects=self.subjects_num,
            ticks=self.ticks,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp_start,
            initial_state=model.initial_state,
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
