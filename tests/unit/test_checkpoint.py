"""Checkpoint format 4: data only (no code runs on load), every run setting fingerprinted,
sink positions restored (files cut back, SQL tables checked), periodic checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim import MemorySink, Model, RunError, Simulation
from dogesim.engine import checkpoint as checkpoints
from dogesim.engine.options import RunOptions
from dogesim.errors import ModelError
from dogesim.rates import Profile
from dogesim.sinks.files import JsonLinesSink

#: Every test here runs on both engine paths: the compiled kernel and its Python twin.
pytestmark = pytest.mark.usefixtures("kernel_path")

TICKS = 300


@dataclass
class Card:
    """A dataclass subject of JSON fields."""

    id: int
    tier: str


class Opaque:
    """A subject that is not data."""

    def __init__(self, n: int) -> None:
        self.n = n


def _record(ts: int, subject: Any, transition: Any) -> tuple[int, str, str]:
    return ts, repr(subject), transition.trigger


def _model(
    sink: Any, *, chance: float = 8, capacity: int = 2, hold: int = 3, profile: Any = None
) -> Model:
    model = Model(["idle", "busy", "gone"], "idle", resources={"desk": capacity})
    model.add_transition(
        "work", "idle", "busy", chance, event_sinks=[sink], resource="desk", hold=hold
    )
    model.add_transition("rest", "busy", "idle", 10, event_sinks=[sink], profile=profile)
    model.add_transition("quit", "busy", "gone", 0.5, event_sinks=[sink])
    return model


def _options(**changes: Any) -> RunOptions:
    settings: dict[str, Any] = dict(
        ticks=TICKS, tick_ms=60_000, timestamp_start=1_700_000_000_000, seed=5, jitter=True
    )
    return RunOptions(**{**settings, **changes})


def _stopped(tmp_path: Path, subjects: Any, *, at: int = 120, **kw: Any) -> tuple[Path, Any]:
    """A run stopped at tick `at` and checkpointed; returns (path, its sink)."""
    sink = MemorySink(_record)
    sim: Simulation

    def stop(t: int) -> None:
        if t >= at:
            sim.stop()

    sim = Simulation(_model(sink), subjects, options=_options(progress=stop, **kw))
    assert sim.run().stopped
    path = tmp_path / "run.ckpt"
    sim.checkpoint(path)
    return path, sink


def test_checkpoint_is_a_zip_of_arrays_and_json_written_0600(tmp_path: Path) -> None:
    """The file is an npz whose members load with allow_pickle=False; the manifest is JSON
    of format 4; the file is private to its owner."""
    path, _ = _stopped(tmp_path, 12)
    assert path.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(path) as archive:
        assert "manifest.npy" in archive.namelist()
    with np.load(path, allow_pickle=False) as members:
        manifest = json.loads(members["manifest"].tobytes())
        assert len(members["states"]) == 12
    assert manifest["version"] == checkpoints.VERSION == 4
    assert manifest["subjects"]["columns"] == {"id": list(range(12))}  # one column per key
    assert not list(tmp_path.glob(".ckpt-*"))  # no temporary file left behind


def test_resume_of_dataclass_subjects_equals_the_whole_run(tmp_path: Path) -> None:
    """Dataclass subjects are saved as data and rebuilt: stop + resume = the whole run."""
    subjects = [Card(i, "pro" if i % 2 else "basic") for i in range(12)]
    whole = MemorySink(_record)
    Simulation(_model(whole), [Card(c.id, c.tier) for c in subjects], options=_options()).run()
    path, first = _stopped(tmp_path, subjects)
    second = MemorySink(_record)
    Simulation.resume(path, _model(second)).run()
    assert len(first.events) > 0 and len(second.events) > 0
    assert first.events + second.events == whole.events


@pytest.mark.parametrize(
    "subjects",
    [
        [SimpleNamespace(id=i, tags=["a"] * (i % 3)) for i in range(6)],
        [SimpleNamespace(id=i) if i % 2 else {"id": i, "x": None} for i in range(6)],
        [Card(i, "pro") for i in range(6)],
        [SimpleNamespace(id=i, plan="p", score=i / 3, ok=True) for i in range(6)],
    ],
)
def test_data_subjects_come_back_equal(tmp_path: Path, subjects: list[Any]) -> None:
    """Namespaces with lists, mixed namespaces and dicts, dataclasses and scalar columns
    are saved as data and loaded back equal, of the same types."""
    path, _ = _stopped(tmp_path, subjects)
    loaded = checkpoints.load(path)["subjects"]
    assert loaded == subjects
    assert [type(s) for s in loaded] == [type(s) for s in subjects]


def test_old_pickle_checkpoint_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    """A format-3 pickle is refused with a clear message, and nothing in it runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "old.ckpt"
    path.write_bytes(pickle.dumps({"version": 3, "x": _Trap(str(marker))}))
    with pytest.raises(RunError, match="pickle checkpoint of an older dogesim"):
        Simulation.resume(path, _model(MemorySink()))
    assert not marker.exists()


