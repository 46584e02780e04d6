"""Turning a `ModelSpec` into a run: its settings, a new `Simulation`, a resumed one.

- `live_settings(spec, ...)`: the file's ``live:`` settings with the caller's in their place.
- `run_options(spec, sinks, overrides)`: the frozen `RunOptions` and `LiveOptions`.
- `new_simulation(spec, sinks, callbacks, overrides)`: a ready `Simulation`.
- `resume_simulation(spec, checkpoint, ...)`: a `Simulation` continuing a checkpoint.
- `saved_run(checkpoint)`: the run settings and subject count a checkpoint fixes.
- `_DeferredFactory`: a subject factory chosen once the run's seed is known.

`ModelSpec.live_settings`, `options`, `simulation` and `resume` document the arguments.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.calendar_ticks import stamp_by_calendar
from dogesim.engine import LiveOptions, RunOptions, Simulation
from dogesim.engine import checkpoint as checkpoints
from dogesim.errors import ModelError, RunError
from dogesim.modelfile.build import Sinks, _close_built, churn_sinks
from dogesim.modelfile.keys import _check_overrides
from dogesim.modelfile.online import _ON_LAG, LiveSpec
from dogesim.modelfile.payloads import start_run, track_state_tables

if TYPE_CHECKING:
    from dogesim.modelfile.spec import ModelSpec


class _DeferredFactory:
    """A subject factory chosen after the `Simulation` exists (its seed is the engine's
    choice when the file gives none, and a resumed run learns it from the checkpoint)."""

    def __init__(self) -> None:
        self.target: Callable[[], Any] | None = None

    def __call__(self) -> Any:
        if self.target is None:
            raise RunError("the resumed run's subject factory was not set up")
        return self.target()


def live_settings(spec: ModelSpec, changes: dict[str, Any]) -> LiveSpec:
    """The file's `live` settings with `changes` (those not None) in their place."""
    settings = dataclasses.replace(spec.live, **{k: v for k, v in changes.items() if v is not None})
    if settings.on_lag not in _ON_LAG:
        raise ModelError(
            f"on_lag must be one of {', '.join(_ON_LAG)}, got {changes.get('on_lag')!r}"
        )
    if changes.get("until_stopped") and not settings.enabled:
        raise ModelError("running until stopped needs live mode (live: {enabled: true}, or --live)")
    return settings


def run_options(
    spec: ModelSpec, sinks: Sinks | None, overrides: dict[str, Any]
) -> tuple[RunOptions, LiveOptions]:
    """The run settings of `spec` with `overrides` in their place (`ModelSpec.options`)."""
    given = _check_overrides(spec.path or spec.name, overrides)
    settings = spec.live_settings(
        live=given.get("live"),
        speed=given.get("speed"),
        max_lag_ms=given.get("max_lag_ms"),
        on_lag=given.get("on_lag"),
        until_stopped=given.get("until_stopped"),
    )
    wall_clock = settings.enabled and settings.timestamps == "wall"
    run = RunOptions(
        ticks=None if settings.enabled and settings.until_stopped else spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=None if wall_clock else spec.timestamp_start,
        seed=given.get("seed", spec.seed),
        jitter=given.get("jitter", spec.jitter),
        arrivals=spec.arrivals,
        arrivals_profile=spec.arrivals_profile,
        churn=spec.churn,
        churn_sinks=tuple(churn_sinks(spec, sinks if sinks is not None else {})),
        record_every=given.get("record_every", spec.record_every),
        progress=given.get("progress"),
        checkpoint_path=given.get("checkpoint_path", spec.checkpoint_path),
        checkpoint_every=given.get("checkpoint_every", spec.checkpoint_every),
    )
    live = LiveOptions(
        enabled=settings.enabled,
        speed=settings.speed,
        max_lag_ms=settings.max_lag_ms,
        on_lag=settings.on_lag,
    )
    return run, live


def new_simulation(
    spec: ModelSpec, sinks: Sinks | None, callbacks: bool, overrides: dict[str, Any]
) -> Simulation:
    """A ready `Simulation` of `spec` (`ModelSpec.simulation`)."""
    # Refuse an unknown setting before any sink is opened.
    _check_overrides(spec.path or spec.name, overrides)
    built = spec.build_sinks() if sinks is None else sinks
    try:
        model = spec.build_model(built, callbacks=callbacks)
        run, live = spec.options(built, **overrides)
        factory = _DeferredFactory()
        simulation = Simulation(
            model, spec.subjects.count, subject_factory=factory, options=run, live=live
        )
        if spec.calendar is not None:
            stamp_by_calendar(simulation, spec.calendar)
        factory.target = start_run(
            spec.payloads,
            built.values() if isinstance(built, Mapping) else built,
            simulation,
            spec.subject_factory(simulation.seed),
            initial=spec.subjects.count,
        )
        return simulation
    except BaseException:
        _close_built(built)
        raise


