"""`Simulation`: one run of a model over a population — validates its settings, builds the
pieces (tables, population, walker), runs the SimPy clock, closes the sinks, builds the result.

Seeds. The run's seed is `seed=`, else ``DOGESIM_SEED``, else ``random.getrandbits(63)``
(so a program that calls ``random.seed(N)`` first is reproducible unchanged). The seed seeds
numpy's ``default_rng`` that draws every choice, wait, arrival and jitter of the engine; with
``seed_globals=True`` (the default) it also re-seeds Python's global `random` (with the seed)
and numpy's legacy global generator (with the seed mod 2**32) before subjects are created, so
factories and callbacks that draw from them are reproducible too.
"""

from __future__ import annotations

import logging
import operator
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from numbers import Integral
from typing import Any

import numpy as np
import simpy
import simpy.rt

from dogesim.calendar_ticks import CalendarTicks, calendar_ticks
from dogesim.engine import checkpoint as checkpoints
from dogesim.engine.closing import (
    add_note,
    close_all,
    describe,
    ledgers_of,
    open_all,
    raise_close_errors,
)
from dogesim.engine.dwell import use_calendar
from dogesim.engine.options import MAX_SUBJECTS, UNSET, LiveOptions, RunOptions, merge_options
from dogesim.engine.population import Population, default_subject
from dogesim.engine.tables import Tables, effective_model
from dogesim.engine.walker import Walker
from dogesim.errors import ModelError, RunError
from dogesim.model import Model
from dogesim.rates import Profile, Rate
from dogesim.result import RunResult
from dogesim.sinks import offsets
from dogesim.sinks.base import DeliveryLedger

__all__ = ["Simulation"]

LOGGER = logging.getLogger("dogesim")


def _factory(subject_factory: Any) -> Callable[[], Any] | None:
    """The callable that makes one subject: ``create`` when the object has a callable one
    (a `SubjectFactory`, or a Mock of it, which is callable too), else the object itself."""
    if subject_factory is None:
        return None
    create = getattr(subject_factory, "create", None)
    if callable(create):
        return create
    if callable(subject_factory):
        return subject_factory
    raise ModelError(
        f"subject_factory must be callable or have a create() method, got {subject_factory!r}"
    )


