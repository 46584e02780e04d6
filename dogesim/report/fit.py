"""Calibration: fit each transition's per-tick probability from an event log.

- `fit_event_log(events, ...)`: maximum-likelihood probabilities, Wilson intervals and the
  log-likelihood from a log of (subject, timestamp, from_state, to_state[, trigger]), with
  an optional population roster, survey weights and calendar-month ticks.
- `fit_observed(observed, ...)`: the same from an `observed.Observed` log.
- `with_laws(result, observed, kernel=..., by=...)`: a fit with a kernel and chances by
  month or age from the same log (what ``fit_event_log(kernel=True, by="month")`` does).
- `fit_by(events, by=COLUMN, ...)`: one fit per group of subjects (`GroupFit`: the
  groups' table and shares, and one model file simulating the mixture, an entity type
  per group).
- `FitResult`: the fit: a comparison table (fitted vs configured), the initial mix, the
  fitted `Model`, a model file (`write_model_file`) and a plot; `with_kernel` adds a
  semi-Markov kernel (dwell kernels, first stays apart), `with_tables` chances by month of
  year or by age, both written to the model and its file.
- `FittedTransition`, `InitialShare`: rows of it.
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

The initial mix. Each subject's state at the window start — from the roster, else the
``from_state`` of its first event (plus the silent subjects' states) — is one multinomial
draw; the shares are the (weighted) proportions, each with a Wilson interval on the
effective sample size. A fit never silently puts everyone in one state: `FitResult.
initial_mix` lists every state seen, and the model file gets ``initial_state: {state:
count, ...}`` whenever more than one state is occupied.

Survey weights. A subject of weight ``w`` counts ``w`` times in every exposure and count, so
the point estimates are those of the population the weights stand for (duplicating a
subject is the same as giving it weight 2). Unequal weights make the estimates noisier than
the raw counts suggest; the intervals use Kish's effective sample size: with ``m_j`` the
subject-ticks subject ``j`` spent in state ``s`` and ``w_j`` its weight, the design effect
is ``deff_s = sum(m) sum(m w^2) / (sum m w)^2`` and the Wilson interval is computed for
``p_i`` with ``n_eff = sum(m) / deff_s`` trials (``k = p_i n_eff``, not an integer). Equal
weights give ``deff = 1`` and the unweighted interval, whatever their scale. This treats
the weights as known and the subjects as independent (no strata or clusters).

Vetoes: a callback that vetoes an attempt leaves no event, so what is fitted is the
effective probability ``p_i x P(accepted)``, lower than the configured one.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from dogesim.calendar_ticks import MEAN_MONTH_MS, calendar_months, month_floor
from dogesim.errors import DogesimError
from dogesim.model import Model, Transition
from dogesim.modelfile.source import _ModelDumper
from dogesim.report.observed import Observed, kish_deff, observe
from dogesim.varying import ByAge, ByMonth, ChanceTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dogesim.modelfile import ModelSpec
    from dogesim.report.spells import Kernel
    from dogesim.report.timevarying import FactorFit

__all__ = [
    "FitResult",
    "FittedTransition",
    "GroupFit",
    "InitialShare",
    "fit_by",
    "fit_event_log",
    "fit_observed",
    "wilson_interval",
    "with_laws",
]


def wilson_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion with `k` successes in `n` trials.

    `k` and `n` may be effective (non-integer) counts. Returns ``(0, 1)`` when there are no
    trials.
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
        events: its events in the window (weighted when the fit has weights).
        exposure: subject-ticks spent in `from_state` (trials at risk; weighted likewise).
        probability: the MLE, a fraction per tick.
        ci_low, ci_high: the confidence interval (fractions).
        configured: the configured probability (fraction) when a model was given, else None.
    """

    from_state: str
    trigger: str
    to_state: str
    events: float
    exposure: float
    probability: float
    ci_low: float
    ci_high: float
    configured: float | None = None
    effective_exposure: float | None = None

    @property
    def covers_configured(self) -> bool | None:
        """Whether the interval contains the configured probability (None if unknown)."""
        if self.configured is None:
            return None
        return self.ci_low <= self.configured <= self.ci_high


@dataclass
class InitialShare:
    """One state's share of the population at the window start.

    Attributes:
        state: the state.
        count: subjects in it (weighted when the fit has weights).
        share: `count` over the population.
        ci_low, ci_high: the Wilson interval of the share (on the effective sample size).
    """

    state: str
    count: float
    share: float
    ci_low: float
    ci_high: float


