"""Engine benchmarks: dogesim against doge-datagen 1.0.4, in one process, as ratios.

Cases:
- banking: the doge-datagen README model with its callbacks, 10k users x 1440 one-minute ticks.
- dense: a clickstream-like model in which every state moves with >= 50% per tick, 5k x 200.
- million: 1M users x 1440 ticks of the banking model into a counting sink (dogesim only).
- memory: engine bytes per subject (tracemalloc peak, subjects themselves excluded).

Run: ``python benchmarks/bench_engine.py [--quick] [--skip-million]``. doge-datagen 1.0.4's
pins do not build on Python 3.11; install it with
``pip install --no-deps doge-datagen==1.0.4 graphviz`` (its imports need only those plus the
Kafka/SQLAlchemy extras dogesim already has).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import dogesim
from dogesim.examples import banking, clickstream


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeat` runs of `fn` (and its result), each after a full collection."""
    best, value = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def _doge_counting_sink() -> Any:
    """A doge-datagen EventSink that only counts (the same work as dogesim's CountingSink)."""
    import doge_datagen as doge

    class Count(doge.EventSink):  # type: ignore[misc]
        def __init__(self) -> None:
            self.n = 0

        def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
            self.n += 1

    return Count()


class _HashableUser(banking.User):
    """doge-datagen keys subjects by hash (its own example hashes by user id)."""

    def __hash__(self) -> int:
        return self.user_id


class _HashableUserFactory(banking.UserFactory):
    def create(self) -> _HashableUser:
        user = super().create()
        return _HashableUser(user.user_id, user.balance, user.loan_balance, user.last_payment)


def _doge_banking(n: int, ticks: int) -> int:
    import doge_datagen as doge

    sink = _doge_counting_sink()
    gen = doge.DataOnlineGenerator(
        list(banking.STATES), "offline", _HashableUserFactory(), n, 60000, ticks
    )
    for trigger, source, target, p, cb in banking.TRANSITIONS:
        gen.add_transition(trigger, source, target, p, action_callback=cb, event_sinks=[sink])
    gen.start()
    return int(sink.n)


def _dogesim_banking(n: int, ticks: int, seed: int = 7) -> int:
    sink = dogesim.CountingSink()
    dogesim.Simulation(
        banking.build_banking_model([sink]),
        n,
        subject_factory=banking.UserFactory(),
        ticks=ticks,
        tick_ms=60000,
        seed=seed,
    ).run()
    return sink.count


def _doge_dense(n: int, ticks: int) -> int:
    import doge_datagen as doge

    sink = _doge_counting_sink()

    class Factory(doge.SubjectFactory):
        def __init__(self) -> None:
            self.i = 0

        def create(self) -> Any:
            self.i += 1
            return self.i  # ints hash to themselves: distinct subjects

    gen = doge.DataOnlineGenerator(list(clickstream.STATES), "landing", Factory(), n, 1000, ticks)
    for trigger, source, target, p in clickstream.TRANSITIONS:
        gen.add_transition(trigger, source, target, p, event_sinks=[sink])
    gen.start()
    return sink.n


def _dogesim_dense(n: int, ticks: int, seed: int = 7) -> int:
    sink = dogesim.CountingSink()
    model = clickstream.build_clickstream_model([sink])
    dogesim.Simulation(model, n, ticks=ticks, tick_ms=1000, seed=seed).run()
    return sink.count


def _memory_per_subject(n: int) -> float:
    subjects = [SimpleNamespace(id=i) for i in range(n)]
    model = banking.build_banking_model([dogesim.CountingSink()], callbacks=False)
    sim = dogesim.Simulation(model, subjects, ticks=1440, tick_ms=60000, seed=3)
    gc.collect()
    tracemalloc.start()
    sim.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="best of N runs, for both engines (default 3)"
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rows = []
    for name, doge_fn, sim_fn, n, ticks, target in (
        ("banking", _doge_banking, _dogesim_banking, 10_000 // scale, 1440, 50.0),
        ("dense", _doge_dense, _dogesim_dense, 5_000 // scale, 200, 1.0),
    ):
        t_doge, ev_doge = _timed(lambda f=doge_fn, n=n, t=ticks: f(n, t), args.repeat)
        t_sim, ev_sim = _timed(lambda f=sim_fn, n=n, t=ticks: f(n, t), args.repeat)
        rows.append((name, f"{n}x{ticks}", ev_doge, t_doge, ev_sim, t_sim, t_doge / t_sim, target))
    print(f"best of {args.repeat} runs per engine")
    print(
        f"{'case':<9}{'size':>12}{'doge ev':>10}{'doge s':>9}{'sim ev':>10}{'sim s':>9}"
        f"{'speed-up':>10}{'target':>8}"
    )
    for name, size, e1, t1, e2, t2, ratio, target in rows:
        print(
            f"{name:<9}{size:>12}{e1:>10}{t1:>9.3f}{e2:>10}{t2:>9.3f}{ratio:>9.1f}x{target:>7.1f}x"
        )
    if not args.skip_million:
        n = 1_000_000 // scale
        t_m, ev = _timed(lambda: _dogesim_banking(n, 1440))
        print(
            f"million: {n} x 1440 banking -> {ev} events in {t_m:.2f} s "
            f"({ev / t_m:,.0f} events/s; target < 20 s)"
        )
    per = _memory_per_subject(200_000 // scale)
    print(f"memory: {per:.0f} bytes of engine overhead per subject (target <= 250)")


if __name__ == "__main__":
    main()
