"""Relations: picks of existing ids from entity pools, by law, reproducibly."""

from __future__ import annotations

import math
import random
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim.engine import Simulation
from dogesim.errors import ModelError, RunError
from dogesim.model import Model, Transition
from dogesim.relations import EntityPool, PoolTracker, Relation, _Fenwick
from dogesim.templates import Template

pytest.importorskip("faker")

SIGMAS = 5.0  # per-cell bound: a false alarm has probability < 1e-6 per cell


def _assert_frequencies(
    counts: Counter[object], probabilities: dict[object, float], n: int
) -> None:
    """Each count lies within SIGMAS binomial standard deviations of n * p."""
    assert set(counts) <= set(probabilities)
    for key, p in probabilities.items():
        mean = n * p
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[key] - mean) <= SIGMAS * sd + 1, (key, counts[key], mean, sd)


def _pool(n: int, weights: list[float] | None = None) -> EntityPool:
    pool = EntityPool("customers")
    for i in range(n):
        pool.add(f"c{i}", weights[i] if weights else 1.0)
    return pool


def test_uniform_picks_follow_the_uniform_law() -> None:
    """Uniform picks hit each of 10 ids with frequency 1/10 (binomial bounds)."""
    n = 20_000
    counts = Counter(Relation(_pool(10), seed=1).pick_many(n))
    _assert_frequencies(counts, {f"c{i}": 0.1 for i in range(10)}, n)


def test_weighted_picks_follow_the_weights() -> None:
    """Weighted picks hit id i with probability w_i / sum(w)."""
    weights = [1.0, 2.0, 3.0, 4.0, 0.0]
    n = 20_000
    counts = Counter(Relation(_pool(5, weights), "weighted", seed=2).pick_many(n))
    _assert_frequencies(counts, {f"c{i}": w / 10 for i, w in enumerate(weights)}, n)
    assert counts["c4"] == 0


def test_zipf_picks_follow_the_zipf_law_over_creation_rank() -> None:
    """Zipf picks give the k-th created id probability k^-s / H(n, s)."""
    s, size, n = 1.2, 20, 30_000
    norm = sum(k**-s for k in range(1, size + 1))
    counts = Counter(Relation(_pool(size), "zipf", s=s, seed=3).pick_many(n))
    _assert_frequencies(counts, {f"c{k - 1}": k**-s / norm for k in range(1, size + 1)}, n)


def test_removed_ids_are_never_picked_and_the_rest_renormalise() -> None:
    """After removals, picks follow the law restricted to the ids that remain."""
    pool = _pool(6)
    relation = Relation(pool, "zipf", s=1.0, seed=4)
    pool.remove("c0")
    pool.remove("c3")
    pool.remove("nobody")  # unknown ids are ignored
    n = 20_000
    alive = {f"c{k - 1}": 1 / k for k in (2, 3, 5, 6)}
    total = sum(alive.values())
    counts = Counter(relation.pick_many(n))
    _assert_frequencies(counts, {key: w / total for key, w in alive.items()}, n)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "pick"]), st.integers(0, 15))))
def test_picks_only_ever_return_ids_that_exist_now(operations: list[tuple[str, int]]) -> None:
    """Whatever adds and removes happened, every pick is an id in the pool at that moment."""
    pool = EntityPool("things")
    relations = [
        Relation(pool, law, s=1.5, seed=5, on_empty="null")
        for law in ("uniform", "weighted", "zipf")
    ]
    alive: set[int] = set()
    for op, key in operations:
        if op == "add" and key not in alive:
            pool.add(key, float(key % 3))
            alive.add(key)
        elif op == "remove":
            pool.remove(key)
            alive.discard(key)
        else:
            for relation in relations:
                picked = relation.pick()
                assert picked is None or picked in alive
                if relation.law != "weighted" and alive:
                    assert picked is not None
    assert sorted(pool.ids()) == sorted(alive)
    assert len(pool) == len(alive)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=1, max_size=40), st.data())
def test_fenwick_tree_matches_plain_prefix_sums(weights: list[float], data: st.DataObject) -> None:
    """The tree's total and searches agree with a linear scan of the weights."""
    tree = _Fenwick()
    for w in weights:
        tree.append(w)
    values = list(weights)
    for _ in range(5):
        i = data.draw(st.integers(0, len(values) - 1))
        w = data.draw(st.floats(0, 10))
        tree.set(i, w)
        values[i] = w
    assert math.isclose(tree.total, sum(values), rel_tol=1e-9, abs_tol=1e-9)
    target = data.draw(st.floats(0, 1)) * sum(values)
    found = tree.find(target)
    # Within rounding, the found slot is where the running sum crosses the target.
    tolerance = 1e-9 * (1 + sum(values))
    assert sum(values[:found]) <= target + tolerance
    assert found == len(values) - 1 or sum(values[: found + 1]) >= target - tolerance


