"""How the shards of one run coordinate: cancellation, stop requests, progress, claims.

- `Control`: the protocol. ``cancelled()`` is polled by every shard between ticks (a shard
  that sees it stops after its tick, closes its sinks and reports what they confirmed);
  ``cancel()`` is called by the driver when one shard fails; ``stop()`` when the driver is
  asked to stop (SIGINT/SIGTERM): every shard stops after its tick as for a cancel, but it
  keeps its output and writes its checkpoint (``stopping()`` says which it is);
  ``report(k, ticks, events)`` is a shard's progress and ``progress()`` every shard's
  last report, ``{k: (ticks, events)}`` (one progress bar for the whole run); ``claim(k)``
  is True the first time shard `k` starts and False ever after, so a shard whose worker
  died is never run a second time by a scheduler that retries tasks (its events may be
  partly delivered); ``claim_output(identity)`` is True for the first sink that writes the
  plain file `identity` and False for any other (two shards writing over one file);
  ``note_part(path)`` records a part file as it is opened and ``parts()`` lists them, so the
  driver removes the parts of a shard that died before it could report them.
- `FileControl`: flags as files in a directory: the in-process and local-process executors.
- `ChildControl`: a `FileControl` of a child process that also stops when its parent dies.
- `DaskControl`: flags as `distributed.Event` s, progress as `distributed.Variable` s on the
  scheduler: the Dask executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ChildControl", "Control", "DaskControl", "FileControl"]


def _output_key(identity: str) -> str:
    """The claim name of an output (a file name, whatever characters its path holds)."""
    return "output-" + hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class Control(Protocol):
    """What a shard and the driver share while a run is in progress."""

    def cancelled(self) -> bool:
        """True once the run has been cancelled."""

    def cancel(self) -> None:
        """Cancel the run: every shard stops after its current tick."""

    def stop(self) -> None:
        """Ask every shard to stop after its current tick, keeping what it wrote."""

    def stopping(self) -> bool:
        """True once `stop` was called (a cancel after it is still a stop)."""

    def report(self, shard: int, ticks: int, events: int) -> None:
        """Record `shard`'s progress: `ticks` done, `events` so far."""

    def progress(self) -> dict[int, tuple[int, int]]:
        """Per shard, its last reported ``(ticks, events)``."""

    def claim(self, shard: int) -> bool:
        """True the first time `shard` starts, False on any later attempt."""

    def claim_output(self, identity: str) -> bool:
        """True the first time a shard's sink says it writes the file `identity` (a sink's
        ``output_identity()``), False for any later sink: two writers of one plain file."""

    def note_part(self, path: str) -> None:
        """Record that a shard opened the part file `path`."""

    def parts(self) -> list[str]:
        """Every part file recorded so far."""


class FileControl:
    """Flags as files in `directory` (on the machine, or a file system all workers share)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        #: Called after every report made in this process (the in-process executor's
        #: driver watches its shards this way); never sent to other processes.
        self.listener: Callable[[], None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "listener": None}

    def cancelled(self) -> bool:
        """True once `cancel` was called (by any process)."""
        return os.path.exists(os.path.join(self.directory, "cancel"))

    def cancel(self) -> None:
        """Create the cancel flag."""
        Path(self.directory, "cancel").touch()

    def stop(self) -> None:
        """Create the stop flag, then the cancel flag (which the shards poll)."""
        Path(self.directory, "stop").touch()
        self.cancel()

    def stopping(self) -> bool:
        """True once `stop` was called (by any process)."""
        return os.path.exists(os.path.join(self.directory, "stop"))

    def report(self, shard: int, ticks: int, events: int) -> None:
        """Write the shard's progress file (renamed into place: a reader never sees half)."""
        path = os.path.join(self.directory, f"progress-{shard}")
        with open(f"{path}.new", "w", encoding="ascii") as handle:
            handle.write(f"{ticks} {events}")
        os.replace(f"{path}.new", path)
        if self.listener is not None:
            self.listener()

    def progress(self) -> dict[int, tuple[int, int]]:
        """Every shard's progress file."""
        found: dict[int, tuple[int, int]] = {}
        for name in os.listdir(self.directory):
            if name.startswith("progress-") and name[9:].isdigit():
                with contextlib.suppress(OSError, ValueError):
                    text = Path(self.directory, name).read_text(encoding="ascii")
                    ticks, events = text.split()
                    found[int(name[9:])] = (int(ticks), int(events))
        return found

    def claim(self, shard: int) -> bool:
        """Create the shard's claim file; False when it exists already."""
        return self._create_once(f"claim-{shard}")

    def claim_output(self, identity: str) -> bool:
        """Create the output's claim file; False when it exists already."""
        return self._create_once(_output_key(identity))

    def _create_once(self, name: str) -> bool:
        """Create the file `name` in the directory; False when it exists (atomic)."""
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_CREAT | os.O_EXCL)
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


class ChildControl(FileControl):
    """Flags in `directory`, set by the parent process `parent`; once the parent has died
    (this process was re-parented) the run counts as stopped: the shard stops after its
    tick, keeps its output and writes its checkpoint, so a resume continues it."""

    def __init__(self, directory: str, parent: int) -> None:
        super().__init__(directory)
        self.parent = parent

    def orphaned(self) -> bool:
        """True once the parent is gone."""
        return os.getppid() != self.parent

    def cancelled(self) -> bool:
        """True when the parent cancelled or stopped the run, or died."""
        return self.orphaned() or super().cancelled()

    def stopping(self) -> bool:
        """True when the parent stopped the run, or died."""
        return self.orphaned() or super().stopping()


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
        self.shards = 0
        self._checked = 0.0
        self._seen = False

    def __getstate__(self) -> dict[str, Any]:
        # A client does not travel: the worker side uses its own.
        return {"run_id": self.run_id, "shards": self.shards}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run_id"])  # type: ignore[misc]
        self.shards = int(state.get("shards", 0))

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

    def stop(self) -> None:
        """Set the run's stop event, then its cancel event."""
        self._event("stop").set()
        self.cancel()

    def stopping(self) -> bool:
        """True once `stop` was called (asked of the scheduler: a shard asks once it stops)."""
        return bool(self._event("stop").is_set())

    def _progress(self, shard: int) -> Any:
        from distributed import Variable

        return Variable(f"dogesim-{self.run_id}-progress-{shard}", client=self._client)

    def report(self, shard: int, ticks: int, events: int) -> None:
        """Set the shard's progress variable on the scheduler."""
        self._progress(shard).set([ticks, events])

    def progress(self) -> dict[int, tuple[int, int]]:
        """Every shard's progress variable (one round trip per shard: the driver polls it a
        few times a second, not per tick). Needs `shards` known: see `track`."""
        found: dict[int, tuple[int, int]] = {}
        for shard in range(self.shards):
            with contextlib.suppress(Exception):  # not set yet: a timeout
                ticks, events = self._progress(shard).get(timeout=0.05)
                found[shard] = (int(ticks), int(events))
        return found

    def track(self, shards: int) -> None:
        """How many shards `progress` asks about."""
        self.shards = shards

    def claim(self, shard: int) -> bool:
        """Set the shard's claim event; False when it was set already (a retried task)."""
        return self._set_once(f"claim-{shard}")

    def claim_output(self, identity: str) -> bool:
        """Set the output's claim event; False when it was set already."""
        return self._set_once(_output_key(identity))

    def _set_once(self, suffix: str) -> bool:
        event = self._event(suffix)
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
