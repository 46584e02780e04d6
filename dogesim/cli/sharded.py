"""``dogesim run --shards S [--workers N | --dask ADDRESS]``: the sharded path of ``run``.

- `_cmd_run_sharded(args, spec, out, err)`: run the shards, merge, summarise.
- `_sharded_run(args, spec)`: the `dogesim.shards.ShardedRun` of the command line.
- `_OutModel`, `_FileSubjects`: picklable builders of one shard's model (every event to
  its part of ``--out``) and subjects, for local processes and Dask workers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from dogesim.cli.feedback import _print_speed
from dogesim.cli.outputs import _write_report
from dogesim.cli.status import EXIT_OK, EXIT_SINK, _UsageError
from dogesim.errors import ModelError, RunError, SinkError


class _OutModel:
    """Builds one shard's model of a model file with every event going to that shard's
    part of `--out` (picklable, so local processes and Dask workers can build it)."""

    def __init__(self, path: str, out: str, ticks: int, *, callbacks: bool) -> None:
        self.path = path
        self.out = out
        self.ticks = ticks
        self.callbacks = callbacks

    def __call__(self, shard: Any) -> Any:
        from dogesim.modelfile import load_model_file
        from dogesim.sinks.compression import log_format

        spec = load_model_file(self.path, ticks=self.ticks)
        sink = shard.csv(self.out) if log_format(self.out) == "csv" else shard.jsonl(self.out)
        model = spec.build_model([sink], callbacks=self.callbacks)
        return (model, [sink]) if spec.churn is not None else model


class _FileSubjects:
    """The model file's subjects for one shard: the file's factory, seeded from the global
    `random` (which each shard seeds with its own seed before it makes subjects)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._create: Callable[[], Any] | None = None

    def create(self) -> Any:
        if self._create is None:
            import random

            from dogesim.modelfile import load_model_file

            spec = load_model_file(self.path)
            self._create = spec.subject_factory(random.getrandbits(63))
        return self._create()


def _sharded_run(args: argparse.Namespace, spec: Any) -> Any:
    """The `ShardedRun` of this command line: the file's sinks, or every event to --out."""
    from dogesim.shards import ShardedRun

    path = os.path.abspath(spec.path)
    shards = args.shards if args.shards is not None else spec.shards
    jitter = True if args.jitter else None
    if not args.out:
        return ShardedRun(
            path,
            subjects=spec.subjects.count,
            ticks=spec.ticks,
            seed=spec.seed,
            shards=shards,
            jitter=jitter,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return ShardedRun(
        _OutModel(path, os.path.abspath(args.out), spec.ticks, callbacks=not args.no_callbacks),
        subjects=spec.subjects.count,
        subject_factory=_FileSubjects(path),
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
        seed=spec.seed,
        shards=shards,
        arrivals=spec.arrivals,
        arrivals_profile=spec.arrivals_profile,
        churn=spec.churn,
        jitter=spec.jitter or bool(args.jitter),
    )


def _cmd_run_sharded(args: argparse.Namespace, spec: Any, out: TextIO, err: TextIO) -> int:
    """`dogesim run --shards S [--workers N | --dask ADDRESS]`: run, merge, summarise."""
    from dogesim.shards import run_sharded

    if spec.path is None:
        raise _UsageError("dogesim run: a sharded run needs a model file on disk")
    run = _sharded_run(args, spec)
    destination = (
        args.out or ", ".join(spec.sinks[n].describe() for n in spec.used_sinks()) or "no sinks"
    )
    started = time.perf_counter()
    try:
        result = run_sharded(run, workers=args.workers, dask=args.dask)
    except ModelError as exc:
        raise _UsageError(f"dogesim run: {' '.join(str(exc).split())}") from None
    except (SinkError, RunError) as exc:
        print(f"dogesim: the sharded run failed: {exc}", file=err)
        return EXIT_SINK
    wall = time.perf_counter() - started
    if not args.quiet:
        print(result.summary(), file=out)
        _print_speed(result, wall, destination, out)
    _write_report(args, spec, result, out)
    return EXIT_OK
