"""`dogesim run` online: live pacing flags, jitter, clean stop on SIGINT/SIGTERM, checkpoints
and resume (killed as a real process and resumed, byte for byte)."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dogesim.cli import _stop_on_signals, main

ROOT = Path(__file__).resolve().parents[2]

HELPERS = '''
"""Callbacks for the online CLI tests; each returns True (moves are never vetoed)."""
import os
import signal
import time

STATE = {"marked": False, "calls": 0}


def mark_running(subject, transition):
    """Touch $DOGESIM_TEST_MARKER on the first call: the run is under way."""
    if not STATE["marked"]:
        STATE["marked"] = True
        marker = os.environ.get("DOGESIM_TEST_MARKER")
        if marker:
            open(marker, "w").close()
    return True


def sigterm_self_at_once(subject, transition):
    """Send this process SIGTERM on the first call (a signal arriving mid-run)."""
    STATE["calls"] += 1
    if STATE["calls"] == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def slow(subject, transition):
    time.sleep(0.03)
    return True
'''

STREAM = """\
name: stream
seed: 21
states: [idle, busy]
initial_state: idle
tick: 1s
ticks: 4000
start: 2026-12-24T22:00:00Z
subjects:
  count: 30
  attributes:
    plan: {choice: {basic: 3, pro: 1}}
