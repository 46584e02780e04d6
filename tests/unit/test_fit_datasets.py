"""Real panels: a wide panel becomes the exact event log and roster; the MVAD panel loads
with its known facts (when the sequenzo data are installed)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from dogesim import DogesimError
from dogesim.datasets import from_wide, mvad
from dogesim.report.fit import fit_event_log
from dogesim.report.timevarying import month_concentration


def test_from_wide_builds_the_exact_log_and_roster() -> None:
    """Changes between consecutive months are events at the next month's start, at tick
    k for a change from period k to k+1; the roster holds the first period's state."""
    wide = pd.DataFrame(
        {
            "id": [1, 2],
            "w": [0.5, 2.0],
            "sex": ["f", "m"],
            "Jan": ["school", "work"],
            "Feb": ["school", "work"],
            "Mar": ["work", "idle"],
            "Apr": ["work", "work"],
        }
    )
    panel = from_wide(
        wide,
        subject="id",
        periods=["Jan", "Feb", "Mar", "Apr"],
        start="2000-01",
        covariates=["sex"],
        weight="w",
    )
    march = int(pd.Timestamp("2000-03-01", tz="UTC").value // 1_000_000)
    april = int(pd.Timestamp("2000-04-01", tz="UTC").value // 1_000_000)
    assert panel.events.to_dict("records") == [
        {"subject": 1, "timestamp": march, "from_state": "school", "to_state": "work"},
        {"subject": 2, "timestamp": march, "from_state": "work", "to_state": "idle"},
        {"subject": 2, "timestamp": april, "from_state": "idle", "to_state": "work"},
    ]
    assert panel.roster.to_dict("records") == [
        {"subject": 1, "state": "school", "weight": 0.5, "sex": "f"},
        {"subject": 2, "state": "work", "weight": 2.0, "sex": "m"},
    ]
    assert panel.ticks == 3 and panel.tick == "1mo"
    obs = panel.observe(weight="weight", by="sex")
    assert obs.events["tick"].tolist() == [1, 1, 2]
    fit = fit_event_log(panel.events, **panel.fit_options())
    assert {s.state: s.count for s in fit.initial_mix} == {"school": 1, "work": 1, "idle": 0}
    with pytest.raises(DogesimError, match="at least two"):
        from_wide(wide, subject="id", periods=["Jan"], start="2000-01")


def test_mvad_from_a_path_in_its_layout(tmp_path: Path) -> None:
    """mvad(path=...) reads TraMineR's layout; a file without the 72 monthly columns is
    refused with the count it found."""
    months = pd.period_range("1993-07", periods=72, freq="M").strftime("%b.%y")
    row = {"id": 1, "weight": 1.0, "male": "no", **dict.fromkeys(months, "school")}
    row[months[30]] = "HE"
    path = tmp_path / "mvad.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    panel = mvad(path)
    assert panel.ticks == 71 and len(panel.events) == 2 and panel.citation.startswith("McVicar")
    pd.DataFrame([{"id": 1, "Jul.93": "school"}]).to_csv(path, index=False)
    with pytest.raises(DogesimError, match="has 1 monthly columns"):
        mvad(path)


def _has_sequenzo() -> bool:
    try:
        metadata.distribution("sequenzo")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not _has_sequenzo(), reason="the MVAD data come with sequenzo (dogesim[datasets])"
)
def test_mvad_known_facts() -> None:
    """712 young people; the July 1993 mix (school 135, FE 97, HE 0, employment 173,
    training 122, joblessness 185); 1,814 monthly changes, 70% of them in Jul/Sep/Oct."""
    panel = mvad()
    assert len(panel.roster) == 712 and len(panel.events) == 1814
    fit = fit_event_log(panel.events, **panel.fit_options())
    counts = {s.state: s.count for s in fit.initial_mix}
    assert counts == {
        "school": 135,
        "FE": 97,
        "HE": 0,
        "employment": 173,
        "training": 122,
        "joblessness": 185,
    }
    shares = month_concentration(panel.observe())
    assert shares[[7, 9, 10]].sum() == pytest.approx(0.696, abs=0.001)


@pytest.mark.skipif(
    not _has_sequenzo(), reason="the MVAD data come with sequenzo (dogesim[datasets])"
)
def test_mvad_goodness_of_fit_figures() -> None:
    """On MVAD the constant chain from the initial mix misses the monthly shares by a mean
    TVD of about 0.2 and its geometric spells by KS > 0.15 in school and joblessness; a
    chain by yearly age bins gets the mean TVD to 0.05, and month of year beats age by AIC."""
    from dogesim.report.compare import occupancy_shares, tvd
    from dogesim.report.spells import dwell_report
    from dogesim.report.timevarying import compare_factors, fit_by_factor

    obs = mvad().observe()
    observed = occupancy_shares(obs)
    constant = tvd(observed, fit_by_factor(obs, "none").shares(obs)).mean()
    assert 0.18 < constant < 0.22
    factors = compare_factors(obs, age_bins=list(range(0, 71, 12)))
    assert tvd(observed, factors.age.shares(obs)).mean() < 0.055
    assert factors.better == "month"
    report = dwell_report(obs)
    assert report["school"].ks["geometric"] > 0.25 and report["joblessness"].ks["geometric"] > 0.25
    assert all(fit.best.name == "empirical" for fit in report.values())


@pytest.mark.slow
@pytest.mark.skipif(
    not _has_sequenzo(), reason="the MVAD data come with sequenzo (dogesim[datasets])"
)
def test_mvad_semi_markov_kernel_meets_the_goal() -> None:
    """A semi-Markov kernel fitted on MVAD (first stays apart, destination given length),
    walked for 10x the panel from its initial mix, matches the monthly shares with mean
    TVD <= 0.05 and every state's spell lengths with KS <= 0.15."""
    import numpy as np

    from dogesim.report.compare import occupancy_shares, spell_ks, tvd
    from dogesim.report.observed import observe
    from dogesim.report.spells import fit_kernel
    from tests.unit.fit_helpers import simulate_kernel

    panel = mvad()
    obs = panel.observe()
    rng = np.random.default_rng(5)
    initial = rng.choice(panel.roster["state"].to_numpy(), 10 * len(panel.roster))
    log, roster = simulate_kernel(fit_kernel(obs), [str(s) for s in initial], obs.ticks, rng)
    sim = observe(log, tick=1000, states=obs.states, window_start=0, ticks=obs.ticks, roster=roster)
    distance = tvd(occupancy_shares(obs), occupancy_shares(sim))
    assert distance.mean() <= 0.05, distance.mean()
    assert max(spell_ks(obs, sim).values()) <= 0.15


@pytest.mark.skipif(
    not _has_sequenzo(), reason="the MVAD data come with sequenzo (dogesim[datasets])"
)
def test_mvad_kernel_model_file_meets_the_goal_in_the_engine(tmp_path: Path) -> None:
    """The kernel fitted on MVAD (first stays apart) and the initial mix, written to a model
    file, loaded and run by the engine for 10x the panel: monthly shares within a mean TVD
    of 0.05 and every state's spell lengths within KS 0.15 of the panel's."""
    from dogesim.modelfile import load_model_file
    from dogesim.report.compare import occupancy_shares, spell_ks, tvd
    from dogesim.report.observed import observe
    from dogesim.report.spells import fit_kernel
    from tests.unit.fit_helpers import engine_log

    panel = mvad()
    obs = panel.observe()
    fit = fit_event_log(panel.events, **panel.fit_options()).with_kernel(fit_kernel(obs))
    fit.write_model_file(tmp_path / "mvad.yaml", name="mvad", seed=5)
    model = load_model_file(tmp_path / "mvad.yaml").model
    log, roster = engine_log(model, 10 * len(panel.roster), obs.ticks, seed=5)
    sim = observe(log, tick=1000, states=obs.states, window_start=0, ticks=obs.ticks, roster=roster)
    distance = tvd(occupancy_shares(obs), occupancy_shares(sim))
    assert distance.mean() <= 0.05, distance.mean()
    assert max(spell_ks(obs, sim).values()) <= 0.15
