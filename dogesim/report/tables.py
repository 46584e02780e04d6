"""Tables (pandas DataFrames) from a run result or an event log.

- `time_index(timestamp_start, tick_ms, ticks)`: the UTC `DatetimeIndex` of the ticks.
- `occupancy_frame(result)`: subjects per state after each tick's moves.
- `events_frame(result)`: events per trigger per tick.
- `transition_table(result)`: per transition: configured probability, attempts, events,
  vetoes, veto rate, and the events the configured probability predicts from the occupancy.
- `read_event_log(source, ...)`: an event log (JSONL file, CSV file, DataFrame or list of
  records) as a DataFrame with the columns ``subject``, ``timestamp``, ``trigger``,
  ``from_state``, ``to_state``; field names are found or given, states may come from the
  model when the log only names triggers.
- `observed_occupancy(events, model, ...)`: the occupancy an event log implies, and
  `observed_start(events, model, subjects)`: where its subjects started.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import stat
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dogesim.errors import DogesimError
from dogesim.model import Model
from dogesim.report.parquet_reader import is_parquet, read_parquet_log
from dogesim.result import RunResult
from dogesim.sinks.compression import compression_of, log_format, open_text

__all__ = [
    "EVENT_COLUMNS",
    "FIELD_CANDIDATES",
    "events_frame",
    "observed_occupancy",
    "observed_start",
    "occupancy_frame",
    "read_event_log",
    "time_index",
    "transition_table",
]

#: The columns of a normalised event log.
EVENT_COLUMNS = ("subject", "timestamp", "trigger", "from_state", "to_state")

#: Where `read_event_log` looks for each column when none is named (first match wins).
FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "subject": (
        "subject_id",
        "subject.id",
        "subject.user_id",
        "subject.subject_id",
        "user.user_id",
        "user.userId",
        "user_id",
        "id",
        "subject",
    ),
    "timestamp": ("timestamp", "ts", "time"),
    "trigger": ("trigger", "event"),
    "from_state": ("from_state", "from"),
    "to_state": ("to_state", "to"),
}


def time_index(
    timestamp_start: int, tick_ms: int, ticks: int, *, every: int = 1
) -> pd.DatetimeIndex:
    """The time of every tick as a UTC `DatetimeIndex` named ``time``; with `every` > 1 the
    time of the last tick of each row of `every` ticks (as `RunResult.timestamps`)."""
    ends = np.minimum((np.arange(-(-ticks // every), dtype=np.int64) + 1) * every, ticks) - 1
    stamps = timestamp_start + ends * tick_ms
    return pd.DatetimeIndex(pd.to_datetime(stamps, unit="ms", utc=True), name="time")


def _result_index(result: RunResult) -> pd.DatetimeIndex:
    return time_index(
        result.timestamp_start, result.tick_ms, result.ticks, every=result.record_every
    )


def occupancy_frame(result: RunResult) -> pd.DataFrame:
    """Subjects per state after each tick's moves; rows are ticks (datetime index), or rows
    of `record_every` ticks in a long run (indexed by their last tick)."""
    frame = pd.DataFrame(
        result.occupancy,
        index=_result_index(result),
        columns=pd.Index(list(result.states), name="state"),
    )
    return frame


def events_frame(result: RunResult) -> pd.DataFrame:
    """Moves per trigger per tick, or per row of `record_every` ticks in a long run
    (transitions sharing a trigger are added up)."""
    triggers = list(dict.fromkeys(t.trigger for t in result.transitions))
    per = np.zeros((len(result.events_per_tick), len(triggers)), dtype=np.int64)
    position = {trigger: k for k, trigger in enumerate(triggers)}
    for j, transition in enumerate(result.transitions):
        per[:, position[transition.trigger]] += result.events_per_tick[:, j]
    return pd.DataFrame(
        per,
        index=_result_index(result),
        columns=pd.Index(triggers, name="trigger"),
    )


def transition_table(result: RunResult) -> pd.DataFrame:
    """One row per transition: counts, veto rate and the expectation from the occupancy.

    Columns: ``trigger``, ``from_state``, ``to_state``, ``probability`` (configured, % per
    tick), ``attempts``, ``events``, ``vetoes``, ``veto_rate`` (vetoes / attempts, NaN with
    no attempts), ``subject_ticks`` (subject-ticks spent in the source state, at risk of the
    transition) and ``expected_attempts`` (subject_ticks x probability).
    """
    index = {state: k for k, state in enumerate(result.states)}
    # Subjects in each state at the start of tick t: the initial occupancy, then the rows
    # after ticks 0..t-1. In a long run (rows of several ticks) the state at a row's start
    # stands for its every tick: the exposure is then an approximation.
    before = np.zeros_like(result.occupancy)
    before[0] = result.started()
    before[1:] = result.occupancy[:-1]
    lengths = np.diff(result.row_ticks(), prepend=-1)
    at_risk = (before * lengths[:, None]).sum(axis=0)
    rows = []
    events = result.events_per_transition
    for j, t in enumerate(result.transitions):
        attempts = int(result.attempts[j])
        vetoes = int(result.vetoes[j])
        exposure = int(at_risk[index[t.from_state]])
        rows.append(
            {
                "trigger": t.trigger,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "probability": float(t.probability),
                "attempts": attempts,
                "events": int(events[j]),
                "vetoes": vetoes,
                "veto_rate": vetoes / attempts if attempts else float("nan"),
                "subject_ticks": exposure,
                "expected_attempts": exposure * float(t.probability) / 100.0,
            }
        )
    return pd.DataFrame(rows)


def _records(source: Any) -> pd.DataFrame:
    """The raw log as a DataFrame with nested JSON keys flattened with dots. Read from a file,
    its index is each event's line (``attrs["source"]``: the file), and a file without
    events is refused."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, (str, os.PathLike)):
        return _file_records(Path(source))
    if isinstance(source, Iterable):
        items = list(source)
        items = [item._asdict() if hasattr(item, "_asdict") else item for item in items]
        for position, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DogesimError(
                    f"event log: record {position + 1} is {_kind(item)}, not an event (a "
                    "mapping of fields)"
                )
        return pd.json_normalize(items) if items else pd.DataFrame()
    raise DogesimError(
        f"cannot read an event log from {type(source).__name__}: give a path (.jsonl/.csv), "
        "a DataFrame or a list of records"
    )


