"""The run keys of a model file (clock, record_every, checkpoint), the checks only the whole
run shows, and the per-load overrides.

- `_read_clock(top)`: ``tick``, ``probability_tick``, ``ticks``, ``start`` and ``seed``;
  `_read_calendar(top, start)`: the months of a calendar ``tick`` (``1mo``, ``1y``).
- `_read_record_every`, `_read_checkpoint`, `_read_ticks`: lengths in whole ticks (a
  number, or a duration such as ``10m``).
- `_check_run(spec, src, top)`: chances rescaled to the run's tick, churn added to every
  state and calendar profiles at their peaks are each at most 100% per tick.
- `_override(spec, subjects=, ticks=, seed=)`: the caller's overrides, checked with the
  bounds they imply (`_arrivals_per_tick` for the population arrivals add).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dogesim.calendar_ticks import MEAN_MONTH_MS, CalendarTicks, calendar_months
from dogesim.engine import Simulation
from dogesim.errors import ModelError
from dogesim.modelfile.source import (
    MAX_SUBJECTS,
    MAX_TICKS,
    MAX_TIMESTAMP,
    _describe,
    _duration_ms,
    _Reader,
    _Source,
    parse_timestamp,
)
from dogesim.rates import Rate, format_duration, moment_text, profiled_peak

if TYPE_CHECKING:
    from dogesim.modelfile.spec import ModelSpec


def _read_clock(top: _Reader) -> tuple[int, int | None, int, int, int | None]:
    """``tick``, ``probability_tick``, ``ticks``, ``start`` and ``seed``, read in that order."""
    months = calendar_months(top.raw("tick"))
    tick_ms = months * MEAN_MONTH_MS if months else _read_duration(top, "tick")
    probability_tick = (
        _read_duration(top, "probability_tick") if top.has("probability_tick") else None
    )
    ticks = top.integer("ticks", minimum=1, maximum=MAX_TICKS)
    start = 0
    if top.has("start"):
        try:
            start = parse_timestamp(top.raw("start"))
        except ValueError as exc:
            raise top.error("start", str(exc)) from None
    seed = top.integer("seed", minimum=0) if top.has("seed") else None
    return tick_ms, probability_tick, ticks, start, seed


def _read_calendar(top: _Reader, start: int) -> int | None:
    """The months per tick of a calendar ``tick: 1mo`` / ``1y`` (None: a fixed tick);
    `start` must then be a month start."""
    months = calendar_months(top.raw("tick"))
    if months is not None:
        try:
            CalendarTicks(months, start)
        except ModelError as exc:
            raise top.error("start" if top.has("start") else "tick", str(exc)) from None
    return months


def _read_duration(top: _Reader, key: str) -> int:
    """`key`: a duration (``1m``, ``500ms``) in milliseconds."""
    try:
        return _duration_ms(top.raw(key))
    except ValueError as exc:
        raise top.error(key, str(exc)) from None


def _read_record_every(top: _Reader, tick_ms: int) -> int:
    """``record_every:``: a whole number of ticks, or a duration (``1h``) that is a whole
    number of ticks."""
    return _read_ticks(top, "record_every", tick_ms)


def _read_checkpoint(top: _Reader, tick_ms: int) -> tuple[str, int | None]:
    """``checkpoint: {path: FILE, every: 10m}``: where periodic checkpoints go and the
    ticks between two (a whole number of ticks, or a duration of whole ticks)."""
    section = top.mapping("checkpoint")
    section.check_keys(("path", "every"), ("path",))
    path = section.optional_string("path")
    if not path:
        raise section.error("path", "give the file periodic checkpoints are written to")
    every = _read_ticks(section, "every", tick_ms) if section.has("every") else None
    return path, every


def _read_ticks(reader: _Reader, key: str, tick_ms: int) -> int:
    """`key`: a whole number of ticks, or a duration (``1h``) that is a whole number of
    ticks."""
    raw = reader.raw(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return reader.integer(key, minimum=1, maximum=MAX_TICKS)
    if not isinstance(raw, str):
        raise reader.error(
            key,
            f"{_describe(raw)}: give a number of ticks (60) or a duration (1h, 15m)",
        )
    try:
        ms = _duration_ms(raw)
    except ValueError as exc:
        raise reader.error(key, str(exc)) from None
    if ms % tick_ms:
        raise reader.error(
            key,
            f"{raw!r} is not a whole number of ticks of {format_duration(tick_ms)}; give a "
            f"multiple of {format_duration(tick_ms)}",
        )
    return ms // tick_ms


def _check_run(spec: ModelSpec, src: _Source, top: _Reader) -> None:
    """Check what only the whole run shows: chances rescaled to the run's tick, churn added
    to every state, and calendar profiles at their peaks, each at most 100% per tick."""
    try:
        model = spec.build_model({}, callbacks=False)
    except ModelError as exc:
        raise top.error(
            "tick", f"rescaled to ticks of {format_duration(spec.tick_ms)}: {exc}"
        ) from None
    try:
        effective = Simulation(
            model,
            max(spec.subjects.count, 1),
            ticks=spec.ticks,
            tick_ms=spec.tick_ms,
            seed=0,
            seed_globals=False,
            arrivals=spec.arrivals,
            churn=spec.churn,
        ).model
    except ModelError as exc:
        raise top.error("churn" if spec.churn is not None else None, str(exc)) from None
    for state in effective.states:
        outgoing = effective.outgoing(state)
        # The engine's rule (`engine.tables`): the largest total at any one moment.
        peak, moment = profiled_peak((t.probability, t.profile) for t in outgoing)
        if peak > 100 + 1e-9:
            profiled = [
                (i, t)
                for i, t in enumerate(spec.transitions)
                if t.from_state == state and t.profile is not None
            ]
            i, worst = profiled[-1]
            raise src.error(
                worst.line,
                f"transitions[{i}].profile",
                f"state {state!r}: at the peaks of their calendar profiles the outgoing "
                f"probabilities reach {peak:g}% per tick"
                f"{'' if moment is None else f' (e.g. at {moment_text(moment)})'}, at most "
                "100%; lower the probabilities or the profile's multipliers",
            )


def _arrivals_per_tick(spec: ModelSpec) -> float:
    """New subjects per tick at the peak of the arrivals profile (0 without arrivals)."""
    rate = spec.arrivals
    if rate is None:
        return 0.0
    per_tick = rate.value * spec.tick_ms / rate.period_ms if isinstance(rate, Rate) else rate
    peak = spec.arrivals_profile.peak if spec.arrivals_profile is not None else 1.0
    return float(per_tick) * peak


def _override(
    spec: ModelSpec, *, subjects: int | None, ticks: int | None, seed: int | None
) -> ModelSpec:
    """`spec` with the caller's subjects, ticks and seed (each checked), within the bounds
    of the population and the calendar."""
    where = spec.path or spec.name
    for label, value, minimum, maximum in (
        ("subjects", subjects, 1, MAX_SUBJECTS),
        ("ticks", ticks, 1, MAX_TICKS),
        ("seed", seed, 0, None),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            upto = f" and <= {maximum:,}" if maximum is not None else ""
            raise ModelError(
                f"{where}: {label} must be a whole number >= {minimum}{upto}, got {value!r}"
            )
    if subjects is not None:
        spec.subjects.count = subjects
    if ticks is not None:
        spec.ticks = ticks
    if seed is not None:
        spec.seed = seed
    _check_bounds(spec, where)
    return spec


def _check_bounds(spec: ModelSpec, where: str) -> None:
    """The population with arrivals, and the run's last timestamp, within their limits."""
    newcomers = _arrivals_per_tick(spec) * spec.ticks
    if spec.subjects.count + newcomers > MAX_SUBJECTS:
        raise ModelError(
            f"{where}: arrivals: about {newcomers:.3g} subjects would arrive over "
            f"{spec.ticks} ticks (at the peak rate), more than {MAX_SUBJECTS:,} subjects in "
            "all; lower the rate or run fewer ticks"
        )
    end = spec.timestamp_start + spec.ticks * spec.tick_ms
    if end > MAX_TIMESTAMP:
        raise ModelError(
            f"{where}: start + ticks x tick ends at epoch ms {end}, after the calendar's end "
            f"(9999-12-31, epoch ms {MAX_TIMESTAMP}); start earlier, or use fewer or "
            "shorter ticks"
        )
