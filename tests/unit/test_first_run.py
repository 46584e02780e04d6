"""A pip user's first run: the wheel ships the example models; ``dogesim models``,
``dogesim run NAME`` and ``dogesim init NAME`` work from any folder.

The wheel test builds the real wheel from a copy of the sources, installs it with
``pip install --no-deps --target`` and runs the installed command from a folder outside the
checkout (its dependencies come from the running interpreter's environment).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.modelfile import load_model_file
from dogesim.modelfile.shipped import (
    MODELS_DIR,
    model_description,
    resolve_model,
    shipped_models,
    starter_model,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("banking", "ecommerce", "iot_fleet", "music", "shop", "support_center")


def test_setup_cfg_ships_the_models_as_package_data() -> None:
    """setup.cfg's package data lists dogesim/models/*.yaml, where every model file lives."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    data = config["options.package_data"]["dogesim"].split()
    assert "models/*.yaml" in data
    assert MODELS_DIR == ROOT / "dogesim" / "models"
    assert set(shipped_models()) >= set(SHIPPED)


def test_top_level_models_is_a_link_to_the_package_models() -> None:
    """`models/` in the checkout is a symlink to dogesim/models, so old paths keep working."""
    link = ROOT / "models"
    assert link.is_symlink()
    assert link.resolve() == MODELS_DIR.resolve()
    assert (link / "banking.yaml").read_bytes() == (MODELS_DIR / "banking.yaml").read_bytes()


def test_models_lists_each_shipped_model_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dogesim models` prints one line per shipped model: its name and description."""
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in SHIPPED:
        description = model_description(MODELS_DIR / f"{name}.yaml")
        assert description
        assert any(line.split() == [name, *description.split()] for line in lines), lines


def test_a_bare_name_runs_the_shipped_model_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run banking` in an empty folder runs the shipped banking model into
    out/banking.jsonl there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOGESIM_OUT_DIR", raising=False)
    assert main(["run", "banking", "--ticks", "300"]) == 0
    lines = (tmp_path / "out" / "banking.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["timestamp"] >= 0 for line in lines)
    assert f"{len(lines)} events" in capsys.readouterr().out


def test_a_file_of_that_name_wins_over_the_shipped_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file `banking.yaml` in the working directory is used, not the shipped model, whether
    it is named `banking.yaml` or `banking`; other names still find the shipped models."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "banking.yaml").write_text(starter_model("banking"), encoding="utf-8")
    assert resolve_model("banking.yaml") == "banking.yaml"
    assert resolve_model("banking") == "banking.yaml"
    assert resolve_model("ecommerce.yaml") == str(MODELS_DIR / "ecommerce.yaml")
    assert resolve_model("ecommerce") == str(MODELS_DIR / "ecommerce.yaml")


def test_init_then_run_by_the_bare_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim init mymodel` then `dogesim run mymodel` runs the file init wrote."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOGESIM_OUT_DIR", raising=False)
    assert main(["init", "mymodel"]) == 0
    assert main(["run", "mymodel", "--ticks", "30"]) == 0
    assert "events" in capsys.readouterr().out


def test_an_unknown_bare_name_exits_2_listing_the_shipped_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run bnking` (no file, no shipped model) is one line naming the shipped ones."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "bnking"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bnking: no such model file" in err and "banking, ecommerce" in err


def test_init_writes_a_starter_model_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim init shop` writes shop.yaml, which validates and runs into out/shop.jsonl."""
    monkeypatch.chdir(tmp_path)
    assert main(["init", "shop"]) == 0
    spec = load_model_file(tmp_path / "shop.yaml")
    assert spec.name == "shop" and spec.used_sinks() == ["events"]
    assert main(["run", "shop.yaml", "--ticks", "120", "--quiet"]) == 0
    assert (tmp_path / "out" / "shop.jsonl").read_text().count("\n") > 0


def test_init_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim init NAME` over an existing NAME.yaml exits 2 and leaves the file as it was."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.yaml").write_text("mine\n", encoding="utf-8")
    assert main(["init", "shop"]) == 2
    assert "shop.yaml already exists; not overwritten" in capsys.readouterr().err
    assert (tmp_path / "shop.yaml").read_text() == "mine\n"


@pytest.mark.parametrize("name", ["", "a/b", "../up", "9lives", "x" * 65])
def test_init_refuses_a_name_that_is_no_identifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """`dogesim init` with a name that is not a short identifier exits 2 and writes nothing."""
    monkeypatch.chdir(tmp_path)
    assert main(["init", name]) == 2
    assert "is not a model name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _run(
    args: list[str], cwd: Path, pythonpath: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DOGESIM_OUT_DIR")}
    env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_installed_wheel_ships_and_runs_the_models(tmp_path: Path) -> None:
    """Build the wheel, install it with --target, and from a folder outside the checkout:
    the installed package is used, `models` lists the shipped models, `run banking` (module
    and console script) writes events, `init` writes a model that runs."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "dogesim", source / "dogesim", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(source), "-w", str(dist)],
        cwd=source, pythonpath=source,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("dogesim-*.whl")
    install = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        cwd=work, pythonpath=site,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    where = _run([sys.executable, "-c", "import dogesim; print(dogesim.__file__)"], work, site)
    assert Path(where.stdout.strip()).parent == site / "dogesim", where.stdout + where.stderr
    listed = _run([sys.executable, "-m", "dogesim.cli", "models"], work, site)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[: len(SHIPPED)]] == list(SHIPPED)

    ran = _run(
        [sys.executable, "-m", "dogesim.cli", "run", "banking", "--ticks", "300"], work, site
    )
    assert ran.returncode == 0, ran.stderr
    module_bytes = (work / "out" / "banking.jsonl").read_bytes()
    assert module_bytes.count(b"\n") > 0
    script = site / "bin" / "dogesim"
    by_script = _run([str(script), "run", "banking", "--ticks", "300", "-q"], work, site)
    assert by_script.returncode == 0, by_script.stderr
    assert (work / "out" / "banking.jsonl").read_bytes() == module_bytes  # seed 42 both times

    made = _run([str(script), "init", "first"], work, site)
    assert made.returncode == 0, made.stderr
    first = _run([str(script), "run", "first.yaml", "--ticks", "60", "-q"], work, site)
    assert first.returncode == 0, first.stderr
    assert (work / "out" / "first.jsonl").stat().st_size > 0
