"""Rates that mean the same at any tick length, and calendar profiles that shape them.

- `Rate`: a transition's chance given per unit of time rather than per tick: either a
  probability per period (``Rate.percent(0.1, "1m")``: 0.1% per minute) or an event rate
  (``Rate.per(6, "1d")``: 6 per day). `Rate.per_tick(tick_ms)` rescales it to the tick:
  ``p' = 1 - (1 - p) ** (tick / period)`` and ``p = 1 - exp(-rate * tick)``, so a run's
  statistics do not depend on the tick chosen.
- `parse_rate`: reads ``"0.1% per minute"``, ``"0.1%/1m"``, ``"6 per day"``, ``"6/1d"``.
- `parse_duration`, `format_duration`: ``"500ms"``, ``"1s"``, ``"1m"``, ``"2h"``, ``"1d"``,
  ``"1w"`` or a number of milliseconds, both ways.
- `per_tick_chances`: one state's chances (per-tick percentages and rates) rescaled together
  to a tick: the state's total per unit of time, then split in proportion (`Model.at_tick`).
- `Profile`: multipliers by hour of day, day of week and listed dates (holidays, paydays);
  the engine samples time-varying probabilities exactly by thinning.
- `profiled_peak`: a state's largest total chance at any moment under its transitions'
  profiles (peaks at different hours do not add up), and `moment_text` for the moment.
- `number`, `check_tick`: a real number, or a tick length, from user input, or a
  `ModelError` naming the field.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

from dogesim.errors import ModelError, shown

__all__ = [
    "MAX_DURATION_MS",
    "Profile",
    "Rate",
    "check_tick",
    "format_duration",
    "moment_text",
    "number",
    "parse_duration",
    "parse_rate",
    "per_tick_chances",
    "profiled_peak",
]

#: Per-tick percentages of one state may exceed 100% by this much (floating-point slack).
_SLACK = 1e-9

#: The longest duration accepted, 2**53 ms (about 285,000 years): every duration up to it
#: is exact as a float, so rescaling arithmetic can neither round nor overflow.
MAX_DURATION_MS = 2**53


def number(value: object, where: str) -> float:
    """`value` as a float when it is a real number (not a bool); else a `ModelError` that
    names `where` and the value. Integers too large for a float are refused, not overflowed.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{where} must be a number, got {shown(value)}")
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):
        raise ModelError(f"{where} must be a finite number, got {shown(value)}") from None


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


#: Units of calendar lengths: no fixed number of milliseconds.
_CALENDAR_UNITS = ("mo", "month", "months", "y", "yr", "year", "years")


def _check_unit(value: str, unit: str, prefix: str) -> None:
    """Refuse ``M`` (a minute or a month?) and calendar units (months, years vary)."""
    if unit == "M":
        raise ModelError(
            f"{prefix}{value!r} is ambiguous: 'm' is a minute and a calendar month is 'mo'; "
            "write 1m for a minute, or 1mo for a calendar-month tick"
        )
    if unit.lower() in _CALENDAR_UNITS:
        raise ModelError(
            f"{prefix}{value!r} is a calendar length, not a fixed duration: months and "
            "years vary in length; calendar ticks (1mo, 1y) are accepted as a run's tick, "
            "elsewhere give days (e.g. 30d)"
        )


