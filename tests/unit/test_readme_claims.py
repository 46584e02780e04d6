"""README claims that no other test pinned, each checked against the code.

Holds one test per claim (the docstring quotes or names the README's words): the default
seed, the Kafka producer defaults, the error hierarchy, sub-millisecond ticks, the file
sinks' 1 MiB buffer, the Parquet sink's row groups, codec and conformance, calendar ticks
without live pacing, model-file integer and message limits, secret-named settings,
`populations:`, and the files and folders the README names (models, notebooks, scripts, the
project layout)."""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dogesim import JsonLinesSink, Model, Simulation
from dogesim.cli import main as cli_main
from dogesim.errors import DogesimError, ModelError, RunError, SinkConfigError, SinkError
from dogesim.modelfile import load_model_file
from dogesim.sinks.conformance import SinkConformance, SinkHarness
from tests.readme_blocks import README, REPO_ROOT, readme_blocks

README_TEXT = README.read_text(encoding="utf-8")


def _two_state_model(**kwargs: Any) -> Model:
    """a <-> b, both ways certain, with `kwargs` for the sinks."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 100, **kwargs)
    model.add_transition("back", "b", "a", 100, **kwargs)
    return model


# --- reproducibility and validation -----------------------------------------------------


def test_default_seed_is_drawn_from_global_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """No seed= and no DOGESIM_SEED: the seed is `random.getrandbits(63)` of global random."""
    monkeypatch.delenv("DOGESIM_SEED", raising=False)
    random.seed(20261202)
    expected = random.getrandbits(63)
    random.seed(20261202)
    result = Simulation(_two_state_model(), 3, ticks=3, tick_ms=1).run()
    assert result.seed == expected


class _DrawingFactory:
    """A subject factory that records a draw of global random and numpy's legacy generator."""

    def __init__(self) -> None:
        self.draws: list[tuple[float, float]] = []

    def create(self) -> object:
        self.draws.append((random.random(), float(np.random.random())))
        return object()


def _factory_draws(seed: int, pre_seed: int, *, seed_globals: bool = True) -> list[Any]:
    """What the factory drew in a seeded run, the globals seeded with `pre_seed` before it."""
    random.seed(pre_seed)
    np.random.seed(pre_seed)
    factory = _DrawingFactory()
    Simulation(
        _two_state_model(),
        3,
        ticks=2,
        tick_ms=1,
        seed=seed,
        subject_factory=factory,
        seed_globals=seed_globals,
    ).run()
    return factory.draws


def test_seed_globals_reseeds_random_and_numpy_before_the_first_subject() -> None:
    """seed= fixes what factories draw from `random` and numpy's global generator."""
    assert _factory_draws(11, pre_seed=1) == _factory_draws(11, pre_seed=2)
    assert _factory_draws(11, pre_seed=1) != _factory_draws(12, pre_seed=1)
    # seed_globals=False leaves the globals alone: the draws follow their earlier state.
    assert _factory_draws(11, 1, seed_globals=False) != _factory_draws(11, 2, seed_globals=False)


def test_the_seed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """'The seed is logged': the run's seed appears in the dogesim log at INFO."""
    with caplog.at_level(logging.INFO, logger="dogesim"):
        Simulation(_two_state_model(), 2, ticks=2, tick_ms=1, seed=987654321).run()
    assert any("987654321" in record.getMessage() for record in caplog.records)


def test_error_hierarchy() -> None:
    """ModelError is a ValueError; SinkConfigError is a SinkError and a ValueError."""
    assert issubclass(ModelError, ValueError) and issubclass(ModelError, DogesimError)
    assert issubclass(SinkConfigError, SinkError) and issubclass(SinkConfigError, ValueError)
    assert issubclass(SinkError, DogesimError) and issubclass(RunError, DogesimError)


@pytest.mark.parametrize("tick_ms", [0.5, 0, -60_000])
def test_sub_millisecond_and_non_positive_ticks_are_refused(tick_ms: float) -> None:
    """Non-positive or sub-millisecond tick lengths raise ModelError naming tick_ms."""
    with pytest.raises(ModelError, match="tick_ms"):
        Simulation(_two_state_model(), 1, ticks=1, tick_ms=tick_ms)
    with pytest.raises(ModelError, match="tick_ms"):
        Model(["a", "b"], "a", tick_ms=tick_ms)


