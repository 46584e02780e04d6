"""Cohorts in the engine: initial mixes, drawn attributes, dwell and delay laws, per-subject
rates.

- `enter(walker, first, count, tick)`: newcomers (the first population or arrivals) get their
  initial state from the model's mix and their declared attributes, from the run's generator.
- `SemiMarkov`: the compiled laws of a model with dwell laws (also destination-by-length
  kernels, `dogesim.laws.StayKernel`), delay laws, chance tables (`dogesim.varying`) or
  per-subject rates (`Tables.semi`; None for plain chains, whose streams stay exactly as
  before). It replaces the geometric wait (`file`) and handles a tick's attempts (`tick`),
  one subject at a time.
- `use_calendar(tables, calendar)`: calendar ticks (``1mo``, ``1y``) go through
  `SemiMarkov` too, each tick stamped from the calendar's table (the plain hot path keeps
  ``start + t * tick_ms``).

The rules (see `dogesim.model.Model` and `dogesim.laws` for the laws and the grid):
- After a move at tick ``t`` into a state, the next attempt is at ``t + K``: ``K`` from the
  transition's delay law when it has one, else from the state's dwell law, else the geometric
  law of the subject's total chance (``K = 1 + G``, exactly the per-tick definition). A
  newcomer counts as entering just before its first tick, as in the chain: present from
  tick 0 it first attempts at ``K - 1``, arriving at tick ``t`` at ``t + K - 1``; so a stay
  of ``K`` attempts is what `dogesim.report.spells` measures (its length convention).
- At an attempt in a dwell-law state the transition is chosen in proportion to the chances
  (calendar profiles weigh them at that tick; if they are all zero there is no attempt).
  A vetoed attempt, or none, leaves the subject in the state for a new wait from the law.
- Per-subject rates: the state's hazard ``-ln(1 - P)`` is split in proportion to the chances;
  each transition's share is multiplied by its rate attribute for the subject. Where the
  chances vary in time (calendar profiles, chance tables) this holds at every tick, with
  ``P`` the total at that tick: candidates come at each share's largest value and are
  thinned at the tick (`SemiMarkov._timed_choice`).
- Kernels: entering a kernel state, the stay's length ``L`` is drawn from the kernel (a
  subject's first stay, from its creation, from the ``first`` kernel when there is one);
  the attempt ``L`` ticks later takes the destination drawn from the kernel's shares at
  ``L``. A vetoed attempt draws a new length from the state's (later-stay) kernel.
- Chance tables: a state with a table (by month, by age) draws candidate attempts at its
  bound ``B`` (its largest total chance at any tick) and keeps a candidate at tick ``t``
  with chance ``P(t) / B``, choosing in proportion to the chances at ``t``: exactly the
  per-tick law ``P(t)``. Age is ``t`` for subjects present from the start, ``t - a`` for
  one arriving at tick ``a``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.engine import attempts, clock
from dogesim.errors import ModelError, RunError
from dogesim.laws import Law, StayKernel
from dogesim.model import Model, Transition
from dogesim.rates import profiled_peak
from dogesim.varying import ByAge, month_of, profiled_state_peak, state_peak

if TYPE_CHECKING:
    from dogesim.calendar_ticks import CalendarTicks
    from dogesim.engine.tables import Tables
    from dogesim.engine.walker import Walker

__all__ = ["SemiMarkov", "enter", "needs_semi_markov", "use_calendar"]


def needs_semi_markov(model: Model) -> bool:
    """True when `model` needs `SemiMarkov` (dwell or delay laws, kernels, chance tables,
    or per-subject rates)."""
    return model.semi_markov or model.varying or any(t.rate_attribute for t in model.transitions)


def attribute(subject: Any, name: str, i: int) -> float:
    """Subject `i`'s rate attribute `name` (an attribute, or a key of a mapping), checked."""
    try:
        value = subject[name] if isinstance(subject, Mapping) else getattr(subject, name)
    except (KeyError, AttributeError):
        raise RunError(
            f"subject {i} has no attribute {name!r}, which a transition's rate_attribute "
            "reads; set it in the subject factory or declare its law in Model(attributes=...)"
        ) from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise RunError(
            f"subject {i}: rate attribute {name!r} = {value!r}; it must be a finite number >= 0"
        )
    return number


