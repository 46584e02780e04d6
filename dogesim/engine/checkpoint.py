"""Checkpoints of a run: a versioned, data-only file that `Simulation.resume` continues.

- `VERSION`: the format (4: JSON manifest + numpy arrays in one ``.npz``; 3 and older were
  pickles and are refused).
- `save`, `load`: write a walker's state (atomically: 0600, fsynced, renamed into place, the
  directory fsynced) and read it back without running any code.
- `fingerprint`, `check`: every run setting a resume must match, compared part by part
  (`described`: a setting as the JSON data a fingerprint keeps).
- `restore`, `states_of`: put a fresh walker where the saved run was.
- `write_atomically`: a file written 0600, fsynced and renamed into place (also the sharded
  run's manifest).
- `Periodic`: the progress hook that writes a checkpoint every `checkpoint_every` ticks.
- `encode_subject`, `decode_subject`: the subject codec (`SimpleNamespace`, dict or dataclass
  of JSON data; anything else only pickled on an explicit ``allow_pickle=True``).

The file is a zip of ``.npy`` members read with ``allow_pickle=False``: the ``manifest``
member is UTF-8 JSON (version, fingerprint, clock, random generator states, arrivals,
resource queues, recorder totals, sink positions, subjects), the others are plain arrays
(states, calendar, recorder bins, numpy's legacy generator key). Subjects that are not data
are stored as a pickle only when the run asked for it, and such a file is loaded only with
``allow_pickle=True`` (loading a pickle runs code).
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import os
import pickle
import random
import sys
import tempfile
import zipfile
from array import array
from collections.abc import Callable, Generator, Mapping, Sequence
from copy import deepcopy
from dataclasses import replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.engine.options import RunOptions
from dogesim.engine.scheduler import Calendar
from dogesim.errors import RunError
from dogesim.model import Model
from dogesim.sinks import offsets

if TYPE_CHECKING:
    from dogesim.engine.walker import Walker

__all__ = [
    "VERSION",
    "Periodic",
    "check",
    "decode_subject",
    "described",
    "encode_subject",
    "fingerprint",
    "load",
    "restore",
    "save",
    "settings_of",
    "states_of",
    "write_atomically",
]

#: The checkpoint format.
VERSION = 4

#: What the manifest's ``format`` says (another zip of arrays is not a checkpoint).
_FORMAT = "dogesim-checkpoint"

#: The run settings a checkpoint keeps (the resumed run takes them from it).
_SETTINGS = ("seed", "tick_ms", "timestamp_start", "ticks", "jitter", "record_every")


class _NotData(TypeError):
    """A subject the data codec cannot encode."""


# -- fingerprint ---------------------------------------------------------------------------


def _described(value: Any) -> Any:
    """`value` as JSON data that changes whenever the value does (profiles, holds, rates)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return round(value, 12)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _described(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__qualname__, **fields}
    if isinstance(value, Mapping):
        return sorted([str(k), _described(v)] for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_described(v) for v in value]
    if callable(value):
        module = getattr(value, "__module__", "?")
        return f"callable {module}:{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def described(value: Any) -> Any:
    """`value` as the JSON data a fingerprint keeps of it (changes whenever it does)."""
    return _described(value)


def fingerprint(model: Model, options: RunOptions, subjects: int) -> dict[str, Any]:
    """Every setting a resumed run must share with the saved one, by name (JSON data).

    `model` is the run's effective model (chances at its tick, churn transitions added)."""
    transitions = [
        [
            t.trigger,
            t.from_state,
            t.to_state,
            round(t.probability, 12),
            _described(t.profile),
            t.resource,
            _described(t.hold),
        ]
        for t in model.transitions
    ]
    return {
        "states": list(model.states),
        "initial_state": model.initial_state,
        "transitions": transitions,
        "resources": sorted([k, v] for k, v in model.resources.items()),
        "arrivals": _described(options.arrivals),
        "arrivals_profile": _described(options.arrivals_profile),
        "subjects": subjects,
        **{name: _described(getattr(options, name)) for name in _SETTINGS},
    }