@dataclass
class FitResult:
    """The outcome of `fit_event_log`.

    `initial_state` is the single state a plain `Model` starts in (the given one, else the
    most common at the window start); `initial_mix` is the estimated distribution, one
    `InitialShare` per state, and `initial_source` says where it comes from (``roster``,
    ``first events`` or ``first events + silent``).
    """

    states: tuple[str, ...]
    initial_state: str
    tick_ms: int
    window_start: int
    ticks: int
    subjects: int
    transitions: list[FittedTransition]
    exposure: dict[str, float]
    log_likelihood: float
    confidence: float
    events: int
    silent: dict[str, int] = field(default_factory=dict)
    initial_mix: list[InitialShare] = field(default_factory=list)
    initial_source: str = "first events"
    weighted: bool = False
    tick: int | str | None = None
    kernel: Kernel | None = None
    tables: FactorFit | None = None

    def initial_counts(self, total: int | None = None) -> dict[str, int]:
        """The initial mix as whole subjects per occupied state, summing to `total` (default:
        the population), by largest remainders."""
        total = self.subjects if total is None else total
        shares = {s.state: s.share for s in self.initial_mix if s.share > 0}
        raw = {state: share * total for state, share in shares.items()}
        counts = {state: math.floor(v) for state, v in raw.items()}
        left = total - sum(counts.values())
        for state in sorted(raw, key=lambda s: counts[s] - raw[s])[:left]:
            counts[state] += 1
        return counts

    def initial_table(self) -> pd.DataFrame:
        """The initial mix: state, count, share and interval (shares in %)."""
        return pd.DataFrame(
            [
                {
                    "state": s.state,
                    "count": s.count,
                    "share_pct": 100 * s.share,
                    "ci_low_pct": 100 * s.ci_low,
                    "ci_high_pct": 100 * s.ci_high,
                }
                for s in self.initial_mix
            ]
        )

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

    def to_model(self, name: str = "fitted", *, mix: bool = False) -> Model:
        """The fitted chain as a `Model` (probabilities in %, no callbacks, no sinks).

        With a fitted `kernel` (`with_kernel`) its states get their dwell kernels; with
        fitted `tables` (`with_tables`) the transitions seen in them get their chances by
        month or age. `mix`: start from the fitted initial mix (else `initial_state`)."""
        counts = self.initial_counts()
        initial: str | dict[str, float] = self.initial_state
        if mix and len(counts) > 1:
            initial = {state: float(count) for state, count in counts.items()}
        dwell = self.kernel.dwell_laws() if self.kernel is not None else None
        model = Model(self.states, initial, name=name, dwell=dwell)
        totals: dict[str, float] = {}
        for t in self.transitions:
            table = self._table(t)
            if table is not None:
                model.add(Transition(t.trigger, t.from_state, t.to_state, chances=table))
                continue
            percent = 100 * t.probability
            # Keep each state's sum at most 100% despite floating-point rounding.
            room = 100.0 - totals.get(t.from_state, 0.0)
            percent = min(percent, max(room, 0.0))
            totals[t.from_state] = totals.get(t.from_state, 0.0) + percent
            model.add(Transition(t.trigger, t.from_state, t.to_state, percent))
        return model

    def with_kernel(self, kernel: Kernel) -> FitResult:
        """This fit with a semi-Markov kernel (`dogesim.report.spells.fit_kernel`): the
        model's states get destination-by-length dwell kernels (first stays apart when
        the kernel has them)."""
        return dataclasses.replace(self, kernel=kernel)

    def with_tables(self, tables: FactorFit) -> FitResult:
        """This fit with chances by month of year or by age
        (`dogesim.report.timevarying.fit_by_factor`): every transition it saw gets its
        table (``by_month`` / ``by_age``) in the model, its intervals in the file's notes."""
        if tables.factor not in ("month", "age"):
            raise DogesimError(f"with_tables: a fit by month or by age, not {tables.factor!r}")
        return dataclasses.replace(self, tables=tables)

    def _table(self, t: FittedTransition) -> ChanceTable | None:
        """The fitted table of transition `t` (None without tables, or if it is not in
        them)."""
        if self.tables is None:
            return None
        try:
            chances = [min(c, 100.0) for c in self.tables.chances(t.from_state, t.trigger)]
        except DogesimError:
            return None
        if self.tables.factor == "month":
            return ByMonth(chances)
        return ByAge(self.tables.edges, chances)

    def _table_notes(self) -> dict[tuple[str, str], str]:
        """Per transition with a table: its chances per level with their intervals."""
        if self.tables is None:
            return {}
        notes: dict[tuple[str, str], str] = {}
        label = "month" if self.tables.factor == "month" else "age from"
        for (state, trigger), rows in self.tables.table.groupby(["from_state", "trigger"]):
            parts = [
                f"{label} {int(r.level)}: {100 * r.probability:.4g}% "
                f"[{100 * r.ci_low:.4g}, {100 * r.ci_high:.4g}]"
                for r in rows.itertuples()
            ]
            notes[(str(state), str(trigger))] = (
                f"by {self.tables.factor} ({self.confidence:.0%} CI): " + "; ".join(parts)
            )
        return notes

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
                f"fitted: {t.events:g} events / {t.exposure:g} subject-ticks; "
                f"{self.confidence:.0%} CI [{100 * t.ci_low:.6g}%, {100 * t.ci_high:.6g}%]"
                + (f"; configured {100 * t.configured:g}%" if t.configured is not None else "")
            )
            for t in self.transitions
        }
        for key, note in self._table_notes().items():
            notes[key] = notes.get(key, "") + "; " + note
        header = (
            f"Fitted by dogesim fit from {self.events} events of {self.subjects} subjects over "
            f"{self.ticks} ticks; log-likelihood {self.log_likelihood:.3f}.\n"
            "Probabilities are maximum-likelihood estimates (events / subject-ticks at risk)."
        )
        months = calendar_months(self.tick)
        if months is not None:
            header += f"\nFitted on calendar ticks ({self.tick}), stamped at month starts."
        if self.kernel is not None:
            header += (
                "\nDwell kernels: each state's stay length (Kaplan-Meier histogram) and its "
                "destination given the length"
                + (", first stays apart." if self.kernel.separate_first else ".")
            )
        text = dump_model(
            self.to_model(name),
            None,
            tick_ms=self.tick_ms,
            ticks=self.ticks,
            subjects=self.subjects,
            timestamp_start=month_floor(self.window_start) if months else self.window_start,
            calendar=months,
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
        text = self._with_initial_mix(text)
        if path is not None:
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(text)
        return text

    def _with_initial_mix(self, text: str) -> str:
        """Replace ``initial_state: X`` by the fitted mix when more than one state is occupied.

        The model file's ``initial_state`` mapping (subjects per state) is read by the model
        file loader from the version that supports initial mixes on; older loaders refuse it.
        """
        counts = self.initial_counts()
        if len(counts) <= 1:
            return text
        mix = ", ".join(f"{_yaml_key(state)}: {count}" for state, count in counts.items())
        lines = text.splitlines(keepends=True)
        for k, line in enumerate(lines):
            if line.startswith("initial_state:"):
                intervals = "; ".join(
                    f"{s.state} {100 * s.share:.1f}% [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"
                    for s in self.initial_mix
                    if s.count > 0
                )
                lines[k] = (
                    f"# initial mix from the {self.initial_source} ({self.confidence:.0%} CI): "
                    f"{intervals}\ninitial_state: {{{mix}}}\n"
                )
                break
        return "".join(lines)

    def plot(self) -> Figure:
        """Fitted vs configured probabilities with intervals (see `plots.plot_fit`)."""
        from dogesim.report.plots import plot_fit

        return plot_fit(self)


def _yaml_key(state: str) -> str:
    """A state name as a YAML flow-mapping key (JSON quoting, so ``no`` stays a string)."""
    return json.dumps(state)


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
    tick_ms: int | str,
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
    roster: Any = None,
    weight: str | None = None,
    kernel: bool = False,
    by: str | None = None,
    age_bins: Sequence[int] | None = None,
) -> FitResult:
    """Fit per-tick transition probabilities by maximum likelihood.

    Args:
        events: the log: a ``.jsonl``/``.csv`` path, a DataFrame or records (see
            `tables.read_event_log`); timestamps in epoch ms or ISO-8601.
        tick_ms: the tick length in ms, or calendar months (``"1mo"``, ``"1y"``).
        states: the states (default: the model's, else those seen in the roster and log).
        initial_state: the model's initial state (default: the model's, else the most
            common state at the window start).
        window_start: the first tick's timestamp (default: the model file's start, else the
            first event's); events before it are ignored.
        window_end: the end of the window, exclusive (or give `ticks`); default: the tick
            after the last event.
        ticks: the window length in ticks.
        subjects: the population size; subjects without events in the window sit in
            `silent_state` throughout. Without it (and `silent`, `roster`), every subject is
            assumed to appear in the log.
        silent: instead of `subjects`: how many event-less subjects sit in each state.
        silent_state: where event-less subjects sit (default: the initial state).
        model: the configured model (a `Model` or `ModelSpec`), for comparison, for the
            states and to name transitions the log does not show.
        confidence: the interval's confidence level.
        fields: field names for `read_event_log` (``subject``, ``timestamp``, ``trigger``,
            ``from_state``, ``to_state``).
        roster: the population and each subject's state at the window start (see
            `observed.observe`); replaces `subjects`/`silent`.
        weight: the column (roster, else log) of survey weights.
        kernel: also fit a semi-Markov kernel (`dogesim.report.spells.fit_kernel`, first
            stays apart): the model gets destination-by-length dwell kernels.
        by: ``"month"`` or ``"age"``: also fit each transition's chance by month of year or
            by age bin (`dogesim.report.timevarying.fit_by_factor`), written as ``by_month``
            / ``by_age`` tables with their intervals in the notes.
        age_bins: the age bins' lower edges in ticks for ``by="age"`` (default: 6 equal
            bins over the window).

    Raises:
        DogesimError: the log is inconsistent (a subject's event starts from a state other
            than where its previous event ended, two events of a subject in one tick, an
            unknown state), disagrees with the roster, or the window is empty.
    """
    bare = model if isinstance(model, Model) or model is None else _as_run(model)
    if window_start is None and model is not None and not isinstance(model, Model):
        window_start = model.timestamp_start
    if not 0 < confidence < 1:
        raise DogesimError(f"confidence must be between 0 and 1, got {confidence}")
    obs = observe(
        events,
        tick=tick_ms,
        states=states,
        model=bare,
        initial_state=initial_state,
        window_start=window_start,
        window_end=window_end,
        ticks=ticks,
        roster=roster,
        weight=weight,
        subjects=subjects,
        silent=silent,
        silent_state=silent_state,
        fields=fields,
    )
    if initial_state is None and bare is not None:
        initial_state = bare.initial_state
    result = fit_observed(
        obs, model=model, confidence=confidence, initial_state=initial_state, tick=tick_ms
    )
    return with_laws(result, obs, kernel=kernel, by=by, age_bins=age_bins)


