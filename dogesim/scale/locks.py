"""The file locks of a checkpointed sharded run: exclusive `fcntl.flock` s, which the system
releases when their process ends, however it ends.

- `hold_run_lock`: the driver's lock of a whole run (``<checkpoint>.run.lock``): two drivers
  never run one checkpointed run at once.
- `hold_shard_lock`: a shard's lock of its checkpoint (``<shard checkpoint>.lock``): a resume
  never runs a shard beside an earlier run's worker that still writes it.
- `run_lock_path`: where the run lock is.

Both wait, for a bounded time, for workers of a driver that was killed: they stop after
their tick, write their checkpoint and exit (`RUN_LOCK_WAIT_S`, `SHARD_LOCK_WAIT_S`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dogesim.errors import ModelError, RunError

__all__ = [
    "RUN_LOCK_WAIT_S",
    "SHARD_LOCK_WAIT_S",
    "hold_run_lock",
    "hold_shard_lock",
    "run_lock_path",
]

#: Seconds a run waits for its checkpoint's run lock while only workers of a driver that
#: died hold it (they stop after their tick, checkpoint and exit).
RUN_LOCK_WAIT_S = 120.0

#: Seconds a shard waits for the lock of its checkpoint (held by an orphaned earlier run).
SHARD_LOCK_WAIT_S = 120.0

#: Seconds between two tries of a lock another process holds.
_RETRY_S = 0.05


def _take(handle: IO[Any], wait_s: float, may_wait: Callable[[], bool] = lambda: True) -> bool:
    """Take an exclusive lock of the open file `handle`, trying again every `_RETRY_S` for up
    to `wait_s` seconds while `may_wait()`; False when it was not taken."""
    import fcntl

    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline or not may_wait():
                return False
            time.sleep(_RETRY_S)


@contextlib.contextmanager
def hold_shard_lock(checkpoint: str | None, k: int) -> Iterator[None]:
    """Hold ``<checkpoint>.lock`` while shard `k` runs (nothing without a checkpoint).

    Raises:
        RunError: another process held it for over `SHARD_LOCK_WAIT_S`.
    """
    if checkpoint is None:
        yield
        return
    import fcntl

    Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{checkpoint}.lock", "a+b") as handle:
        if not _take(handle, SHARD_LOCK_WAIT_S):
            raise RunError(
                f"shard {k}: {checkpoint}.lock is held by another process for over "
                f"{SHARD_LOCK_WAIT_S:.0f} s (an earlier run of this shard still running?)"
            )
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def hold_run_lock(checkpoint: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``<checkpoint>.run.lock`` for the whole run, its holder's pid written in it.

    A run that leaves no manifest (it finished, or was refused) removes it while it holds
    it: a run that locked the file just removed tries again with the path's new file.

    Raises:
        ModelError: another run holds it (naming its pid), or the workers of a run whose
            driver died still hold it after `RUN_LOCK_WAIT_S`; nothing was changed.
    """
    path = run_lock_path(checkpoint)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    while True:
        with open(path, "a+", encoding="ascii") as handle:
            _take_run_lock(handle, os.fspath(checkpoint))
            if not _same_file(handle, path):
                continue  # removed by the run that held it, as it finished
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield  # the flock is released as the file closes (or this process ends)
            finally:
                _remove_if_nothing_left(checkpoint, path)
            return


def run_lock_path(checkpoint: str | os.PathLike[str]) -> str:
    """The run lock file of the sharded run checkpointed at `checkpoint`."""
    return f"{os.fspath(checkpoint)}.run.lock"


def _take_run_lock(handle: IO[str], checkpoint: str) -> None:
    """Lock `handle` (the run lock file) at once; while the driver that wrote its pid is
    gone (SIGKILLed: its workers, which inherited the lock, are still finishing their
    ticks), wait for them up to `RUN_LOCK_WAIT_S`."""
    if _take(handle, RUN_LOCK_WAIT_S, lambda: not _running(_holder(handle))):
        return
    holder = _holder(handle)
    who = f"pid {holder}" if _running(holder) else f"workers of pid {holder or '?'}"
    raise ModelError(
        f"{checkpoint} is in use by another run ({who}); wait for it to end, or stop it, "
        "before running or resuming this checkpoint (nothing was changed)"
    )


def _holder(handle: IO[str]) -> str:
    """The pid the run lock's holder wrote in it (text, maybe empty)."""
    handle.seek(0)
    return handle.read().strip()


def _running(pid: str) -> bool:
    """True when the process `pid` (text) exists."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(handle: IO[str], path: str) -> bool:
    """True when `path` still names the open file `handle`."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _remove_if_nothing_left(checkpoint: str | os.PathLike[str], path: str) -> None:
    """Remove the run lock file `path` (still held) when no manifest is at `checkpoint`:
    the run finished, or was refused before it wrote one."""
    if not os.path.exists(checkpoint):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