def not_a_file(path: str | os.PathLike[str], what: str) -> str | None:
    """Why `path` cannot be read as a `what` file (``"no such event log"``, ``"a character
    device, not an event log file"``), or None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"no such {what}"
    except OSError as exc:
        return f"cannot be read as the {what}: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not an {what} file (give a .jsonl or .csv file)"


def _file_records(path: Path) -> pd.DataFrame:
    """The raw log of a file, indexed by line (CSV: the header is line 1; Parquet: rows)."""
    where = os.fspath(path)
    why = not_a_file(path, "event log")
    if why is not None:
        raise DogesimError(f"{where}: {why}")
    if is_parquet(path):
        frame, unit = read_parquet_log(path), "row"
        frame.index = pd.RangeIndex(1, len(frame) + 1)
    elif log_format(path) == "csv":
        frame, unit = _read_csv(path), "line"
        frame.index = pd.RangeIndex(2, len(frame) + 2)  # rows holding no line breaks
    else:
        records, lines = _json_lines(path)
        frame, unit = pd.json_normalize(records) if records else pd.DataFrame(), "line"
        frame.index = pd.Index(lines, dtype=np.int64)
    if frame.empty:
        raise DogesimError(f"{where}: holds no events (an event log has one event per line)")
    frame.attrs.update(source=where, unit=unit)
    return frame


def _kind(value: Any) -> str:
    """What a JSON value is, for messages: ``an array [1]``, ``null``, ``a boolean (true)``."""
    if value is None:
        return "null"
    if isinstance(value, float) and np.isnan(value):
        return "missing (no such field in the event, or an empty cell)"
    kinds = (
        ((bool, np.bool_), "a boolean"),
        ((list, tuple, np.ndarray), "an array"),
        ((Mapping,), "an object"),
        ((str,), "a string"),
        ((int, float, np.number), "a number"),
    )
    kind = next((name for types, name in kinds if isinstance(value, types)), "a value")
    shown = repr(value if not isinstance(value, np.generic) else value.item())
    return f"{kind} ({shown[:60]})"


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV log (decompressed by `open_text`, whose errors name the file)."""
    try:
        if compression_of(path) is None:
            _refuse_torn_csv(path)
            return pd.read_csv(path)
        with open_text(path, newline="") as handle:
            return pd.read_csv(handle)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()  # blank lines only: no events
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DogesimError(f"{os.fspath(path)}: cannot read as CSV: {exc}") from None


