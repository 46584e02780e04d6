"""`dogesim run --resume` takes the run from its checkpoint: the printed "continue with"
command works as printed (backfill with overridden flags, live until stopped), flags equal to
the checkpoint's are accepted and different ones refused naming both, the summary of a
resumed run counts the whole run and this process apart, and the stop line counts ticks."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from dogesim.cli import main

ROOT = Path(__file__).resolve().parents[2]

HELPERS = '''
"""Callbacks for the resume tests; each returns True (moves are never vetoed)."""
import os
import signal

STATE = {"calls": 0, "marked": False}


def stop_at(subject, transition):
    """SIGTERM this process on call $DOGESIM_TEST_STOP_AT (unset: never); touch
    $DOGESIM_TEST_MARKER on the first call (the run is under way)."""
    STATE["calls"] += 1
    marker = os.environ.get("DOGESIM_TEST_MARKER")
    if marker and not STATE["marked"]:
        STATE["marked"] = True
        open(marker, "w").close()
    if str(STATE["calls"]) == os.environ.get("DOGESIM_TEST_STOP_AT"):
        os.kill(os.getpid(), signal.SIGTERM)
    return True
'''

WALK = """\
name: walk
seed: 42
states: [a, b]
initial_state: a
tick: 1s
ticks: 200
start: 2026-01-01T00:00:00Z
subjects: {count: 10}
sinks:
  out: {type: jsonl, path: 'OUT'}
default_sinks: [out]
transitions:
  - {trigger: go, from: a, to: b, probability: 40, callback: 'cli_resume_helpers:stop_at'}
  - {trigger: back, from: b, to: a, probability: 40}
