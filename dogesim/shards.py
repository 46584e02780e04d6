"""Scale out: one run cut into shards of subjects, on all cores or a Dask cluster.

- `run_sharded(run, workers=..., dask=..., progress=..., stop=...)`: run a `ShardedRun` and
  merge what its shards report into one `ShardedRunResult`.
- `Progress`: the run's progress summed over its shards, given to the ``progress`` callback.
- `read_manifest(path)`: the manifest a checkpointed sharded run keeps at its checkpoint path.
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
reference); ``workers=N`` runs them in N local processes (forked on Linux when the driver
runs no other thread, else spawned); ``dask="tcp://host:8786"``
(or a `distributed.Client`; ``pip install 'dogesim[dask]'``) runs them as Dask tasks, each
worker running its shards one at a time in a child process of its own (a worker's event loop
draws from the global `random`, which doge-datagen callbacks use); start workers with one
thread each (``dask worker ADDRESS --nthreads 1``), one per core. Builders and factories must
be picklable (module-level functions and classes, `functools.partial` for arguments); part
files of merged outputs must be on a file system the driver reads.

Control of a running sharded run. ``progress`` is called a few times a second with ticks and
events summed over the shards (each shard reports through the run's `Control`; the last call
holds the run's exact events). Setting ``stop`` (a `threading.Event`; the CLI sets it on the
first SIGINT/SIGTERM; a SIGTERM to a worker process does the same) stops every shard after
its tick: its sinks are closed and its ledger
reported, and the result says ``stopped``; a run without checkpoints then merges what its
shards wrote (each up to its own tick). With ``checkpoint=PATH`` every shard writes
``PATH.shard-K`` when it stops or ends (and every ``checkpoint_every``; PATH holds the run's
manifest: every setting that decides the stream, which a resume takes where it gives none
and refuses to change), a stopped run keeps its part files, and ``resume=True`` checks every
shard's checkpoint before any shard starts (a refused resume changes nothing), then
continues each shard from its own checkpoint, its part cut back to it: the
merged bytes equal the uninterrupted run's, also after a SIGKILL of the driver (its workers
see it, stop after their tick and checkpoint; a lock per shard checkpoint makes the resume
wait for them). An SQL sink's position per shard is the rows that shard committed, kept in
``dogesim_positions`` in the transaction of its rows (`dogesim.sinks.db_positions`); CSV
parts cannot be continued. ``live=LiveOptions(...)`` paces every
shard in real time from one clock start the driver chooses; Kafka sinks stream as they go,
merged files are written when the run ends or is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from dogesim.engine import SEED_VARIABLE, LiveOptions
from dogesim.engine.checkpoint import write_atomically
from dogesim.errors import ModelError, RunError, SinkConfigError, SinkError
from dogesim.result import RunResult
from dogesim.scale.control import Control, DaskControl, FileControl
from dogesim.scale.locks import hold_run_lock
from dogesim.scale.parts import PartFile, merge_parts, remove_parts
from dogesim.scale.plan import (
    Shard,
    ShardedRun,
    ShardPlan,
    default_shards,
    shard_checkpoint,
    shard_seeds,
)
from dogesim.scale.watch import Progress, Watch
from dogesim.scale.worker import ShardResult, check_checkpoints, run_shard
from dogesim.sinks.base import DeliveryLedger

__all__ = [
    "Progress",
    "Shard",
    "ShardPlan",
    "ShardResult",
    "ShardedRun",
    "ShardedRunResult",
    "default_shards",
    "plan_run",
    "read_manifest",
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
        parts_kept: a stopped, checkpointed run: the merged outputs are not written yet,
            their lines wait in the shards' part files for the resume.
    """

    shards: int = 1
    workers: int = 1
    executor: str = "inline"
    shard_results: list[ShardResult] = field(default_factory=list)
    parts_kept: bool = False

    def summary(self) -> str:
        """`RunResult.summary`, then how the run was cut and who ran it."""
        where = {"inline": "in this process", "processes": "local processes"}
        ran = where.get(self.executor, "Dask workers")
        text = f"{super().summary()}\n  {self.shards} shards on {self.workers} worker(s): {ran}"
        if self.stopped:
            ticks = ", ".join(
                f"{r.index}: {r.result.ticks if r.result else 0}" for r in self.shard_results
            )
            text += f"\n  stopped; ticks done per shard {{{ticks}}}"
            if self.parts_kept:
                text += "; part files kept for the resume, merged when it ends"
        return text


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