def parse_duration(value: object, where: str | None = None) -> int:
    """Milliseconds in `value`: an int of ms, a number string (ms), or text with a unit such
    as ``"500ms"``, ``"1s"``, ``"1m"``, ``"2h"``, ``"1d"``, ``"1w"``, ``"90 seconds"``.

    Raises:
        ModelError: (a `ValueError`) naming `where` and the value, when it is not a positive
            whole number of milliseconds.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise ModelError(f"{prefix}{shown(value)} is not a duration (e.g. 1m, or milliseconds)")
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if match is not None:
            _check_unit(value, match.group(2), prefix)
        if match is not None and match.group(2).lower() in _UNITS_MS:
            count = float(match.group(1)) if match.group(1) else 1.0
            ms = count * _UNITS_MS[match.group(2).lower()]
        else:
            try:
                ms = float(text)
            except ValueError:
                raise ModelError(
                    f"{prefix}{shown(value)} is not a duration; write e.g. 500ms, 1s, 1m, 1h, "
                    "1d, 1w or a whole number of milliseconds"
                ) from None
    else:
        ms = number(value, f"{prefix}duration")
    if not math.isfinite(ms) or ms <= 0:
        raise ModelError(f"{prefix}{shown(value)} is not a positive duration")
    if ms > MAX_DURATION_MS:
        raise ModelError(
            f"{prefix}{shown(value)} is longer than the longest duration, {MAX_DURATION_MS} ms"
        )
    if abs(ms - round(ms)) > 1e-6:
        raise ModelError(f"{prefix}{shown(value)} is not a whole number of milliseconds")
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
        return cls("percent", value, parse_duration(period, "rate period"))

    @classmethod
    def per(cls, count: float, period: str | int) -> Rate:
        """On average `count` events per `period` (e.g. ``Rate.per(6, "1d")``)."""
        return cls("count", count, parse_duration(period, "rate period"))

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in ("percent", "count"):
            raise ModelError(f"rate kind must be 'percent' or 'count', got {shown(self.kind)}")
        value = number(self.value, "rate: value")
        if not math.isfinite(value) or value < 0:
            raise ModelError(f"rate: value must be a finite number >= 0, got {shown(self.value)}")
        if self.kind == "percent" and value > 100:
            raise ModelError(f"rate must be at most 100% per period, got {value}%")
        check_tick(self.period_ms, "rate: period_ms")
        object.__setattr__(self, "value", value)

    def per_tick(self, tick_ms: int) -> float:
        """The equivalent probability in percent per tick of `tick_ms` (this rate alone; a
        state with several chances rescales them together, see `per_tick_chances`)."""
        return per_tick_chances([self], tick_ms)[0]

    def hazard(self) -> float:
        """Events per millisecond: the rate of the exponential law this rate describes
        (infinite for 100% per period)."""
        if self.kind == "count":
            return self.value / self.period_ms
        p = self.value / 100.0
        return math.inf if p >= 1.0 else -math.log1p(-p) / self.period_ms

    def __str__(self) -> str:
        unit = format_duration(self.period_ms)
        if self.kind == "percent":
            return f"{self.value:g}% per {unit}"
        return f"{self.value:g} per {unit}"


def check_tick(tick_ms: object, where: str = "tick_ms") -> int:
    """`tick_ms` (a tick or a period) when it is a whole number of milliseconds from 1 to
    `MAX_DURATION_MS`; else a `ModelError` naming `where`."""
    if (
        isinstance(tick_ms, bool)
        or not isinstance(tick_ms, int)
        or not 1 <= tick_ms <= MAX_DURATION_MS
    ):
        raise ModelError(
            f"{where} must be a whole number of ms >= 1 (at most 2**53), got {shown(tick_ms)}"
        )
    return tick_ms


def per_tick_chances(
    chances: Sequence[float | Rate], tick_ms: int, where: str = "state"
) -> list[float]:
    """One state's chances rescaled to ticks of `tick_ms`, in percent per tick.

    The rule, so a state's law does not depend on the tick:

    1. A plain number is a percentage per tick of this run, and so is ``X% per P`` when the
       period P is the tick: these are kept as given ("per-tick" chances, total ``Q``).
    2. Every other rate becomes a hazard. Percentages sharing a period are one group, as in
       a model whose tick is that period: the group's total ``S`` per period is the chance
       to leave by one of them, its hazard ``-ln(1 - S) / P`` split in proportion to the
       percentages. Counts (``N per P``) are Poisson rates ``N / P``. Hazards add.
    3. With total hazard ``H``, the rates take ``R = 1 - exp(-H * tick)`` of each tick the
       per-tick chances leave, split in proportion to their hazards: a subject stays with
       ``(1 - Q) * (1 - R)``, so the rates' part of the law is exact at any tick.

    Raises:
        ModelError: the per-tick chances sum to more than 100%, naming `where`.
    """
    tick_ms = check_tick(tick_ms)
    literal = [c for c in chances if not isinstance(c, Rate)]
    literal += [c.value for c in chances if isinstance(c, Rate) and _is_per_tick(c, tick_ms)]
    total = math.fsum(float(c) for c in literal)
    if total > 100 + _SLACK:
        raise ModelError(
            f"{where}: outgoing probabilities sum to {total:g}% per tick of "
            f"{format_duration(tick_ms)}, at most 100%"
        )
    weights = _rate_weights(chances, tick_ms)
    if any(math.isinf(w) for w in weights):
        # a group is certain within its period, so within any tick: it takes the whole
        # share, split by its percentages, and the other rates get nothing
        weights = [
            c.value if math.isinf(w) and isinstance(c, Rate) else 0.0
            for c, w in zip(chances, weights, strict=True)
        ]
        certain = True
    else:
        certain = False
    heaviest = max(weights, default=0.0)
    out: list[float] = []
    if heaviest <= 0.0:
        share, scale = 0.0, 1.0
    else:
        # sums of weights scaled by the heaviest, so huge counts cannot overflow
        scale = math.fsum(w / heaviest for w in weights)
        share = 1.0 if certain else -math.expm1(-heaviest * scale * tick_ms)
    share *= max(0.0, 1.0 - total / 100.0)
    for chance, weight in zip(chances, weights, strict=True):
        if not isinstance(chance, Rate):
            out.append(float(chance))
        elif _is_per_tick(chance, tick_ms):
            out.append(chance.value)
        elif heaviest > 0.0:
            out.append(100.0 * share * (weight / heaviest) / scale)
        else:
            out.append(0.0)
    return out


def _is_per_tick(rate: Rate, tick_ms: int) -> bool:
    return rate.kind == "percent" and rate.period_ms == tick_ms


def _rate_weights(chances: Sequence[float | Rate], tick_ms: int) -> list[float]:
    """Each chance's hazard (per ms) as a rate of step 2 of `per_tick_chances`; 0 for the
    per-tick ones."""
    groups: dict[int, float] = {}
    for c in chances:
        if isinstance(c, Rate) and c.kind == "percent" and not _is_per_tick(c, tick_ms):
            groups[c.period_ms] = groups.get(c.period_ms, 0.0) + c.value
    weights: list[float] = []
    for c in chances:
        if not isinstance(c, Rate) or _is_per_tick(c, tick_ms):
            weights.append(0.0)
        elif c.kind == "count":
            weights.append(c.hazard())
        else:
            group = min(groups[c.period_ms], 100.0)
            if c.value <= 0.0:
                weights.append(0.0)
            elif group >= 100.0 - _SLACK:
                weights.append(math.inf)
            else:
                hazard = Rate("percent", group, c.period_ms).hazard()
                weights.append(hazard * c.value / group)
    return weights


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
            f"{where}: {shown(text)} is not a rate; write e.g. '0.1% per minute' (a probability "
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
        hourly = _multipliers(self.hourly, "hourly")
        weekly = _multipliers(self.weekly, "weekly")
        if len(hourly) != 24:
            raise ModelError(f"profile: hourly needs 24 multipliers, got {len(hourly)}")
        if len(weekly) != 7:
            raise ModelError(
                f"profile: weekly needs 7 multipliers (Monday first), got {len(weekly)}"
            )
        if not isinstance(self.dates, Mapping):
            raise ModelError(
                "profile: dates must be a mapping of ISO date to multiplier like "
                f"{{'2026-12-25': 0.2}}, got {shown(self.dates)}"
            )
        dates: dict[_dt.date, float] = {}
        for key, value in self.dates.items():
            dates[_date(key)] = _multiplier(value, f"profile: dates[{shown(key)}]")
        offset = self.utc_offset_hours
        if isinstance(offset, bool) or not isinstance(offset, Real):
            raise ModelError(
                f"profile: utc_offset_hours must be a number of hours, got {shown(offset)}"
            )
        offset = number(offset, "profile: utc_offset_hours")  # 10**400 too
        if not -24 <= offset <= 24:  # also refuses NaN
            raise ModelError(
                f"profile: utc_offset_hours must be between -24 and 24, got {shown(offset)}"
            )
        object.__setattr__(self, "hourly", hourly)
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "utc_offset_hours", offset)

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


def _multipliers(values: object, name: str) -> tuple[float, ...]:
    """`values` as a tuple of multipliers, each checked and named ``profile: NAME[i]``."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ModelError(
            f"profile: {name} must be a list of {24 if name == 'hourly' else 7} numbers, "
            f"got {shown(values)}"
        )
    return tuple(_multiplier(v, f"profile: {name}[{i}]") for i, v in enumerate(values))