def _json_lines(path: Path) -> tuple[list[Any], list[int]]:
    """The records of a JSON Lines log, one object per non-blank line, and their lines."""
    records, lines = [], []
    where = os.fspath(path)
    try:
        with open_text(path) as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, parse_constant=_refuse_constant)
                except json.JSONDecodeError as exc:
                    raise _bad_line(where, number, line, exc) from None
                except ValueError as exc:  # NaN, Infinity
                    raise DogesimError(f"{where}:{number}: {exc}") from None
                if not isinstance(record, dict):
                    raise DogesimError(
                        f"{where}:{number}: {_kind(record)} is not an event; each line of an "
                        "event log is a JSON object (one event)"
                    )
                records.append(record)
                lines.append(number)
    except UnicodeDecodeError as exc:
        raise DogesimError(
            f"{where}: not UTF-8 text ({exc}); an event log is JSON Lines or CSV"
        ) from None
    return records, lines


def _refuse_constant(name: str) -> Any:
    """`json.loads`' hook for ``NaN``, ``Infinity`` and ``-Infinity``, which JSON has not."""
    raise ValueError(f"{name} is not JSON (no JSON number is {name}; the file sinks refuse it)")


#: Bytes at the end of a plain CSV log read to see whether its last row is torn.
_TAIL = 1 << 16


def _refuse_torn_csv(path: Path) -> None:
    """Refuse a plain CSV log whose last row has no newline: torn when it ends inside a
    quoted cell or with fewer cells than the header; cut inside its last cell, or whole, when
    it has them all, which cannot be told apart (a file sink always ends a row with one)."""
    with open(path, "rb") as handle:
        header = handle.readline()
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL))
        tail = handle.read()
        if not header.endswith(b"\n") or tail.endswith(b"\n"):
            return  # a header alone (no events), or a whole last row
        last = tail[tail.rfind(b"\n") + 1 :].decode("utf-8", "replace")
        columns = next(csv.reader([header.decode("utf-8", "replace")]), [])
        torn = last.count('"') % 2 == 1 or len(next(csv.reader([last]), [])) < len(columns)
        torn = torn and b"\n" in tail  # else a last row too long to judge
        handle.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    raise _torn(os.fspath(path), lines + 1) if torn else _unended(os.fspath(path), lines + 1)


def _unended(where: str, number: int) -> DogesimError:
    """A CSV log whose last line, `number`, has all its cells but no newline."""
    name = shlex.quote(where)
    return DogesimError(
        f"{where}: line {number} has no newline at its end: a row cut inside its last cell "
        "(its writer killed mid-write, a copy not finished) has as many cells as a whole one, "
        "so the file may be cut short; refused rather than read as the whole log. A file "
        "sink ends every row with a newline; if the file is complete, add it: echo >> "
        f"{name} (or use the complete lines: head -n {number - 1} {name} > another file)"
    )


