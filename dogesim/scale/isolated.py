"""`run_shard` in a fresh child process: how a Dask task runs its shard.

- `run_shard_isolated(plan, k)`: claim shard `k`, run ``run_shard(plan, k)`` in the worker's
  child Python process (``python -m dogesim.scale.isolated``, started on first use and kept
  for the next shards), relay cancellation to it, return its result.
- `ChildControl` (from `dogesim.scale.control`): the child's `Control`, which also stops
  the shard when its parent (the Dask worker) is gone.

Why a child process. A Dask worker runs tasks in threads beside its event loop, and that loop
draws from the global `random` (Tornado's jittered periodic callbacks, retry back-offs) while
the shard runs; a doge-datagen callback drawing from the same global `random` would then see a
stream that depends on the worker's timing. A child process has nobody else drawing, so the
shard's stream is the same as in-process or in a local pool (the child runs its shards one
after the other, as the in-process executor does).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from typing import IO

from dogesim.scale.control import ChildControl, Control, FileControl
from dogesim.scale.parts import remove_parts
from dogesim.scale.plan import ShardPlan
from dogesim.scale.worker import ShardResult, preflight, run_shard

__all__ = ["ChildControl", "run_shard_isolated"]

#: Seconds between two looks at the child and the run's cancel flag.
POLL_SECONDS = 0.25


class _Child:
    """The worker's child process, started on first use and kept for the next shards (a
    fresh interpreter per shard would pay its imports every time).

    Protocol on its stdin/stdout: a length-prefixed pickle of ``(plan, k)`` in, of the
    `ShardResult` out. The child's own prints go to its stderr.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def get(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dogesim.scale.isolated"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        return self.process

    def forget(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


_CHILD = _Child()


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(struct.pack("<Q", len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    body = stream.read(size)
    return body if len(body) == size else None


def run_shard_isolated(plan: ShardPlan, k: int) -> ShardResult:
    """Run shard `k` of `plan` in the worker's child process; the parent keeps the run's
    `Control` and relays cancellation to the child."""
    control = plan.control
    refused = preflight(plan, k)
    if refused is not None:
        return refused
    import cloudpickle  # a dependency of distributed: it carries notebook-defined builders

    with _CHILD.lock, tempfile.TemporaryDirectory(prefix="dogesim-shard-") as directory:
        local = ChildControl(directory, os.getpid())
        payload = cloudpickle.dumps((replace(plan, control=local), k))
        child = _CHILD.get()
        assert child.stdin is not None and child.stdout is not None
        try:
            _send(child.stdin, payload)
        except OSError as exc:
            _CHILD.forget()
            return ShardResult(k, "lost", error=f"its process could not be reached: {exc}")
        forwarded = 0
        relayed = False
        reported: tuple[int, int] | None = None
        while not select.select([child.stdout], [], [], POLL_SECONDS)[0]:
            if not relayed and control.cancelled():
                relayed = True
                local.stop() if control.stopping() else local.cancel()
            forwarded = _forward_parts(local, control, forwarded)
            reported = _forward_progress(local, control, k, reported)
        answer = _receive(child.stdout)
        _forward_parts(local, control, forwarded)
        if answer is None:
            status = child.wait()
            _CHILD.forget()
            return ShardResult(k, "lost", error=f"its process ended with status {status}")
        result: ShardResult = pickle.loads(answer)
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


def _forward_progress(
    local: FileControl, control: Control, k: int, reported: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Tell the run's control the child's latest progress of shard `k`, if it changed."""
    latest = local.progress().get(k)
    if latest is not None and latest != reported:
        control.report(k, *latest)
        return latest
    return reported


def _main() -> None:
    """The child: run every ``(plan, k)`` read from stdin and answer with its result, until
    stdin ends (the worker closed it, or died)."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the shards' own prints must not mix with the answers
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    while (request := _receive(requests)) is not None:
        plan, k = pickle.loads(request)
        result = run_shard(plan, k)
        # (Run as __main__, this module's classes are not the unpickled control's: duck-type.)
        if os.getppid() != getattr(plan.control, "parent", os.getppid()):
            # Orphaned (the worker died): nobody merges these parts, so none may be left,
            # unless the run is checkpointed (a resume continues them).
            if not plan.run.checkpoint:
                remove_parts(result.parts)
            return
        _send(answers, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _main()
