"""Executors: who runs the shards of a plan. Every one runs `run_shard`, nothing else.

- `run_inline(plan)`: the shards one after the other in this process (the reference).
- `run_processes(plan, workers)`: a `ProcessPoolExecutor` of `workers` processes (forked on
  Linux when the driver has no other thread, else spawned: `start_method`).
- `run_dask(plan, client)`: tasks on a Dask distributed cluster (each shard in a child
  process of its worker, see `dogesim.scale.isolated`).
- `dask_client(dask)`: a `distributed.Client` for an address (or the client given).

Each returns one `ShardResult` per shard, in shard order, polling a `Watch` (progress, stop
requests) while it waits. When a shard fails, the others are cancelled through the plan's
`Control` (a running shard stops after its tick and closes its sinks); a shard whose worker
died comes back as ``status="lost"``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any

from dogesim.errors import RunError
from dogesim.scale.control import ChildControl, FileControl
from dogesim.scale.plan import ShardPlan
from dogesim.scale.watch import Watch
from dogesim.scale.worker import ShardResult, run_shard, terminate, terminated, worker_idle

__all__ = [
    "dask_client",
    "import_distributed",
    "pickled",
    "run_dask",
    "run_inline",
    "run_pickled_shard",
    "run_processes",
    "start_method",
]


def run_inline(plan: ShardPlan, watch: Watch | None = None) -> list[ShardResult]:
    """Run every shard in this process, in shard order."""
    results: dict[int, ShardResult] = {}
    control = plan.control
    if watch is not None and isinstance(control, FileControl):
        control.listener = lambda: watch.poll(results)
    try:
        for k in range(plan.shards):
            result = run_shard(plan, k)
            if result.status != "done":
                plan.control.cancel()
            results[k] = result
            if watch is not None:
                watch.poll(results)
    finally:
        if isinstance(control, FileControl):
            control.listener = None
    return [results[k] for k in range(plan.shards)]


def _lost(k: int, exc: BaseException) -> ShardResult:
    return ShardResult(k, "lost", error=f"its worker died: {type(exc).__name__}: {exc}")


#: Seconds between two looks of the driver at its shards (progress, stop requests).
POLL_SECONDS = 0.2


def _wait_local(pending: set[Any]) -> set[Any]:
    """The local futures done within `POLL_SECONDS` (at once when one completes)."""
    done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
    return set(done)


def _wait_dask(pending: set[Any]) -> set[Any]:
    """The Dask futures done within `POLL_SECONDS`, looked at every 20 ms (a Dask future
    has no wait of its own without the process's default client)."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        done = {future for future in pending if future.done()}
        if done or time.monotonic() >= deadline:
            return done
        time.sleep(0.02)


def _gather(
    plan: ShardPlan,
    futures: dict[Any, int],
    watch: Watch | None,
    wait_some: Callable[[set[Any]], set[Any]] = _wait_local,
) -> list[ShardResult]:
    """Results of `futures` as they complete, polling `watch` meanwhile; the first failure
    cancels the rest."""
    results: dict[int, ShardResult] = {}
    pending = set(futures)
    try:
        while pending:
            done = wait_some(pending)
            if not done:
                if watch is not None:
                    watch.poll(results)
                continue
            pending -= done
            for future in sorted(done, key=futures.__getitem__):
                results[futures[future]] = result = _outcome(future, futures[future])
                if result.status not in ("done", "stopped"):
                    plan.control.cancel()
        if watch is not None:
            watch.poll(results)
    except BaseException:
        plan.control.cancel()
        raise
    return [results[k] for k in range(plan.shards)]


def _outcome(future: Any, k: int) -> ShardResult:
    """The shard's result, or a lost shard when its worker died."""
    try:
        result: ShardResult = future.result()
    except Exception as exc:
        return _lost(k, exc)
    return result


def pickled(plan: ShardPlan) -> bytes:
    """`plan` as the bytes sent to worker processes: by cloudpickle when it is installed (it
    carries builders defined in a notebook or a script's ``__main__``), else by pickle."""
    try:
        import cloudpickle
    except ImportError:
        return pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
    return bytes(cloudpickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))


def run_pickled_shard(payload: bytes, k: int) -> ShardResult:
    """`run_shard` of a plan sent as `pickled` bytes (what a worker process runs)."""
    plan: ShardPlan = pickle.loads(payload)
    return run_shard(plan, k)


