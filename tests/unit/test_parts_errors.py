"""A sharded file output that the file system refuses fails as a dogesim error, never as
an internal error: a merged target that is a directory is a `SinkError` after the shards
ran (no part, no half-merged file left), a part under a path whose parent is a file is the
`SinkConfigError` of a sink no shard could set up."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.errors import SinkConfigError, SinkError
from dogesim.shards import run_sharded
from tests.unit.shard_models import banking_run, banking_to_jsonl
from tests.unit.test_cli_scale import shop


def small_run(target: Path) -> object:
    """A small 2-shard banking run into the merged JSONL file `target`."""
    build = functools.partial(banking_to_jsonl, str(target))
    return banking_run(build, 2, subjects=100, ticks=30)


def test_a_merged_target_that_is_a_directory_is_a_sink_error(tmp_path: Path) -> None:
    """The shards run, the merge onto a directory fails: a SinkError naming the target and
    the cause, the ledger counting nothing delivered, and no part or ``.merging`` file left
    beside it (was an IsADirectoryError, leaving both)."""
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SinkError, match=r"out: merging the shards' parts failed: .*directory") as e:
        run_sharded(small_run(target))
    assert [ledger.acknowledged for ledger in e.value.ledgers] == [0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert list(target.iterdir()) == []


def test_a_sink_path_that_is_a_directory_fails_the_run_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model file's JSONL sink at a directory, run in 2 shards: the run fails (exit 1)
    with the merge's failure on stderr, not "internal error (please report it)" and a
    traceback."""
    target = tmp_path / "results"
    target.mkdir()
    model = shop(tmp_path, target)
    assert main(["run", str(model), "--shards", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert "merging the shards' parts failed" in err and "Is a directory" in err, err
    assert "internal error" not in err and "Traceback" not in err


def test_a_part_under_a_file_is_a_sink_config_error(tmp_path: Path) -> None:
    """A part path whose parent is a regular file: every shard fails to open its part, the
    run raises the one-line SinkConfigError (was a NotADirectoryError from removing the
    parts that were never created)."""
    (tmp_path / "plain").write_text("not a directory\n", encoding="utf-8")
    with pytest.raises(SinkConfigError, match=r"cannot open .*plain/out\.jsonl\.part-.*Not a dir"):
        run_sharded(small_run(tmp_path / "plain" / "out.jsonl"))


def test_a_sink_path_under_a_file_fails_the_run_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same from a model file: a bad setting as in one process (exit 2, one line
    naming the file's sink and the path), no "internal error" and no traceback (removing
    the parts raised one)."""
    (tmp_path / "plain").write_text("not a directory\n", encoding="utf-8")
    model = shop(tmp_path, tmp_path / "plain" / "log.jsonl")
    assert main(["run", str(model)]) == 2
    alone = capsys.readouterr().err
    assert main(["run", str(model), "--shards", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot open" in err, err
    assert err.rstrip().endswith(f"File exists: {tmp_path / 'plain'}"), err
    assert "sinks." in err and "plain" in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert "cannot open" in alone, alone
