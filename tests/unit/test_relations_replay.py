"""Replayed pools: a later run refers only to the entities that existed at its clock's time."""

from __future__ import annotations

import pytest

from dogesim.errors import ModelError
from dogesim.relations import EntityPool, Relation


def test_a_replay_applies_additions_and_removals_up_to_the_clock() -> None:
    """Picks see exactly the ids added and not removed at or before the clock's time."""
    now = [0]
    pool = EntityPool("customers")
    pool.record(lambda: now[0])
    for t, entity in ((0, "a"), (10, "b"), (20, "c")):
        now[0] = t
        pool.add(entity)
    now[0] = 15
    pool.remove("a")
    played = pool.replay(lambda: now[0])
    relation = Relation(played, seed=1)
    now[0] = 5
    assert {relation.pick() for _ in range(50)} == {"a"}
    now[0] = 12
    assert {relation.pick() for _ in range(200)} == {"a", "b"}
    now[0] = 15
    assert {relation.pick() for _ in range(200)} == {"b"}
    now[0] = 99
    assert {relation.pick() for _ in range(200)} == {"b", "c"}


def test_clear_plays_the_history_again_and_a_pool_without_one_cannot_replay() -> None:
    """After clear() a replay starts from the beginning; replay() needs a recorded history."""
    now = [0]
    pool = EntityPool("products")
    pool.record(lambda: now[0])
    pool.add("p1")
    played = pool.replay(lambda: now[0])
    relation = Relation(played, seed=2)
    assert relation.pick() == "p1"
    played.clear()
    assert len(played) == 0
    assert relation.pick() == "p1"
    with pytest.raises(ModelError, match="no history recorded"):
        EntityPool("x").replay(lambda: 0)