def _multiplier(value: object, where: str) -> float:
    multiplier = number(value, where)
    if not math.isfinite(multiplier) or multiplier < 0:
        raise ModelError(f"{where} must be a finite multiplier >= 0, got {shown(value)}")
    return multiplier


def _date(key: object) -> _dt.date:
    """A `dates` key as a date: a `datetime.date` or ISO text (YYYY-MM-DD)."""
    if isinstance(key, _dt.datetime):
        return key.date()
    if isinstance(key, _dt.date):
        return key
    if isinstance(key, str):
        try:
            return _dt.date.fromisoformat(key)
        except ValueError:
            pass
    raise ModelError(f"profile: date {shown(key)} is not an ISO date (YYYY-MM-DD)")


_WEEK_MS = 7 * 24 * 3_600_000
#: Monday 1970-01-05 00:00 UTC: the week the weekly pattern of the profiles is read on.
_MONDAY_MS = 4 * 24 * 3_600_000


def _weekly_factor(profile: Profile, timestamp_ms: int) -> float:
    """`profile`'s multiplier at `timestamp_ms` without its listed dates."""
    moment = profile._local(timestamp_ms)
    return profile.hourly[moment.hour] * profile.weekly[moment.weekday()]


def moment_text(moment_ms: int) -> str:
    """A moment of `profiled_peak`'s weekly pattern, as weekday and UTC time."""
    when = _dt.datetime.fromtimestamp(moment_ms / 1000, _dt.timezone.utc)
    return when.strftime("%a %H:%M UTC")