def _bad_line(where: str, number: int, line: str, exc: json.JSONDecodeError) -> DogesimError:
    """The error for a line that is not JSON: a torn last line (no newline) says the file is
    cut short, as `open_text` says of a compressed file ending inside a member."""
    if line.endswith("\n"):
        return DogesimError(
            f"{where}:{number}: not a JSON line ({exc.msg}); an event log is JSON Lines (one "
            "object per line) or CSV (.csv)"
        )
    return _torn(where, number)


def _torn(where: str, number: int) -> DogesimError:
    """A log whose last line, `number`, is torn: the file is cut short."""
    return DogesimError(
        f"{where}: cut short: line {number} is torn (it ends inside a record, without a "
        f"newline), after {number - 1} complete lines (its writer was killed mid-write, or the "
        "copy is incomplete); refused rather than read as the whole log. To use the complete "
        f"lines: head -n {number - 1} {shlex.quote(where)} > another file"
    )


def _column(frame: pd.DataFrame, role: str, given: str | None, required: bool) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise DogesimError(
                f"{_label(frame)} has no field {given!r} for the {role}; fields: "
                f"{', '.join(map(str, frame.columns))}"
            )
        return given
    for candidate in FIELD_CANDIDATES[role]:
        if candidate in frame.columns:
            return candidate
    if required:
        raise DogesimError(
            f"{_label(frame)}: cannot find the {role} field (looked for "
            f"{', '.join(FIELD_CANDIDATES[role])}); name it explicitly. Fields: "
            f"{', '.join(map(str, frame.columns))}"
        )
    return None


def _label(raw: pd.DataFrame) -> str:
    """The log's name in messages: its file, or ``event log``."""
    return str(raw.attrs.get("source") or "event log")


def _at(raw: pd.DataFrame, position: int) -> str:
    """Where the event at `position` is: ``FILE:LINE`` (``FILE: row N`` in Parquet), or
    ``event log: record N`` for records and DataFrames."""
    source = raw.attrs.get("source")
    if not source:
        return f"event log: record {position + 1}"
    label = _plain_int(raw.index[position])
    return f"{source}:{label}" if raw.attrs.get("unit") == "line" else f"{source}: row {label}"


def _plain_int(value: Any) -> Any:
    """A numpy scalar as the Python value (``4``, not ``np.int64(4)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_name(value: Any) -> bool:
    """A subject, trigger or state: text, or a finite number (not a boolean)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (str, int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value))


def _is_time(value: Any) -> bool:
    """An epoch-ms number within int64 (not a boolean), or text (read as ISO-8601)."""
    if isinstance(value, str):
        return True
    return _is_name(value) and abs(value) < 2**63


def _is_value(value: Any) -> bool:
    """A subject attribute (a group, a weight): anything but an array or an object."""
    return not isinstance(value, (list, tuple, Mapping, np.ndarray))


#: What each kind of field must hold, for messages.
_WANT = {
    "name": "it must be text or a number",
    "time": "it must be epoch milliseconds (a number) or an ISO-8601 time (text)",
    "value": "it must be one value (text or a number), not an array or an object",
}
_GOOD = {"name": _is_name, "time": _is_time, "value": _is_value}


def _first_bad(values: pd.Series, kind: str) -> int | None:
    """The position of the first value `values` may not hold (`kind`: name, time, value), if
    any."""
    if values.dtype.kind in "iuM":
        return None
    if pd.api.types.infer_dtype(values) == "string" and not values.isna().any():
        return None  # text only (a C-speed look)
    if values.dtype.kind in "fb" and kind == "value":
        return None
    if values.dtype.kind == "f":
        numbers = values.to_numpy()
        bad = ~np.isfinite(numbers) | (np.abs(numbers) >= 2.0**63 if kind == "time" else False)
    else:
        bad = ~np.fromiter(map(_GOOD[kind], values.tolist()), dtype=bool, count=len(values))
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def check_field(raw: pd.DataFrame, role: str, column: str, kind: str = "name") -> None:
    """Refuse the first event whose `role` field (`column`) is missing or of the wrong type,
    naming its line."""
    position = _first_bad(raw[column], kind)
    if position is not None:
        raise DogesimError(
            f"{_at(raw, position)}: the {role} ({column!r}) is "
            f"{_kind(raw[column].iat[position])}; {_WANT[kind]}"
        )


