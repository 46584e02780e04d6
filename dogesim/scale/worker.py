"""One shard's work: `run_shard(plan, k) -> ShardResult`, the same for every executor.

- `run_shard`: build shard `k`'s model (fresh sinks, merged file outputs as part files), its
  subjects and its share of arrivals, run it with the shard's seed, and report.
- `ShardResult`: what a shard reports: its status, its sinks' ledgers, its part files, and
  its occupancy and event tables (sink-free, so it pickles to any driver).

A shard never raises for what happens inside the run: a failure comes back as a result with
``status="failed"`` and the ledgers its closed sinks keep, so the driver can report every
shard's counts. Only a dead worker (killed process) leaves a shard without a result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dogesim.engine import RunOptions, Simulation
from dogesim.errors import ModelError, RunError, SinkConfigError, SinkError
from dogesim.model import Model, Transition
from dogesim.result import RunResult
from dogesim.scale.locks import hold_shard_lock
from dogesim.scale.modelfiles import FILE_TYPES
from dogesim.scale.parts import PartFile, PartSink
from dogesim.scale.plan import (
    Shard,
    ShardPlan,
    refuse_shared_resources,
    shard_subjects,
    share_arrivals,
)
from dogesim.sinks.base import CountingSink, DeliveryLedger, ledger_of, sink_method

__all__ = [
    "ShardResult",
    "check_checkpoints",
    "preflight",
    "run_shard",
    "terminate",
    "terminated",
    "worker_idle",
]

#: Shards in one process run one at a time: each seeds the process's global `random`, which
#: two shards in threads of one process would otherwise share (a Dask worker with threads).
_ONE_AT_A_TIME = threading.Lock()

#: Set by `terminate` (a worker process's SIGTERM handler): the process was asked to end.
_TERMINATED = threading.Event()


@contextlib.contextmanager
def worker_idle() -> Iterator[None]:
    """Hold this process while no shard runs in it (waiting for a running one to end)."""
    with _ONE_AT_A_TIME:
        yield


def terminated() -> bool:
    """True once this process received a SIGTERM (`terminate`)."""
    return _TERMINATED.is_set()


def terminate(signum: int, frame: Any) -> None:
    """SIGTERM in a worker process (``kill -TERM -PGID``, as systemd, docker and timeout send
    it to the driver and its workers alike): the shard running here stops after its tick,
    keeping its output and writing its checkpoint, and asks the whole run to stop, as the
    driver's first SIGINT/SIGTERM does; a shard not started yet does not start."""
    _TERMINATED.set()


@dataclass
class ShardResult:
    """What one shard reports back to the driver.

    Attributes:
        index: the shard's number.
        status: ``"done"``, ``"failed"`` (the shard's run raised, or it refused to run),
            ``"cancelled"`` (stopped because another shard failed), ``"stopped"`` (the
            driver was asked to stop: its output is kept) or ``"lost"`` (its worker
            died: no ledger is known, so nothing of it counts as delivered).
        ledgers: its sinks' ledgers after they were closed (merged outputs by their name).
        parts: its part files of merged outputs.
        error: what went wrong, one line (empty when done).
        error_kind: ``"model"`` (a `ModelError`), ``"config"`` (a `SinkConfigError`: a sink
            that cannot be set up), ``"sink"`` (a `SinkError`) or ``"other"``.
        traceback: the shard's traceback text when it failed.
        where: ``host:pid`` of the process that ran it.
        result: its `RunResult` without sinks and callbacks (None unless it ran).
        cpu_seconds: CPU time the shard's process spent on it (build, run, close).
        checkpoint: the checkpoint it wrote (empty when the run keeps none).
        started, finished: when it started and ended (seconds since the epoch).
    """

    index: int
    status: str
    ledgers: list[DeliveryLedger] = field(default_factory=list)
    parts: list[PartFile] = field(default_factory=list)
    error: str = ""
    error_kind: str = ""
    traceback: str = ""
    where: str = ""
    result: RunResult | None = None
    cpu_seconds: float = 0.0
    checkpoint: str = ""
    started: float = 0.0
    finished: float = 0.0

    def describe(self) -> str:
        """One line: the status, the error and the shard's ledgers."""
        counts = "; ".join(ledger.summary() for ledger in self.ledgers)
        if self.status == "lost":
            counts = "no ledger (nothing of it is confirmed delivered)"
        text = f"shard {self.index} {self.status}"
        if self.error:
            text += f" ({self.error})"
        return f"{text}: {counts or 'no sinks'}"