def _now_ms() -> int:
    return int(time.time() * 1000)


#: What a sharded run's checkpoint manifest says it is.
MANIFEST_FORMAT = "dogesim-sharded-checkpoint"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a sharded run checkpointed at `path`, or None when `path` is not one
    (missing, or a single run's checkpoint)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def _file_live(run: ShardedRun, spec: Any) -> ShardedRun:
    """`run` with the model file's live pacing when it gives none, and, when live, one clock
    start for every shard: the file's ``start:`` with ``timestamps: start``, else now."""
    live = run.live
    if live is None and spec.live.enabled:
        settings = spec.live_settings()
        live = LiveOptions(True, settings.speed, settings.max_lag_ms, settings.on_lag)
    if live is None or not live.enabled:
        return run
    start = run.timestamp_start
    if start is None:
        wall = spec.live.timestamps == "wall" or spec.timestamp_start is None
        start = _now_ms() if wall else spec.timestamp_start
    return replace(run, live=live, timestamp_start=start)


#: Run settings a resume takes from the manifest when the resumed run gives none (None).
_TAKEN = ("seed", "shards", "subjects", "ticks", "timestamp_start", "jitter")


def _resumed(run: ShardedRun) -> tuple[ShardedRun, dict[str, Any] | None]:
    """`run` with the settings of the checkpointed run it resumes where it gives none (seed,
    shards, population, ticks, clock start, jitter, checkpoint period), and that run's
    manifest (None for a fresh run). A setting `run` gives is checked against the manifest
    once it is resolved (`_check_settings`); a manifest without one (written before it kept
    them) leaves it as the run gives it."""
    if not run.resume:
        return run, None
    if run.checkpoint is None:
        raise ModelError("resume=True needs checkpoint=PATH, where the run was checkpointed")
    manifest = read_manifest(run.checkpoint)
    if manifest is None:
        raise ModelError(
            f"{run.checkpoint}: no sharded run was checkpointed here (no manifest); resume "
            "needs the path given as checkpoint to the interrupted run"
        )
    changes = {
        key: manifest[key]
        for key in _TAKEN
        if getattr(run, key) is None and manifest.get(key) is not None
    }
    if run.checkpoint_every is None and manifest.get("checkpoint_every") is not None:
        # A resumed run keeps checkpointing as the interrupted one did.
        changes["checkpoint_every"] = manifest["checkpoint_every"]
    return replace(run, **changes), manifest


def _settings(run: ShardedRun, spec: Any, seed: int, shards: int, subjects: int) -> dict[str, Any]:
    """Every run setting that decides the stream, resolved (a model file's own where `run`
    gives none), as JSON data: what the manifest keeps and a resume must match."""
    from dogesim.engine.checkpoint import described

    source = run if spec is None else spec
    settings = {
        "seed": seed,
        "shards": shards,
        "subjects": subjects,
        "ticks": source.ticks,
        "tick_ms": source.tick_ms,
        "timestamp_start": run.timestamp_start,
        "jitter": bool(source.jitter),
        "arrivals": described(source.arrivals),
        "arrivals_profile": described(source.arrivals_profile),
        "churn": described(source.churn),
        "seed_globals": run.seed_globals,
        "renumber": list(run.renumber),
    }
    # As read back from JSON (tuples are lists), so a resume compares like with like.
    loaded: dict[str, Any] = json.loads(json.dumps(settings))
    return loaded


def _check_settings(path: str, manifest: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Refuse a resume whose resolved settings differ from the checkpointed run's, naming the
    first setting that differs and both values (keys an older manifest lacks are not
    checked)."""
    for key, value in settings.items():
        if key in manifest and manifest[key] != value:
            raise ModelError(
                f"{path}: the checkpointed run has {key}={_shown(manifest[key])}, this one "
                f"{key}={_shown(value)}; resume with the same {key} (a setting left out is "
                "taken from the checkpointed run)"
            )


def _shown(value: Any) -> str:
    """A manifest value in a message: JSON, cut to 80 characters."""
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _write_manifest(run: ShardedRun, settings: Mapping[str, Any]) -> str:
    """The checkpointed run's manifest at its checkpoint path (what a resume must match:
    `settings`); returns the run's name for its SQL positions.

    Raises:
        ModelError: a fresh run at the path of a sharded run that has not finished (its
            checkpoints would be lost, its rows written again).
    """
    assert run.checkpoint is not None
    earlier = read_manifest(run.checkpoint)
    if earlier is not None:
        raise ModelError(
            f"{run.checkpoint}: a checkpointed sharded run (seed {earlier['seed']}, "
            f"{earlier['shards']} shards) stopped here and has not finished; continue it with "
            "resume=True (dogesim run ... --resume PATH), or remove PATH and its "
            "PATH.shard-K files to start again"
        )
    Path(run.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    positions = uuid.uuid4().hex
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        **settings,
        "checkpoint_every": run.checkpoint_every,
        "positions": positions,
    }
    write_atomically(run.checkpoint, json.dumps(manifest).encode())  # 0600, as the shards'
    for k in range(int(settings["shards"])):
        # Checkpoints of an earlier run at this path are not this run's.
        with contextlib.suppress(FileNotFoundError):
            os.remove(shard_checkpoint(run.checkpoint, k))
    return positions


def _positions(
    run: ShardedRun, settings: Mapping[str, Any], resumed: Mapping[str, Any] | None
) -> str:
    """The run's name for its SQL positions: the manifest's when it resumes (its settings
    checked against it first), else that of the manifest written now."""
    assert run.checkpoint is not None
    if resumed is None:
        return _write_manifest(run, settings)
    _check_settings(run.checkpoint, resumed, settings)
    return str(resumed.get("positions", ""))


def _lock_checkpoint(run: ShardedRun, hold: contextlib.ExitStack | None) -> None:
    """Hold `run`'s checkpoint run lock in `hold` (nothing without either)."""
    if hold is not None and run.checkpoint is not None:
        hold.enter_context(hold_run_lock(run.checkpoint))


def plan_run(
    run: ShardedRun,
    control: Control,
    run_id: str | None = None,
    hold: contextlib.ExitStack | None = None,
) -> ShardPlan:
    """Resolve `run` in the driver: its seed, population, number of shards and outputs.

    With `hold`, a checkpointed run first takes its checkpoint's run lock (`hold_run_lock`)
    until `hold` closes: nothing is read or written at the checkpoint path before.

    Raises:
        ModelError: a setting is invalid, there are more shards than subjects, the model
            cannot be sharded (shared resources, output to standard output), or another run
            holds the checkpoint path.
    """
    outputs: dict[str, str] = {}
    spec: Any = None
    if run.model_file is not None:
        from dogesim.scale.modelfiles import load_run

        environ = dict(os.environ) if run.environ is None else dict(run.environ)
        run = replace(run, environ=environ)
        spec = load_run(run)
        if run.checkpoint is None and getattr(spec, "checkpoint_path", None):
            run = replace(run, checkpoint=os.path.abspath(spec.checkpoint_path))
        _lock_checkpoint(run, hold)
        taken, resumed = _resumed(run)
        if taken != run:
            run, spec = taken, load_run(taken)  # with the checkpointed run's settings
        run = _file_live(run, spec)
        seed = _run_seed(run.seed if run.seed is not None else spec.seed)
        subjects = _count(spec.subjects.count, "subjects", 0)
        arrivals = spec.arrivals
    else:
        if not callable(run.model):
            raise ModelError(
                f"model must be a model-building callable or a path, got {run.model!r}"
            )
        _lock_checkpoint(run, hold)
        run, resumed = _resumed(run)
        if run.ticks is None or run.tick_ms is None:
            raise ModelError("a sharded run of a model-building callable needs ticks and tick_ms")
        seed = _run_seed(run.seed)
        subjects = _count(run.subjects, "subjects", 0)
        arrivals = run.arrivals
        if run.live is not None and run.live.enabled and run.timestamp_start is None:
            # One clock start for every shard (each would otherwise take its own "now").
            run = replace(run, timestamp_start=_now_ms())
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
    positions = ""
    if run.checkpoint is not None:
        run = replace(run, checkpoint=os.path.abspath(run.checkpoint))
        settings = _settings(run, spec, seed, shards, subjects)
        positions = _positions(run, settings, resumed)
    return ShardPlan(
        run=replace(run, seed=seed, shards=shards, subjects=subjects),
        seed=seed,
        shards=shards,
        subjects=subjects,
        seeds=tuple(shard_seeds(seed, shards)),
        run_id=run_id or uuid.uuid4().hex[:12],
        control=control,
        outputs=outputs,
        positions=positions,
    )


def run_sharded(
    run: ShardedRun,
    *,
    workers: int | None = None,
    dask: Any = None,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
) -> ShardedRunResult:
    """Run `run` in shards and return the merged result.

    Args:
        run: what to run.
        workers: local processes (None or 1: the shards one after the other in this process).
        dask: a Dask scheduler address (``"tcp://host:8786"``) or a `distributed.Client`;
            the shards then run as tasks of that cluster (part files must be on a file
            system the driver reads).
        progress: called a few times a second with the run's `Progress` (ticks and events
            summed over the shards); the last call, once every shard has finished, holds
            the run's exact events.
        stop: once set (a signal handler may set it), every shard stops after its tick and
            closes its sinks: the result has ``stopped=True``; a checkpointed run keeps its
            part files for a resume, any other merges what the shards wrote.

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
        with contextlib.ExitStack() as hold:
            if dask is not None:
                return _on_dask(run, dask, started, progress, stop, hold)
            return _locally(run, count, started, progress, stop, FileControl(directory), hold)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _locally(
    run: ShardedRun,
    count: int,
    started: float,
    progress: Callable[[Progress], None] | None,
    stop: threading.Event | None,
    control: FileControl,
    hold: contextlib.ExitStack,
) -> ShardedRunResult:
    """Run `run` in this process (`count` 1) or in `count` local processes."""
    plan = plan_run(run, control, hold=hold)
    check_checkpoints(plan)  # a refused resume starts no shard
    from dogesim.scale.executors import run_inline, run_processes

    if count > 1:
        _check_picklable(plan)
    watch = Watch(plan.control, plan.shards, plan.run.ticks, progress, stop)
    with _parts_removed_on_interrupt(plan):
        inline = count == 1
        results = run_inline(plan, watch) if inline else run_processes(plan, count, watch)
    executor = "inline" if count == 1 else "processes"
    return _finish(plan, results, started, executor, min(count, plan.shards))


@contextlib.contextmanager
def _parts_removed_on_interrupt(plan: ShardPlan) -> Iterator[None]:
    """On a second Ctrl-C or SIGTERM (or any error escaping the executor): cancel the shards
    and remove every part file they opened; nothing is merged. A checkpointed run keeps its
    parts: a resume continues them from the last checkpoints."""
    try:
        yield
    except BaseException:
        plan.control.cancel()
        if not plan.run.checkpoint:
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


def _on_dask(
    run: ShardedRun,
    dask: Any,
    started: float,
    progress: Callable[[Progress], None] | None,
    stop: threading.Event | None,
    hold: contextlib.ExitStack,
) -> ShardedRunResult:
    from dogesim.scale.executors import dask_client, run_dask

    client, owned = dask_client(dask)
    try:
        control = DaskControl(uuid.uuid4().hex[:12])
        control.bind(client)
        plan = plan_run(run, control, control.run_id, hold)
        check_checkpoints(plan)  # a refused resume starts no shard
        control.track(plan.shards)
        watch = Watch(control, plan.shards, plan.run.ticks, progress, stop)
        with _parts_removed_on_interrupt(plan):
            results = run_dask(plan, client, watch)
        workers = len(client.scheduler_info().get("workers", {}))
        return _finish(plan, results, started, "dask", workers)
    finally:
        if owned:
            client.close()


def _finish(
    plan: ShardPlan, results: list[ShardResult], started: float, executor: str, workers: int
) -> ShardedRunResult:
    """Merge the shards' outputs and tables, or fail with every shard's counts.

    A stopped run (every shard done or stopped) is a result with ``stopped=True``: a
    checkpointed one keeps its part files (merged when the resumed run ends), any other
    merges what its shards wrote, each up to the tick it stopped after."""
    stopped = any(r.status == "stopped" for r in results)
    if any(r.status not in ("done", "stopped") for r in results):
        _fail(plan, results)
    if not any(r.result is not None for r in results):
        raise RunError(
            f"sharded run (seed {plan.seed}, {plan.shards} shards) stopped before any shard "
            "started; nothing was written"
        )
    ledgers = merge_ledgers(results)
    kept = stopped and bool(plan.run.checkpoint)
    if not kept:
        with _parts_removed_on_interrupt(plan):  # a second Ctrl-C during the merge
            _merge_files(results, ledgers)
        if plan.run.checkpoint:
            _remove_checkpoints(plan)
    wall = time.perf_counter() - started
    result = _merged_result(plan, results, ledgers, wall, executor, workers)
    result.stopped = stopped
    result.parts_kept = kept
    return result


def _remove_checkpoints(plan: ShardPlan) -> None:
    """After the merge the part files are gone, so the checkpoints can continue nothing."""
    base = plan.run.checkpoint
    assert base is not None
    shards = [shard_checkpoint(base, k) for k in range(plan.shards)]
    for path in [base, *shards, *(f"{path}.lock" for path in shards)]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


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
        ticks=max(p.ticks for p in parts),
        tick_ms=first.tick_ms,
        timestamp_start=first.timestamp_start,
        initial_state=first.initial_state,
        occupancy=_summed([p.occupancy for p in parts], hold=True),
        events_per_tick=_summed([p.events_per_tick for p in parts]),
        attempts=_summed([p.attempts for p in parts]),
        vetoes=_summed([p.vetoes for p in parts]),
        ledgers=ledgers,
        wall_time=wall,
        arrivals=sum(p.arrivals for p in parts),
        record_every=first.record_every,
        fed=first.fed,
        initial_counts=_counts([p.initial_counts for p in parts]),
        arrival_counts=_counts([p.arrival_counts for p in parts]),
        shards=plan.shards,
        workers=workers,
        executor=executor,
        shard_results=results,
    )


def _counts(per_shard: list[np.ndarray]) -> np.ndarray:
    """Per-state counts summed over the shards (empty when some shard does not know them)."""
    if not per_shard or any(len(c) != len(per_shard[0]) for c in per_shard):
        return np.zeros(0, dtype=np.int64)
    return np.sum([np.asarray(c, dtype=np.int64) for c in per_shard], axis=0)


def _summed(tables: list[np.ndarray], *, hold: bool = False) -> np.ndarray:
    """The shards' tables added up; shorter ones (shards stopped earlier) padded to the
    longest: with their last row (`hold`: subjects stay where they are) or with zeros."""
    rows = max(len(table) for table in tables)
    padded = []
    for table in tables:
        missing = rows - len(table)
        if missing and table.ndim and len(table):
            widths = [(0, missing)] + [(0, 0)] * (table.ndim - 1)
            table = np.pad(table, widths, mode="edge" if hold else "constant")
        padded.append(table)
    return np.sum(padded, axis=0)


def _fail(plan: ShardPlan, results: list[ShardResult]) -> None:
    """Remove every part file and raise the run's error, listing every shard.

    Merged outputs are not written, so their events count as not acknowledged, whatever
    their part files held."""
    merged = {part.name for result in results for part in result.parts}
    kept = ""
    base = plan.run.checkpoint
    if base:
        if any(os.path.exists(shard_checkpoint(base, k)) for k in range(plan.shards)):
            kept = f" (part files and checkpoints kept: resume from {base})"
        else:
            kept = " (no shard wrote a checkpoint: run it again once the cause is fixed)"
    else:
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
        f"{failed[0].index}: {failed[0].error}; no merged file was written{kept}. Per "
        "shard:\n  "
        f"{lines}"
    )
    ledgers = [
        replace(ledger, sink=f"{ledger.sink} [shard {r.index}]")
        for r in results
        for ledger in r.ledgers
    ]
    error: Exception
    if all(r.error_kind == "config" for r in failed):
        # A sink no shard could set up (a bad URL, password, table): one line, as in one
        # process; nothing was sent.
        raise SinkConfigError(f"shard {failed[0].index}: {failed[0].error}{kept}")
    if failed[0].error_kind == "model":
        error = ModelError(message)
    elif any(r.status == "lost" for r in results) or not all(ledger.ok for ledger in ledgers):
        error = SinkError(message, ledgers)
    else:
        error = RunError(message)
    if failed[0].traceback and hasattr(error, "add_note"):
        error.add_note(f"shard {failed[0].index} ({failed[0].where}):\n{failed[0].traceback}")
    raise error
