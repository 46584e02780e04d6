"""The ``transitions:`` section of a model file.

- `TransitionSpec`: one transition as the file gives it.
- `_read_transitions(...)`: read and check every entry (states, chance, callback and its
  ``args:``, sinks, profile, resource and hold, delay, rate attribute), each checked against
  a model of the file's states so a bad transition names its own line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dogesim.errors import ModelError
from dogesim.laws import Law
from dogesim.model import Model, Transition
from dogesim.modelfile.build import _add_transition
from dogesim.modelfile.cohorts import CHANCE_KEYS, read_args, read_chances, read_law
from dogesim.modelfile.keys import _TRANSITION_KEYS, _TRANSITION_REQUIRED, _did_you_mean
from dogesim.modelfile.online import (
    RandomHold,
    _profile_at,
    _read_chance,
    _read_hold,
    _sink_names,
)
from dogesim.modelfile.source import _callable_at, _check_call, _describe, _Map, _Reader, _Source
from dogesim.rates import Profile, Rate
from dogesim.varying import ChanceTable


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
        chances: the chance table (``by_month:`` / ``by_age:``) given instead of a
            probability, or None (`probability` then holds the table's mean).
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
    chances: ChanceTable | None = None


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
    """Every entry of ``transitions:``, in file order."""
    items = reader.sequence("transitions")
    context = _Context(
        tuple(states), frozenset(states), sink_names, default_sinks, tick_ms, profiles, resources
    )
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
        tabled = any(t.has(key) for key in CHANCE_KEYS)  # a table replaces probability
        t.check_keys(_TRANSITION_KEYS, _TRANSITION_REQUIRED[:3] if tabled else _TRANSITION_REQUIRED)
        spec = _read_transition(t, line, context)
        try:
            _add_transition(check, spec)
        except ModelError as exc:
            raise src.error(line, path, str(exc)) from None
        out.append(spec)
    return out


@dataclass(frozen=True)
class _Context:
    """What every transition is checked against: the rest of the file."""

    states: tuple[str, ...]
    known: frozenset[str]  # the states as a set: one lookup per end, not a scan
    sink_names: Sequence[str]
    default_sinks: tuple[str, ...]
    tick_ms: int
    profiles: Mapping[str, Profile]
    resources: Mapping[str, int]


def _read_transition(t: _Reader, line: int, context: _Context) -> TransitionSpec:
    """One entry, its keys read in the order their errors are reported."""
    trigger = t.name("trigger")
    from_state = _read_state(t, "from", context)
    to_state = _read_state(t, "to", context)
    chances = read_chances(t)
    probability = chances.mean() if chances else _read_chance(t, "probability")
    args = read_args(t, "args") if t.has("args") else {}
    callback, callback_path = _read_callback(t, args)
    chosen = _sink_names(t, "sinks", context.sink_names, context.default_sinks)
    profile, profile_name = _read_profile(t, context.profiles)
    resource = _read_resource(t, context.resources)
    hold: int | RandomHold = 1
    if t.has("hold"):
        if resource is None:
            raise t.error("hold", "hold needs a resource to hold; add resource: NAME")
        hold = _read_hold(t, context.tick_ms)
    return TransitionSpec(
        trigger,
        from_state,
        to_state,
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
        chances,
    )


def _read_state(t: _Reader, key: str, context: _Context) -> str:
    """``from:`` or ``to:``: one of the file's states."""
    state = t.string(key)
    if state not in context.known:
        states = context.states
        raise t.error(
            key,
            f"{state!r} is not a state{_did_you_mean(state, states)}; states: {', '.join(states)}",
        )
    return state


def _read_callback(
    t: _Reader, args: Mapping[str, Any]
) -> tuple[Callable[..., Any] | None, str | None]:
    """``callback:`` (imported, and checked callable with ``args:``) and its path."""
    if args and not t.has("callback"):
        raise t.error("args", "args are keyword arguments for a callback; add callback:")
    if not t.has("callback"):
        return None, None
    callback = _callable_at(t, "callback")
    _check_call(t, "callback", callback, None, None, as_="callback(subject, transition)", **args)
    return callback, t.string("callback")


def _read_profile(t: _Reader, profiles: Mapping[str, Profile]) -> tuple[Profile | None, str | None]:
    """``profile:``: a named profile of ``profiles:`` or an inline one, and its name."""
    if not t.has("profile"):
        return None, None
    profile = _profile_at(t, "profile", profiles)
    raw = t.raw("profile")
    return profile, str(raw) if isinstance(raw, str) else None


def _read_resource(t: _Reader, resources: Mapping[str, int]) -> str | None:
    """``resource:``: one declared under ``resources:``."""
    if not t.has("resource"):
        return None
    resource = t.string("resource")
    if resource not in resources:
        raise t.error(
            "resource",
            f"resource {resource!r} is not declared{_did_you_mean(resource, list(resources))}; "
            f"resources under 'resources:' are {', '.join(resources) or 'none'} (e.g. "
            f"resources: {{{resource}: 5}})",
        )
    return resource