def enter(walker: Walker, first: int, count: int, tick: int) -> np.ndarray | None:
    """Give subjects ``first .. first+count-1``, new at `tick` (-1: the first population),
    their initial states (from the mix) and their declared attributes; return their states
    when the mix drew them (else None)."""
    tables = walker.tables
    if tables.semi is not None:
        tables.semi.newcomers(first, count, tick)
    states = None
    if tables.mix is not None:
        index, shares = tables.mix
        states = index[walker.rng.choice(len(index), size=count, p=shares)]
        walker.population.view[first : first + count] = states
        counts = np.bincount(states, minlength=len(tables.model.states))
        walker.recorder.enter_states(tick, counts)
    for name, law in tables.model.attributes.items():
        # drawn for everyone (the stream does not depend on the factory), set where missing
        values = law.draw(walker.rng, count).tolist()
        for subject, value in zip(
            walker.population.subjects[first : first + count], values, strict=True
        ):
            if isinstance(subject, dict):
                subject.setdefault(name, value)
            elif not hasattr(subject, name):
                setattr(subject, name, value)
    return states


def initial_mix(model: Model) -> tuple[np.ndarray, np.ndarray] | None:
    """(state indices, shares) of the initial mix when it has more than one state."""
    if len(model.initial_mix) < 2:
        return None
    index = np.asarray([model.index(s) for s in model.initial_mix], dtype=np.intc)
    shares = np.asarray(list(model.initial_mix.values()))
    return index, shares / shares.sum()


def _hazards(model: Model, name: str, outgoing: list[Transition]) -> list[float]:
    """Each transition's share of the state's hazard ``-ln(1 - P)`` (per tick)."""
    chances = [t.probability / 100.0 for t in outgoing]
    total = math.fsum(chances)
    if total <= 0:
        return [0.0] * len(outgoing)
    if total >= 1.0:
        raise ModelError(
            f"{model.name}: state {name!r} has per-subject rates (rate_attribute) and its "
            f"chances sum to {100 * total:g}%: a certain move has no rate to scale; keep the "
            "sum below 100%"
        )
    return [_hazard_share(c, total) for c in chances]


def _hazard_share(chance: float, total: float) -> float:
    """A transition's share ``chance * -ln(1 - total) / total`` of its state's hazard
    (fractions per tick; the share of a zero total is the chance itself, its limit)."""
    if total <= 0.0:
        return chance
    return chance * -math.log1p(-total) / total


def _hazard_bounds(model: Model, name: str, outgoing: list[Transition]) -> list[float]:
    """Per-subject rates in a state whose chances vary in time: each transition's hazard
    share at its largest chance, with the state's total at its peak (the share grows with
    both), so a subject's candidates drawn at these bounds can be thinned to the law of
    every tick (`SemiMarkov._timed_choice`)."""
    tables = [t.chances for t in outgoing if t.chances is not None]
    terms = [(t.probability, t.profile) for t in outgoing if t.chances is None]
    peak = profiled_state_peak(terms, tables) / 100.0
    if peak >= 1.0:
        raise ModelError(
            f"{model.name}: state {name!r} has per-subject rates (rate_attribute) and its "
            f"chances reach {100 * peak:g}% at some tick: a certain move has no rate to "
            "scale; keep the total below 100%"
        )
    bounds = []
    for t in outgoing:
        if t.chances is not None:
            largest = state_peak(0.0, [t.chances])
        else:
            largest = profiled_peak([(t.probability, t.profile)])[0]
        bounds.append(_hazard_share(largest / 100.0, peak))
    return bounds


