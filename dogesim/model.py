"""Models: the state machine that subjects walk, validated as it is built.

- `Transition`: one edge, with its trigger, probability in percent per tick, optional action
  callback and event sinks (the doge-datagen class and attribute names).
- `Model`: states, the initial state and the transitions; every mistake raises `ModelError`
  (a `ValueError`) when the model is built, naming the state, trigger and value at fault.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import Any

from dogesim.errors import ModelError
from dogesim.rates import Profile, Rate, parse_duration, parse_rate

__all__ = ["PROBABILITY_TOLERANCE", "ActionCallback", "HoldFunction", "Model", "Transition"]

#: Outgoing probabilities may exceed 100% by this much (floating-point slack, e.g. 33.3+66.7).
PROBABILITY_TOLERANCE = 1e-9

ActionCallback = Callable[[Any, "Transition"], Any]
#: ``hold(subject, transition) -> ticks``: how long a granted resource is held.
HoldFunction = Callable[[Any, "Transition"], int]


class Transition:
    """One possible move of the state machine.

    Attributes:
        trigger: the event name; unique among the transitions leaving `from_state`.
        from_state: the state the move starts from.
        to_state: the state it ends in (may equal `from_state`: a self-loop event).
        probability: percent per tick (100 = certain) that a subject in `from_state` tries it.
        action_callback: ``callback(subject, transition)`` run on an attempt; a falsy result
            vetoes the move (the subject stays, no event).
        event_sinks: sinks whose ``collect(timestamp, subject, transition)`` is called, in
            this order, on every successful move.
    """

    __slots__ = (
        "action_callback",
        "event_sinks",
        "from_state",
        "hold",
        "probability",
        "profile",
        "rate",
        "resource",
        "to_state",
        "trigger",
    )

    def __init__(
        self,
        trigger: str,
        from_state: str,
        to_state: str,
        probability: float | Rate | str,
        action_callback: ActionCallback | None = None,
        event_sinks: Iterable[Any] | None = None,
        *,
        profile: Profile | None = None,
        resource: str | None = None,
        hold: int | HoldFunction = 1,
    ) -> None:
        self.trigger = trigger
        self.from_state = from_state
        self.to_state = to_state
        #: A `Rate` when the chance was given per unit of time (then `probability` is the
        #: per-tick value once a tick length is known, NaN before).
        self.rate: Rate | None = None
        if isinstance(probability, str):
            probability = parse_rate(probability, f"transition {trigger!r}")
        if isinstance(probability, Rate):
            self.rate = probability
            probability = math.nan
        self.probability = probability
        self.action_callback = action_callback
        self.event_sinks: tuple[Any, ...] = tuple(event_sinks) if event_sinks else ()
        self.profile = profile
        self.resource = resource
        self.hold = hold

    def _copy(self, probability: float) -> Transition:
        copy = Transition(
            self.trigger,
            self.from_state,
            self.to_state,
            probability,
            self.action_callback,
            self.event_sinks,
            profile=self.profile,
            resource=self.resource,
            hold=self.hold,
        )
        copy.rate = self.rate
        return copy

    def __repr__(self) -> str:
        chance = f"{self.probability}%" if self.rate is None else str(self.rate)
        return f"Transition({self.trigger!r}, {self.from_state!r} -> {self.to_state!r}, {chance})"


def _check_state_name(state: object, where: str) -> str:
    if not isinstance(state, str) or not state:
        raise ModelError(f"{where}: state names must be non-empty strings, got {state!r}")
    return state


def _check_probability(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(
            f"{where}: probability must be a number of percent per tick, "
            f"got {value!r} ({type(value).__name__})"
        )
    p = float(value)
    if math.isnan(p) or math.isinf(p):
        raise ModelError(f"{where}: probability must be finite, got {p}")
    if p < 0:
        raise ModelError(f"{where}: probability must be >= 0%, got {p}%")
    if p > 100 + PROBABILITY_TOLERANCE:
        raise ModelError(f"{where}: probability must be at most 100%, got {p}%")
    return p


class Model:
    """A validated state machine: states, an initial state and transitions.

    Args:
        states: every state name, unique, non-empty strings.
        initial_state: the state every subject starts in.
        transitions: transitions to add now (more can be added with `add_transition`).
        name: a label used in error messages and reports.

    Raises:
        ModelError: on an empty or duplicate state list, an unknown initial state, or any
            invalid transition.
    """

    def __init__(
        self,
        states: Sequence[str],
        initial_state: str,
        transitions: Iterable[Transition] = (),
        *,
        name: str = "model",
        tick_ms: int | str | None = None,
        resources: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        #: The tick the per-tick probabilities refer to; None: whatever tick a run uses
        #: (doge-datagen's meaning). With it, a run at another tick rescales them.
        self.tick_ms = None if tick_ms is None else parse_duration(tick_ms, f"{name}: tick_ms")
        self.resources: dict[str, int] = {}
        for resource, capacity in (resources or {}).items():
            self.add_resource(resource, capacity)
        if isinstance(states, str) or not isinstance(states, Iterable):
            raise ModelError(f"{name}: states must be a list of state names, got {states!r}")
        state_list = list(states)
        if not state_list:
            raise ModelError(f"{name}: the state list is empty; give at least one state")
        seen: set[str] = set()
        for state in state_list:
            _check_state_name(state, name)
            if state in seen:
                raise ModelError(f"{name}: state {state!r} is listed twice")
            seen.add(state)
        self.states: tuple[str, ...] = tuple(state_list)
        self._index = {s: i for i, s in enumerate(self.states)}
        if initial_state not in self._index:
            raise ModelError(
                f"{name}: initial state {initial_state!r} is not one of the states "
                f"{list(self.states)}"
            )
        self.initial_state = initial_state
        self._outgoing: dict[str, list[Transition]] = {s: [] for s in self.states}
        self._sums: dict[str, float] = {s: 0.0 for s in self.states}
        self.transitions: list[Transition] = []
        for transition in transitions:
            self.add(transition)

    # -- building --------------------------------------------------------------------------

    def add_resource(self, name: str, capacity: int) -> None:
        """Declare a shared resource (e.g. 5 support agents) that transitions may hold."""
        if not isinstance(name, str) or not name:
            raise ModelError(f"{self.name}: resource names must be non-empty strings, got {name!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ModelError(
                f"{self.name}: resource {name!r}: capacity must be a whole number >= 1, "
                f"got {capacity!r}"
            )
        self.resources[name] = capacity

    def add_transition(
        self,
        trigger: str,
        from_state: str,
        to_state: str,
        probability: float,
        action_callback: ActionCallback | None = None,
        event_sinks: Iterable[Any] | None = None,
        *,
        profile: Profile | None = None,
        resource: str | None = None,
        hold: int | HoldFunction = 1,
    ) -> Transition:
        """Add and return a transition; see `Transition` for the arguments.

        `probability` is percent per tick, or a `Rate` (or rate text such as ``"6 per day"``
        or ``"0.1% per minute"``) that a run rescales to its tick. `profile` multiplies it by
        hour of day, day of week and date. `resource` names a resource (see `add_resource`)
        the move must acquire, queueing when all are busy, and holds for `hold` ticks: a whole
        number, or ``hold(subject, transition)`` returning one, drawn at each grant (e.g. a
        random call length; draws from the global `random` module are seeded by the run).
        """
        return self.add(
            Transition(
                trigger,
                from_state,
                to_state,
                probability,
                action_callback,
                event_sinks,
                profile=profile,
                resource=resource,
                hold=hold,
            )
        )

    def add(self, transition: Transition) -> Transition:
        """Validate and add `transition`; raises `ModelError` naming what is wrong."""
        trigger = transition.trigger
        if not isinstance(trigger, str) or not trigger:
            raise ModelError(
                f"{self.name}: transition from {transition.from_state!r} to "
                f"{transition.to_state!r}: trigger must be a non-empty string, got {trigger!r}"
            )
        where = (
            f"{self.name}: transition {trigger!r} "
            f"({transition.from_state!r} -> {transition.to_state!r})"
        )
        ends = (("from_state", transition.from_state), ("to_state", transition.to_state))
        for role, state in ends:
            if not isinstance(state, str) or state not in self._index:
                raise ModelError(
                    f"{where}: {role} {state!r} is not one of the states {list(self.states)}"
                )
        if transition.rate is not None:
            if self.tick_ms is not None:
                transition.probability = transition.rate.per_tick(self.tick_ms)
        else:
            transition.probability = _check_probability(transition.probability, where)
        if transition.profile is not None and not isinstance(transition.profile, Profile):
            raise ModelError(
                f"{where}: profile must be a dogesim.Profile, got {transition.profile!r}"
            )
        if transition.resource is not None:
            if transition.resource not in self.resources:
                raise ModelError(
                    f"{where}: resource {transition.resource!r} is not declared; "
                    f"resources are {sorted(self.resources)} (Model.add_resource)"
                )
            hold = transition.hold
            if not callable(hold) and (
                isinstance(hold, bool) or not isinstance(hold, int) or hold < 1
            ):
                raise ModelError(
                    f"{where}: hold must be a whole number of ticks >= 1 (or a function "
                    f"returning one), got {hold!r}"
                )
        if transition.action_callback is not None and not callable(transition.action_callback):
            raise ModelError(
                f"{where}: action_callback must be callable, got {transition.action_callback!r}"
            )
        for position, sink in enumerate(transition.event_sinks):
            if not callable(getattr(sink, "collect", None)):
                raise ModelError(
                    f"{where}: event_sinks[{position}] = {sink!r} has no collect() method"
                )
        outgoing = self._outgoing[transition.from_state]
        for other in outgoing:
            if other.trigger == trigger:
                raise ModelError(
                    f"{self.name}: state {transition.from_state!r} already has a transition "
                    f"with trigger {trigger!r} (to {other.to_state!r}); triggers leaving one "
                    "state must be unique"
                )
        given = 0.0 if math.isnan(transition.probability) else transition.probability
        total = self._sums[transition.from_state] + given
        if total > 100 + PROBABILITY_TOLERANCE:
            listing = ", ".join(f"{t.trigger} {t.probability:g}%" for t in outgoing)
            raise ModelError(
                f"{self.name}: state {transition.from_state!r}: outgoing probabilities sum to "
                f"{total:g}%, at most 100% ({listing}, + {trigger} {transition.probability:g}%)"
            )
        outgoing.append(transition)
        self._sums[transition.from_state] = total
        self.transitions.append(transition)
        return transition

    # -- reading ---------------------------------------------------------------------------

    def index(self, state: str) -> int:
        """The position of `state` in `states`."""
        try:
            return self._index[state]
        except KeyError:
            raise ModelError(
                f"{self.name}: unknown state {state!r}; states are {list(self.states)}"
            ) from None

    def outgoing(self, state: str) -> tuple[Transition, ...]:
        """The transitions leaving `state`, in the order they were added."""
        self.index(state)
        return tuple(self._outgoing[state])

    def leave_probability(self, state: str) -> float:
        """Percent per tick that a subject in `state` attempts some transition."""
        self.index(state)
        return min(self._sums[state], 100.0)

    def is_final(self, state: str) -> bool:
        """True when `state` has no outgoing transitions."""
        return not self.outgoing(state)

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
        """This model with every chance rescaled to ticks of `tick_ms` (itself if nothing
        changes): rates convert, and per-tick probabilities of a model with its own `tick_ms`
        rescale as ``p' = 1 - (1 - p) ** (tick_ms / self.tick_ms)``.

        Raises:
            ModelError: a state's rescaled probabilities sum to more than 100%.
        """
        same = self.tick_ms in (None, tick_ms)
        if same and not any(t.rate is not None for t in self.transitions):
            return self
        model = Model(
            self.states,
            self.initial_state,
            name=self.name,
            tick_ms=tick_ms,
            resources=self.resources,
        )
        for t in self.transitions:
            if t.rate is not None:
                model.add(t._copy(t.rate.per_tick(tick_ms)))
            elif same or self.tick_ms is None:
                model.add(t._copy(t.probability))
            else:
                p = min(t.probability / 100.0, 1.0)
                scaled = (
                    100.0
                    if p >= 1.0
                    else -100.0 * math.expm1(tick_ms / self.tick_ms * math.log1p(-p))
                )
                model.add(t._copy(scaled))
        return model

    def transition_matrix(self) -> list[list[float]]:
        """The per-tick Markov matrix ``P[i][j]`` (fractions) ignoring callback vetoes.

        Raises:
            ModelError: a transition is a rate and the model has no tick length yet.
        """
        for t in self.transitions:
            if math.isnan(t.probability):
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
            f"Model({self.name!r}, states={list(self.states)}, "
            f"initial={self.initial_state!r}, transitions={len(self.transitions)})"
        )
