"""Model builders and sinks the sharded-run tests share (unit and Dask integration).

They are module-level, so spawned processes and Dask workers import them by name; bind
arguments with `functools.partial`.

- `banking_to_jsonl(path, shard)`: the banking model into this shard's part of `path`.
- `FaultySink`: at the n-th event SIGKILLs its process (or its parent, the Dask worker), or
  raises KeyboardInterrupt.
- `faulty_in_shard(bad, path, shard, fault=...)`: banking with a `FaultySink` in shard `bad`.
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


class FaultySink(CountingSink):
    """Counts events and, at the `after`-th, brings about `fault`: ``"kill"`` SIGKILLs its
    process, ``"kill-parent"`` its parent (the Dask worker that started the shard's process),
    ``"interrupt"`` raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, after: int, fault: str) -> None:
        super().__init__("faulty")
        self.after = after
        self.fault = fault

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        super().collect(timestamp, subject, transition)
        if self.count != self.after:
            return
        if self.fault == "interrupt":
            raise KeyboardInterrupt
        os.kill(os.getppid() if self.fault == "kill-parent" else os.getpid(), signal.SIGKILL)


def faulty_in_shard(bad: int, path: str, shard: Shard, *, fault: str = "kill") -> Model:
    """Banking into a file; in shard `bad` a `FaultySink` strikes after 50 events."""
    sinks: list[Any] = [shard.jsonl(path, event_record)]
    if shard.index == bad:
        sinks.append(FaultySink(50, fault))
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