def _proportional(weights: list[float], goal: float) -> int:
    """The position of `weights` that `goal` (in [0, their sum)) falls in, cumulatively;
    the last positive weight when rounding leaves `goal` at or past the sum."""
    cumulative = 0.0
    for k, w in enumerate(weights):
        cumulative += w
        if goal < cumulative:
            return k
    return max(k for k, w in enumerate(weights) if w > 0)


def _jittered(walker: Walker, due: list[int], ts: int) -> list[int]:
    """Jitter: the subjects `due` put in the order of their timestamps within the tick (in
    place), and those timestamps (as `dogesim.engine.attempts` draws them)."""
    offsets = (walker.rng.random(len(due)) * walker.tick_ms).astype(np.int64)
    run = np.argsort(offsets, kind="stable")
    due[:] = [due[k] for k in run.tolist()]
    stamps = (offsets[run] + ts).tolist()
    if stamps:
        walker.last_stamp = max(walker.last_stamp, stamps[-1])
    return stamps


def use_calendar(tables: Tables, calendar: CalendarTicks) -> None:
    """Run `tables`' model on calendar ticks: through `SemiMarkov` (made for a plain chain
    too, whose waits and choices it draws by the chain's law), stamping each tick from
    `calendar`."""
    if tables.has_resources:
        raise ModelError(
            f"{tables.model.name}: calendar ticks ({calendar.months} month(s)) do not run "
            "models with resources yet; use a fixed tick (e.g. 1d)"
        )
    if tables.semi is None:
        tables.semi = SemiMarkov(tables.model, tables.order)
    tables.semi.calendar = calendar


class _Kernel:
    """A `StayKernel` compiled for a state: its destinations as transitions (ordered
    indices) and, per length, their cumulative shares."""

    def __init__(self, model: Model, name: str, kernel: StayKernel, begin: int) -> None:
        outgoing = list(model.outgoing(name))
        self.law = kernel
        self.targets = [begin + _destination(model, name, outgoing, d) for d in kernel.destinations]
        self.cumulative: dict[int, list[float]] = {}
        for length in kernel.lengths:
            total, cumulative = 0.0, []
            for share in kernel.row(length):
                total += share
                cumulative.append(total)
            self.cumulative[length] = cumulative

    def choose(self, length: int, u: float) -> int:
        """The transition (ordered index) a stay of `length` ticks ends with, for uniform `u`."""
        cumulative = self.cumulative[length]
        k = bisect_right(cumulative, u * cumulative[-1])
        return self.targets[min(k, len(self.targets) - 1)]


def _destination(model: Model, name: str, outgoing: list[Transition], destination: str) -> int:
    """The position among `outgoing` of a kernel's destination (a trigger or a target)."""
    for k, t in enumerate(outgoing):
        if t.trigger == destination:
            return k
    leading = [k for k, t in enumerate(outgoing) if t.to_state == destination]
    if len(leading) == 1:
        return leading[0]
    what = "several transitions lead" if leading else "no transition leads"
    raise ModelError(
        f"{model.name}: the dwell kernel of state {name!r} names destination "
        f"{destination!r}, but {what} there from {name!r} (transitions: "
        f"{', '.join(f'{t.trigger} -> {t.to_state}' for t in outgoing) or 'none'}); name a "
        "trigger, or a state one transition leads to"
    )


