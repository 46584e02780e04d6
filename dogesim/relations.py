"""Relations between populations: foreign keys that always resolve.

- `EntityPool`: the ids of one population's entities that exist now (added when an entity
  is created, removed when it churns), each with a weight and a creation rank.
- `Relation`: picks an existing id from a pool, uniformly, weighted by the pool's weights,
  or by a Zipf law over creation rank with exponent ``s``; reproducible from a seed.
- `LAWS`: the laws a relation may use.
- `seeded_random`: a `random.Random` from ``SeedSequence([seed, *path])`` (relations, faults).
- `PoolTracker`: a sink that removes a subject's id from a pool when it reaches a final state.

A pool can also keep its history (`EntityPool.record`): each addition and removal with its
time. `EntityPool.replay` (or `EntityPool.follow`) gives a pool that plays that history
back as a later run's clock advances, so a population simulated after another one refers
only to the entities that existed at the time of the tick being handled (a model file with
several entity types runs them one after another).

A pick only ever returns an id that is in the pool at that moment, so a reference written
with an event resolves against the entities alive when it was written. Picks cost
O(log n): every law keeps its weights in a Fenwick (binary indexed) tree over creation
slots; a removed entity's slot gets weight 0.

The Zipf law gives the k-th created entity (k = 1, 2, ...) the weight ``k ** -s``; entities
that were removed drop out and the rest keep their weights, so with no removals it is
exactly the Zipf law over the pool's n entities.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.errors import ModelError, RunError, shown

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["LAWS", "EntityPool", "PoolTracker", "Relation", "seeded_random"]

#: The laws a `Relation` may pick by.
LAWS = ("uniform", "weighted", "zipf")


def seeded_random(seed: int, path: str) -> random.Random:
    """A `random.Random` seeded from ``SeedSequence([seed, *path.encode()])``.

    The path (e.g. ``sinks.orders.value.customer_id``) makes each field's stream
    independent of the others and of the order fields are compiled in.
    """
    sequence = np.random.SeedSequence([int(seed), *path.encode("utf-8")])
    words = sequence.generate_state(4, dtype=np.uint32).tolist()
    return random.Random(sum(int(w) << (32 * i) for i, w in enumerate(words)))


class _Fenwick:
    """Prefix sums over a growing array of non-negative weights, searchable by a prefix."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._tree: list[float] = [0.0]  # 1-based
        self._values: list[float] = []
        self.total = 0.0

    def append(self, weight: float) -> None:
        self._values.append(0.0)
        size = len(self._values)
        # The new node covers (size - lowbit, size]: the sum of those existing values.
        low = size & -size
        covered = 0.0
        child = size - 1
        while child > size - low:
            covered += self._tree[child]
            child -= child & -child
        self._tree.append(covered)
        self.set(size - 1, weight)

    def set(self, index: int, weight: float) -> None:
        delta = weight - self._values[index]
        self._values[index] = weight
        self.total += delta
        i = index + 1
        while i < len(self._tree):
            self._tree[i] += delta
            i += i & -i

    def value(self, index: int) -> float:
        return self._values[index]

    def find(self, target: float) -> int:
        """The first index whose prefix sum exceeds `target` (clamped to the last one)."""
        position = 0
        step = 1 << (len(self._tree).bit_length())
        while step:
            nxt = position + step
            if nxt < len(self._tree) and self._tree[nxt] <= target:
                position = nxt
                target -= self._tree[nxt]
            step >>= 1
        return min(position, len(self._values) - 1)


def _no_clock() -> int:
    return 0


