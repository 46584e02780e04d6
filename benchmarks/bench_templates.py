"""Templated mappers against hand-written Python mappers of the same payload.

Three payloads, each as a template and as the function a user would write by hand:

- ``fields``: subject attributes (one nested), the transition, the timestamp, constants and
  one expression (``round(subject.balance * 0.01, 2)``).
- ``iso``: the same plus the event time as ISO 8601 UTC text.
- ``faker``: the same plus a Faker name (the hand-written one calls a seeded Faker itself).
- ``shop``: the orders payload of ``models/shop.yaml`` as the model file compiles it (a
  rebindable mapper, restarted per run), against the same record written by hand;
  ``shop+guard`` against a hand-written one that guards its product of two fields as the
  template does (numbers only: no string repetition from a model file).

For each, the mapper alone (events/s over the same events) and through a `JsonLinesSink`
(into temporary files). Target: the template is not slower (ratio >= 1.0). Times are the
process's CPU time (`time.process_time`), best of R alternating runs, so other load on a
shared machine disturbs the ratio less.

Run: ``python benchmarks/bench_templates.py [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dogesim.model import Transition
from dogesim.sinks.files import JsonLinesSink
from dogesim.templates import compile_template

T0 = 1_700_000_000_000
TICK = 60_000
FIELDS = {
    "timestamp": {"time": "epoch_ms"},
    "user": {"id": {"subject": "user_id"}, "balance": {"subject": "balance"}},
    "city": {"subject": "address.city"},
    "trigger": {"transition": "trigger"},
    "from": {"transition": "from_state"},
    "to": {"transition": "to_state"},
    "fee": {"expr": "round(subject.balance * 0.01, 2)"},
    "source": "bank",
}


def hand_fields(ts: int, user: Any, tr: Transition) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "user": {"id": user.user_id, "balance": user.balance},
        "city": user.address["city"],
        "trigger": tr.trigger,
        "from": tr.from_state,
        "to": tr.to_state,
        "fee": round(user.balance * 0.01, 2),
        "source": "bank",
    }


def hand_iso(ts: int, user: Any, tr: Transition) -> dict[str, Any]:
    record = hand_fields(ts, user, tr)
    moment = dt.datetime.fromtimestamp(ts / 1000, tz=dt.timezone.utc)
    record["at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return record


def make_hand_faker() -> Callable[[int, Any, Transition], dict[str, Any]]:
    from faker import Faker

    fake = Faker()
    fake.seed_instance(1)

    def hand_faker(ts: int, user: Any, tr: Transition) -> dict[str, Any]:
        record = hand_iso(ts, user, tr)
        record["name"] = fake.name()
        return record

    return hand_faker


def shop_template() -> Callable[..., Any]:
    """The orders mapper ``models/shop.yaml`` compiles (what a run of the file writes)."""
    from dogesim.modelfile import load_model_file
    from dogesim.modelfile.shipped import MODELS_DIR

    spec = load_model_file(MODELS_DIR / "shop.yaml")
    mapper: Callable[..., Any] = spec.entities["orders"].sinks["orders"].settings["mapper"]  # type: ignore[attr-defined]
    return mapper


def hand_order(ts: int, order: Any, tr: Transition) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "event": tr.trigger,
        "status": tr.to_state,
        "customer_id": order.customer_id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "total": round(order.quantity * order.unit_price, 2),
        "at": ts,
    }


_NUMBERS = frozenset({int, float})


def hand_order_guarded(ts: int, order: Any, tr: Transition) -> dict[str, Any]:
    """`hand_order` with the guard a template puts on a product of two fields: numbers are
    multiplied, anything else goes through a bounded product (a string times a count
    from a model file must not build a gigabyte string)."""
    a, b = order.quantity, order.unit_price
    if (a.__class__ in _NUMBERS) & (b.__class__ in _NUMBERS):
        total = a * b
    else:
        raise TypeError(f"not numbers: {a!r} * {b!r}")
    return {
        "order_id": order.id,
        "event": tr.trigger,
        "status": tr.to_state,
        "customer_id": order.customer_id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "total": round(total, 2),
        "at": ts,
    }


def order_events(n: int, per_tick: int = 200) -> list[tuple[int, Any, Transition]]:
    """n order events (the subjects an orders run makes), `per_tick` per tick."""
    moves = [Transition("place", "new", "placed", 100), Transition("pay", "placed", "paid", 30)]
    orders = [
        SimpleNamespace(
            id=500_000 + i, customer_id=1000 + i % 300, product_id=1 + i % 60,
            quantity=1 + i % 4, unit_price=2.0 + (i * 7919 % 24_800) / 100,
        )
        for i in range(1000)
    ]  # fmt: skip
    return [(T0 + (i // per_tick) * TICK, orders[i % 1000], moves[i % 2]) for i in range(n)]


def events(n: int, per_tick: int = 200) -> list[tuple[int, Any, Transition]]:
    """n events, `per_tick` per tick (timestamps repeat within a tick, as in a run)."""
    moves = [
        Transition("income", "online", "online", 10),
        Transition("spend", "online", "offline", 5),
    ]
    users = [
        SimpleNamespace(user_id=i, balance=i * 7 % 1000, address={"city": "Lyon"})
        for i in range(1000)
    ]
    return [(T0 + (i // per_tick) * TICK, users[i % 1000], moves[i % 2]) for i in range(n)]


def time_mapper(mapper: Callable[..., Any], batch: list[tuple[int, Any, Transition]]) -> float:
    start = time.process_time()
    for ts, subject, transition in batch:
        mapper(ts, subject, transition)
    return len(batch) / (time.process_time() - start)


def _time_through(
    make_sink: Callable[[Path, Any], Any], mapper: Callable[..., Any], batch: list[Any]
) -> float:
    """Events/s of `mapper` through the sink `make_sink(path, mapper)` builds in a temporary
    folder, closed (flushed) inside the timing."""
    with tempfile.TemporaryDirectory() as folder:
        sink = make_sink(Path(folder) / "out", mapper)
        start = time.process_time()
        for ts, subject, transition in batch:
            sink.collect(ts, subject, transition)
        sink.close()
        return len(batch) / (time.process_time() - start)


def time_sink(mapper: Callable[..., Any], batch: list[tuple[int, Any, Transition]]) -> float:
    """Events/s of `mapper` through a `JsonLinesSink`."""
    return _time_through(
        lambda path, m: JsonLinesSink(path.with_suffix(".jsonl"), m), mapper, batch
    )


def time_parquet(mapper: Callable[..., Any], batch: list[tuple[int, Any, Transition]]) -> float:
    """Events/s of `mapper` through a `ParquetSink` (row groups written in batches)."""
    from dogesim.sinks.parquet import ParquetSink

    return _time_through(
        lambda path, m: ParquetSink(path.with_suffix(".parquet"), m), mapper, batch
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-parquet",
        dest="parquet",
        action="store_false",
        help="leave out the ParquetSink column (it needs pyarrow: dogesim[parquet])",
    )
    options = parser.parse_args()
    batch = events(options.events)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("fields", lambda: compile_template(FIELDS), lambda: hand_fields),
        ("iso", lambda: compile_template({**FIELDS, "at": {"time": "iso"}}), lambda: hand_iso),
        (
            "faker",
            lambda: compile_template({**FIELDS, "at": {"time": "iso"}, "name": {"faker": "name"}}),
            make_hand_faker,
        ),
    ]
    cases.append(("shop", shop_template, lambda: hand_order))
    cases.append(("shop+guard", shop_template, lambda: hand_order_guarded))
    orders = order_events(options.events)
    shop_cases = ("shop", "shop+guard")
    print(f"{options.events} events, best of {options.repeat}; events/s")
    print(f"{'payload':10} {'where':7} {'template':>10} {'by hand':>10} {'ratio':>6}")
    for name, make_template, make_hand in cases:
        size = len(batch) if name != "faker" else len(batch) // 10
        part = orders if name in shop_cases else batch[:size]
        timers: list[tuple[str, Callable[..., float]]] = [
            ("mapper", time_mapper),
            ("jsonl", time_sink),
        ]
        if options.parquet and name != "faker":
            timers.append(("parquet", time_parquet))
        for where, timer in timers:
            # Alternate the two, so a change in the machine's load hits both alike.
            templated = by_hand = 0.0
            for _ in range(options.repeat):
                templated = max(templated, timer(make_template(), part))
                by_hand = max(by_hand, timer(make_hand(), part))
            ratio = templated / by_hand
            print(f"{name:10} {where:7} {templated:10,.0f} {by_hand:10,.0f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
