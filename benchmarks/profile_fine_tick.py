"""Where dogesim spends time and memory on the fine-tick music model.

- ``--what time``: cProfile of one run, the top functions by own time and by cumulative time,
  and the cost per tick and per event.
- ``--what memory``: tracemalloc of one run, the source lines holding the most memory at the
  run's peak, and the peak itself.

Run: ``python benchmarks/profile_fine_tick.py --users 10000 --hours 6 --what time`` (profiling
slows a run down about 2x and tracemalloc about 3x: use a few hours, not days).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
import tracemalloc

import dogesim
from dogesim.examples import music


def _simulation(users: int, hours: float, start_hour: int, seed: int) -> dogesim.Simulation:
    sink = dogesim.CountingSink()
    return dogesim.Simulation(
        music.build_model([sink]),
        users,
        subject_factory=music.ListenerFactory(),
        ticks=round(hours * 3600),
        tick_ms=music.TICK_MS,
        timestamp_start=music.TIMESTAMP_START + start_hour * 3_600_000,
        seed=seed,
    )


def _sink_events(sim: dogesim.Simulation) -> int:
    return sum(s.count for s in sim.model.sinks() if isinstance(s, dogesim.CountingSink))


def profile_time(sim: dogesim.Simulation, top: int) -> None:
    """Print the top functions of one run by own and cumulative time."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    result = sim.run()
    profiler.disable()
    wall = time.perf_counter() - started
    events = _sink_events(sim)
    print(
        f"{events} sink events, {int(result.events_per_transition.sum())} moves, "
        f"{int(result.attempts.sum())} attempts, {result.ticks} ticks in {wall:.2f} s under "
        f"cProfile: {1e6 * wall / result.ticks:.1f} us per tick, "
        f"{1e6 * wall / max(events, 1):.2f} us per event"
    )
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(top)
        print(f"\n--- by {key}")
        text = out.getvalue()
        print(text[text.index("   ncalls") :].rstrip())


def profile_memory(sim: dogesim.Simulation, top: int) -> None:
    """Print the peak and the lines holding the most memory when the run has returned (the
    simulation and its result still alive)."""
    tracemalloc.start(1)
    sim.run()
    _, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size for stat in snapshot.statistics("filename"))
    print(f"tracemalloc: peak {peak / 2**20:.1f} MB, {held / 2**20:.1f} MB held after the run")
    for stat in snapshot.statistics("lineno")[:top]:
        print(f"{stat.size / 2**20:9.1f} MB {stat.count:>10} blocks  {stat.traceback}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--start-hour", type=int, default=12, help="hour of day it starts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--what", choices=("time", "memory"), default="time")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sim = _simulation(args.users, args.hours, args.start_hour, args.seed)
    if args.what == "time":
        profile_time(sim, args.top)
    else:
        profile_memory(sim, args.top)


if __name__ == "__main__":
    main()
