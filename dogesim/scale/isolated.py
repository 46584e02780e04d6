"""`run_shard` in a fresh child process: how a Dask task runs its shard.

- `run_shard_isolated(plan, k)`: claim shard `k`, run ``run_shard(plan, k)`` in a new Python
  process (``python -m dogesim.scale.isolated``), relay cancellation to it, return its result.
- `ChildControl`: the child's `Control`: a `FileControl` that also cancels the shard when its
  parent (the Dask worker) is gone.

Why a child process. A Dask worker runs tasks in threads beside its event loop, and that loop
draws from the global `random` (Tornado's jittered periodic callbacks, retry back-offs) while
the shard runs; a doge-datagen callback drawing from the same global `random` would then see a
stream that depends on the worker's timing. A child process has nobody else drawing, so the
shard's stream is the same as in-process or in a local pool. Shards on a multi-threaded worker
run in parallel too.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from dogesim.scale.control import FileControl
from dogesim.scale.parts import remove_parts
from dogesim.scale.plan import ShardPlan
from dogesim.scale.worker import ShardResult, preflight, run_shard

__all__ = ["ChildControl", "run_shard_isolated"]

#: Seconds between two looks at the child and the run's cancel flag.
POLL_SECONDS = 0.25


class ChildControl(FileControl):
    """Flags in `directory`, set by the parent; cancelled also once the parent has died."""

    def __init__(self, directory: str, parent: int) -> None:
        super().__init__(directory)
        self.parent = parent

    def cancelled(self) -> bool:
        """True when the parent cancelled, or died (this process was re-parented)."""
        return os.getppid() != self.parent or super().cancelled()


def run_shard_isolated(plan: ShardPlan, k: int) -> ShardResult:
    """Run shard `k` of `plan` in a child process; the parent keeps the run's `Control`."""
    control = plan.control
    refused = preflight(plan, k)
    if refused is not None:
        return refused
    import cloudpickle  # a dependency of distributed: it carries notebook-defined builders

    with tempfile.TemporaryDirectory(prefix="dogesim-shard-") as directory:
        local = ChildControl(directory, os.getpid())
        payload = cloudpickle.dumps((replace(plan, control=local), k))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        child = subprocess.Popen(
            [sys.executable, "-m", "dogesim.scale.isolated", directory],
            stdin=subprocess.PIPE,
            env=env,
        )
        assert child.stdin is not None
        with child.stdin:
            child.stdin.write(payload)
        forwarded = 0
        while True:
            try:
                child.wait(POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if control.cancelled():
                local.cancel()
            forwarded = _forward_parts(local, control, forwarded)
        _forward_parts(local, control, forwarded)
        result_path = Path(directory, "result")
        if child.returncode != 0 or not result_path.exists():
            return ShardResult(k, "lost", error=f"its process ended with status {child.returncode}")
        result: ShardResult = pickle.loads(result_path.read_bytes())
        result.where = f"{result.where} (worker {os.getpid()})"
        return result


def _forward_parts(local: FileControl, control: object, forwarded: int) -> int:
    """Tell the run's control about part files the child opened since the last call."""
    parts = local.parts()
    note = getattr(control, "note_part", None)
    for path in parts[forwarded:]:
        if note is not None:
            note(path)
    return len(parts)


def _main() -> None:
    """The child: read ``(plan, k)`` from stdin, run the shard, write its result."""
    directory = sys.argv[1]
    plan, k = pickle.load(sys.stdin.buffer)
    result = run_shard(plan, k)
    # (Run as __main__, this module's classes are not the unpickled control's: duck-type.)
    if os.getppid() != getattr(plan.control, "parent", os.getppid()):
        # Orphaned (the worker died): nobody will merge these parts, so none may be left.
        remove_parts(result.parts)
    temporary = Path(directory, "result.tmp")
    temporary.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(temporary, Path(directory, "result"))


if __name__ == "__main__":
    _main()
