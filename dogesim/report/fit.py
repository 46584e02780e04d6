"""Calibration: fit each transition's per-tick probability from an event log.

- `fit_event_log(events, ...)`: maximum-likelihood probabilities, Wilson intervals and the
  log-likelihood from a log of (subject, timestamp, from_state, to_state[, trigger]).
- `FitResult`: the fit: a comparison table (fitted vs configured), the fitted `Model`, a
  model file (`write_model_file`) and a plot.
- `FittedTransition`: one row of it.
- `wilson_interval(k, n, confidence)`: the score interval for a binomial proportion.

The likelihood. In every tick a subject in state ``s`` makes one trial: it takes transition
``i`` with probability ``p_i`` or stays with ``1 - sum(p_i)``. A complete log of a window of
``T`` ticks tells, for every subject, its state in every tick of the window: it is in the
``from_state`` of its first event from the window start until that event (had it moved, the
log would show it), then in each event's ``to_state`` until the next, and in its last state
until the window ends. So the window is censored at both ends without bias: the chain is
memoryless, and whatever happened before the window or after it does not enter. With ``E_s``
the subject-ticks spent in ``s`` (the exposure: trials in ``s``) and ``n_i`` the events of
transition ``i``, the likelihood is multinomial per state and the MLE is ``p_i = n_i / E_s``,
with log-likelihood ``sum_i n_i log p_i + sum_s (E_s - sum_i n_i) log(1 - sum_i p_i)``.

Subjects with no event in the window are in the log's population but not in the log: give
their number (``subjects`` = population size, they are then taken to sit in
``silent_state``, by default the initial state, for the whole window) or their states
(``silent``). Leaving them out inflates the estimates for the states they sit in.

The intervals. Each ``n_i`` is binomial given ``E_s`` (a margin of the multinomial), and
the probabilities are often tiny (0.01% per tick) with few events, where the Wald interval
``p +/- z sqrt(p(1-p)/E)`` collapses to zero width at ``n_i = 0`` and under-covers. The
Wilson score interval inverts the score test instead: closed form, inside [0, 1], non-empty
at ``n_i = 0``, and with coverage close to nominal down to a handful of events (Brown, Cai &
DasGupta 2001), which the coverage test in ``tests/unit/test_fit.py`` checks. A profile
likelihood interval behaves similarly but needs root finding per transition.

Vetoes: a callback that vetoes an attempt leaves no event, so what is fitted is the
effective probability ``p_i x P(accepted)``, lower than the configured one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dogesim.errors import DogesimError
from dogesim.model import Model, Transition
from dogesim.report.tables import read_event_log

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dogesim.modelfile import ModelSpec

__all__ = ["FitResult", "FittedTransition", "fit_event_log", "wilson_interval"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion with `k` successes in `n` trials.

    Returns ``(0, 1)`` when there are no trials.
    """
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    z2 = z * z
    p = k / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


@dataclass
class FittedTransition:
    """One fitted transition.

    Attributes:
        from_state, trigger, to_state: the transition.
        events: its events in the window.
        exposure: subject-ticks spent in `from_state` (trials at risk).
        probability: the MLE, a fraction per tick.
        ci_low, ci_high: the confidence interval (fractions).
        configured: the configured probability (fraction) when a model was given, else None.
    """

    from_state: str
    trigger: str
    to_state: str
    events: int
    exposure: int
    probability: float
    ci_low: float
    ci_high: float
    configured: float | None = None

    @property
    def covers_configured(self) -> bool | None:
        """Whether the interval contains the configured probability (None if unknown)."""
        if self.configured is None:
            return None
        return self.ci_low <= self.configured <= self.ci_high


