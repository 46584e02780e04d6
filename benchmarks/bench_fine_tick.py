"""Fine-tick benchmark: dogesim against a plain heapq event loop on the music model.

The music model (`dogesim.examples.music`: 46 states, 255 transitions, rates, an hourly
session profile damped on weekends, vetoing callbacks) runs at 1 s ticks, 10k listeners for 2
and for 7 days (172,800 and 604,800 ticks). Its peer is `heapq_peer.run_peer`, a plain heapq
loop of the same semantics (tests/unit/test_music_model.py checks that it runs the same law).

Each engine runs in its own subprocess, so the peak RSS (VmHWM) is the engine's own; wall and
CPU time cover building the model and the listeners, the run and (for dogesim) its result.
The engines take turns, best of `--repeat` runs each. Both count the same thing: events
delivered to the counting sink (session timeouts feed no sink). The table gives events, wall
s, events/s, CPU s, events per CPU s (steadier than wall on a loaded machine), peak RSS MB
and the dogesim/peer ratios; targets (issue 9): dogesim's events/s >= the loop's, and peak
RSS <= 400 MB for 7 days.

Run: ``python benchmarks/bench_fine_tick.py [--users N] [--days 2 7] [--repeat N]``;
``--days 0.25`` for a smoke run. ``--max-mb`` caps each subprocess's address space, so an
engine that needs more fails alone instead of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any

from heapq_peer import run_peer  # the script's directory is on sys.path

import dogesim
from dogesim.examples import music

#: Issue 9's targets.
RATE_TARGET = 1.0  # dogesim events/s over the loop's, at least
RSS_TARGET_MB = 400.0  # peak RSS for 7 days, at most
ENGINES = ("dogesim", "heapq")


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: ru_maxrss is in kB there too on most systems
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_dogesim(users: int, ticks: int, seed: int) -> tuple[int, int]:
    """Events delivered to the sink and moves made by one dogesim run."""
    sink = dogesim.CountingSink()
    result = dogesim.Simulation(
        music.build_model([sink]),
        users,
        subject_factory=music.ListenerFactory(),
        ticks=ticks,
        tick_ms=music.TICK_MS,
        timestamp_start=music.TIMESTAMP_START,
        seed=seed,
    ).run()
    return sink.count, int(result.events_per_transition.sum())


def _run_heapq(users: int, ticks: int, seed: int) -> tuple[int, int]:
    """Events delivered to the sink and moves made by one run of the peer."""
    sink = dogesim.CountingSink()
    model = music.build_model([sink])
    random.seed(seed)  # the factory draws from the global generator, as under dogesim
    factory = music.ListenerFactory()
    listeners = [factory.create() for _ in range(users)]
    result = run_peer(
        model,
        listeners,
        ticks=ticks,
        tick_ms=music.TICK_MS,
        timestamp_start=music.TIMESTAMP_START,
        seed=seed,
    )
    return sink.count, result.moves


def _child(engine: str, users: int, ticks: int, seed: int, max_mb: int) -> None:
    """Run one engine once and print what it did as one JSON line.

    Wall and CPU time cover building the model and the subjects, the run and its result."""
    limit = max_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run = _run_dogesim if engine == "dogesim" else _run_heapq
    figures: dict[str, Any]
    started, cpu = time.perf_counter(), time.process_time()
    try:
        events, moves = run(users, ticks, seed)
    except MemoryError:
        figures = {"error": f"out of memory (address space capped at {max_mb} MB)"}
    else:
        figures = {"events": events, "moves": moves}
        figures["wall"] = time.perf_counter() - started
        figures["cpu"] = time.process_time() - cpu
    figures["rss_mb"] = _peak_rss_mb()
    print(json.dumps(figures))


def _run_child(engine: str, users: int, ticks: int, seed: int, max_mb: int) -> dict[str, Any]:
    """One subprocess run of `engine`: its figures, or ``{"error": ...}``."""
    command = [sys.executable, os.path.abspath(__file__), "--child", engine]
    command += ["--users", str(users), "--ticks", str(ticks), "--seed", str(seed)]
    command += ["--max-mb", str(max_mb)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"error": tail}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def _measure(
    engines: list[str], users: int, ticks: int, seed: int, repeat: int, max_mb: int
) -> dict[str, dict[str, Any]]:
    """Per engine, the best of `repeat` runs (shortest wall, least CPU, highest peak RSS).

    The engines take turns, so a change of the machine's load hits both alike."""
    rows: dict[str, dict[str, Any]] = {engine: {} for engine in engines}
    for _ in range(repeat):
        for engine in engines:
            row = rows[engine]
            if "error" in row:
                continue
            figures = _run_child(engine, users, ticks, seed, max_mb)
            if "error" in figures or not row:
                rows[engine] = figures
                continue
            row["wall"] = min(row["wall"], figures["wall"])
            row["cpu"] = min(row["cpu"], figures["cpu"])
            row["rss_mb"] = max(row["rss_mb"], figures["rss_mb"])
    return rows


