"""Checkpoints of a stopped run: `save` and `load`, and the `fingerprint` a resume must match.

Phase 1 keeps the existing format — a pickle of the run's state (subjects, states, calendar,
random generators, recorder, resource queues, clock) — so it must only be loaded from a file
you trust: loading a pickle runs code. A versioned, data-only codec replaces it next.
"""

from __future__ import annotations

import os
import pickle
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.engine.options import RunOptions
from dogesim.errors import RunError
from dogesim.model import Model

if TYPE_CHECKING:
    from dogesim.engine.walker import Walker

__all__ = ["VERSION", "check_model", "fingerprint", "load", "restore", "save", "settings_of"]

#: The run settings a checkpoint keeps (the resumed run takes them from it).
_SETTINGS = ("seed", "tick_ms", "timestamp_start", "ticks", "jitter", "record_every")

#: The checkpoint format (3: the recorder replaced per-tick rows; planned arrivals).
VERSION = 3


def fingerprint(model: Model) -> tuple[Any, ...]:
    """What a checkpoint must match: states and every transition's shape and chance."""
    return (
        model.states,
        model.initial_state,
        tuple(
            (t.trigger, t.from_state, t.to_state, round(t.probability, 12))
            for t in model.transitions
        ),
    )


def save(
    path: str | os.PathLike[str],
    walker: Walker,
    options: RunOptions,
    global_states: tuple[Any, Any],
) -> None:
    """Write where `walker`'s stopped run is to `path` (through a temporary file)."""
    state = {
        "version": VERSION,
        "fingerprint": fingerprint(walker.tables.model),
        **{name: getattr(options, name) for name in _SETTINGS},
        "timestamp_start": walker.timestamp_start,
        "next_tick": walker.next_tick,
        "subjects": walker.population.subjects,
        "states": walker.population.states,
        "calendar": walker.calendar,
        "rng": walker.rng.bit_generator.state,
        "random": global_states[0],
        "numpy_random": global_states[1],
        "recorder": walker.recorder,
        "initial_subjects": walker.initial_subjects,
        "services": walker.services.saved(),
        "last_stamp": walker.last_stamp,
        "arrivals": walker.arrivals,
    }
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as handle:
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The saved state in `path` (a trusted file: this unpickles it)."""
    with open(path, "rb") as handle:
        saved = pickle.load(handle)
    if not isinstance(saved, dict) or saved.get("version") != VERSION:
        raise RunError(
            f"{os.fspath(path)} is not a dogesim checkpoint of format {VERSION} "
            "(written by another version, or another file)"
        )
    return saved


def settings_of(saved: dict[str, Any]) -> dict[str, Any]:
    """The run settings saved with a checkpoint, as `Simulation` keywords."""
    return {name: saved[name] for name in _SETTINGS}


def check_model(path: str | os.PathLike[str], saved: dict[str, Any], model: Model) -> None:
    """`RunError` unless `model` (as the resumed run sees it) is the checkpointed one."""
    if fingerprint(model) != saved["fingerprint"]:
        raise RunError(
            f"{os.fspath(path)} was saved from a different model (states, transitions or "
            "chances changed); resume it with the model it was run with"
        )


def restore(walker: Walker, saved: dict[str, Any]) -> None:
    """Put a fresh `walker` where the saved run stopped (its population is restored)."""
    walker.recorder = saved["recorder"]
    walker.initial_subjects = saved["initial_subjects"]
    walker.calendar = saved["calendar"]
    walker.rng.bit_generator.state = saved["rng"]
    random.setstate(saved["random"])
    np.random.set_state(saved["numpy_random"])
    walker.first_tick = walker.next_tick = saved["next_tick"]
    walker.recorder.mark()
    walker.origin = walker.env.now - walker.first_tick
    walker.last_stamp = saved["last_stamp"]
    if walker.arrivals is not None and saved["arrivals"] is not None:
        walker.arrivals.next_tick = saved["arrivals"].next_tick
        walker.arrivals.pending = saved["arrivals"].pending
    walker.services.restart(saved["services"])
