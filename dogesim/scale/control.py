"""How the shards of one run coordinate: cancellation and run-once claims.

- `Control`: the protocol. ``cancelled()`` is polled by every shard between ticks (a shard
  that sees it stops after its tick, closes its sinks and reports what they confirmed);
  ``cancel()`` is called by the driver when one shard fails; ``claim(k)`` is True the first
  time shard `k` starts and False ever after, so a shard whose worker died is never run a
  second time by a scheduler that retries tasks (its events may be partly delivered);
  ``note_part(path)`` records a part file as it is opened and ``parts()`` lists them, so the
  driver removes the parts of a shard that died before it could report them.
- `FileControl`: flags as files in a directory: the in-process and local-process executors.
- `DaskControl`: flags as `distributed.Event` s on the scheduler: the Dask executor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Control", "DaskControl", "FileControl"]


class Control(Protocol):
    """What a shard and the driver share while a run is in progress."""

    def cancelled(self) -> bool:
        """True once the run has been cancelled."""

    def cancel(self) -> None:
        """Cancel the run: every shard stops after its current tick."""

    def claim(self, shard: int) -> bool:
        """True the first time `shard` starts, False on any later attempt."""

    def note_part(self, path: str) -> None:
        """Record that a shard opened the part file `path`."""

    def parts(self) -> list[str]:
        """Every part file recorded so far."""


class FileControl:
    """Flags as files in `directory` (on the machine, or a file system all workers share)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)

    def cancelled(self) -> bool:
        """True once `cancel` was called (by any process)."""
        return os.path.exists(os.path.join(self.directory, "cancel"))

    def cancel(self) -> None:
        """Create the cancel flag."""
        Path(self.directory, "cancel").touch()

    def claim(self, shard: int) -> bool:
        """Create the shard's claim file; False when it exists already."""
        try:
            fd = os.open(os.path.join(self.directory, f"claim-{shard}"), os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def note_part(self, path: str) -> None:
        """Append `path` to the run's list of part files (one short write: atomic)."""
        with open(os.path.join(self.directory, "parts"), "a", encoding="utf-8") as handle:
            handle.write(path + "\n")

    def parts(self) -> list[str]:
        """The recorded part files."""
        try:
            text = Path(self.directory, "parts").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return text.splitlines()


class DaskControl:
    """Flags as `distributed.Event` s named after the run, on the Dask scheduler.

    In a worker the events find the worker's client; the driver binds its own client with
    `bind`. Polls of `cancelled` are throttled (each is a round trip to the scheduler).
    """

    #: Seconds between two polls of the scheduler's cancel event.
    POLL_SECONDS = 0.25

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._client: Any = None
        self._checked = 0.0
        self._seen = False

    def __getstate__(self) -> dict[str, Any]:
        # A client does not travel: the worker side uses its own.
        return {"run_id": self.run_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run_id"])  # type: ignore[misc]

    def bind(self, client: Any) -> None:
        """Use `client` (the driver's) for the events."""
        self._client = client

    def _event(self, suffix: str) -> Any:
        from distributed import Event

        return Event(f"dogesim-{self.run_id}-{suffix}", client=self._client)

    def cancelled(self) -> bool:
        """True once `cancel` was called; asks the scheduler at most every `POLL_SECONDS`."""
        now = time.monotonic()
        if not self._seen and now - self._checked >= self.POLL_SECONDS:
            self._checked = now
            self._seen = bool(self._event("cancel").is_set())
        return self._seen

    def cancel(self) -> None:
        """Set the run's cancel event."""
        self._event("cancel").set()

    def claim(self, shard: int) -> bool:
        """Set the shard's claim event; False when it was set already (a retried task)."""
        event = self._event(f"claim-{shard}")
        if event.is_set():
            return False
        event.set()
        return True

    def _queue(self) -> Any:
        from distributed import Queue

        return Queue(f"dogesim-{self.run_id}-parts", client=self._client)

    def note_part(self, path: str) -> None:
        """Put `path` on the run's queue of part files."""
        self._queue().put(path)

    def parts(self) -> list[str]:
        """Drain the run's queue of part files."""
        queue = self._queue()
        count = int(queue.qsize())
        return [str(item) for item in queue.get(batch=count)] if count else []
