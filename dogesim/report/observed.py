"""What an event log says about a population: who exists, where each subject is in every
tick, and with what survey weight — the common input of every estimator in `report`.

- `timestamps_ms(column)`: epoch milliseconds from epoch-ms numbers, datetimes or ISO-8601
  strings, the same under pandas 2 and 3.
- `TickGrid`: tick 0's time and the tick length (fixed milliseconds, or calendar months
  ``"1mo"``); tick index, tick times and month of year.
- `Observed`: a checked log on a tick grid, with its roster; `observe(...)` builds it.
- `Observed.spells()`: every stay of every subject in one state (the occupancy intervals),
  the shared ground of exposures, spell lengths and time-varying chances.

Conventions (the engine's). In tick ``t`` a subject makes one attempt; an event at tick ``t``
is the outcome of that attempt. The roster gives each subject's state *before* tick 0 (the
window start). A stay in a state counts its attempts: from the tick after it was entered (or
the subject's first tick) to the tick of the event that ends it, both included; a stay still
going at the window's end is right-censored after the attempts it survived.

Weights are per subject (survey weights): a subject of weight ``w`` counts as ``w`` subjects
in every exposure and count; `kish_deff` turns them into an effective sample size for
intervals (see `dogesim.report.fit`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dogesim.errors import DogesimError
from dogesim.model import Model
from dogesim.report.tables import (
    FIELD_CANDIDATES,
    _records,
    check_field,
    event_times,
    not_a_file,
    read_event_log,
)
from dogesim.sinks.compression import log_format, open_text

__all__ = [
    "Observed",
    "TickGrid",
    "kish_deff",
    "observe",
    "timestamps_ms",
]

_EPOCH = pd.Timestamp(0, tz="UTC")
_MS = pd.Timedelta(1, unit="ms")
#: Roster columns found by name (first match wins).
_ROSTER_STATE = ("state", "initial_state", "from_state")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (so messages show ``1``, not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


def timestamps_ms(column: pd.Series) -> np.ndarray:
    """Epoch milliseconds (int64) from a column of epoch-ms numbers, datetimes or ISO strings.

    Datetimes are converted through an explicit unit (a difference from the epoch divided
    by one millisecond), never by reinterpreting their integer storage, whose resolution is
    nanoseconds under pandas 2 and the parsed string's (often microseconds) under pandas 3.
    Naive times are taken as UTC.

    Raises:
        DogesimError: a timestamp is missing or cannot be read.
    """
    if column.isna().any():
        raise DogesimError("event log: some events have no timestamp")
    if pd.api.types.is_bool_dtype(column):
        raise DogesimError("event log: timestamps are booleans, not times")
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy()
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise DogesimError("event log: some timestamps are not finite numbers")
        return (
            np.floor(values).astype(np.int64)
            if values.dtype.kind == "f"
            else values.astype(np.int64)
        )
    try:
        parsed = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DogesimError(
            f"event log: timestamps are neither epoch milliseconds nor ISO-8601 times: {exc}"
        ) from None
    return ((parsed - _EPOCH) // _MS).to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class TickGrid:
    """Tick 0's time and the tick length: `tick_ms` milliseconds, or calendar months.

    With ``months=1`` (``tick="1mo"``) tick ``k`` is the ``k``-th calendar month after the
    month of `start`; a timestamp belongs to the month it falls in.
    """

    start: int
    tick_ms: int = 0
    months: int = 0

    @classmethod
    def parse(cls, tick: int | str, start: int) -> TickGrid:
        """A grid from a tick length in ms or ``"1mo"``/``"3mo"``/``"1y"`` (calendar)."""
        if isinstance(tick, str):
            text = tick.strip().lower()
            for suffix, factor in (("mo", 1), ("y", 12)):
                number = text.removesuffix(suffix)
                if number != text and number.isdigit() and int(number) > 0:
                    return cls(start, months=int(number) * factor)
            raise DogesimError(
                f"tick {tick!r}: give milliseconds (an int) or calendar months like '1mo', '1y'"
            )
        if isinstance(tick, bool) or int(tick) <= 0:
            raise DogesimError(f"tick_ms must be positive, got {tick}")
        return cls(start, tick_ms=int(tick))

    def _month_number(self, ms: np.ndarray) -> np.ndarray:
        stamps = pd.to_datetime(ms, unit="ms", utc=True)
        return np.asarray(stamps.year * 12 + stamps.month - 1, dtype=np.int64)

    def index(self, ms: np.ndarray) -> np.ndarray:
        """The tick each timestamp falls in (may be negative or past the window)."""
        ms = np.asarray(ms, dtype=np.int64)
        if self.months:
            origin = self._month_number(np.array([self.start]))[0]
            return (self._month_number(ms) - origin) // self.months
        return (ms - self.start) // self.tick_ms

    def times(self, ticks: np.ndarray) -> np.ndarray:
        """The time (epoch ms) at which each tick begins."""
        ticks = np.asarray(ticks, dtype=np.int64)
        if not self.months:
            return self.start + ticks * self.tick_ms
        origin = self._month_number(np.array([self.start]))[0] + ticks * self.months
        stamps = pd.to_datetime(
            {"year": origin // 12, "month": origin % 12 + 1, "day": np.ones_like(origin)},
            utc=True,
        )
        return ((stamps - _EPOCH) // _MS).to_numpy(dtype=np.int64)

    def month_of_year(self, ticks: np.ndarray) -> np.ndarray:
        """The calendar month (1-12) in which each tick begins."""
        return np.asarray(
            pd.to_datetime(self.times(ticks), unit="ms", utc=True).month, dtype=np.int64
        )

    def end(self, ticks: int) -> int:
        """The time just after the last tick of a window of `ticks` ticks."""
        return int(self.times(np.array([ticks]))[0])


def kish_deff(weights: np.ndarray, sizes: np.ndarray | None = None) -> float:
    """Kish's design effect of unequal weights: ``n sum(w^2) / (sum w)^2`` (1 if equal).

    With `sizes` (each unit's number of trials, e.g. its exposure) the units count in
    proportion to them: ``sum(m) sum(m w^2) / (sum m w)^2``.
    """
    w = np.asarray(weights, dtype=float)
    m = np.ones_like(w) if sizes is None else np.asarray(sizes, dtype=float)
    total = float((m * w).sum())
    if total <= 0:
        return 1.0
    return max(1.0, float(m.sum()) * float((m * w * w).sum()) / (total * total))


@dataclass
class Observed:
    """A checked event log on a tick grid with its roster.

    Attributes:
        events: one row per event in the window: ``subject``, ``timestamp``, ``trigger``
            (``from->to`` when the log names none), ``from_state``, ``to_state``, ``tick``;
            ordered by subject (roster order) then tick.
        roster: one row per subject, indexed by subject: ``state`` (before tick 0),
            ``weight``, ``start`` (its first tick, 0 unless the roster says when it
            arrived), ``group`` (the `by` value, or None) and ``silent`` (no event).
        states: the states, in order.
        grid: the tick grid; `ticks` the window length.
        weighted: whether a weight column was given.
        by: the grouping column, if any.
        source: where the states at the window start come from: ``roster``, ``first
            events`` (each subject's first event) or ``first events + silent``.
    """

    events: pd.DataFrame
    roster: pd.DataFrame
    states: tuple[str, ...]
    grid: TickGrid
    ticks: int
    weighted: bool = False
    by: str | None = None
    source: str = "roster"
    _spells: pd.DataFrame | None = field(default=None, repr=False)

    def subset(self, group: Any) -> Observed:
        """The subjects of one `by` group."""
        roster = self.roster[self.roster["group"] == group]
        events = self.events[self.events["subject"].isin(roster.index)]
        return Observed(
            events, roster, self.states, self.grid, self.ticks, self.weighted, None, self.source
        )

    def spells(self) -> pd.DataFrame:
        """Every stay of every subject in one state, in subject then time order.

        Columns: ``subject``, ``state``, ``first`` (its first attempt's tick), ``length``
        (attempts, >= 1), ``censored`` (still going at the window's end), ``trigger`` and
        ``to_state`` (of the event ending it; None when censored), ``initial`` (the
        subject's first stay, begun at or before its first tick), ``weight``, ``group``.
        """
        if self._spells is None:
            self._spells = _spells(self)
        return self._spells


def _spells(obs: Observed) -> pd.DataFrame:
    ev = obs.events
    roster = obs.roster
    code = {s: k for k, s in enumerate(roster.index)}
    subj = ev["subject"].map(code).to_numpy(dtype=np.int64)
    tick = ev["tick"].to_numpy(dtype=np.int64)
    n = len(ev)
    first_of = np.ones(n, dtype=bool)
    first_of[1:] = subj[1:] != subj[:-1]
    # Stays ended by an event: they begin after the previous event (or at the start).
    begin = np.empty(n, dtype=np.int64)
    begin[1:] = tick[:-1] + 1
    starts = roster["start"].to_numpy(dtype=np.int64)
    begin[first_of] = starts[subj[first_of]]
    ended = pd.DataFrame(
        {
            "subject_code": subj,
            "state": ev["from_state"].to_numpy(),
            "first": begin,
            "length": tick - begin + 1,
            "censored": False,
            "trigger": ev["trigger"].to_numpy(),
            "to_state": ev["to_state"].to_numpy(),
            "initial": first_of,
        }
    )
    # The stay each subject is in when the window ends.
    last_of = np.ones(n, dtype=bool)
    last_of[:-1] = subj[1:] != subj[:-1]
    state_now = roster["state"].to_numpy(dtype=object).copy()
    begin_now = starts.copy()
    initial_now = np.ones(len(roster), dtype=bool)
    state_now[subj[last_of]] = ev["to_state"].to_numpy()[last_of]
    begin_now[subj[last_of]] = tick[last_of] + 1
    initial_now[subj[last_of]] = False
    tail = pd.DataFrame(
        {
            "subject_code": np.arange(len(roster), dtype=np.int64),
            "state": state_now,
            "first": begin_now,
            "length": obs.ticks - begin_now,
            "censored": True,
            "trigger": None,
            "to_state": None,
            "initial": initial_now,
        }
    )
    tail = tail[tail["length"] > 0]
    spells = pd.concat([ended, tail], ignore_index=True)
    spells = spells.sort_values(["subject_code", "first"], kind="stable").reset_index(drop=True)
    codes = spells["subject_code"].to_numpy()
    spells.insert(0, "subject", roster.index.to_numpy()[codes])
    spells["weight"] = roster["weight"].to_numpy(dtype=float)[codes]
    spells["group"] = roster["group"].to_numpy(dtype=object)[codes]
    return spells.drop(columns="subject_code")


def _read_table(source: Any, what: str) -> pd.DataFrame:
    """A roster or raw log as a DataFrame (path to CSV/JSONL, DataFrame or records)."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        why = not_a_file(path, what)
        if why is not None:
            raise DogesimError(f"{path}: {why}")
        try:
            with open_text(path, newline="") as handle:  # decompressed by its suffix
                if log_format(path) == "csv":
                    return pd.read_csv(handle)
                return pd.read_json(handle, lines=True)
        except ValueError as exc:
            raise DogesimError(f"{path}: cannot read the {what}: {exc}") from None
    if isinstance(source, Mapping):
        return pd.DataFrame({"subject": list(source), "state": list(source.values())})
    return pd.json_normalize([dict(r) if isinstance(r, Mapping) else r._asdict() for r in source])


def _find(frame: pd.DataFrame, names: Sequence[str], given: str | None, what: str) -> str:
    if given is not None:
        if given not in frame.columns:
            raise DogesimError(
                f"{what} has no column {given!r}; columns: {', '.join(map(str, frame.columns))}"
            )
        return given
    for name in names:
        if name in frame.columns:
            return name
    raise DogesimError(
        f"{what}: cannot find a column {' or '.join(names)}; columns: "
        f"{', '.join(map(str, frame.columns))}"
    )


def _per_subject(raw: pd.DataFrame, subject: str, column: str, what: str) -> pd.Series:
    """A column that must be constant per subject, as a Series indexed by subject."""
    distinct = raw.groupby(subject, sort=False)[column].nunique(dropna=False)
    if (distinct > 1).any():
        who = _plain(distinct.index[int(np.flatnonzero(distinct.to_numpy() > 1)[0])])
        raise DogesimError(
            f"{what}: subject {who!r} has several values of {column!r}; it must be one value "
            "per subject"
        )
    return raw.groupby(subject, sort=False)[column].first()


def _weights(values: pd.Series, what: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numbers.to_numpy(dtype=float)) | (numbers.to_numpy(dtype=float) < 0)
    if bad.any():
        who = _plain(values.index[int(np.flatnonzero(bad)[0])])
        raise DogesimError(
            f"{what}: subject {who!r} has weight {_plain(values.loc[who])!r}; a weight is a finite "
            "number >= 0"
        )
    return numbers.astype(float)


def observe(
    events: Any,
    *,
    tick: int | str,
    states: Sequence[str] | None = None,
    model: Model | None = None,
    initial_state: str | None = None,
    window_start: int | None = None,
    window_end: int | None = None,
    ticks: int | None = None,
    roster: Any = None,
    weight: str | None = None,
    by: str | None = None,
    subjects: int | None = None,
    silent: Mapping[str, int] | None = None,
    silent_state: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> Observed:
    """Check an event log and place it on a tick grid with its population.

    Args:
        events: the log (a ``.jsonl``/``.csv`` path, a DataFrame or records).
        tick: the tick length in ms, or calendar months (``"1mo"``).
        states: the states (default: the model's, else the roster's and the log's).
        model: gives the states, and states for logs with triggers only.
        initial_state: where silent subjects sit by default (default: the model's, else
            the first state).
        window_start: tick 0's time (default: the first event's).
        window_end, ticks: the window's end (exclusive) or length in ticks (default: up to
            the last event's tick).
        roster: the population: a path, DataFrame or records with a subject column and
            its ``state`` at the window start, optionally the `weight` and `by` columns and
            a ``start`` time (arrival) — or a mapping subject -> state. Subjects without
            events count; a subject in the log must be in the roster.
        weight: the column (of the roster, else of the log) holding survey weights.
        by: the column (of the roster, else of the log) naming each subject's group.
        subjects, silent, silent_state: without a roster, how many event-less subjects
            there are (in `silent_state`) or how many sit in each state.
        fields: field names for `read_event_log`.

    Raises:
        DogesimError: an inconsistent log (a gap in a subject's chain, two events in a
            tick, an unknown state), a roster that disagrees with the log, bad weights.
    """
    # The log's own reader (nested JSON keys flattened), before its columns are normalised.
    raw = _records(events) if not isinstance(events, pd.DataFrame) else events.copy()
    fields = dict(fields or {})
    time_col = fields.get("timestamp") or next(
        (c for c in FIELD_CANDIDATES["timestamp"] if c in raw.columns), None
    )
    if time_col is not None and time_col in raw.columns and len(raw):
        raw[time_col] = event_times(raw, time_col)
    frame = read_event_log(raw, model=model, **fields)
    subject_col = fields.get("subject") or next(
        (c for c in FIELD_CANDIDATES["subject"] if c in raw.columns), "subject"
    )
    table = _read_table(roster, "roster") if roster is not None else None
    if table is not None and (silent is not None or subjects is not None):
        raise DogesimError("give a roster, or subjects/silent, not both")
    if silent is not None and subjects is not None:
        raise DogesimError("give either subjects or silent, not both")

    # States.
    if states is None:
        seen: list[Any] = list(model.states) if model is not None else []
        if table is not None and not seen:
            seen += list(pd.unique(table[_find(table, _ROSTER_STATE, None, "roster")]))
        if not seen or model is None:
            seen += list(pd.unique(pd.concat([frame["from_state"], frame["to_state"]])))
        states = list(dict.fromkeys(str(s) for s in seen))
    states = [str(s) for s in states]
    if not states:
        raise DogesimError("no states: give states, a model, or a non-empty log")
    if initial_state is None:
        initial_state = model.initial_state if model is not None else states[0]
    if initial_state not in states:
        raise DogesimError(f"initial state {initial_state!r} is not one of {states}")
    unknown = sorted((set(frame["from_state"]) | set(frame["to_state"])) - set(states), key=str)
    if unknown:
        raise DogesimError(f"event log has states {unknown} that are not in {states}")

    # Window.
    if window_start is None:
        if not len(frame):
            raise DogesimError("an empty log needs window_start")
        window_start = int(frame["timestamp"].min())
    grid = TickGrid.parse(tick, int(window_start))
    frame = frame[frame["timestamp"].to_numpy() >= window_start]
    tick_arr = grid.index(frame["timestamp"].to_numpy(dtype=np.int64))
    if ticks is None:
        if window_end is not None:
            ticks = int(grid.index(np.array([window_end - 1]))[0]) + 1
        elif len(frame):
            ticks = int(tick_arr.max()) + 1
        else:
            raise DogesimError("an empty window: give ticks or window_end")
    if ticks <= 0:
        raise DogesimError(f"the window has {ticks} ticks; it must have at least one")
    keep = tick_arr < ticks
    frame = frame[keep].copy()
    frame["tick"] = tick_arr[keep]
    if frame["trigger"].isna().any() or not len(frame):
        frame["trigger"] = _pair_names(frame, model)

    # Per-subject columns from the log (weights, groups) when there is no roster column.
    source = raw[raw[subject_col].isin(set(frame["subject"]))] if len(raw) else raw
    extra: dict[str, pd.Series] = {}
    for role, column in (("weight", weight), ("group", by)):
        if column is None or (table is not None and column in table.columns):
            continue
        if column not in raw.columns:
            raise DogesimError(
                f"no column {column!r} for the {role} in the roster or the event log; "
                f"log columns: {', '.join(map(str, raw.columns))}"
            )
        check_field(raw, role, column, "value")
        extra[role] = _per_subject(source, subject_col, column, "event log")

    frame = frame.sort_values(["subject", "tick"], kind="stable").reset_index(drop=True)
    _check_chains(frame)
    first_state = frame.groupby("subject", sort=False)["from_state"].first()
    source = "roster"
    if table is not None:
        people = _roster_from_table(table, grid, weight, by, states)
        missing = sorted((_plain(x) for x in set(first_state.index) - set(people.index)), key=str)
        if missing:
            raise DogesimError(
                f"roster: subjects {missing[:5]} are in the event log but not in the roster; "
                "the roster lists the whole population"
            )
        starts_now = people.loc[first_state.index]
        clash = (starts_now["state"] != first_state).to_numpy()
        if clash.any():
            who = _plain(first_state.index[int(np.flatnonzero(clash)[0])])
            raise DogesimError(
                f"roster: subject {who!r} is in {people.at[who, 'state']!r} at the window "
                f"start but its first event leaves {first_state.loc[who]!r}"
            )
    else:
        people = pd.DataFrame(
            {"state": first_state, "weight": 1.0, "start": 0, "group": None},
            index=first_state.index,
        )
        if "weight" in extra:
            people["weight"] = _weights(extra["weight"], "event log")
        if "group" in extra:
            people["group"] = extra["group"]
        size = len(people)
        people = _with_silent(people, subjects, silent, silent_state or initial_state, states)
        source = "first events + silent" if len(people) > size else "first events"
    people.index.name = "subject"
    people["silent"] = ~people.index.isin(first_state.index)
    late = (
        people.loc[first_state.index, "start"].to_numpy()
        > frame.groupby("subject", sort=False)["tick"].first().to_numpy()
    )
    if late.any():
        who = _plain(first_state.index[int(np.flatnonzero(late)[0])])
        raise DogesimError(f"roster: subject {who!r} has an event before its start")
    # Events in roster order so that spells come out subject by subject.
    order = {s: k for k, s in enumerate(people.index)}
    frame["_order"] = frame["subject"].map(order)
    frame = frame.sort_values(["_order", "tick"], kind="stable").drop(columns="_order")
    return Observed(
        frame.reset_index(drop=True),
        people,
        tuple(states),
        grid,
        int(ticks),
        weighted=weight is not None,
        by=by,
        source=source,
    )


def _check_chains(frame: pd.DataFrame) -> None:
    """Each subject moves at most once per tick and each event starts where the last ended."""
    if len(frame) < 2:
        return
    same = frame["subject"].to_numpy()[1:] == frame["subject"].to_numpy()[:-1]
    ticks = frame["tick"].to_numpy()
    double = same & (ticks[1:] == ticks[:-1])
    if double.any():
        k = int(np.flatnonzero(double)[0])
        raise DogesimError(
            f"event log: subject {_plain(frame['subject'].iat[k])!r} has two events in tick "
            f"{ticks[k]} (timestamp {frame['timestamp'].iat[k]}); a subject moves at "
            "most once per tick — is the tick length right?"
        )
    src = frame["from_state"].to_numpy()
    dst = frame["to_state"].to_numpy()
    broken = same & (src[1:] != dst[:-1])
    if broken.any():
        k = int(np.flatnonzero(broken)[0])
        raise DogesimError(
            f"event log: subject {_plain(frame['subject'].iat[k])!r} ends in {dst[k]!r} at "
            f"{frame['timestamp'].iat[k]} but its next event starts from {src[k + 1]!r} at "
            f"{frame['timestamp'].iat[k + 1]}; the log is incomplete or out of order"
        )


def _roster_from_table(
    table: pd.DataFrame, grid: TickGrid, weight: str | None, by: str | None, states: list[str]
) -> pd.DataFrame:
    subject = _find(table, FIELD_CANDIDATES["subject"], None, "roster")
    state = _find(table, _ROSTER_STATE, None, "roster")
    if table[subject].duplicated().any():
        who = _plain(table[subject][table[subject].duplicated()].iloc[0])
        raise DogesimError(f"roster: subject {who!r} is listed twice")
    people = pd.DataFrame({"state": table[state].astype(str).to_numpy()}, index=table[subject])
    bad = sorted(set(people["state"]) - set(states))
    if bad:
        raise DogesimError(f"roster has states {bad} that are not in {states}")
    people["weight"] = (
        _weights(pd.Series(table[weight].to_numpy(), index=people.index), "roster")
        if weight is not None and weight in table.columns
        else 1.0
    )
    if "start" in table.columns:
        start = grid.index(timestamps_ms(table["start"]))
        people["start"] = np.maximum(start, 0)
    else:
        people["start"] = 0
    people["group"] = table[by].to_numpy() if by is not None and by in table.columns else None
    return people


def _with_silent(
    people: pd.DataFrame,
    subjects: int | None,
    silent: Mapping[str, int] | None,
    silent_state: str,
    states: list[str],
) -> pd.DataFrame:
    """Add event-less subjects (named ``<silent:STATE:k>``) to a roster built from the log."""
    counts: dict[str, int] = {}
    if silent is not None:
        counts = {str(s): int(c) for s, c in silent.items() if c}
    elif subjects is not None:
        if subjects < len(people):
            raise DogesimError(
                f"subjects={subjects} but the log shows {len(people)} subjects in the window"
            )
        if subjects > len(people):
            counts = {silent_state: subjects - len(people)}
    rows = []
    for state, count in counts.items():
        if state not in states:
            raise DogesimError(f"silent subjects in unknown state {state!r}; states: {states}")
        if count < 0:
            raise DogesimError(f"silent subjects in {state!r}: {count} is negative")
        names = [f"<silent:{state}:{k}>" for k in range(count)]
        rows.append(
            pd.DataFrame({"state": state, "weight": 1.0, "start": 0, "group": None}, index=names)
        )
    return pd.concat([people, *rows]) if rows else people


def _pair_names(frame: pd.DataFrame, model: Model | None) -> pd.Series:
    """Names for the moves of a log without triggers: the model's trigger when exactly one
    of its transitions joins the (from_state, to_state) pair, else ``from->to``."""
    pairs = frame["from_state"].astype(str) + "->" + frame["to_state"].astype(str)
    if model is None:
        return pairs
    joining: dict[str, list[str]] = {}
    for t in model.transitions:
        joining.setdefault(f"{t.from_state}->{t.to_state}", []).append(t.trigger)
    named = {pair: triggers[0] for pair, triggers in joining.items() if len(triggers) == 1}
    return pairs.map(lambda pair: named.get(pair, pair))