def _report(days: float, users: int, ticks: int, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{users} listeners x {ticks} ticks of 1 s ({days:g} days)")
    print(
        f"{'engine':<9}{'events':>11}{'wall s':>9}{'events/s':>11}{'cpu s':>9}"
        f"{'events/cpu s':>14}{'peak RSS MB':>13}"
    )
    for engine, row in rows.items():
        if "error" in row:
            print(f"{engine:<9}  failed: {row['error']}")
            continue
        rate, per_cpu = row["events"] / row["wall"], row["events"] / row["cpu"]
        print(
            f"{engine:<9}{row['events']:>11}{row['wall']:>9.2f}{rate:>11,.0f}{row['cpu']:>9.2f}"
            f"{per_cpu:>14,.0f}{row['rss_mb']:>13.0f}"
        )
    sim, peer = rows.get("dogesim", {}), rows.get("heapq", {})
    if "events" in sim and "events" in peer:
        speed = (sim["events"] / sim["wall"]) / (peer["events"] / peer["wall"])
        per_cpu = (sim["events"] / sim["cpu"]) / (peer["events"] / peer["cpu"])
        verdict = "met" if speed >= RATE_TARGET else "NOT met"
        print(
            f"dogesim/heapq: events/s {speed:.3f}x (target >= {RATE_TARGET:g}x: {verdict}), "
            f"events per cpu s {per_cpu:.3f}x, peak RSS {sim['rss_mb'] / peer['rss_mb']:.1f}x; "
            f"events differ by {100 * (sim['events'] / peer['events'] - 1):+.2f}% (other seeds)"
        )
        print(
            f"moves, unseen timeouts included: dogesim {sim['moves']}, heapq {peer['moves']} "
            "(events/s above count only sink deliveries)"
        )
    if "rss_mb" in sim and days >= 7:
        verdict = "met" if sim["rss_mb"] <= RSS_TARGET_MB else "NOT met"
        print(
            f"dogesim peak RSS {sim['rss_mb']:.0f} MB (target <= {RSS_TARGET_MB:g} MB: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = list(music.SIZES.values())
    parser.add_argument("--users", type=int, default=sizes[0].users)
    parser.add_argument(
        "--days",
        type=float,
        nargs="+",
        default=[size.ticks * music.TICK_MS / 86_400_000 for size in sizes],
        help="run lengths (default: music.SIZES, 2 and 7 days)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per engine")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument(
        "--max-mb", type=int, default=6000, help="address-space cap per engine run (MB)"
    )
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--ticks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.users, args.ticks, args.seed, args.max_mb)
        return
    load = os.getloadavg()
    print(
        f"fine-tick benchmark, best of {args.repeat}; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} on {os.cpu_count()} cores"
    )
    for days in args.days:
        ticks = round(days * 86_400)
        rows = _measure(args.engines, args.users, ticks, args.seed, args.repeat, args.max_mb)
        _report(days, args.users, ticks, rows)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
