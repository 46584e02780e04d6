"""Sharded runs of model files: what the driver reads from the file, what each shard loads.

- `load_run(run)`: the driver's reading of a `ShardedRun` of a model file: the loaded
  `ModelSpec` (for the seed, population and checks) with the run's overrides.
- `merged_outputs(spec, shards)`: per file sink the absolute path its parts merge into;
  refuses what cannot be sharded (shared resources, standard output) for more than 1 shard.
- `load_for_shard(plan, shard)`: shard `shard`'s copy of the spec: its subjects, its seed for
  the subject factory, its share of arrivals.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from dogesim.errors import ModelError
from dogesim.scale.plan import (
    Shard,
    ShardedRun,
    ShardPlan,
    refuse_shared_resources,
    shard_subjects,
    share_arrivals,
)

__all__ = ["load_for_shard", "load_run", "merged_outputs"]

#: Sink types whose output is a file merged across shards.
FILE_TYPES = ("jsonl", "csv", "parquet")
#: Sink types that cannot be split across processes.
_UNSHARDABLE = ("printing", "stdout")


def load_run(run: ShardedRun) -> Any:
    """The model file of `run`, loaded with the run's overrides (a `ModelSpec`)."""
    from dogesim.modelfile import load_model_file

    assert run.model_file is not None
    spec = load_model_file(run.model_file, ticks=run.ticks, environ=run.environ)
    changes: dict[str, Any] = {}
    for name in ("tick_ms", "timestamp_start", "arrivals", "arrivals_profile", "churn"):
        value = getattr(run, name)
        if value is not None:
            changes[name] = value
    if run.jitter is not None:
        changes["jitter"] = run.jitter
    if run.subjects is not None:
        spec.subjects.count = run.subjects
    return replace(spec, **changes) if changes else spec


def merged_outputs(spec: Any, shards: int) -> dict[str, str]:
    """Per file sink of `spec`, the absolute path its shards' parts merge into."""
    where = spec.path or spec.name
    refuse_shared_resources(spec.resources, shards, where)
    outputs: dict[str, str] = {}
    for name in spec.used_sinks():
        sink = spec.sinks[name]
        path = sink.settings.get("path")
        to_stdout = sink.type in _UNSHARDABLE or (sink.type in FILE_TYPES and path == "-")
        if to_stdout and shards > 1:
            raise ModelError(
                f"{where}: sinks.{name} writes to standard output, where {shards} shards "
                "would interleave their lines; give it a file path (type: jsonl)"
            )
        if sink.type in FILE_TYPES and path != "-":
            outputs[name] = os.path.abspath(os.fspath(path))
        elif path is not None and shards > 1:
            # A file sink this module cannot merge (a third party's type): every shard would
            # write the one file over the others' and report its events delivered.
            raise ModelError(
                f"{where}: sinks.{name} (type {sink.type}) writes the file {path}, which "
                f"{shards} shards would each write over; sharded runs merge the types "
                f"{', '.join(FILE_TYPES)}: use one of them, or run with shards=1"
            )
    return outputs


def load_for_shard(plan: ShardPlan, shard: Shard) -> Any:
    """Shard `shard`'s `ModelSpec`: its population, subject factory and share of arrivals."""
    spec = load_run(plan.run)
    spec.subjects.count = shard.subjects
    # The shard's seed is its run's seed (a resumed shard's checkpoint is checked against it).
    spec = replace(spec, arrivals=share_arrivals(spec.arrivals, plan.shards), seed=shard.seed)
    live = plan.run.live
    if live is not None and live.enabled:
        # Every shard stamps from the driver's clock start, not from its own "now".
        spec = replace(spec, live=replace(spec.live, enabled=True, timestamps="start"))
    make = spec.subject_factory
    renumber = plan.run.renumber

    def subject_factory(seed: int) -> Any:
        return shard_subjects(make(seed), shard, renumber)

    # The file's factory, made with the shard's seed, renumbered to global ids: the spec's
    # `simulation` asks `subject_factory(seed)` for it (an attribute of this copy only).
    setattr(spec, "subject_factory", subject_factory)  # noqa: B010 - a method is replaced
    return spec