profiles:
  day:
    hourly: [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    dates: {2026-12-25: 1.5}
arrivals: {rate: 300 per hour, profile: day}
churn: 2% per hour
jitter: true
live: {speed: 1000, timestamps: start}
sinks:
  out: {type: jsonl, path: '{out}'}
default_sinks: [out]
transitions:
  - {trigger: work, from: idle, to: busy, probability: 2 per minute, profile: day,
     callback: 'cli_online_helpers:mark_running'}
  - {trigger: rest, from: busy, to: idle, probability: 5}
"""

QUEUE = """\
name: queue
seed: 3
states: [waiting, talking, done]
initial_state: waiting
tick: 1s
ticks: {ticks}
subjects: {{count: 10}}
resources: {{agents: 2}}
sinks:
  out: {{type: jsonl, path: '{out}'}}
default_sinks: [out]
transitions:
  - {{trigger: answer, from: waiting, to: talking, probability: 100, resource: agents,
     hold: 5, callback: 'cli_online_helpers:{callback}'}}
  - {{trigger: hang_up, from: talking, to: done, probability: 100}}
"""


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The helper callbacks, importable in-process and by subprocesses."""
    (tmp_path / "cli_online_helpers.py").write_text(textwrap.dedent(HELPERS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    sys.modules.pop("cli_online_helpers", None)
    return tmp_path


def stream_model(tmp_path: Path, out: Path) -> Path:
    path = tmp_path / "stream.yaml"
    path.write_text(STREAM.replace("{out}", str(out)), encoding="utf-8")
    return path


def queue_model(tmp_path: Path, *, callback: str = "mark_running", ticks: int = 40) -> Path:
    path = tmp_path / "queue.yaml"
    text = QUEUE.format(out=tmp_path / "queue.jsonl", callback=callback, ticks=ticks)
    path.write_text(text, encoding="utf-8")
    return path


def start(*args: str, marker: Path) -> subprocess.Popen[str]:
    marker.unlink(missing_ok=True)
    env = {**os.environ, "DOGESIM_TEST_MARKER": str(marker)}
    return subprocess.Popen(
        [sys.executable, "-m", "dogesim.cli", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def signal_when_running(process: subprocess.Popen[str], marker: Path, signum: int) -> None:
    """Wait until the run is under way (the marker exists), a little longer, then signal."""
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    time.sleep(0.3)
    assert process.poll() is None, "the run ended before it could be signalled"
    process.send_signal(signum)


def ledger(stdout: str) -> tuple[int, int]:
    match = re.search(r"sink jsonl:\S+: collected (\d+), acknowledged (\d+), failed 0", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def test_killed_run_resumes_to_the_uninterrupted_bytes(tmp_path: Path, helpers: Path) -> None:
    """SIGTERM a live run (exit 130, checkpoint written), resume it live and SIGINT it again,
    then resume to the end: the JSONL equals, byte for byte, an uninterrupted run's."""
    part = tmp_path / "part.jsonl"
    model = stream_model(tmp_path, part)
    full = tmp_path / "full.jsonl"
    assert main(["run", str(model), "--out", str(full), "-q"]) == 0
    marker = tmp_path / "running"

    first = start(str(model), "--live", "--checkpoint", str(tmp_path / "a.ckpt"), marker=marker)
    signal_when_running(first, marker, signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "Traceback" not in err
    assert re.search(r"stopped by SIGTERM after \d+ of 4000 ticks", err), err
    assert "checkpoint -> " in err and (tmp_path / "a.ckpt").is_file()
    assert "live: at most" in out
    collected, acknowledged = ledger(out)
    lines = part.read_text(encoding="utf-8").splitlines()
    assert collected == acknowledged == len(lines) > 0
    assert len(lines) < len(full.read_text(encoding="utf-8").splitlines())

    second = start(
        str(model),
        "--resume",
        str(tmp_path / "a.ckpt"),
        "--live",
        "--checkpoint",
        str(tmp_path / "b.ckpt"),
        marker=marker,
    )
    signal_when_running(second, marker, signal.SIGINT)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 130, err
    assert "stopped by SIGINT" in err and (tmp_path / "b.ckpt").is_file()
    assert len(part.read_text(encoding="utf-8").splitlines()) > len(lines)

    last = subprocess.run(
        [
            sys.executable,
            "-m",
            "dogesim.cli",
            "run",
            str(model),
            "--resume",
            str(tmp_path / "b.ckpt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert last.returncode == 0, last.stderr
    assert part.read_bytes() == full.read_bytes()


def test_sigint_without_checkpoint_flushes_everything(tmp_path: Path, helpers: Path) -> None:
    """SIGINT mid-run without --checkpoint: exit 130, the ledger printed, and the JSONL file
    holds every collected event, each a complete line."""
    events = tmp_path / "events.jsonl"
    model = stream_model(tmp_path, tmp_path / "unused.jsonl")
    marker = tmp_path / "running"
    process = start(str(model), "--live", "--out", str(events), marker=marker)
    signal_when_running(process, marker, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "checkpoint" not in err
    assert re.search(r"stopped by SIGINT after \d+ of 4000 ticks; every sink was closed", err)
    collected, acknowledged = ledger(out)
    data = events.read_text(encoding="utf-8")
    assert data.endswith("\n")
    records = [json.loads(line) for line in data.splitlines()]
    assert collected == acknowledged == len(records) > 0
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)  # jittered, still in order


def test_second_signal_interrupts_at_once() -> None:
    """The first signal asks the run to stop; the second raises KeyboardInterrupt; the old
    handlers come back afterwards."""
    before = signal.getsignal(signal.SIGTERM)
    sim = SimpleNamespace(stops=0)
    sim.stop = lambda: setattr(sim, "stops", sim.stops + 1)
    with pytest.raises(KeyboardInterrupt), _stop_on_signals(sim) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert sim.stops == 1 and received == ["SIGTERM"]
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert received == ["SIGTERM", "SIGINT"] and sim.stops == 1
    assert signal.getsignal(signal.SIGTERM) == before


def test_signal_in_process_stops_after_the_tick(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM during tick 0 stops the run after that tick: exit 130, ledger on stdout."""
    model = queue_model(tmp_path, callback="sigterm_self_at_once")
    assert main(["run", str(model)]) == 130
    captured = capsys.readouterr()
    assert "stopped by SIGTERM after 1 of 40 ticks" in captured.err
    assert "sink jsonl:" in captured.out


def test_checkpoint_with_subjects_queueing_for_a_resource(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped while callers queue for and hold agents, the run saves their places; resumed,
    it ends with exactly the events of an uninterrupted run."""
    full = tmp_path / "full.jsonl"
    model = queue_model(tmp_path, callback="mark_running")
    assert main(["run", str(model), "--out", str(full), "-q"]) == 0
    model = queue_model(tmp_path, callback="sigterm_self_at_once")
    part = tmp_path / "queue.jsonl"
    checkpoint = tmp_path / "c.ckpt"
    assert main(["run", str(model), "--checkpoint", str(checkpoint)]) == 130
    assert checkpoint.is_file()
    stopped_with = part.read_text(encoding="utf-8").splitlines()
    assert 0 < len(stopped_with) < 20  # two answered at tick 0; eight still queueing
    assert main(["run", str(model), "--resume", str(checkpoint)]) == 0
    capsys.readouterr()
    full_lines = [json.loads(x) for x in full.read_text(encoding="utf-8").splitlines()]
    both = [json.loads(x) for x in part.read_text(encoding="utf-8").splitlines()]
    assert both == full_lines
    assert [e["trigger"] for e in both].count("hang_up") == 10


class _Trap:
    """Unpickling this creates a file: code running on load."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def test_resume_of_a_pickle_runs_no_code(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume of an old pickle checkpoint exits 2 with one line, and nothing in it runs."""
    model = queue_model(tmp_path)
    marker = tmp_path / "ran"
    checkpoint = tmp_path / "old.ckpt"
    checkpoint.write_bytes(pickle.dumps({"version": 3, "trap": _Trap(str(marker))}))
    assert main(["run", str(model), "--resume", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "pickle checkpoint of an older dogesim" in err and "Traceback" not in err
    assert not marker.exists()


def test_resume_with_a_changed_model_file_names_the_change(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint resumed after the file's resource capacity changed: exit 2, naming it."""
    model = queue_model(tmp_path, callback="sigterm_self_at_once")
    checkpoint = tmp_path / "c.ckpt"
    assert main(["run", str(model), "--checkpoint", str(checkpoint)]) == 130
    model.write_text(model.read_text().replace("agents: 2", "agents: 3"))
    capsys.readouterr()
    assert main(["run", str(model), "--resume", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "different model or run settings" in err and 'resources: [["agents", 2]]' in err


def test_resume_twice_from_one_checkpoint_has_no_duplicates(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resume, then (as after a crash) resume again from the same checkpoint, with a torn
    line at the end: the file equals the uninterrupted run's, no line twice."""
    full = tmp_path / "full.jsonl"
    model = queue_model(tmp_path, callback="mark_running")
    assert main(["run", str(model), "--out", str(full), "-q"]) == 0
    model = queue_model(tmp_path, callback="sigterm_self_at_once")
    part = tmp_path / "queue.jsonl"
    checkpoint = tmp_path / "c.ckpt"
    assert main(["run", str(model), "--checkpoint", str(checkpoint)]) == 130
    assert main(["run", str(model), "--resume", str(checkpoint), "-q"]) == 0
    with part.open("a", encoding="utf-8") as handle:
        handle.write('{"timestamp": 1')
    assert main(["run", str(model), "--resume", str(checkpoint), "-q"]) == 0
    capsys.readouterr()
    assert part.read_bytes() == full.read_bytes()


def test_live_flags_and_jitter(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--live --speed paces the run and reports the lag; --jitter spreads timestamps within
    their tick (here 1 s, so some are not whole seconds)."""
    model = queue_model(tmp_path, ticks=20)
    started = time.monotonic()
    out = tmp_path / "live.jsonl"
    assert main(["run", str(model), "--live", "--speed", "100", "--jitter", "--out", str(out)]) == 0
    assert time.monotonic() - started >= 0.19  # 20 ticks of 1 s at 100x
    printed = capsys.readouterr().out
    assert re.search(
        r"live: at most [\d,]+ ms behind real time \(allowed 10 ms; \d+ ticks", printed
    )
    stamps = [json.loads(line)["timestamp"] for line in out.read_text().splitlines()]
    now = time.time() * 1000
    assert all(now - 60_000 < ts < now + 60_000 for ts in stamps)  # wall-clock timestamps
    assert any(ts % 1000 for ts in stamps)


def test_live_run_that_falls_behind_fails_when_asked(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--on-lag fail with a callback slower than real time: exit 1, the lag and the ledger."""
    model = queue_model(tmp_path, callback="slow", ticks=50)
    args = ["run", str(model), "--live", "--speed", "100", "--max-lag", "20ms", "--on-lag", "fail"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "dogesim: the run failed: live run is" in err and "behind real time" in err
    assert "sink jsonl:" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--speed", "10"], "--speed applies to live runs; add --live"),
        (["--until-stopped"], "--until-stopped applies to live runs"),
        (["--on-lag", "fail"], "--on-lag applies to live runs"),
        (["--resume", "missing.ckpt"], "missing.ckpt: no such checkpoint file"),
        (["--resume", "."], ".: a directory, not a checkpoint file"),
        (["--live", "--speed", "0"], "argument --speed: 0 must be a positive"),
    ],
)
def test_bad_online_arguments_exit_2(
    tmp_path: Path,
    helpers: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    """Flags that cannot apply are refused in one line, exit status 2."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(queue_model(tmp_path)), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_support_center_runs_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped support_center model runs with no server and reports its features."""
    out = tmp_path / "sc.jsonl"
    args = ["run", str(ROOT / "models" / "support_center.yaml"), "--ticks", "240"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    collected, _ = ledger(printed)
    assert collected == len(out.read_text().splitlines()) > 0
    assert main(["validate", str(ROOT / "models" / "support_center.yaml")]) == 0
    assert "resources agents=5" in capsys.readouterr().out


CHURN_MODEL = """
name: subscriptions
seed: 3
states: [free, paid]
initial_state: free
tick: 1h
ticks: 48
subjects: {count: 300}
churn: 5% per day
sinks:
  events: {type: jsonl, path: "{out}"}
default_sinks: [events]
transitions:
  - {trigger: upgrade, from: free, to: paid, probability: 2}
  - {trigger: downgrade, from: paid, to: free, probability: 1}
"""


def test_report_reads_logs_of_churn_models(tmp_path: Path) -> None:
    """A log with 'churn' moves into 'churned' is reported against the churn-aware model."""
    log = tmp_path / "events.jsonl"
    model = tmp_path / "subs.yaml"
    model.write_text(CHURN_MODEL.replace("{out}", str(log)))
    assert main(["run", str(model), "-q"]) == 0
    assert any('"churn"' in line for line in log.read_text().splitlines())
    assert main(["report", str(log), "--model", str(model), "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_report_refuses_arrival_models_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Observed occupancy needs a fixed population; arrival models get a clear exit 2."""
    log = tmp_path / "events.jsonl"
    model = tmp_path / "grow.yaml"
    model.write_text(
        CHURN_MODEL.replace("{out}", str(log)).replace("churn: 5% per day", "arrivals: 2")
    )
    assert main(["run", str(model), "-q"]) == 0
    capsys.readouterr()
    assert main(["report", str(log), "--model", str(model), "-o", str(tmp_path / "r.png")]) == 2
    assert "has arrivals" in capsys.readouterr().err


def test_sigkilled_run_resumes_from_its_periodic_checkpoint(tmp_path: Path, helpers: Path) -> None:
    """SIGKILL a run that writes --checkpoint-every 100 ticks, --resume it: the JSONL equals,
    byte for byte, an uninterrupted run's (nothing lost, nothing twice)."""
    part = tmp_path / "part.jsonl"
    model = stream_model(tmp_path, part)
    full = tmp_path / "full.jsonl"
    assert main(["run", str(model), "--out", str(full), "-q"]) == 0
    checkpoint = tmp_path / "k.ckpt"
    marker = tmp_path / "running"
    args = ["--live", "--checkpoint", str(checkpoint), "--checkpoint-every", "100"]
    process = start(str(model), *args, marker=marker)
    deadline = time.monotonic() + 60
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no periodic checkpoint was written"
        time.sleep(0.02)
    time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert 0 < len(part.read_bytes()) < len(full.read_bytes())

    resumed = subprocess.run(
        [sys.executable, "-m", "dogesim.cli", "run", str(model), "--resume", str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert part.read_bytes() == full.read_bytes()


def test_checkpoint_every_duration_writes_during_the_run(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--checkpoint-every 10s (a duration of whole 1 s ticks) writes a checkpoint while the
    run goes; resuming that finished run's last checkpoint adds nothing to the output."""
    model = queue_model(tmp_path, ticks=40)
    checkpoint = tmp_path / "p.ckpt"
    args = ["run", str(model), "--checkpoint", str(checkpoint), "--checkpoint-every", "10s"]
    assert main([*args, "-q"]) == 0
    assert checkpoint.is_file()
    part = tmp_path / "queue.jsonl"
    full = part.read_bytes()
    assert main(["run", str(model), "--resume", str(checkpoint), "-q"]) == 0
    assert part.read_bytes() == full


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint-every", "10"], "--checkpoint-every needs --checkpoint FILE"),
        (["--resume-allow-pickle"], "--resume-allow-pickle applies to --resume FILE only"),
        (["--checkpoint", "c.ckpt", "--checkpoint-every", "0"], "0 must be at least 1"),
    ],
)
def test_bad_checkpoint_arguments_exit_2(
    tmp_path: Path,
    helpers: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    """Checkpoint flags that cannot mean anything exit 2 with one line naming them."""
    model = queue_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(model), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_with_a_changed_seed_names_it(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint resumed after the file's seed changed: the checkpoint is the run, so it
    goes on with the checkpoint's seed, and says so naming both."""
    model = queue_model(tmp_path, callback="sigterm_self_at_once")
    checkpoint = tmp_path / "c.ckpt"
    assert main(["run", str(model), "--checkpoint", str(checkpoint)]) == 130
    model.write_text(model.read_text().replace("seed: 3", "seed: 4"))
    capsys.readouterr()
    assert main(["run", str(model), "--resume", str(checkpoint)]) == 0
    err = capsys.readouterr().err
    assert "resumed with the checkpoint's seed 3 (the file: seed 4)" in err, err
    assert "Traceback" not in err


BOX_MODEL = """\
name: boxes
seed: 3
states: [a, b]
initial_state: a
tick: 1s
ticks: 40
subjects: {count: 5, factory: 'cli_online_helpers:box'}
sinks:
  tally: {type: counting}
default_sinks: [tally]
transitions:
  - {trigger: go, from: a, to: b, probability: 10}
  - {trigger: back, from: b, to: a, probability: 10}
"""


def test_resume_allow_pickle_loads_pickled_subjects(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose subjects are a pickle: --resume exits 2 naming
    --resume-allow-pickle; with that flag the run continues to its end (exit 0)."""
    from dogesim.modelfile import load_model_file

    with (helpers / "cli_online_helpers.py").open("a", encoding="utf-8") as handle:
        handle.write("\n\nclass Box:\n    id = 0\n\n\ndef box():\n    return Box()\n")
    sys.modules.pop("cli_online_helpers", None)
    model = tmp_path / "boxes.yaml"
    model.write_text(BOX_MODEL, encoding="utf-8")
    spec = load_model_file(model)
    sim = spec.simulation(progress=lambda done: sim.stop() if done >= 5 else None)
    assert sim.run().stopped
    checkpoint = tmp_path / "boxes.ckpt"
    sim.checkpoint(checkpoint, allow_pickle=True)
    assert main(["run", str(model), "--resume", str(checkpoint), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--resume-allow-pickle" in err and len(err.strip().splitlines()) == 1, err
    assert main(["run", str(model), "--resume", str(checkpoint), "--resume-allow-pickle"]) == 0
    assert "seed 3: 5 subjects x 40 ticks" in capsys.readouterr().out