def resume_simulation(
    spec: ModelSpec,
    checkpoint: str | os.PathLike[str],
    *,
    sinks: Sinks | None,
    progress: Callable[[int], None] | None,
    callbacks: bool,
    live: dict[str, Any],
    checkpoints: dict[str, Any],
    allow_pickle: bool,
    from_checkpoint: bool = False,
) -> Simulation:
    """A `Simulation` continuing the run saved in `checkpoint` (`ModelSpec.resume`).

    With `from_checkpoint` the run settings (seed, ticks or until stopped, jitter,
    record_every, the start of its clock, the subject count) are the checkpoint's, not the
    file's: the checkpoint is the run (the CLI checks its flags against them first). The
    model side (states, transitions, chances, arrivals, resources, profiles, tick) must
    match either way."""
    path = os.fspath(checkpoint)
    if not Path(path).is_file():
        what = (
            "a directory, not a checkpoint file"
            if os.path.isdir(path)
            else "no such checkpoint file"
        )
        raise RunError(f"{path}: {what}")
    saved = saved_run(path) if from_checkpoint else None
    built = spec.build_sinks(append=True) if sinks is None else sinks
    try:
        model = spec.build_model(built, callbacks=callbacks)
        settings = spec.live_settings(**live)
        factory = _DeferredFactory() if spec.arrivals is not None else None
        expected, _ = spec.options(built, **checkpoints)
        count = spec.subjects.count
        if saved is not None:
            count = saved.pop("subjects")
            expected = dataclasses.replace(expected, **saved)
        try:
            simulation = Simulation.resume(
                path,
                model,
                progress=progress,
                live=settings.enabled,
                speed=settings.speed,
                arrivals=spec.arrivals,
                arrivals_profile=spec.arrivals_profile,
                churn=spec.churn,
                churn_sinks=churn_sinks(spec, built),
                subject_factory=factory,
                expected=expected,
                subjects=count,
                checkpoint_path=expected.checkpoint_path,
                checkpoint_every=expected.checkpoint_every,
                allow_pickle=allow_pickle,
            )
        except OSError as exc:
            raise RunError(f"{path} cannot be read as a dogesim checkpoint: {exc}") from exc
        except ModelError as exc:
            raise RunError(f"{path}: cannot resume: {exc}") from None
        if spec.calendar is not None:
            stamp_by_calendar(simulation, spec.calendar)
        _continue_after_resume(spec, simulation, settings, factory, built)
        return simulation
    except BaseException:
        _close_built(built)
        raise


def saved_run(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings `checkpoint` fixes: ``subjects`` (the initial count), ``seed``,
    ``ticks`` (None: a run until stopped), ``jitter``, ``record_every`` and
    ``timestamp_start``. The tick length is the model's, not taken from here.

    Only the manifest is read (a million subjects are not decoded twice); a file that is
    not a checkpoint gets the `RunError` of `dogesim.engine.checkpoint.load`.
    """
    path = os.fspath(checkpoint)
    try:
        with np.load(path, allow_pickle=False) as members:
            manifest = json.loads(members["manifest"].tobytes().decode("utf-8"))
        settings = checkpoints.settings_of(manifest)
        subjects = int(manifest["initial_subjects"])
    except Exception:
        checkpoints.load(path)  # raises the loader's own message for this file
        raise
    settings.pop("tick_ms")
    return {"subjects": subjects, **settings}


def saved_checkpoint_every(checkpoint: str | os.PathLike[str]) -> int | str | None:
    """How often the run that wrote `checkpoint` wrote checkpoints (None: only when it
    stopped or ended, or a checkpoint older than this setting), so its resume goes on."""
    try:
        with np.load(os.fspath(checkpoint), allow_pickle=False) as members:
            manifest = json.loads(members["manifest"].tobytes().decode("utf-8"))
    except Exception:
        return None  # not readable here: the resume itself names the problem
    every = manifest.get("checkpoint_every") if isinstance(manifest, dict) else None
    return every if isinstance(every, (int, str)) and not isinstance(every, bool) else None


def _continue_after_resume(
    spec: ModelSpec,
    simulation: Simulation,
    settings: LiveSpec,
    factory: _DeferredFactory | None,
    sinks: Sinks,
) -> None:
    """Lag settings of the resumed run, and its newcomers' factory where it left off (the
    state tables among `sinks` inserting each newcomer)."""
    simulation.on_lag = settings.on_lag
    if settings.max_lag_ms is not None:
        simulation.max_lag_ms = float(settings.max_lag_ms)
    if factory is not None:
        # Newcomers must continue where the interrupted run's factory was: make it again
        # with the run's seed and create (and drop) as many subjects as were made. The
        # global RNGs this may touch are restored from the checkpoint when the run starts.
        target = spec.subject_factory(simulation.seed)
        for _ in range(len(simulation.subjects)):
            target()
        built = sinks.values() if isinstance(sinks, Mapping) else sinks
        factory.target = track_state_tables(built, simulation, target, initial=0)