def run_shard(plan: ShardPlan, k: int) -> ShardResult:
    """Run shard `k` of `plan` and report; the one shard function of every executor."""
    with _ONE_AT_A_TIME:
        began = time.time()
        started = time.process_time()
        checkpoint = plan.checkpoint_of(k)
        try:
            with hold_shard_lock(checkpoint, k):
                result = _run_shard(plan, k)
        except RunError as exc:
            result = ShardResult(k, "failed", error=str(exc), error_kind="other", where=_where())
        result.cpu_seconds = time.process_time() - started
        result.started, result.finished = began, time.time()
        return result


def check_checkpoints(plan: ShardPlan) -> None:
    """Before any shard of a resumed run starts, check every shard's checkpoint against the
    model and settings it will be resumed with: each shard that has one is built as it will
    resume (`Simulation.resume` compares them), without opening its sinks, and dropped. A
    refused resume so changes nothing: no shard has started, cut a part, committed a row or
    written a checkpoint with the wrong settings.

    Raises:
        ModelError: a shard's checkpoint is of another model or other run settings, or
            cannot be read (naming the shard).
        RunError: building a shard to check it failed otherwise, or its checkpoint's lock
            is held too long.
    """
    if not plan.run.resume:
        return
    for k in range(plan.shards):
        checkpoint = plan.checkpoint_of(k)
        if checkpoint is None or not os.path.exists(checkpoint):
            continue
        with hold_shard_lock(checkpoint, k):  # an orphaned worker may still write it
            _check_checkpoint(plan, k, checkpoint)


def _check_checkpoint(plan: ShardPlan, k: int, checkpoint: str) -> None:
    """Build shard `k` of `plan` from `checkpoint` to check it (see `check_checkpoints`)."""
    shard = Shard(k, plan.shards, plan.seeds[k], plan.share(k))
    shard.resuming = shard.checkpointed = shard.checking = True
    where = "no shard was started and nothing was changed"
    try:
        _build(plan, shard, _no_progress, checkpoint)
    except (RunError, ModelError) as exc:
        raise ModelError(f"shard {k}: {exc} ({where})") from None
    except Exception as exc:
        raise RunError(
            f"shard {k}: building it to check its checkpoint failed: {type(exc).__name__}: "
            f"{exc} ({where})"
        ) from exc
    finally:
        _close_quietly(shard.sinks)


def _no_progress(done: int) -> None:
    """The progress hook of a shard built only to be checked."""


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def preflight(plan: ShardPlan, k: int) -> ShardResult | None:
    """The result of a shard that must not start (the run is cancelled or stopped, or an
    earlier attempt of it died), or None when it may: it is then claimed."""
    if _TERMINATED.is_set():
        plan.control.stop()
        return ShardResult(k, "stopped", error="its worker was terminated before it started")
    if plan.control.cancelled():
        if plan.control.stopping():
            return ShardResult(k, "stopped", error="the run was stopped before it started")
        return ShardResult(k, "cancelled", error="the run was cancelled before it started")
    if plan.control.claim(k):
        return None
    return ShardResult(
        k,
        "lost",
        error=(
            "an earlier attempt of this shard started and its worker died; it is not run "
            "again, since its events may be partly delivered"
        ),
        where=_where(),
    )


class _Reporter:
    """The shard's progress hook: reports ticks and events to the run's `Control` at most
    every `EVERY_S` seconds (less often when a report costs over 1% of that), and stops the
    shard once the run is cancelled or stopped, or its process was terminated (then it
    stops the whole run)."""

    EVERY_S = 0.2

    def __init__(self, control: Any, k: int) -> None:
        self.control = control
        self.k = k
        self.simulation: Simulation | None = None
        self.next_report = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now >= self.next_report and self.simulation is not None:
            self.control.report(self.k, done, events_so_far(self.simulation))
            # Counting the events reads every row of the recorder: keep it under 1% of the run.
            cost = time.monotonic() - now
            self.next_report = now + max(self.EVERY_S, 100 * cost)
        if _TERMINATED.is_set() and not self.control.stopping():
            self.control.stop()
        if self.control.cancelled() and self.simulation is not None:
            self.simulation.stop()