class SemiMarkov:
    """The laws of one run's model, compiled per state and per (ordered) transition."""

    def __init__(self, model: Model, order: list[Transition]) -> None:
        self.model = model
        self.dwell: list[Law | None] = [model.dwell.get(s) for s in model.states]
        for law in [*self.dwell, *(t.delay for t in order)]:
            if law is not None and not law.in_ticks:
                raise ModelError(
                    f"{model.name}: a law in durations reached the engine; run the model "
                    "rescaled to its tick (model.at_tick)"
                )
        self.delay: list[Law | None] = [t.delay for t in order]
        self.attribute: list[str | None] = [t.rate_attribute for t in order]
        #: per transition: its share of the state's hazard (per-subject rates), or with
        #: calendar profiles or chance tables its largest share at any tick
        self.hazard: list[float] = []
        self.scaled: list[bool] = []
        #: per state: per-subject rates that vary in time (profiles or tables), thinned
        self.timed_rates: list[bool] = []
        # per state: its compiled kernels (later stays, first stays), None without one
        self.kernels: list[tuple[_Kernel, _Kernel | None] | None] = []
        # per state with chance tables: the thinning bound (a fraction) and its
        # 1 / ln(1 - bound) (0: every tick, None: never)
        self.varying: list[bool] = []
        self.bound: list[float] = []
        self.invlog: list[float | None] = []
        begin = 0
        for name in model.states:
            outgoing = list(model.outgoing(name))
            scaled = any(t.rate_attribute for t in outgoing)
            timed = any(t.profile is not None or t.chances is not None for t in outgoing)
            self.scaled.append(scaled)
            self.timed_rates.append(scaled and timed)
            if not scaled:
                self.hazard.extend([0.0] * len(outgoing))
            elif timed:
                self.hazard.extend(_hazard_bounds(model, name, outgoing))
            else:
                self.hazard.extend(_hazards(model, name, outgoing))
            self.kernels.append(self._compile_kernel(model, name, begin))
            self._compile_varying(outgoing)
            begin += len(outgoing)
        self._check_delays(order)
        # per subject: the kernel and length of its current stay in a kernel state
        self.stay: dict[int, tuple[_Kernel, int, bool]] = {}
        # subjects not yet filed since they were created (their first stay is next)
        self.fresh: set[int] = set()
        # arrival tick of subjects that came after the start (the others: 0)
        self.born: dict[int, int] = {}
        self.aged = any(isinstance(t.chances, ByAge) for t in order)
        #: calendar ticks (``1mo``, ``1y``): each tick's timestamp from the table
        self.calendar: CalendarTicks | None = None

    def _compile_kernel(
        self, model: Model, name: str, begin: int
    ) -> tuple[_Kernel, _Kernel | None] | None:
        law = model.dwell.get(name)
        if not isinstance(law, StayKernel):
            return None
        later = _Kernel(model, name, law, begin)
        first = _Kernel(model, name, law.first, begin) if law.first else None
        return later, first

    def _compile_varying(self, outgoing: list[Transition]) -> None:
        tables = [t.chances for t in outgoing if t.chances is not None]
        self.varying.append(bool(tables))
        if not tables:
            self.bound.append(0.0)
            self.invlog.append(None)
            return
        # Profiled transitions at their peak: the bound must hold at every tick.
        terms = [(t.probability, t.profile) for t in outgoing if t.chances is None]
        peak = min(profiled_state_peak(terms, tables) / 100.0, 1.0)
        self.bound.append(peak)
        if peak >= 1.0:
            self.invlog.append(0.0)
        elif peak <= 0.0:
            self.invlog.append(None)
        else:
            self.invlog.append(1.0 / math.log1p(-peak))

    def _check_delays(self, order: list[Transition]) -> None:
        for t in order:
            if t.delay is not None and self.kernels[self.model.index(t.to_state)] is not None:
                raise ModelError(
                    f"{self.model.name}: transition {t.trigger!r} ({t.from_state!r} -> "
                    f"{t.to_state!r}) has a delay law, but {t.to_state!r} has a dwell kernel "
                    "whose destinations depend on the stay's length; drop one of them"
                )

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint must keep of this run's subjects (plain data): each kernel
        stay's length and whether it follows the first-stay kernel, the arrival ticks (for
        ages) and who is not filed yet."""
        stays = sorted(self.stay.items())
        return {
            "stay": [[i, length, int(first)] for i, (_, length, first) in stays],
            "born": sorted(self.born.items()),
            "fresh": sorted(self.fresh),
        }

    def restore(self, data: Mapping[str, Any], states: Any) -> None:
        """Take back a `snapshot` (`states`: each subject's state index, as restored)."""
        self.born = {int(i): int(t) for i, t in data.get("born", [])}
        self.fresh = {int(i) for i in data.get("fresh", [])}
        self.stay = {}
        for i, length, first in data.get("stay", []):
            kernels = self.kernels[int(states[int(i)])]
            if kernels is None:
                raise RunError(f"checkpoint: subject {i} has a kernel stay in a kernel-less state")
            later, first_kernel = kernels
            kernel = first_kernel if first and first_kernel is not None else later
            self.stay[int(i)] = (kernel, int(length), bool(first))

    def newcomers(self, first: int, count: int, tick: int) -> None:
        """Subjects ``first .. first+count-1`` were created at `tick` (-1: the start)."""
        self.fresh.update(range(first, first + count))
        if self.aged and tick >= 0:
            for i in range(first, first + count):
                self.born[i] = tick

    # -- waits -----------------------------------------------------------------------------

    def _law(self, i: int, s: int, delay: Law | None) -> Law | None:
        """The law of subject `i`'s next wait in state `s` (None: geometric)."""
        if delay is not None:
            return delay
        kernels = self.kernels[s]
        if kernels is not None:
            later, first = kernels
            return (first or later).law if i in self.fresh else later.law
        return self.dwell[s]

    def due_ticks(
        self, walker: Walker, entries: list[tuple[int, int, Law | None]], tick: int
    ) -> list[int | None]:
        """The tick of each entry's next attempt after `tick` (None: never).

        An entry is (subject, state it is in, the delay law of the move it just made or
        None). The draws are made in bulk: one batch per law (in order of first use), then
        the uniforms of the geometric waits, so a tick costs a few numpy calls per law."""
        out: list[int | None] = [None] * len(entries)
        batches: dict[int, tuple[Law, list[int]]] = {}
        geometric: list[int] = []
        n_out = walker.tables.n_out_list
        for k, (i, s, delay) in enumerate(entries):
            law = self._law(i, s, delay)
            if law is None:
                geometric.append(k)
            elif delay is not None or n_out[s] > 0:  # a final state's stay ends nothing
                batches.setdefault(id(law), (law, []))[1].append(k)
        for law, positions in batches.values():
            for k, ticks in zip(
                positions, law.ticks(walker.rng, len(positions)).tolist(), strict=True
            ):
                out[k] = tick + ticks
        if geometric:
            uniforms = walker.rng.random(len(geometric)).tolist()
            for k, u in zip(geometric, uniforms, strict=True):
                i, s, _ = entries[k]
                out[k] = self._geometric(walker, i, s, tick, u)
        self._remember(entries, out, tick)
        return out

    def _remember(
        self, entries: list[tuple[int, int, Law | None]], due: list[int | None], tick: int
    ) -> None:
        """Note each kernel stay's kernel and length; the entries are no longer fresh."""
        fresh, stay = self.fresh, self.stay
        for (i, s, _), when in zip(entries, due, strict=True):
            kernels = self.kernels[s]
            if kernels is None or when is None:
                stay.pop(i, None)  # no kernel stay now (nor one to remember)
            else:
                later, first = kernels
                if i in fresh and first is not None:
                    stay[i] = (first, when - tick, True)
                else:
                    stay[i] = (later, when - tick, False)
            fresh.discard(i)

    def _geometric(self, walker: Walker, i: int, s: int, tick: int, u: float) -> int | None:
        """The next attempt after `tick` under the geometric law of the subject's chance
        (with chance tables: of the state's bound, thinned at the attempt)."""
        if self.scaled[s]:
            total = self._subject_hazard(walker, i, s)
            if total <= 0.0:
                return None
            return tick + 1 + int(-math.log1p(-u) / total)
        inv = self.invlog[s] if self.varying[s] else walker.tables.invlog_list[s]
        if inv is None:
            return None
        return tick + 1 + (int(math.log1p(-u) * inv) if inv else 0)

    def _subject_hazard(self, walker: Walker, i: int, s: int) -> float:
        tables = walker.tables
        begin = tables.first_list[s]
        subject = walker.population.subjects[i]
        total = 0.0
        for j in range(begin, begin + tables.n_out_list[s]):
            name = self.attribute[j]
            total += self.hazard[j] * (attribute(subject, name, i) if name else 1.0)
        return total

    def _file(self, walker: Walker, entries: list[tuple[int, int, Law | None]], tick: int) -> None:
        filed: list[int] = []
        ticks: list[int] = []
        for (i, _, _), due in zip(entries, self.due_ticks(walker, entries, tick), strict=True):
            if due is not None and due < walker.horizon:
                filed.append(i)
                ticks.append(due)
        walker.calendar.file_lists(filed, ticks)

    def file(
        self,
        walker: Walker,
        subjects: np.ndarray,
        states: np.ndarray,
        tick: int,
        skip: list[int] | None,
    ) -> None:
        """File `subjects` at their next attempts (`Walker.file` for this model)."""
        skipped = set(skip or ())
        entries: list[tuple[int, int, Law | None]] = [
            (i, s, None)
            for k, (i, s) in enumerate(zip(subjects.tolist(), states.tolist(), strict=True))
            if k not in skipped
        ]
        self._file(walker, entries, tick)

    # -- attempts --------------------------------------------------------------------------

    def _chances(self, walker: Walker, i: int, s: int, t: int, ts: int) -> list[float]:
        """The chances (percent) of state `s`'s transitions for subject `i` at tick `t`
        (time `ts`): tables at the tick's month and the subject's age, profiles at `ts`."""
        tables = walker.tables
        begin, n = tables.first_list[s], tables.n_out_list[s]
        month = month_of(ts)
        age = t - self.born.get(i, 0)
        out = []
        for j in range(begin, begin + n):
            transition = tables.order[j]
            table = transition.chances
            if table is not None:
                out.append(table.at(month, age))
            else:
                factor = transition.profile.multiplier(ts) if transition.profile else 1.0
                out.append(transition.probability * factor)
        return out

    def _thinned(self, walker: Walker, i: int, s: int, t: int, ts: int, u: float) -> int | None:
        """A candidate attempt in a state with chance tables (candidates come at the
        state's bound): kept with the chance now over the bound, split in proportion."""
        goal, cumulative = u * self.bound[s] * 100.0, 0.0
        for k, c in enumerate(self._chances(walker, i, s, t, ts)):
            cumulative += c
            if goal < cumulative:
                return walker.tables.first_list[s] + k
        return None

    def _choose(
        self,
        walker: Walker,
        i: int,
        s: int,
        t: int,
        ts: int,
        u: float,
        thresholds: list[list[float]],
    ) -> int | None:
        """The transition (ordered index) subject `i` in state `s` attempts at tick `t`
        (time `ts`), or None; `u` is its uniform, `thresholds` the tick's geometric choice
        thresholds."""
        tables = walker.tables
        begin, n = tables.first_list[s], tables.n_out_list[s]
        if n == 0:
            return None
        kernels = self.kernels[s]
        if kernels is not None:
            if i not in self.stay:
                raise RunError(
                    f"subject {i}: its stay in {self.model.states[s]!r} follows a dwell "
                    "kernel, but its length is unknown (a run resumed from a checkpoint "
                    "written without the kernel's stays?); start the run again"
                )
            kernel, length, _ = self.stay[i]
            return kernel.choose(length, u)
        if self.dwell[s] is None and not self.scaled[s]:
            if self.varying[s]:
                return self._thinned(walker, i, s, t, ts, u)
            local = bisect_right(thresholds[s], u)  # the geometric law's thinning
            return begin + local if local < n else None
        if self.timed_rates[s]:
            return self._timed_choice(walker, i, s, t, ts, u)
        if self.scaled[s]:
            subject = walker.population.subjects[i]
            weights = []
            for j in range(begin, begin + n):
                name = self.attribute[j]
                weights.append(self.hazard[j] * (attribute(subject, name, i) if name else 1.0))
        else:
            weights = self._chances(walker, i, s, t, ts)
        total = math.fsum(weights)
        if total <= 0:
            return None
        return begin + _proportional(weights, u * total)

    def _timed_choice(
        self, walker: Walker, i: int, s: int, t: int, ts: int, u: float
    ) -> int | None:
        """A candidate attempt of subject `i` under per-subject rates that vary in time:
        candidates come at its bound hazard ``B`` (`_hazard_bounds`, scaled by its rates),
        one per tick with chance ``1 - exp(-B)``; the candidate at tick `t` is kept with
        chance ``(1 - exp(-H(t))) / (1 - exp(-B))``, ``H(t)`` its hazard now, and a kept
        one chooses in proportion to the hazard shares now: exactly a move with chance
        ``1 - exp(-H(t))`` at every tick."""
        begin, n = walker.tables.first_list[s], walker.tables.n_out_list[s]
        subject = walker.population.subjects[i]
        chances = [c / 100.0 for c in self._chances(walker, i, s, t, ts)]
        total_now = math.fsum(chances)
        bound = now = 0.0
        weights = []
        for k, j in enumerate(range(begin, begin + n)):
            name = self.attribute[j]
            rate = attribute(subject, name, i) if name else 1.0
            bound += self.hazard[j] * rate
            weights.append(_hazard_share(chances[k], total_now) * rate)
            now += weights[-1]
        keep = -math.expm1(-now)  # 1 - exp(-H(t))
        if bound <= 0.0 or u * -math.expm1(-bound) >= keep:
            return None
        return begin + _proportional(weights, u * -math.expm1(-bound) / keep * now)

    def tick(self, walker: Walker, t: int, due: list[int]) -> None:
        """The attempts of the subjects `due` at tick `t`, in creation order (with jitter,
        in timestamp order); then their next attempts are drawn and filed."""
        tables = walker.tables
        if self.calendar is not None:
            ts = self.calendar.stamp(t)
        else:
            ts = walker.timestamp_start + t * walker.tick_ms
        clock.NOW[0] = ts
        stamps = _jittered(walker, due, ts) if walker.jitter else None
        uniforms = walker.rng.random(len(due)).tolist()
        thresholds = tables.choice(ts)[1]
        state, subjects = walker.population.states, walker.population.subjects
        events = walker.recorder.row(t)
        vetoes = walker.recorder.vetoes  # counted in place, as on the plain path
        entries: list[tuple[int, int, Law | None]] = []
        for k, i in enumerate(due):
            if stamps is not None:
                ts = clock.NOW[0] = stamps[k]
                if walker.live.enabled:
                    attempts._pace(walker, ts)  # live and jittered: as the plain path
            s = state[i]
            j = self._choose(walker, i, s, t, ts, uniforms[k], thresholds)
            delay = None
            if j is not None:
                transition = tables.order[j]
                callback = tables.callbacks[j]
                if callback is not None and not callback(subjects[i], transition):
                    vetoes[j] += 1
                elif tables.resource_of[j] is not None:
                    walker.services.serve(i, j, t)
                    continue  # filed again once the resource is granted
                else:
                    for collect in tables.collectors[j]:
                        collect(ts, subjects[i], transition)
                    events[j] += 1
                    s = state[i] = tables.to_list[j]
                    delay = self.delay[j]
            entries.append((i, s, delay))
        self._file(walker, entries, t)
