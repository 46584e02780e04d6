"""Rates that mean the same at any tick length, and calendar profiles that shape them.

- `Rate`: a transition's chance given per unit of time rather than per tick: either a
  probability per period (``Rate.percent(0.1, "1m")``: 0.1% per minute) or an event rate
  (``Rate.per(6, "1d")``: 6 per day). `Rate.per_tick(tick_ms)` rescales it to the tick:
  ``p' = 1 - (1 - p) ** (tick / period)`` and ``p = 1 - exp(-rate * tick)``, so a run's
  statistics do not depend on the tick chosen.
- `parse_rate`: reads ``"0.1% per minute"``, ``"0.1%/1m"``, ``"6 per day"``, ``"6/1d"``.
- `parse_duration`, `format_duration`: ``"500ms"``, ``"1s"``, ``"1m"``, ``"2h"``, ``"1d"``,
  ``"1w"`` or a number of milliseconds, both ways.
- `Profile`: multipliers by hour of day, day of week and listed dates (holidays, paydays);
  the engine samples time-varying probabilities exactly by thinning.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dogesim.errors import ModelError

__all__ = ["Profile", "Rate", "format_duration", "parse_duration", "parse_rate"]

_UNITS_MS = {
    "ms": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": 1000,
    "sec": 1000,
    "second": 1000,
    "seconds": 1000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "minutes": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
    "hours": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "days": 86_400_000,
    "w": 604_800_000,
    "week": 604_800_000,
    "weeks": 604_800_000,
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)?\s*([a-zA-Z]+)\s*$")


def parse_duration(value: object, where: str | None = None) -> int:
    """Milliseconds in `value`: an int of ms, a number string (ms), or text with a unit such
    as ``"500ms"``, ``"1s"``, ``"1m"``, ``"2h"``, ``"1d"``, ``"1w"``, ``"90 seconds"``.

    Raises:
        ModelError: (a `ValueError`) naming `where` and the value, when it is not a positive
            whole number of milliseconds.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ModelError(f"{prefix}{value!r} is not a duration (e.g. 1m, or milliseconds)")
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if match is not None and match.group(2).lower() in _UNITS_MS:
            number = float(match.group(1)) if match.group(1) else 1.0
            ms = number * _UNITS_MS[match.group(2).lower()]
        else:
            try:
                ms = float(text)
            except ValueError:
                raise ModelError(
                    f"{prefix}{value!r} is not a duration; write e.g. 500ms, 1s, 1m, 1h, 1d, "
                    "1w or a whole number of milliseconds"
                ) from None
    else:
        ms = float(value)
    if not math.isfinite(ms) or ms <= 0:
        raise ModelError(f"{prefix}{value!r} is not a positive duration")
    if abs(ms - round(ms)) > 1e-6:
        raise ModelError(f"{prefix}{value!r} is not a whole number of milliseconds")
    return round(ms)