def events_so_far(simulation: Simulation) -> int:
    """Moves on transitions feeding a sink recorded so far (what `RunResult.events` counts).

    Reads the engine's recorder (no public counter yet; read only at report time)."""
    walker = getattr(simulation, "_walker", None)
    if walker is None:
        return 0
    totals = walker.recorder.totals()
    fed = np.fromiter((bool(t.event_sinks) for t in walker.tables.order), dtype=bool)
    return int(totals[fed].sum()) if fed.size else 0


def _run_shard(plan: ShardPlan, k: int) -> ShardResult:
    control = plan.control
    refused = preflight(plan, k)
    if refused is not None:
        return refused
    shard = Shard(k, plan.shards, plan.seeds[k], plan.share(k), control.note_part)
    checkpoint = plan.checkpoint_of(k)
    shard.resuming = bool(plan.run.resume and checkpoint and os.path.exists(checkpoint))
    shard.checkpointed = checkpoint is not None
    if plan.run.seed_globals and not shard.resuming:
        _seed_globals(shard.seed)
    reporter = _Reporter(control, k)
    try:
        simulation = _build(plan, shard, reporter, checkpoint)
    except Exception as exc:
        _close_quietly(shard.sinks)
        return _failed(shard, exc, shard.sinks)
    reporter.simulation = simulation
    try:
        _claim_plain_files(simulation.model.sinks(), plan)
    except ModelError as exc:
        _close_quietly(simulation.model.sinks())
        return _failed(shard, exc, simulation.model.sinks())
    if checkpoint:
        try:
            _key_shared_positions(simulation.model.sinks(), plan, shard)
        except (ModelError, SinkError, RunError) as exc:
            _close_quietly(simulation.model.sinks())
            return _failed(shard, exc, simulation.model.sinks())
    try:
        result = simulation.run()
        if checkpoint:
            # Also at the end: a resume of a finished shard runs no tick and merges its part.
            simulation.checkpoint(checkpoint, allow_pickle=plan.run.allow_pickle)
    except Exception as exc:
        return _failed(shard, exc, simulation.model.sinks())
    status, why = "done", ""
    if result.stopped:
        stopped = control.stopping()
        status = "stopped" if stopped else "cancelled"
        why = "stopped by the driver" if stopped else "stopped: another shard failed"
    return ShardResult(
        k,
        status,
        ledgers=list(result.ledgers),
        parts=list(shard.parts),
        error=why,
        where=_where(),
        result=_portable(result),
        checkpoint=checkpoint or "",
    )


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    if "numpy" in sys.modules:
        np.random.seed(seed % (1 << 32))


def _failed(shard: Shard, exc: BaseException, sinks: Iterable[Any]) -> ShardResult:
    kind = ""
    if isinstance(exc, ModelError):
        kind = "model"
    elif isinstance(exc, SinkConfigError):
        kind = "config"  # a sink that cannot be set up: nothing was sent
    elif isinstance(exc, SinkError):
        kind = "sink"
    ledgers = [ledger for ledger in map(ledger_of, sinks) if ledger is not None]
    return ShardResult(
        shard.index,
        "failed",
        ledgers=ledgers,
        parts=list(shard.parts),
        error=f"{type(exc).__name__}: {exc}",
        error_kind=kind or "other",
        traceback="".join(traceback.format_exception(exc)),
        where=_where(),
    )


def _close_quietly(sinks: Iterable[Any]) -> None:
    for sink in sinks:
        # The build error is what the shard reports, not a close error after it.
        with contextlib.suppress(Exception):
            getattr(sink, "close", lambda: None)()


#: Identity prefixes (``output_identity()``) of sinks that write one plain file: the
#: kinds a sharded run merges (`dogesim.scale.modelfiles.FILE_TYPES`).
_FILE_KINDS = tuple(f"{kind}:" for kind in FILE_TYPES)


