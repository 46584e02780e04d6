"""Callbacks of the music model: ``music.yaml`` beside this file names them
``music_callbacks:NAME``.

- `start_session`: a session opens: a new session id, the time it opened.
- `play`: a song starts: which song (from a catalogue of the size ``args:`` gives), when.
- `change_level`: an up- or downgrade took effect: the level ``args:`` gives, and since when.

They keep the listener's fields (written with every event) in step with what the listener
does; none vetoes a move, so the model's laws alone decide when events happen. Each reads
the time of the event it runs for with `dogesim.engine.current_time`. The song is drawn from
the global `random` module, which a seeded run seeds, so a seeded run stays reproducible.
"""

from __future__ import annotations

import random
from typing import Any

from dogesim.engine import current_time
from dogesim.model import Transition

__all__ = ["change_level", "play", "start_session"]


def start_session(listener: Any, transition: Transition) -> bool:
    """A session opens: the listener's next session id and the time it opened."""
    listener.session_id = int(getattr(listener, "session_id", 0)) + 1
    listener.session_start = current_time()
    return True


def play(listener: Any, transition: Transition, *, catalogue: int) -> bool:
    """A song starts: one of the `catalogue` songs, at the event's time."""
    listener.song_id = random.randrange(catalogue)
    listener.song_start = current_time()
    listener.songs = int(getattr(listener, "songs", 0)) + 1
    return True


def change_level(listener: Any, transition: Transition, *, level: str) -> bool:
    """The listener's level is now `level` (``free`` or ``paid``), since the event's time."""
    listener.level = level
    listener.level_since = current_time()
    return True