class _Trap:
    """Unpickling this touches a file (code running on load)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def test_subjects_that_are_not_data_need_the_pickle_opt_in(tmp_path: Path) -> None:
    """Opaque subjects: checkpoint refuses them unless allow_pickle; such a file resumes only
    with allow_pickle=True, and then equals the whole run."""
    with pytest.raises(RunError, match="allow_pickle=True"):
        _stopped(tmp_path, [Opaque(i) for i in range(8)])
    sink = MemorySink(lambda ts, s, t: (ts, s.n, t.trigger))
    sim: Simulation
    sim = Simulation(
        _model(sink),
        [Opaque(i) for i in range(8)],
        options=_options(progress=lambda t: sim.stop() if t >= 100 else None),
    )
    sim.run()
    path = tmp_path / "opaque.ckpt"
    sim.checkpoint(path, allow_pickle=True)
    with pytest.raises(RunError, match="runs code"):
        Simulation.resume(path, _model(MemorySink()))
    rest = MemorySink(lambda ts, s, t: (ts, s.n, t.trigger))
    Simulation.resume(path, _model(rest), allow_pickle=True).run()
    whole = MemorySink(lambda ts, s, t: (ts, s.n, t.trigger))
    Simulation(_model(whole), [Opaque(i) for i in range(8)], options=_options()).run()
    assert sink.events + rest.events == whole.events


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    """Text, or a zip of arrays without the manifest, is not a checkpoint."""
    junk = tmp_path / "junk"
    junk.write_text("hello")
    with pytest.raises(RunError, match="cannot be read as a dogesim checkpoint"):
        checkpoints.load(junk)
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, manifest=np.frombuffer(b'{"a": 1}', dtype=np.uint8))
    with pytest.raises(RunError, match="no dogesim-checkpoint manifest"):
        checkpoints.load(arrays)


DAY = Profile(hourly=[2.0] + [1.0] * 23)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"chance": 9}, "transitions: changed 'work'"),
        ({"capacity": 3}, "resources"),
        ({"hold": 4}, "transitions: changed 'work'"),
        ({"profile": DAY}, "transitions: changed 'rest'"),
        ({"arrivals": 0.2}, "arrivals"),
        ({"arrivals_profile": DAY}, "arrivals_profile"),
        ({"churn": 1}, "transitions: 3 -> 5 transitions"),
        ({"expected": {"seed": 6}}, "seed"),
        ({"expected": {"ticks": 301}}, "ticks"),
        ({"expected": {"tick_ms": 30_000, "ticks": TICKS}}, "tick_ms"),
        ({"expected": {"timestamp_start": 1}}, "timestamp_start"),
        ({"expected": {"jitter": False}}, "jitter"),
        ({"expected": {"record_every": 7}}, "record_every"),
        ({"subjects": 13}, "subjects"),
    ],
)
def test_resume_with_any_setting_changed_names_it(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    """Each run setting is in the fingerprint: changing it is a RunError naming it."""
    path, _ = _stopped(tmp_path, 12, arrivals=0.1)
    model_keys = {k: change[k] for k in ("chance", "capacity", "hold", "profile") if k in change}
    resume: dict[str, Any] = {
        "arrivals": change.get("arrivals", 0.1),
        "arrivals_profile": change.get("arrivals_profile"),
        "churn": change.get("churn"),
        "subjects": change.get("subjects"),
    }
    if "expected" in change:
        resume["expected"] = _options(**change["expected"])
    with pytest.raises(RunError, match="different model or run settings") as caught:
        Simulation.resume(path, _model(MemorySink(), **model_keys), **resume)
    assert named in str(caught.value)


def test_resume_with_the_same_settings_is_accepted(tmp_path: Path) -> None:
    """The unchanged settings, given explicitly, pass the fingerprint check."""
    path, _ = _stopped(tmp_path, 12, arrivals=0.1)
    sim = Simulation.resume(
        path, _model(MemorySink()), arrivals=0.1, expected=_options(), subjects=12
    )
    assert sim.run().ticks == TICKS


def _jsonl_model(path: Path) -> tuple[Model, JsonLinesSink]:
    sink = JsonLinesSink(path, append=True)
    return _model(sink), sink


def _checkpointed_at_tick_100(part: Path, checkpoint: Path) -> None:
    """A run into `part` stopped after tick 100 and checkpointed at `checkpoint`."""
    sim: Simulation
    sim = Simulation(
        _jsonl_model(part)[0],
        12,
        options=_options(progress=lambda t: sim.stop() if t >= 100 else None),
    )
    sim.run()
    sim.checkpoint(checkpoint)


def test_resume_cuts_a_jsonl_file_back_to_the_checkpoint(tmp_path: Path) -> None:
    """Lines written after the checkpoint (by a run that died) are cut off on resume, so
    resuming twice from one checkpoint still gives the whole run's bytes."""
    whole = tmp_path / "whole.jsonl"
    Simulation(_jsonl_model(whole)[0], 12, options=_options()).run()
    part = tmp_path / "part.jsonl"
    _checkpointed_at_tick_100(part, tmp_path / "c")
    Simulation.resume(tmp_path / "c", _jsonl_model(part)[0]).run()  # a first resume, done
    with part.open("ab") as handle:
        handle.write(b'{"torn":')  # and a torn line as a crash leaves
    Simulation.resume(tmp_path / "c", _jsonl_model(part)[0]).run()
    assert part.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_resume_refuses_a_file_edited_in_place_with_its_size_and_lines(
    tmp_path: Path, suffix: str
) -> None:
    """One byte changed inside the checkpointed part of the file (same size, same lines:
    the resume checked only those) is refused naming the file; the file is left as it is.
    The check is a CRC-32 of the bytes up to the checkpoint, counted with the lines."""
    part = tmp_path / ("part" + suffix)
    _checkpointed_at_tick_100(part, tmp_path / "c")
    data = bytearray(part.read_bytes())
    at = len(data) // 2
    while data[at] in b"\n\x0b":  # 0x0b ^ 1 is a newline
        at += 1
    data[at] ^= 0x01  # not a newline either way
    part.write_bytes(bytes(data))
    with pytest.raises(RunError, match=r"its bytes up to .* differ from the checkpoint's"):
        Simulation.resume(tmp_path / "c", _jsonl_model(part)[0]).run()
    assert part.read_bytes() == bytes(data)


