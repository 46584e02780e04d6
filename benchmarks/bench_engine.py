"""Engine benchmarks: dogesim against doge-datagen 1.0.4, in one process, as ratios.

Cases, with issue 9's targets:
- banking: the doge-datagen README model with its callbacks, 10k users x 1440 one-minute
  ticks: at least 100x doge-datagen.
- dense: a clickstream-like model in which every state moves with >= 50% per tick, 5k x 200:
  not slower than before engine v2 (`DENSE_BEFORE`, the speed-up over doge-datagen then).
- million: 1M users x 1440 ticks of the banking model into a counting sink (dogesim only):
  under 8 s; also into a counting sink with ``collect_many`` (the per-tick batch path).
- memory: engine bytes per subject (tracemalloc peak, subjects themselves excluded): at most
  150.

Run: ``python benchmarks/bench_engine.py [--quick] [--skip-million] [--repeat N]``.
doge-datagen 1.0.4's pins do not build on Python 3.11; install it with
``pip install --no-deps doge-datagen==1.0.4 graphviz`` (its imports need only those plus the
Kafka/SQLAlchemy extras dogesim already has). Without it the ratios are left out, and the
table says so.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.util
import logging
import os
import time
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import dogesim
from dogesim.examples import banking, clickstream

#: Issue 9's targets.
BANKING_TARGET = 100.0  # speed-up over doge-datagen, at least
MILLION_TARGET_S = 8.0  # wall seconds, at most
MEMORY_TARGET_B = 150.0  # engine bytes per subject, at most
#: The dense case's speed-up over doge-datagen before engine v2 (README, best of 3, range of
#: several runs on the 2-core development machine); v2 must not be slower.
DENSE_BEFORE = (2.1, 3.4)


def _once(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one run of `fn` after a full collection, and its result."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def _best(runs: list[tuple[float, float, Any]]) -> tuple[float, float, Any]:
    """The shortest wall and the least CPU of `runs`, and the last result."""
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def _doge() -> Any:
    """The doge_datagen package (untyped: imported as Any)."""
    module = importlib.import_module("doge_datagen")
    # Its import configures logging at INFO; its per-run lines would bury the table.
    logging.getLogger().setLevel(logging.WARNING)
    return module


def _doge_counting_sink() -> Any:
    """A doge-datagen EventSink that only counts (the same work as dogesim's CountingSink)."""
    base: Any = _doge().EventSink

    class Count(base):
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
    doge = _doge()
    sink = _doge_counting_sink()
    gen = doge.DataOnlineGenerator(
        list(banking.STATES), "offline", _HashableUserFactory(), n, 60000, ticks
    )
    for trigger, source, target, p, cb in banking.TRANSITIONS:
        gen.add_transition(trigger, source, target, p, action_callback=cb, event_sinks=[sink])
    gen.start()
    return int(sink.n)


class _BatchCountingSink(dogesim.CountingSink):
    """`CountingSink` with ``collect_many``: the engine hands it a tick's events at once."""

    def collect_many(self, timestamp: int, subjects: Any, transitions: Any) -> None:
        if self._closed:
            self.reopen()
        self.count += len(subjects)


def _dogesim_banking(n: int, ticks: int, seed: int = 7, batch: bool = False) -> int:
    sink = _BatchCountingSink() if batch else dogesim.CountingSink()
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
    doge = _doge()
    sink = _doge_counting_sink()
    base: Any = doge.SubjectFactory

    class Factory(base):
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


def _doge_available() -> bool:
    return importlib.util.find_spec("doge_datagen") is not None


def _ratio_rows(repeat: int, scale: int, doge: bool) -> list[tuple[Any, ...]]:
    """Per case: name, size, doge's (events, wall, CPU) or None, dogesim's (events, wall, CPU).

    The engines take turns, so a change of the machine's load hits both alike."""
    rows = []
    for name, doge_fn, sim_fn, n, ticks in (
        ("banking", _doge_banking, _dogesim_banking, 10_000 // scale, 1440),
        ("dense", _doge_dense, _dogesim_dense, 5_000 // scale, 200),
    ):
        doge_runs, sim_runs = [], []
        for _ in range(repeat):
            if doge:
                doge_runs.append(_once(functools.partial(doge_fn, n, ticks)))
            sim_runs.append(_once(functools.partial(sim_fn, n, ticks)))
        doge_best = _best(doge_runs) if doge else None
        rows.append((name, f"{n}x{ticks}", doge_best, _best(sim_runs)))
    return rows


def _print_ratios(rows: list[tuple[Any, ...]]) -> None:
    print(
        f"{'case':<9}{'size':>12}{'doge ev':>10}{'doge s':>9}{'sim ev':>10}{'sim s':>9}"
        f"{'speed-up':>10}{'(CPU)':>8}  target"
    )
    for name, size, doge, sim in rows:
        if name == "banking":
            target = f">= {BANKING_TARGET:g}x"
        else:
            target = f">= {DENSE_BEFORE[0]:g}-{DENSE_BEFORE[1]:g}x (before v2)"
        t2, c2, e2 = sim
        if doge is None:
            print(
                f"{name:<9}{size:>12}{'-':>10}{'-':>9}{e2:>10}{t2:>9.3f}{'-':>10}{'-':>8}  {target}"
            )
            continue
        t1, c1, e1 = doge
        print(
            f"{name:<9}{size:>12}{e1:>10}{t1:>9.3f}{e2:>10}{t2:>9.3f}{t1 / t2:>9.1f}x"
            f"{c1 / c2:>7.1f}x  {target}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="best of N runs, for both engines (default 3)"
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    doge = _doge_available()
    load = os.getloadavg()
    print(f"best of {args.repeat} runs per engine; load average {load[0]:.2f} {load[1]:.2f}")
    if not doge:
        print(
            "doge-datagen is NOT installed: no speed-up ratios (peer absent). Install it with "
            "pip install --no-deps doge-datagen==1.0.4 graphviz"
        )
    _print_ratios(_ratio_rows(args.repeat, scale, doge))
    if not args.skip_million:
        n = 1_000_000 // scale
        for batch in (False, True):
            t_m, cpu, ev = _once(functools.partial(_dogesim_banking, n, 1440, batch=batch))
            kind = "collect_many" if batch else "collect"
            print(
                f"million: {n} x 1440 banking, counting sink ({kind}) -> {ev} events in "
                f"{t_m:.2f} s, {cpu:.2f} s CPU ({ev / t_m:,.0f} events/s; target < "
                f"{MILLION_TARGET_S:g} s)"
            )
    per = _memory_per_subject(200_000 // scale)
    print(f"memory: {per:.0f} bytes of engine overhead per subject (target <= {MEMORY_TARGET_B:g})")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
