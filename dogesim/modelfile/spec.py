"""`ModelSpec` and `TransitionSpec`: a whole model file parsed and checked, and the
`Simulation` it builds; `load_model_file` and `load_model_text`.

- `RUN_OVERRIDES`: the run settings a caller (the CLI, a notebook) may override per run;
  `ModelSpec.options` turns the file's settings plus those overrides into the frozen
  `RunOptions` and `LiveOptions` that `Simulation(options=..., live=...)` takes, so a setting
  travels as one object from the command line to the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dogesim import redact
from dogesim.engine import LiveOptions, RunOptions, RunResult, Simulation
from dogesim.errors import ModelError, RunError, SinkConfigError
from dogesim.laws import Law
from dogesim.model import Model, Transition
from dogesim.modelfile.cohorts import read_args, read_dwell, read_initial, read_law
from dogesim.modelfile.online import (
    _ON_LAG,
    LiveSpec,
    RandomHold,
    _profile_at,
    _read_arrival_rate,
    _read_chance,
    _read_hold,
    _read_live,
    _read_profiles,
    _read_resources,
    _sink_names,
)
from dogesim.modelfile.sinks import SinkSpec, _read_sink
from dogesim.modelfile.source import (
    MAX_SUBJECTS,
    MAX_TICKS,
    MAX_TIMESTAMP,
    _callable_at,
    _check_call,
    _describe,
    _duration_ms,
    _format_timestamp,
    _interpolate,
    _LineLoader,
    _Map,
    _Reader,
    _Source,
    parse_timestamp,
)
from dogesim.modelfile.subjects import SubjectsSpec, _read_subjects
from dogesim.rates import Profile, Rate, format_duration


@dataclass
class TransitionSpec:
    """One transition of a model file.

    Attributes:
        trigger, from_state, to_state: as in `Transition`.
        probability: percent per tick, or a `Rate` (``0.1% per minute``, ``6 per day``) that
            the run rescales to its tick.
        callback: the imported action callback, or None.
        callback_path: the ``module:function`` it came from.
        sinks: names of the sinks that receive its events (after `default_sinks` applied).
        description: free text.
        line: the line of the transition in the file.
        profile: the calendar profile multiplying the chance, or None.
        profile_name: the name of the profile under ``profiles:`` (None when inline).
        resource: the resource the move must acquire (queueing when all are busy), or None.
        hold: ticks the resource is held after the move (or a `RandomHold` drawn per grant).
        delay: the law of the wait before the next attempt after this move, or None.
        rate_attribute: the subject attribute that scales this transition's rate, or None.
        callback_args: keyword arguments the callback is called with (``args:``).
    """

    trigger: str
    from_state: str
    to_state: str
    probability: float | Rate
    callback: Callable[[Any, Transition], Any] | None = None
    callback_path: str | None = None
    sinks: tuple[str, ...] = ()
    description: str | None = None
    line: int = 0
    profile: Profile | None = None
    profile_name: str | None = None
    resource: str | None = None
    hold: int | RandomHold = 1
    delay: Law | None = None
    rate_attribute: str | None = None
    callback_args: dict[str, Any] = field(default_factory=dict)


_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "states",
    "initial_state",
    "dwell",
    "tick",
    "ticks",
    "start",
    "subjects",
    "sinks",
    "default_sinks",
    "transitions",
    "probability_tick",
    "profiles",
    "resources",
    "arrivals",
    "churn",
    "jitter",
    "record_every",
    "live",
    "checkpoint",
    "shards",
)
_TOP_REQUIRED = ("states", "initial_state", "tick", "ticks", "subjects", "transitions")
_TRANSITION_KEYS = (
    "trigger",
    "from",
    "to",
    "probability",
    "callback",
    "sinks",
    "description",
    "profile",
    "resource",
    "hold",
    "delay",
    "rate_attribute",
    "args",
)


#: The run settings `ModelSpec.options` (and `simulation`, `run`) accept as overrides.
RUN_OVERRIDES = (
    "seed",
    "jitter",
    "record_every",
    "progress",
    "live",
    "speed",
    "max_lag_ms",
    "on_lag",
    "until_stopped",
    "checkpoint_path",
    "checkpoint_every",
)


def _check_overrides(where: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that were given (not None), refusing a name that is no run setting."""
    for name in overrides:
        if name not in RUN_OVERRIDES:
            hint = difflib.get_close_matches(name, RUN_OVERRIDES, n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ModelError(
                f"{where}: {name!r} is not a run setting{maybe}; the settings a run may "
                f"override are {', '.join(RUN_OVERRIDES)}"
            )
    return {k: v for k, v in overrides.items() if v is not None}


class _DeferredFactory:
    """A subject factory chosen after the `Simulation` exists (its seed is the engine's
    choice when the file gives none, and a resumed run learns it from the checkpoint)."""

    def __init__(self) -> None:
        self.target: Callable[[], Any] | None = None

    def __call__(self) -> Any:
        if self.target is None:
            raise RunError("the resumed run's subject factory was not set up")
        return self.target()


@dataclass
class ModelSpec:
    """A loaded model file: everything needed to build and run the simulation.

    Attributes:
        path: the file it came from (None for text).
        name: the model's name (the file's stem when the file gives none).
        description: free text.
        states, initial_state: the state machine's states; the initial state may be a mix
            (weights per state).
        dwell: per state, its dwell-time law (``dwell:``).
        transitions: the transitions, in file order.
        tick_ms: tick length in milliseconds.
        ticks: number of ticks.
        timestamp_start: timestamp of tick 0, epoch ms.
        seed: the seed, or None (a seed is then picked per run and reported).
        subjects: how subjects are made, and how many.
        sinks: the named sinks.
        default_sinks: sink names used by transitions that list none.
        probability_tick: the tick per-tick probabilities refer to (None: whatever `tick_ms`
            is); a run at another tick rescales them.
        profiles: the named calendar profiles.
        resources: shared resources and their capacities.
        arrivals: new subjects per tick (a number) or per period (a `Rate`), or None.
        arrivals_profile: the calendar profile shaping arrivals, or None.
        churn: the chance (percent per tick or a `Rate`) that a subject leaves for the final
            state ``churned``, or None.
        churn_sinks: sink names that receive ``churn`` events.
        jitter: spread timestamps within their tick.
        record_every: ticks per row of the result's per-tick tables (None: chosen so a
            table stays under 10,000 rows).
        live: live pacing settings.
        checkpoint_path, checkpoint_every: periodic checkpoints (``checkpoint: {path: ...,
            every: 10m}``): the file, and the ticks between two (None: no periodic ones).
        shards: the number of shards a sharded run cuts the subjects into (``shards:``;
            None: derived from the population). It fixes the stream of a seeded run.
    """

    path: str | None
    name: str
    description: str | None
    states: tuple[str, ...]
    initial_state: str | dict[str, float]
    transitions: list[TransitionSpec]
    tick_ms: int
    ticks: int
    timestamp_start: int
    seed: int | None
    subjects: SubjectsSpec
    sinks: dict[str, SinkSpec] = field(default_factory=dict)
    default_sinks: tuple[str, ...] = ()
    probability_tick: int | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    arrivals: float | Rate | None = None
    arrivals_profile: Profile | None = None
    churn: float | Rate | None = None
    churn_sinks: tuple[str, ...] = ()
    jitter: bool = False
    record_every: int | None = None
    live: LiveSpec = field(default_factory=LiveSpec)
    dwell: dict[str, Law] = field(default_factory=dict)
    checkpoint_path: str | None = None
    checkpoint_every: int | None = None
    shards: int | None = None

    def __repr__(self) -> str:
        # Sink settings may hold passwords (conf, URLs) and ${VAR} values: mask them.
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return redact.mask(f"{type(self).__name__}({shown})")

    @property
    def model(self) -> Model:
        """The state machine without sinks (for graphs and analytic reports), with every
        chance as percent per tick of `tick_ms`."""
        return self.build_model({})

    def used_sinks(self) -> list[str]:
        """Names of the sinks some transition (or churn) sends events to, in first-use order."""
        names = [name for t in self.transitions for name in t.sinks]
        if self.churn is not None:
            names.extend(self.churn_sinks)
        return list(dict.fromkeys(names))

    def build_sinks(
        self, names: Iterable[str] | None = None, *, append: bool = False
    ) -> dict[str, Any]:
        """Fresh sinks by name (by default every sink a transition uses).

        Args:
            names: which sinks (default: `used_sinks`).
            append: open file sinks for appending (to continue a resumed run).

        If one sink cannot be built, those already built are closed before the error
        propagates.
        """
        wanted = list(self.used_sinks() if names is None else names)
        built: dict[str, Any] = {}
        try:
            for name in wanted:
                if name not in self.sinks:
                    raise ModelError(
                        f"{self.path or self.name}: no sink named {name!r}; sinks are "
                        f"{', '.join(self.sinks) or 'none'}"
                    )
                built[name] = self._build_sink(name, append=append)
        except BaseException:
            _close_quietly(built.values())
            raise
        return built

    def _build_sink(self, name: str, *, append: bool) -> Any:
        sink = self.sinks[name]
        try:
            return sink.build(append=append)
        except OSError as exc:
            # An output under a file, on a read-only mount, a name too long: nothing was
            # sent yet, so this is a bad setting, not a lost event.
            raise SinkConfigError(
                redact.mask(
                    f"{sink.source}:{sink.line}: sinks.{name}: cannot open "
                    f"{sink.describe()}: {exc.strerror or exc}"
                )
            ) from None

    def build_model(
        self,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        callbacks: bool = True,
    ) -> Model:
        """The `Model` at this file's tick, its transitions feeding the given sinks.

        Args:
            sinks: built sinks by name (each transition gets the ones it names; missing names
                are skipped), or a list of sinks that every transition feeds instead (an
                output override), or None to build the file's sinks now.
            callbacks: attach the callbacks (False gives the bare Markov chain).

        Rates are converted, and per-tick probabilities rescaled from `probability_tick`, to
        percent per tick of `tick_ms`; profiles, resources and holds are attached. Churn is
        not part of the model: `simulation` adds it.
        """
        if sinks is None:
            sinks = self.build_sinks()
        model = Model(
            self.states,
            self.initial_state,
            name=self.name,
            tick_ms=self.probability_tick,
            resources=dict(self.resources),
            dwell=self.dwell,
        )
        for spec in self.transitions:
            if isinstance(sinks, Mapping):
                chosen = [sinks[name] for name in spec.sinks if name in sinks]
            else:
                chosen = list(sinks)
            model.add_transition(
                spec.trigger,
                spec.from_state,
                spec.to_state,
                spec.probability,
                _with_args(spec.callback, spec.callback_args) if callbacks else None,
                chosen,
                profile=spec.profile,
                resource=spec.resource,
                hold=spec.hold,
                delay=spec.delay,
                rate_attribute=spec.rate_attribute,
            )
        return model.at_tick(self.tick_ms)

    def subject_factory(self, seed: int) -> Callable[[], Any]:
        """A fresh subject factory for a run with `seed`."""
        return self.subjects.make_factory(seed)

    def live_settings(
        self,
        *,
        live: bool | None = None,
        speed: float | None = None,
        max_lag_ms: int | None = None,
        on_lag: str | None = None,
        until_stopped: bool | None = None,
    ) -> LiveSpec:
        """The file's `live` settings with the given ones (not None) in their place.

        ``until_stopped`` applies only when live mode is on; asking for it explicitly without
        live mode is a `ModelError`.
        """
        changes: dict[str, Any] = {
            "enabled": live,
            "speed": speed,
            "max_lag_ms": max_lag_ms,
            "on_lag": on_lag,
            "until_stopped": until_stopped,
        }
        settings = dataclasses.replace(
            self.live, **{k: v for k, v in changes.items() if v is not None}
        )
        if settings.on_lag not in _ON_LAG:
            raise ModelError(f"on_lag must be one of {', '.join(_ON_LAG)}, got {on_lag!r}")
        if until_stopped and not settings.enabled:
            raise ModelError(
                "running until stopped needs live mode (live: {enabled: true}, or --live)"
            )
        return settings

    def _churn_sinks(self, sinks: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
        if self.churn is None:
            return []
        if isinstance(sinks, Mapping):
            return [sinks[name] for name in self.churn_sinks if name in sinks]
        return list(sinks)

    def options(
        self,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        **overrides: Any,
    ) -> tuple[RunOptions, LiveOptions]:
        """The run settings of this file with `overrides` in their place, as the frozen
        `RunOptions` and `LiveOptions` a `Simulation` takes.

        Args:
            sinks: the built sinks (as in `build_model`) that churn events go to; None
                leaves the churn transitions without sinks.
            overrides: any of `RUN_OVERRIDES`; None means "as the file says". ``seed``
                replaces the file's seed; when neither gives one the options carry
                ``seed=None`` and the engine chooses (``DOGESIM_SEED``, else the global
                `random`). ``live``, ``speed``, ``max_lag_ms``, ``on_lag`` and
                ``until_stopped`` replace the file's ``live:`` settings, ``jitter`` and
                ``record_every`` its keys of those names, ``checkpoint_path`` and
                ``checkpoint_every`` its ``checkpoint:`` block, ``progress`` is called with
                the ticks done.

        Raises:
            ModelError: an override that is not a run setting (named, with the near
                miss), or a combination that means nothing (``until_stopped`` off-line).
        """
        given = _check_overrides(self.path or self.name, overrides)
        settings = self.live_settings(
            live=given.get("live"),
            speed=given.get("speed"),
            max_lag_ms=given.get("max_lag_ms"),
            on_lag=given.get("on_lag"),
            until_stopped=given.get("until_stopped"),
        )
        wall_clock = settings.enabled and settings.timestamps == "wall"
        run = RunOptions(
            ticks=None if settings.enabled and settings.until_stopped else self.ticks,
            tick_ms=self.tick_ms,
            timestamp_start=None if wall_clock else self.timestamp_start,
            seed=given.get("seed", self.seed),
            jitter=given.get("jitter", self.jitter),
            arrivals=self.arrivals,
            arrivals_profile=self.arrivals_profile,
            churn=self.churn,
            churn_sinks=tuple(self._churn_sinks(sinks if sinks is not None else {})),
            record_every=given.get("record_every", self.record_every),
            progress=given.get("progress"),
            checkpoint_path=given.get("checkpoint_path", self.checkpoint_path),
            checkpoint_every=given.get("checkpoint_every", self.checkpoint_every),
        )
        live = LiveOptions(
            enabled=settings.enabled,
            speed=settings.speed,
            max_lag_ms=settings.max_lag_ms,
            on_lag=settings.on_lag,
        )
        return run, live

    def simulation(
        self,
        *,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        callbacks: bool = True,
        **overrides: Any,
    ) -> Simulation:
        """A ready `Simulation` of this model file.

        Args:
            sinks: as in `build_model` (None builds the file's sinks); churn events go to
                the file's churn sinks, or to every sink of a list.
            callbacks: attach the callbacks.
            overrides: run settings that replace the file's (see `options`).

        The subject factory is seeded with the run's seed, which the engine chooses when
        neither the file nor `overrides` gives one.
        """
        # Refuse an unknown setting before any sink is opened.
        _check_overrides(self.path or self.name, overrides)
        built = self.build_sinks() if sinks is None else sinks
        try:
            model = self.build_model(built, callbacks=callbacks)
            run, live = self.options(built, **overrides)
            factory = _DeferredFactory()
            simulation = Simulation(
                model,
                self.subjects.count,
                subject_factory=factory,
                options=run,
                live=live,
            )
            factory.target = self.subject_factory(simulation.seed)
            return simulation
        except BaseException:
            _close_quietly(built.values() if isinstance(built, Mapping) else built)
            raise

    def resume(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        progress: Callable[[int], None] | None = None,
        callbacks: bool = True,
        live: bool | None = None,
        speed: float | None = None,
        max_lag_ms: int | None = None,
        on_lag: str | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | str | None = None,
        allow_pickle: bool = False,
    ) -> Simulation:
        """A `Simulation` that continues the run saved in `checkpoint` (`Simulation.checkpoint`).

        Every subject comes from the checkpoint, and the file's run settings must be the
        checkpointed ones: its tick, start, seed (when it gives one), ticks, jitter,
        record_every and subject count are checked, and a difference is named. The file's
        sinks are built again with file sinks opened for appending, so the output of the
        two runs together equals that of an uninterrupted run. Live settings may change.

        Args:
            checkpoint: the file `Simulation.checkpoint` wrote.
            sinks: as in `build_model`; None builds the file's sinks in append mode.
            progress, callbacks, live, speed, max_lag_ms, on_lag: as in `simulation`.
            checkpoint_path, checkpoint_every: periodic checkpoints of the resumed run
                (None: the file's ``checkpoint:`` block).
            allow_pickle: load subjects the checkpoint stores as a pickle; that runs code
                from the file, so only for a checkpoint you trust.

        Raises:
            RunError: the checkpoint is missing, unreadable, of another model or of other
                run settings.
        """
        path = os.fspath(checkpoint)
        if not Path(path).is_file():
            raise RunError(f"{path}: no such checkpoint file")
        built = self.build_sinks(append=True) if sinks is None else sinks
        try:
            model = self.build_model(built, callbacks=callbacks)
            settings = self.live_settings(
                live=live, speed=speed, max_lag_ms=max_lag_ms, on_lag=on_lag
            )
            factory = _DeferredFactory() if self.arrivals is not None else None
            expected, _ = self.options(
                built,
                checkpoint_path=checkpoint_path,
                checkpoint_every=checkpoint_every,
            )
            try:
                simulation = Simulation.resume(
                    path,
                    model,
                    progress=progress,
                    live=settings.enabled,
                    speed=settings.speed,
                    arrivals=self.arrivals,
                    arrivals_profile=self.arrivals_profile,
                    churn=self.churn,
                    churn_sinks=self._churn_sinks(built),
                    subject_factory=factory,
                    expected=expected,
                    subjects=self.subjects.count,
                    checkpoint_path=expected.checkpoint_path,
                    checkpoint_every=expected.checkpoint_every,
                    allow_pickle=allow_pickle,
                )
            except OSError as exc:
                raise RunError(f"{path} cannot be read as a dogesim checkpoint: {exc}") from exc
            except ModelError as exc:
                raise RunError(f"{path}: cannot resume: {exc}") from None
            simulation.on_lag = settings.on_lag
            if settings.max_lag_ms is not None:
                simulation.max_lag_ms = float(settings.max_lag_ms)
            if factory is not None:
                # Newcomers must continue where the interrupted run's factory was: make it
                # again with the run's seed and create (and drop) as many subjects as were
                # made. The global RNGs this may touch are restored from the checkpoint when
                # the run starts.
                target = self.subject_factory(simulation.seed)
                for _ in range(len(simulation.subjects)):
                    target()
                factory.target = target
            return simulation
        except BaseException:
            _close_quietly(built.values() if isinstance(built, Mapping) else built)
            raise

    def run(self, **kwargs: Any) -> RunResult:
        """Build the simulation (see `simulation` for the arguments) and run it."""
        return self.simulation(**kwargs).run()

    def summary(self) -> str:
        """One line for humans: states, transitions, subjects, ticks, sinks, online settings."""
        sinks = ", ".join(f"{n} ({self.sinks[n].describe()})" for n in self.used_sinks())
        extras = []
        if self.arrivals is not None:
            shaped = " (calendar-shaped)" if self.arrivals_profile is not None else ""
            extras.append(f"arrivals {_chance_text(self.arrivals, ' per tick')}{shaped}")
        if self.churn is not None:
            extras.append(f"churn {_chance_text(self.churn, '% per tick')}")
        if self.resources:
            extras.append("resources " + ", ".join(f"{k}={v}" for k, v in self.resources.items()))
        if any(t.profile is not None for t in self.transitions):
            extras.append("calendar profiles")
        if self.jitter:
            extras.append("jitter")
        if self.live.enabled:
            extras.append(f"live x{self.live.speed:g}")
        if self.shards is not None:
            extras.append(f"{self.shards} shards")
        if self.checkpoint_every is not None:
            extras.append(f"checkpoint every {self.checkpoint_every:,} ticks")
        more = f"; {', '.join(extras)}" if extras else ""
        return redact.mask(
            f"{self.name}: {len(self.states)} states, {len(self.transitions)} transitions, "
            f"{self.subjects.count} subjects x {self.ticks} ticks of "
            f"{format_duration(self.tick_ms)} from {_format_timestamp(self.timestamp_start)}, "
            f"seed {self.seed if self.seed is not None else 'random'}; sinks: {sinks or 'none'}"
            f"{more}"
        )


def _with_args(
    callback: Callable[..., Any] | None, args: Mapping[str, Any]
) -> Callable[..., Any] | None:
    """`callback` called with the model file's ``args:`` after (subject, transition)."""
    if callback is None or not args:
        return callback
    return functools.partial(callback, **args)


def _chance_text(value: float | Rate, unit: str) -> str:
    return str(value) if isinstance(value, Rate) else f"{value:g}{unit}"


def _close_quietly(sinks: Iterable[Any]) -> None:
    """Close sinks after a failure to build the run (their own errors would hide it)."""
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def _read_transitions(
    src: _Source,
    reader: _Reader,
    states: Sequence[str],
    sink_names: Sequence[str],
    default_sinks: tuple[str, ...],
    model_name: str,
    *,
    tick_ms: int,
    probability_tick: int | None,
    profiles: Mapping[str, Profile],
    resources: Mapping[str, int],
) -> list[TransitionSpec]:
    items = reader.sequence("transitions")
    known = frozenset(states)
    out: list[TransitionSpec] = []
    check = Model(
        states,
        states[0],
        name=model_name,
        tick_ms=probability_tick or tick_ms,
        resources=dict(resources),
    )
    for i, item in enumerate(items):
        path = f"transitions[{i}]"
        line = items.item_lines[i]
        if not isinstance(item, _Map):
            raise src.error(
                line, path, f"{_describe(item)}: give a mapping with {', '.join(_TRANSITION_KEYS)}"
            )
        t = _Reader(src, item, path)
        t.check_keys(_TRANSITION_KEYS, ("trigger", "from", "to", "probability"))
        trigger = t.string("trigger")
        ends = {}
        for key in ("from", "to"):
            state = t.string(key)
            if state not in known:
                hint = difflib.get_close_matches(state, states, n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise t.error(key, f"{state!r} is not a state{maybe}; states: {', '.join(states)}")
            ends[key] = state
        probability = _read_chance(t, "probability")
        callback = None
        callback_path = None
        args = read_args(t, "args") if t.has("args") else {}
        if args and not t.has("callback"):
            raise t.error("args", "args are keyword arguments for a callback; add callback:")
        if t.has("callback"):
            callback = _callable_at(t, "callback")
            _check_call(
                t, "callback", callback, None, None, as_="callback(subject, transition)", **args
            )
            callback_path = t.string("callback")
        chosen = _sink_names(t, "sinks", sink_names, default_sinks)
        profile = None
        profile_name = None
        if t.has("profile"):
            profile = _profile_at(t, "profile", profiles)
            raw = t.raw("profile")
            profile_name = str(raw) if isinstance(raw, str) else None
        resource = None
        if t.has("resource"):
            resource = t.string("resource")
            if resource not in resources:
                hint = difflib.get_close_matches(resource, list(resources), n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise t.error(
                    "resource",
                    f"resource {resource!r} is not declared{maybe}; resources under "
                    f"'resources:' are {', '.join(resources) or 'none'} (e.g. resources: "
                    f"{{{resource}: 5}})",
                )
        hold: int | RandomHold = 1
        if t.has("hold"):
            if resource is None:
                raise t.error("hold", "hold needs a resource to hold; add resource: NAME")
            hold = _read_hold(t, tick_ms)
        spec = TransitionSpec(
            trigger,
            ends["from"],
            ends["to"],
            probability,
            callback,
            callback_path,
            chosen,
            t.optional_string("description"),
            line,
            profile,
            profile_name,
            resource,
            hold,
            read_law(t, "delay") if t.has("delay") else None,
            t.string("rate_attribute") if t.has("rate_attribute") else None,
            args,
        )
        try:
            check.add_transition(
                trigger,
                spec.from_state,
                spec.to_state,
                probability,
                profile=profile,
                resource=resource,
                hold=hold,
                delay=spec.delay,
                rate_attribute=spec.rate_attribute,
            )
        except ModelError as exc:
            raise src.error(line, path, str(exc)) from None
        out.append(spec)
    return out


def _check_run(spec: ModelSpec, src: _Source, top: _Reader) -> None:
    """Check what only the whole run shows: chances rescaled to the run's tick, churn added
    to every state, and calendar profiles at their peaks, each at most 100% per tick."""
    try:
        model = spec.build_model({}, callbacks=False)
    except ModelError as exc:
        raise top.error(
            "tick", f"rescaled to ticks of {format_duration(spec.tick_ms)}: {exc}"
        ) from None
    try:
        effective = Simulation(
            model,
            max(spec.subjects.count, 1),
            ticks=spec.ticks,
            tick_ms=spec.tick_ms,
            seed=0,
            seed_globals=False,
            arrivals=spec.arrivals,
            churn=spec.churn,
        ).model
    except ModelError as exc:
        raise top.error("churn" if spec.churn is not None else None, str(exc)) from None
    for state in effective.states:
        outgoing = effective.outgoing(state)
        peak = sum(t.probability * (t.profile.peak if t.profile else 1.0) for t in outgoing)
        if peak > 100 + 1e-9:
            profiled = [
                (i, t)
                for i, t in enumerate(spec.transitions)
                if t.from_state == state and t.profile is not None
            ]
            i, worst = profiled[-1]
            raise src.error(
                worst.line,
                f"transitions[{i}].profile",
                f"state {state!r}: at the peaks of their calendar profiles the outgoing "
                f"probabilities reach {peak:g}% per tick, at most 100%; lower the "
                "probabilities or the profile's multipliers",
            )


def _parse(
    text: str,
    source: str,
    directory: Path,
    *,
    subjects: int | None,
    ticks: int | None,
    seed: int | None,
    environ: Mapping[str, str] | None,
) -> ModelSpec:
    src = _Source(source, directory, os.environ if environ is None else environ)
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ModelError(f"{source}:{line}: this is not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{source}: this is not valid YAML: {exc}") from None
    if not isinstance(data, _Map):
        raise ModelError(
            f"{source}:1: a model file is a mapping with keys {', '.join(_TOP_KEYS)}; "
            f"got {type(data).__name__}"
        )
    top = _Reader(src, data, "")
    # Unknown keys first: nothing under a key that is refused anyway is interpolated.
    top.check_keys(_TOP_KEYS, _TOP_REQUIRED)
    _interpolate(data, src, data.line, "")

    name = top.string("name") if top.has("name") else Path(source).stem
    states = top.string_list("states")
    if not states:
        raise top.error("states", "the state list is empty; give at least one state")
    seen_states: set[str] = set()
    for state in states:  # a set, not states.count(): linear in the number of states
        if state in seen_states:
            raise top.error("states", f"state {state!r} is listed twice")
        seen_states.add(state)
    initial = read_initial(top, states)
    dwell = read_dwell(top, states)
    try:
        tick_ms = _duration_ms(top.raw("tick"))
    except ValueError as exc:
        raise top.error("tick", str(exc)) from None
    probability_tick = None
    if top.has("probability_tick"):
        try:
            probability_tick = _duration_ms(top.raw("probability_tick"))
        except ValueError as exc:
            raise top.error("probability_tick", str(exc)) from None
    n_ticks = top.integer("ticks", minimum=1, maximum=MAX_TICKS)
    start = 0
    if top.has("start"):
        try:
            start = parse_timestamp(top.raw("start"))
        except ValueError as exc:
            raise top.error("start", str(exc)) from None
    file_seed = top.integer("seed", minimum=0) if top.has("seed") else None

    sink_specs: dict[str, SinkSpec] = {}
    if top.has("sinks"):
        sinks = top.mapping("sinks")
        for sink_name in sinks.node:
            if not isinstance(sink_name, str) or not sink_name:
                raise sinks.error(str(sink_name), f"sink name {_describe(sink_name)} is not text")
            sink_specs[sink_name] = _guard_sink(_read_sink(src, sinks, sink_name))
    default_sinks: tuple[str, ...] = ()
    if top.has("default_sinks"):
        default_sinks = tuple(top.string_list("default_sinks"))
        for sink_name in default_sinks:
            if sink_name not in sink_specs:
                raise top.error(
                    "default_sinks",
                    f"no sink named {sink_name!r}; sinks defined under "
                    f"'sinks:' are {', '.join(sink_specs) or 'none'}",
                )
    subjects_spec = _read_subjects(src, top)
    profiles = _read_profiles(src, top)
    resources = _read_resources(top)
    transitions = _read_transitions(
        src,
        top,
        states,
        list(sink_specs),
        default_sinks,
        name,
        tick_ms=tick_ms,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
    )

    arrivals: float | Rate | None = None
    arrivals_profile = None
    if top.has("arrivals"):
        if isinstance(top.raw("arrivals"), _Map):
            section = top.mapping("arrivals")
            section.check_keys(("rate", "profile"), ("rate",))
            arrivals = _read_arrival_rate(section, "rate")
            if section.has("profile"):
                arrivals_profile = _profile_at(section, "profile", profiles)
        else:
            arrivals = _read_arrival_rate(top, "arrivals")
    if subjects_spec.count == 0 and arrivals is None:
        raise top.mapping("subjects").error(
            "count", "0 subjects and no arrivals: give count >= 1, or arrivals: (e.g. 30 per hour)"
        )
    churn: float | Rate | None = None
    churn_sinks = default_sinks
    if top.has("churn"):
        if isinstance(top.raw("churn"), _Map):
            section = top.mapping("churn")
            section.check_keys(("rate", "sinks"), ("rate",))
            churn = _read_chance(section, "rate")
            churn_sinks = _sink_names(section, "sinks", list(sink_specs), default_sinks)
        else:
            churn = _read_chance(top, "churn")

    spec = ModelSpec(
        path=source,
        name=name,
        description=top.optional_string("description"),
        states=tuple(states),
        initial_state=initial,
        dwell=dwell,
        transitions=transitions,
        tick_ms=tick_ms,
        ticks=n_ticks,
        timestamp_start=start,
        seed=file_seed,
        subjects=subjects_spec,
        sinks=sink_specs,
        default_sinks=default_sinks,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
        arrivals=arrivals,
        arrivals_profile=arrivals_profile,
        churn=churn,
        churn_sinks=churn_sinks,
        jitter=top.boolean("jitter", False),
        record_every=_read_record_every(top, tick_ms) if top.has("record_every") else None,
        live=_read_live(top),
        shards=top.integer("shards", minimum=1, maximum=MAX_SUBJECTS)
        if top.has("shards")
        else None,
    )
    if top.has("checkpoint"):
        spec.checkpoint_path, spec.checkpoint_every = _read_checkpoint(top, tick_ms)
    _check_run(spec, src, top)
    return _override(spec, subjects=subjects, ticks=ticks, seed=seed)


def _read_record_every(top: _Reader, tick_ms: int) -> int:
    """``record_every:``: a whole number of ticks, or a duration (``1h``) that is a whole
    number of ticks."""
    return _read_ticks(top, "record_every", tick_ms)


def _read_checkpoint(top: _Reader, tick_ms: int) -> tuple[str, int | None]:
    """``checkpoint: {path: FILE, every: 10m}``: where periodic checkpoints go and the
    ticks between two (a whole number of ticks, or a duration of whole ticks)."""
    section = top.mapping("checkpoint")
    section.check_keys(("path", "every"), ("path",))
    path = section.optional_string("path")
    if not path:
        raise section.error("path", "give the file periodic checkpoints are written to")
    every = _read_ticks(section, "every", tick_ms) if section.has("every") else None
    return path, every


def _read_ticks(reader: _Reader, key: str, tick_ms: int) -> int:
    """`key`: a whole number of ticks, or a duration (``1h``) that is a whole number of
    ticks."""
    raw = reader.raw(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return reader.integer(key, minimum=1, maximum=MAX_TICKS)
    if not isinstance(raw, str):
        raise reader.error(
            key,
            f"{_describe(raw)}: give a number of ticks (60) or a duration (1h, 15m)",
        )
    try:
        ms = _duration_ms(raw)
    except ValueError as exc:
        raise reader.error(key, str(exc)) from None
    if ms % tick_ms:
        raise reader.error(
            key,
            f"{raw!r} is not a whole number of ticks of {format_duration(tick_ms)}; give a "
            f"multiple of {format_duration(tick_ms)}",
        )
    return ms // tick_ms


def _guard_sink(sink: SinkSpec) -> SinkSpec:
    """Hide the sink's secrets from reprs and messages, and check now what building it would
    check later (a DB URL), so that validate and run refuse the same files."""
    for value in redact.secret_values(sink.settings):
        redact.register_secret(value)
    sink.settings = redact.SecretDict(sink.settings)
    url = sink.settings.get("url")
    if sink.type == "db" and isinstance(url, str):
        problem = _db_url_problem(url)
        if problem is not None:
            raise ModelError(
                redact.mask(f"{sink.source}:{sink.line}: sinks.{sink.name}.url: {problem}")
            )
    return sink


def _db_url_problem(url: str) -> str | None:
    """What is wrong with a database URL (without showing its password), or None."""
    head, sep, rest = url.partition("://")
    if not sep or not head:
        return (
            f"{redact.mask_url(url)!r} is not a database URL; write "
            "dialect://user:password@host:port/database, e.g. sqlite:///events.db"
        )
    netloc = rest.split("/", 1)[0]
    if netloc.count("@") > 1:
        return (
            "the user or password holds '@': percent-encode it as %40 "
            "(urllib.parse.quote(password, safe=''))"
        )
    host = netloc.rpartition("@")[2]
    if host.startswith("["):  # [IPv6]:port
        port = host.partition("]")[2].removeprefix(":")
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    if port and not (port.isdigit() and int(port) <= 65535):
        return f"the port {port!r} of {redact.mask_url(url)!r} is not a number from 0 to 65535"
    return None


def _arrivals_per_tick(spec: ModelSpec) -> float:
    """New subjects per tick at the peak of the arrivals profile (0 without arrivals)."""
    rate = spec.arrivals
    if rate is None:
        return 0.0
    per_tick = rate.value * spec.tick_ms / rate.period_ms if isinstance(rate, Rate) else rate
    peak = spec.arrivals_profile.peak if spec.arrivals_profile is not None else 1.0
    return float(per_tick) * peak


def _override(
    spec: ModelSpec, *, subjects: int | None, ticks: int | None, seed: int | None
) -> ModelSpec:
    where = spec.path or spec.name
    for label, value, minimum, maximum in (
        ("subjects", subjects, 1, MAX_SUBJECTS),
        ("ticks", ticks, 1, MAX_TICKS),
        ("seed", seed, 0, None),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            upto = f" and <= {maximum:,}" if maximum is not None else ""
            raise ModelError(
                f"{where}: {label} must be a whole number >= {minimum}{upto}, got {value!r}"
            )
    if subjects is not None:
        spec.subjects.count = subjects
    if ticks is not None:
        spec.ticks = ticks
    if seed is not None:
        spec.seed = seed
    newcomers = _arrivals_per_tick(spec) * spec.ticks
    if spec.subjects.count + newcomers > MAX_SUBJECTS:
        raise ModelError(
            f"{where}: arrivals: about {newcomers:.3g} subjects would arrive over "
            f"{spec.ticks} ticks (at the peak rate), more than {MAX_SUBJECTS:,} subjects in "
            "all; lower the rate or run fewer ticks"
        )
    end = spec.timestamp_start + spec.ticks * spec.tick_ms
    if end > MAX_TIMESTAMP:
        raise ModelError(
            f"{where}: start + ticks x tick ends at epoch ms {end}, after the calendar's end "
            f"(9999-12-31, epoch ms {MAX_TIMESTAMP}); start earlier, or use fewer or "
            "shorter ticks"
        )
    return spec


def load_model_file(
    path: str | os.PathLike[str],
    *,
    subjects: int | None = None,
    ticks: int | None = None,
    seed: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelSpec:
    """Read and validate the model file at `path`.

    Args:
        path: the YAML file.
        subjects: overrides ``subjects.count``.
        ticks: overrides ``ticks``.
        seed: overrides ``seed``.
        environ: the variables for ``${...}`` (default: `os.environ`).

    Raises:
        ModelError: the file is missing, not YAML, or invalid; the message starts with
            ``file:line: key:`` and says what would be right.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{source}: no such model file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: cannot read the model file: {exc}") from None
    return _parse(
        text,
        source,
        Path(source).resolve().parent,
        subjects=subjects,
        ticks=ticks,
        seed=seed,
        environ=environ,
    )


def load_model_text(
    text: str,
    *,
    source: str = "<model>",
    subjects: int | None = None,
    ticks: int | None = None,
    seed: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelSpec:
    """Like `load_model_file`, from YAML text; `source` names it in messages."""
    return _parse(
        text, source, Path.cwd(), subjects=subjects, ticks=ticks, seed=seed, environ=environ
    )
