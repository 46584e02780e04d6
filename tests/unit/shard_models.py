"""Model builders and sinks the sharded-run tests share (unit and Dask integration).

They are module-level, so spawned processes and Dask workers import them by name; bind
arguments with `functools.partial`.

- `banking_to_jsonl(path, shard)`: the banking model into this shard's part of `path`.
- `KillingSink`: SIGKILLs its process (or its parent, the Dask worker) at the n-th event.
- `killed_in_shard(bad, path, shard, parent=False)`: banking with a `KillingSink` in shard `bad`.
- `banking_run(build, shards, **changes)`: a small seeded banking `ShardedRun` of `build`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from dogesim import CountingSink, Model
from dogesim.examples.banking import UserFactory, build_banking_model, event_record
from dogesim.shards import Shard, ShardedRun


def banking_to_jsonl(path: str, shard: Shard) -> Model:
    """The banking model, every event into this shard's part of `path`."""
    return build_banking_model([shard.jsonl(path, event_record)])


class KillingSink(CountingSink):
    """Counts events and SIGKILLs a process at the `after`-th: its own, or with `parent` its
    parent's (the Dask worker that started the shard's process). A worker dying mid-run."""

    def __init__(self, after: int, *, parent: bool = False) -> None:
        super().__init__("killing")
        self.after = after
        self.parent = parent

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        super().collect(timestamp, subject, transition)
        if self.count == self.after:
            os.kill(os.getppid() if self.parent else os.getpid(), signal.SIGKILL)


def killed_in_shard(bad: int, path: str, shard: Shard, *, parent: bool = False) -> Model:
    """Banking into a file; in shard `bad` a process is killed after 50 events."""
    sinks: list[Any] = [shard.jsonl(path, event_record)]
    if shard.index == bad:
        sinks.append(KillingSink(50, parent=parent))
    return build_banking_model(sinks)


def banking_run(build: Any, shards: int, **changes: Any) -> ShardedRun:
    """A small seeded banking run of `build` (README callbacks on, global `random` used)."""
    settings: dict[str, Any] = {
        "subjects": 3000,
        "subject_factory": UserFactory,
        "ticks": 600,
        "tick_ms": 60_000,
        "seed": 11,
        "shards": shards,
    }
    settings.update(changes)
    return ShardedRun(build, **settings)
