"""`dogesim report` on a model file with an initial mix and dwell laws: the log's shares
against a run of the model and the analytic line, the TVD per tick printed (mean, max)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from dogesim.cli import main

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

COHORT = """\
# school lasts 6 minutes exactly, then FE or work; a 19:14:7 mix at the start
name: cohort
tick: 1 min
ticks: 60
seed: 5
subjects: {count: 1500}
states: [school, FE, work]
initial_state: {school: 19, FE: 14, work: 7}
dwell: {school: {law: fixed, value_ticks: 6}}
sinks: {events: {type: jsonl, path: "{out}"}}
default_sinks: [events]
transitions:
  - {trigger: leave, from: school, to: FE, probability: 70}
  - {trigger: drop_out, from: school, to: work, probability: 30}
  - {trigger: job, from: FE, to: work, probability: 8}
  - {trigger: back, from: work, to: FE, probability: 2}
"""
TVD_LINE = re.compile(r"TVD per tick, (\w+) vs observed: mean ([0-9.]+), max ([0-9.]+) \(60 rows\)")


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    log = tmp_path / "events.jsonl"
    model = tmp_path / "cohort.yaml"
    model.write_text(COHORT.replace("{out}", str(log)), encoding="utf-8")
    assert main(["run", str(model), "-q", "--seed", "11"]) == 0
    capsys.readouterr()
    png = tmp_path / "report.png"
    assert main(["report", str(log), "--model", str(model), "-o", str(png), *extra]) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)
    return capsys.readouterr().out


def test_report_prints_tvd_against_a_run_and_the_analytic_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both comparisons are printed; a run with another seed and the exact semi-Markov line
    from the log's start both sit near the log: the mean TVD stays under twice its sampling
    level (3 states of ~1/3 and 1500 subjects: 1/2 x 3 x sqrt(2/pi) x sqrt(2/9/1500) = 0.015
    against an exact line, sqrt(2) more against another run)."""
    out = _report(tmp_path, capsys)
    found = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in TVD_LINE.finditer(out)}
    assert set(found) == {"simulated", "analytic"}
    level = 0.5 * 3 * (2 / math.pi) ** 0.5 * (2 / 9 / 1500) ** 0.5
    assert 0 < found["analytic"][0] <= found["analytic"][1] and found["analytic"][0] < 2 * level
    assert 0 < found["simulated"][0] < 2 * math.sqrt(2) * level
    assert "analytic line (semi-Markov, tick by tick): exact up to sampling" in out
    spells = re.search(r"spell-length KS per state, simulated vs observed: max ([0-9.]+) \(", out)
    assert spells is not None and 0 <= float(spells.group(1)) < 0.15
    assert "occupancy plot -> " in out


def test_report_without_simulation_compares_with_the_analytic_line_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-simulation leaves the run out: one TVD line, against the analytic line."""
    out = _report(tmp_path, capsys, "--no-simulation")
    assert [m.group(1) for m in TVD_LINE.finditer(out)] == ["analytic"]
    assert "spell-length" not in out


def test_report_of_a_directory_says_it_is_one(tmp_path: Path, capsys) -> None:
    """``dogesim report DIR``: exit 2, one line saying the path is a directory, not that
    it does not exist."""
    from dogesim.cli import main

    model = str(Path(__file__).resolve().parents[2] / "models" / "banking.yaml")
    assert main(["report", str(tmp_path), "-m", model, "-o", str(tmp_path / "r.png")]) == 2
    assert f"{tmp_path}: a directory, not an event log" in capsys.readouterr().err
