"""`dogesim run --shards S` stopped and resumed from the command line: the resume keeps every
setting of the run it continues (``--subjects``, ``--ticks``, ``--seed``, ``--jitter`` given
to the interrupted run included), a refused resume changes nothing on disk or in a table,
and a SIGTERM to the run's whole process group stops it as a Ctrl-C does.

In-process runs are stopped at their first progress report (`stop_then_resume_in_cli`): the
first shard stops after its tick, the others never start. Signals are real: the command runs
in a subprocess of its own process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dogesim.shards
from dogesim.cli import main
from dogesim.scale.plan import shard_checkpoint
from dogesim.shards import read_manifest
from tests.unit.test_shards_cli import reference as live_reference
from tests.unit.test_shards_cli import shop as live_shop
from tests.unit.test_shards_cli import wait_for

ROOT = Path(__file__).resolve().parents[2]

#: A small model with file and SQLite sinks; its own settings differ from the overrides.
MODEL = """\
name: shop
seed: 11
states: [browsing, cart, paid]
initial_state: browsing
tick: 1m
ticks: {ticks}
start: 2026-01-01T00:00:00Z
subjects:
  count: 40
sinks:
  log: {{type: jsonl, path: '{log}'}}
{db}default_sinks: [{sinks}]
transitions:
  - {{trigger: add, from: browsing, to: cart, probability: {add}}}
  - {{trigger: drop, from: cart, to: browsing, probability: 20}}
  - {{trigger: pay, from: cart, to: paid, probability: 10}}
