"""Scale-out benchmark: one sharded banking run on 1 worker, 2 local processes and Dask.

Cases (the doge-datagen README banking model, callbacks on):
- counting: `dogesim.examples.banking` into a counting sink per shard.
- jsonl: ``models/banking.yaml`` (its JSONL sink, the README's Kafka value) merged into one
  file; the merged bytes of every executor are checked to be identical.

Executors, at the same number of shards S (so every one produces the same stream):
- 1 worker: the S shards one after the other in this process (the reference);
- 2 local processes (``workers=2``);
- Dask: a `distributed.LocalCluster` of 2 one-thread worker processes on localhost, started
  after the local runs (its client's threads in this process would make local workers
  spawn instead of fork).

Run: ``python benchmarks/bench_scale.py [--subjects 1000000] [--ticks 1440] [--shards S]
[--cases counting,jsonl] [--skip-dask] [--repeat N]`` (N runs per executor, taking turns; the
best of each is printed). Prints wall times, events/s and each executor's
speed-up over 1 worker, the shards' CPU (in all, on the busiest worker), when the first
shard started, the CPU of this process and its ended local workers (Dask workers are not
counted there), and the machine's load (the box may be shared).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogesim import CountingSink, Model
from dogesim.examples.banking import UserFactory, build_banking_model
from dogesim.shards import Shard, ShardedRun, default_shards, run_sharded

ROOT = Path(__file__).resolve().parents[1]


def banking_counting(shard: Shard) -> Model:
    """The banking model into a counting sink of its own."""
    return build_banking_model([CountingSink("counting:banking")])


def _runs(args: argparse.Namespace, directory: Path) -> dict[str, ShardedRun]:
    shards = args.shards or default_shards(args.subjects)
    runs = {
        "counting": ShardedRun(
            banking_counting,
            subjects=args.subjects,
            subject_factory=UserFactory,
            ticks=args.ticks,
            tick_ms=60_000,
            seed=42,
            shards=shards,
        ),
        "jsonl": ShardedRun(
            str(ROOT / "models" / "banking.yaml"),
            subjects=args.subjects,
            ticks=args.ticks,
            seed=42,
            shards=shards,
            environ={**os.environ, "DOGESIM_OUT_DIR": str(directory)},
        ),
    }
    return {name: runs[name] for name in args.cases.split(",")}


def _dask(args: argparse.Namespace) -> list[tuple[str, Callable[[ShardedRun], Any]]]:
    """The Dask executor, on a fresh `LocalCluster` of 2 one-thread worker processes (made
    after the local runs: its client's threads would make local workers spawn, not fork)."""
    if args.skip_dask:
        return []
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    execute = functools.partial(run_sharded, dask=client)
    # The first run on a fresh cluster starts each worker's shard process (kept for the next
    # runs: a cluster is long-lived); the second shows a cluster in use.
    return [("dask 2 workers", execute), ("dask, warm", execute)]


LOCAL: list[tuple[str, Callable[[ShardedRun], Any]]] = [
    ("1 worker", run_sharded),
    ("2 processes", functools.partial(run_sharded, workers=2)),
]


def _cpu(result: Any, began: float, wall: float) -> tuple[str, float]:
    """The shards' CPU seconds in all and on the busiest worker, how long after the call the
    first shard started (worker start-up, planning) and how long the run took after the last
    shard ended (results, merge); and the critical path on idle cores: start-up + busiest
    worker's CPU + the tail (the load of a shared box shows in wall time only)."""
    per_worker: dict[str, float] = {}
    shards: dict[str, int] = {}
    for shard in result.shard_results:
        worker = shard.where.split("(worker ")[-1]
        per_worker[worker] = per_worker.get(worker, 0.0) + shard.cpu_seconds
        shards[worker] = shards.get(worker, 0) + 1
    total = sum(per_worker.values())
    busiest = max(per_worker.values())
    first = min(shard.started for shard in result.shard_results) - began
    tail = began + wall - max(shard.finished for shard in result.shard_results)
    text = (
        f"shard CPU {total:6.2f} s, busiest worker {busiest:6.2f} s, shards per worker "
        f"{'/'.join(map(str, sorted(shards.values(), reverse=True)))}, first shard after "
        f"{first:5.2f} s, tail {tail:5.2f} s"
    )
    return text, first + busiest + max(tail, 0.0)


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class Measured:
    """One run of one case on one executor."""

    wall: float
    path: float  # the critical path on idle cores
    events: int
    shards: int
    detail: str  # the shards' CPU split, the driver's CPU and the digest


def _measure(
    case: str,
    execute: Callable[[ShardedRun], Any],
    run: ShardedRun,
    directory: Path,
    digests: set[str],
) -> Measured:
    """Run `case` once on one executor."""
    cpu_before = _own_cpu()
    began = time.time()
    started = time.perf_counter()
    result = execute(run)
    wall = time.perf_counter() - started
    cpu = _own_cpu() - cpu_before
    shards_cpu, path = _cpu(result, began, wall)
    note = ""
    if case == "jsonl":
        output = directory / "banking.jsonl"
        digests.add(_digest(output))
        note = f"  sha256 {_digest(output)}"
        output.unlink()
    detail = f"{shards_cpu}, driver+local CPU {cpu:6.2f} s{note}"
    return Measured(wall, path, result.events, result.shards, detail)


def _line(case: str, label: str, best: Measured, reference: Measured) -> str:
    """The table's line of the best run, with its ratios to the best 1-worker run."""
    return (
        f"{case:8} {label:15} S={best.shards:<3} {best.wall:8.2f} s "
        f"{best.events:>11,} events {best.events / best.wall:>12,.0f} events/s "
        f"x{reference.wall / best.wall:.2f}  {best.detail}; critical path {best.path:6.2f} s: "
        f"x{reference.path / best.path:.2f} on idle cores"
    )


def main() -> None:
    """Run every case on every executor `--repeat` times, taking turns, and print the
    ratios of the best runs (wall times on a shared box vary by 10% between runs, with the
    hash seed and the load)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=1440)
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--cases", default="counting,jsonl")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs per executor (best kept)")
    args = parser.parse_args()
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        directory = Path(tmp)
        runs = _runs(args, directory)
        best: dict[tuple[str, str], Measured] = {}
        labels: list[str] = []
        digests: dict[str, set[str]] = {case: set() for case in runs}
        for executors in (LOCAL, None):
            chosen = executors if executors is not None else _dask(args)
            for _ in range(args.repeat):
                for label, execute in chosen:
                    if label not in labels:
                        labels.append(label)
                    for case, run in runs.items():
                        got = _measure(case, execute, run, directory, digests[case])
                        kept = best.get((case, label))
                        if kept is None or got.wall < kept.wall:
                            best[case, label] = got
        for case in runs:
            reference = best[case, LOCAL[0][0]]
            for label in labels:
                print(_line(case, label, best[case, label], reference))
            if case == "jsonl" and len(digests[case]) != 1:
                raise SystemExit(f"the merged JSONL differs between executors: {digests[case]}")
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