# --- Kafka defaults --------------------------------------------------------------------


def test_kafka_producer_defaults_are_added_unless_set() -> None:
    """Idempotent, acks=all, message.timeout.ms=120000, linger.ms=20, lz4 — unless conf says."""
    pytest.importorskip("confluent_kafka")
    from dogesim import KafkaSinkFactory

    defaults = {
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 120_000,
        "linger.ms": 20,
        "compression.type": "lz4",
    }
    plain = KafkaSinkFactory(["127.0.0.1:1"], "bank")
    assert {key: plain.conf[key] for key in defaults} == defaults
    zstd = KafkaSinkFactory(["127.0.0.1:1"], "bank", conf={"compression.type": "zstd"})
    assert zstd.conf["compression.type"] == "zstd"
    assert {key: zstd.conf[key] for key in defaults if key != "compression.type"} == {
        key: value for key, value in defaults.items() if key != "compression.type"
    }


# --- file sinks ------------------------------------------------------------------------


def test_file_sink_writes_through_a_one_mib_buffer(tmp_path: Path) -> None:
    """JSON Lines are written in 1 MiB buffers and acknowledged only at close()'s fsync."""
    line_bytes = len('{"n":0000,"pad":""}\n') + 100
    sink = JsonLinesSink(tmp_path / "x.jsonl", lambda ts, s, t: {"n": 1000 + ts, "pad": "x" * 100})
    model = _two_state_model(event_sinks=[sink])
    result = Simulation(model, 100, ticks=200, tick_ms=1, seed=1).run()
    points = sink.flush_points
    offsets = [0] + [point.offset for point in points if not point.synced]
    assert len(offsets) >= 3
    # Every write but the last (the rest, at close) is the first line that filled the buffer.
    for before, after in itertools.pairwise(offsets[:-1]):
        assert 1 << 20 <= after - before < (1 << 20) + line_bytes
    assert points[-1].synced and points[-1].lines == result.events
    assert sink.ledger.acknowledged == result.events


def test_parquet_sink_writes_zstd_row_groups_of_100_000_rows(tmp_path: Path) -> None:
    """'one zstd-compressed row group per `row_group_size` rows (100,000)': the defaults."""
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from dogesim.sinks.parquet import ParquetSink

    path = tmp_path / "e.parquet"
    sink = ParquetSink(path)
    model = _two_state_model(event_sinks=[sink])
    result = Simulation(model, 1_000, ticks=150, tick_ms=1, seed=1).run()
    assert result.events == 150_000
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(k).num_rows for k in range(meta.num_row_groups)] == [100_000, 50_000]
    assert meta.row_group(0).column(0).compression == "ZSTD"


def _parquet_harness(tmp_path: Path) -> SinkHarness:
    """ParquetSink to a file; read back with pyarrow once the file is finished."""
    pq = pytest.importorskip("pyarrow.parquet")
    from dogesim.sinks.parquet import ParquetSink

    path = tmp_path / "events.parquet"

    def values() -> list[int]:
        if not path.exists():
            return []
        return [int(n) for n in pq.read_table(path).column("n").to_pylist()]

    return SinkHarness(
        "parquet", lambda mapper: ParquetSink(path, mapper), lambda: len(values()), values
    )


class TestParquetSinkConformance(SinkConformance):
    """'checked ... by the conformance suite': the Parquet sink keeps the sink contract."""

    @pytest.fixture()
    def sink_under_test(self, tmp_path: Path) -> SinkHarness:
        """The Parquet sink, writing into `tmp_path`."""
        return _parquet_harness(tmp_path)


# --- calendar ticks --------------------------------------------------------------------


def test_calendar_ticks_refuse_live_pacing() -> None:
    """'such runs refuse jitter, live pacing and resources': live pacing, naming the tick."""
    with pytest.raises(ModelError, match=r"'1mo'.*live pacing"):
        Simulation(_two_state_model(), 1, ticks=2, tick_ms="1mo", live=True)