"""

#: The overrides of the interrupted run (none equals the file's).
OVERRIDES = ["--subjects", "60", "--ticks", "300", "--seed", "7", "--jitter"]


def model(path: Path, log: Path, *, db: str | None = None, add: int = 8, ticks: int = 120) -> Path:
    """The model file at `path` (40 subjects, `ticks` ticks), its events into `log` (and the
    SQLite table ``events`` at `db`); `add` is the chance of its first transition."""
    table = f"  db: {{type: db, url: '{db}', table: events, create_table: true}}\n" if db else ""
    sinks = "log, db" if db else "log"
    path.write_text(
        MODEL.format(log=log, db=table, sinks=sinks, add=add, ticks=ticks),
        encoding="utf-8",
    )
    return path


def stop_then_resume_in_cli(monkeypatch: pytest.MonkeyPatch, first: list[str]) -> None:
    """Run `first` stopped at its first report (exit 130, parts kept); later runs go on."""
    real = dogesim.shards.run_sharded
    with monkeypatch.context() as patch:
        stopped: list[bool] = []

        def stopping(run: Any, *, progress: Any = None, stop: Any = None, **options: Any) -> Any:
            def report(figures: Any) -> None:
                if progress is not None:
                    progress(figures)
                if figures.ticks > 0:
                    stop.set()

            result = real(run, progress=report, stop=stop, **options)
            stopped.append(result.stopped)
            return result

        patch.setattr(dogesim.shards, "run_sharded", stopping)
        assert main(first) == 130
        assert stopped == [True]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# -- the resume takes the interrupted run's settings ----------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("out", [True, False], ids=["out", "file-sinks"])
def test_a_resume_keeps_the_overrides_of_the_stopped_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: bool
) -> None:
    """A 4-shard run started with --subjects/--ticks/--seed/--jitter and stopped is resumed
    with only --resume (the command the stop prints), here in 2 processes: the merged file
    is the uninterrupted run's byte for byte. Before, the resume reloaded the file without
    the overrides and was refused (seed 11 against 7) or ran other settings."""
    whole = model(tmp_path / "whole.yaml", tmp_path / "whole.jsonl")
    assert main(["run", str(whole), "--shards", "4", "-q", *OVERRIDES]) == 0
    expected = (tmp_path / "whole.jsonl").read_bytes()
    assert expected.count(b"\n") > 300 and b'"timestamp"' in expected

    log, base = tmp_path / "log.jsonl", tmp_path / "ck"
    path = model(tmp_path / "shop.yaml", log)
    target = ["--out", str(tmp_path / "o.jsonl")] if out else []
    merged = tmp_path / "o.jsonl" if out else log
    argv = ["run", str(path), "--shards", "4", "-q", "--checkpoint", str(base), *target]
    stop_then_resume_in_cli(monkeypatch, [*argv, *OVERRIDES])
    manifest = read_manifest(base)
    assert manifest is not None and not merged.exists()
    assert (manifest["subjects"], manifest["ticks"], manifest["seed"]) == (60, 300, 7)
    assert manifest["jitter"] is True and manifest["tick_ms"] == 60_000
    resume = ["run", str(path), "--resume", str(base), "--workers", "2", "-q", *target]
    assert main(resume) == 0
    assert merged.read_bytes() == expected
    assert not base.exists()


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        (["--ticks", "500"], "--ticks 500"),
        (["--seed", "8"], "--seed 8"),
        (["--subjects", "61"], "--subjects 61"),
        (["--shards", "2"], "shards"),
    ],
)
def test_a_resume_with_another_explicit_setting_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: list[str],
    named: str,
) -> None:
    """A flag that differs from the checkpointed run's value exits 2 naming the setting and
    both values, and changes nothing; the same value given again is accepted."""
    base, out = tmp_path / "ck", tmp_path / "o.jsonl"
    path = model(tmp_path / "shop.yaml", tmp_path / "log.jsonl")
    argv = ["run", str(path), "--shards", "4", "-q", "--checkpoint", str(base), "--out", str(out)]
    stop_then_resume_in_cli(monkeypatch, [*argv, *OVERRIDES])
    before = snapshot(tmp_path)
    capsys.readouterr()
    resume = ["run", str(path), "--resume", str(base), "-q", "--out", str(out)]
    assert main([*resume, *flag]) == 2
    err = capsys.readouterr().err
    assert named in err, err
    value = {"--ticks": "300", "--seed": "7", "--subjects": "60", "--shards": "4"}[flag[0]]
    assert value in err and flag[1] in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before
    assert main([*resume, "--seed", "7", "--ticks", "300", "--subjects", "60", "--jitter"]) == 0
    assert not base.exists()


def test_a_manifest_without_the_run_settings_resumes_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest written before it kept the run settings (seed, shards, subjects, clock
    only) still resumes a run of the file's own settings to the uninterrupted bytes."""
    path = model(tmp_path / "shop.yaml", tmp_path / "log.jsonl")
    out, base = tmp_path / "o.jsonl", tmp_path / "ck"
    assert main(["run", str(path), "--shards", "4", "-q", "--out", str(tmp_path / "r.jsonl")]) == 0
    argv = ["run", str(path), "--shards", "4", "-q", "--checkpoint", str(base), "--out", str(out)]
    stop_then_resume_in_cli(monkeypatch, argv)
    manifest = read_manifest(base)
    assert manifest is not None
    old = ("format", "version", "seed", "shards", "subjects", "timestamp_start")
    old_manifest = {k: manifest[k] for k in (*old, "checkpoint_every", "positions")}
    base.write_text(json.dumps(old_manifest), encoding="utf-8")
    assert main(["run", str(path), "--resume", str(base), "-q", "--out", str(out)]) == 0
    assert out.read_bytes() == (tmp_path / "r.jsonl").read_bytes()


def test_the_api_resume_of_a_model_file_takes_the_manifests_settings(tmp_path: Path) -> None:
    """`ShardedRun(path, resume=True)` without settings resumes a run of the file started
    with subjects, ticks, seed and jitter of its own to the uninterrupted bytes; another
    ticks is refused naming both values, before any shard starts."""
    import dataclasses
    import threading

    from dogesim.errors import ModelError
    from dogesim.shards import ShardedRun, run_sharded

    settings: dict[str, Any] = {"subjects": 60, "ticks": 300, "seed": 7, "jitter": True}
    whole = model(tmp_path / "whole.yaml", tmp_path / "whole.jsonl")
    run_sharded(ShardedRun(str(whole), shards=4, **settings))
    log, base = tmp_path / "log.jsonl", tmp_path / "ck"
    path = model(tmp_path / "shop.yaml", log)
    stop = threading.Event()
    run = ShardedRun(str(path), shards=4, checkpoint=str(base), **settings)
    first = run_sharded(run, progress=lambda p: p.ticks and stop.set(), stop=stop)
    assert first.stopped and first.parts_kept
    resumed = ShardedRun(str(path), checkpoint=str(base), resume=True)
    before = snapshot(tmp_path)
    with pytest.raises(ModelError, match="has ticks=300, this one ticks=500"):
        run_sharded(dataclasses.replace(resumed, ticks=500))
    assert snapshot(tmp_path) == before
    assert run_sharded(resumed).ticks == 300
    assert log.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


