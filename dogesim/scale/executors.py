"""Executors: who runs the shards of a plan. Every one runs `run_shard`, nothing else.

- `run_inline(plan)`: the shards one after the other in this process (the reference).
- `run_processes(plan, workers)`: a `ProcessPoolExecutor` of `workers` spawned processes.
- `run_dask(plan, client)`: tasks on a Dask distributed cluster (each shard in a child
  process of its worker, see `dogesim.scale.isolated`).
- `dask_client(dask)`: a `distributed.Client` for an address (or the client given).

Each returns one `ShardResult` per shard, in shard order. When a shard fails, the others are
cancelled through the plan's `Control` (a running shard stops after its tick and closes its
sinks); a shard whose worker died comes back as ``status="lost"``.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

from dogesim.errors import RunError
from dogesim.scale.plan import ShardPlan
from dogesim.scale.worker import ShardResult, run_shard

__all__ = [
    "dask_client",
    "import_distributed",
    "pickled",
    "run_dask",
    "run_inline",
    "run_pickled_shard",
    "run_processes",
]


def run_inline(plan: ShardPlan) -> list[ShardResult]:
    """Run every shard in this process, in shard order."""
    results = []
    for k in range(plan.shards):
        result = run_shard(plan, k)
        if result.status != "done":
            plan.control.cancel()
        results.append(result)
    return results


def _lost(k: int, exc: BaseException) -> ShardResult:
    return ShardResult(k, "lost", error=f"its worker died: {type(exc).__name__}: {exc}")


def _gather(plan: ShardPlan, futures: dict[Any, int], done: Iterable[Any]) -> list[ShardResult]:
    """Results of `futures` as they complete; the first failure cancels the rest."""
    results: dict[int, ShardResult] = {}
    try:
        for future in done:
            k = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                result = _lost(k, exc)
            if result.status != "done":
                plan.control.cancel()
            results[k] = result
    except BaseException:
        plan.control.cancel()
        raise
    return [results[k] for k in range(plan.shards)]


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


def run_processes(plan: ShardPlan, workers: int) -> list[ShardResult]:
    """Run the shards in `workers` fresh processes (the spawn start method: nothing of this
    process's state is inherited, so every worker starts alike on any platform)."""
    context = multiprocessing.get_context("spawn")
    payload = pickled(plan)
    with ProcessPoolExecutor(max_workers=min(workers, plan.shards), mp_context=context) as pool:
        futures: dict[Future[ShardResult], int] = {
            pool.submit(run_pickled_shard, payload, k): k for k in range(plan.shards)
        }
        try:
            return _gather(plan, futures, as_completed(futures))
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


def run_dask(plan: ShardPlan, client: Any) -> list[ShardResult]:
    """Run the shards as tasks of `client`'s cluster, each in a child process of its worker
    (`run_shard_isolated`); never retried: a shard whose worker died is reported lost, not
    run twice."""
    from dogesim.scale.isolated import run_shard_isolated

    distributed = import_distributed()
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
        done = distributed.as_completed(list(futures), loop=client.loop)
        return _gather(plan, futures, done)
    finally:
        client.cancel(list(futures))