@dataclass
class FitResult:
    """The outcome of `fit_event_log`."""

    states: tuple[str, ...]
    initial_state: str
    tick_ms: int
    window_start: int
    ticks: int
    subjects: int
    transitions: list[FittedTransition]
    exposure: dict[str, int]
    log_likelihood: float
    confidence: float
    events: int
    silent: dict[str, int] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Fitted vs configured, one row per transition, probabilities in % per tick."""
        rows = []
        for t in self.transitions:
            rows.append(
                {
                    "from_state": t.from_state,
                    "trigger": t.trigger,
                    "to_state": t.to_state,
                    "events": t.events,
                    "exposure": t.exposure,
                    "fitted_pct": 100 * t.probability,
                    "ci_low_pct": 100 * t.ci_low,
                    "ci_high_pct": 100 * t.ci_high,
                    "configured_pct": (
                        100 * t.configured if t.configured is not None else float("nan")
                    ),
                    "covers_configured": t.covers_configured,
                }
            )
        return pd.DataFrame(rows)

    def to_model(self, name: str = "fitted") -> Model:
        """The fitted chain as a `Model` (probabilities in %, no callbacks, no sinks)."""
        model = Model(self.states, self.initial_state, name=name)
        totals: dict[str, float] = {}
        for t in self.transitions:
            percent = 100 * t.probability
            # Keep each state's sum at most 100% despite floating-point rounding.
            room = 100.0 - totals.get(t.from_state, 0.0)
            percent = min(percent, max(room, 0.0))
            totals[t.from_state] = totals.get(t.from_state, 0.0) + percent
            model.add(Transition(t.trigger, t.from_state, t.to_state, percent))
        return model

    def write_model_file(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        name: str = "fitted",
        template: ModelSpec | None = None,
        seed: int | None = None,
    ) -> str:
        """Write the fitted model as a model file; return its text.

        Args:
            path: where to write (None only returns the text).
            name: the model's name.
            template: a loaded model file whose subjects and seed to keep (the observed
                configuration); without one the file has `subjects` plain subjects.
            seed: the seed to write.
        """
        from dogesim.modelfile import dump_model

        notes = {
            (t.from_state, t.trigger): (
                f"fitted: {t.events} events / {t.exposure} subject-ticks; "
                f"{self.confidence:.0%} CI [{100 * t.ci_low:.6g}%, {100 * t.ci_high:.6g}%]"
                + (f"; configured {100 * t.configured:g}%" if t.configured is not None else "")
            )
            for t in self.transitions
        }
        header = (
            f"Fitted by dogesim fit from {self.events} events of {self.subjects} subjects over "
            f"{self.ticks} ticks; log-likelihood {self.log_likelihood:.3f}.\n"
            "Probabilities are maximum-likelihood estimates (events / subject-ticks at risk)."
        )
        return dump_model(
            self.to_model(name),
            path,
            tick_ms=self.tick_ms,
            ticks=self.ticks,
            subjects=self.subjects,
            timestamp_start=self.window_start,
            seed=seed if seed is not None else (template.seed if template else None),
            name=name,
            description=(
                f"{template.name} fitted from an event log"
                if template
                else "fitted from an event log"
            ),
            descriptions=notes,
            header=header,
            subjects_section=_subjects_section(template) if template else None,
        )

    def plot(self) -> Figure:
        """Fitted vs configured probabilities with intervals (see `plots.plot_fit`)."""
        from dogesim.report.plots import plot_fit

        return plot_fit(self)


def _subjects_section(template: ModelSpec) -> dict[str, Any]:
    """The template's way of making subjects (its factory or attributes), without a count."""
    section: dict[str, Any] = {}
    if template.subjects.factory_path:
        section["factory"] = template.subjects.factory_path
        if template.subjects.factory_args:
            section["factory_args"] = template.subjects.factory_args
    elif template.subjects.attributes:
        section["attributes"] = {k: d.describe() for k, d in template.subjects.attributes.items()}
    return section


def _configured(model: Model | ModelSpec | None) -> dict[tuple[str, str], tuple[str, float]]:
    if model is None:
        return {}
    bare = model if isinstance(model, Model) else model.model
    return {
        (t.from_state, t.trigger): (t.to_state, t.probability / 100.0) for t in bare.transitions
    }


