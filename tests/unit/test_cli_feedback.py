"""The `dogesim run` command's feedback: one options object from flags to engine (the CLI
and the Python API give the same stream), honest summaries (events apart from moves, the
closing line only when the ledgers say nothing was lost) and live status lines."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from dogesim import SinkError
from dogesim.cli import _Feedback, closing_line, main
from dogesim.modelfile import load_model_file
from dogesim.sinks.files import JsonLinesSink

#: Only `go` has a sink: `back` moves subjects without making events.
PARTLY = """\
name: partly
transitions:
  - {{trigger: go, from: a, to: b, probability: 20, sinks: [out]}}
  - {{trigger: back, from: b, to: a, probability: 30}}
sinks: {{out: {{type: jsonl, path: '{out}'}}}}
subjects: {{count: 50}}
states: [a, b]
initial_state: a
ticks: 200
tick: 1m
seed: 1
"""


def partly(tmp_path: Path, name: str = "partly") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(PARTLY.format(out=tmp_path / f"{name}.jsonl"), encoding="utf-8")
    return path


def test_cli_and_python_api_write_the_same_stream(tmp_path: Path) -> None:
    """`dogesim run FILE --seed 3` and `load_model_file(FILE).run(seed=3)` write the same bytes."""
    cli_model, api_model = partly(tmp_path, "cli"), partly(tmp_path, "api")
    assert main(["run", str(cli_model), "--seed", "3", "--quiet"]) == 0
    load_model_file(api_model).run(seed=3)
    cli_bytes = (tmp_path / "cli.jsonl").read_bytes()
    assert cli_bytes and cli_bytes == (tmp_path / "api.jsonl").read_bytes()


def test_cli_out_override_matches_the_python_api(tmp_path: Path) -> None:
    """`--out` with `--seed` equals the Python API run into a JSONL sink with that seed."""
    model = partly(tmp_path)
    assert main(["run", str(model), "--seed", "8", "--out", str(tmp_path / "cli.jsonl"), "-q"]) == 0
    load_model_file(model).run(sinks=[JsonLinesSink(tmp_path / "api.jsonl")], seed=8)
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "api.jsonl").read_bytes()


def test_summary_counts_events_apart_from_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events (moves on transitions with sinks) and moves are reported apart; events/s is
    of events; the file holds exactly the events."""
    model = partly(tmp_path)
    assert main(["run", str(model)]) == 0
    out = capsys.readouterr().out
    lines = (tmp_path / "partly.jsonl").read_text().splitlines()
    expected = load_model_file(model).run()  # the same seed, into the file's own sink
    assert 0 < expected.events == len(lines) < expected.moves
    found = re.search(
        r"wall time [\d.]+ s: ([\d,]+) events \([\d,]+ events/s\), ([\d,]+) moves", out
    )
    assert found is not None, out
    assert int(found[1].replace(",", "")) == expected.events
    assert int(found[2].replace(",", "")) == expected.moves
    assert "every sink was closed and flushed" in out


def test_record_every_flag_sets_the_table_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--record-every 10m` at 1 m ticks gives 20 rows for 200 ticks; `7` gives 29 rows."""
    model = partly(tmp_path)
    assert main(["run", str(model), "--record-every", "10m"]) == 0
    assert "per-tick tables: 20 rows of 10 ticks" in capsys.readouterr().out
    assert main(["run", str(model), "--record-every", "7"]) == 0
    assert "per-tick tables: 29 rows of 7 ticks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90s", "record_every '90s' is not a whole number of 60000 ms ticks"), ("0", "at least 1")],
)
def test_bad_record_every_flag_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    """A --record-every that is no whole number of ticks is one line on stderr, status 2."""
    assert main(["run", str(partly(tmp_path)), "--record-every", value]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_closing_line_names_the_sink_that_lost_events(tmp_path: Path) -> None:
    """After a sink lost events the closing line names it with its counts, never "flushed"."""
    spec = load_model_file(partly(tmp_path))
    simulation = spec.simulation(sinks=[JsonLinesSink("/dev/full")])
    with pytest.raises(SinkError):
        simulation.run()
    line = closing_line(simulation)
    assert "flushed" not in line
    assert re.search(r"jsonl:/dev/full lost [\d,]+ of [\d,]+ events", line), line


def test_closing_line_says_flushed_when_every_ledger_is_whole(tmp_path: Path) -> None:
    """A run whose only sink delivered everything: "every sink was closed and flushed"."""
    simulation = load_model_file(partly(tmp_path)).simulation()
    simulation.run()
    assert closing_line(simulation) == "every sink was closed and flushed"


def test_status_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """Off a terminal, the run prints status lines: ticks done, events and the ledger,
    counts never decreasing and never above the run's events."""
    simulation = load_model_file(partly(tmp_path)).simulation()
    stream = io.StringIO()
    feedback = _Feedback(simulation, stream, quiet=False, tty=False, every=0.0)
    simulation.progress = feedback.update
    result = simulation.run()
    feedback.close()
    pattern = re.compile(
        r"^dogesim: tick ([\d,]+)/200 \(\d+%\), ([\d,]+) events \([\d,]+/s\); "
        r"jsonl:\S+partly\.jsonl: ([\d,]+) acknowledged of ([\d,]+)$"
    )
    rows = [pattern.match(line) for line in stream.getvalue().splitlines()]
    assert rows and all(rows), stream.getvalue()
    ticks = [int(m[1].replace(",", "")) for m in rows if m]
    events = [int(m[2].replace(",", "")) for m in rows if m]
    assert ticks == sorted(ticks) and ticks[-1] == 200
    assert events == sorted(events) and events[-1] <= result.events


def test_quiet_prints_no_status(tmp_path: Path) -> None:
    """--quiet: no status lines at all."""
    simulation = load_model_file(partly(tmp_path)).simulation()
    stream = io.StringIO()
    feedback = _Feedback(simulation, stream, quiet=True, tty=False, every=0.0)
    simulation.progress = feedback.update
    simulation.run()
    feedback.close()
    assert stream.getvalue() == ""


def test_seedless_file_takes_dogesim_seed_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no seed in the file or flags, the CLI run uses DOGESIM_SEED (the engine's rule):
    two runs write the same bytes and the summary names the seed."""
    model = partly(tmp_path)
    model.write_text(model.read_text().replace("seed: 1\n", ""), encoding="utf-8")
    monkeypatch.setenv("DOGESIM_SEED", "31")
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}.jsonl"
        assert main(["run", str(model), "--out", str(out)]) == 0
        assert capsys.readouterr().out.startswith("seed 31: ")
        outputs.append(out.read_bytes())
    assert outputs[0] and outputs[0] == outputs[1]


def test_spec_simulation_runs_on_the_options_object(tmp_path: Path) -> None:
    """`spec.simulation(...)` hands the engine exactly the RunOptions `spec.options` builds."""
    spec = load_model_file(partly(tmp_path))
    run, _ = spec.options(record_every="10m", seed=4)
    simulation = spec.simulation(record_every="10m", seed=4)
    assert simulation.options == run.validated(live=False)