# --- model files -----------------------------------------------------------------------


@pytest.fixture()
def models_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder holding a copy of `models/`, as the working directory."""
    shutil.copytree(REPO_ROOT / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_model_file_error_names_file_line_key_and_value(models_copy: Path) -> None:
    """`models/banking.yaml:<line>: transitions[3].probability: 'abc' is not a number`."""
    path = Path("models/banking.yaml")
    lines = path.read_text().splitlines()
    probabilities = [i for i, line in enumerate(lines) if line.strip().startswith("probability:")]
    at = probabilities[3]
    lines[at] = re.sub(r"probability: .*", "probability: abc", lines[at])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelError) as caught:
        load_model_file(path)
    expected = f"models/banking.yaml:{at + 1}: transitions[3].probability: 'abc' is not a number"
    assert str(caught.value).startswith(expected)


def _minimal_model(extra: str = "") -> str:
    """A small valid model file's text, with `extra` lines appended."""
    return (
        "name: claims\nstates: [a, b]\ninitial_state: a\ntick: 1s\nticks: 5\n"
        "subjects: {count: 2}\nsinks: {events: {type: memory}}\ndefault_sinks: [events]\n"
        "transitions:\n  - {trigger: go, from: a, to: b, probability: 10}\n" + extra
    )


def test_model_file_integers_have_at_most_40_digits(tmp_path: Path) -> None:
    """A 41-digit integer is refused with a ModelError naming the key; 40 digits are read."""
    path = tmp_path / "big.yaml"
    path.write_text(_minimal_model().replace("ticks: 5", f"ticks: {'9' * 41}"))
    with pytest.raises(ModelError, match=r"big\.yaml:\d+: ticks"):
        load_model_file(path)
    path.write_text(_minimal_model().replace("ticks: 5", f"ticks: {'9' * 40}"))
    with pytest.raises(ModelError, match=r"2,147,483,647"):  # read, then over the tick limit
        load_model_file(path)


@pytest.mark.parametrize(("per_tick", "refused"), [(1000, True), (100, False)])
def test_subject_limit_counts_expected_arrivals(
    tmp_path: Path, per_tick: int, refused: bool
) -> None:
    """Subjects, count plus expected arrivals, are at most 999,999,999 (checked at load)."""
    path = tmp_path / "arrivals.yaml"
    text = _minimal_model().replace("ticks: 5", "ticks: 2000000").replace("tick: 1s", "tick: 1ms")
    path.write_text(text + f"arrivals: {per_tick}\n")  # 2e9 or 2e8 arrivals expected
    if refused:
        with pytest.raises(ModelError, match=r"arrivals: .*999,999,999"):
            load_model_file(path)
    else:
        assert load_model_file(path).arrivals is not None


def test_settings_named_like_secrets_are_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`token`, `*.secret`, `sasl.password` values show as *** in reprs, summary and CLI."""
    pytest.importorskip("confluent_kafka")
    secrets = {
        "token": "tok-9f3a1",
        "sasl.oauthbearer.client.secret": "cs-77b2e",
        "sasl.password": "pw-51c0d",
    }
    conf = ", ".join(f"{key}: {value}" for key, value in secrets.items())
    kafka = f"{{type: kafka, bootstrap_servers: '127.0.0.1:1', topic: t, conf: {{{conf}}}}}"
    text = _minimal_model().replace(
        "sinks: {events: {type: memory}}\ndefault_sinks: [events]\n",
        f"sinks:\n  kafka: {kafka}\ndefault_sinks: [kafka]\n",
    )
    path = tmp_path / "secret.yaml"
    path.write_text(text)
    spec = load_model_file(path)
    assert cli_main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    shown = repr(spec) + repr(spec.sinks) + spec.summary() + out + err
    assert "***" in repr(spec.sinks)
    assert [value for value in secrets.values() if value in shown] == []


def test_support_center_uses_every_online_feature() -> None:
    """support_center.yaml: 5 agents, rates, office-hour profiles, arrivals and churn."""
    spec = load_model_file(REPO_ROOT / "models" / "support_center.yaml")
    assert spec.resources == {"agents": 5}
    assert spec.arrivals and spec.churn and spec.profiles
    assert any("per" in str(t.get("probability", "")) for t in _raw_transitions(spec.path))


def _raw_transitions(path: Path | str) -> list[dict[str, Any]]:
    """The transitions list of a model file, as YAML reads it."""
    import yaml

    return list(yaml.safe_load(Path(path).read_text())["transitions"])


def test_populations_is_entities_and_run_gives_each_types_result_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'`entities:` (or `populations:`)'; '`spec.run()` returns each type's result by name'."""
    pytest.importorskip("faker")
    from dogesim.modelfile.entities import EntitiesResult, EntitiesSpec

    monkeypatch.setenv("DOGESIM_OUT_DIR", str(tmp_path))
    text = (REPO_ROOT / "models" / "shop.yaml").read_text(encoding="utf-8")
    assert text.count("\nentities:\n") == 1
    path = tmp_path / "shop.yaml"
    path.write_text(text.replace("\nentities:\n", "\npopulations:\n"), encoding="utf-8")
    spec = load_model_file(path, ticks=30)
    assert isinstance(spec, EntitiesSpec)
    result = spec.run()
    assert isinstance(result, EntitiesResult)
    assert list(result) == ["customers", "products", "orders"]
    assert result.events == sum(one.events for one in result.values()) > 0