def _as_run(spec: ModelSpec) -> Model:
    """The model a run of `spec` walks: with churn, the final state ``churned`` and a
    ``churn`` move from every other state, as in the run's log."""
    if spec.churn is None:
        return spec.model
    from dogesim.engine import effective_model

    return effective_model(spec.model, spec.tick_ms, spec.churn, ())


def with_laws(
    result: FitResult,
    obs: Observed,
    *,
    kernel: bool = False,
    by: str | None = None,
    age_bins: Sequence[int] | None = None,
) -> FitResult:
    """`result` with a semi-Markov kernel (`kernel`) and chances by month or age (`by`)
    fitted from the same log (see `fit_event_log`)."""
    if kernel:
        from dogesim.report.spells import fit_kernel

        result = result.with_kernel(fit_kernel(obs))
    if by is not None:
        from dogesim.report.timevarying import fit_by_factor

        if by not in ("month", "age"):
            raise DogesimError(f"by={by!r}: fit chances by 'month' or by 'age'")
        bins = age_bins if by == "age" else None
        tables = fit_by_factor(obs, by, age_bins=bins, confidence=result.confidence)
        result = result.with_tables(tables)
    return result


def fit_observed(
    obs: Observed,
    *,
    model: Model | ModelSpec | None = None,
    confidence: float = 0.95,
    initial_state: str | None = None,
    tick: int | str | None = None,
) -> FitResult:
    """Fit per-tick transition probabilities from an `Observed` log (see `fit_event_log`)."""
    if not 0 < confidence < 1:
        raise DogesimError(f"confidence must be between 0 and 1, got {confidence}")
    states = list(obs.states)
    index = {s: k for k, s in enumerate(states)}
    spells = obs.spells()
    w = spells["weight"].to_numpy(dtype=float)
    length = spells["length"].to_numpy(dtype=np.int64)
    exposure = spells.assign(wl=w * length).groupby("state")["wl"].sum()
    deff: dict[str, float] = {}
    if obs.weighted:
        per_subject = (
            spells.assign(length=length)
            .groupby(["state", "subject"], sort=False)
            .agg(m=("length", "sum"), w=("weight", "first"))
        )
        deff = {
            state: kish_deff(part["w"].to_numpy(), part["m"].to_numpy())
            for state, part in per_subject.groupby(level="state")
        }
    raw_exposure = spells.groupby("state")["length"].sum()
    moves = spells[~spells["censored"].to_numpy(dtype=bool)]
    configured = _configured(model)
    counts = moves.groupby(["state", "trigger"], sort=False).agg(
        events=("weight", "sum"), to_state=("to_state", "first"), targets=("to_state", "nunique")
    )
    fitted: dict[tuple[str, str], FittedTransition] = {}

    def row(from_state: str, trigger: str, to_state: str, n: float) -> FittedTransition:
        e = float(exposure.get(from_state, 0.0))
        p = n / e if e else 0.0
        n_eff = float(raw_exposure.get(from_state, 0)) / deff.get(from_state, 1.0)
        low, high = wilson_interval(p * n_eff, n_eff, confidence)
        conf = configured.get((from_state, trigger))
        return FittedTransition(
            from_state,
            trigger,
            to_state,
            _number(n),
            _number(e),
            p,
            low,
            high,
            conf[1] if conf else None,
            n_eff,
        )

    for (from_state, trigger), values in counts.iterrows():
        if values["targets"] > 1:
            raise DogesimError(
                f"event log: trigger {trigger!r} from {from_state!r} leads to several states; "
                "a transition has one target"
            )
        fitted[(from_state, trigger)] = row(
            str(from_state), str(trigger), str(values["to_state"]), float(values["events"])
        )
    for (from_state, trigger), (to_state, _) in configured.items():
        if (from_state, trigger) not in fitted and from_state in index:
            fitted[(from_state, trigger)] = row(from_state, trigger, to_state, 0.0)
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
        e = float(exposure.get(state, 0.0))
        moved = sum(t.events for t in outgoing)
        loglik += sum(t.events * math.log(t.probability) for t in outgoing if t.events)
        stay = e - moved
        if stay > 0:
            loglik += stay * math.log(stay / e)
    mix = initial_mix(obs, confidence)
    if initial_state is None:
        initial_state = max(mix, key=lambda s: s.count).state if mix else states[0]
    if initial_state not in index:
        raise DogesimError(f"initial state {initial_state!r} is not one of {states}")
    roster = obs.roster
    silent_rows = roster[roster["silent"].to_numpy(dtype=bool)]
    return FitResult(
        states=tuple(states),
        initial_state=initial_state,
        tick_ms=obs.grid.tick_ms or _month_ms(obs),
        window_start=obs.grid.start,
        ticks=obs.ticks,
        subjects=len(roster),
        transitions=rows,
        exposure={s: _number(exposure.get(s, 0)) for s in states},
        log_likelihood=loglik,
        confidence=confidence,
        events=len(obs.events),
        silent={str(k): int(v) for k, v in silent_rows["state"].value_counts(sort=False).items()},
        initial_mix=mix,
        initial_source=obs.source,
        weighted=obs.weighted,
        tick=tick,
    )