def event_times(raw: pd.DataFrame, column: str) -> np.ndarray:
    """The epoch-ms times of the log's `column` (`timestamps_ms`), every value checked: an
    event without a time, with a boolean, an array, a number past int64, a time that is not
    ISO-8601, or one given another way than the first event's is refused naming its line."""
    check_field(raw, "timestamp", column, "time")
    values = raw[column]
    if values.dtype == object:
        text = values.map(lambda value: isinstance(value, str)).to_numpy(dtype=bool)
        if not text.all() and text.any():
            k = int(np.flatnonzero(text != text[0])[0])
            raise DogesimError(
                f"{_at(raw, k)}: the timestamp ({column!r}) is {_kind(values.iat[k])}, and "
                f"{_at(raw, 0)}'s is {_kind(values.iat[0])}; a log gives every time one way "
                "(epoch milliseconds or ISO-8601)"
            )
        if text.all():
            parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
            if parsed.isna().any():
                k = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise DogesimError(
                    f"{_at(raw, k)}: the timestamp ({column!r}) {values.iat[k]!r} is not an "
                    "ISO-8601 time (nor epoch milliseconds)"
                )
        else:
            values = pd.to_numeric(values)
    return _timestamps_ms(values)


def _timestamps_ms(column: pd.Series) -> np.ndarray:
    """Epoch milliseconds from epoch numbers or ISO-8601 text (one reading for every report)."""
    from dogesim.report.observed import timestamps_ms  # observed builds on this module

    return timestamps_ms(column)


