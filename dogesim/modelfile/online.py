"""The online settings of a model file: rates, calendar profiles, resources and holds,
arrivals, churn, and live pacing (`LiveSpec`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dogesim.errors import ModelError
from dogesim.modelfile.source import (
    _describe,
    _duration_ms,
    _HugeNumber,
    _Interpolated,
    _Map,
    _plain,
    _Reader,
    _Source,
)
from dogesim.rates import Profile, Rate, format_duration, parse_rate

_PROFILE_KEYS = ("hourly", "weekly", "dates", "utc_offset_hours")
_LIVE_KEYS = ("enabled", "speed", "max_lag", "on_lag", "timestamps", "until_stopped")
_ON_LAG = ("warn", "fail")
_LIVE_TIMESTAMPS = ("wall", "start")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _multipliers(reader: _Reader, key: str, size: int, what: str) -> tuple[float, ...]:
    """`size` multipliers (numbers >= 0) from the list at `key`."""
    items = reader.sequence(key)
    if len(items) != size:
        raise reader.error(key, f"{len(items)} multipliers; give {size}, {what}")
    out = []
    for i, item in enumerate(items):
        if not _is_number(item) or not math.isfinite(item) or item < 0:
            raise reader.src.error(
                items.item_lines[i],
                f"{reader.where(key)}[{i}]",
                f"{_describe(item)} is not a multiplier (a finite number >= 0)",
            )
        out.append(float(item))
    return tuple(out)


def _read_profile(src: _Source, value: Any, line: int, path: str) -> Profile:
    """A calendar profile written inline as a mapping of `_PROFILE_KEYS`."""
    if not isinstance(value, _Map):
        raise src.error(
            line,
            path,
            f"{_describe(value)}: give a profile as a mapping with {', '.join(_PROFILE_KEYS)}",
        )
    p = _Reader(src, value, path)
    p.check_keys(_PROFILE_KEYS)
    hourly = (
        _multipliers(p, "hourly", 24, "one per hour of the day, 00:00-01:00 first")
        if p.has("hourly")
        else (1.0,) * 24
    )
    weekly = (
        _multipliers(p, "weekly", 7, "one per day of the week, Monday first")
        if p.has("weekly")
        else (1.0,) * 7
    )
    dates: dict[str | _dt.date, float] = {}
    if p.has("dates"):
        listed = p.mapping("dates")
        for day in listed.node:
            where = listed.where(str(day))
            day_line = listed.line(day)
            parsed: _dt.date | None = None
            if isinstance(day, _dt.date) and not isinstance(day, _dt.datetime):
                parsed = day
            elif isinstance(day, str):
                with contextlib.suppress(ValueError):
                    parsed = _dt.date.fromisoformat(str(day))
            if parsed is None:
                raise src.error(
                    day_line, where, f"{_describe(day)} is not a date; write YYYY-MM-DD"
                )
            multiplier = listed.node[day]
            if not _is_number(multiplier) or not math.isfinite(multiplier) or multiplier < 0:
                raise src.error(
                    day_line,
                    where,
                    f"{_describe(multiplier)} is not a multiplier (a finite number >= 0)",
                )
            dates[parsed] = float(multiplier)
    offset = 0.0
    if p.has("utc_offset_hours"):
        offset = p.number("utc_offset_hours")
        if not -14 <= offset <= 14:
            raise p.error(
                "utc_offset_hours", f"{offset:g} is not a time-zone offset between -14 and 14"
            )
    try:
        return Profile(hourly=hourly, weekly=weekly, dates=dates, utc_offset_hours=offset)
    except ModelError as exc:
        raise src.error(line, path, str(exc)) from None


def _profile_at(reader: _Reader, key: str, profiles: Mapping[str, Profile]) -> Profile:
    """The profile at `key`: the name of one under ``profiles:``, or one written inline."""
    value = reader.raw(key)
    if isinstance(value, str):
        name = str(value)
        if name not in profiles:
            hint = difflib.get_close_matches(name, list(profiles), n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise reader.error(
                key,
                f"no profile named {name!r}{maybe}; profiles defined under 'profiles:' are "
                f"{', '.join(profiles) or 'none'} (or write the profile inline)",
            )
        return profiles[name]
    return _read_profile(reader.src, value, reader.line(key), reader.where(key))


def _rate_text(reader: _Reader, key: str, text: str, *, per_tick: str) -> Rate:
    """`text` read as a rate, or an error at `key` that says what a rate looks like."""
    if len(text) > 200:  # no rate is this long; a message quotes it shortened
        raise reader.error(key, f"{_describe(text)} is not a number ({per_tick}) nor a rate")
    try:
        return parse_rate(text, "rate")
    except ModelError as exc:
        detail = str(exc).removeprefix("rate: ")
        reason = "" if "is not a rate" in detail else f" ({detail})"
        raise reader.error(
            key,
            f"{_describe(text)} is not a number ({per_tick}) nor a rate{reason}; write e.g. "
            "'0.1% per minute', '6 per day' or '6/1d'",
        ) from None


def _read_chance(reader: _Reader, key: str) -> float | Rate:
    """A chance: a number (percent per tick, 0..100) or rate text (``0.1% per minute``)."""
    value = reader.raw(key)
    if isinstance(value, _Interpolated):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, str) and not isinstance(value, _HugeNumber):
        return _rate_text(reader, key, str(value), per_tick="percent per tick")
    probability = reader.number(key)
    if probability < 0 or probability > 100:
        raise reader.error(key, f"{probability:g} is not a percentage per tick between 0 and 100")
    return probability


def _read_arrival_rate(reader: _Reader, key: str) -> float | Rate:
    """Arrivals: a number of subjects per tick, or a count per period (``30 per hour``)."""
    value = reader.raw(key)
    if isinstance(value, _Interpolated):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, str) and not isinstance(value, _HugeNumber):
        rate = _rate_text(reader, key, str(value), per_tick="subjects per tick")
        if rate.kind != "count":
            raise reader.error(
                key,
                f"{str(value)!r} is a probability; arrivals are a count per period such as "
                "'30 per hour', or a number of subjects per tick",
            )
        return rate
    number = reader.number(key)
    if number < 0:
        raise reader.error(key, f"{number:g} is not a number of subjects per tick >= 0")
    return number


@dataclass(frozen=True)
class RandomHold:
    """A hold length drawn at each grant: ``exponential`` (mean ticks, at least 1) or
    ``uniform`` (whole ticks from `low` to `high`). It draws from the global `random` module,
    which a run seeds, so a seeded run draws the same lengths every time."""

    kind: str
    low: float
    high: float = 0.0

    def __call__(self, subject: Any, transition: Any) -> int:
        if self.kind == "exponential":
            return max(1, round(random.expovariate(1.0 / self.low)))
        return random.randint(int(self.low), int(self.high))

    def describe(self, tick_ms: int) -> dict[str, Any]:
        """The model-file form, in durations of the tick."""
        if self.kind == "exponential":
            return {"exponential": format_duration(round(self.low * tick_ms))}
        return {"uniform": [format_duration(int(v) * tick_ms) for v in (self.low, self.high)]}


def _hold_ticks(reader: _Reader, key: str, value: Any, tick_ms: int) -> int:
    """Whole ticks from an int or a duration that is a whole number of ticks."""
    if isinstance(value, str) and not isinstance(value, _Interpolated):
        try:
            ms = _duration_ms(value)
        except ValueError as exc:
            raise reader.error(key, f"{exc}; or give a whole number of ticks") from None
        if ms % tick_ms:
            raise reader.error(
                key, f"{str(value)!r} is not a whole number of {format_duration(tick_ms)} ticks"
            )
        return ms // tick_ms
    if isinstance(value, bool) or not isinstance(value, int):
        raise reader.error(key, f"{_describe(value)} is not a whole number of ticks")
    if value < 1:
        raise reader.error(key, f"{value} is too small; it must be at least 1")
    return value


def _read_hold(reader: _Reader, tick_ms: int) -> int | RandomHold:
    """``hold:``: whole ticks, a duration (``12m``) that is a whole number of ticks, or a
    length drawn per call: ``{exponential: 10m}`` (mean) or ``{uniform: [5m, 20m]}``."""
    value = reader.raw("hold")
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("exponential", "uniform"):
            raise reader.error(
                "hold",
                f"{_plain(value)!r}: a random hold is {{exponential: MEAN}} or "
                "{uniform: [LOW, HIGH]} (durations or ticks)",
            )
        kind, arg = next(iter(value.items()))
        if kind == "exponential":
            if isinstance(arg, str) and not isinstance(arg, _Interpolated):
                try:
                    mean = _duration_ms(arg) / tick_ms
                except ValueError as exc:
                    raise reader.error("hold.exponential", str(exc)) from None
            elif isinstance(arg, (int, float)) and not isinstance(arg, bool) and 0 < arg < math.inf:
                mean = float(arg)
            else:
                raise reader.error("hold.exponential", f"{arg!r} is not a finite positive mean")
            return RandomHold("exponential", mean)
        if not isinstance(arg, list) or len(arg) != 2:
            raise reader.error("hold.uniform", f"{_plain(arg)!r} is not [LOW, HIGH]")
        low, high = (_hold_ticks(reader, "hold.uniform", v, tick_ms) for v in arg)
        if low > high:
            raise reader.error("hold.uniform", f"low {low} is above high {high} (ticks)")
        return RandomHold("uniform", low, high)
    return _hold_ticks(reader, "hold", value, tick_ms)


@dataclass
class LiveSpec:
    """Live pacing settings of a model file (``live:``); the CLI's ``--live`` turns them on.

    Attributes:
        enabled: pace the run in real time (default off: backfill as fast as possible).
        speed: speed-up factor (60: a minute of simulated time per second).
        max_lag_ms: how far behind real time the run may fall before `on_lag` applies
            (None: one tick).
        on_lag: ``"warn"`` or ``"fail"``.
        timestamps: ``"wall"`` (tick 0 is the moment the run starts) or ``"start"`` (the
            file's ``start:``, e.g. to replay a past day at real pace).
        until_stopped: in live mode, run until stopped (SIGINT/SIGTERM) instead of for
            ``ticks``.
    """

    enabled: bool = False
    speed: float = 1.0
    max_lag_ms: int | None = None
    on_lag: str = "warn"
    timestamps: str = "wall"
    until_stopped: bool = False


def _read_live(top: _Reader) -> LiveSpec:
    if not top.has("live"):
        return LiveSpec()
    live = top.mapping("live")
    live.check_keys(_LIVE_KEYS)
    spec = LiveSpec(
        enabled=live.boolean("enabled", False),
        until_stopped=live.boolean("until_stopped", False),
    )
    if live.has("speed"):
        spec.speed = live.number("speed")
        if spec.speed <= 0:
            raise live.error("speed", f"{spec.speed:g} is not a speed-up factor > 0")
    if live.has("max_lag"):
        try:
            spec.max_lag_ms = _duration_ms(live.raw("max_lag"))
        except ValueError as exc:
            raise live.error("max_lag", str(exc)) from None
    for key, allowed in (("on_lag", _ON_LAG), ("timestamps", _LIVE_TIMESTAMPS)):
        if live.has(key):
            choice = live.string(key)
            if choice not in allowed:
                raise live.error(key, f"{choice!r} is not one of {', '.join(allowed)}")
            setattr(spec, key, choice)
    return spec


def _read_profiles(src: _Source, top: _Reader) -> dict[str, Profile]:
    if not top.has("profiles"):
        return {}
    profiles = top.mapping("profiles")
    out: dict[str, Profile] = {}
    for name in profiles.node:
        if not isinstance(name, str) or not name:
            raise profiles.error(str(name), f"profile name {_describe(name)} is not text")
        out[name] = _read_profile(
            src, profiles.node[name], profiles.line(name), profiles.where(name)
        )
    return out


def _read_resources(top: _Reader) -> dict[str, int]:
    if not top.has("resources"):
        return {}
    resources = top.mapping("resources")
    out: dict[str, int] = {}
    for name in resources.node:
        if not isinstance(name, str) or not name:
            raise resources.error(str(name), f"resource name {_describe(name)} is not text")
        out[name] = resources.integer(name, minimum=1)
    return out


def _sink_names(
    reader: _Reader, key: str, sink_names: Sequence[str], default: tuple[str, ...]
) -> tuple[str, ...]:
    """The sinks listed at `key` (checked against `sink_names`), or `default` without it."""
    if key not in reader.node:
        return default
    names = [] if reader.node[key] is None else reader.string_list(key)
    for name in names:
        if name not in sink_names:
            raise reader.error(
                key,
                f"no sink named {name!r}; sinks defined under 'sinks:' are "
                f"{', '.join(sink_names) or 'none'}",
            )
    return tuple(names)