def _worker_started(driver: int, control: Any) -> None:
    """A worker process ignores SIGINT: a Ctrl-C at the terminal reaches the whole process
    group, and only the driver decides (it stops every shard through the run's control).
    A SIGTERM (``kill -TERM -PGID`` of systemd, docker, timeout: the workers get it too)
    stops its shard after the tick and the whole run with it, as the driver's own stop does
    (`dogesim.scale.worker.terminate`): the shard keeps its output and checkpoint.

    The worker also watches its driver (`watch_driver`): once the driver is gone it exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, terminate)
    watcher = threading.Thread(
        target=watch_driver, args=(driver, control), name="dogesim-driver", daemon=True
    )
    watcher.start()


#: Seconds between two looks of a worker at its driver's pid.
DRIVER_POLL_SECONDS = 0.1


def watch_driver(driver: int, control: Any) -> None:
    """Exit this worker process once the driver `driver` is gone (it was re-parented: a
    SIGKILL of the driver), after the shard running here, if any, has stopped after its tick
    and written its checkpoint (its `ChildControl` sees the driver gone too). Without this
    the worker would wait for its next task forever: the pipe of tasks stays open in its
    sibling workers, so no end of file ever comes.

    A SIGTERM to this worker while it runs no shard stops the whole run (as one to a
    running shard does), so the driver ends it with its pool."""
    while os.getppid() == driver:
        if terminated() and not control.stopping():
            with contextlib.suppress(OSError):  # the run has ended: its flags are gone
                control.stop()
        time.sleep(DRIVER_POLL_SECONDS)
    with worker_idle():
        os._exit(0)  # nothing is left to report to: no result can be sent


def start_method() -> str:
    """How worker processes start: ``fork`` on Linux while this process runs no other
    thread (a worker is then up in milliseconds, with the driver's imports: a spawned one
    pays its interpreter and imports, a tenth of a second or more on the critical path of
    every run); ``spawn`` elsewhere (a fork beside running threads can deadlock the child).

    Either way each shard seeds the global generators itself, so its stream is the same."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def run_processes(plan: ShardPlan, workers: int, watch: Watch | None = None) -> list[ShardResult]:
    """Run the shards in `workers` fresh processes (started as `start_method` says).

    The workers' control also stops their shards when this process dies (SIGKILL): a
    checkpointed run then keeps what its shards wrote, for a resume."""
    context = multiprocessing.get_context(start_method())
    control = plan.control
    if isinstance(control, FileControl):
        plan = replace(plan, control=ChildControl(control.directory, os.getpid()))
    payload = pickled(plan)
    with ProcessPoolExecutor(
        max_workers=min(workers, plan.shards),
        mp_context=context,
        initializer=_worker_started,
        initargs=(os.getpid(), plan.control),
    ) as pool:
        futures: dict[Future[ShardResult], int] = {
            pool.submit(run_pickled_shard, payload, k): k for k in range(plan.shards)
        }
        try:
            return _gather(plan, futures, watch)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def import_distributed() -> Any:
    """The `distributed` module, or a `RunError` naming the extra that installs it."""
    try:
        import distributed
    except ImportError as exc:
        raise RunError(
            "running shards on Dask needs the distributed package: pip install 'dogesim[dask]'"
        ) from exc
    return distributed


def dask_client(dask: Any) -> tuple[Any, bool]:
    """A `distributed.Client` for `dask` (an address like ``tcp://host:8786`` or a client),
    and whether it was opened here (and must be closed)."""
    distributed = import_distributed()
    if isinstance(dask, distributed.Client):
        return dask, False
    if not isinstance(dask, str):
        raise RunError(f"dask must be a scheduler address or a distributed.Client, got {dask!r}")
    try:
        return distributed.Client(dask, set_as_default=False, timeout=30), True
    except OSError as exc:
        raise RunError(f"cannot reach the Dask scheduler at {dask}: {exc}") from exc


def run_dask(plan: ShardPlan, client: Any, watch: Watch | None = None) -> list[ShardResult]:
    """Run the shards as tasks of `client`'s cluster, each in a child process of its worker
    (`run_shard_isolated`); never retried: a shard whose worker died is reported lost, not
    run twice."""
    from dogesim.scale.isolated import run_shard_isolated

    futures = {
        client.submit(
            run_shard_isolated,
            plan,
            k,
            key=f"dogesim-{plan.run_id}-shard-{k}",
            pure=False,
            retries=0,
        ): k
        for k in range(plan.shards)
    }
    try:
        return _gather(plan, futures, watch, _wait_dask)
    finally:
        client.cancel(list(futures))