class EntityPool:
    """The entities of one population that exist now, by id.

    Args:
        name: the population's name, for messages (``customers``).

    `add` an id when its entity is created (with a weight for weighted picks), `remove` it
    when the entity leaves; `wrap_factory` does the adding for a subject factory.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._slot: dict[Hashable, int] = {}
        self._ids: list[Hashable] = []
        self._weights: list[float] = []
        self._trees: dict[tuple[str, float], _Fenwick] = {}
        #: (time, entity id, weight or None for a removal), when recording.
        self.history: list[tuple[int, Hashable, float | None]] | None = None
        self._clock: Callable[[], int] = _no_clock
        self._script: list[tuple[int, Hashable, float | None]] = []
        self._played = 0

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._slot

    def ids(self) -> list[Hashable]:
        """The ids that exist now, in creation order."""
        return [i for slot, i in enumerate(self._ids) if self._slot.get(i) == slot]

    def add(self, entity_id: Hashable, weight: float = 1.0) -> None:
        """Add a new entity. Raises `ModelError` for a duplicate id or a bad weight."""
        if entity_id in self._slot:
            raise ModelError(f"population {self.name!r}: id {shown(entity_id)} exists already")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ModelError(
                f"population {self.name!r}: weight {shown(weight)} of id {shown(entity_id)} "
                "is not a number >= 0"
            )
        if weight == float("inf"):
            raise ModelError(f"population {self.name!r}: weight of {shown(entity_id)} is infinite")
        if self.history is not None:
            self.history.append((self._clock(), entity_id, float(weight)))
        slot = len(self._ids)
        self._slot[entity_id] = slot
        self._ids.append(entity_id)
        self._weights.append(float(weight))
        for (law, s), tree in self._trees.items():
            tree.append(self._law_weight(law, s, slot))

    def remove(self, entity_id: Hashable) -> None:
        """Remove an entity (it churned); later picks never return it. Unknown ids: no-op."""
        slot = self._slot.pop(entity_id, None)
        if slot is None:
            return
        if self.history is not None:
            self.history.append((self._clock(), entity_id, None))
        for tree in self._trees.values():
            tree.set(slot, 0.0)

    def clear(self) -> None:
        """Remove every entity, for a new run (templates compiled against the pool stay valid)."""
        self._slot.clear()
        self._ids.clear()
        self._weights.clear()
        for tree in self._trees.values():
            tree.reset()  # in place: relations keep their tree
        self._played = 0
        if self.history is not None:
            self.history = []

    def record(self, clock: Callable[[], int]) -> None:
        """Keep the history of additions and removals from now on, timed by `clock`."""
        self.history = []
        self._clock = clock

    def replay(self, clock: Callable[[], int]) -> EntityPool:
        """A new pool that plays this pool's history back as `clock` advances.

        Before each pick, every addition and removal timed at or before ``clock()`` is
        applied; the replay starts empty (call `clear` to play it from the start again).
        """
        played = EntityPool(self.name)
        played.follow(self, clock)
        return played

    def follow(self, recorded: EntityPool, clock: Callable[[], int]) -> None:
        """Empty this pool and play `recorded`'s history back into it as `clock` advances."""
        if recorded.history is None:
            raise ModelError(f"population {recorded.name!r}: no history recorded to replay")
        self.clear()
        self._script = sorted(recorded.history, key=lambda entry: entry[0])  # stable
        self._clock = clock

    def catch_up(self) -> None:
        """Apply the replayed history up to the clock's time (a no-op for other pools)."""
        script = self._script
        if self._played >= len(script):
            return
        now = self._clock()
        while self._played < len(script) and script[self._played][0] <= now:
            _, entity_id, weight = script[self._played]
            self._played += 1
            if weight is None:
                self.remove(entity_id)
            else:
                self.add(entity_id, weight)

    def _law_weight(self, law: str, s: float, slot: int) -> float:
        if law == "uniform":
            return 1.0
        if law == "weighted":
            return self._weights[slot]
        return float((slot + 1) ** -s)

    def _tree(self, law: str, s: float) -> _Fenwick:
        key = (law, s if law == "zipf" else 0.0)
        tree = self._trees.get(key)
        if tree is None:
            tree = _Fenwick()
            for slot, entity_id in enumerate(self._ids):
                alive = self._slot.get(entity_id) == slot
                tree.append(self._law_weight(law, s, slot) if alive else 0.0)
            self._trees[key] = tree
        return tree

    def wrap_factory(
        self, factory: Callable[[], Any], key: str = "id", weight: str | None = None
    ) -> Callable[[], Any]:
        """A factory that adds each subject's `key` attribute (and `weight`) to this pool."""

        def create() -> Any:
            subject = factory()
            self.add(getattr(subject, key), getattr(subject, weight) if weight else 1.0)
            return subject

        return create


class Relation:
    """Picks the id of an existing entity of `pool`, reproducibly.

    Args:
        pool: the population picked from.
        law: ``uniform``, ``weighted`` (by the weights given to `EntityPool.add`) or
            ``zipf`` (the k-th created entity weighs ``k ** -s``).
        s: the Zipf exponent (> 0); only for ``zipf``.
        seed: the run's seed.
        path: the field's path, mixed into the seed (``sinks.orders.value.customer_id``).
        on_empty: ``"error"`` (a `RunError` naming the pool) or ``"null"`` (pick None) when
            the pool has no entity with a positive weight.
    """

    def __init__(
        self,
        pool: EntityPool,
        law: str = "uniform",
        *,
        s: float = 1.0,
        seed: int = 0,
        path: str = "relation",
        on_empty: str = "error",
    ) -> None:
        if law not in LAWS:
            raise ModelError(f"{path}: unknown law {shown(law)}; give one of {', '.join(LAWS)}")
        if law == "zipf" and (
            isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < float("inf")
        ):
            raise ModelError(f"{path}: Zipf exponent s={shown(s)} must be a number > 0")
        if on_empty not in ("error", "null"):
            raise ModelError(f"{path}: on_empty {shown(on_empty)} must be 'error' or 'null'")
        self.pool = pool
        self.law = law
        self.s = float(s)
        self.path = path
        self.on_empty = on_empty
        self._tree = pool._tree(law, self.s)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start the pick stream of a run with `seed` again."""
        self._random = seeded_random(seed, self.path).random

    def pick(self) -> Any:
        """The id of an entity that exists now, drawn by the law."""
        tree = self._tree
        pool = self.pool
        if pool._script:
            pool.catch_up()
        while True:
            total = tree.total
            if len(pool) == 0 or total <= 1e-300:
                if self.on_empty == "null":
                    return None
                raise RunError(
                    f"{self.path}: population {pool.name!r} has no entity to refer to; "
                    "create its entities first or set on_empty: null"
                )
            slot = tree.find(self._random() * total)
            # Rounding can land on a removed slot; its weight is 0, so draw again.
            if tree.value(slot) > 0.0:
                return pool._ids[slot]
            tree.total = sum(tree.value(i) for i in range(len(pool._ids)))

    __call__ = pick

    def pick_many(self, n: int) -> list[Any]:
        """`n` picks, in order."""
        return [self.pick() for _ in range(n)]


class PoolTracker:
    """A sink that removes a subject's id from pools when it enters one of `final_states`.

    Args:
        pools: the pools to remove from.
        final_states: the states in which the entity no longer exists (churned).
        key: the subject attribute holding its id.
    """

    def __init__(
        self, pools: Sequence[EntityPool] | EntityPool, final_states: Iterable[str], key: str = "id"
    ) -> None:
        self.pools = [pools] if isinstance(pools, EntityPool) else list(pools)
        self.final_states = frozenset(final_states)
        self.key = key

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Remove the subject from the pools when its move ends in a final state."""
        if transition.to_state in self.final_states:
            entity_id = getattr(subject, self.key)
            for pool in self.pools:
                pool.remove(entity_id)

    def close(self) -> None:
        """Nothing to flush."""
