"""Run settings as frozen value objects, validated once, and the helpers that check them.

- `RunOptions`: every setting of a run (ticks, tick length, clock, seed, jitter, arrivals,
  churn, recording resolution, progress callback, checkpoints, batching).
- `LiveOptions`: real-time pacing (on/off, speed, allowed lag and what to do past it).
- `SEED_VARIABLE`: ``DOGESIM_SEED``, the seed of runs whose code gives none.
- `choose_seed`: the run's seed from `seed=`, the environment, or the global `random`.
- `MAX_TICKS`: the largest tick count a run accepts (``2**62``; also bounds the last
  timestamp), `MAX_SUBJECTS`: the largest population (``2**31``).
- `_positive_int`, `_timestamp`: validators shared with `dogesim.compat`.

Copy an options object with `dataclasses.replace`; `validated()` returns a checked copy with
its values normalised (ints, floats, parsed rates), raising `ModelError` naming the setting.
"""

from __future__ import annotations

import math
import operator
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real
from typing import Any

from dogesim.errors import ModelError
from dogesim.rates import Profile, Rate, parse_duration, parse_rate

__all__ = [
    "MAX_SUBJECTS",
    "MAX_TICKS",
    "SEED_VARIABLE",
    "UNSET",
    "LiveOptions",
    "RunOptions",
    "choose_seed",
    "merge_options",
]

#: The most ticks a run may have: tick numbers stay exact in int64 and float arithmetic.
MAX_TICKS = 1 << 62

#: The most subjects one run may create (shard larger populations).
MAX_SUBJECTS = 1 << 31

#: Environment variable that seeds runs whose code gives no seed (doge-datagen programs).
SEED_VARIABLE = "DOGESIM_SEED"

#: Per-tick tables are binned so that they have at most this many rows (unless asked).
MAX_ROWS = 10_000


def _positive_int(value: object, name: str) -> int:
    """`value` as an int when it is a positive whole number, else `ModelError`."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if isinstance(value, Integral):
        number = operator.index(value)
    elif math.isfinite(float(value)) and float(value).is_integer():
        number = int(float(value))
    else:
        raise ModelError(f"{name} must be a positive whole number, got {value!r}")
    if number <= 0:
        raise ModelError(f"{name} must be positive, got {number}")
    return number


def _timestamp(value: object) -> int:
    """`value` as integer epoch milliseconds, else `ModelError` naming timestamp_start."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ModelError(f"timestamp_start must be a number of epoch milliseconds, got {value!r}")
    return int(float(value)) if not isinstance(value, Integral) else operator.index(value)


