"""The pieces of a sharded run; `dogesim.shards` is the public entry point.

- `plan`: what a sharded run is (`ShardedRun`), the resolved `ShardPlan` every shard gets,
  the per-shard context (`Shard`), seeds, shares and the default number of shards.
- `control`: how shards learn that the run is cancelled or stopped, report their progress,
  and how a shard refuses to run twice.
- `watch`: the driver's side while shards run: progress summed over them, stop requests.
- `parts`: per-shard part files and their deterministic merge into the file asked for.
- `worker`: `run_shard(plan, k) -> ShardResult`, the one function every executor runs.
- `locks`: the driver's lock of a checkpointed run and each shard's lock of its checkpoint.
- `executors`: in-process (the reference), local processes (forked when safe), Dask.
- `isolated`: how a Dask task runs its shard in a child process of its worker.
- `modelfiles`: sharded runs of model files.
"""