def _month_ms(obs: Observed) -> int:
    """A calendar-month grid's mean tick length in ms (what rates are rescaled with)."""
    return obs.grid.months * MEAN_MONTH_MS


def _number(value: float) -> float:
    """An exposure: an int when it is whole (unweighted fits), else the float."""
    return int(value) if float(value).is_integer() else float(value)


def initial_mix(obs: Observed, confidence: float = 0.95) -> list[InitialShare]:
    """The population's shares per state at the window start, with Wilson intervals on
    Kish's effective sample size (see the module docstring)."""
    roster = obs.roster
    weights = roster["weight"].to_numpy(dtype=float)
    total = float(weights.sum())
    n_eff = len(roster) / kish_deff(weights) if len(roster) else 0.0
    counts = pd.Series(weights, index=roster["state"].to_numpy()).groupby(level=0).sum()
    shares = []
    for state in obs.states:
        count = float(counts.get(state, 0.0))
        share = count / total if total else 0.0
        low, high = wilson_interval(share * n_eff, n_eff, confidence)
        shares.append(InitialShare(state, _number(count), share, low, high))
    return shares


@dataclass
class GroupFit:
    """One `FitResult` per group of subjects (`fit_by`), with each group's population share.

    Attributes:
        by: the grouping column.
        results: group value -> its fit.
        shares: group value -> its share of the (weighted) population.
        effective: group value -> Kish's effective sample size of its subjects' weights
            (its number of subjects when unweighted).
    """

    by: str
    results: dict[Any, FitResult]
    shares: dict[Any, float]
    effective: dict[Any, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Every group's fitted transitions, one row each, with a ``group`` column first."""
        frames = [fit.table().assign(group=group) for group, fit in self.results.items()]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return table[["group", *[c for c in table.columns if c != "group"]]]

    @property
    def subjects(self) -> int:
        """The population: every group's subjects."""
        return sum(fit.subjects for fit in self.results.values())

    def counts(self, total: int | None = None) -> dict[Any, int]:
        """Each group's share of `total` subjects (default: the population) in whole
        subjects, by largest remainders."""
        total = self.subjects if total is None else total
        raw = {group: share * total for group, share in self.shares.items()}
        counts = {group: math.floor(v) for group, v in raw.items()}
        left = total - sum(counts.values())
        for group in sorted(raw, key=lambda g: counts[g] - raw[g])[:left]:
            counts[group] += 1
        return counts

    def entity_names(self) -> dict[Any, str]:
        """Each group's entity type name in the mixture file: its value when that is an
        identifier, else the value with other characters as ``_`` (``group_`` first when it
        starts with a digit), made unique."""
        names: dict[Any, str] = {}
        for group in self.results:
            name = re.sub(r"\W", "_", str(group)) or "group"
            if not name.isidentifier() or keyword.iskeyword(name):
                name = f"group_{name}"
            base, k = name, 2
            while name in names.values():
                name, k = f"{base}_{k}", k + 1
            names[group] = name
        return names

    def write_model_file(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        name: str = "fitted",
        template: ModelSpec | None = None,
        seed: int | None = None,
    ) -> str:
        """Write the groups' fits as one model file that simulates the mixture; return its
        text.

        Each group is an entity type (``entities:``) with its fitted states, chances and
        initial mix, ``subjects.count`` its share of the population (a group with less
        than half a subject is left out, said in the header), subject ids that do
        not overlap between groups, the group value as a constant attribute named after
        the `by` column (its last dotted part), and a JSON Lines sink of its own at
        ``${DOGESIM_OUT_DIR:-out}/NAME/ENTITY.jsonl``.

        Args:
            path: where to write (None only returns the text).
            name: the model's name (and its output directory).
            template: a loaded model file whose seed to keep.
            seed: the seed to write.
        """
        from dogesim.modelfile import load_model_text

        if seed is None and template is not None:
            seed = template.seed
        counts, names = self.counts(), self.entity_names()
        attribute = self.by.rsplit(".", 1)[-1]
        doc: dict[str, Any] = {
            "name": name,
            "description": f"fitted by {self.by} from an event log",
        }
        entities: dict[str, Any] = {}
        sinks: dict[str, Any] = {}
        offset = 0
        for group, fit in self.results.items():
            if not counts[group]:
                continue  # under half a subject: an entity type needs one (see `_header`)
            sized = dataclasses.replace(fit, subjects=counts[group])
            one = yaml.safe_load(sized.write_model_file(None, name=names[group], seed=seed))
            for key in ("seed", "tick", "ticks", "start"):
                if key in one:
                    doc.setdefault(key, one[key])
            entity = {k: one[k] for k in ("states", "initial_state", "dwell") if k in one}
            attributes: dict[str, Any] = {"id": {"sequence": offset}}
            if attribute.isidentifier() and attribute != "id":
                attributes[attribute] = {"constant": _plain_value(group)}
            entity["subjects"] = {"count": counts[group], "attributes": attributes}
            entity["default_sinks"] = [names[group]]
            entity["transitions"] = one["transitions"]
            entities[names[group]] = entity
            sinks[names[group]] = {
                "type": "jsonl",
                "path": f"${{DOGESIM_OUT_DIR:-out}}/{name}/{names[group]}.jsonl",
            }
            offset += counts[group]
        doc["sinks"] = sinks
        doc["entities"] = entities
        body = yaml.dump(doc, Dumper=_ModelDumper, sort_keys=False, allow_unicode=True, width=100)
        header = self._header(counts, names)
        if template is not None and template.sinks:
            header.append(f"{template.name}'s sinks were not written back: each group has its own")
        text = "".join(f"# {line}\n" if line else "#\n" for line in header)
        text += body
        load_model_text(text, source=os.fspath(path) if path is not None else name, environ={})
        if path is not None:
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(text)
        return text

    def _header(self, counts: Mapping[Any, int], names: Mapping[Any, str]) -> list[str]:
        """The mixture file's comment lines: what it is, then each group's share, fit and
        initial mix."""
        lines = [
            f"Fitted by dogesim fit --by {self.by}: one entity type per group, each with its",
            "fitted chances (events / subject-ticks at risk), its initial mix and its share of",
            f"the population of {self.subjects} as subjects.count; a run simulates the mixture.",
        ]
        for group, fit in self.results.items():
            if not counts[group]:
                lines.append(
                    f"{self.by}={_plain_value(group)!r}: share {100 * self.shares[group]:.2g}% "
                    "is under half a subject; left out"
                )
                continue
            mix = "; ".join(
                f"{s.state} {100 * s.share:.1f}% [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"
                for s in fit.initial_mix
                if s.count > 0
            )
            lines.append(
                f"{self.by}={_plain_value(group)!r} -> {names[group]}: share "
                f"{100 * self.shares[group]:.2f}% ({counts[group]} subjects), {fit.events} "
                f"events, log-likelihood {fit.log_likelihood:.3f}; initial mix "
                f"({fit.confidence:.0%} CI): {mix}"
            )
        return lines


def _plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value (written to YAML and shown in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def fit_by(
    events: Any,
    *,
    by: str,
    tick_ms: int | str,
    kernel: bool = False,
    factor: str | None = None,
    age_bins: Sequence[int] | None = None,
    **options: Any,
) -> GroupFit:
    """Fit one model per value of the subject column `by` (of the roster, else the log).

    Takes the arguments of `fit_event_log` (`model`, `states`, `roster`, `weight`, ...);
    `kernel`, `factor` (``"month"`` or ``"age"``, `fit_event_log`'s ``by``) and `age_bins`
    fit each group's laws from its own subjects (`with_laws`). Every group is fitted on the
    same states and window, so the fits can be simulated side by side as a mixture with
    the population shares in `GroupFit.shares` (`GroupFit.write_model_file`).
    """
    model = options.pop("model", None)
    confidence = options.pop("confidence", 0.95)
    initial_state = options.get("initial_state")
    bare = model if isinstance(model, Model) or model is None else _as_run(model)
    if options.get("window_start") is None and model is not None and not isinstance(model, Model):
        options["window_start"] = model.timestamp_start
    obs = observe(events, tick=tick_ms, model=bare, by=by, **options)
    groups = obs.roster["group"]
    if groups.isna().any():
        who = groups.index[int(np.flatnonzero(groups.isna().to_numpy())[0])]
        who = who.item() if isinstance(who, np.generic) else who
        raise DogesimError(f"fit by {by!r}: subject {who!r} has no {by!r} value")
    weights = obs.roster["weight"].groupby(groups.to_numpy()).sum()
    total = float(weights.sum()) or 1.0
    results = {}
    for group in pd.unique(groups.to_numpy()):
        part = obs.subset(group)
        fit = fit_observed(
            part,
            model=model,
            confidence=confidence,
            initial_state=initial_state or (bare.initial_state if bare is not None else None),
            tick=tick_ms,
        )
        results[group] = with_laws(fit, part, kernel=kernel, by=factor, age_bins=age_bins)
    effective = {
        group: len(part) / kish_deff(part.to_numpy(dtype=float))
        for group, part in obs.roster["weight"].groupby(groups.to_numpy())
    }
    return GroupFit(
        by,
        results,
        {g: float(weights[g]) / total for g in results},
        {g: effective[g] for g in results},
    )
