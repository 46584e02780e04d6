"""Calendar ticks: a tick of one (or several) calendar months or years, stamped at month
starts (UTC), with the same meaning in runs, fits and reports.

- `calendar_months(tick)`: ``"1mo"`` -> 1, ``"3mo"`` -> 3, ``"1y"`` -> 12; None for a tick
  that is not calendar text (milliseconds, ``"1m"``, ``"1d"``, ...).
- `MEAN_MONTH_MS`: the mean Gregorian month (365.2425 / 12 days), the tick length rates and
  durations are rescaled with on calendar ticks.
- `CalendarTicks`: a run's tick -> timestamp table: tick ``t`` begins on the first day of
  the ``t * months``-th month after the start, which must itself be a month start.
- `month_floor(ms)`: the start of the month a timestamp falls in.
- `calendar_ticks(tick, jitter, live)`: a run's `CalendarTicks`, or None for a fixed tick;
  `stamp_by_calendar(simulation, months)` the same for a simulation built from options
  (a model file's ``tick: 1mo``).

A tick of ``"1M"`` is refused as ambiguous everywhere (``m`` is a minute; a month is
``mo``), see `dogesim.rates.parse_duration`.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dogesim.errors import ModelError, shown

if TYPE_CHECKING:
    from dogesim.engine.simulation import Simulation

__all__ = [
    "MEAN_MONTH_MS",
    "CalendarTicks",
    "calendar_months",
    "calendar_ticks",
    "month_floor",
    "stamp_by_calendar",
]

#: The mean Gregorian month in ms (365.2425 days / 12).
MEAN_MONTH_MS = 2_629_746_000

_CALENDAR = re.compile(r"^\s*(\d+)?\s*(mo|months?|y|yr|years?)\s*$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def calendar_months(tick: object) -> int | None:
    """The months in a calendar tick (``"1mo"``, ``"3 months"``, ``"1y"``); None when
    `tick` is not calendar text."""
    if not isinstance(tick, str):
        return None
    match = _CALENDAR.match(tick.lower())
    if match is None:
        return None
    count = int(match.group(1)) if match.group(1) else 1
    if count < 1:
        raise ModelError(f"tick {shown(tick)}: a calendar tick is at least one month")
    return count * (12 if match.group(2).startswith("y") else 1)


def month_floor(ms: int) -> int:
    """The start (epoch ms, UTC) of the month `ms` falls in."""
    moment = _EPOCH + _dt.timedelta(milliseconds=ms)
    first = _dt.datetime(moment.year, moment.month, 1, tzinfo=_dt.timezone.utc)
    return (first - _EPOCH) // _dt.timedelta(milliseconds=1)


def _month_start(ms: int) -> tuple[int, int] | None:
    """(year, month) when `ms` is midnight UTC on the first day of a month, else None."""
    moment = _EPOCH + _dt.timedelta(milliseconds=ms)
    if (moment.day, moment.hour, moment.minute, moment.second, moment.microsecond) != (
        1,
        0,
        0,
        0,
        0,
    ):
        return None
    return moment.year, moment.month


@dataclass
class CalendarTicks:
    """Tick ``t`` of a calendar run begins at the first day of month ``start + t * months``.

    Attributes:
        months: months per tick (12 for ``1y``).
        start: tick 0's time, epoch ms, a month start (UTC).
    """

    months: int
    start: int = 0
    _origin: int = field(default=0, init=False, repr=False)
    _stamps: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        at = _month_start(self.start)
        if at is None:
            moment = _EPOCH + _dt.timedelta(milliseconds=self.start)
            raise ModelError(
                f"start {moment.isoformat()}: calendar ticks of {self.months} month(s) begin "
                "at a month start; give a start on the first day of a month, 00:00 UTC"
            )
        self._origin = at[0] * 12 + at[1] - 1

    @property
    def mean_ms(self) -> int:
        """The mean length of one tick in ms."""
        return self.months * MEAN_MONTH_MS

    def stamp(self, tick: int) -> int:
        """The time (epoch ms) at which `tick` begins."""
        stamps = self._stamps
        while len(stamps) <= tick:
            month = self._origin + len(stamps) * self.months
            moment = _dt.datetime(month // 12, month % 12 + 1, 1, tzinfo=_dt.timezone.utc)
            stamps.append((moment - _EPOCH) // _dt.timedelta(milliseconds=1))
        return stamps[tick]


def calendar_ticks(
    tick: object, jitter: bool = False, live: object = False
) -> CalendarTicks | None:
    """The calendar of a run's `tick` when it is calendar text (``"1mo"``, ``"1y"``), from
    the epoch until `CalendarTicks` is given the run's start; None for a fixed tick.

    Raises:
        ModelError: calendar ticks with jitter or live pacing (both need fixed ticks).
    """
    months = calendar_months(tick)
    if months is None:
        return None
    for name, on in (("jitter", jitter), ("live pacing", bool(getattr(live, "enabled", live)))):
        if on:
            raise ModelError(
                f"tick {shown(tick)}: calendar ticks do not combine with {name}; use a fixed "
                "tick (e.g. 1d) for that"
            )
    return CalendarTicks(months)


def stamp_by_calendar(simulation: Simulation, months: int) -> None:
    """Make `simulation` (built with ticks of the mean length, not yet run) stamp its
    ticks at month starts, `months` per tick: what ``Simulation(tick_ms="1mo")`` does, for
    a simulation built from `RunOptions` (a model file's ``tick: 1mo``)."""
    calendar = calendar_ticks(f"{months}mo", simulation.jitter, simulation.live)
    if calendar is None or simulation.tick_ms != calendar.mean_ms:
        raise ModelError(
            f"calendar ticks of {months} month(s) need the run's tick_ms at their mean "
            f"length, {months * MEAN_MONTH_MS} ms, got {simulation.tick_ms}"
        )
    simulation._calendar = CalendarTicks(months, simulation.timestamp_start)
