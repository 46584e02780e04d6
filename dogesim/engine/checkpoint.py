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

from dogesim.errors import RunError
from dogesim.model import Model

if TYPE_CHECKING:
    from dogesim.engine.walker import Walker

__all__ = ["VERSION", "fingerprint", "load", "restore", "save"]

#: The checkpoint format (2: the recorder replaced per-tick rows).
VERSION = 2


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
    settings: dict[str, Any],
    global_states: tuple[Any, Any],
) -> None:
    """Write where `walker`'s stopped run is to `path` (through a temporary file)."""
    state = {
        "version": VERSION,
        "fingerprint": fingerprint(walker.tables.model),
        **settings,
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
    walker.services.restart(saved["services"])
