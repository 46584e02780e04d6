"""The status of a sharded run tells done shards from failed and stopped ones: the
`Progress` counts them, and the CLI's status line and tqdm postfix say
``1/2 shards done, 1 failed``, never ``2/2 shards done`` for a run whose shards failed."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.cli.sharded import _ShardFeedback
from dogesim.errors import SinkConfigError
from dogesim.examples.banking import build_banking_model, event_record
from dogesim.model import Model
from dogesim.shards import Progress, Shard, run_sharded
from tests.unit.shard_models import banking_run
from tests.unit.test_cli_scale import MODEL


def missing_table_model(tmp_path: Path) -> Path:
    """test_cli_scale's shop model with its one sink a SQLite table that does not exist."""
    text = MODEL.format(shards="", log="unused.jsonl")
    jsonl = "log: {type: jsonl, path: 'unused.jsonl'}"
    assert jsonl in text
    table = f"log: {{type: db, url: 'sqlite:///{tmp_path / 'e.db'}', table: missing}}"
    path = tmp_path / "shop.yaml"
    path.write_text(text.replace(jsonl, table), encoding="utf-8")
    return path


def progress(*, finished: int, failed: int = 0, stopped: int = 0) -> Progress:
    """A 2-shard run's progress half-way through its 240 ticks."""
    return Progress(
        ticks=120,
        events=3476,
        finished=finished,
        shards=2,
        total_ticks=240,
        failed=failed,
        stopped=stopped,
    )


def broken_in_shard_one(path: str, shard: Shard) -> Model:
    """Banking into a file, except that shard 1's sink cannot be set up."""
    if shard.index == 1:
        raise SinkConfigError("shard 1's sink cannot be set up (test)")
    return build_banking_model([shard.jsonl(path, event_record)])


def test_progress_counts_failed_shards_apart_from_done_ones(tmp_path: Path) -> None:
    """Shard 0 runs, shard 1 fails at start: the last `Progress` has 2 finished, 1 failed,
    0 stopped, so 1 done."""
    seen: list[Progress] = []
    build = functools.partial(broken_in_shard_one, str(tmp_path / "out.jsonl"))
    with pytest.raises(SinkConfigError, match="shard 1"):
        run_sharded(banking_run(build, 2, subjects=200, ticks=50), progress=seen.append)
    last = seen[-1]
    assert (last.finished, last.failed, last.stopped, last.done) == (2, 1, 0, 1)


@pytest.mark.parametrize(
    ("finished", "failed", "stopped", "expected"),
    [
        (2, 0, 0, "2/2 shards done"),
        (1, 0, 0, "1/2 shards done"),
        (2, 1, 0, "1/2 shards done, 1 failed"),
        (2, 2, 0, "0/2 shards done, 2 failed"),
        (2, 1, 1, "0/2 shards done, 1 failed, 1 stopped"),
        (2, 0, 2, "0/2 shards done, 2 stopped"),
    ],
)
def test_the_plain_line_says_done_failed_and_stopped(
    finished: int, failed: int, stopped: int, expected: str
) -> None:
    """Off a terminal the line counts only done shards as done and names the failed and
    stopped ones when there are any."""
    feedback = _ShardFeedback(io.StringIO(), quiet=False, tty=False)
    line = feedback.line(progress(finished=finished, failed=failed, stopped=stopped))
    assert line.startswith(f"{expected}, tick 120/240 (50%) over the shards, 3,476 events ("), line


def test_the_bar_postfix_says_done_and_failed() -> None:
    """On a terminal the tqdm postfix is ``1/2 shards done, 1 failed, 3,476 events``."""
    feedback = _ShardFeedback(io.StringIO(), quiet=False, tty=True)
    try:
        feedback.update(progress(finished=2, failed=1))
        assert feedback.bar.postfix == "1/2 shards done, 1 failed, 3,476 events"
    finally:
        feedback.close()


def test_a_sink_no_shard_can_set_up_is_not_reported_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2-shard run in this process into a table that does not exist exits 2; its last
    status line says shard 0 failed and shard 1 (cancelled) stopped, none done (it said
    ``2/2 shards done``)."""
    model = missing_table_model(tmp_path)
    assert main(["run", str(model), "--shards", "2"]) == 2
    status, error = capsys.readouterr().err.strip().splitlines()[-2:]
    assert re.fullmatch(
        r"dogesim: 0/2 shards done, 1 failed, 1 stopped, tick 0/240 \(0%\) over the shards, "
        r"0 events \(0/s\)",
        status,
    ), status
    assert error.startswith("dogesim run: shard 0: SinkConfigError: table 'missing' does not")
