"""Every fenced example of README.md runs as written.

Holds the tests that run the README's ```python blocks (in order, in one namespace, in a
temporary folder holding a copy of `models/`, as a reader pasting them into one session
would), load its ```yaml blocks with `dogesim.modelfile` (complete files as they are,
fragments merged into a small base model), and run its ```shell `dogesim ...` commands
through `dogesim.cli.main`. Blocks that need Kafka or PostgreSQL are run by
`tests/integration/test_readme_examples.py`; blocks marked `<!-- fragment -->` are only
parsed.
"""

from __future__ import annotations

import ast
import contextlib
import glob
import os
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dogesim.cli import main as cli_main
from dogesim.modelfile import load_model_file
from tests.readme_blocks import REPO_ROOT, Block, readme_blocks

PYTHON_BLOCKS = readme_blocks("python")
LOCAL_PYTHON = [block for block in PYTHON_BLOCKS if not block.needs_services]
YAML_BLOCKS = readme_blocks("yaml")
SHELL_BLOCKS = readme_blocks("shell")


def _ids(blocks: list[Block]) -> list[str]:
    """Test ids: the README line of each block."""
    return [block.name for block in blocks]


@pytest.fixture()
def readme_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working folder with a copy of `models/`, and no DOGESIM_* overrides."""
    shutil.copytree(REPO_ROOT / "models", tmp_path / "models")
    for name in ("DOGESIM_OUT_DIR", "DOGESIM_SEED", "KAFKA", "KAFKA_USER", "KAFKA_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- python blocks ---------------------------------------------------------------------


def _check_quickstart(ns: dict[str, Any], folder: Path) -> None:
    """The Quickstart's result has the shapes and summary its comments describe."""
    result = ns["result"]
    rows = len(result.row_ticks())
    assert result.occupancy.shape == (rows, 3)
    assert result.events_per_tick.shape == (rows, 4)
    assert (result.occupancy.sum(axis=1) == 10_000).all()
    assert result.row_ticks()[-1] == 1439
    summary = result.summary()
    for trigger in ("login", "logout", "open_loan_screen", "close_loan_screen"):
        assert trigger in summary
    assert "events/s" in summary and "acknowledged" in summary
    assert len(ns["clicks"].events) == result.events


def _check_resume(ns: dict[str, Any], folder: Path) -> None:
    """Stop at tick 500, checkpoint, resume: the JSONL equals an uninterrupted run's."""
    resumed = (folder / "out" / "banking.jsonl").read_bytes()
    whole_dir = folder / "whole"
    os.environ["DOGESIM_OUT_DIR"] = str(whole_dir)
    try:
        load_model_file(folder / "models" / "banking.yaml").simulation().run()
    finally:
        del os.environ["DOGESIM_OUT_DIR"]
    assert resumed == (whole_dir / "banking.jsonl").read_bytes()
    assert resumed.count(b"\n") > 0


#: Extra assertions for blocks, keyed by a text that occurs only in that block.
BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "clicks = MemorySink(": _check_quickstart,
    'sim.checkpoint("run.ckpt")': _check_resume,
}


def _run_python(block: Block, namespace: dict[str, Any]) -> None:
    """Executes a block in `namespace`; a fragment is only parsed."""
    if block.fragment:
        ast.parse(block.text, block.name)
    else:
        exec(compile(block.text, block.name, "exec"), namespace)


@pytest.fixture()
def python_session(readme_folder: Path) -> Iterator[Callable[[Block], dict[str, Any]]]:
    """Runs the local README blocks up to and including a given one in one namespace.

    An earlier block that fails is passed over (its own test reports it), so one broken
    example does not hide whether the later ones work.
    """

    def run_upto(target: Block) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "__readme__"}
        for block in LOCAL_PYTHON:
            if block is target:
                _run_python(block, namespace)
                return namespace
            if not block.fragment:
                with contextlib.suppress(Exception):  # reported by that block's own test
                    _run_python(block, namespace)
        raise AssertionError(f"{target.name} is not a local python block")

    yield run_upto


def test_extractor_reads_languages_lines_and_fragment_marks(tmp_path: Path) -> None:
    """Blocks come with their language and fence line; `<!-- fragment -->` marks the next."""
    readme = tmp_path / "README.md"
    readme.write_text(
        "# t\n\n```python\nx = 1\n```\n\n<!-- fragment -->\n\n```python\ny(\n```\n"
        "```yaml\na: 1\n```\n",
        encoding="utf-8",
    )
    blocks = readme_blocks(path=readme)
    assert [(b.lang, b.line, b.text, b.fragment) for b in blocks] == [
        ("python", 3, "x = 1\n", False),
        ("python", 9, "y(\n", True),
        ("yaml", 12, "a: 1\n", False),
    ]
    assert [b.line for b in readme_blocks("yaml", path=readme)] == [12]


def test_readme_has_python_examples() -> None:
    """The README's python blocks are found (a broken extractor cannot pass vacuously)."""
    assert len(LOCAL_PYTHON) >= 7
    assert any(block.needs_services for block in PYTHON_BLOCKS)


@pytest.mark.parametrize("block", LOCAL_PYTHON, ids=_ids(LOCAL_PYTHON))
def test_python_block_runs(
    block: Block, python_session: Callable[[Block], dict[str, Any]], readme_folder: Path
) -> None:
    """The block runs after the ones before it, and does what its comments say."""
    namespace = python_session(block)
    for marker, check in BLOCK_CHECKS.items():
        if marker in block.text:
            check(namespace, readme_folder)


@pytest.mark.parametrize("marker", sorted(BLOCK_CHECKS))
def test_block_checks_match_a_block(marker: str) -> None:
    """Each extra check is bound to exactly one README block (none silently dropped)."""
    assert sum(marker in block.text for block in PYTHON_BLOCKS) == 1


# --- yaml blocks -----------------------------------------------------------------------

#: A small complete model the README's yaml fragments are merged into (top-level keys of the
#: fragment replace the base's).
BASE_MODEL: dict[str, Any] = {
    "name": "readme",
    "seed": 1,
    "states": ["idle", "waiting", "talking"],
    "initial_state": "idle",
    "tick": "1m",
    "ticks": 60,
    "start": "2026-12-01T00:00:00Z",
    "subjects": {"count": 3},
    "sinks": {"events": {"type": "memory"}},
    "default_sinks": ["events"],
    "transitions": [{"trigger": "call", "from": "idle", "to": "waiting", "probability": 1}],
}


def _is_complete_model(block: Block) -> bool:
    """A yaml block that is a whole model file (it names its states and initial state)."""
    data = yaml.safe_load(block.text)
    return isinstance(data, dict) and "states" in data and "initial_state" in data


def _fragment_model(target: Block) -> dict[str, Any]:
    """`BASE_MODEL` with the named profiles of earlier fragments and then `target` merged in.

    The README's fragments build on each other as its python blocks do: arrivals use the
    `office` profile defined a few blocks before.
    """
    merged = dict(BASE_MODEL)
    for block in YAML_BLOCKS:
        if block is target:
            break
        earlier = yaml.safe_load(block.text)
        if isinstance(earlier, dict) and "profiles" in earlier:
            merged["profiles"] = {**merged.get("profiles", {}), **earlier["profiles"]}
    merged.update(yaml.safe_load(target.text))
    return merged


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=_ids(YAML_BLOCKS))
def test_yaml_block_loads(
    block: Block, readme_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Complete files load as they are; fragments load merged into a base model and run."""
    if block.fragment:
        yaml.safe_load(block.text)
        return
    if _is_complete_model(block):
        # The example's secrets come from the environment, as the README says they do.
        monkeypatch.setenv("KAFKA_USER", "reader")
        monkeypatch.setenv("KAFKA_SECRET", "s3cret-readme")
        path = readme_folder / "models" / "readme.yaml"
        path.write_text(block.text, encoding="utf-8")
        spec = load_model_file(path)
        assert "s3cret-readme" not in repr(spec) + repr(spec.sinks)
    else:
        merged = _fragment_model(block)
        path = readme_folder / "readme-fragment.yaml"
        path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
        spec = load_model_file(path)
    spec.simulation().run()


# --- shell blocks ----------------------------------------------------------------------


def _dogesim_commands(block: Block) -> list[list[str]]:
    """The `dogesim ...` lines of a block as argv lists; synopsis lines (`[...]`) left out."""
    commands = []
    for raw in block.text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("dogesim ") or "[" in line:
            continue
        commands.append(shlex.split(line)[1:])
    return commands


def _expand(argv: list[str]) -> list[str]:
    """`argv` with shell globs (`models/*.yaml`) expanded in the current folder."""
    expanded: list[str] = []
    for arg in argv:
        expanded.extend(sorted(glob.glob(arg)) if "*" in arg else [arg])
    return expanded


def _is_cheap(argv: list[str]) -> bool:
    """Commands a unit test can run: no live pacing, no run that waits for a signal."""
    return "--live" not in argv and "--until-stopped" not in argv and "--resume" not in argv


SHELL_COMMANDS = [
    (block, argv) for block in SHELL_BLOCKS for argv in _dogesim_commands(block) if _is_cheap(argv)
]


def test_scripts_run_command_writes_the_banking_log(
    readme_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run models/banking.yaml --report ...` (scripts/run) writes the JSONL and plot."""
    pytest.importorskip("matplotlib")
    status = cli_main(["run", "models/banking.yaml", "--report", "out/banking-occupancy.png"])
    assert status == 0, capsys.readouterr().err
    lines = (readme_folder / "out" / "banking.jsonl").read_text().splitlines()
    assert len(lines) > 0
    assert (readme_folder / "out" / "banking-occupancy.png").stat().st_size > 0


def test_readme_has_shell_commands() -> None:
    """The extractor finds the validate, graph, report and fit commands."""
    verbs = {argv[0] for _, argv in SHELL_COMMANDS}
    assert {"validate", "graph", "report", "fit"} <= verbs


@pytest.mark.parametrize(
    ("block", "argv"),
    SHELL_COMMANDS,
    ids=[f"{block.name}:{' '.join(argv[:2])}" for block, argv in SHELL_COMMANDS],
)
def test_shell_command_succeeds(
    block: Block, argv: list[str], readme_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command exits 0 in a folder holding the models and the banking run's log."""
    if argv[0] in ("report", "fit"):
        pytest.importorskip("matplotlib")
    assert cli_main(["run", "models/banking.yaml"]) == 0
    # `events.jsonl` in the README stands for the reader's own log: use the banking run's.
    shutil.copy(readme_folder / "out" / "banking.jsonl", readme_folder / "events.jsonl")
    capsys.readouterr()
    status = cli_main(_expand(argv))
    out, err = capsys.readouterr()
    assert status == 0, err
    if argv[0] == "graph":
        assert all(state in out for state in ("offline", "online", "loan_screen"))
    for flag in ("-o", "--plot"):
        if flag in argv:  # the files the command was asked to write exist
            assert (readme_folder / argv[argv.index(flag) + 1]).stat().st_size > 0