def format_duration(ms: int) -> str:
    """`ms` in the largest unit that divides it exactly: 60000 -> ``1m``, 1500 -> ``1500ms``."""
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass(frozen=True)
class Rate:
    """A chance per unit of time, rescaled to whatever tick the run uses.

    Attributes:
        kind: ``"percent"`` (a probability in % per `period_ms`) or ``"count"`` (an expected
            number of events per `period_ms`, i.e. a Poisson rate).
        value: the percentage or the count.
        period_ms: the period the value refers to.
    """

    kind: str
    value: float
    period_ms: int

    @classmethod
    def percent(cls, value: float, period: str | int) -> Rate:
        """`value` % per `period` (e.g. ``Rate.percent(0.1, "1m")``)."""
        return cls("percent", float(value), parse_duration(period, "rate period"))

    @classmethod
    def per(cls, count: float, period: str | int) -> Rate:
        """On average `count` events per `period` (e.g. ``Rate.per(6, "1d")``)."""
        return cls("count", float(count), parse_duration(period, "rate period"))

    def __post_init__(self) -> None:
        if self.kind not in ("percent", "count"):
            raise ModelError(f"rate kind must be 'percent' or 'count', got {self.kind!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise ModelError(f"rate must be a finite number >= 0, got {self.value!r}")
        if self.kind == "percent" and self.value > 100:
            raise ModelError(f"rate must be at most 100% per period, got {self.value}%")

    def per_tick(self, tick_ms: int) -> float:
        """The equivalent probability in percent per tick of `tick_ms`."""
        ratio = tick_ms / self.period_ms
        if self.kind == "percent":
            p = self.value / 100.0
            if p >= 1.0:
                return 100.0
            return 100.0 * -math.expm1(ratio * math.log1p(-p))
        return 100.0 * -math.expm1(-self.value * ratio)

    def __str__(self) -> str:
        unit = format_duration(self.period_ms)
        if self.kind == "percent":
            return f"{self.value:g}% per {unit}"
        return f"{self.value:g} per {unit}"


_RATE = re.compile(
    r"^\s*(?P<value>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?P<percent>%)?\s*"
    r"(?:per|/)\s*(?P<period>(?:\d+(?:\.\d+)?)?\s*[a-zA-Z]+)\s*$"
)


def parse_rate(text: str, where: str = "rate") -> Rate:
    """Read ``"0.1% per minute"``, ``"0.1%/1m"`` (probability per period) or ``"6 per day"``,
    ``"6/1d"`` (events per period)."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ModelError(
            f"{where}: {text!r} is not a rate; write e.g. '0.1% per minute' (a probability "
            f"per period) or '6 per day' (events per period)"
        )
    period = parse_duration(match.group("period"), where)
    value = float(match.group("value"))
    if match.group("percent"):
        return Rate("percent", value, period)
    return Rate("count", value, period)


@dataclass(frozen=True)
class Profile:
    """Multipliers of a transition's probability by hour of day, day of week and date.

    The multiplier at a moment is ``hourly[hour] * weekly[weekday] * dates.get(date, 1)``
    (Monday is weekday 0), read in UTC shifted by `utc_offset_hours`.

    Args:
        hourly: 24 multipliers, one per hour of day (default all 1).
        weekly: 7 multipliers, Monday first (default all 1).
        dates: multipliers for listed dates (``{"2026-12-25": 0.2}``), e.g. holidays.
        utc_offset_hours: the local time zone's offset, so hours mean local hours.
    """

    hourly: Sequence[float] = field(default_factory=lambda: (1.0,) * 24)
    weekly: Sequence[float] = field(default_factory=lambda: (1.0,) * 7)
    dates: Mapping[str | _dt.date, float] = field(default_factory=dict)
    utc_offset_hours: float = 0.0

    def __post_init__(self) -> None:
        hourly = tuple(float(x) for x in self.hourly)
        weekly = tuple(float(x) for x in self.weekly)
        if len(hourly) != 24:
            raise ModelError(f"profile: hourly needs 24 multipliers, got {len(hourly)}")
        if len(weekly) != 7:
            raise ModelError(
                f"profile: weekly needs 7 multipliers (Monday first), got {len(weekly)}"
            )
        dates: dict[_dt.date, float] = {}
        for key, multiplier in dict(self.dates).items():
            try:
                day = key if isinstance(key, _dt.date) else _dt.date.fromisoformat(str(key))
            except ValueError:
                raise ModelError(f"profile: date {key!r} is not an ISO date (YYYY-MM-DD)") from None
            dates[day] = float(multiplier)
        for name, values in (
            ("hourly", hourly),
            ("weekly", weekly),
            ("dates", tuple(dates.values())),
        ):
            for value in values:
                if not math.isfinite(value) or value < 0:
                    raise ModelError(
                        f"profile: {name} multipliers must be finite and >= 0, got {value}"
                    )
        object.__setattr__(self, "hourly", hourly)
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "dates", dates)

    @property
    def peak(self) -> float:
        """The largest multiplier the profile can reach."""
        dates = list(self.dates.values())
        return max(self.hourly) * max(self.weekly) * max([1.0, *dates])

    def _local(self, timestamp_ms: int) -> _dt.datetime:
        """`timestamp_ms` (epoch ms) as a moment in the profile's time zone."""
        utc = _dt.datetime.fromtimestamp(timestamp_ms / 1000, _dt.timezone.utc)
        return utc + _dt.timedelta(hours=self.utc_offset_hours)

    def multiplier(self, timestamp_ms: int) -> float:
        """The multiplier at `timestamp_ms` (epoch milliseconds)."""
        moment = self._local(timestamp_ms)
        factor = self.hourly[moment.hour] * self.weekly[moment.weekday()]
        return factor * self.dates.get(moment.date(), 1.0)

    def key(self, timestamp_ms: int) -> tuple[int, int, _dt.date | None]:
        """What the multiplier depends on at `timestamp_ms`: (hour, weekday, listed date)."""
        moment = self._local(timestamp_ms)
        day = moment.date()
        return moment.hour, moment.weekday(), day if day in self.dates else None
