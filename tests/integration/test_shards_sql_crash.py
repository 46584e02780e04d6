"""A checkpointed sharded run into one PostgreSQL table, SIGKILLed with all its processes
mid-run and resumed: the table holds exactly the uninterrupted run's rows, none twice.

Each shard commits its rows only at its checkpoints, together with its own committed count
in ``dogesim_positions`` (`dogesim.sinks.db_positions`), so whatever moment the kill hits,
every shard's resume knows which of its checkpoints the table holds."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

from dogesim import Model  # noqa: E402
from dogesim.examples.banking import build_banking_model, event_row  # noqa: E402
from dogesim.shards import Shard, read_manifest, run_sharded  # noqa: E402
from tests.integration.services import db_url, libpq_db_url, unique_name  # noqa: E402
from tests.unit.shard_models import banking_run  # noqa: E402

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[2]


def _sql(statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_db_url(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else []


def banking_to_postgres(table: str, shard: Shard) -> Model:
    """The banking model into the PostgreSQL table `table` (created by the first shard)."""
    from dogesim.sinks.db import DbSinkFactory

    sink = DbSinkFactory(db_url()).create(table, event_row, 50, create_table=True)
    return build_banking_model([sink])


def sql_run(table: str, base: str | None = None, **changes: Any) -> Any:
    """The small banking run of `tests.unit.shard_models` into `table`, 2 shards."""
    if base is not None:
        changes.update(checkpoint=base, checkpoint_every=20)
    build = functools.partial(banking_to_postgres, table)
    return banking_run(build, 2, timestamp_start=0, **changes)


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two table names (the whole run's, the killed run's); dropped afterwards, with the
    positions the killed run's shards kept (named by its manifest's `positions`)."""
    names = tuple(unique_name("dogesim_shards").replace("-", "_") for _ in range(2))
    yield names  # type: ignore[misc]
    for name in names:
        _sql(f"DROP TABLE IF EXISTS {name}")
    for token in TOKENS:
        _sql(f"DELETE FROM dogesim_positions WHERE writer LIKE '{token}:%'")
    TOKENS.clear()


#: The positions names of the runs a test made (cleaned up by the fixture).
TOKENS: list[str] = []


DRIVER = """
import sys
from dogesim import LiveOptions
from tests.integration.test_shards_sql_crash import sql_run
from dogesim.shards import run_sharded

run = sql_run(sys.argv[1], sys.argv[2], live=LiveOptions(True, speed=6000.0))
run_sharded(run, workers=2, progress=lambda p: print(p.ticks, flush=True))
"""


def _rows(table: str) -> list[tuple[Any, ...]]:
    return sorted(_sql(f"SELECT * FROM {table}"))


@pytest.mark.timeout(300)
def test_a_sigkilled_sharded_run_into_postgres_resumes_without_duplicates(
    tables: tuple[str, str], tmp_path: Path
) -> None:
    """SIGKILL of the driver and both workers at once, after periodic checkpoints: the
    resume leaves exactly the uninterrupted run's rows (sorted: shards commit in any
    order), and its ledger acknowledges only the rows written after the checkpoints."""
    whole, killed = tables
    run_sharded(sql_run(whole))
    expected = _rows(whole)
    base = str(tmp_path / "killed.ckpt")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, killed, base],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers die with it
    )
    assert driver.stdout is not None
    for line in driver.stdout:
        if int(line) >= 150:  # both shards past several periodic checkpoints
            break
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=60)
    manifest = read_manifest(base)
    assert manifest is not None
    TOKENS.append(manifest["positions"])
    left = _rows(killed)
    assert 0 < len(left) < len(expected)
    result = run_sharded(dataclasses.replace(sql_run(killed, base), resume=True))
    assert _rows(killed) == expected
    assert [r.status for r in result.shard_results] == ["done", "done"]
    (ledger,) = result.ledgers
    assert ledger.acknowledged == len(expected) - len(left)