def _differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The parts of two fingerprints that differ, each as ``name: saved -> now``."""
    out = []
    for name in sorted(set(saved) | set(now)):
        before, after = saved.get(name), now.get(name)
        if before == after:
            continue
        if name == "transitions" and isinstance(before, list) and isinstance(after, list):
            changed = [
                f"{b[0]!r} ({b[1]}->{b[2]})" for b, a in zip(before, after, strict=False) if b != a
            ]
            count = (
                f"{len(before)} -> {len(after)} transitions; " if len(before) != len(after) else ""
            )
            out.append(f"transitions: {count}changed {', '.join(changed) or 'order'}")
            continue
        out.append(f"{name}: {_short(before)} -> {_short(after)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check(path: str | os.PathLike[str], saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """`RunError` naming every setting in which `now` differs from the saved fingerprint."""
    differences = _differences(saved["fingerprint"], now)
    if differences:
        raise RunError(
            f"{os.fspath(path)} was saved from a different model or run settings; resume "
            "it with those it was run with. Differences (checkpoint -> now): "
            + "; ".join(differences)
        )


def settings_of(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The run settings saved with a checkpoint, as `Simulation` keywords."""
    return {name: saved["settings"][name] for name in _SETTINGS}


# -- subjects --------------------------------------------------------------------------------


def _data(value: Any, where: str) -> Any:
    """`value` when it is JSON data (exact str/int/float/bool/None, lists, str-keyed dicts)."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [_data(v, where) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: _data(v, where) for k, v in value.items()}
    raise _NotData(f"{where} holds {value!r} ({kind.__name__}), not JSON data")


def encode_subject(subject: Any) -> Any:
    """A subject as JSON data: ``{"ns": ...}``, ``{"dict": ...}`` or ``{"dc": class, ...}``.

    Raises:
        TypeError: the subject (or one of its values) is not data.
    """
    kind = type(subject)
    if kind is SimpleNamespace:
        return {"ns": _data(vars(subject), "a SimpleNamespace subject")}
    if kind is dict:
        return {"dict": _data(subject, "a dict subject")}
    if dataclasses.is_dataclass(subject) and not isinstance(subject, type):
        values = {f.name: getattr(subject, f.name) for f in dataclasses.fields(subject)}
        name = f"{kind.__module__}:{kind.__qualname__}"
        return {"dc": name, "fields": _data(values, f"a {kind.__qualname__} subject")}
    raise _NotData(f"a {kind.__qualname__} subject is not a SimpleNamespace, dict or dataclass")


def _dataclass(name: str) -> type:
    """The dataclass `name` (``module:qualname``) from a module already imported (no import:
    loading a checkpoint runs no module code)."""
    module_name, _, qualname = name.partition(":")
    target: Any = sys.modules.get(module_name)
    if target is None:
        raise RunError(
            f"checkpoint subjects are {name} dataclasses, but module {module_name!r} is not "
            "imported; import it (or build the model that uses it) before resuming"
        )
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        raise RunError(f"checkpoint subjects are {name}, which is not a dataclass now")
    if target.__new__ is not object.__new__:
        raise RunError(f"checkpoint subjects are {name}, whose __new__ would run code")
    return target


def decode_subject(data: Any, classes: dict[str, type] | None = None) -> Any:
    """The subject `encode_subject` encoded; a dataclass is rebuilt field by field, without
    calling its ``__init__``."""
    if "ns" in data:
        return SimpleNamespace(**data["ns"])
    if "dict" in data:
        return dict(data["dict"])
    classes = {} if classes is None else classes
    cls = classes.get(data["dc"])
    if cls is None:
        cls = classes[data["dc"]] = _dataclass(data["dc"])
    subject: Any = object.__new__(cls)
    for key, value in data["fields"].items():
        object.__setattr__(subject, key, value)
    return subject


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _columns(subjects: Sequence[Any]) -> dict[str, Any] | None:
    """Subjects all of one kind (SimpleNamespace with the same keys, or one dataclass) with
    scalar values, as ``{"columns": {key: values}}`` (plus ``"dc"``); else None."""
    if not subjects:
        return None
    kind = type(subjects[0])
    if kind is SimpleNamespace:
        keys = tuple(vars(subjects[0]))
        if any(type(s) is not kind or tuple(vars(s)) != keys for s in subjects):
            return None
        head: dict[str, Any] = {}
    elif dataclasses.is_dataclass(kind) and not getattr(kind, "__slots__", None):
        keys = tuple(f.name for f in dataclasses.fields(kind))
        if any(type(s) is not kind for s in subjects):
            return None
        head = {"dc": f"{kind.__module__}:{kind.__qualname__}"}
    else:
        return None
    columns = {key: [getattr(s, key) for s in subjects] for key in keys}
    if any(not set(map(type, values)) <= _SCALARS for values in columns.values()):
        return None
    return {**head, "columns": columns, "count": len(subjects)}


def _from_columns(data: dict[str, Any]) -> list[Any]:
    """The subjects `_columns` encoded."""
    # Making a million objects only allocates: the cyclic collector would rescan the
    # growing heap again and again for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rebuilt(data)
    finally:
        if collecting:
            gc.enable()


def _rebuilt(data: dict[str, Any]) -> list[Any]:
    columns = data["columns"]
    keys = list(columns)
    rows = zip(*columns.values(), strict=True) if keys else ([] for _ in range(data["count"]))
    if "dc" not in data:
        return [SimpleNamespace(**dict(zip(keys, row, strict=True))) for row in rows]
    cls = _dataclass(data["dc"])
    out = []
    for row in rows:
        subject: Any = object.__new__(cls)
        subject.__dict__.update(zip(keys, row, strict=True))
        out.append(subject)
    return out


def _encode_subjects(subjects: Sequence[Any], allow_pickle: bool) -> tuple[Any, bytes | None]:
    """(JSON data, None) for data subjects, else (None, pickle) when allowed, else RunError."""
    columns = _columns(subjects)
    if columns is not None:
        return columns, None
    try:
        return [encode_subject(s) for s in subjects], None
    except _NotData as exc:
        if not allow_pickle:
            raise RunError(
                f"checkpoint: {exc}; subjects must be a SimpleNamespace, dict or dataclass of "
                "JSON values (str, int, float, bool, None, lists, dicts) to be saved as data. "
                "Pass allow_pickle=True to store them as a pickle (loading that runs code: "
                "resume it only from a file you trust)"
            ) from None
    return None, pickle.dumps(list(subjects), protocol=pickle.HIGHEST_PROTOCOL)


# -- the walker's state -----------------------------------------------------------------------


def _calendar_arrays(calendar: Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Every (subject, tick) filed in `calendar` (the calendar itself is left as it is)."""
    contents = getattr(calendar, "contents", None)
    if callable(contents):
        subjects, ticks = contents()
        return np.asarray(subjects, dtype=np.int64), np.asarray(ticks, dtype=np.int64)
    ticks_map = getattr(calendar, "tick_map", None)
    pending = getattr(calendar, "pending_map", None)
    arrays = getattr(calendar, "pending_arrays", {})
    if isinstance(ticks_map, dict) and isinstance(pending, dict):
        return _calendar_parts(ticks_map, [*pending.values(), *arrays.values()])
    return _calendar_drained(calendar)


