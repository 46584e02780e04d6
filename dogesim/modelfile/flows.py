"""The ``arrivals:`` and ``churn:`` sections of a model file: subjects joining and leaving.

- `_read_arrivals(top, profiles)`: the arrival rate and the profile shaping it.
- `_read_churn(top, sink_names, default_sinks)`: the churn chance and the sinks of its
  ``churn`` events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dogesim.modelfile.online import _profile_at, _read_arrival_rate, _read_chance, _sink_names
from dogesim.modelfile.source import _Map, _Reader
from dogesim.rates import Profile, Rate


def _read_arrivals(
    top: _Reader, profiles: Mapping[str, Profile]
) -> tuple[float | Rate | None, Profile | None]:
    """``arrivals: 30 per hour`` or ``arrivals: {rate: ..., profile: ...}``; (None, None)
    without the key."""
    if not top.has("arrivals"):
        return None, None
    if not isinstance(top.raw("arrivals"), _Map):
        return _read_arrival_rate(top, "arrivals"), None
    section = top.mapping("arrivals")
    section.check_keys(("rate", "profile"), ("rate",))
    arrivals = _read_arrival_rate(section, "rate")
    profile = _profile_at(section, "profile", profiles) if section.has("profile") else None
    return arrivals, profile


def _read_churn(
    top: _Reader, sink_names: Sequence[str], default_sinks: tuple[str, ...]
) -> tuple[float | Rate | None, tuple[str, ...]]:
    """``churn: 0.1%`` or ``churn: {rate: ..., sinks: [...]}``; the sinks default to
    `default_sinks`."""
    if not top.has("churn"):
        return None, default_sinks
    if not isinstance(top.raw("churn"), _Map):
        return _read_chance(top, "churn"), default_sinks
    section = top.mapping("churn")
    section.check_keys(("rate", "sinks"), ("rate",))
    churn = _read_chance(section, "rate")
    return churn, _sink_names(section, "sinks", list(sink_names), default_sinks)