def _claim_plain_files(sinks: Sequence[Any], plan: ShardPlan) -> None:
    """Refuse a file sink (not a shard's part: `Shard.jsonl` and its siblings) whose file
    another shard's sink writes too: each would write over the others' events and report
    them delivered. Files named per shard are fine."""
    if plan.shards == 1:
        return
    for sink in sinks:
        identity = sink_method(sink, "output_identity")
        if isinstance(sink, PartSink) or identity is None:
            continue
        where = str(identity())
        if not where.startswith(_FILE_KINDS) or where.endswith(":<stdout>"):
            continue
        if not plan.control.claim_output(where):
            path = where.split(":", 1)[1]
            raise ModelError(
                f"{path} is written by a sink of another shard too: the {plan.shards} shards "
                "would write over each other's events; build the sink with shard.jsonl(path), "
                "shard.csv(path) or shard.parquet(path) (merged into one file), or give each "
                "shard its own path"
            )


def _key_shared_positions(sinks: Sequence[Any], plan: ShardPlan, shard: Shard) -> None:
    """A checkpointed shard's SQL sinks keep their own committed rows as their position
    (``key_positions``: keyed by the run's positions name from its manifest, the shard and
    the sink's place): the table's row count, their position in a run of one process,
    changes with every shard. Other sinks that commit at checkpoints (``defer_commits`` and
    ``holds_position``) without ``key_positions`` are refused; files (part files), Kafka
    and sinks without positions are fine."""
    for i, sink in enumerate(sinks):
        if not (
            sink_method(sink, "defer_commits") is not None
            and sink_method(sink, "holds_position") is not None
        ):
            continue
        key_positions = sink_method(sink, "key_positions")
        if key_positions is not None:
            group = f"{plan.positions}:sink{i}"
            key_positions(
                f"{group}:shard{shard.index}",
                group,
                resuming=shard.resuming,
                must_be_new=plan.run.resume and not shard.resuming,
            )
            continue
        name = getattr(ledger_of(sink), "sink", None) or type(sink).__name__
        raise ModelError(
            f"shard {shard.index}: sink {name} cannot be checkpointed per shard: its position is "
            "shared by every shard and it cannot keep one of its own (key_positions); "
            "run it without --checkpoint, with shards=1, or into JSONL parts"
        )


def _build(
    plan: ShardPlan, shard: Shard, progress: Callable[[int], None], checkpoint: str | None
) -> Simulation:
    """Shard `shard`'s `Simulation`, with fresh sinks, its subjects and arrivals (or resumed
    from its checkpoint)."""
    if plan.run.model_file is not None:
        return _build_from_file(plan, shard, progress, checkpoint)
    run = plan.run
    builder = run.model
    assert callable(builder)
    built = builder(shard)
    churn_sinks: Sequence[Any] = ()
    if isinstance(built, tuple):
        built, churn_sinks = built
    if not isinstance(built, Model):
        raise ModelError(
            f"the model builder {builder!r} returned {built!r}; it must return a dogesim.Model "
            "(or a (Model, churn_sinks) pair)"
        )
    shard.sinks.extend(s for s in built.sinks() if s not in shard.sinks)
    shard.sinks.extend(s for s in churn_sinks if s not in shard.sinks)
    refuse_shared_resources(built.resources, plan.shards, f"model {built.name!r}")
    assert run.ticks is not None and run.tick_ms is not None
    factory = shard_subjects(run.subject_factory, shard, run.renumber)
    if shard.resuming:
        assert checkpoint is not None
        return _resume(plan, shard, built, churn_sinks, factory, progress, checkpoint)
    options = RunOptions(
        ticks=run.ticks,
        tick_ms=run.tick_ms,
        timestamp_start=run.timestamp_start or 0,
        seed=shard.seed,
        seed_globals=run.seed_globals,
        progress=progress,
        jitter=bool(run.jitter),
        arrivals=share_arrivals(run.arrivals, plan.shards),
        arrivals_profile=run.arrivals_profile,
        churn=run.churn,
        churn_sinks=churn_sinks,
        checkpoint_path=checkpoint,
        checkpoint_every=run.checkpoint_every if checkpoint else None,
    )
    return Simulation(
        built, shard.subjects, subject_factory=factory, options=options, live=run.live or False
    )