class Simulation:
    """One run of `model` over a population of subjects.

    Args:
        model: the validated state machine.
        subjects: how many subjects to create with `subject_factory`, or the subjects
            themselves (any objects, hashable or not), in creation order.
        subject_factory: makes one subject per call, in order: an object with a ``create()``
            method (doge-datagen's `SubjectFactory`; used through ``create`` even when it is
            also callable) or a callable. Without one, subjects are ``SimpleNamespace(id=i)``.
        ticks, tick_ms, timestamp_start, seed, seed_globals, progress, jitter, arrivals,
            arrivals_profile, churn, churn_sinks, record_every, batch: the run settings, as in
            `RunOptions` (ticks and tick_ms are required unless `options` is given).
        options: all of those as one `RunOptions` instead of keywords (not both).
        env: the SimPy environment to run in (a fresh one when omitted). Time unit: ticks.
        live: pace the run in real time: True, or a `LiveOptions` (then `speed`,
            `max_lag_ms` and `on_lag` come from it).
        speed, max_lag_ms, on_lag: live pacing, as in `LiveOptions`.

    See the module docstring for what the seed seeds.
    """

    def __init__(
        self,
        model: Model,
        subjects: int | Sequence[Any] | Iterable[Any],
        *,
        subject_factory: Callable[[], Any] | Any | None = None,
        ticks: int | None = UNSET,
        tick_ms: int | str = UNSET,
        timestamp_start: int | None = None,
        seed: int | None = None,
        seed_globals: bool = True,
        env: simpy.Environment | None = None,
        progress: Callable[[int], None] | None = None,
        jitter: bool = False,
        live: bool | LiveOptions = False,
        speed: float = 1.0,
        max_lag_ms: float | None = None,
        on_lag: str = "warn",
        arrivals: float | Rate | str | None = None,
        arrivals_profile: Profile | None = None,
        churn: float | Rate | str | None = None,
        churn_sinks: Sequence[Any] = (),
        record_every: int | str | None = None,
        batch: bool = True,
        options: RunOptions | None = None,
    ) -> None:
        if not isinstance(model, Model):
            raise ModelError(f"model must be a dogesim.Model, got {type(model).__name__}")
        # calendar ticks (1mo, 1y) run at their mean length, stamped by `use_calendar`
        self._calendar = calendar_ticks(tick_ms, jitter, live)
        tick_ms = self._calendar.mean_ms if self._calendar else tick_ms
        loose = dict(
            ticks=ticks, tick_ms=tick_ms, timestamp_start=timestamp_start, seed=seed,
            seed_globals=seed_globals, jitter=jitter, arrivals=arrivals,
            arrivals_profile=arrivals_profile, churn=churn, churn_sinks=churn_sinks,
            record_every=record_every, progress=progress, batch=batch,
        )  # fmt: skip
        live_options = live if isinstance(live, LiveOptions) else LiveOptions(
            bool(live), speed, max_lag_ms, on_lag
        )  # fmt: skip
        self._options = merge_options(options, loose).validated(live=live_options.enabled)
        self._live = live_options.validated(self._options.tick_ms)
        self._apply_options()
        if self._calendar is not None:
            self._calendar = CalendarTicks(self._calendar.months, self.timestamp_start)
        self.model: Model = effective_model(
            model, self.tick_ms, self._options.churn, self._options.churn_sinks
        )
        self._factory = _factory(subject_factory)
        self._given_subjects = self._subjects(subjects)
        if self._options.arrivals is not None and self._factory is None:
            self._factory = default_subject
        self.env: simpy.Environment = env if env is not None else self._environment()
        self.subjects: list[Any] = []
        self._walker: Walker | None = None
        self._ran = False
        self._stop_requested = False
        self._restored: dict[str, Any] | None = None
        self._restored_from = ""
        #: Periodic and final checkpoints may pickle subjects that are not data.
        self.allow_pickle = False
        self._globals_at_end: tuple[Any, Any] = (None, None)
        self.result: RunResult | None = None

    def _apply_options(self) -> None:
        """The settings as attributes (callers read them; `progress`, `on_lag` and
        `max_lag_ms` may be changed before `run`)."""
        opts, live = self._options, self._live
        self.tick_ms: int = opts.tick_ms
        self.ticks: int | None = opts.ticks
        self.seed: int = int(opts.seed or 0)
        self.seed_globals: bool = opts.seed_globals
        self.jitter: bool = opts.jitter
        self.progress: Callable[[int], None] | None = opts.progress
        self.arrivals_profile: Profile | None = opts.arrivals_profile
        self.live: bool = live.enabled
        self.speed: float = live.speed
        self.max_lag_ms: float = float(live.max_lag_ms or 0.0)
        self.on_lag: str = live.on_lag
        start = opts.timestamp_start
        if start is None:
            start = int(time.time() * 1000) if self.live else 0
        self.timestamp_start: int = start

    def _subjects(self, subjects: Any) -> list[Any] | None:
        """The given subjects (None when a count is given), checking the count."""
        if isinstance(subjects, Integral) and not isinstance(subjects, bool):
            self.subjects_num: int = operator.index(subjects)
            if self.subjects_num < 0 or (self.subjects_num == 0 and self._options.arrivals is None):
                raise ModelError(f"subjects must be positive, got {self.subjects_num}")
            if self.subjects_num > MAX_SUBJECTS:
                raise ModelError(
                    f"subjects: at most 2**31 per run, got {self.subjects_num}; shard the "
                    "population into several runs"
                )
            return None
        if isinstance(subjects, Iterable) and not isinstance(subjects, (str, bytes)):
            given = list(subjects)
            if not given:
                raise ModelError("subjects: the list of subjects is empty")
            self.subjects_num = len(given)
            return given
        raise ModelError(f"subjects must be a count or a list of subjects, got {subjects!r}")

    def _environment(self) -> simpy.Environment:
        if self.live:
            return simpy.rt.RealtimeEnvironment(
                factor=self.tick_ms / 1000 / self.speed, strict=False
            )
        return simpy.Environment()

    @property
    def options(self) -> RunOptions:
        """The run settings as one frozen `RunOptions` (validated, the seed chosen)."""
        return replace(self._options, progress=self.progress)

    @property
    def live_options(self) -> LiveOptions:
        """The live pacing settings as one frozen `LiveOptions`."""
        return replace(self._live, max_lag_ms=self.max_lag_ms, on_lag=self.on_lag)

    @property
    def stopped(self) -> bool:
        """True when the run stopped before its end (`stop`)."""
        return self._walker is not None and self._walker.stopped

    # -- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop after the tick in progress (safe from signal handlers and other
        threads). `run` then closes the sinks and returns a result with ``stopped=True``."""
        self._stop_requested = True
        if self._walker is not None:
            self._walker.stop_requested = True

    def run(self) -> RunResult:
        """Run the simulation to the end (or to `stop`), close every sink once, return the result.

        Raises:
            SinkError: a sink lost events or failed to close (after every sink was closed).
            RunError: the simulation already ran, or live mode fell behind with on_lag="fail".
            BaseException: whatever a factory, callback, hold or sink raised (the run ends at
                once, also inside a resource grant), after every sink was closed; close
                failures are attached to it as notes. A KeyboardInterrupt from a ``close()``
                is re-raised once the other sinks are closed.
        """
        if self._ran:
            raise RunError("this Simulation already ran and its sinks are closed; build a new one")
        self._ran = True
        sinks = self.model.sinks()
        started = time.perf_counter()
        LOGGER.info("run start: %d subjects, seed %d", self.subjects_num, self.seed)
        try:
            walker = self._walker = self._build()
            open_all(sinks, *self._stamp_range(walker))
            done = self.env.process(walker.process())
            self.env.run(until=done | walker.halt)
            if walker.failure is not None:
                raise walker.failure
            # The global generators as the run left them: what a checkpoint must restore,
            # whatever else draws from them before it is taken.
            self._globals_at_end = (random.getstate(), np.random.get_state())
        except BaseException as exc:
            if self._restored is not None or self._options.checkpoint_every is not None:
                offsets.abandon(sinks)  # a failed run keeps no SQL row past its checkpoint
            errors, interrupt = close_all(sinks)
            for error in [*errors, *([interrupt] if interrupt else [])]:
                add_note(exc, f"while stopping, closing a sink also failed: {describe(error)}")
            raise
        errors, interrupt = close_all(sinks)
        ledgers = ledgers_of(sinks, walker.tables.order, walker.recorder.handed().tolist())
        self.result = self._result(ledgers, walker)
        self.result.wall_time = time.perf_counter() - started
        raise_close_errors(errors, interrupt, ledgers)
        LOGGER.info("run done: %d events in %.3f s", self.result.events, self.result.wall_time)
        return self.result

    def _stamp_range(self, walker: Walker) -> tuple[int | None, int | None]:
        """The first and last timestamps a backfill run of a tick count can stamp (None,
        None for a live run or one without a tick count)."""
        if self.live or self.ticks is None:
            return None, None
        first = self.timestamp_start + walker.first_tick * self.tick_ms
        # With jitter an event can be stamped anywhere in its tick.
        last = (
            self.timestamp_start + self.ticks * self.tick_ms - (1 if self.jitter else self.tick_ms)
        )
        return first, max(first, last)

    def subject_states(self) -> list[str]:
        """The current state of every subject, in creation order."""
        if self._walker is None:
            return []
        names = self.model.states
        return [names[s] for s in self._walker.population.states]

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, path: str | os.PathLike[str], *, allow_pickle: bool = False) -> None:
        """Save where a stopped run is, so that `Simulation.resume` continues it with no event
        lost or repeated: a data-only file (see `dogesim.engine.checkpoint`) written 0600,
        fsynced and renamed into place, with the positions of the file and SQL sinks.

        Subjects queueing for or holding a resource are saved with their place in the queue
        and their grant tick; `resume` starts their processes again in the same order.

        Args:
            path: the file to write (replaced atomically).
            allow_pickle: store subjects that are not data (a SimpleNamespace, dict or
                dataclass of JSON values) as a pickle; resuming that file runs code.

        Raises:
            RunError: the run has not stopped yet, or its subjects are not data and
                `allow_pickle` is false.
        """
        if not self._ran or self.result is None or self._walker is None:
            raise RunError("checkpoint() needs a run that has stopped; call run() first")
        checkpoints.save(
            path,
            self._walker,
            self._options,
            self._globals_at_end,
            allow_pickle=allow_pickle or self.allow_pickle,
        )

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
        expected: RunOptions | None = None,
        subjects: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | str | None = None,
        allow_pickle: bool = False,
    ) -> Simulation:
        """A `Simulation` that continues the run saved by `checkpoint`, into `model`'s sinks.

        Every run setting must be the checkpointed one — the model (states, transitions,
        chances, profiles, resources and capacities, holds), arrivals and their profile,
        churn, and, when `expected`/`subjects` are given, tick, clock, seed, ticks, jitter,
        record_every and the subject count — else `RunError` names what differs. Its sinks
        are new (file sinks opened for appending): at `run` each file is cut back to its
        size at the checkpoint and each SQL table checked to hold its rows then, so the
        output together equals the uninterrupted run's, however often it was interrupted.

        Args:
            expected, subjects: the settings and subject count the caller means to resume.
            checkpoint_path, checkpoint_every: periodic checkpoints of the resumed run.
            allow_pickle: load a checkpoint whose subjects were pickled (runs code: only
                for a file you trust); without it such a file is refused.
        """
        saved = checkpoints.load(path, allow_pickle=allow_pickle)
        sim = cls(
            model,
            max(len(saved["subjects"]), 1),
            subject_factory=subject_factory,
            live=live,
            speed=speed,
            env=env,
            options=RunOptions(
                **checkpoints.settings_of(saved),
                progress=progress,
                arrivals=arrivals,
                arrivals_profile=arrivals_profile,
                churn=churn,
                churn_sinks=churn_sinks,
                checkpoint_path=checkpoint_path,
                checkpoint_every=checkpoint_every,
            ),
        )
        now = sim._options
        if expected is not None:
            seed = saved["settings"]["seed"] if expected.seed is None else expected.seed
            # Arrivals and churn are this call's (the model side); the rest is `expected`.
            now = replace(
                replace(expected, seed=seed).validated(live=live),
                arrivals=now.arrivals,
                arrivals_profile=now.arrivals_profile,
            )
        start = sim.timestamp_start if now.timestamp_start is None else now.timestamp_start
        count = saved["initial_subjects"] if subjects is None else subjects
        checkpoints.check(
            path,
            saved,
            checkpoints.fingerprint(sim.model, replace(now, timestamp_start=start), count),
        )
        sim._restored = saved
        sim._restored_from = os.fspath(path)
        sim.allow_pickle = allow_pickle
        sim.subjects = saved["subjects"]
        sim.subjects_num = len(sim.subjects)
        return sim

    def _write_periodic(self, walker: Walker) -> None:
        """A periodic checkpoint at the tick boundary the walker is at."""
        path = self._options.checkpoint_path
        assert path is not None
        globals_now = (random.getstate(), np.random.get_state())
        checkpoints.save(path, walker, self._options, globals_now, allow_pickle=self.allow_pickle)

    def _prepare_sinks(self) -> None:
        """SQL sinks commit only at checkpoints in a checkpointed or resumed run (a run with
        a checkpoint path commits nothing that no checkpoint records, also without periodic
        checkpoints); a resumed run's sinks are cut back to their positions there (state tables
        brought back to the checkpoint's rows)."""
        sinks = self.model.sinks()
        options = self._options
        if (
            self._restored is not None
            or options.checkpoint_every is not None
            or options.checkpoint_path is not None
        ):
            offsets.defer_commits(sinks)
        if self._restored is not None:
            self._roll_forward(sinks)
            offsets.restore_positions(sinks, self._restored["sinks"], self._restored_from)
            offsets.reconcile(sinks, self._restored["subjects"])

    def _roll_forward(self, sinks: list[Any]) -> None:
        """Take the pending checkpoint a crash left beside the resumed one when the sinks are
        where it says and not where the resumed one says (its sinks had committed)."""
        pending = checkpoints.pending_path(self._restored_from)
        if not os.path.exists(pending) or self._restored is None:
            return
        if offsets.positions_hold(sinks, self._restored["sinks"]):
            return
        try:
            later = checkpoints.load(pending, allow_pickle=self.allow_pickle)
        except RunError:
            return  # not a whole checkpoint: the crash came before it was written
        same_run = all(
            later.get(key) == self._restored.get(key) for key in ("settings", "fingerprint")
        )
        if same_run and offsets.positions_hold(sinks, later["sinks"]):
            LOGGER.warning("%s: resuming from the checkpoint a crash left pending", pending)
            self._restored = later
            self.subjects = later["subjects"]
            self.subjects_num = len(self.subjects)
            os.replace(pending, self._restored_from)

    # -- the pieces ------------------------------------------------------------------------

    def _build(self) -> Walker:
        """Tables, population and walker, filed (a fresh run) or restored (a resume)."""
        options = replace(self._options, progress=self._progress_hook())
        live = self.live_options.validated(self.tick_ms)
        self._prepare_sinks()
        tables = Tables(self.model, self.env)
        if self._calendar is not None:
            use_calendar(tables, self._calendar)
        population = Population(self._factory)
        saved = self._restored
        if saved is not None:
            population.restore(saved["subjects"], checkpoints.states_of(saved))
        else:
            if self.seed_globals:
                random.seed(self.seed)
                if "numpy" in sys.modules:
                    np.random.seed(self.seed % (1 << 32))
            given = self._given_subjects
            made = list(given) if given is not None else population.make(self.subjects_num)
            population.add(made, tables.initial)
        self.subjects = population.subjects
        walker = Walker(self.env, tables, population, options, live, self.timestamp_start)
        walker.stop_requested = self._stop_requested
        if saved is not None:
            checkpoints.restore(walker, saved)
        else:
            walker.start()
        return walker

    def _progress_hook(self) -> Callable[[int], None] | None:
        """The walker's progress callback: the caller's, within periodic checkpoints."""
        every = self._options.checkpoint_every
        path = self._options.checkpoint_path
        if every is None or path is None:
            return self.progress
        return checkpoints.Periodic(
            path, int(every), lambda: self._walker, self._write_periodic, self.progress
        )

    def _result(self, ledgers: list[DeliveryLedger], walker: Walker) -> RunResult:
        return walker.recorder.result(
            self.model,
            walker.tables.order_to_model,
            walker.initial_subjects,
            seed=self.seed,
            subjects=len(walker.population.subjects),
            ticks=walker.next_tick,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp_start,
            ledgers=ledgers,
            stopped=walker.stopped,
            max_lag_ms=walker.max_lag_seen if self.live else None,
            lag_warnings=walker.lag_warnings,
        )
