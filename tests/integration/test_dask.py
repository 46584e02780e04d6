"""Sharded runs on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes
started on 127.0.0.1 by this module and stopped at its end.

The model builders live in `tests.unit.shard_models`: the workers import them by name (they
run with the project on their PYTHONPATH).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dogesim import LiveOptions, SinkError
from dogesim.shards import Progress, run_sharded

distributed = pytest.importorskip("distributed")

from tests.integration.dask_cluster import DaskCluster, start_cluster  # noqa: E402
from tests.unit.shard_models import banking_run, banking_to_jsonl, faulty_in_shard  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two one-thread workers on 127.0.0.1, stopped after the module."""
    running = start_cluster(2, tmp_path_factory.mktemp("dask"), str(ROOT))
    try:
        yield running
    finally:
        running.stop()


def test_dask_cluster_writes_the_bytes_of_the_in_process_run(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """The merged JSONL from the cluster (by address and by Client) equals the in-process
    run's, byte for byte, and the result counts both workers."""
    reference = tmp_path / "inline.jsonl"
    run_sharded(banking_run(functools.partial(banking_to_jsonl, str(reference)), 4))
    by_address = tmp_path / "address.jsonl"
    result = run_sharded(
        banking_run(functools.partial(banking_to_jsonl, str(by_address)), 4), dask=cluster.address
    )
    assert result.executor == "dask" and result.workers == 2 and result.shards == 4
    assert by_address.read_bytes() == reference.read_bytes()
    assert (
        result.ledgers[0].acknowledged
        == result.events
        == len(reference.read_bytes().split(b"\n")) - 1
    )
    workers = {r.where.split("(worker ")[1] for r in result.shard_results}
    assert len(workers) == 2  # both workers ran shards
    by_client = tmp_path / "client.jsonl"
    with distributed.Client(cluster.address, set_as_default=False) as client:
        run_sharded(
            banking_run(functools.partial(banking_to_jsonl, str(by_client)), 4), dask=client
        )
        assert client.status == "running"  # a client given is left open
    assert by_client.read_bytes() == reference.read_bytes()


def test_a_killed_dask_worker_fails_the_run_loudly(cluster: DaskCluster, tmp_path: Path) -> None:
    """Shard 1's worker is SIGKILLed mid-run: the shard is not run again (its events may be
    partly delivered), the run fails with SinkError listing every shard, no merged file."""
    out = tmp_path / "killed.jsonl"
    build = functools.partial(faulty_in_shard, 1, str(out), fault="kill-parent")
    try:
        with pytest.raises(SinkError) as caught:
            run_sharded(banking_run(build, 4), dask=cluster.address)
        message = str(caught.value)
        assert "shard 1 lost" in message
        assert "nothing of it is confirmed delivered" in message
        assert not any(ledger.sink.endswith("[shard 1]") for ledger in caught.value.ledgers)
        assert all(ledger.acknowledged == 0 for ledger in caught.value.ledgers)
        # The orphaned shard process stops at its next tick and removes its own part.
        for _ in range(300):
            if not list(tmp_path.iterdir()):
                break
            time.sleep(0.1)
        assert list(tmp_path.iterdir()) == []
    finally:
        cluster.wait_for_workers(2)  # the nanny restarts the killed worker


def test_dask_progress_and_a_stop_resumed_on_the_cluster(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """On the cluster: the last progress report holds the run's events; a checkpointed,
    live-paced run stopped at its first report keeps its parts, and its resume on the
    cluster merges the in-process run's bytes."""
    reference = tmp_path / "inline.jsonl"
    run_sharded(banking_run(functools.partial(banking_to_jsonl, str(reference)), 4))
    seen: list[Progress] = []
    counted = tmp_path / "counted.jsonl"
    run = banking_run(functools.partial(banking_to_jsonl, str(counted)), 4)
    result = run_sharded(run, dask=cluster.address, progress=seen.append)
    assert (seen[-1].events, seen[-1].finished) == (result.events, 4)
    out = tmp_path / "stopped.jsonl"
    run = banking_run(
        functools.partial(banking_to_jsonl, str(out)), 4, checkpoint=str(tmp_path / "ck")
    )
    stop = threading.Event()

    def stop_at_first_tick(progress: Progress) -> None:
        if progress.ticks > 0:
            stop.set()

    paced = dataclasses.replace(run, live=LiveOptions(True, speed=6000.0), timestamp_start=0)
    first = run_sharded(paced, dask=cluster.address, progress=stop_at_first_tick, stop=stop)
    assert first.stopped and first.parts_kept and not out.exists()
    run_sharded(dataclasses.replace(run, resume=True, timestamp_start=0), dask=cluster.address)
    assert out.read_bytes() == reference.read_bytes()