"""

#: Flags that override the file's run settings; the checkpoint must keep them.
OVERRIDES = ["--seed", "7", "--subjects", "20", "--ticks", "60", "--jitter"]
OVERRIDES += ["--record-every", "5"]


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The helper callback, importable in-process and by subprocesses; calls counted anew."""
    (tmp_path / "cli_resume_helpers.py").write_text(textwrap.dedent(HELPERS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    monkeypatch.delenv("DOGESIM_TEST_STOP_AT", raising=False)
    sys.modules.pop("cli_resume_helpers", None)
    return tmp_path


def walk_model(tmp_path: Path) -> Path:
    path = tmp_path / "walk.yaml"
    path.write_text(WALK.replace("OUT", str(tmp_path / "file.jsonl")), encoding="utf-8")
    return path


def printed_command(err: str) -> list[str]:
    """The argv of the "continue with: dogesim run ..." line, without ``dogesim``."""
    match = re.search(r"continue with: (.+)$", err, re.MULTILINE)
    assert match, err
    words = shlex.split(match.group(1))
    assert words[:2] == ["dogesim", "run"], words
    return words[1:]


def stopped_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[Path, list[str], str]:
    """The walk model run with `extra`, stopped by SIGTERM on its 30th callback: the model,
    the printed continue command and stderr."""
    model = walk_model(tmp_path)
    monkeypatch.setenv("DOGESIM_TEST_STOP_AT", "30")
    argv = ["run", str(model), *extra, "--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(argv) == 130
    monkeypatch.delenv("DOGESIM_TEST_STOP_AT")
    err = capsys.readouterr().err
    return model, printed_command(err), err


def full_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> bytes:
    """The bytes of the same run, uninterrupted."""
    full = tmp_path / "full.jsonl"
    assert main(["run", str(walk_model(tmp_path)), *extra, "--out", str(full), "-q"]) == 0
    capsys.readouterr()
    return full.read_bytes()


def test_printed_command_resumes_a_run_with_overridden_settings(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run with --seed/--subjects/--ticks/--jitter/--record-every, stopped: the printed command
    (which repeats none of them) exits 0 and the file equals the uninterrupted run's bytes."""
    part = tmp_path / "part.jsonl"
    _, command, err = stopped_run(tmp_path, monkeypatch, capsys, *OVERRIDES, "--out", str(part))
    assert "--seed" not in command and "--out" in command, command
    assert re.search(r"stopped by SIGTERM after \d+ of 60 ticks;", err), err
    assert main(command) == 0, capsys.readouterr().err
    assert part.read_bytes() == full_run(tmp_path, capsys, *OVERRIDES)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--seed", "8"], "--seed 8 cannot change a resumed run: {ckpt} was run with seed 7"),
        (
            ["--subjects", "21"],
            "--subjects 21 cannot change a resumed run: {ckpt} was run with 20 subjects",
        ),
        (["--ticks", "61"], "--ticks 61 cannot change a resumed run: {ckpt} was run with 60 ticks"),
        (["--record-every", "6"], "was run with record_every 5"),
        (
            ["--live", "--until-stopped"],
            "--until-stopped cannot change a resumed run: {ckpt} was run with 60 ticks",
        ),
    ],
)
def test_a_flag_other_than_the_checkpoints_is_refused_naming_both(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    named: str,
) -> None:
    """--resume with a run flag whose value differs from the checkpoint's: exit 2, one line
    naming the flag's value and the checkpoint's; nothing is written."""
    part = tmp_path / "part.jsonl"
    _, command, _ = stopped_run(tmp_path, monkeypatch, capsys, *OVERRIDES, "--out", str(part))
    before = part.read_bytes()
    assert main([*command, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert named.format(ckpt=tmp_path / "c.ckpt") in err, err
    assert part.read_bytes() == before


def test_flags_equal_to_the_checkpoints_are_accepted(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Repeating every overriding flag with the checkpoint's values resumes to the same bytes
    as the uninterrupted run (the record_every duration 5s is 5 ticks of 1 s)."""
    part = tmp_path / "part.jsonl"
    _, command, _ = stopped_run(tmp_path, monkeypatch, capsys, *OVERRIDES, "--out", str(part))
    again = [*OVERRIDES[:-1], "5s"]
    assert main([*command, *again]) == 0, capsys.readouterr().err
    assert part.read_bytes() == full_run(tmp_path, capsys, *OVERRIDES)


def test_the_checkpoints_settings_win_over_a_changed_file_and_are_named(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The file's seed changed after the checkpoint: the resume keeps the checkpoint's seed
    (same bytes as the uninterrupted run), and says so in one line."""
    part = tmp_path / "file.jsonl"
    model, command, _ = stopped_run(tmp_path, monkeypatch, capsys)
    model.write_text(model.read_text().replace("seed: 42", "seed: 43"), encoding="utf-8")
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "resumed with the checkpoint's seed 42 (the file: seed 43)" in err, err
    model.write_text(model.read_text().replace("seed: 43", "seed: 42"), encoding="utf-8")
    assert part.read_bytes() == full_run(tmp_path, capsys)


def test_resumed_summary_counts_the_whole_run_and_this_process_apart(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A resumed run's summary gives the whole run's events (every line of the file) and the
    events this process made (the lines it appended, its ledger's count) and their rate."""
    part = tmp_path / "part.jsonl"
    _, command, _ = stopped_run(tmp_path, monkeypatch, capsys, "--out", str(part))
    before = len(part.read_text(encoding="utf-8").splitlines())
    assert main(command) == 0
    out = capsys.readouterr().out
    total = len(part.read_text(encoding="utf-8").splitlines())
    assert 0 < before < total
    assert f"-> {total:,} events over the whole run" in out, out
    made = re.search(r"resumed at tick (\d+), this process made ([\d,]+) events \(", out)
    assert made, out
    assert int(made.group(2).replace(",", "")) == total - before
    assert re.search(rf"collected {total - before}, acknowledged {total - before}", out), out


def test_stop_line_counts_ticks_done(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stop line says "after K of 200 ticks" with K the ticks the checkpoint resumes at."""
    _, _, err = stopped_run(tmp_path, monkeypatch, capsys)
    done = re.search(r"after (\d+) of 200 ticks;", err)
    assert done, err
    from dogesim.engine.checkpoint import load

    assert load(tmp_path / "c.ckpt")["next_tick"] == int(done.group(1))


def start(argv: list[str], marker: Path) -> subprocess.Popen[str]:
    """`dogesim run ...` (argv after ``dogesim``) as a process that touches `marker`."""
    marker.unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "dogesim.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOGESIM_TEST_MARKER": str(marker)},
    )


def interrupt(process: subprocess.Popen[str], marker: Path) -> str:
    """SIGINT the process once its run is under way; its stderr after exit 130."""
    for _ in range(3000):  # a minute at most
        if marker.exists() or process.poll() is not None:
            break
        time.sleep(0.02)
    assert marker.exists() and process.poll() is None, "the run did not get under way"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    return err


def live_until_stopped(model: Path, tmp_path: Path, *extra: str) -> str:
    """`model` run live at speed 1000 until stopped, as a process, Ctrl-C'd: its stderr."""
    argv = ["run", str(model), "--live", "--speed", "1000", "--until-stopped", *extra]
    argv += ["--checkpoint", str(tmp_path / "c.ckpt")]
    return interrupt(start(argv, tmp_path / "running"), tmp_path / "running")


def test_live_run_until_stopped_resumes_with_the_printed_command(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live run until stopped, Ctrl-C'd as a process: the printed command (run as printed,
    as a process) continues it live until stopped, its clock where the first left off."""
    model = walk_model(tmp_path)
    part = tmp_path / "live.jsonl"
    command = printed_command(live_until_stopped(model, tmp_path, "--out", str(part)))
    assert "--live" in command and "--speed" in command, command
    stamps = [json.loads(x)["timestamp"] for x in part.read_text().splitlines()]
    err = interrupt(start(command, tmp_path / "running"), tmp_path / "running")
    assert "stopped by SIGINT after" in err and "continue with:" in err, err
    both = [json.loads(x)["timestamp"] for x in part.read_text().splitlines()]
    assert both[: len(stamps)] == stamps and len(both) > len(stamps)
    assert both == sorted(both)
    # the resumed clock continues the checkpoint's (tick 1 s): not restarted at the new now
    assert both[len(stamps)] - stamps[-1] <= 5_000
    # and --ticks on it is refused: the run has no tick count
    assert main([*command, "--ticks", "5"]) == 2
    assert "was run with ticks until stopped" in capsys.readouterr().err


def test_until_stopped_checkpoint_needs_live(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint of a run until stopped resumed without --live: exit 2 saying to add it."""
    model = walk_model(tmp_path)
    live_until_stopped(model, tmp_path)
    assert main(["run", str(model), "--resume", str(tmp_path / "c.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "live run until stopped; resume it with --live" in err, err


@pytest.mark.parametrize("name", ["part.csv", "part.csv.gz"])
def test_csv_out_resumes_without_a_second_header(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    """--out FILE.csv (plain or gzip) stopped and resumed with the printed command: the file
    decompresses to the uninterrupted run's CSV, one header included."""
    from dogesim.sinks.compression import open_text

    part = tmp_path / name
    _, command, _ = stopped_run(tmp_path, monkeypatch, capsys, "--out", str(part))
    assert main(command) == 0, capsys.readouterr().err
    full = tmp_path / f"full-{name}"
    assert main(["run", str(walk_model(tmp_path)), "--out", str(full), "-q"]) == 0
    with open_text(part) as resumed, open_text(full) as whole:
        text = resumed.read()
        assert text == whole.read()
    assert text.count("timestamp") == 1 and text.count("\n") > 20


def test_checkpoint_with_a_model_csv_sink_is_refused_before_the_run(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--checkpoint with the model file's csv sink: exit 2 before anything is written."""
    model = walk_model(tmp_path)
    model.write_text(model.read_text().replace("type: jsonl", "type: csv"), encoding="utf-8")
    assert main(["run", str(model), "--checkpoint", str(tmp_path / "c.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "sink 'out' of the model file is a csv sink" in err, err
    assert not (tmp_path / "file.jsonl").exists() and not (tmp_path / "c.ckpt").exists()


def test_jitter_on_a_run_without_it_is_refused(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--jitter on the resume of a run without jitter: exit 2 naming "jitter off"."""
    _, command, _ = stopped_run(tmp_path, monkeypatch, capsys)
    assert main([*command, "--jitter"]) == 2
    err = capsys.readouterr().err
    assert "--jitter cannot change a resumed run" in err and "was run with jitter off" in err


def test_a_resume_goes_on_writing_periodic_checkpoints(
    tmp_path: Path,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run with --checkpoint-every 10 stopped, then ``--resume FILE`` alone: the resumed
    run goes on writing its checkpoints into FILE every 10 ticks (before, it wrote none, so
    a kill -9 of the resume lost everything it did)."""
    from dogesim.engine import checkpoint as checkpoints

    model, _, err = stopped_run(tmp_path, monkeypatch, capsys, "--checkpoint-every", "10")
    done = int(re.search(r"after (\d+) of 200 ticks", err).group(1))  # type: ignore[union-attr]
    written: list[str] = []
    save = checkpoints.save

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(os.fspath(path))
        return save(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save", counted)
    ckpt = str(tmp_path / "c.ckpt")
    assert main(["run", str(model), "--resume", ckpt]) == 0, capsys.readouterr().err
    assert set(written) == {ckpt}
    assert len(written) >= (200 - done) // 10 - 1
