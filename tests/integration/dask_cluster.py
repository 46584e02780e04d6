"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker`` processes.

- `free_port()`: a TCP port on 127.0.0.1 nobody listens on now.
- `DaskCluster`: the scheduler's address and the processes; `stop()` ends them (by their
  process groups, which this module started) and `wait_for_workers(n)` waits until `n`
  workers are connected (a killed worker's nanny starts a new one).
- `start_cluster(workers, directory, pythonpath)`: start the scheduler and `workers` workers
  of one thread each, with the distributed package's own command-line tools, on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: The ``dask`` command of the interpreter running the tests.
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    """A port on 127.0.0.1 free at the time of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DaskCluster:
    """A running scheduler and its workers (processes started by `start_cluster`)."""

    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def wait_for_workers(self, count: int, timeout: float = 90.0) -> None:
        """Wait until `count` workers are connected to the scheduler."""
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def stop(self) -> None:
        """Stop the workers, then the scheduler: SIGTERM, then SIGKILL after 20 s."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in self.logs:
            log.close()


def start_cluster(workers: int, directory: Path, pythonpath: str) -> DaskCluster:
    """Start ``dask scheduler`` and `workers` ``dask worker`` processes on 127.0.0.1.

    Args:
        workers: how many workers (one thread each, with a nanny).
        directory: where logs and the workers' scratch space go.
        pythonpath: what the workers import the project (and the tests) from.
    """
    port = free_port()
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}")
    env = {**os.environ, "PYTHONPATH": pythonpath}
    commands = [
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        *(
            [
                DASK,
                "worker",
                cluster.address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--name",
                f"worker-{i}",
                "--no-dashboard",
                "--memory-limit",
                "0",
                "--local-directory",
                str(directory / f"worker-{i}"),
            ]
            for i in range(workers)
        ),
    ]
    try:
        for i, command in enumerate(commands):
            log = open(directory / f"dask-{i}.log", "wb")  # noqa: SIM115 - closed by stop()
            cluster.logs.append(log)
            cluster.processes.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=pythonpath,
                    start_new_session=True,
                )
            )
        cluster.wait_for_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster
