"""`dogesim run --shards` under control: one progress view summed over the shards, a
SIGINT/SIGTERM that stops every shard (exit 130, every shard's ledger), per-shard
checkpoints resumed to the uninterrupted bytes, and live pacing per shard.

Signals are real: the command runs in a subprocess and gets the signal once every shard has
written a periodic checkpoint (so it is mid-run), never after a fixed sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.scale.plan import shard_checkpoint
from tests.unit.test_cli_scale import shop as shop_file

ROOT = Path(__file__).resolve().parents[2]


def shop(tmp_path: Path) -> Path:
    """test_cli_scale's shop model (40 subjects, 120 one-minute ticks) whose live runs stamp
    from the file's start, so a live run's bytes are the backfill's."""
    path = shop_file(tmp_path, tmp_path / "unused.jsonl")
    path.write_text(path.read_text(encoding="utf-8") + "live: {timestamps: start}\n")
    return path


def reference(tmp_path: Path, model: Path) -> bytes:
    """The uninterrupted, backfilled 2-shard run's merged bytes."""
    out = tmp_path / "reference.jsonl"
    assert main(["run", str(model), "--shards", "2", "-q", "--out", str(out)]) == 0
    return out.read_bytes()


def test_the_last_status_line_holds_the_runs_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Off a terminal, the last status line (every shard done) counts the run's events and
    every shard's ticks, as the summary does."""
    model = shop(tmp_path)
    out = tmp_path / "o.jsonl"
    assert main(["run", str(model), "--shards", "3", "--workers", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    found = re.fullmatch(
        r"dogesim: 3/3 shards done, tick 360/360 \(100%\) over the shards, ([\d,]+) events .*",
        last,
    )
    assert found, captured.err
    events = int(found.group(1).replace(",", ""))
    assert f"{events:,} events (" in captured.out
    assert events == out.read_bytes().count(b"\n") > 100


def test_quiet_prints_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-q: no status line at all."""
    model = shop(tmp_path)
    out = tmp_path / "o.jsonl"
    assert main(["run", str(model), "--shards", "2", "-q", "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""


def start_paced(model: Path, *flags: str) -> subprocess.Popen[str]:
    """`dogesim run MODEL --shards 2 --workers 2 --live` (100 ms a tick) in a subprocess."""
    command = [sys.executable, "-m", "dogesim.cli", "run", str(model), "--shards", "2"]
    command += ["--workers", "2", "--live", "--speed", "600", *flags]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(paths: list[Path], process: subprocess.Popen[str]) -> None:
    """Until every path exists (the shards are past a periodic checkpoint)."""
    for _ in range(1200):
        if all(path.exists() for path in paths):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"never written: {paths}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_shard_and_the_resume_merges_the_same_bytes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A live 2-process run (12 s) checkpointed every 5 ticks gets SIGINT/SIGTERM mid-run: exit 130,
    both shards reported stopped with their ledgers, no merged file, the command to continue;
    `--resume` (backfill) then merges the uninterrupted run's bytes."""
    model = shop(tmp_path)
    expected = reference(tmp_path, model)
    out, base = tmp_path / "out.jsonl", tmp_path / "run.ckpt"
    flags = ("--checkpoint", str(base), "--checkpoint-every", "5", "--out", str(out))
    process = start_paced(model, *flags)
    wait_for([Path(shard_checkpoint(str(base), k)) for k in (0, 1)], process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"stopped by {signum.name}; every shard stopped after its tick" in stderr
    for k in (0, 1):
        assert re.search(
            rf"shard {k} stopped \(stopped by the driver\): jsonl:\S+: collected", stderr
        )
    assert f"--resume {base} --out {out}" in stderr
    assert not out.exists()
    assert main(["run", str(model), "--resume", str(base), "-q", "--out", str(out)]) == 0
    assert out.read_bytes() == expected
    assert not base.exists()


@pytest.mark.timeout(300)
def test_a_signal_without_checkpoint_merges_what_the_shards_wrote(tmp_path: Path) -> None:
    """SIGTERM to an uncheckpointed live sharded run: exit 130, the merged file is written
    with exactly the lines its ledger acknowledges, and no part file is left."""
    model = shop(tmp_path)
    out = tmp_path / "partial.jsonl"
    process = start_paced(model, "--out", str(out))
    parts = [Path(f"{out}.part-{k:05d}-of-00002") for k in (0, 1)]
    wait_for(parts, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    found = re.search(r"merged jsonl:\S+: collected (\d+), acknowledged (\d+)", stderr)
    assert found, stderr
    assert int(found.group(1)) == int(found.group(2)) == out.read_bytes().count(b"\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.jsonl", "shop.yaml"]


def test_live_shards_write_the_backfill_bytes(tmp_path: Path) -> None:
    """`--live` with shards (timestamps from the file's start) merges the bytes of the
    backfilled sharded run."""
    model = shop(tmp_path)
    expected = reference(tmp_path, model)
    out = tmp_path / "live.jsonl"
    flags = ["--shards", "2", "--workers", "2", "--live", "--speed", "60000", "-q"]
    assert main(["run", str(model), *flags, "--out", str(out)]) == 0
    assert out.read_bytes() == expected


def test_a_finished_checkpointed_run_leaves_nothing_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpointed sharded run that ends removes its manifest, shard checkpoints and
    locks; resuming it then exits 2 saying there is no checkpoint."""
    model = shop(tmp_path)
    out, base = tmp_path / "o.jsonl", tmp_path / "ck"
    argv = ["run", str(model), "--shards", "2", "-q", "--checkpoint", str(base)]
    assert main([*argv, "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "shop.yaml"]
    capsys.readouterr()
    assert main(["run", str(model), "--resume", str(base), "--out", str(out)]) == 2
    assert f"{base}: no such checkpoint file" in capsys.readouterr().err


def test_checkpointed_shards_refuse_a_csv_out_before_the_run(tmp_path: Path, capsys) -> None:
    """``--out x.csv --shards 2 --checkpoint c`` is refused up front (exit 2, one line,
    saying to use JSONL) instead of inside a shard with advice to resume; nothing written."""
    from dogesim.cli import main

    model = str(Path(__file__).resolve().parents[2] / "models" / "banking.yaml")
    out, ckpt = tmp_path / "x.csv", tmp_path / "c.ckpt"
    argv = ["run", model, "--out", str(out), "--shards", "2", "--checkpoint", str(ckpt)]
    assert main([*argv, "--subjects", "100"]) == 2
    err = capsys.readouterr().err
    assert "CSV parts cannot be continued" in err and "--out FILE.jsonl" in err
    assert "resume from" not in err and not out.exists() and not ckpt.exists()


def test_resuming_one_shards_checkpoint_is_refused(tmp_path: Path, capsys) -> None:
    """``--resume BASE.shard-0`` of a stopped sharded run is refused (exit 2) naming the
    run's checkpoint to resume instead; the shard's checkpoint is left as it was."""
    from dogesim.cli import main
    from dogesim.scale.plan import shard_checkpoint
    from tests.unit.test_shards_sql import stopped

    _, base, _ = stopped(tmp_path)
    shard = shard_checkpoint(str(base), 0)
    if not Path(shard).exists():
        shard = shard_checkpoint(str(base), 1)
    before = Path(shard).read_bytes()
    model = str(Path(__file__).resolve().parents[2] / "models" / "banking.yaml")
    assert main(["run", model, "--resume", shard]) == 2
    err = capsys.readouterr().err
    assert f"is one shard's checkpoint of the sharded run checkpointed at {base}" in err
    assert Path(shard).read_bytes() == before


def test_a_sink_no_shard_can_set_up_fails_in_one_line(tmp_path: Path, capsys) -> None:
    """A database nobody answers at, with --shards 2 --workers 2: exit 2 and one line naming
    the sink's problem (as in one process), without advice to resume what never started."""
    import socket

    from dogesim.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = (Path(__file__).resolve().parents[2] / "models" / "banking.yaml").read_text()
    sink = f"type: db\n    url: postgresql://u:secret@127.0.0.1:{port}/db\n    table: t"
    text = text.replace("type: jsonl\n    path: ${DOGESIM_OUT_DIR:-out}/banking.jsonl", sink)
    model = tmp_path / "db.yaml"
    model.write_text(text)
    argv = ["run", str(model), "--shards", "2", "--workers", "2", "--subjects", "200"]
    assert main([*argv, "--checkpoint", str(tmp_path / "c.ckpt")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("dogesim: ")]
    assert len(errors) == 1 and errors[0].startswith("dogesim run: shard "), err
    assert "Connection refused" in err and "secret" not in err and "resume from" not in err