def test_picks_are_reproducible_from_seed_and_path() -> None:
    """Same seed and path: the same picks; another seed or path: other picks."""
    pool = _pool(50)
    first = Relation(pool, seed=9, path="a.b").pick_many(100)
    assert Relation(pool, seed=9, path="a.b").pick_many(100) == first
    assert Relation(pool, seed=10, path="a.b").pick_many(100) != first
    assert Relation(pool, seed=9, path="a.c").pick_many(100) != first
    random.seed(1)  # the global random module plays no part
    assert Relation(pool, seed=9, path="a.b").pick_many(100) == first


def test_an_empty_pool_is_an_error_or_null_as_configured() -> None:
    """With nothing to refer to, a pick raises RunError naming the pool, or gives None."""
    pool = EntityPool("merchants")
    with pytest.raises(RunError, match="population 'merchants' has no entity"):
        Relation(pool, path="sinks.o.value.m").pick()
    assert Relation(pool, on_empty="null").pick() is None
    pool.add(1)
    pool.remove(1)
    assert Relation(pool, "zipf", on_empty="null").pick() is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: Relation(p, "gauss"), "unknown law 'gauss'"),
        (lambda p: Relation(p, "zipf", s=-1), "s=-1"),
        (lambda p: Relation(p, "zipf", s=float("nan")), "s=nan"),
        (lambda p: Relation(p, on_empty="skip"), "on_empty 'skip'"),
        (lambda p: p.add("c0"), "id 'c0' exists already"),
        (lambda p: p.add("x", -1.0), "weight -1.0"),
        (lambda p: p.add("x", float("inf")), "infinite"),
        (lambda p: p.add("x", True), "weight True"),
    ],
)
def test_bad_relations_and_pool_entries_are_model_errors(call: object, message: str) -> None:
    """Unknown laws, bad exponents, duplicate ids and bad weights are refused clearly."""
    with pytest.raises(ModelError, match=message):
        call(_pool(1))  # type: ignore[operator]


def test_foreign_keys_of_a_run_always_resolve_to_live_customers() -> None:
    """Orders refer only to customers that exist (created and not churned) at that moment."""
    customers = EntityPool("customers")
    alive: set[int] = set()
    orders: list[tuple[int, int]] = []

    ids = iter(range(10**6))

    def make_customer() -> SimpleNamespace:
        return SimpleNamespace(id=next(ids))

    churn = PoolTracker(customers, ["gone"])
    factory = customers.wrap_factory(make_customer)

    class Watch:
        """Keeps the set of live customers, to check each order against it."""

        def collect(self, timestamp: int, subject: SimpleNamespace, transition: Transition) -> None:
            if transition.to_state == "gone":
                alive.discard(subject.id)

        def close(self) -> None:
            pass

    value = Template(
        {"customer": {"ref": "customers", "law": "zipf", "s": 1.3}},
        path="sinks.orders.value",
        pools={"customers": customers},
    ).mapper(7)

    class Orders:
        """Maps every order and checks its customer is alive."""

        def collect(self, timestamp: int, subject: SimpleNamespace, transition: Transition) -> None:
            customer = value(timestamp, subject, transition)["customer"]
            orders.append((timestamp, customer))
            assert customer in customers
            assert customer in alive

        def close(self) -> None:
            pass

    def created() -> SimpleNamespace:
        subject = factory()
        alive.add(subject.id)
        return subject

    model = Model(
        ["active", "gone"],
        "active",
        [
            Transition("order", "active", "active", 20, event_sinks=[Orders()]),
            Transition("leave", "active", "gone", 3, event_sinks=[Watch(), churn]),
        ],
    )
    Simulation(model, 40, subject_factory=created, ticks=200, tick_ms=1000, seed=3).run()
    assert len(orders) > 200
    assert len(customers) == len(alive) < 40
    assert sorted(customers.ids()) == sorted(alive)


def test_a_cleared_pool_starts_empty_and_its_relations_follow() -> None:
    """clear() empties the pool for a new run; relations built before see the new entities."""
    pool = _pool(5)
    relation = Relation(pool, "zipf", s=2.0, seed=1, on_empty="null")
    pool.clear()
    assert len(pool) == 0 and pool.ids() == []
    assert relation.pick() is None
    pool.add("new")
    assert relation.pick_many(5) == ["new"] * 5
