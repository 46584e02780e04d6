"""`ModelSpec`: a whole model file parsed and checked, and the `Simulation` it builds;
`load_model_file` and `load_model_text`.

- `ModelSpec`: the dataclass of a loaded file; its methods build sinks, the model, the run
  settings and the simulation through `dogesim.modelfile.build` and `dogesim.modelfile.runs`.
- `load_model_file(path)`, `load_model_text(text)`: read one (`dogesim.modelfile.parse`).
- Kept importable from here: `TransitionSpec` (`dogesim.modelfile.transitions`),
  `RUN_OVERRIDES` (`dogesim.modelfile.keys`), `_arrivals_per_tick`
  (`dogesim.modelfile.runkeys`).

`RUN_OVERRIDES` are the run settings a caller (the CLI, a notebook) may override per run;
`ModelSpec.options` turns the file's settings plus those overrides into the frozen
`RunOptions` and `LiveOptions` that `Simulation(options=..., live=...)` takes, so a setting
travels as one object from the command line to the engine.

Where a model-file key lives: the tables of keys in `keys`; the top level in `parse`;
``tick``/``ticks``/``start``/``seed``/``record_every``/``checkpoint`` in `runkeys`;
``sinks``/``default_sinks`` in `sinkkeys`; ``transitions`` in `transitions`;
``arrivals``/``churn`` in `flows`; ``subjects`` in `subjects`; ``live``, ``profiles``,
``resources`` in `online`; ``dwell``, mixed ``initial_state`` and laws in `cohorts`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogesim import redact
from dogesim.engine import LiveOptions, RunOptions, RunResult, Simulation
from dogesim.errors import ModelError
from dogesim.laws import Law
from dogesim.model import Model
from dogesim.modelfile.build import Sinks, build_model, build_sinks
from dogesim.modelfile.keys import RUN_OVERRIDES
from dogesim.modelfile.online import LiveSpec
from dogesim.modelfile.runkeys import _arrivals_per_tick
from dogesim.modelfile.runs import live_settings, new_simulation, resume_simulation, run_options
from dogesim.modelfile.sinks import SinkSpec
from dogesim.modelfile.source import _format_timestamp
from dogesim.modelfile.subjects import SubjectsSpec
from dogesim.modelfile.transitions import TransitionSpec
from dogesim.rates import Profile, Rate, format_duration

__all__ = [
    "RUN_OVERRIDES",
    "ModelSpec",
    "TransitionSpec",
    "_arrivals_per_tick",
    "load_model_file",
    "load_model_text",
]


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
        tick_ms: tick length in milliseconds (calendar ticks: their mean length).
        calendar: months per tick for calendar ticks (``tick: 1mo`` / ``1y``), stamped at
            month starts; None for a fixed tick.
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
    calendar: int | None = None

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
        return build_sinks(self, names, append=append)

    def build_model(self, sinks: Sinks | None = None, *, callbacks: bool = True) -> Model:
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
        return build_model(
            self, self.build_sinks() if sinks is None else sinks, callbacks=callbacks
        )

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
        changes = {
            "enabled": live,
            "speed": speed,
            "max_lag_ms": max_lag_ms,
            "on_lag": on_lag,
            "until_stopped": until_stopped,
        }
        return live_settings(self, changes)

    def options(
        self, sinks: Sinks | None = None, **overrides: Any
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
        return run_options(self, sinks, overrides)

    def simulation(
        self, *, sinks: Sinks | None = None, callbacks: bool = True, **overrides: Any
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
        return new_simulation(self, sinks, callbacks, overrides)

    def resume(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        sinks: Sinks | None = None,
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
        return resume_simulation(
            self,
            checkpoint,
            sinks=sinks,
            progress=progress,
            callbacks=callbacks,
            live={"live": live, "speed": speed, "max_lag_ms": max_lag_ms, "on_lag": on_lag},
            checkpoints={"checkpoint_path": checkpoint_path, "checkpoint_every": checkpoint_every},
            allow_pickle=allow_pickle,
        )

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


def _chance_text(value: float | Rate, unit: str) -> str:
    return str(value) if isinstance(value, Rate) else f"{value:g}{unit}"


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
    from dogesim.modelfile.parse import _parse  # parse builds ModelSpec: imported late

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
    from dogesim.modelfile.parse import _parse

    return _parse(
        text, source, Path.cwd(), subjects=subjects, ticks=ticks, seed=seed, environ=environ
    )