# --- files and folders the README names ------------------------------------------------


def test_models_folder_holds_the_models_the_readme_names() -> None:
    """`models/` holds exactly the models the README lists as shipped, and each loads."""
    listed = re.search(r"ship with the package \(([^)]*)\)", " ".join(README_TEXT.split()))
    assert listed is not None
    named = sorted(name.strip() + ".yaml" for name in listed.group(1).split(","))
    names = sorted(path.name for path in (REPO_ROOT / "models").glob("*.yaml"))
    assert names == named
    for name in names:
        load_model_file(REPO_ROOT / "models" / name)


def test_notebooks_named_by_the_readme_exist() -> None:
    """notebooks/ holds 01_explore, 02_calibrate, 03_export and 04_real_cohort."""
    for name in ("01_explore", "02_calibrate", "03_export", "04_real_cohort"):
        assert (REPO_ROOT / "notebooks" / f"{name}.ipynb").is_file()


def test_scripts_exist_and_run_the_banking_model() -> None:
    """scripts/run, test, bootstrap, services are executable; run calls the script the README
    names, and that script runs the banking model at the README's size."""
    for name in ("run", "test", "bootstrap", "services"):
        assert os.access(REPO_ROOT / "scripts" / name, os.X_OK), name
    run = (REPO_ROOT / "scripts" / "run").read_text()
    assert "scripts/first_run.py" in run and "scripts/first_run.py" in README_TEXT
    first_run = (REPO_ROOT / "scripts" / "first_run.py").read_text()
    assert "banking" in first_run and "10_000" in first_run and "1440" in first_run


def _layout_paths() -> list[str]:
    """The paths the README's project-layout block names (`dir/` and the files after it)."""
    layout = next(b for b in readme_blocks("") if "tests/unit/" in b.text and "scripts/" in b.text)
    paths = []
    for line in layout.text.splitlines():
        folder, _, listed = line.partition(" ")
        paths.append(folder)
        if folder == "dogesim/":
            paths.extend(folder + item.strip() for item in listed.split(","))
    return paths


def test_project_layout_names_only_paths_that_exist() -> None:
    """Every folder and file named in the README's project layout exists in the repository."""
    paths = _layout_paths()
    assert "dogesim/model.py" in paths and "scripts/" in paths
    missing = [path for path in paths if not (REPO_ROOT / path).exists()]
    assert missing == []


def test_readme_tables_and_claims_are_found() -> None:
    """The README text these tests read is there (a renamed section cannot pass silently)."""
    assert "e.g.\n`models/banking.yaml:" in README_TEXT
    assert "at most 40 digits" in README_TEXT and "1 MiB buffer" in README_TEXT
    assert "`row_group_size` rows (100,000)" in " ".join(README_TEXT.split())
    assert "refuse jitter, live pacing and resources" in " ".join(README_TEXT.split())
