"""Models: the state machine that subjects walk, validated as it is built.

- `Transition`: one edge, an immutable value (a frozen dataclass) with its trigger,
  probability in percent per tick (or a `Rate`), optional action callback and event sinks
  (the doge-datagen class and attribute names). Copies are made with `dataclasses.replace`,
  so every field, present or future, is carried over.
- `Model`: states, the initial state and the transitions; every mistake raises `ModelError`
  (a `ValueError`) when the model is built, naming the state, trigger and value at fault.
  Validation is linear in states and transitions. `Model.at_tick` rescales a model's
  chances to a run's tick, per state (see `dogesim.rates.per_tick_chances`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from numbers import Real
from typing import Any

from dogesim.errors import ModelError, shown
from dogesim.laws import Law, as_law
from dogesim.rates import (
    Profile,
    Rate,
    check_tick,
    format_duration,
    moment_text,
    parse_duration,
    parse_rate,
    per_tick_chances,
    profiled_peak,
)
from dogesim.varying import ByMonth, ChanceTable, chance_table, profiled_state_peak

__all__ = ["PROBABILITY_TOLERANCE", "ActionCallback", "HoldFunction", "Model", "Transition"]

#: Outgoing probabilities may exceed 100% by this much (floating-point slack, e.g. 33.3+66.7).
PROBABILITY_TOLERANCE = 1e-9

ActionCallback = Callable[[Any, "Transition"], Any]
#: ``hold(subject, transition) -> ticks``: how long a granted resource is held.
HoldFunction = Callable[[Any, "Transition"], int]


# eq=False: transitions are compared and hashed by identity, as the engine and sinks key
# on them (two edges that look alike are still two edges).
@dataclass(frozen=True, eq=False, repr=False)
class Transition:
    """One possible move of the state machine, checked when it is made.

    Attributes:
        trigger: the event name; unique among the transitions leaving `from_state`.
        from_state: the state the move starts from.
        to_state: the state it ends in (may equal `from_state`: a self-loop event).
        probability: percent per tick (100 = certain) that a subject in `from_state` tries
            it. Given as a `Rate` (or rate text such as ``"6 per day"``), it is NaN until a
            model is rescaled to a tick (`Model.at_tick`), and `rate` holds the rate.
        action_callback: ``callback(subject, transition)`` run on an attempt; a falsy result
            vetoes the move (the subject stays, no event).
        event_sinks: sinks whose ``collect(timestamp, subject, transition)`` is called, in
            this order, on every successful move. A list (kept as a tuple); a single sink
            (an object with ``collect``) is taken as a list of one.
        profile: a calendar `Profile` multiplying the per-tick chance.
        resource: a resource of the model the move must acquire (queueing while all busy).
        hold: ticks the resource is held: a whole number, or ``hold(subject, transition)``.
        rate: the chance per unit of time this transition was given, if any.
        delay: a `dogesim.laws.Law` (or its data form) of the wait before the subject's
            next attempt after taking this move, instead of the law of the state it enters
            (e.g. the next song after the song's length).
        rate_attribute: the name of a subject attribute (``subject.activity``, or a key of
            a mapping subject) that multiplies this transition's rate for that subject (see
            `Model`).
        chances: a `dogesim.varying.ChanceTable`: the chance per tick by calendar month
            (``by_month=[12 percentages]``) or by the subject's age (``by_age={"edges":
            [0, 12], "chances": [5, 1]}``), instead of one `probability` (which then holds
            the table's mean, what the analytic per-tick matrix reads).

    Raises:
        ModelError: a field has the wrong type or value; the message names the transition,
            the field and the value.
    """

    trigger: str
    from_state: str
    to_state: str
    probability: float
    action_callback: ActionCallback | None = None
    event_sinks: tuple[Any, ...] = ()
    _: dataclasses.KW_ONLY
    profile: Profile | None = None
    resource: str | None = None
    hold: int | HoldFunction = 1
    rate: Rate | None = None
    delay: Law | None = None
    rate_attribute: str | None = None
    chances: ChanceTable | None = None

    def __init__(
        self,
        trigger: str,
        from_state: str,
        to_state: str,
        probability: float | Rate | str | None = None,
        action_callback: ActionCallback | None = None,
        event_sinks: Iterable[Any] | Any | None = None,
        *,
        profile: Profile | None = None,
        resource: str | None = None,
        hold: int | HoldFunction = 1,
        rate: Rate | None = None,
        delay: Law | Mapping[str, Any] | None = None,
        rate_attribute: str | None = None,
        chances: ChanceTable | Mapping[str, Any] | None = None,
        by_month: Sequence[float] | None = None,
        by_age: Mapping[str, Any] | None = None,
    ) -> None:
        # A hand-written __init__ only to accept the looser input types above; every field
        # is still a dataclass field, so `dataclasses.replace` copies all of them.
        chances = _table(trigger, chances, by_month, by_age)
        if chances is not None and (probability is None or isinstance(probability, Real)):
            probability = chances.mean()
        fields = {
            "trigger": trigger,
            "from_state": from_state,
            "to_state": to_state,
            "probability": probability,
            "action_callback": action_callback,
            "event_sinks": event_sinks,
            "profile": profile,
            "resource": resource,
            "hold": hold,
            "rate": rate,
            "delay": delay,
            "rate_attribute": rate_attribute,
            "chances": chances,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not isinstance(self.trigger, str) or not self.trigger:
            raise ModelError(
                f"transition from {shown(self.from_state)} to {shown(self.to_state)}: trigger "
                f"must be a non-empty string, got {shown(self.trigger)}"
            )
        where = (
            f"transition {shown(self.trigger)} ({shown(self.from_state)} -> {shown(self.to_state)})"
        )
        for role in ("from_state", "to_state"):
            state = getattr(self, role)
            if not isinstance(state, str) or not state:
                raise ModelError(
                    f"{where}: {role} {shown(state)} is not one of the states (state names "
                    "are non-empty strings)"
                )
        probability, rate = _chance(self.probability, self.rate, where)
        object.__setattr__(self, "probability", probability)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "event_sinks", _sinks(self.event_sinks, where))
        callback = self.action_callback
        if callback is not None and not callable(callback):
            raise ModelError(f"{where}: action_callback must be callable, got {shown(callback)}")
        if self.profile is not None and not isinstance(self.profile, Profile):
            raise ModelError(
                f"{where}: profile must be a dogesim.Profile, got {shown(self.profile)}"
            )
        if self.resource is not None and not isinstance(self.resource, str):
            raise ModelError(
                f"{where}: resource {shown(self.resource)} is not declared; give the name "
                "of a resource of the model (Model.add_resource)"
            )
        if self.delay is not None:
            object.__setattr__(self, "delay", as_law(self.delay, f"{where}: delay"))
        attribute = self.rate_attribute
        if attribute is not None and (not isinstance(attribute, str) or not attribute):
            raise ModelError(
                f"{where}: rate_attribute must be the name of a subject attribute, got "
                f"{shown(attribute)}"
            )
        if self.chances is not None:
            if self.rate is not None:
                raise ModelError(
                    f"{where}: a chance table gives percentages per tick; it cannot be a "
                    f"rate ({self.rate}) too"
                )
            if self.profile is not None:
                raise ModelError(
                    f"{where}: give a calendar profile or a chance table (by_month, "
                    "by_age), not both"
                )
            object.__setattr__(self, "chances", chance_table(self.chances, where))
            object.__setattr__(self, "probability", self.chances.mean())
        hold = self.hold
        if not callable(hold) and (isinstance(hold, bool) or not isinstance(hold, int) or hold < 1):
            raise ModelError(
                f"{where}: hold must be a whole number of ticks >= 1 (or a function "
                f"returning one), got {shown(hold)}"
            )

    def _copy(self, probability: float) -> Transition:
        """This transition with another per-tick `probability` (every other field kept)."""
        return dataclasses.replace(self, probability=probability)

    @property
    def chance(self) -> float | Rate:
        """What this transition was given: its `Rate`, else its per-tick percentage."""
        return self.rate if self.rate is not None else self.probability

    def __repr__(self) -> str:
        chance = f"{self.probability}%" if self.rate is None else str(self.rate)
        if self.chances is not None:
            chance = f"{self.chances.key}, mean {self.probability:g}%"
        return f"Transition({self.trigger!r}, {self.from_state!r} -> {self.to_state!r}, {chance})"


def _table(
    trigger: object, chances: object, by_month: object, by_age: object
) -> ChanceTable | None:
    """The chance table given as `chances`, `by_month` or `by_age` (at most one)."""
    given = [x for x in (chances, by_month, by_age) if x is not None]
    if len(given) > 1:
        raise ModelError(
            f"transition {shown(trigger)}: give one chance table (by_month or by_age), not several"
        )
    where = f"transition {shown(trigger)}"
    if by_month is not None:
        return ByMonth(by_month, f"{where}: by_month")  # type: ignore[arg-type]
    if by_age is not None:
        return chance_table({"by_age": by_age}, where)
    return None if chances is None else chance_table(chances, where)


def _chance(probability: object, rate: object, where: str) -> tuple[float, Rate | None]:
    """(per-tick percentage or NaN, rate) from what a transition was given."""
    if isinstance(probability, str):
        probability = parse_rate(probability, where)
    if isinstance(probability, Rate):
        return math.nan, probability
    if rate is not None and not isinstance(rate, Rate):
        raise ModelError(f"{where}: rate must be a dogesim.Rate or None, got {shown(rate)}")
    if rate is not None and isinstance(probability, float) and math.isnan(probability):
        return math.nan, rate  # a rate not yet rescaled to a tick
    return _check_probability(probability, where), rate


def _sinks(sinks: object, where: str) -> tuple[Any, ...]:
    """`event_sinks` as a tuple of objects with ``collect``."""
    if sinks is None:
        return ()
    if callable(getattr(sinks, "collect", None)):
        return (sinks,)  # one sink given where a list was meant: a list of one
    if isinstance(sinks, (str, bytes, Mapping)) or not isinstance(sinks, Iterable):
        raise ModelError(
            f"{where}: event_sinks must be a list of sinks (objects with collect()), "
            f"got {shown(sinks)}"
        )
    out = tuple(sinks)
    for position, sink in enumerate(out):
        if not callable(getattr(sink, "collect", None)):
            raise ModelError(
                f"{where}: event_sinks[{position}] = {shown(sink)} has no collect() method"
            )
    return out


def _check_state_name(state: object, where: str) -> str:
    if not isinstance(state, str) or not state:
        raise ModelError(f"{where}: state names must be non-empty strings, got {shown(state)}")
    return state


def _check_probability(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(
            f"{where}: probability must be a number of percent per tick, "
            f"got {shown(value)} ({type(value).__name__})"
        )
    try:
        p = float(value)
    except (OverflowError, ValueError, TypeError):
        # a number too large for a float (10**400) is far outside 0..100 either way
        side = ">= 0%" if value < 0 else "at most 100%"
        raise ModelError(f"{where}: probability must be {side}, got {shown(value)}") from None
    if math.isnan(p) or math.isinf(p):
        raise ModelError(f"{where}: probability must be finite, got {p}")
    if p < 0:
        raise ModelError(f"{where}: probability must be >= 0%, got {p}%")
    if p > 100 + PROBABILITY_TOLERANCE:
        raise ModelError(f"{where}: probability must be at most 100%, got {p}%")
    return p


def _listing(names: Sequence[str], limit: int = 12) -> str:
    """The first `limit` names for a message (a 20k-state model must not print them all)."""
    shown_names = [repr(n) for n in names[:limit]]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return "[" + ", ".join(shown_names) + more + "]"


class Model:
    """A validated state machine: states, an initial state and transitions.

    Args:
        states: every state name, unique, non-empty strings, in a list (or any ordered
            iterable; a set is refused, its order depends on ``PYTHONHASHSEED``).
        initial_state: the state every subject starts in, or a mix: weights per state,
            ``{"school": 19, "FE": 14}`` (normalised; each subject, also each newcomer,
            draws its state from it with the run's generator). `initial_mix` holds the
            shares; `initial_state` is then the most likely state, `initial` what to pass to
            build a copy.
        transitions: transitions to add now (more can be added with `add_transition`).
        name: a label used in error messages and reports.
        tick_ms: the tick the per-tick probabilities refer to; None (doge-datagen's meaning):
            whatever tick a run uses. With it, a run at another tick rescales them.
        resources: shared resources and their capacities, ``{"agents": 5}``.
        dwell: per state, a `dogesim.laws.Law` (or its data form) of the time a subject
            stays once it enters (semi-Markov). When the wait is over the subject attempts
            a transition, chosen in proportion to the chances (calendar profiles weigh
            them at that moment). A vetoed attempt (or one whose chances are all zero at
            that moment) leaves the subject in the state for a new wait drawn from the
            law. Without a law, the geometric per-tick law of the chances (the default).
            A `dogesim.laws.StayKernel` gives both the stay's length and, given the
            length, where it goes (a subject's first stay may have its own kernel).
        attributes: subject attributes drawn for every subject when it is created (also
            newcomers) with the run's generator, ``{"activity": LogNormal(0.7, 0.8)}``
            (set with ``setattr``, or as a key of a mapping subject), unless the subject
            factory already gave the subject that attribute.

    Per-subject rates: a transition with ``rate_attribute="activity"`` has, for a subject
    whose ``activity`` is ``a``, ``a`` times its hazard: a state's total per-tick chance
    ``P`` is the hazard ``-ln(1 - P)`` split in proportion to the chances; each transition's
    share is multiplied by its attribute and the subject attempts with the chance
    ``1 - exp(-sum)``, choosing in proportion to the scaled shares (for small chances: ``a``
    times the chance). A chance therefore never exceeds 100%.

    Raises:
        ModelError: on an empty or duplicate state list, an unknown initial state, or any
            invalid transition, resource or setting.
    """

    def __init__(
        self,
        states: Sequence[str],
        initial_state: str | Mapping[str, float],
        transitions: Iterable[Transition] = (),
        *,
        name: str = "model",
        tick_ms: int | str | None = None,
        resources: Mapping[str, int] | None = None,
        dwell: Mapping[str, Law | Mapping[str, Any]] | None = None,
        attributes: Mapping[str, Law | Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise ModelError(f"model name must be a string, got {shown(name)}")
        self.name = name
        self.tick_ms = None if tick_ms is None else parse_duration(tick_ms, f"{name}: tick_ms")
        self.resources: dict[str, int] = {}
        if resources is not None:
            if not isinstance(resources, Mapping):
                raise ModelError(
                    f"{name}: resources must be a mapping of resource name to capacity, like "
                    f"{{'agents': 5}}, got {shown(resources)}"
                )
            for resource, capacity in resources.items():
                self.add_resource(resource, capacity)
        self.states: tuple[str, ...] = _state_names(states, name)
        self._index = {s: i for i, s in enumerate(self.states)}
        self.initial_mix: dict[str, float] = self._mix(initial_state)
        # with a mix, the most likely state (what code written for one initial state reads)
        self.initial_state: str = max(self.initial_mix, key=self.initial_mix.__getitem__)
        self.dwell: dict[str, Law] = {}
        for state, law in _mapping(dwell, f"{name}: dwell").items():
            self.set_dwell(state, law)
        self.attributes: dict[str, Law] = {}
        for attribute, law in _mapping(attributes, f"{name}: attributes").items():
            if not isinstance(attribute, str) or not attribute.isidentifier():
                raise ModelError(
                    f"{name}: attributes: {shown(attribute)} is not an attribute name (a "
                    "Python identifier)"
                )
            self.attributes[attribute] = as_law(law, f"{name}: attribute {attribute!r}")
        self._outgoing: dict[str, list[Transition]] = {s: [] for s in self.states}
        # per state: trigger -> transition (duplicate triggers in O(1))
        self._triggers: dict[str, dict[str, Transition]] = {s: {} for s in self.states}
        # per state: the percentages that share a period, summed (see `_period`)
        self._sums: dict[str, dict[int | None, float]] = {s: {} for s in self.states}
        self.transitions: list[Transition] = []
        if isinstance(transitions, (str, bytes)) or not isinstance(transitions, Iterable):
            raise ModelError(
                f"{name}: transitions must be a list of Transition, got {shown(transitions)}"
            )
        for position, transition in enumerate(transitions):
            if not isinstance(transition, Transition):
                raise ModelError(
                    f"{name}: transitions[{position}] is not a Transition, got {shown(transition)}"
                )
            self.add(transition)

    # -- building --------------------------------------------------------------------------

    def _mix(self, initial: object) -> dict[str, float]:
        """The initial shares per state (summing to 1) from a name or weights."""
        name = self.name
        if isinstance(initial, str):
            if initial not in self._index:
                raise ModelError(
                    f"{name}: initial state {initial!r} is not one of the states "
                    f"{_listing(self.states)}"
                )
            return {initial: 1.0}
        if not isinstance(initial, Mapping):
            raise ModelError(
                f"{name}: initial state {shown(initial)} is not a state name; give one "
                f"of the states {_listing(self.states)}, or weights like {{'a': 3, 'b': 1}}"
            )
        if not initial:
            raise ModelError(f"{name}: the initial mix is empty; give a weight to some state")
        weights: dict[str, float] = {}
        for state, weight in initial.items():
            if state not in self._index:
                raise ModelError(
                    f"{name}: initial mix: {shown(state)} is not one of the states "
                    f"{_listing(self.states)}"
                )
            if isinstance(weight, bool) or not isinstance(weight, Real):
                raise ModelError(
                    f"{name}: initial mix: the weight of {state!r} must be a number, "
                    f"got {shown(weight)}"
                )
            w = float(weight)
            if not math.isfinite(w) or w < 0:
                raise ModelError(
                    f"{name}: initial mix: the weight of {state!r} must be a finite "
                    f"number >= 0, got {shown(weight)}"
                )
            weights[state] = w
        total = math.fsum(weights.values())
        if total <= 0:
            raise ModelError(
                f"{name}: initial mix: the weights sum to 0; give a positive weight to some state"
            )
        return {state: w / total for state, w in weights.items()}

    def set_dwell(self, state: str, law: Law | Mapping[str, Any] | None) -> None:
        """Give `state` a dwell-time law (see `Model`); None: back to the geometric law."""
        if state not in self._index:
            raise ModelError(
                f"{self.name}: dwell: {shown(state)} is not one of the states "
                f"{_listing(self.states)}"
            )
        if law is None:
            self.dwell.pop(state, None)
            return
        self.dwell[state] = as_law(law, f"{self.name}: dwell of state {state!r}")

    @property
    def initial(self) -> str | dict[str, float]:
        """The initial state, or the mix's shares: what builds a copy of this model."""
        return self.initial_state if len(self.initial_mix) == 1 else dict(self.initial_mix)

    @property
    def semi_markov(self) -> bool:
        """True when some state has a dwell law or some transition a delay law."""
        return bool(self.dwell) or any(t.delay is not None for t in self.transitions)

    @property
    def varying(self) -> bool:
        """True when some transition's chance is a table (by month or by age)."""
        return any(t.chances is not None for t in self.transitions)

    def add_resource(self, name: str, capacity: int) -> None:
        """Declare a shared resource (e.g. 5 support agents) that transitions may hold."""
        if not isinstance(name, str) or not name:
            raise ModelError(
                f"{self.name}: resource names must be non-empty strings, got {shown(name)}"
            )
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ModelError(
                f"{self.name}: resource {name!r}: capacity must be a whole number >= 1, "
                f"got {shown(capacity)}"
            )
        self.resources[name] = capacity

    def add_transition(
        self,
        trigger: str,
        from_state: str,
        to_state: str,
        probability: float | Rate | str | None = None,
        action_callback: ActionCallback | None = None,
        event_sinks: Iterable[Any] | Any | None = None,
        *,
        profile: Profile | None = None,
        resource: str | None = None,
        hold: int | HoldFunction = 1,
        delay: Law | Mapping[str, Any] | None = None,
        rate_attribute: str | None = None,
        by_month: Sequence[float] | None = None,
        by_age: Mapping[str, Any] | None = None,
        chances: ChanceTable | Mapping[str, Any] | None = None,
    ) -> Transition:
        """Add and return a transition; see `Transition` for the arguments.

        `probability` is percent per tick, or a `Rate` (or rate text such as ``"6 per day"``
        or ``"0.1% per minute"``) that a run rescales to its tick (`at_tick`). `profile`
        multiplies the per-tick chance by hour of day, day of week and date. `resource`
        names a resource (see `add_resource`) the move must acquire, queueing when all are
        busy, and holds for `hold` ticks: a whole number, or ``hold(subject, transition)``
        returning one, drawn at each grant (e.g. a random call length; draws from the
        global `random` module are seeded by the run). `event_sinks` is a list of sinks; a
        single sink is taken as a list of one. `delay` and `rate_attribute`: see `Transition`.
        `by_month` (12 percentages, January first) or `by_age` (``{"edges": [0, 12],
        "chances": [5, 1]}``) give the chance per tick as a table instead of `probability`
        (or `chances`: a `dogesim.varying.ChanceTable`).
        """
        try:
            transition = Transition(
                trigger,
                from_state,
                to_state,
                probability,
                action_callback,
                event_sinks,
                profile=profile,
                resource=resource,
                hold=hold,
                delay=delay,
                rate_attribute=rate_attribute,
                by_month=by_month,
                by_age=by_age,
                chances=chances,
            )
        except ModelError as exc:
            raise ModelError(f"{self.name}: {exc}") from None
        return self.add(transition)

    def add(self, transition: Transition) -> Transition:
        """Validate `transition` against this model and add it (itself, not a copy).

        Raises:
            ModelError: naming the model, transition and value: unknown states or resource,
                a trigger already leaving that state, or percentages summing over 100%.
        """
        if not isinstance(transition, Transition):
            raise ModelError(f"{self.name}: add() takes a Transition, got {shown(transition)}")
        trigger = transition.trigger
        where = (
            f"{self.name}: transition {trigger!r} "
            f"({transition.from_state!r} -> {transition.to_state!r})"
        )
        for role in ("from_state", "to_state"):
            state = getattr(transition, role)
            if state not in self._index:
                raise ModelError(
                    f"{where}: {role} {state!r} is not one of the states {_listing(self.states)}"
                )
        if transition.resource is not None and transition.resource not in self.resources:
            raise ModelError(
                f"{where}: resource {transition.resource!r} is not declared; "
                f"resources are {sorted(self.resources)} (Model.add_resource)"
            )
        source = transition.from_state
        other = self._triggers[source].get(trigger)
        if other is not None:
            raise ModelError(
                f"{self.name}: state {source!r} already has a transition with trigger "
                f"{trigger!r} (to {other.to_state!r}); triggers leaving one state must be unique"
            )
        period, amount = self._period(transition)
        sums = self._sums[source]
        total = sums.get(period, 0.0) + (amount or 0.0)
        if amount is not None and total > 100 + PROBABILITY_TOLERANCE:
            self._check_profiled(transition, period, total)
        self._check_tables(source, transition)
        if amount is not None:
            sums[period] = total
        self._outgoing[source].append(transition)
        self._triggers[source][trigger] = transition
        self.transitions.append(transition)
        return transition

    def _period(self, transition: Transition) -> tuple[int | None, float | None]:
        """Which percentages `transition` is summed with, and its share of that sum.

        Percentages sum per period: plain ones per tick of this model (`tick_ms`, None: the
        run's), rates per their own period. Counts (``N per P``) have no upper bound.
        """
        rate = transition.rate
        if transition.chances is not None:
            return self.tick_ms, None  # summed tick by tick (`_check_tables`)
        if rate is None or not math.isnan(transition.probability):
            return self.tick_ms, transition.probability
        if rate.kind == "percent":
            return rate.period_ms, rate.value
        return None, None

    def _check_tables(self, source: str, transition: Transition) -> None:
        """With chance tables, the state's total at every (month, age) is at most 100%,
        its profiled transitions counted at their peak (`varying.profiled_state_peak`).

        Only a tick whose total really exceeds 100% is refused: tables peaking in
        different months may have peaks that sum over 100%."""
        outgoing = (*self._outgoing[source], transition)
        tables = [t.chances for t in outgoing if t.chances]
        if not tables:
            return
        terms = []
        for t in outgoing:
            period, amount = self._period(t)
            if period == self.tick_ms and amount is not None:
                terms.append((amount, t.profile))
        peak = profiled_state_peak(terms, tables)
        if peak > 100 + PROBABILITY_TOLERANCE:
            raise ModelError(
                f"{self.name}: state {source!r}: with the chance tables (by_month, by_age) "
                f"of its transitions, the outgoing probabilities reach {peak:g}% in some "
                f"tick (adding {transition.trigger!r}), at most 100%"
            )

    def _check_profiled(self, transition: Transition, period: int | None, total: float) -> None:
        """The state's percentages sum over 100%: refused, unless calendar profiles keep
        every moment's total at or under 100% (peaks at different hours never add up; a
        profile that lifts a total over 100% is refused by the run, at its tick)."""
        same = [t for t in self._outgoing[transition.from_state] if self._period(t)[0] == period]
        same.append(transition)
        if period != self.tick_ms or all(t.profile is None for t in same):
            raise ModelError(self._over_100(transition, period, total))
        peak, moment = profiled_peak((self._period(t)[1] or 0.0, t.profile) for t in same)
        if peak > 100 + PROBABILITY_TOLERANCE:
            when = "" if moment is None else f" (e.g. at {moment_text(moment)})"
            raise ModelError(
                f"{self._over_100(transition, period, total)}; with their calendar profiles "
                f"they still reach {peak:g}% at some moment{when}"
            )

    def _over_100(self, transition: Transition, period: int | None, total: float) -> str:
        same = [t for t in self._outgoing[transition.from_state] if self._period(t)[0] == period]
        listing = ", ".join(f"{t.trigger} {_chance_text(t)}" for t in same)
        # percentages per tick of this model need no unit; rates of another period do
        unit = "" if period in (None, self.tick_ms) else f" per {format_duration(period)}"
        return (
            f"{self.name}: state {transition.from_state!r}: outgoing probabilities sum to "
            f"{total:g}%{unit}, at most 100% ({listing}, + {transition.trigger} "
            f"{_chance_text(transition)})"
        )

    # -- reading ---------------------------------------------------------------------------

    def index(self, state: str) -> int:
        """The position of `state` in `states`."""
        try:
            return self._index[state]
        except (KeyError, TypeError):
            raise ModelError(
                f"{self.name}: unknown state {shown(state)}; states are {_listing(self.states)}"
            ) from None

    def outgoing(self, state: str) -> tuple[Transition, ...]:
        """The transitions leaving `state`, in the order they were added."""
        self.index(state)
        return tuple(self._outgoing[state])

    def leave_probability(self, state: str) -> float:
        """Percent per tick that a subject in `state` attempts some transition.

        Raises:
            ModelError: the state has rates and the model no tick length (use `at_tick`).
        """
        self.index(state)
        if any(math.isnan(t.probability) for t in self._outgoing[state]):
            if self.tick_ms is None:
                raise ModelError(
                    f"{self.name}: state {state!r} has rates; its chance per tick needs a "
                    "tick length: use model.at_tick(tick_ms)"
                )
            return self.at_tick(self.tick_ms).leave_probability(state)
        return min(math.fsum(t.probability for t in self._outgoing[state]), 100.0)

    def is_final(self, state: str) -> bool:
        """True when `state` has no outgoing transitions."""
        self.index(state)
        return not self._outgoing[state]

    def sinks(self) -> list[Any]:
        """Every distinct sink (by identity) used by a transition, in first-use order."""
        seen: set[int] = set()
        out: list[Any] = []
        for transition in self.transitions:
            for sink in transition.event_sinks:
                if id(sink) not in seen:
                    seen.add(id(sink))
                    out.append(sink)
        return out

    def triggers(self) -> list[str]:
        """Distinct trigger names in first-use order."""
        return list(dict.fromkeys(t.trigger for t in self.transitions))

    @property
    def needs_tick(self) -> bool:
        """True when some transition is a rate still waiting for a tick length."""
        return any(math.isnan(t.probability) for t in self.transitions)

    def at_tick(self, tick_ms: int) -> Model:
        """This model with every chance rescaled to ticks of `tick_ms`, per state.

        Returns itself when nothing changes. In each state, percentages per tick of this run
        (plain numbers of a model without `tick_ms` or with this tick, and ``X% per P``
        when P is the tick) are kept; every other chance (a `Rate`, or a percentage per
        tick of a model written for another tick, read as ``X% per tick_ms``) is rescaled
        with the state's other rates as one total and split in proportion, taking its share
        of the ticks the per-tick chances leave: see `dogesim.rates.per_tick_chances` for
        the exact law. The rescaled transitions keep every other field and, in `rate`, the
        rate they were given, so rescaling again starts from what was given.

        Raises:
            ModelError: a state's per-tick percentages sum to more than 100%.
        """
        check_tick(tick_ms, f"{self.name}: tick_ms")
        if self.varying and self.tick_ms not in (None, tick_ms):
            raise ModelError(
                f"{self.name}: its chance tables (by_month, by_age) are percentages per tick "
                f"of {format_duration(self.tick_ms)}; run it at that tick (not "
                f"{format_duration(tick_ms)})"
            )
        if not self._has_durations():
            if self.tick_ms == tick_ms and not self.needs_tick:
                return self
            if self.tick_ms is None and all(t.rate is None for t in self.transitions):
                return self
        rescaled: dict[int, Transition] = {}
        for state in self.states:
            outgoing = self._outgoing[state]
            sources = [self._source(t, tick_ms) for t in outgoing]
            chances = per_tick_chances(sources, tick_ms, f"{self.name}: state {state!r}")
            for t, chance, given in zip(outgoing, chances, sources, strict=True):
                rate = given if isinstance(given, Rate) else None
                delay = t.delay.at_tick(tick_ms) if t.delay is not None else None
                table = t.chances.at_tick(tick_ms) if t.chances is not None else None
                rescaled[id(t)] = dataclasses.replace(
                    t, probability=chance, rate=rate, delay=delay, chances=table
                )
        return Model(
            self.states,
            self.initial,
            [rescaled[id(t)] for t in self.transitions],
            name=self.name,
            tick_ms=tick_ms,
            resources=self.resources,
            dwell={s: law.at_tick(tick_ms) for s, law in self.dwell.items()},
            attributes=self.attributes,
        )

    def _has_durations(self) -> bool:
        """True when a dwell or delay law has its times as durations (not yet in ticks)."""
        laws = [*self.dwell.values(), *(t.delay for t in self.transitions if t.delay)]
        tables = [t.chances for t in self.transitions if t.chances is not None]
        return any(not law.in_ticks for law in laws) or any(not t.in_ticks for t in tables)

    def _source(self, transition: Transition, tick_ms: int) -> float | Rate:
        """What `transition` was given, as `per_tick_chances` reads it at `tick_ms`."""
        if transition.rate is not None:
            return transition.rate
        if self.tick_ms is None or self.tick_ms == tick_ms:
            return transition.probability
        return Rate("percent", transition.probability, self.tick_ms)

    def transition_matrix(self) -> list[list[float]]:
        """The per-tick Markov matrix ``P[i][j]`` (fractions) ignoring callback vetoes.

        Raises:
            ModelError: a transition is a rate and the model has no tick length yet.
        """
        if self.needs_tick:
            if self.tick_ms is not None:
                return self.at_tick(self.tick_ms).transition_matrix()
            t = next(t for t in self.transitions if math.isnan(t.probability))
            raise ModelError(
                f"{self.name}: transition {t.trigger!r} is given as a rate ({t.rate}); "
                "the per-tick matrix needs a tick length: use model.at_tick(tick_ms)"
            )
        n = len(self.states)
        matrix = [[0.0] * n for _ in range(n)]
        for i, state in enumerate(self.states):
            stay = 1.0
            for t in self._outgoing[state]:
                p = t.probability / 100.0
                matrix[i][self._index[t.to_state]] += p
                stay -= p
            matrix[i][i] += max(stay, 0.0)
        return matrix

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, states={_listing(self.states)}, "
            f"initial={self.initial_state!r}, transitions={len(self.transitions)})"
        )


def _state_names(states: object, name: str) -> tuple[str, ...]:
    """`states` checked: an ordered iterable of unique, non-empty names."""
    if isinstance(states, Set):
        raise ModelError(
            f"{name}: a set of states has no fixed order (it changes with PYTHONHASHSEED, "
            "and so would every run); pass a list"
        )
    if isinstance(states, (str, bytes)) or not isinstance(states, Iterable):
        raise ModelError(f"{name}: states must be a list of state names, got {shown(states)}")
    state_list = list(states)
    if not state_list:
        raise ModelError(f"{name}: the state list is empty; give at least one state")
    seen: set[str] = set()
    for state in state_list:
        _check_state_name(state, name)
        if state in seen:
            raise ModelError(f"{name}: state {state!r} is listed twice")
        seen.add(state)
    return tuple(state_list)


def _chance_text(transition: Transition) -> str:
    if transition.rate is not None and math.isnan(transition.probability):
        return str(transition.rate)
    return f"{transition.probability:g}%"


def _mapping(value: object, where: str) -> Mapping[Any, Any]:
    """`value` as a mapping (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelError(f"{where}: expected a mapping of name to law, got {shown(value)}")
    return value
