"""`Walker`: the SimPy process that advances the clock from one busy tick to the next and
hands the subjects due there to `dogesim.engine.attempts`.

It owns the state of a run in progress: the calendar of due subjects, the engine's random
generator, the clock (tick 0 is at SimPy time `origin`), arrivals (`arrivals`), live pacing and
lag, and
the first failure of any of its processes — which ends the run at once: the walker checks it
after every yield, and `halt` wakes `Simulation.run` even while the walker waits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from dogesim.engine import attempts, dwell
from dogesim.engine.arrivals import Arrivals
from dogesim.engine.batching import Routes
from dogesim.engine.options import MAX_TICKS, LiveOptions, RunOptions
from dogesim.engine.population import Population
from dogesim.engine.recorder import Recorder
from dogesim.engine.scheduler import Calendar
from dogesim.engine.services import Services
from dogesim.engine.tables import Tables
from dogesim.engine.uniforms import Uniforms
from dogesim.errors import RunError

__all__ = ["Walker"]

LOGGER = logging.getLogger("dogesim")


class Walker:
    """One run in progress (see the module docstring)."""

    def __init__(
        self,
        env: simpy.Environment,
        tables: Tables,
        population: Population,
        options: RunOptions,
        live: LiveOptions,
        timestamp_start: int,
    ) -> None:
        self.env = env
        self.tables = tables
        self.population = population
        self.options = options
        self.live = live
        self.timestamp_start = timestamp_start
        self.tick_ms = options.tick_ms
        self.jitter = options.jitter
        self.horizon: int = MAX_TICKS if options.ticks is None else options.ticks
        rate: float | None = options.arrivals  # type: ignore[assignment]
        self.arrivals = None if rate is None else Arrivals(rate, options.arrivals_profile)
        self.progress: Callable[[int], None] | None = options.progress
        self.recorder = Recorder(len(tables.order), options.record_every)  # type: ignore[arg-type]
        self.calendar = Calendar()
        assert options.seed is not None
        self.uniforms = Uniforms(np.random.default_rng(options.seed))
        self.services = Services(self)
        self.first_tick = self.next_tick = 0
        self.origin: float = env.now
        self.initial_subjects = len(population.subjects)
        self.last_stamp = timestamp_start
        self.wall0 = time.monotonic()
        self.last_intended_ms = 0
        self.max_lag_seen = 0.0
        self.lag_warnings = 0
        self.stopped = False
        self.stop_requested = False
        self.failure: BaseException | None = None
        self.halt = env.event()
        self.wakeup = env.event()
        # Ticks share one timestamp unless jittered; live runs pace events one by one.
        self.routes = Routes(tables, options.batch and not self.jitter and not live.enabled)
        # With no resources, pacing, arrivals or jitter, and a clock SimPy lets the walker
        # set, quiet busy ticks run one after another in `attempts.Scalar`'s loop.
        self.run_ahead = (
            not live.enabled
            and not tables.has_resources
            and isinstance(getattr(env, "_now", None), (int, float))
        )
        self.stretch = (
            self.run_ahead
            and self.arrivals is None
            and tables.semi is None
            and not self.jitter
            and options.ticks is not None
        )
        self.scalar = attempts.Scalar(self)

    @property
    def rng(self) -> np.random.Generator:
        """The engine's generator, in step with the buffered uniforms quiet ticks take."""
        return self.uniforms.sync()

    def start(self) -> None:
        """File every subject at its first attempt and plan the first arrivals (a fresh run)."""
        n = len(self.population.subjects)
        dwell.enter(self, 0, n, -1)
        self.file(np.arange(n, dtype=np.int64), self.population.view, -1)
        if self.arrivals is not None:
            self.arrivals.plan(-1, self.rng, self.horizon)

    def _next_busy(self) -> int | None:
        """The next tick with subjects due or newcomers coming."""
        due = self.calendar.next_tick()
        coming = self.arrivals.next_tick if self.arrivals is not None else None
        if coming is None:
            return due
        return coming if due is None else min(due, coming)

    def fail(self, exc: BaseException) -> None:
        """Record the first failure of a process and end the run now."""
        if self.failure is None:
            self.failure = exc
        if not self.halt.triggered:
            self.halt.succeed()

    def wake(self) -> None:
        """Tell a waiting walker that a subject was filed back (by a grant or a release)."""
        if not self.wakeup.triggered:
            self.wakeup.succeed()

    def file(
        self,
        subjects: np.ndarray,
        states: np.ndarray,
        tick: int,
        skip: list[int] | None = None,
        later: dict[int, int] | None = None,
    ) -> None:
        """File `subjects` (now in `states`, just handled at `tick`) at their next attempt.

        One wait is drawn per subject, also for the positions in `skip` (subjects now queueing
        for a resource, filed later), so that the draws do not depend on who is skipped.
        `later` maps positions to extra ticks before the wait starts (a resource's hold)."""
        if self.tables.semi is not None:
            # Dwell and delay laws draw their own waits; their ticks queue for resources
            # (no grant at the attempt), so no `later` reaches this path.
            self.tables.semi.file(self, subjects, states, tick, skip)
            return
        waits = np.log1p(-self.rng.random(len(subjects))) * self.tables.invlog[states]
        if skip:
            waits[skip] = np.nan
        for k, extra in (later or {}).items():
            waits[k] += extra
        keep = waits < self.horizon - tick - 1  # NaN (never moves) compares False
        if not keep.all():
            subjects, waits = subjects[keep], waits[keep]
        due = waits.astype(np.int64)
        due += tick + 1
        self.calendar.file(subjects, due)

    # -- the process -----------------------------------------------------------------------

    def process(self) -> Generator[simpy.events.Event, Any, None]:
        """The SimPy process of the run."""
        try:
            yield from self._walk()
        except BaseException as exc:
            # SimPy would re-raise a re-built copy of the exception (losing attributes such
            # as a SinkError's ledgers); keep the original and raise it from run().
            self.fail(exc)

    def _walk(self) -> Generator[simpy.events.Event, Any, None]:
        t = self.first_tick
        self.wall0 = time.monotonic() - t * self.tick_ms / 1000 / self.live.speed
        # A live run must notice stop() and its lag on time even through quiet stretches:
        # it walks every tick.
        every_tick = self.live.enabled
        # With no resources and no pacing, while nothing else is scheduled in SimPy, a
        # timeout to the next busy tick would be the only event: the walker moves the clock
        # itself, as that timeout would, rather than pay a SimPy step per busy tick.
        may_run_ahead = self.run_ahead
        peek, inf = self.env.peek, math.inf
        while t < self.horizon and self.failure is None:
            busy = t if every_tick else self._next_busy()
            if busy is None or busy >= self.horizon:
                if not self.services.active:
                    break
                yield from self._wait_for_services()
                t = max(t, self._tick_now())
                continue
            if may_run_ahead and peek() == inf:
                self._move_clock(busy)
            elif not (yield from self._reach(busy, every_tick)):
                t = max(t, self._tick_now())
                continue  # woken early (a grant filed someone sooner) or failed
            last, stopped = self._handle(busy)
            t = last + 1
            if stopped or self.after_tick(last):
                break
        if self.tables.has_resources and self.failure is None:
            # Requests made during the last tick are granted at its time, after the walker:
            # let them happen before the run ends (or stops and is saved).
            yield from self._settle()
        self._finish()

    def after_tick(self, t: int) -> bool:
        """What follows a handled tick `t`: the progress callback, then stop() honoured;
        True when the run stops here."""
        self.next_tick = t + 1
        if self.progress is not None:
            self.progress(t + 1)
        if self.stop_requested:
            self.stopped = True
        return self.stopped

    def _move_clock(self, busy: int) -> None:
        """Set SimPy's clock to tick `busy`, as a timeout there would when no other event is
        scheduled (`Environment.now` reads ``_now``; SimPy has no public setter)."""
        target = self.origin + busy
        if target > self.env.now:
            self.env._now = target

    def _tick_now(self) -> int:
        return math.ceil(self.env.now - self.origin)

    def _wait_for_services(self) -> Generator[simpy.events.Event, Any, None]:
        """Nobody is due: wait until a queueing or holding subject is filed back."""
        self.wakeup = self.env.event()
        if self.horizon >= MAX_TICKS:
            yield self.wakeup | self.halt
        else:
            end = self.env.timeout(self.origin + self.horizon - self.env.now)
            yield self.wakeup | end | self.halt

    def _reach(self, busy: int, every_tick: bool) -> Generator[simpy.events.Event, Any, bool]:
        """Advance the clock to tick `busy`; False when woken earlier or failed."""
        env = self.env
        wait = self.origin + busy - env.now
        if wait > 0:
            if self.tables.has_resources:
                self.wakeup = env.event()
                yield env.timeout(wait) | self.wakeup | self.halt
                if env.now < self.origin + busy or self.failure is not None:
                    return False
            else:
                yield env.timeout(wait)
        if self.tables.has_resources:
            # Let every release and grant due now happen first, whatever order SimPy queued
            # them in: the walker is always last at its time, so a resumed run (whose SimPy
            # events are queued anew) interleaves exactly as the original.
            yield from self._settle()
            if self.failure is not None:
                return False
            if not every_tick and self._next_busy() != busy:
                return False  # a grant filed someone earlier than `busy`
        return True

    def _settle(self) -> Generator[simpy.events.Event, Any, None]:
        while self.env.peek() <= self.env.now and self.failure is None:
            yield self.env.timeout(0)

    def _handle(self, t: int) -> tuple[int, bool]:
        """Tick `t`: newcomers, then the subjects due, then the live lag check; returns the
        last tick handled (quiet ticks after `t` may be handled with it, `attempts.Scalar`)
        and whether the run stopped there."""
        calendar = self.calendar
        arriving = self.arrivals is not None and self.arrivals.next_tick == t
        if arriving:
            self._arrive(t)
        # `_next_busy` just opened t's block, unless newcomers came (they may be due now) or
        # the walk is live (it comes to every tick).
        opened = not arriving and not self.live.enabled
        due = calendar.has(t) if opened else calendar.next_tick() == t
        self.last_intended_ms = t * self.tick_ms
        last, stopped = t, False
        if due:
            last, stopped = attempts.tick(self, t, calendar.take(t))
        if self.live.enabled:
            self._check_lag(t)
        return last, stopped

    def _finish(self) -> None:
        if self.failure is not None or self.stopped or self.options.ticks is None:
            return
        if self.progress is not None:
            self.progress(self.options.ticks)
        self.next_tick = self.options.ticks

    def _check_lag(self, t: int) -> None:
        """After tick `t`: how late its last event left, against when it was due."""
        due_ms = self.last_intended_ms / self.live.speed
        behind_ms = (time.monotonic() - self.wall0) * 1000 - due_ms
        self.max_lag_seen = max(self.max_lag_seen, behind_ms)
        allowed = float(self.live.max_lag_ms or 0.0)
        if behind_ms > allowed:
            self.lag_warnings += 1
            message = (
                f"live run is {behind_ms:.0f} ms behind real time at tick {t} "
                f"(allowed {allowed:.0f} ms): the sinks or callbacks cannot keep up"
            )
            if self.live.on_lag == "fail":
                raise RunError(message)
            if self.lag_warnings == 1 or self.lag_warnings % 100 == 0:
                LOGGER.warning(message)

    def _arrive(self, t: int) -> None:
        """Create this tick's newcomers in the initial state, file their first attempts, and
        plan the next arrivals."""
        assert self.arrivals is not None
        count = self.arrivals.take(self.timestamp_start + t * self.tick_ms, self.rng)
        self.arrivals.plan(t, self.rng, self.horizon)
        if count == 0:
            return
        initial = self.tables.initial
        start = self.population.add(self.population.make(count), initial)
        self.recorder.arrive(t, count)
        mixed = dwell.enter(self, start, count, t)
        self.file(
            np.arange(start, start + count, dtype=np.int64),
            np.full(count, initial, dtype=np.int64) if mixed is None else mixed.astype(np.int64),
            t - 1,
        )