def _calendar_parts(
    ticks_map: dict[int, list[Any]], pending: list[tuple[Any, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """The calendar's per-tick chunks and pending blocks as two flat arrays (no copy of the
    calendar: a million subjects take a few numpy calls)."""
    subjects: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    ticks: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    for tick, chunks in ticks_map.items():
        for chunk in chunks:
            subjects.append(np.asarray(chunk, dtype=np.int64))
            ticks.append(np.full(len(chunk), tick, dtype=np.int64))
    for block_subjects, block_ticks in pending:  # lists of ints, or lists of arrays
        if block_subjects and isinstance(block_subjects[0], np.ndarray):
            subjects.extend(block_subjects)
            ticks.extend(block_ticks)
        else:
            subjects.append(np.asarray(block_subjects, dtype=np.int64))
            ticks.append(np.asarray(block_ticks, dtype=np.int64))
    return np.concatenate(subjects), np.concatenate(ticks)


def _calendar_drained(calendar: Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Every (subject, tick) of a copy of `calendar`, drained through its public methods."""
    copy = deepcopy(calendar)
    subjects: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    ticks: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    while (tick := copy.next_tick()) is not None:
        due = np.asarray(copy.take(tick), dtype=np.int64)
        subjects.append(due)
        ticks.append(np.full(len(due), tick, dtype=np.int64))
    return np.concatenate(subjects), np.concatenate(ticks)


def _recorder_arrays(walker: Walker) -> tuple[np.ndarray, np.ndarray]:
    """The recorder's busy bins and their moves per transition."""
    recorder = walker.recorder
    table = recorder.table(max(walker.next_tick, 1))
    bins = np.flatnonzero(table.any(axis=1))
    return bins.astype(np.int64), table[bins]


def _manifest(
    walker: Walker, options: RunOptions, globals_now: tuple[Any, Any], subjects: Any
) -> dict[str, Any]:
    recorder = walker.recorder
    arrivals = walker.arrivals
    python_state = globals_now[0]
    return {
        "format": _FORMAT,
        "version": VERSION,
        "fingerprint": fingerprint(
            walker.tables.model,
            replace(options, timestamp_start=walker.timestamp_start),
            walker.initial_subjects,
        ),
        "settings": {name: getattr(options, name) for name in _SETTINGS}
        | {"timestamp_start": walker.timestamp_start},
        "next_tick": walker.next_tick,
        "last_stamp": walker.last_stamp,
        # Not a setting the resume must match: how often a resumed run goes on writing them.
        "checkpoint_every": options.checkpoint_every,
        "initial_subjects": walker.initial_subjects,
        "rng": walker.rng.bit_generator.state,
        "random": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy_random": list(globals_now[1][2:]),
        "arrivals": None if arrivals is None else [arrivals.next_tick, arrivals.pending],
        "services": walker.services.saved(),
        "recorder": {
            "every": recorder.every,
            "vetoes": [int(v) for v in recorder.vetoes],
            "arrivals": sorted([int(b), int(c)] for b, c in recorder.arrivals.items()),
            # Newcomers an initial mix placed outside the initial state, per tick.
            "entered": sorted(
                [int(t), [int(c) for c in counts]] for t, counts in recorder.entered.items()
            ),
        },
        "sinks": offsets.planned_positions(walker.tables.model.sinks()),
        "subjects": subjects,
        # Cohort runs: each kernel stay's drawn length, newcomers' arrival ticks (ages).
        "semi": None if walker.tables.semi is None else walker.tables.semi.snapshot(),
    }


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """`data` into `path`: a 0600 temporary file in the same directory, fsynced, renamed
    over `path`, then the directory fsynced (so a crash leaves the old or the new file)."""
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=directory)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with _suppressed():
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _suppressed:
    """``contextlib.suppress(OSError)``, kept local to the cleanup path."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


def save(
    path: str | os.PathLike[str],
    walker: Walker,
    options: RunOptions,
    globals_now: tuple[Any, Any],
    *,
    allow_pickle: bool = False,
) -> None:
    """Write where `walker`'s run is (at a tick boundary) to `path`; the sinks' positions are
    made durable first (files flushed and fsynced, SQL rows committed)."""
    subjects, pickled = _encode_subjects(walker.population.subjects, allow_pickle)
    manifest = _manifest(walker, options, globals_now, subjects)
    cal_subjects, cal_ticks = _calendar_arrays(walker.calendar)
    bins, counts = _recorder_arrays(walker)
    arrays: dict[str, np.ndarray] = {
        "manifest": np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8),
        "states": np.asarray(walker.population.view, dtype=np.int32),
        "calendar_subjects": cal_subjects,
        "calendar_ticks": cal_ticks,
        "recorder_bins": bins,
        "recorder_counts": counts,
        "numpy_key": np.asarray(globals_now[1][1], dtype=np.uint32),
    }
    if pickled is not None:
        arrays["subjects_pickle"] = np.frombuffer(pickled, dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    # Two steps, so that a crash at any moment leaves a checkpoint that matches the sinks:
    # the new checkpoint is made durable as pending, the SQL sinks commit, then it replaces
    # the old one. A crash after the commit and before the rename leaves the pending file,
    # which a resume takes when the tables match it (`pending_path`).
    pending = pending_path(path)
    write_atomically(pending, buffer.getvalue())
    offsets.commit_positions(walker.tables.model.sinks())
    os.replace(pending, path)
    _fsync_directory(os.path.dirname(os.path.abspath(os.fspath(path))))


def pending_path(path: str | os.PathLike[str]) -> str:
    """Where the checkpoint being written to `path` waits while its sinks commit."""
    return f"{os.fspath(path)}.pending"


def load(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, Any]:
    """The saved state in `path`, read as data (no code runs unless `allow_pickle` and the
    file holds pickled subjects).

    Raises:
        RunError: not a checkpoint of this format (an older pickle, another file), or its
            subjects are pickled and `allow_pickle` is false.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise RunError(f"{where}: cannot read the checkpoint: {exc}") from exc
    if head[:1] == b"\x80":
        raise RunError(
            f"{where} is a pickle checkpoint of an older dogesim (format 3 or before); it is not "
            "loaded because unpickling runs code. Run again from the start to make a "
            f"format-{VERSION} checkpoint"
        )
    if head != b"PK\x03\x04":
        raise RunError(f"{where} cannot be read as a dogesim checkpoint: not a checkpoint file")
    try:
        with np.load(where, allow_pickle=False) as members:
            arrays = {name: members[name] for name in members.files}
        manifest = json.loads(arrays.pop("manifest").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise RunError(f"{where} cannot be read as a dogesim checkpoint: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise RunError(f"{where} cannot be read as a dogesim checkpoint: no {_FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise RunError(
            f"{where} is a dogesim checkpoint of format {manifest.get('version')!r}; this "
            f"version reads format {VERSION}"
        )
    manifest["arrays"] = arrays
    manifest["subjects"] = _loaded_subjects(where, manifest, arrays, allow_pickle)
    return manifest


def _loaded_subjects(
    where: str, manifest: dict[str, Any], arrays: dict[str, np.ndarray], allow_pickle: bool
) -> list[Any]:
    if isinstance(manifest["subjects"], dict):
        return _from_columns(manifest["subjects"])
    if manifest["subjects"] is not None:
        classes: dict[str, type] = {}
        return [decode_subject(s, classes) for s in manifest["subjects"]]
    if not allow_pickle:
        raise RunError(
            f"{where}: its subjects are stored as a pickle, and loading a pickle runs code; "
            "resume with allow_pickle=True (CLI: --resume-allow-pickle) only if you trust "
            "the file"
        )
    loaded: list[Any] = pickle.loads(arrays["subjects_pickle"].tobytes())
    return loaded


def restore(walker: Walker, saved: dict[str, Any]) -> None:
    """Put a fresh `walker` where the saved run stopped (its population is restored)."""
    arrays = saved["arrays"]
    recorder = walker.recorder
    recorder.every = int(saved["recorder"]["every"])
    for b, counts in zip(arrays["recorder_bins"].tolist(), arrays["recorder_counts"], strict=True):
        recorder.add(b * recorder.every, counts)
    recorder.vetoes = list(saved["recorder"]["vetoes"])
    recorder.arrivals = {b: c for b, c in saved["recorder"]["arrivals"]}
    recorder.entered = {
        t: np.asarray(counts, dtype=np.int64) for t, counts in saved["recorder"].get("entered", [])
    }
    walker.initial_subjects = saved["initial_subjects"]
    walker.calendar = Calendar()
    walker.calendar.file(arrays["calendar_subjects"], arrays["calendar_ticks"])
    walker.rng.bit_generator.state = saved["rng"]
    version, internal, gauss = saved["random"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", arrays["numpy_key"], *saved["numpy_random"]))
    walker.first_tick = walker.next_tick = saved["next_tick"]
    recorder.mark()
    walker.origin = walker.env.now - walker.first_tick
    walker.last_stamp = saved["last_stamp"]
    if walker.arrivals is not None and saved["arrivals"] is not None:
        walker.arrivals.next_tick, walker.arrivals.pending = saved["arrivals"]
    walker.services.restart(saved["services"])
    semi, kept = walker.tables.semi, saved.get("semi")
    if semi is not None and kept is not None:
        semi.restore(kept, walker.population.view)


def states_of(saved: dict[str, Any]) -> array[int]:
    """The saved states as the `array('i')` a `Population` holds."""
    states = array("i")
    states.frombytes(saved["arrays"]["states"].astype(np.intc).tobytes())
    return states


# -- periodic checkpoints ----------------------------------------------------------------------


class Periodic:
    """A progress hook that also writes a checkpoint every `every` ticks, at a tick boundary.

    When SimPy still has events due at the boundary (resource grants of the tick just
    handled), a small process lets them happen first — as a stopped run does before it is
    saved — and writes the checkpoint then, before the walker handles another tick.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int,
        walker: Callable[[], Walker | None],
        write: Callable[[Walker], None],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.path = path
        self.every = every
        self._walker = walker
        self._write = write
        self.progress = progress
        self.next_due = every
        self.written = 0
        self._settling = False

    def __call__(self, ticks_done: int) -> None:
        if self.progress is not None:
            self.progress(ticks_done)
        walker = self._walker()
        if walker is None or ticks_done < self.next_due or ticks_done >= walker.horizon:
            return
        if walker.next_tick != ticks_done or self._settling:
            return
        self.next_due = (ticks_done // self.every + 1) * self.every
        env = walker.env
        if env.peek() <= env.now:
            self._settling = True
            env.process(self._settle_then_write(walker))
            return
        self._save(walker)

    def _save(self, walker: Walker) -> None:
        self._write(walker)
        self.written += 1

    def _settle_then_write(self, walker: Walker) -> Generator[Any, Any, None]:
        env = walker.env
        try:
            while env.peek() <= env.now and walker.failure is None:
                yield env.timeout(0)
            if walker.failure is None:
                self._save(walker)
        except BaseException as exc:
            walker.fail(exc)
        finally:
            self._settling = False