def fit_event_log(
    events: Any,
    *,
    tick_ms: int,
    states: Sequence[str] | None = None,
    initial_state: str | None = None,
    window_start: int | None = None,
    window_end: int | None = None,
    ticks: int | None = None,
    subjects: int | None = None,
    silent: Mapping[str, int] | None = None,
    silent_state: str | None = None,
    model: Model | ModelSpec | None = None,
    confidence: float = 0.95,
    fields: Mapping[str, str] | None = None,
) -> FitResult:
    """Fit per-tick transition probabilities by maximum likelihood.

    Args:
        events: the log: a ``.jsonl``/``.csv`` path, a DataFrame or records (see
            `tables.read_event_log`), or an already normalised DataFrame.
        tick_ms: the tick length in ms.
        states: the states (default: the model's, else those seen in the log).
        initial_state: the model's initial state (default: the model's, else `states[0]`).
        window_start: the first tick's timestamp (default: the model file's start, else the
            first event's); events before it are ignored.
        window_end: the end of the window, exclusive (or give `ticks`); default: the tick
            after the last event.
        ticks: the window length in ticks.
        subjects: the population size; subjects without events in the window sit in
            `silent_state` throughout. Without it (and `silent`), every subject is assumed to
            appear in the log.
        silent: instead of `subjects`: how many event-less subjects sit in each state.
        silent_state: where event-less subjects sit (default: the initial state).
        model: the configured model (a `Model` or `ModelSpec`), for comparison, for the
            states and to name transitions the log does not show.
        confidence: the interval's confidence level.
        fields: field names for `read_event_log` (``subject``, ``timestamp``, ``trigger``,
            ``from_state``, ``to_state``).

    Raises:
        DogesimError: the log is inconsistent (a subject's event starts from a state other
            than where its previous event ended, two events of a subject in one tick, an
            unknown state) or the window is empty.
    """
    bare = model if isinstance(model, Model) or model is None else model.model
    frame = read_event_log(events, model=bare, **dict(fields or {}))
    if tick_ms <= 0:
        raise DogesimError(f"tick_ms must be positive, got {tick_ms}")
    if not 0 < confidence < 1:
        raise DogesimError(f"confidence must be between 0 and 1, got {confidence}")
    if states is None:
        if bare is not None:
            states = list(bare.states)
        else:
            seen = pd.unique(pd.concat([frame["from_state"], frame["to_state"]]))
            states = [str(s) for s in seen]
    states = list(states)
    if not states:
        raise DogesimError("no states: give states, a model, or a non-empty log")
    if initial_state is None:
        initial_state = bare.initial_state if bare is not None else states[0]
    if initial_state not in states:
        raise DogesimError(f"initial state {initial_state!r} is not one of {states}")
    unknown = sorted((set(frame["from_state"]) | set(frame["to_state"])) - set(states), key=str)
    if unknown:
        raise DogesimError(f"event log has states {unknown} that are not in {states}")
    if window_start is None:
        if model is not None and not isinstance(model, Model):
            window_start = model.timestamp_start
        elif len(frame):
            window_start = int(frame["timestamp"].min())
        else:
            raise DogesimError("an empty log needs window_start")
    frame = frame[frame["timestamp"] >= window_start]
    tick = (frame["timestamp"].to_numpy(dtype=np.int64) - window_start) // tick_ms
    if ticks is None:
        if window_end is not None:
            ticks = -(-(window_end - window_start) // tick_ms)
        elif len(frame):
            ticks = int(tick.max()) + 1
        else:
            raise DogesimError("an empty window: give ticks or window_end")
    if ticks <= 0:
        raise DogesimError(f"the window has {ticks} ticks; it must have at least one")
    keep = tick < ticks
    frame = frame[keep].copy()
    frame["tick"] = tick[keep]
    index = {s: k for k, s in enumerate(states)}

    # Order by subject then tick (stable: the log's order breaks no ties, a subject has at
    # most one event per tick).
    frame = frame.sort_values(["subject", "tick"], kind="stable").reset_index(drop=True)
    same = frame["subject"].to_numpy()[1:] == frame["subject"].to_numpy()[:-1]
    ticks_arr = frame["tick"].to_numpy(dtype=np.int64)
    src = frame["from_state"].to_numpy()
    dst = frame["to_state"].to_numpy()
    if len(frame) > 1:
        double = same & (ticks_arr[1:] == ticks_arr[:-1])
        if double.any():
            k = int(np.flatnonzero(double)[0])
            raise DogesimError(
                f"event log: subject {frame['subject'].iat[k]!r} has two events in tick "
                f"{ticks_arr[k]} (timestamp {frame['timestamp'].iat[k]}); a subject moves at "
                "most once per tick — is tick_ms right?"
            )
        broken = same & (src[1:] != dst[:-1])
        if broken.any():
            k = int(np.flatnonzero(broken)[0])
            raise DogesimError(
                f"event log: subject {frame['subject'].iat[k]!r} ends in {dst[k]!r} at "
                f"{frame['timestamp'].iat[k]} but its next event starts from {src[k + 1]!r} at "
                f"{frame['timestamp'].iat[k + 1]}; the log is incomplete or out of order"
            )
    first = np.ones(len(frame), dtype=bool)
    first[1:] = ~same
    last = np.ones(len(frame), dtype=bool)
    last[:-1] = ~same
    previous = np.empty(len(frame), dtype=np.int64)
    previous[0:1] = -1
    previous[1:] = ticks_arr[:-1]
    previous[first] = -1
    exposure = np.zeros(len(states), dtype=np.int64)
    # Time in from_state up to and including each event's tick ...
    np.add.at(
        exposure, frame["from_state"].map(index).to_numpy(dtype=np.int64), ticks_arr - previous
    )
    # ... and in the last state until the window ends.
    np.add.at(
        exposure,
        frame["to_state"].map(index).to_numpy(dtype=np.int64)[last],
        ticks - 1 - ticks_arr[last],
    )
    seen_subjects = int(first.sum())
    silent_counts: dict[str, int] = {}
    if silent is not None and subjects is not None:
        raise DogesimError("give either subjects or silent, not both")
    if silent is not None:
        silent_counts = {str(s): int(c) for s, c in silent.items() if c}
    elif subjects is not None:
        if subjects < seen_subjects:
            raise DogesimError(
                f"subjects={subjects} but the log shows {seen_subjects} subjects in the window"
            )
        state = silent_state or initial_state
        if subjects > seen_subjects:
            silent_counts = {state: subjects - seen_subjects}
    for state, count in silent_counts.items():
        if state not in index:
            raise DogesimError(f"silent subjects in unknown state {state!r}; states: {states}")
        if count < 0:
            raise DogesimError(f"silent subjects in {state!r}: {count} is negative")
        exposure[index[state]] += count * ticks

    configured = _configured(model)
    has_trigger = frame["trigger"].notna().all() and len(frame) > 0
    if not has_trigger:
        frame["trigger"] = frame["from_state"].astype(str) + "->" + frame["to_state"].astype(str)
    counts = frame.groupby(["from_state", "trigger"], sort=False).agg(
        events=("tick", "size"), to_state=("to_state", "first"), targets=("to_state", "nunique")
    )
    fitted: dict[tuple[str, str], FittedTransition] = {}
    for (from_state, trigger), row in counts.iterrows():
        if row["targets"] > 1:
            raise DogesimError(
                f"event log: trigger {trigger!r} from {from_state!r} leads to several states; "
                "a transition has one target"
            )
        e = int(exposure[index[from_state]])
        n = int(row["events"])
        conf = configured.get((from_state, trigger))
        low, high = wilson_interval(n, e, confidence)
        fitted[(from_state, trigger)] = FittedTransition(
            from_state,
            trigger,
            str(row["to_state"]),
            n,
            e,
            n / e if e else 0.0,
            low,
            high,
            conf[1] if conf else None,
        )
    for (from_state, trigger), (to_state, p) in configured.items():
        if (from_state, trigger) not in fitted and from_state in index:
            e = int(exposure[index[from_state]])
            low, high = wilson_interval(0, e, confidence)
            fitted[(from_state, trigger)] = FittedTransition(
                from_state, trigger, to_state, 0, e, 0.0, low, high, p
            )
    # Model order first (configured transitions), then the others in state order.
    order = {key: k for k, key in enumerate(configured)}
    rows = sorted(
        fitted.values(),
        key=lambda t: (
            order.get((t.from_state, t.trigger), len(order)),
            index[t.from_state],
            t.trigger,
        ),
    )
    loglik = 0.0
    for state in states:
        outgoing = [t for t in rows if t.from_state == state]
        e = int(exposure[index[state]])
        moved = sum(t.events for t in outgoing)
        loglik += sum(t.events * math.log(t.probability) for t in outgoing if t.events)
        stay = e - moved
        if stay > 0:
            loglik += stay * math.log(stay / e)
    return FitResult(
        states=tuple(states),
        initial_state=initial_state,
        tick_ms=tick_ms,
        window_start=int(window_start),
        ticks=int(ticks),
        subjects=seen_subjects + sum(silent_counts.values()),
        transitions=rows,
        exposure={s: int(exposure[index[s]]) for s in states},
        log_likelihood=loglik,
        confidence=confidence,
        events=len(frame),
        silent=silent_counts,
    )
