"""scripts/run's first run: the banking model at size, its share plot and its summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def first_run() -> ModuleType:
    """scripts/first_run.py as a module."""
    spec = importlib.util.spec_from_file_location("first_run", ROOT / "scripts" / "first_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts_run_calls_the_first_run() -> None:
    """scripts/run sets up .venv and hands its arguments to scripts/first_run.py."""
    text = (ROOT / "scripts" / "run").read_text()
    assert "scripts/bootstrap" in text
    assert 'exec .venv/bin/python scripts/first_run.py "$@"' in text


def test_first_run_writes_events_plot_and_a_summary_that_matches_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events in out/banking.jsonl, the plot, and a summary whose counts, shares and ledger
    are the run's (final shares near the analytic ones)."""
    pytest.importorskip("matplotlib")
    module = first_run()
    assert module.main(["--subjects", "3000", "--ticks", "240", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = (tmp_path / "banking.jsonl").read_text().splitlines()
    events = len(lines)
    assert events > 1000 and {"timestamp", "user", "event"} <= json.loads(lines[0]).keys()
    assert f"{events:,} events in" in out
    assert f"collected {events}, acknowledged {events}, failed 0, pending 0" in out
    assert "3,000 users x 240 ticks of 1 min" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:6]}
    assert set(rows) == {"offline", "online", "loan_screen"}
    users = sum(int(row[-1].replace(",", "")) for row in rows.values())
    assert users == 3000
    for state, row in rows.items():
        final, analytic, sd3 = (float(cell.rstrip("%")) for cell in row[1:4])
        assert abs(final - analytic) <= sd3 + 0.01, state  # within the printed 3 sd band
    assert (tmp_path / "banking-occupancy.png").stat().st_size > 20_000


def test_expected_shares_are_the_chain_and_binomial_sd() -> None:
    """The analytic shares start from everyone offline and their sd is sqrt(p(1-p)/n)."""
    from dogesim.examples.banking import banking_simulation

    module = first_run()
    result = banking_simulation([], subjects=500, ticks=60, seed=1).run()
    shares, sd = module.expected_shares(result)
    assert shares.shape == (60, 3) and np.allclose(shares.sum(axis=1), 1.0)
    assert shares[0, 0] == pytest.approx(1 - 0.001)  # one tick of login at 0.1%
    assert np.allclose(sd, np.sqrt(shares * (1 - shares) / 500))


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--subjects", "-5"], "subjects"),
        (["--ticks", "0"], "ticks"),
        (["--out", "/dev/null"], "/dev/null"),
    ],
)
def test_first_run_says_a_bad_option_in_one_line(
    flags: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --subjects, --ticks or an --out that is not a folder: exit 2 and one line
    naming it, no traceback."""
    module = first_run()
    assert module.main([*flags, "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
