"""Scale out: one run cut into shards of subjects, on all cores or a Dask cluster.

- `run_sharded(run, workers=..., dask=...)`: run a `ShardedRun` and merge what its shards
  report into one `ShardedRunResult`.
- `ShardedRun`, `Shard`: what to run, and what a model-building callable gets per shard.
- `ShardedRunResult`: a `RunResult` (tables summed over shards, ledgers merged per sink) that
  also records the number of shards, the executor and every shard's report.
- `run_shard(plan, k)`, `ShardPlan`, `ShardResult`: one shard's pure work, for executors.
- `default_shards`, `shard_seeds`: the default number of shards and the per-shard seeds.

How a seeded run stays the same whoever runs it. Shard ``k`` of ``S`` has its own seed from
``numpy.random.SeedSequence(seed).spawn(S)[k]`` (its engine stream and its global `random`),
its own subjects — the global indices ``k, k + S, k + 2S, ...``, made in the shard by a fresh
factory called in order, counter ids renumbered to those indices — its share ``rate / S`` of
the arrivals (Poisson superposition is exact) and its own sinks. So each shard's events are a
function of (model, seed, S, k), and merged file outputs are ordered by (timestamp, shard,
order within the shard): the bytes are a function of (model, seed, S) only, for 1 worker, N
processes or a Dask cluster. Kafka sinks key events by subject (per-subject order holds);
SQL sinks open one connection per shard. Models whose subjects share resources are refused
for S > 1 (a queue cannot span processes).

Executors: ``workers=None`` or 1 runs the shards one after the other in this process (the
reference); ``workers=N`` runs them in N spawned local processes; ``dask="tcp://host:8786"``
(or a `distributed.Client`; ``pip install 'dogesim[dask]'``) runs them as Dask tasks, each
worker running its shards one at a time in a child process of its own (a worker's event loop
draws from the global `random`, which doge-datagen callbacks use); start workers with one
thread each (``dask worker ADDRESS --nthreads 1``), one per core. Builders and factories must
be picklable (module-level functions and classes, `functools.partial` for arguments); part
files of merged outputs must be on a file system the driver reads.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from numbers import Integral
from typing import Any

import numpy as np

from dogesim.engine import SEED_VARIABLE
from dogesim.errors import ModelError, RunError, SinkError
from dogesim.result import RunResult
from dogesim.scale.control import Control, DaskControl, FileControl
from dogesim.scale.parts import PartFile, merge_parts, remove_parts
from dogesim.scale.plan import Shard, ShardedRun, ShardPlan, default_shards, shard_seeds
from dogesim.scale.worker import ShardResult, run_shard
from dogesim.sinks.base import DeliveryLedger

__all__ = [
    "Shard",
    "ShardPlan",
    "ShardResult",
    "ShardedRun",
    "ShardedRunResult",
    "default_shards",
    "plan_run",
    "run_shard",
    "run_sharded",
    "shard_seeds",
]


@dataclass
class ShardedRunResult(RunResult):
    """The merged outcome of a sharded run; reads like the `RunResult` of one process.

    Occupancy, events, attempts, vetoes, subjects and arrivals are summed over the shards;
    ledgers are merged per sink (a merged file's ``acknowledged`` counts the lines of the
    merged file on disk). Transitions carry no sinks or callbacks.

    Attributes (besides `RunResult`'s):
        shards: the number of shards (the stream is a function of model, seed and shards).
        workers: how many processes ran them (Dask: the cluster's workers).
        executor: ``"inline"``, ``"processes"`` or ``"dask"``.
        shard_results: every shard's report, in shard order.
    """

    shards: int = 1
    workers: int = 1
    executor: str = "inline"
    shard_results: list[ShardResult] = field(default_factory=list)

    def summary(self) -> str:
        """`RunResult.summary`, then how the run was cut and who ran it."""
        where = {"inline": "in this process", "processes": "local processes"}
        ran = where.get(self.executor, "Dask workers")
        return f"{super().summary()}\n  {self.shards} shards on {self.workers} worker(s): {ran}"


def _run_seed(seed: int | None) -> int:
    """The run's seed: the given one, else ``DOGESIM_SEED``, else one from the global
    `random` (so a program that seeds `random` gets the same run every time)."""
    if seed is None:
        text = os.environ.get(SEED_VARIABLE, "").strip()
        if text:
            if not text.isdigit():
                raise ModelError(f"{SEED_VARIABLE} must be a non-negative integer, got {text!r}")
            return int(text)
        return random.getrandbits(63)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ModelError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def plan_run(run: ShardedRun, control: Control, run_id: str | None = None) -> ShardPlan:
    """Resolve `run` in the driver: its seed, population, number of shards and outputs.

    Raises:
        ModelError: a setting is invalid, there are more shards than subjects, or the model
            cannot be sharded (shared resources, output to standard output).
    """
    outputs: dict[str, str] = {}
    spec: Any = None
    if run.model_file is not None:
        from dogesim.scale.modelfiles import load_run

        environ = dict(os.environ) if run.environ is None else dict(run.environ)
        run = replace(run, environ=environ)
        spec = load_run(run)
        seed = _run_seed(run.seed if run.seed is not None else spec.seed)
        subjects = _count(spec.subjects.count, "subjects", 0)
        arrivals = spec.arrivals
    else:
        if not callable(run.model):
            raise ModelError(
                f"model must be a model-building callable or a path, got {run.model!r}"
            )
        if run.ticks is None or run.tick_ms is None:
            raise ModelError("a sharded run of a model-building callable needs ticks and tick_ms")
        seed = _run_seed(run.seed)
        subjects = _count(run.subjects, "subjects", 0)
        arrivals = run.arrivals
    # A model file may fix its shards (a ``shards:`` key, once the loader reads one).
    chosen = run.shards if run.shards is not None else getattr(spec, "shards", None)
    shards = default_shards(subjects) if chosen is None else _count(chosen, "shards", 1)
    if shards > max(subjects, 1) or (subjects == 0 and arrivals is None):
        raise ModelError(
            f"shards={shards} but the run has {subjects} subjects: every shard needs at least "
            f"one subject (use at most shards={max(subjects, 1)})"
        )
    if spec is not None:
        from dogesim.scale.modelfiles import merged_outputs

        outputs = merged_outputs(spec, shards)
    return ShardPlan(
        run=replace(run, seed=seed, shards=shards, subjects=subjects),
        seed=seed,
        shards=shards,
        subjects=subjects,
        seeds=tuple(shard_seeds(seed, shards)),
        run_id=run_id or uuid.uuid4().hex[:12],
        control=control,
        outputs=outputs,
    )


def run_sharded(
    run: ShardedRun, *, workers: int | None = None, dask: Any = None
) -> ShardedRunResult:
    """Run `run` in shards and return the merged result.

    Args:
        run: what to run.
        workers: local processes (None or 1: the shards one after the other in this process).
        dask: a Dask scheduler address (``"tcp://host:8786"``) or a `distributed.Client`;
            the shards then run as tasks of that cluster (part files must be on a file
            system the driver reads).

    Raises:
        ModelError: the run is invalid or cannot be sharded (before anything runs).
        SinkError: a shard's sinks lost events, or a worker died (its events count as not
            delivered); the message lists every shard's status and counts, `ledgers` holds
            them per shard. No merged file is written.
        RunError: a shard failed otherwise (a callback raised); per-shard counts as above.
    """
    if dask is not None and workers not in (None, 1):
        raise RunError("give workers= (local processes) or dask= (a cluster), not both")
    count = 1 if workers is None else _count(workers, "workers", 1)
    started = time.perf_counter()
    directory = tempfile.mkdtemp(prefix="dogesim-shards-")
    try:
        if dask is not None:
            return _on_dask(run, dask, started)
        plan = plan_run(run, FileControl(directory))
        from dogesim.scale.executors import run_inline, run_processes

        if count > 1:
            _check_picklable(plan)
        with _parts_removed_on_interrupt(plan):
            results = run_inline(plan) if count == 1 else run_processes(plan, count)
        executor = "inline" if count == 1 else "processes"
        return _finish(plan, results, started, executor, min(count, plan.shards))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _parts_removed_on_interrupt(plan: ShardPlan) -> Iterator[None]:
    """On Ctrl-C or SIGTERM (or any error escaping the executor): cancel the shards and remove
    every part file they opened; nothing is merged."""
    try:
        yield
    except BaseException:
        plan.control.cancel()
        _remove_noted_parts(plan)
        raise


def _remove_noted_parts(plan: ShardPlan) -> None:
    """Remove every part file the shards noted they opened (reported or not)."""
    remove_parts([PartFile("", "", path, False) for path in plan.control.parts()])


def _check_picklable(plan: ShardPlan) -> None:
    """Worker processes receive the plan pickled: say so now, not as a dead worker later."""
    from dogesim.scale.executors import pickled

    try:
        pickled(plan)
    except Exception as exc:
        raise ModelError(
            f"the run cannot be sent to worker processes: {exc}; the model builder and the "
            "subject factory must be picklable (functions and classes defined at module level, "
            "arguments bound with functools.partial; lambdas and local functions only with "
            "cloudpickle installed, as the dask extra does)"
        ) from exc


def _on_dask(run: ShardedRun, dask: Any, started: float) -> ShardedRunResult:
    from dogesim.scale.executors import dask_client, run_dask

    client, owned = dask_client(dask)
    try:
        control = DaskControl(uuid.uuid4().hex[:12])
        control.bind(client)
        plan = plan_run(run, control, control.run_id)
        with _parts_removed_on_interrupt(plan):
            results = run_dask(plan, client)
        workers = len(client.scheduler_info().get("workers", {}))
        return _finish(plan, results, started, "dask", workers)
    finally:
        if owned:
            client.close()


def _finish(
    plan: ShardPlan, results: list[ShardResult], started: float, executor: str, workers: int
) -> ShardedRunResult:
    """Merge the shards' outputs and tables, or fail with every shard's counts."""
    if any(r.status != "done" or r.result is None for r in results):
        _fail(plan, results)
    ledgers = merge_ledgers(results)
    _merge_files(results, ledgers)
    return _merged_result(plan, results, ledgers, time.perf_counter() - started, executor, workers)


def merge_ledgers(results: list[ShardResult]) -> list[DeliveryLedger]:
    """Per sink name (in first-use order), the shards' ledgers added up."""
    merged: dict[str, DeliveryLedger] = {}
    for result in results:
        for ledger in result.ledgers:
            total = merged.setdefault(ledger.sink, DeliveryLedger(ledger.sink))
            total.collected += ledger.collected
            total.acknowledged += ledger.acknowledged
            total.failed += ledger.failed
    return list(merged.values())


def _merge_files(results: list[ShardResult], ledgers: list[DeliveryLedger]) -> None:
    """Merge every output's parts (in shard order); its ledger then counts the merged lines."""
    by_target: dict[str, list[PartFile]] = {}
    for result in results:
        for part in result.parts:
            by_target.setdefault(part.target, []).append(part)
    by_name = {ledger.sink: ledger for ledger in ledgers}
    for target, parts in by_target.items():
        ledger = by_name.get(parts[0].name)
        try:
            written = merge_parts(target, parts)
        except SinkError as exc:
            for rest in by_target.values():
                remove_parts(rest)
            if ledger is not None:
                ledger.acknowledged = 0
                exc.ledgers = (ledger,)
            raise
        if ledger is not None:
            ledger.acknowledged = written
            ledger.raise_if_lost("the merged file has fewer lines than the shards wrote")


def _merged_result(
    plan: ShardPlan,
    results: list[ShardResult],
    ledgers: list[DeliveryLedger],
    wall: float,
    executor: str,
    workers: int,
) -> ShardedRunResult:
    parts = [r.result for r in results if r.result is not None]
    first = parts[0]
    return ShardedRunResult(
        seed=plan.seed,
        states=first.states,
        transitions=first.transitions,
        subjects=sum(p.subjects for p in parts),
        ticks=first.ticks,
        tick_ms=first.tick_ms,
        timestamp_start=first.timestamp_start,
        initial_state=first.initial_state,
        occupancy=np.sum([p.occupancy for p in parts], axis=0),
        events_per_tick=np.sum([p.events_per_tick for p in parts], axis=0),
        attempts=np.sum([p.attempts for p in parts], axis=0),
        vetoes=np.sum([p.vetoes for p in parts], axis=0),
        ledgers=ledgers,
        wall_time=wall,
        arrivals=sum(p.arrivals for p in parts),
        record_every=first.record_every,
        fed=first.fed,
        shards=plan.shards,
        workers=workers,
        executor=executor,
        shard_results=results,
    )


def _fail(plan: ShardPlan, results: list[ShardResult]) -> None:
    """Remove every part file and raise the run's error, listing every shard.

    Merged outputs are not written, so their events count as not acknowledged, whatever
    their part files held."""
    merged = {part.name for result in results for part in result.parts}
    # Also the parts of shards that died before they could report them.
    _remove_noted_parts(plan)
    for result in results:
        result.ledgers = [
            replace(ledger, acknowledged=0) if ledger.sink in merged else ledger
            for ledger in result.ledgers
        ]
    failed = [r for r in results if r.status in ("failed", "lost")] or [
        r for r in results if r.status != "done"
    ]
    lines = "\n  ".join(r.describe() for r in results)
    message = (
        f"sharded run (seed {plan.seed}, {plan.shards} shards) failed at shard "
        f"{failed[0].index}: {failed[0].error}; no merged file was written. Per shard:\n  "
        f"{lines}"
    )
    ledgers = [
        replace(ledger, sink=f"{ledger.sink} [shard {r.index}]")
        for r in results
        for ledger in r.ledgers
    ]
    error: Exception
    if failed[0].error_kind == "model":
        error = ModelError(message)
    elif any(r.status == "lost" for r in results) or not all(ledger.ok for ledger in ledgers):
        error = SinkError(message, ledgers)
    else:
        error = RunError(message)
    if failed[0].traceback and hasattr(error, "add_note"):
        error.add_note(f"shard {failed[0].index} ({failed[0].where}):\n{failed[0].traceback}")
    raise error