def _states_from_triggers(frame: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Fill ``from_state``/``to_state`` from the triggers and the model.

    A trigger used by one transition only gives its states directly. When some trigger leaves
    several states, each subject's events are replayed from the model's initial state (the
    log must then start when the subjects were created).
    """
    by_trigger: dict[str, list[tuple[str, str]]] = {}
    for t in model.transitions:
        by_trigger.setdefault(t.trigger, []).append((t.from_state, t.to_state))
    unknown = sorted(set(frame["trigger"]) - set(by_trigger))
    if unknown:
        raise DogesimError(
            f"event log: triggers {unknown} are not in model {model.name!r} (triggers: "
            f"{', '.join(by_trigger)})"
        )
    if all(len(ends) == 1 for ends in by_trigger.values()):
        frame["from_state"] = frame["trigger"].map(lambda trig: by_trigger[trig][0][0])
        frame["to_state"] = frame["trigger"].map(lambda trig: by_trigger[trig][0][1])
        return frame
    moves = {(t.from_state, t.trigger): t.to_state for t in model.transitions}
    sources = np.empty(len(frame), dtype=object)
    targets = np.empty(len(frame), dtype=object)
    current: dict[Any, str] = {}
    for position, (subject, trigger) in enumerate(
        zip(frame["subject"].tolist(), frame["trigger"].tolist(), strict=True)
    ):
        state = current.get(subject, model.initial_state)
        target = moves.get((state, trigger))
        if target is None:
            raise DogesimError(
                f"event log: subject {subject!r} fires {trigger!r} while in {state!r} (replayed "
                f"from {model.initial_state!r}), which the model does not allow; give "
                "from_state/to_state fields"
            )
        sources[position] = state
        targets[position] = target
        current[subject] = target
    frame["from_state"] = sources
    frame["to_state"] = targets
    return frame


def read_event_log(
    source: Any,
    *,
    subject: str | None = None,
    timestamp: str | None = None,
    trigger: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    model: Model | None = None,
) -> pd.DataFrame:
    """An event log, normalised: one row per event, ordered by time.

    Args:
        source: a ``.jsonl`` or ``.csv`` path, a DataFrame, or a list of records (mappings or
            named tuples such as `dogesim.Event`). Nested JSON keys are joined with dots
            (``user.user_id``).
        subject, timestamp, trigger, from_state, to_state: the field holding each column;
            found by name when omitted (see `FIELD_CANDIDATES`).
        model: maps triggers to states when the log has no from/to fields (as the banking
            model's README-shaped records).

    Returns:
        A DataFrame with `EVENT_COLUMNS`: ``timestamp`` in epoch ms (ISO-8601 strings are
        converted), ``trigger`` None when the log has none. Events with equal timestamps
        keep their order in the log.

    Raises:
        DogesimError: a field cannot be found, an event's field is missing or of the wrong
            type (named by its line in a file), a file holds no events, or states cannot be
            determined.
    """
    raw = _records(source)
    if raw.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS}).astype(
            {"timestamp": "int64"}
        )
    subject_col = _column(raw, "subject", subject, True)
    time_col = _column(raw, "timestamp", timestamp, True)
    trigger_col = _column(raw, "trigger", trigger, False)
    from_col = _column(raw, "from_state", from_state, False)
    to_col = _column(raw, "to_state", to_state, False)
    assert subject_col is not None and time_col is not None
    states = {"from_state": from_col, "to_state": to_col} if from_col and to_col else {}
    for role, column in {"subject": subject_col, "trigger": trigger_col, **states}.items():
        if column is not None:
            check_field(raw, role, column)
    times = event_times(raw, time_col)
    frame = pd.DataFrame(
        {
            "subject": raw[subject_col].to_numpy(),
            "timestamp": times,
            "trigger": raw[trigger_col].astype(str).to_numpy() if trigger_col else None,
        }
    )
    order = np.argsort(times, kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    if from_col is not None and to_col is not None:
        frame["from_state"] = raw[from_col].astype(str).to_numpy()[order]
        frame["to_state"] = raw[to_col].astype(str).to_numpy()[order]
    elif model is not None and trigger_col is not None:
        frame = _states_from_triggers(frame, model)
    else:
        raise DogesimError(
            f"{_label(raw)} has no from_state/to_state fields; name them, or give the model so "
            "states can be found from the triggers"
        )
    return frame[list(EVENT_COLUMNS)]


def observed_occupancy(
    events: pd.DataFrame,
    model: Model,
    *,
    subjects: int,
    ticks: int,
    tick_ms: int,
    timestamp_start: int,
    calendar: int | None = None,
) -> pd.DataFrame:
    """The occupancy an event log implies: subjects per state after each tick's moves.

    A subject with events starts in the state its first event leaves; the subjects without
    events (`subjects` minus those seen) start as the model's initial mix says (all in its
    initial state when it has one; a mix is split in proportion to its shares times each
    state's chance of no move in the window, largest remainders first), so a model with an
    initial mix never shows negative counts. Each event moves one subject. Events outside
    the window are left out with a warning.

    Args:
        events: a normalised log (`read_event_log`).
        model: gives the states and the initial state or mix.
        subjects: the population size (at least the subjects the log names).
        ticks, tick_ms, timestamp_start: the window and the tick length.
        calendar: months per tick of calendar ticks (a model file's ``tick: 1mo``): an
            event's tick is then the month it falls in, not a multiple of `tick_ms`.
    """
    index = {state: k for k, state in enumerate(model.states)}
    unknown = sorted((set(events["from_state"]) | set(events["to_state"])) - set(index), key=str)
    if unknown:
        raise DogesimError(
            f"event log: states {unknown} are not in model {model.name!r} ({', '.join(index)})"
        )
    stamps = events["timestamp"].to_numpy(dtype=np.int64)
    if calendar:
        from dogesim.report.observed import TickGrid

        tick = TickGrid(timestamp_start, months=calendar).index(stamps)
    else:
        tick = (stamps - timestamp_start) // tick_ms
    inside = (tick >= 0) & (tick < ticks)
    if not inside.all():
        warnings.warn(
            f"{int((~inside).sum())} events fall outside the {ticks} ticks from "
            f"{timestamp_start}; they are left out",
            stacklevel=2,
        )
    kept = events[inside]
    tick = tick[inside]
    target = kept["to_state"].map(index).to_numpy().astype(np.int64)
    source = _left_from(kept, index, target)
    flow = np.zeros((ticks, len(model.states)), dtype=np.int64)
    np.add.at(flow, (tick, source), -1)
    np.add.at(flow, (tick, target), 1)
    occupancy = np.cumsum(flow, axis=0)
    occupancy += observed_start(kept, model, subjects, ticks)
    return pd.DataFrame(
        occupancy,
        index=time_index(timestamp_start, tick_ms, ticks),
        columns=pd.Index(list(model.states), name="state"),
    )


def _left_from(events: pd.DataFrame, index: Mapping[str, int], target: np.ndarray) -> np.ndarray:
    """The state each event takes its subject out of: where the subject's previous event
    left it (its first event: the state it names). They differ when the log misses moves
    (transitions that feed no sink): the subject then counts as moving at the next event it
    has, so no count goes negative; a warning says how often."""
    named = events["from_state"].map(index).to_numpy().astype(np.int64)
    subjects = events["subject"].to_numpy()
    order = np.argsort(pd.factorize(subjects)[0], kind="stable")  # by subject, time kept
    source = named.copy()
    same = np.zeros(len(order), dtype=bool)
    same[1:] = subjects[order][1:] == subjects[order][:-1]
    follows = order[1:][same[1:]]
    source[follows] = target[order[:-1][same[1:]]]
    missed = int((source != named).sum())
    if missed:
        warnings.warn(
            f"{missed} events leave a state other than the one the subject's previous event "
            "entered (the log misses moves, e.g. transitions without sinks); those subjects "
            "count as moving at their next event",
            stacklevel=3,
        )
    return source


def observed_start(
    events: pd.DataFrame, model: Model, subjects: int, ticks: int | None = None
) -> np.ndarray:
    """Subjects per state at the start of a log: where each seen subject's first event
    leaves from, and the unseen rest split by the model's initial mix (see
    `observed_occupancy`); given the window's `ticks`, the mix is weighed by each state's
    chance of no move in the whole window (a subject that never moved more likely started
    where one stays long), as the model's chances say (calendar profiles and vetoes aside)."""
    index = {state: k for k, state in enumerate(model.states)}
    ordered = events.sort_values("timestamp", kind="stable")
    first = ordered.drop_duplicates("subject")["from_state"].map(index).to_numpy(dtype=np.int64)
    counts = np.bincount(first, minlength=len(model.states)).astype(np.int64)
    silent = subjects - len(first)
    if silent < 0:
        raise DogesimError(
            f"event log names {len(first)} subjects but the population is {subjects}; "
            f"give at least {len(first)} subjects"
        )
    states = list(model.initial_mix)
    shares = np.asarray(
        [model.initial_mix[s] * (_still(model, s, ticks) if ticks else 1.0) for s in states]
    )
    if shares.sum() <= 0:  # no state can hold a subject still that long: the plain mix
        shares = np.asarray([model.initial_mix[s] for s in states])
    exact = silent * shares / shares.sum()
    split = np.floor(exact).astype(np.int64)
    # largest remainders first, so the split adds up to the silent subjects
    for k in np.argsort(-(exact - split), kind="stable")[: silent - int(split.sum())]:
        split[k] += 1
    for state, n in zip(states, split.tolist(), strict=True):
        counts[index[state]] += n
    return counts


def _still(model: Model, state: str, ticks: int) -> float:
    """The chance that a subject starting in `state` makes no move in `ticks` ticks."""
    if not model.outgoing(state):
        return 1.0
    law = model.dwell.get(state)
    if law is not None:
        return 1.0 - law.cdf(float(ticks))  # its first attempt (which moves) comes later
    chance = min(model.leave_probability(state) / 100.0, 1.0)
    return (1.0 - chance) ** ticks
