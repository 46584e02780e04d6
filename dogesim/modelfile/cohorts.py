"""The model-file keys of cohorts: initial mixes, dwell and delay laws, callback arguments.

- `read_initial(top, states)`: ``initial_state: school`` or a mix ``{school: 19, FE: 14}``.
- `read_dwell(top, states)`: ``dwell: {school: {law: fixed, value_ticks: 24}, ...}``.
- `read_law(reader, key)`: one law in its data form (see `dogesim.laws`), e.g. a
  transition's ``delay: {law: lognormal, median: 3 min, sigma: 0.4}``.
- `read_args(reader, key)`: a transition's ``args:``, keyword arguments for its callback.
- `read_chances(reader)`: a transition's chance table, ``by_month: [12 percentages]`` or
  ``by_age: {edges: [0, 12, 24], chances: [...]}`` (instead of ``probability``).
- `CHANCE_KEYS`: those two keys, for the transitions section's key list.

Each error names the file, the line and the key, and says what would be right.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from dogesim.errors import ModelError
from dogesim.laws import Law, as_law
from dogesim.modelfile.source import _describe, _Map, _plain, _Reader
from dogesim.varying import ChanceTable, chance_table

__all__ = ["CHANCE_KEYS", "read_args", "read_chances", "read_dwell", "read_initial", "read_law"]

#: The transition keys of chance tables (each replaces ``probability``).
CHANCE_KEYS = ("by_month", "by_age")


def _state(reader: _Reader, key: str, state: object, states: Sequence[str]) -> str:
    if isinstance(state, str) and state in states:
        return state
    # a hint only for names of a plausible size (difflib is quadratic in their length)
    short = [s for s in states if len(s) <= 200] if len(str(state)) <= 200 else []
    hint = difflib.get_close_matches(str(state), short, n=1)
    maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise reader.error(key, f"{state!r} is not one of the states {', '.join(states)}{maybe}")


def read_initial(top: _Reader, states: Sequence[str]) -> str | dict[str, float]:
    """The initial state, or the mix's weights per state (checked by `Model`)."""
    raw = top.raw("initial_state")
    if not isinstance(raw, _Map):
        initial = top.string("initial_state")
        return _state(top, "initial_state", initial, states)
    section = top.mapping("initial_state")
    weights: dict[str, float] = {}
    for state, weight in raw.items():
        _state(section, str(state), state, states)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise section.error(
                str(state), f"weight {_describe(weight)} is not a number >= 0 (e.g. a count)"
            )
        weights[state] = float(weight)
    if not weights or sum(weights.values()) <= 0:
        raise top.error("initial_state", "the mix has no positive weight; give e.g. {a: 3, b: 1}")
    return weights


def read_law(reader: _Reader, key: str) -> Law:
    """The law under `key`, in its data form."""
    raw = reader.raw(key)
    if not isinstance(raw, _Map):
        raise reader.error(
            key,
            f"{_describe(raw)}: give a law as a mapping, e.g. {{law: gamma, shape: 2, "
            "scale_ticks: 12}} or {law: fixed, value: 3 min}",
        )
    try:
        return as_law(_plain(raw), "law")
    except ModelError as exc:
        raise reader.error(key, str(exc).removeprefix("law: ")) from None


def read_dwell(top: _Reader, states: Sequence[str]) -> dict[str, Law]:
    """``dwell:``: per state, its dwell-time law."""
    if not top.has("dwell"):
        return {}
    section = top.mapping("dwell")
    out: dict[str, Law] = {}
    for state in section.node:
        key = str(state)
        out[_state(section, key, state, states)] = read_law(section, key)
    return out


def read_args(reader: _Reader, key: str) -> dict[str, Any]:
    """``args:``: keyword arguments the callback is called with, after (subject, transition)."""
    raw = reader.raw(key)
    if not isinstance(raw, _Map):
        raise reader.error(key, f"{_describe(raw)}: give keyword arguments as a mapping")
    args = _plain(raw)
    for name in args:
        if not isinstance(name, str) or not name.isidentifier():
            raise reader.error(key, f"{name!r} is not a keyword argument name")
    return dict(args)


def read_chances(reader: _Reader) -> ChanceTable | None:
    """A transition's ``by_month`` / ``by_age`` table (None without one)."""
    given = [key for key in CHANCE_KEYS if reader.has(key)]
    if not given:
        return None
    key = given[0]
    if len(given) > 1:
        raise reader.error(given[1], f"give one chance table: {key} or {given[1]}, not both")
    if reader.has("probability"):
        raise reader.error(
            "probability", f"{key} gives the chances; drop probability (it would be ignored)"
        )
    try:
        return chance_table({key: _plain(reader.raw(key))}, key)
    except ModelError as exc:
        message = str(exc)
        while message.startswith(f"{key}: "):
            message = message.removeprefix(f"{key}: ")
        raise reader.error(key, message) from None