def test_resume_refuses_a_jsonl_file_changed_before_the_checkpoint(tmp_path: Path) -> None:
    """A file shorter than at the checkpoint, or with other lines, is refused, not cut."""
    part = tmp_path / "part.jsonl"
    _checkpointed_at_tick_100(part, tmp_path / "c")
    data = part.read_bytes()
    part.write_bytes(data[:-10])
    with pytest.raises(RunError, match=r"holds .* bytes, the checkpoint was taken at"):
        Simulation.resume(tmp_path / "c", _jsonl_model(part)[0]).run()
    part.write_bytes(data.replace(b"\n", b" ", 1))
    with pytest.raises(RunError, match="lines up to byte"):
        Simulation.resume(tmp_path / "c", _jsonl_model(part)[0]).run()
    other = tmp_path / "other.jsonl"
    other.write_bytes(data)
    with pytest.raises(RunError, match="resume with the same sinks"):
        Simulation.resume(tmp_path / "c", _jsonl_model(other)[0]).run()


def test_periodic_checkpoints_resume_to_the_whole_run(tmp_path: Path) -> None:
    """checkpoint_every writes checkpoints at tick boundaries during the run; resuming the
    one written at a given tick equals the whole run from there on."""
    whole = MemorySink(_record)
    Simulation(_model(whole), 12, options=_options()).run()
    ckpt = tmp_path / "p.ckpt"
    kept: dict[int, bytes] = {}

    def keep(t: int) -> None:
        if ckpt.exists():
            kept.setdefault(json.loads(_manifest(ckpt))["next_tick"], ckpt.read_bytes())

    sink = MemorySink(_record)
    sim = Simulation(
        _model(sink),
        12,
        options=_options(checkpoint_path=ckpt, checkpoint_every="1h", progress=keep),
    )
    sim.run()
    assert sink.events == whole.events
    ticks = sorted(kept)
    # One per hour of ticks (60, 120, 180, 240), none starved by the grants of busy ticks.
    assert [t // 60 for t in ticks] == [1, 2, 3, 4]
    for tick in ticks:
        (tmp_path / "m.ckpt").write_bytes(kept[tick])
        rest = MemorySink(_record)
        Simulation.resume(tmp_path / "m.ckpt", _model(rest)).run()
        cut = 1_700_000_000_000 + tick * 60_000
        assert rest.events == [e for e in whole.events if e[0] >= cut]


def _manifest(path: Path) -> bytes:
    with np.load(path, allow_pickle=False) as members:
        return bytes(members["manifest"].tobytes())


def test_checkpoint_every_needs_a_path() -> None:
    """checkpoint_every without checkpoint_path is a ModelError naming both."""
    with pytest.raises(ModelError, match=r"checkpoint_every .* needs checkpoint_path"):
        Simulation(_model(MemorySink()), 3, options=_options(checkpoint_every=10))


def test_loading_runs_no_code_for_data_subjects(tmp_path: Path, monkeypatch: Any) -> None:
    """Loading a data checkpoint never calls pickle."""
    path, _ = _stopped(tmp_path, 6)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle.loads was called")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    saved = checkpoints.load(path)
    assert [s.id for s in saved["subjects"]] == list(range(6))
    assert isinstance(saved["subjects"][0], SimpleNamespace)
    assert os.fspath(path).endswith("run.ckpt")


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: Any) -> None:
    """A checkpoint is renamed into place: when writing fails, the old file is intact and
    no temporary file is left."""
    path, _ = _stopped(tmp_path, 6)
    before = path.read_bytes()

    def broken(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    sink = MemorySink(_record)
    sim: Simulation
    sim = Simulation(
        _model(sink), 6, options=_options(progress=lambda t: sim.stop() if t >= 50 else None)
    )
    sim.run()
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        sim.checkpoint(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_calendar_contents_read_in_place_equal_a_drained_copy() -> None:
    """The calendar's (subject, tick) pairs read from its blocks equal those drained from a
    copy through next_tick/take, and reading leaves the calendar as it was."""
    from dogesim.engine.scheduler import Calendar

    rng = np.random.default_rng(4)
    calendar = Calendar()
    calendar.file(np.arange(500, dtype=np.int64), rng.integers(0, 5000, 500))
    first = calendar.next_tick()
    assert first is not None
    calendar.take(first)
    calendar.file(np.arange(500, 520, dtype=np.int64), rng.integers(first + 1, 300, 20))
    fast = checkpoints._calendar_arrays(calendar)
    slow = checkpoints._calendar_drained(calendar)
    assert sorted(zip(*fast, strict=True)) == sorted(zip(*slow, strict=True))
    assert len(fast[0]) == len(calendar) == 519


@pytest.mark.parametrize(("every", "ticks"), [("10m", 600), (25, 25), ("1500ms", 1)])
def test_checkpoint_every_is_ticks_or_a_duration(every: Any, ticks: int) -> None:
    """checkpoint_every takes ticks or a duration of simulated time (at least one tick)."""
    options = RunOptions(100, 1000, checkpoint_path="x.ckpt", checkpoint_every=every)
    assert options.validated(live=False).checkpoint_every == ticks
