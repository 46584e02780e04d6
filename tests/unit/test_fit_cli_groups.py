"""``dogesim fit`` with a roster, survey weights and groups (``--roster``, ``--weight``,
``--by``), through `dogesim.cli.main`: the population counts its silent subjects, weights
give Kish's effective sample size, and ``--by`` writes one model file whose entity types
(one per group) simulate the mixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dogesim.cli import main
from dogesim.modelfile import load_model_file
from dogesim.report.fit import fit_by
from tests.unit.fit_helpers import draw_chain

STATES = ["idle", "active", "away"]
TICKS = 200
#: Two known chains, each with its share of the population and its start state.
TRUTH = {
    "a": {
        "count": 300,
        "initial": "idle",
        "chances": {
            "idle": [("active", 0.05)],
            "active": [("idle", 0.10), ("away", 0.02)],
            "away": [("idle", 0.05)],
        },
    },
    "b": {
        "count": 700,
        "initial": {"active": 0.6, "idle": 0.4},
        "chances": {
            "idle": [("active", 0.15)],
            "active": [("idle", 0.05), ("away", 0.01)],
            "away": [("idle", 0.20)],
        },
    },
}
WINDOW = ["--tick", "1s", "--states", ",".join(STATES), "--start", "0"]


def _population(tmp_path: Path, seed: int = 7) -> tuple[Path, Path]:
    """Draw both groups per tick (ids 0.. for a, then b's), write the log and roster CSV."""
    rng = np.random.default_rng(seed)
    logs, rosters, offset = [], [], 0
    for group, truth in TRUTH.items():
        log, roster = draw_chain(truth["chances"], truth["initial"], truth["count"], TICKS, rng)
        log["subject"] += offset
        roster["subject"] += offset
        roster["group"] = group
        logs.append(log)
        rosters.append(roster)
        offset += truth["count"]
    log_path, roster_path = tmp_path / "log.csv", tmp_path / "roster.csv"
    pd.concat(logs).sort_values(["timestamp", "subject"]).to_csv(log_path, index=False)
    pd.concat(rosters).to_csv(roster_path, index=False)
    return log_path, roster_path


def _matrix(chances: dict[str, list[tuple[str, float]]]) -> np.ndarray:
    """The per-tick transition matrix of a chain on `STATES`."""
    m = np.zeros((len(STATES), len(STATES)))
    for state, moves in chances.items():
        i = STATES.index(state)
        for to, p in moves:
            m[i, STATES.index(to)] += p
        m[i, i] = 1.0 - m[i].sum()
    return m


def _truth_occupancy(tick: int) -> np.ndarray:
    """The mixture's law after tick `tick`'s attempts: the share-weighted chains."""
    total = sum(t["count"] for t in TRUTH.values())
    law = np.zeros(len(STATES))
    for truth in TRUTH.values():
        initial = truth["initial"]
        shares = {initial: 1.0} if isinstance(initial, str) else initial
        start = np.array([shares.get(state, 0.0) for state in STATES])
        step = np.linalg.matrix_power(_matrix(truth["chances"]), tick + 1)
        law += truth["count"] / total * (start @ step)
    return law


def test_fit_roster_counts_silent_subjects_and_prints_kish(tmp_path: Path, capsys) -> None:
    """--roster makes every roster subject count (the file's subjects.count is the roster's
    size, the exposure is the roster's) and --weight prints Kish's effective sample size."""
    rng = np.random.default_rng(3)
    weights = rng.choice([1.0, 4.0], size=400)
    log, roster = draw_chain(TRUTH["a"]["chances"], "idle", 400, 50, rng, weights=weights)
    # Subjects without events are in the roster only.
    assert log["subject"].nunique() < 400
    log.drop(columns="weight").to_csv(tmp_path / "log.csv", index=False)
    roster.to_csv(tmp_path / "roster.csv", index=False)
    out = tmp_path / "fit.yaml"
    argv = ["fit", str(tmp_path / "log.csv"), "--roster", str(tmp_path / "roster.csv")]
    code = main([*argv, "--weight", "weight", *WINDOW, "--window-ticks", "50", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert load_model_file(out).subjects.count == 400
    kish = weights.sum() ** 2 / (weights**2).sum()
    assert f"Kish effective sample size {kish:.1f} of 400 subjects" in printed
    assert "400 subjects, 50 ticks" in printed


def test_fit_roster_exposure_includes_never_moving_subjects(tmp_path: Path, capsys) -> None:
    """With a roster, a subject that never moves adds its 10 ticks to its state's exposure."""
    pd.DataFrame(
        {"subject": [1], "timestamp": [2000], "from_state": ["idle"], "to_state": ["active"]}
    ).to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"subject": [1, 2, 3], "state": ["idle", "idle", "away"]}).to_json(
        tmp_path / "roster.jsonl", orient="records", lines=True
    )
    argv = ["fit", str(tmp_path / "log.csv"), "--roster", str(tmp_path / "roster.jsonl")]
    code = main([*argv, *WINDOW, "--window-ticks", "10", "-o", str(tmp_path / "f.yaml")])
    assert code == 0
    (move,) = [t for t in load_model_file(tmp_path / "f.yaml").transitions if t.trigger]
    # idle exposure: subject 1 for ticks 0..2 (3 trials), subject 2 for 10: 1 / 13.
    assert move.probability == pytest.approx(100 / 13, rel=1e-5)
    assert "3 subjects, 10 ticks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("roster", "weight", "message"),
    [
        (None, None, "no-such.csv: no such roster"),
        (
            "subject,state\n1,idle\n",
            "w",
            "roster.csv: no column 'w' for the weight in the roster or the event log",
        ),
        ("subject,state,w\n1,idle,-2\n", "w", "roster.csv: roster: subject 1 has weight -2"),
        ("subject,state\n1,sleeping\n", None, "roster.csv: roster has states ['sleeping']"),
    ],
)
def test_fit_roster_errors_name_file_column_value(
    tmp_path: Path, capsys, roster: str | None, weight: str | None, message: str
) -> None:
    """A missing roster, a missing weight column, a bad weight or an unknown state: exit 2
    and one line naming the roster file and the column or value."""
    pd.DataFrame(
        {"subject": [1], "timestamp": [2000], "from_state": ["idle"], "to_state": ["active"]}
    ).to_csv(tmp_path / "log.csv", index=False)
    path = tmp_path / ("roster.csv" if roster is not None else "no-such.csv")
    if roster is not None:
        path.write_text(roster)
    extra = ["--weight", weight] if weight else []
    argv = ["fit", str(tmp_path / "log.csv"), "--roster", str(path), *extra, *WINDOW]
    code = main([*argv, "-o", str(tmp_path / "f.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert not (tmp_path / "f.yaml").exists()


def test_fit_by_refuses_roster_with_subjects(tmp_path: Path, capsys) -> None:
    """--roster lists the population: --subjects with it is a usage error naming both."""
    (tmp_path / "log.csv").write_text("subject,timestamp,from_state,to_state\n1,0,idle,active\n")
    (tmp_path / "r.csv").write_text("subject,state\n1,idle\n")
    argv = ["fit", str(tmp_path / "log.csv"), "--roster", str(tmp_path / "r.csv")]
    code = main([*argv, "--subjects", "5", *WINDOW, "-o", str(tmp_path / "f.yaml")])
    assert code == 2
    assert "--roster" in capsys.readouterr().err


def test_fit_by_group_writes_the_mixture_and_it_simulates_the_truth(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fit --by group`` writes one entity type per group with its share as subjects.count
    and its initial mix; each group's true chances lie in their intervals (99.9% each, 8
    intervals: all cover with probability >= 99.2%); and a run of the file has the
    mixture's occupancy at ticks 0, 9, 49 and 199: per state within 5 sd of one tick's
    sampling of n = 1000 subjects (the run's sampling, the truth's drawn initial mix and
    the fit's error, exposure 200 ticks x n, add up to at most 1.5 sd)."""
    log, roster = _population(tmp_path)
    mix = tmp_path / "mix.yaml"
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", *WINDOW]
    code = main([*argv, "--window-ticks", str(TICKS), "--confidence", "0.999", "-o", str(mix)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "group" in printed.splitlines()[0]
    assert "a: 30.0% of 1000 subjects" in printed and "b: 70.0% of 1000 subjects" in printed
    spec = load_model_file(mix)
    assert list(spec.entities) == ["a", "b"]
    assert [e.subjects.count for e in spec.entities.values()] == [300, 700]
    started = pd.read_csv(roster).query("group == 'b'")["state"].value_counts()
    initial = spec.entities["b"].model.initial
    assert isinstance(initial, dict) and set(initial) == {"active", "idle"}
    for state, share in initial.items():
        assert share == pytest.approx(started[state] / 700)
    groups = fit_by(
        str(log),
        by="group",
        tick_ms=1000,
        states=STATES,
        window_start=0,
        ticks=TICKS,
        roster=str(roster),
        confidence=0.999,
    )
    for group, truth in TRUTH.items():
        written = {t.trigger: t.probability for t in spec.entities[group].transitions}
        for t in groups.results[group].transitions:
            p = dict(truth["chances"][t.from_state])[t.to_state]
            assert t.ci_low <= p <= t.ci_high, (group, t)
            assert written[t.trigger] == pytest.approx(100 * t.probability, rel=1e-5)
    monkeypatch.setenv("DOGESIM_OUT_DIR", str(tmp_path / "out"))
    assert main(["run", str(mix), "--seed", "5", "--quiet"]) == 0
    # The same seed in the library: the run the CLI made, with its occupancy per tick.
    results = load_model_file(mix).run(seed=5, record_every=1)
    for name, result in results.items():
        lines = (tmp_path / "out" / "mix" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == result.events > 0
        assert {json.loads(line)["subject"]["group"] for line in lines} == {name}
    n = 1000
    for tick in (0, 9, 49, 199):
        counts = sum(result.occupancy[tick] for result in results.values())
        shares = np.asarray(counts, dtype=float) / n
        law = _truth_occupancy(tick)
        sd = np.sqrt(law * (1 - law) / n)
        assert np.all(np.abs(shares - law) <= 5 * sd), (tick, shares, law)


def test_fit_by_refuses_plot(tmp_path: Path, capsys) -> None:
    """--by with --plot is a usage error naming both (a plot draws one fit)."""
    log, roster = _population(tmp_path)
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", *WINDOW]
    code = main([*argv, "--plot", str(tmp_path / "p.png"), "-o", str(tmp_path / "m.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--by group" in err and "--plot" in err
    assert not (tmp_path / "m.yaml").exists()


def test_fit_by_kernel_gives_each_entity_its_dwell_laws(tmp_path: Path, monkeypatch) -> None:
    """--by with --kernel fits each group's dwell kernels from its own subjects: every entity
    type of the mixture file has a dwell law for each state it leaves, and the file runs."""
    log, roster = _population(tmp_path)
    mix = tmp_path / "mix.yaml"
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", "--kernel", *WINDOW]
    assert main([*argv, "--window-ticks", str(TICKS), "-o", str(mix)]) == 0
    spec = load_model_file(mix)
    for entity in spec.entities.values():
        assert set(entity.model.dwell) == set(STATES)
    # A stay in `active` lasts 1 / (its chances' sum) ticks on average: 8.3 in a, 16.7 in
    # b; from ~1,800 and ~5,800 stays a fitted mean has sd ~0.2 tick, so within 1.5.
    for group, truth in TRUTH.items():
        law = spec.entities[group].model.dwell["active"]
        lengths, weights = np.array(law.lengths), np.array(law.weights)
        mean = float((lengths * weights).sum() / weights.sum())
        assert abs(mean - 1 / sum(p for _, p in truth["chances"]["active"])) < 1.5, group
    monkeypatch.setenv("DOGESIM_OUT_DIR", str(tmp_path / "out"))
    assert main(["run", str(mix), "--seed", "1", "--quiet"]) == 0


def test_fit_by_weights_print_each_groups_kish_size(tmp_path: Path, capsys) -> None:
    """--by with --weight: each group's share is its weight's share and its line gives its
    Kish effective sample size ``(sum w)^2 / sum w^2``."""
    log, roster = _population(tmp_path)
    table = pd.read_csv(roster)
    table["w"] = np.where(table["subject"] % 2 == 0, 1.0, 3.0)
    table.loc[table["group"] == "a", "w"] = 2.0
    table.to_csv(roster, index=False)
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", "--weight", "w"]
    assert main([*argv, *WINDOW, "-o", str(tmp_path / "m.yaml")]) == 0
    printed = capsys.readouterr().out
    weights = {g: part["w"].to_numpy() for g, part in table.groupby("group")}
    total = sum(w.sum() for w in weights.values())
    for group, w in weights.items():
        kish = w.sum() ** 2 / (w**2).sum()
        share = w.sum() / total
        assert f"{group}: {share:.1%} of 1000 subjects" in printed
        assert f"Kish effective sample size {kish:.1f}" in printed
    counts = [e.subjects.count for e in load_model_file(tmp_path / "m.yaml").entities.values()]
    assert counts == [round(1000 * weights["a"].sum() / total), 1000 - counts[0]]


def test_fit_roster_reads_iso_times(tmp_path: Path, capsys) -> None:
    """ISO-8601 times in the log, the roster's arrival ``start`` and --start fit the same as
    epoch milliseconds: a subject arriving at tick 4 is at risk from tick 4 on."""
    start = pd.Timestamp("2024-03-01T00:00:00Z")
    log = pd.DataFrame(
        {
            "subject": ["u1", "u2"],
            "timestamp": [(start + pd.Timedelta(seconds=s)).isoformat() for s in (2, 6)],
            "from_state": ["idle", "idle"],
            "to_state": ["active", "active"],
        }
    )
    log.to_csv(tmp_path / "log.csv", index=False)
    roster = pd.DataFrame(
        {
            "subject": ["u1", "u2", "u3"],
            "state": ["idle", "idle", "idle"],
            "start": [start.isoformat(), (start + pd.Timedelta(seconds=4)).isoformat(), None],
        }
    )
    roster["start"] = roster["start"].fillna(start.isoformat())
    roster.to_csv(tmp_path / "roster.csv", index=False)
    argv = ["fit", str(tmp_path / "log.csv"), "--roster", str(tmp_path / "roster.csv")]
    window = ["--tick", "1s", "--states", ",".join(STATES), "--start", start.isoformat()]
    assert main([*argv, *window, "--window-ticks", "10", "-o", str(tmp_path / "f.yaml")]) == 0
    (move,) = [t for t in load_model_file(tmp_path / "f.yaml").transitions if t.trigger]
    # idle exposure: u1 ticks 0..2 (3), u2 ticks 4..6 (3), u3 all 10: 2 events / 16.
    assert move.probability == pytest.approx(100 * 2 / 16, rel=1e-5)


def test_fit_by_group_under_half_a_subject_is_left_out(tmp_path: Path, capsys, monkeypatch) -> None:
    """A group whose weighted share is under half a subject has no entity type (one needs a
    subject); the file says so, the CLI prints its 0 subjects, and the file runs."""
    log, roster = _population(tmp_path)
    table = pd.read_csv(roster)
    table["w"] = np.where(table["group"] == "b", 1e-6, 1.0)
    table.to_csv(roster, index=False)
    mix = tmp_path / "mix.yaml"
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", "--weight", "w"]
    assert main([*argv, *WINDOW, "-o", str(mix)]) == 0
    assert "b: 0.0% of 1000 subjects -> left out (under half a subject" in capsys.readouterr().out
    spec = load_model_file(mix)
    assert {name: e.subjects.count for name, e in spec.entities.items()} == {"a": 1000}
    assert "# group='b': share 0.00023% is under half a subject; left out" in mix.read_text()
    monkeypatch.setenv("DOGESIM_OUT_DIR", str(tmp_path / "out"))
    assert main(["run", str(mix), "--quiet"]) == 0


def test_fit_by_numeric_groups_become_entity_names(tmp_path: Path) -> None:
    """Group values that are not identifiers (1, 2) name entity types ``group_1``,
    ``group_2``, and each keeps its value as a constant subject attribute."""
    log, roster = _population(tmp_path)
    table = pd.read_csv(roster)
    table["group"] = table["group"].map({"a": 1, "b": 2})
    table.to_csv(roster, index=False)
    mix = tmp_path / "mix.yaml"
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group", *WINDOW]
    assert main([*argv, "-o", str(mix)]) == 0
    spec = load_model_file(mix)
    assert list(spec.entities) == ["group_1", "group_2"]
    values = [e.subjects.attributes["group"].params[0] for e in spec.entities.values()]
    assert values == [1, 2]


def test_fit_help_lists_population_flags(capsys) -> None:
    """``dogesim fit --help`` shows --roster, --weight and --by."""
    assert main(["fit", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--roster ROSTER", "--weight COLUMN", "--by COLUMN"):
        assert flag in text


MODEL = """\
name: configured
seed: 9
states: [idle, active, away]
initial_state: idle
tick: 1s
ticks: 200
start: 0
subjects: {count: 1000}
sinks:
  events: {type: jsonl, path: out/events.jsonl}
default_sinks: [events]
transitions:
  - {trigger: start, from: idle, to: active, probability: 10}
  - {trigger: rest, from: active, to: idle, probability: 5}
  - {trigger: leave, from: active, to: away, probability: 1}
  - {trigger: back, from: away, to: idle, probability: 10}
"""


def test_fit_by_with_a_model_keeps_its_seed_window_and_triggers(tmp_path: Path) -> None:
    """--by with --model: the roster (not the model's 1000) is the population, the model
    gives states, tick and window, its seed is kept, the configured chances are compared,
    and the file says its sinks were not written back (each group has its own)."""
    log, roster = _population(tmp_path)
    names = {"idle": {"active": "start"}, "active": {"idle": "rest", "away": "leave"}}
    names["away"] = {"idle": "back"}
    events = pd.read_csv(log)
    pairs = zip(events["from_state"], events["to_state"], strict=True)
    events["trigger"] = [names[a][b] for a, b in pairs]
    events.to_csv(log, index=False)
    (tmp_path / "m.yaml").write_text(MODEL)
    mix = tmp_path / "mix.yaml"
    argv = ["fit", str(log), "--roster", str(roster), "--by", "group"]
    assert main([*argv, "--model", str(tmp_path / "m.yaml"), "-o", str(mix)]) == 0
    spec = load_model_file(mix)
    assert spec.seed == 9 and spec.ticks == 200
    assert {t.trigger for t in spec.entities["b"].transitions} == {"start", "rest", "leave", "back"}
    descriptions = [t.description for t in spec.entities["a"].transitions]
    assert all("configured" in (text or "") for text in descriptions)
    assert "configured's sinks were not written back: each group has its own" in mix.read_text()


def test_fit_log_error_names_the_log_file(tmp_path: Path, capsys) -> None:
    """An inconsistent log (a subject's second event starts where its first did not end)
    with a roster: exit 2, the message starts with the log's path and names the subject."""
    log = tmp_path / "log.csv"
    log.write_text("subject,timestamp,from_state,to_state\n1,1000,idle,active\n1,3000,away,idle\n")
    (tmp_path / "r.csv").write_text("subject,state\n1,idle\n")
    argv = ["fit", str(log), "--roster", str(tmp_path / "r.csv"), *WINDOW]
    assert main([*argv, "-o", str(tmp_path / "f.yaml")]) == 2
    assert f"dogesim: {log}: event log: subject 1 ends in 'active'" in capsys.readouterr().err


def test_fit_by_missing_column_names_it_and_the_roster(tmp_path: Path, capsys) -> None:
    """--by COLUMN that neither the roster nor the log has: exit 2 naming the roster file
    and the column."""
    log, roster = _population(tmp_path)
    argv = ["fit", str(log), "--roster", str(roster), "--by", "region", *WINDOW]
    assert main([*argv, "-o", str(tmp_path / "m.yaml")]) == 2
    assert f"{roster}: no column 'region' for the group" in capsys.readouterr().err


def test_fit_refuses_to_write_over_its_own_model_or_log(tmp_path: Path, capsys) -> None:
    """``-o`` naming the --model file (whose sinks and callbacks the fitted file does not
    keep) or the event log is refused with exit 2, and the file is left as it was."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    model = tmp_path / "banking.yaml"
    shutil.copy(root / "models" / "banking.yaml", model)
    log = tmp_path / "events.jsonl"
    assert main(["run", str(model), "--out", str(log), "-q"]) == 0
    before = model.read_bytes(), log.read_bytes()
    assert main(["fit", str(log), "--model", str(model), "-o", str(model)]) == 2
    assert "is the --model file it reads" in capsys.readouterr().err
    assert main(["fit", str(log), "--model", str(model), "-o", str(log)]) == 2
    assert "is the EVENTS file it reads" in capsys.readouterr().err
    assert (model.read_bytes(), log.read_bytes()) == before