def profiled_peak(terms: Iterable[tuple[float, Profile | None]]) -> tuple[float, int | None]:
    """The largest total of ``chance * multiplier(t)`` over all moments `t`, and a moment
    where it is reached (None without profiles).

    Every multiplier is constant within a local clock hour, so the total is piecewise
    constant and its maximum is reached at the start of some profile's local hour: the
    candidates are those starts over one week (the weekly pattern), and around each listed
    date. Exact, unlike the sum of each term's own peak (peaks at different hours never
    add up)."""
    pairs = [(float(chance), profile) for chance, profile in terms]
    profiles = {id(p): p for _, p in pairs if p is not None}
    if not profiles:
        return sum(chance for chance, _ in pairs), None
    hour = 3_600_000
    starts: set[int] = set()
    for profile in profiles.values():
        shift = round(profile.utc_offset_hours * hour)
        starts.update((_MONDAY_MS + k * hour - shift) % _WEEK_MS + _MONDAY_MS for k in range(168))
    best, where = -1.0, None
    for moment in sorted(starts):
        total = sum(c if p is None else c * _weekly_factor(p, moment) for c, p in pairs)
        if total > best:
            best, where = total, moment
    dated: set[int] = set()
    for profile in profiles.values():
        for day in profile.dates:
            date = _date(day)  # (kept as dates: `Profile.__post_init__`)
            start = _dt.datetime(date.year, date.month, date.day, tzinfo=_dt.timezone.utc)
            midnight = int(start.timestamp() * 1000)
            for other in profiles.values():
                shift = round(other.utc_offset_hours * hour)
                dated.update(midnight - shift + k * hour for k in range(-48, 72))
    for moment in sorted(dated):
        total = sum(c if p is None else c * p.multiplier(moment) for c, p in pairs)
        if total > best:
            best, where = total, moment
    return best, where