def _resume(
    plan: ShardPlan,
    shard: Shard,
    built: Model,
    churn_sinks: Sequence[Any],
    factory: Callable[[], Any],
    progress: Callable[[int], None],
    checkpoint: str,
) -> Simulation:
    """Shard `shard` continued from its checkpoint, into the freshly built model's sinks."""
    run = plan.run
    live = run.live
    simulation = Simulation.resume(
        checkpoint,
        built,
        progress=progress,
        live=bool(live and live.enabled),
        speed=live.speed if live else 1.0,
        arrivals=share_arrivals(run.arrivals, plan.shards),
        arrivals_profile=run.arrivals_profile,
        churn=run.churn,
        churn_sinks=churn_sinks,
        subject_factory=factory,
        subjects=shard.subjects,
        checkpoint_path=checkpoint,
        checkpoint_every=run.checkpoint_every,
        allow_pickle=run.allow_pickle,
    )
    if run.arrivals is not None:
        # Newcomers continue the shard's numbering: make (and drop) the subjects made so far.
        for _ in range(len(simulation.subjects) - shard.subjects):
            factory()
    return simulation


def _build_from_file(
    plan: ShardPlan, shard: Shard, progress: Callable[[int], None], checkpoint: str | None
) -> Simulation:
    """Shard `shard`'s `Simulation` of a model file: its file sinks write parts."""
    from dogesim.scale.modelfiles import load_for_shard

    spec = load_for_shard(plan, shard)
    if shard.checking:
        # Only checked against its checkpoint: sinks that open and write nothing.
        built: dict[str, Any] = {name: CountingSink(name) for name in spec.used_sinks()}
    else:
        built = _file_sinks(plan, shard, spec)
    run = plan.run
    live = _live_settings(run.live)
    every = run.checkpoint_every
    if shard.resuming:
        assert checkpoint is not None
        return spec.resume(
            checkpoint,
            sinks=built,
            progress=progress,
            checkpoint_path=checkpoint,
            checkpoint_every=every,
            allow_pickle=run.allow_pickle,
            **live,
        )
    return spec.simulation(
        sinks=built,
        seed=shard.seed,
        progress=progress,
        jitter=run.jitter,
        checkpoint_path=checkpoint,
        checkpoint_every=every if checkpoint else None,
        **live,
    )


def _file_sinks(plan: ShardPlan, shard: Shard, spec: Any) -> dict[str, Any]:
    """The model file's sinks for shard `shard`, by name: its file sinks write parts."""
    from dogesim.modelfile.build import opened

    built: dict[str, Any] = {}
    try:
        for name in spec.used_sinks():
            sink_spec = spec.sinks[name]
            target = plan.outputs.get(name)
            if target is None:
                built[name] = opened(sink_spec, name, sink_spec.build)
                shard.sinks.append(built[name])
            else:
                if shard.checkpointed and sink_spec.type == "csv":
                    shard.csv(target)  # refuses, saying why
                built[name] = shard.merged(
                    target,
                    _part_builder(sink_spec, name, append=shard.resuming),
                    header=sink_spec.type == "csv",
                    columnar=sink_spec.type == "parquet",
                )
    except Exception:
        _close_quietly(built.values())
        raise
    return built


def _live_settings(live: Any) -> dict[str, Any]:
    """A model file's live keywords for `live` (a `LiveOptions` or None: the file's own)."""
    if live is None:
        return {}
    return {
        "live": live.enabled,
        "speed": live.speed,
        "max_lag_ms": live.max_lag_ms,
        "on_lag": live.on_lag,
    }


def _part_builder(sink_spec: Any, name: str, *, append: bool = False) -> Callable[[str], Any]:
    """Builds the model file's file sink `sink_spec` (named `name`) writing a part path
    instead."""
    from dataclasses import replace

    from dogesim.modelfile.build import opened

    def build(path: str) -> Any:
        settings = {**sink_spec.settings, "path": path}
        if sink_spec.type in ("jsonl", "parquet"):
            settings["append"] = append
        return opened(sink_spec, name, replace(sink_spec, settings=settings).build)

    return build


def _bare(transition: Transition) -> Transition:
    """`transition` without sinks and callbacks, so a result travels between processes."""
    hold = transition.hold if isinstance(transition.hold, int) else 1
    return dataclasses.replace(transition, action_callback=None, event_sinks=(), hold=hold)


def _portable(result: RunResult) -> RunResult:
    from dataclasses import replace

    fed = result.fed or tuple(bool(t.event_sinks) for t in result.transitions)
    return replace(result, fed=fed, transitions=tuple(_bare(t) for t in result.transitions))
