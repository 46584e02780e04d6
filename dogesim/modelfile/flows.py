"""The ``arrivals:`` and ``churn:`` sections of a model file: subjects joining and leaving.

- `_read_arrivals(top, profiles)`: the arrival rate and the profile shaping it.
- `_read_churn(top, sink_names, default_sinks)`: the churn chance and the sinks of its
  ``churn`` events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from dogesim.modelfile.online import _profile_at, _read_arrival_rate, _read_chance, _sink_names
from dogesim.modelfile.source import _Map, _Reader
from dogesim.rates import Profile, Rate

T = TypeVar("T")


def _read_arrivals(
    top: _Reader, profiles: Mapping[str, Profile]
) -> tuple[float | Rate | None, Profile | None]:
    """``arrivals: 30 per hour`` or ``arrivals: {rate: ..., profile: ...}``; (None, None)
    without the key."""

    def profile(section: _Reader) -> Profile | None:
        return _profile_at(section, "profile", profiles) if section.has("profile") else None

    return _read_flow(top, "arrivals", "profile", _read_arrival_rate, profile, None)


def _read_churn(
    top: _Reader, sink_names: Sequence[str], default_sinks: tuple[str, ...]
) -> tuple[float | Rate | None, tuple[str, ...]]:
    """``churn: 0.1%`` or ``churn: {rate: ..., sinks: [...]}``; the sinks default to
    `default_sinks`."""

    def sinks(section: _Reader) -> tuple[str, ...]:
        return _sink_names(section, "sinks", list(sink_names), default_sinks)

    return _read_flow(top, "churn", "sinks", _read_chance, sinks, default_sinks)


def _read_flow(
    top: _Reader,
    key: str,
    other: str,
    read_rate: Callable[[_Reader, str], float | Rate],
    read_other: Callable[[_Reader], T],
    absent: T,
) -> tuple[float | Rate | None, T]:
    """`key` as a rate, or as a mapping of ``rate:`` and an optional `other` (read by
    `read_other`); `absent` stands for `other` when the mapping form is not used."""
    if not top.has(key):
        return None, absent
    if not isinstance(top.raw(key), _Map):
        return read_rate(top, key), absent
    section = top.mapping(key)
    section.check_keys(("rate", other), ("rate",))
    rate = read_rate(section, "rate")
    return rate, read_other(section)
