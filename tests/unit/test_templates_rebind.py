"""Rebindable template mappers: one function object, restarted per run with a new seed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dogesim.model import Transition
from dogesim.templates import Template

pytest.importorskip("faker")

MOVE = Transition("buy", "a", "b", 10)
SPEC = {"n": {"seq": "event"}, "name": {"faker": "name"}, "id": {"subject": "id"}}


def _draw(mapper: object, n: int = 5) -> list[object]:
    return [mapper(1000 * i, SimpleNamespace(id=i), MOVE) for i in range(n)]  # type: ignore[operator]


def test_rebind_gives_the_stream_a_fresh_mapper_of_that_seed_gives() -> None:
    """After rebind(seed) the same function yields what mapper(seed) yields, counters reset."""
    template = Template(SPEC, path="sinks.s.value")
    mapper = template.rebindable(1)
    first = _draw(mapper)
    mapper.rebind(7)
    assert _draw(mapper) == _draw(template.mapper(7))
    mapper.rebind(1)
    assert _draw(mapper) == first
    assert [row["n"] for row in first] == [0, 1, 2, 3, 4]


def test_rebind_keeps_the_encoding() -> None:
    """A JSON-encoding rebindable mapper stays one after rebind."""
    template = Template({"id": {"subject": "id"}}, path="sinks.k.value")
    mapper = template.rebindable(0, encode="json")
    mapper.rebind(3)
    assert mapper(0, SimpleNamespace(id=4), MOVE) == '{"id":4}'