# -- a refused resume changes nothing -------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_refused_resume_changes_nothing_and_a_right_one_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shard 0 of a stopped 4-shard run (into JSONL and SQLite) has a checkpoint, shards 1-3
    none. Resumed (in 2 processes) after the model file changed a chance, shard 0's
    checkpoint is refused before any shard starts: exit 2 naming the difference, every file
    (parts, checkpoints, the database) byte-identical, the table's rows the same. Before,
    shard 1 started beside it and wrote its part, its rows and its checkpoint with the new
    settings. Resumed with the file as it was, the run equals the uninterrupted one."""
    from tests.unit.test_shards_control import _table_rows

    db = f"sqlite:///{tmp_path / 'whole.db'}"
    whole = model(tmp_path / "whole.yaml", tmp_path / "whole.jsonl", db=db, ticks=300)
    assert main(["run", str(whole), "--shards", "4", "-q"]) == 0
    expected, rows = (tmp_path / "whole.jsonl").read_bytes(), _table_rows(db)
    assert len(rows) == expected.count(b"\n") > 100

    runs = tmp_path / "runs"
    runs.mkdir()
    url, log, base = f"sqlite:///{runs / 'events.db'}", runs / "log.jsonl", runs / "ck"
    path = model(tmp_path / "shop.yaml", log, db=url, ticks=300)
    argv = ["run", str(path), "--shards", "4", "-q", "--checkpoint", str(base)]
    stop_then_resume_in_cli(monkeypatch, argv)
    assert Path(shard_checkpoint(str(base), 0)).exists()
    assert not any(Path(shard_checkpoint(str(base), k)).exists() for k in (1, 2, 3))
    before, rows_before = snapshot(runs), _table_rows(url)
    capsys.readouterr()

    model(path, log, db=url, add=9, ticks=300)
    assert main(["run", str(path), "--resume", str(base), "--workers", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "shard 0" in err and "'add' (browsing->cart)" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(runs) == before
    assert _table_rows(url) == rows_before

    model(path, log, db=url, ticks=300)
    assert main(["run", str(path), "--resume", str(base), "--workers", "2", "-q"]) == 0
    assert log.read_bytes() == expected
    assert _table_rows(url) == rows


# -- SIGTERM to the process group -------------------------------------------------------------


@pytest.mark.timeout(300)
def test_sigterm_to_the_process_group_stops_like_ctrl_c(tmp_path: Path) -> None:
    """`kill -TERM -PGID` of a live 2-process checkpointed run (what systemd, docker and
    timeout do) reaches the driver and its workers: the run stops after a tick, exit 130,
    both shards reported stopped, parts and checkpoints kept, the command to continue; the
    resume merges the uninterrupted bytes. Before, the workers died of the signal: "its
    worker died", exit 1."""
    path = live_shop(tmp_path)
    expected = live_reference(tmp_path, path)
    out, base = tmp_path / "out.jsonl", tmp_path / "run.ckpt"
    command = [sys.executable, "-m", "dogesim.cli", "run", str(path), "--shards", "2"]
    command += ["--workers", "2", "--live", "--speed", "600", "--checkpoint", str(base)]
    command += ["--checkpoint-every", "5", "--out", str(out)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for([Path(shard_checkpoint(str(base), k)) for k in (0, 1)], process)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "died" not in stderr, stderr
    assert "stopped by SIGTERM; every shard stopped after its tick" in stderr
    for k in (0, 1):
        assert re.search(rf"shard {k} stopped \(.*\): jsonl:\S+: collected", stderr), stderr
    assert f"--resume {base} --out {out}" in stderr
    assert not out.exists()
    assert main(["run", str(path), "--resume", str(base), "-q", "--out", str(out)]) == 0
    assert out.read_bytes() == expected


# -- one run at a time per checkpoint ---------------------------------------------------------

#: Holds the run lock of the checkpoint argv[1] (as a run's driver does) until stdin closes.
HOLDER = """
import sys
from dogesim.scale.locks import hold_run_lock
with hold_run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.timeout(120)
def test_a_second_run_of_a_checkpoint_in_use_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While another process (a running resume) holds a stopped run's checkpoint, a resume
    of it is refused at once: exit 2, ``... is in use by another run (pid N)``, every file
    as it was. Before, both ran every shard over the same parts and checkpoints (the second
    failed at the merge: No such file ... o.jsonl.merging). Once it is free, the resume
    completes to the uninterrupted run's bytes."""
    whole = model(tmp_path / "whole.yaml", tmp_path / "whole.jsonl", ticks=300)
    assert main(["run", str(whole), "--shards", "4", "-q"]) == 0
    expected = (tmp_path / "whole.jsonl").read_bytes()
    runs = tmp_path / "runs"
    runs.mkdir()
    log, base = runs / "log.jsonl", runs / "ck"
    path = model(tmp_path / "shop.yaml", log, ticks=300)
    stop_then_resume_in_cli(
        monkeypatch, ["run", str(path), "--shards", "4", "-q", "--checkpoint", str(base)]
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(base)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(runs)
        capsys.readouterr()
        resume = ["run", str(path), "--resume", str(base), "--workers", "2", "-q"]
        assert main(resume) == 2
        err = capsys.readouterr().err
        assert f"{base} is in use by another run (pid {holder.pid})" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert snapshot(runs) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert main(resume) == 0
    assert log.read_bytes() == expected
    assert sorted(p.name for p in runs.iterdir()) == ["log.jsonl"]


@pytest.mark.parametrize(
    "flags",
    [["--shards", "2", "--out", "o.jsonl"], ["--out", "new.jsonl.gz"], ["--shards", "2"]],
    ids=["sharded", "one-process-gz", "file-sinks"],
)
def test_a_resume_of_a_missing_checkpoint_is_refused_leaving_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
) -> None:
    """``--resume nothere.ckpt`` exits 2 with one line naming the path, and writes nothing:
    no empty --out file, no lock file. Before, the sharded resume exited 1, and the run in
    one process left an empty new.jsonl.gz behind."""
    monkeypatch.chdir(tmp_path)
    path = model(tmp_path / "shop.yaml", tmp_path / "log.jsonl")
    assert main(["run", str(path), "--resume", "nothere.ckpt", "-q", *flags]) == 2
    err = capsys.readouterr().err
    assert "nothere.ckpt" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.yaml"]


# -- a signal during the merge ---------------------------------------------------------------


def signalled_merge(monkeypatch: pytest.MonkeyPatch, signals: int) -> None:
    """Every merge of part files gets `signals` SIGINTs to this process as it starts."""
    real = dogesim.shards.merge_parts

    def merge(target: str, parts: Any) -> int:
        for _ in range(signals):
            signal.raise_signal(signal.SIGINT)
        return real(target, parts)

    monkeypatch.setattr(dogesim.shards, "merge_parts", merge)


def test_a_ctrl_c_during_the_merge_says_so_and_the_merge_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first Ctrl-C once every shard has finished, while the parts are merged, says that
    the merge goes on and that a second one aborts it; the merge completes (exit 0, the
    uninterrupted bytes). Before, it was ignored without a word."""
    whole = model(tmp_path / "whole.yaml", tmp_path / "whole.jsonl")
    assert main(["run", str(whole), "--shards", "4", "-q"]) == 0
    expected = (tmp_path / "whole.jsonl").read_bytes()
    path = model(tmp_path / "shop.yaml", tmp_path / "log.jsonl")
    signalled_merge(monkeypatch, 1)
    capsys.readouterr()
    assert main(["run", str(path), "--shards", "4", "-q"]) == 0
    err = capsys.readouterr().err
    assert "SIGINT: every shard has finished; merging" in err, err
    assert "Ctrl-C again to abort" in err, err
    assert (tmp_path / "log.jsonl").read_bytes() == expected


def test_a_second_ctrl_c_during_the_merge_aborts_it_leaving_no_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two Ctrl-Cs during the merge of a run without checkpoints abort it: exit 130, no
    merged file, and its part files removed, as the message says."""
    path = model(tmp_path / "shop.yaml", tmp_path / "log.jsonl")
    signalled_merge(monkeypatch, 2)
    assert main(["run", str(path), "--shards", "4", "-q"]) == 130
    err = capsys.readouterr().err
    assert "their part files were removed" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.yaml"]