def _positive_number(value: object, name: str, *, zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 when `zero`), else `ModelError` naming `name`."""
    low_ok = zero and not isinstance(value, bool) and isinstance(value, Real) and value == 0
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(float(value))
        or (float(value) <= 0 and not low_ok)
    ):
        bound = ">= 0" if zero else "> 0"
        raise ModelError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _seed_from_environment() -> int | None:
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if not text:
        return None
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise ModelError(f"{SEED_VARIABLE} must be a non-negative integer, got {text!r}")
    return seed


def choose_seed(seed: object) -> int:
    """The run's seed: `seed` when given, else ``DOGESIM_SEED`` when set, else
    ``random.getrandbits(63)`` — drawn from the global `random`, so a program that calls
    ``random.seed(N)`` and gives no seed (as doge-datagen programs do) gets the same run."""
    if seed is None:
        seed = _seed_from_environment()
    if seed is None:
        return random.getrandbits(63)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _arrival_rate(arrivals: float | Rate | str | None, tick_ms: int) -> float | None:
    """Expected newcomers per tick."""
    if arrivals is None:
        return None
    if isinstance(arrivals, str):
        arrivals = parse_rate(arrivals, "arrivals")
    if isinstance(arrivals, Rate):
        if arrivals.kind != "count":
            raise ModelError(
                f"arrivals must be a count per period like '30 per hour', got {arrivals}"
            )
        return arrivals.value * tick_ms / arrivals.period_ms
    if isinstance(arrivals, bool) or not isinstance(arrivals, Real) or not 0 <= arrivals < math.inf:
        raise ModelError(f"arrivals must be a number of subjects per tick >= 0, got {arrivals!r}")
    return float(arrivals)


def _record_every(value: int | str | None, ticks: int | None, tick_ms: int) -> int | None:
    """Ticks per row of the per-tick tables: as asked (ticks, or a duration text such as
    ``"1h"``), else the fewest that keep a table under `MAX_ROWS` rows; None for a run
    without a tick count (its recorder doubles the rows' length as the run goes on)."""
    if value is None:
        return None if ticks is None else max(1, -(-ticks // MAX_ROWS))
    if isinstance(value, str):
        ms = parse_duration(value, "record_every")
        if ms % tick_ms:
            raise ModelError(f"record_every {value!r} is not a whole number of {tick_ms} ms ticks")
        return ms // tick_ms
    return _positive_int(value, "record_every")


def _checkpoint_every(options: RunOptions, tick_ms: int) -> int | None:
    """Ticks between periodic checkpoints (None: none), checked against the path."""
    every = options.checkpoint_every
    if every is None:
        return None
    if options.checkpoint_path is None:
        raise ModelError(
            f"checkpoint_every {every!r} needs checkpoint_path, the file to write them to"
        )
    if isinstance(every, str):
        ms = parse_duration(every, "checkpoint_every")
        return max(1, ms // tick_ms)
    return _positive_int(every, "checkpoint_every")


@dataclass(frozen=True)
class RunOptions:
    """Every setting of a run except its model, subjects and live pacing.

    Attributes:
        ticks: ticks to simulate (``0 .. ticks-1``, at most `MAX_TICKS`); None runs until
            stopped (live mode only).
        tick_ms: length of a tick in milliseconds.
        timestamp_start: timestamp of tick 0, epoch ms (None: 0, or the wall clock when live).
        seed: see `choose_seed`; `validated` fills it in.
        seed_globals: re-seed `random` and numpy's legacy global generator with the seed.
        jitter: spread event timestamps uniformly within their tick.
        arrivals: newcomers per tick (number, `Rate` or rate text); `validated` makes it a
            float per tick.
        arrivals_profile: a `Profile` shaping the arrival rate.
        churn: chance per tick (percent, `Rate` or text) of leaving for ``churned``.
        churn_sinks: sinks of the ``churn`` transitions.
        record_every: ticks (or a duration text) per row of the result's per-tick tables;
            None chooses the fewest that keep them under 10,000 rows (for a run without a
            tick count: 1, doubled whenever the rows would pass 10,000).
        progress: called with the number of ticks done after every busy tick.
        checkpoint_path: where periodic checkpoints are written (with `checkpoint_every`).
        checkpoint_every: write a checkpoint to `checkpoint_path` every so many ticks (or a
            duration text of simulated time such as ``"10m"``), at a tick boundary, so a run
            killed outright loses at most that much; `validated` makes it ticks.
        batch: hand each sink that has ``collect_many`` a tick's events in one call
            (`dogesim.engine.batching`); such a sink then sees a subject after all of the
            tick's callbacks ran. False keeps ``collect`` per event for every sink (for
            callbacks that change other subjects). Never with jitter or live pacing.
    """

    ticks: int | None
    tick_ms: int
    timestamp_start: int | None = None
    seed: int | None = None
    seed_globals: bool = True
    jitter: bool = False
    arrivals: float | Rate | str | None = None
    arrivals_profile: Profile | None = None
    churn: float | Rate | str | None = None
    churn_sinks: Sequence[Any] = ()
    record_every: int | str | None = None
    progress: Callable[[int], None] | None = None
    checkpoint_path: str | os.PathLike[str] | None = None
    checkpoint_every: int | str | None = None
    batch: bool = True

    def validated(self, *, live: bool) -> RunOptions:
        """A checked copy: whole numbers, parsed arrivals, a chosen seed and resolution."""
        tick_ms = _positive_int(self.tick_ms, "tick_ms")
        if self.ticks is None and not live:
            raise ModelError("ticks must be given (ticks=None, run until stopped, needs live=True)")
        ticks = None if self.ticks is None else _positive_int(self.ticks, "ticks")
        if ticks is not None and ticks > MAX_TICKS:
            raise ModelError(f"ticks must be at most 2**62, got {ticks}")
        start = self.timestamp_start
        end = (0 if start is None else abs(_timestamp(start))) + (ticks or 0) * tick_ms
        if end > MAX_TICKS:
            raise ModelError(
                f"ticks x tick_ms: the run would end at {end} ms, past what a timestamp can "
                f"hold (2**62 ms); use fewer ticks ({ticks}) or shorter ones ({tick_ms} ms)"
            )
        if self.progress is not None and not callable(self.progress):
            raise ModelError(
                f"progress must be a callable taking ticks done, got {self.progress!r}"
            )
        if self.arrivals_profile is not None and not isinstance(self.arrivals_profile, Profile):
            raise ModelError(f"arrivals_profile must be a Profile, got {self.arrivals_profile!r}")
        return replace(
            self,
            ticks=ticks,
            tick_ms=tick_ms,
            timestamp_start=None if start is None else _timestamp(start),
            seed=choose_seed(self.seed),
            seed_globals=bool(self.seed_globals),
            jitter=bool(self.jitter),
            batch=bool(self.batch),
            arrivals=_arrival_rate(self.arrivals, tick_ms),
            churn_sinks=tuple(self.churn_sinks),
            record_every=_record_every(self.record_every, ticks, tick_ms),
            checkpoint_every=_checkpoint_every(self, tick_ms),
        )


@dataclass(frozen=True)
class LiveOptions:
    """Real-time pacing of a run (`simpy.rt`).

    Attributes:
        enabled: pace the run: tick ``t`` is handled when ``t * tick_ms / speed`` ms passed.
        speed: speed-up factor (2.0: twice as fast as real time).
        max_lag_ms: how far behind real time the run may fall before `on_lag` applies
            (None: one tick at `speed`).
        on_lag: ``"warn"`` (log, count in the result) or ``"fail"`` (stop with `RunError`).
    """

    enabled: bool = False
    speed: float = 1.0
    max_lag_ms: float | None = None
    on_lag: str = "warn"

    def validated(self, tick_ms: int) -> LiveOptions:
        """A checked copy with `max_lag_ms` filled in."""
        speed = _positive_number(self.speed, "speed")
        if self.on_lag not in ("warn", "fail"):
            raise ModelError(f"on_lag must be 'warn' or 'fail', got {self.on_lag!r}")
        lag = tick_ms / speed if self.max_lag_ms is None else self.max_lag_ms
        return replace(
            self,
            enabled=bool(self.enabled),
            speed=speed,
            max_lag_ms=_positive_number(lag, "max_lag_ms", zero=True),
        )


#: A keyword argument that was not given (None is a value for some settings).
UNSET: Any = object()


def merge_options(options: RunOptions | None, loose: dict[str, Any]) -> RunOptions:
    """The run settings from `options` or from the keywords in `loose` (`UNSET` or a
    field's default where not given), refusing both at once."""
    if options is None:
        for name in ("ticks", "tick_ms"):
            if loose[name] is UNSET:
                raise ModelError(f"{name} must be given (or options=RunOptions(...))")
        return RunOptions(**loose)
    if not isinstance(options, RunOptions):
        raise ModelError(f"options must be a RunOptions, got {options!r}")
    defaults = {f.name: f.default for f in fields(RunOptions)}
    given = [k for k, v in loose.items() if v is not UNSET and v is not defaults[k]]
    if given:
        raise ModelError(
            "give run settings either as options=RunOptions(...) or as keywords, not "
            f"both: {', '.join(given)}"
        )
    return options
