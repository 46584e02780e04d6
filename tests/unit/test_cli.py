"""The `dogesim` command: outputs, summaries and exit statuses (0 ok, 1 lost, 2 bad, 130 ^C)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.modelfile import load_model_file

ROOT = Path(__file__).resolve().parents[2]
BANKING = ROOT / "models" / "banking.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HELPERS = '''
"""Helpers for CLI tests: a mapper the JSON sink cannot write, a callback that "presses ^C"."""
CALLS = {"n": 0}


def unwritable(timestamp, subject, transition):
    return {"timestamp": timestamp, "oops": object()}


def broken(subject, transition):
    return subject.no_such_attribute


def interrupt_later(subject, transition):
    CALLS["n"] += 1
    if CALLS["n"] > 40:
        raise KeyboardInterrupt
    return True
'''

SMALL = """\
name: small
seed: 1
states: [a, b]
initial_state: a
tick: 1m
ticks: 200
subjects: {{count: 50}}
sinks:
  out: {{type: jsonl, path: '{out}'{mapper}}}
default_sinks: [out]
transitions:
  - {{trigger: go, from: a, to: b, probability: 20{callback}}}
  - {{trigger: back, from: b, to: a, probability: 30}}
"""


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A helper module importable in-process and by subprocesses."""
    (tmp_path / "cli_helpers.py").write_text(textwrap.dedent(HELPERS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    sys.modules.pop("cli_helpers", None)
    return tmp_path


def small_model(tmp_path: Path, *, mapper: str = "", callback: str = "") -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(
        SMALL.format(
            out=tmp_path / "small.jsonl",
            mapper=f", mapper: '{mapper}'" if mapper else "",
            callback=f", callback: '{callback}'" if callback else "",
        ),
        encoding="utf-8",
    )
    return path


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_run_banking_with_no_options_writes_jsonl_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run models/banking.yaml` writes out/banking.jsonl (no server) and, with
    --report, an occupancy PNG; the summary lists triggers, ledgers, wall time and rate."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOGESIM_OUT_DIR", raising=False)
    assert main(["run", str(BANKING), "--report", "plots/occupancy.png"]) == 0
    out = capsys.readouterr().out
    lines = (tmp_path / "out" / "banking.jsonl").read_text().splitlines()
    total = int(re.search(r"-> (\d+) events", out).group(1))  # type: ignore[union-attr]
    assert len(lines) == total > 0
    for trigger in ("income", "spending", "login", "logout", "take_loan"):
        assert re.search(rf"^  {trigger}: \d+$", out, re.M)
    assert f"sink jsonl:out/banking.jsonl: collected {total}, acknowledged {total}" in out
    assert re.search(r"wall time [\d.]+ s: [\d,]+ events \([\d,]+ events/s\), [\d,]+ moves", out)
    assert (tmp_path / "plots" / "occupancy.png").read_bytes().startswith(PNG_MAGIC)


def test_run_out_file_is_reproducible_and_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out writes every event as a JSON line with states and subject; same seed, same
    bytes; --subjects/--ticks/--seed override the file."""
    args = ["run", str(BANKING), "--subjects", "300", "--ticks", "500", "--seed", "8"]
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("seed 8: 300 subjects x 500 ticks")
    assert main([*args, "--out", str(tmp_path / "b.jsonl"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes()
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert len(records) == int(re.search(r"-> (\d+) events", summary).group(1))  # type: ignore[union-attr]
    assert set(records[0]) == {"timestamp", "trigger", "from_state", "to_state", "subject"}
    assert set(records[0]["subject"]) == {"user_id", "balance", "loan_balance", "last_payment"}
    assert main([*args, "--out", str(tmp_path / "c.csv"), "-q"]) == 0
    assert len((tmp_path / "c.csv").read_text().splitlines()) == len(records) + 1
    # Compressed by suffix: the same CSV and JSON lines, gzip-compressed.
    assert main([*args, "--out", str(tmp_path / "c.csv.gz"), "-q"]) == 0
    assert (
        gzip.decompress((tmp_path / "c.csv.gz").read_bytes()) == (tmp_path / "c.csv").read_bytes()
    )
    assert main([*args, "--out", str(tmp_path / "a.jsonl.gz"), "-q"]) == 0
    assert gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()) == data


def test_run_sink_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--sink picks a plain sink type (stdout prints JSON lines) or a sink of the file."""
    assert main(["run", str(BANKING), "--sink", "stdout", "--ticks", "300", "-q"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed and all(json.loads(line)["trigger"] for line in printed)
    assert main(["run", str(BANKING), "--sink", "counting"]) == 0
    assert "sink counting:counting: collected" in capsys.readouterr().out
    assert main(["run", str(BANKING), "--sink", "nowhere"]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("dogesim: --sink 'nowhere': the model file has no such sink")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", str(BANKING), "--ticks", "x"],
            "dogesim run: argument --ticks: 'x' is not a whole",
        ),
        (["run", str(BANKING), "--subjects", "0"], "dogesim run: argument --subjects: 0 must be"),
        (
            ["run", str(BANKING), "--out", "a", "--sink", "b"],
            "dogesim run: argument --sink: not allowed",
        ),
        (["fly"], "dogesim: argument COMMAND: invalid choice: 'fly'"),
        ([], "dogesim: the following arguments are required: COMMAND"),
        (["run", "missing.yaml"], "dogesim: missing.yaml: no such model file"),
        (["graph", str(BANKING), "--format", "png"], "dogesim graph: --format png needs --output"),
        (["fit", "x.jsonl", "-o", "m.yaml"], "dogesim fit: give --states A,B,C or --model"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments and bad models: status 2, one line on stderr, no traceback."""
    assert main(argv) == 2
    assert one_line(capsys.readouterr().err).startswith(message)


def test_bad_model_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model-file mistake reaches the user as file:line: key: message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BANKING.read_text().replace("probability: 70", "probability: seventy"))
    assert main(["run", str(bad)]) == 2
    err = one_line(capsys.readouterr().err)
    assert re.match(
        rf"dogesim: {re.escape(str(bad))}:\d+: transitions\[3\]\.probability: "
        "'seventy' is not a number",
        err,
    )
    assert main(["validate", str(bad)]) == 2


def test_lost_events_exit_1_with_the_ledger(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sink that cannot deliver makes the run fail with status 1 and its ledger."""
    model = small_model(tmp_path, mapper="cli_helpers:unwritable")
    assert main(["run", str(model)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "cannot be written as JSON" in err
    assert re.search(r"sink jsonl:\S+small.jsonl: collected 1, .*failed 1", err)


def test_interrupt_exits_130_after_flushing(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C (KeyboardInterrupt) mid-run: status 130, the events so far are on disk, and
    stderr says so with the ledger."""
    model = small_model(tmp_path, callback="cli_helpers:interrupt_later")
    assert main(["run", str(model)]) == 130
    err = capsys.readouterr().err.splitlines()
    lines = (tmp_path / "small.jsonl").read_text().splitlines()
    assert err[0] == "dogesim: interrupted; every sink was closed and flushed"
    assert err[1].endswith(
        f": collected {len(lines)}, acknowledged {len(lines)}, failed 0, pending 0"
    )
    # 40 `go` attempts succeeded before the 41st raised; `back` events come in between.
    assert sum(json.loads(line)["trigger"] == "go" for line in lines) == 40


def test_validate_all_models(capsys: pytest.CaptureFixture[str]) -> None:
    """`validate` checks every shipped model and prints one ok line each."""
    models = sorted(str(p) for p in (ROOT / "models").glob("*.yaml"))
    assert main(["validate", *models]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(models) and all(": ok: " in line for line in out)


def test_graph_dot_and_mermaid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`graph` prints DOT (default) or Mermaid with every transition, or writes a file."""
    assert main(["graph", str(BANKING)]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "banking" {')
    assert '"loan_screen" -> "online" [label="take_loan (10%)"];' in dot
    assert dot.count("->") == 7
    assert main(["graph", str(BANKING), "--format", "mermaid", "-o", str(tmp_path / "g.mmd")]) == 0
    mermaid = (tmp_path / "g.mmd").read_text()
    assert mermaid.startswith("stateDiagram-v2\n    [*] --> offline\n")
    assert "    online --> loan_screen: open_loan_screen (30%)" in mermaid


def test_graph_png_needs_graphviz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PNG goes through Graphviz `dot`; without it, status 2 and a clear message."""
    status = main(["graph", str(BANKING), "-f", "png", "-o", str(tmp_path / "g.png")])
    if shutil.which("dot"):
        assert status == 0
        assert (tmp_path / "g.png").read_bytes().startswith(PNG_MAGIC)
    else:
        assert status == 2
        assert "needs the Graphviz 'dot' program" in one_line(capsys.readouterr().err)


def test_report_from_saved_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`report` plots observed vs analytic from a generic log and from the README-shaped
    banking log (states found from the triggers)."""
    generic = tmp_path / "generic.jsonl"
    assert main(["run", str(BANKING), "--subjects", "500", "-q", "--out", str(generic)]) == 0
    assert (
        main(
            [
                "report",
                str(generic),
                "--model",
                str(BANKING),
                "--subjects",
                "500",
                "-o",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "a.png").read_bytes().startswith(PNG_MAGIC)
    readme_shaped = load_model_file(
        BANKING, subjects=500, environ={"DOGESIM_OUT_DIR": str(tmp_path)}
    )
    readme_shaped.run()
    capsys.readouterr()
    assert (
        main(
            [
                "report",
                str(tmp_path / "banking.jsonl"),
                "--model",
                str(BANKING),
                "--subjects",
                "500",
                "-o",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "banking.jsonl:" in out and "  login: " in out
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)


def test_fit_writes_a_runnable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`fit` prints fitted vs configured and writes a model file that loads and runs."""
    log = tmp_path / "log.jsonl"
    assert (
        main(["run", str(BANKING), "--subjects", "2000", "--no-callbacks", "-q", "--out", str(log)])
        == 0
    )
    assert (
        main(
            [
                "fit",
                str(log),
                "--model",
                str(BANKING),
                "--subjects",
                "2000",
                "-o",
                str(tmp_path / "fitted.yaml"),
                "--plot",
                str(tmp_path / "fit.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "configured_pct" in out and "log-likelihood" in out
    fitted = load_model_file(tmp_path / "fitted.yaml")
    assert [t.trigger for t in fitted.transitions][:3] == ["income", "spending", "login"]
    assert fitted.subjects.count == 2000 and fitted.tick_ms == 60_000
    assert (tmp_path / "fit.png").read_bytes().startswith(PNG_MAGIC)
    # Without a model: states and tick on the command line.
    assert (
        main(
            [
                "fit",
                str(log),
                "--states",
                "offline,online,loan_screen",
                "--tick",
                "1m",
                "-o",
                str(tmp_path / "bare.yaml"),
            ]
        )
        == 0
    )
    bare = load_model_file(tmp_path / "bare.yaml")
    assert bare.initial_state == "offline" and len(bare.transitions) == 7


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dogesim.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_subprocess_exit_codes(tmp_path: Path, helpers: Path) -> None:
    """As a real process: 0 on success, 2 on a bad model, 1 on lost events, 130 on ^C —
    the last three with no traceback."""
    ok = run_cli("run", str(BANKING), "--out", str(tmp_path / "e.jsonl"))
    assert ok.returncode == 0, ok.stderr
    assert "sink jsonl:" in ok.stdout
    bad = run_cli("run", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 2 and one_line(bad.stderr).endswith("no such model file")
    lossy = run_cli("run", str(small_model(tmp_path, mapper="cli_helpers:unwritable")))
    assert lossy.returncode == 1 and "Traceback" not in lossy.stderr
    stopped = run_cli("run", str(small_model(tmp_path, callback="cli_helpers:interrupt_later")))
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr


def test_console_script(tmp_path: Path) -> None:
    """The `dogesim` console script is installed and runs `main`."""
    script = Path(sys.executable).with_name("dogesim")
    if not script.exists():
        found = shutil.which("dogesim")
        assert found, "the dogesim console script is not installed (pip install -e .)"
        script = Path(found)
    done = subprocess.run(
        [str(script), "validate", str(BANKING)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and ": ok: banking:" in done.stdout


# -- bad output paths and limits: refused before the run, one line, exit 2 -------------------


def _refused_before_running(
    argv: list[str], capsys: pytest.CaptureFixture[str], expected: str
) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary: nothing ran
    err = one_line(captured.err)
    assert expected in err, err
    return err


@pytest.mark.parametrize(
    ("flag", "name", "expected"),
    [
        ("--out", "plain/e.jsonl", "is a file, not a directory"),
        ("--out", "x" * 300 + ".jsonl", "cannot be written: File name too long"),
        ("--out", "/sys/dogesim-h7.jsonl", "cannot be written: Permission denied"),
        ("--out", "outdir", "is a directory"),
        ("--out", "sqlite:////tmp/dogesim-h7.db", "is a URL, not a file"),
        ("--out", "kafka://127.0.0.1:19092/events", "is a URL, not a file"),
        ("--checkpoint", "s3://bucket/run.ckpt", "is a URL, not a file"),
        ("--report", "plain/r.png", "is a file, not a directory"),
        ("--report", "r.txt", "a plot file ends in one of .png"),
        ("--report", "outdir", "a plot file ends in one of .png"),
        ("--report", "outdir/" + "y" * 300 + ".png", "File name too long"),
        ("--checkpoint", "plain/c.ckpt", "is a file, not a directory"),
    ],
)
def test_unwritable_outputs_are_refused_before_the_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    name: str,
    expected: str,
) -> None:
    """An output under a file, on a read-only place, with a too-long name, a directory, or a
    plot extension matplotlib cannot write: exit 2 before any event is made."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").write_text("a file, not a directory")
    (tmp_path / "outdir").mkdir()
    model = small_model(tmp_path)
    argv = ["run", str(model), flag, name]
    if flag != "--out":
        argv += ["--out", "events.jsonl"]
    _refused_before_running(argv, capsys, expected)
    assert not (tmp_path / "small.jsonl").exists()
    assert not (tmp_path / "events.jsonl").exists()
    assert not (tmp_path / "outdir.png").exists()
    assert not (tmp_path / "sqlite:").exists() and not (tmp_path / "kafka:").exists()


def test_report_to_a_directory_writes_no_sibling_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--report DIR is refused; it used to write DIR.png next to it after the run."""
    target = tmp_path / "plots"
    target.mkdir()
    _refused_before_running(
        ["run", str(small_model(tmp_path)), "--report", str(target)], capsys, ""
    )
    assert not tmp_path.joinpath("plots.png").exists()


@pytest.mark.parametrize("flag", ["--resume", "--out", "--report", "--checkpoint"])
def test_empty_paths_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """An empty path (`--resume ""` used to run afresh and truncate the output) is exit 2,
    and the model's output file is left as it was."""
    model = small_model(tmp_path)
    (tmp_path / "small.jsonl").write_text("kept\n")
    _refused_before_running(["run", str(model), flag, ""], capsys, "an empty path")
    assert (tmp_path / "small.jsonl").read_text() == "kept\n"


@pytest.mark.parametrize(
    ("flag", "value", "limit"),
    [
        ("--ticks", str(2**31), "2,147,483,647"),
        ("--ticks", "9" * 5000, "is not a whole number"),
        ("--subjects", str(10**9), "999,999,999"),
    ],
)
def test_run_sizes_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, limit: str
) -> None:
    """--ticks >= 2**31 and --subjects >= 10**9 are refused with the limit stated."""
    _refused_before_running(["run", str(small_model(tmp_path)), flag, value], capsys, limit)


def test_file_run_sizes_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same limits hold for the model file's own `ticks:` and `subjects.count`."""
    model = small_model(tmp_path)
    text = model.read_text()
    model.write_text(text.replace("ticks: 200", f"ticks: {2**31}"))
    _refused_before_running(["validate", str(model)], capsys, "ticks: 2147483648 is too large")
    model.write_text(text.replace("count: 50", f"count: {10**9}"))
    _refused_before_running(["run", str(model)], capsys, "at most 999,999,999")


def test_callback_module_that_exits_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A callback module calling sys.exit(7) at import: exit 2 and one line naming the model
    file and the module (it used to end the CLI with status 7 and no word)."""
    (tmp_path / "h7_exits.py").write_text("import sys\nsys.exit(7)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = small_model(tmp_path, callback="h7_exits:cb")
    err = _refused_before_running(["validate", str(model)], capsys, "SystemExit: 7")
    assert f"{model}:" in err and "'h7_exits'" in err


def test_callback_raising_mid_run_is_one_line_with_the_ledger(
    tmp_path: Path, helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model callback that raises mid-run: exit 1, one line naming the exception and where
    it was raised, then the ledger; no traceback."""
    model = small_model(tmp_path, callback="cli_helpers:broken")
    assert main(["run", str(model), "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert lines[0].startswith("dogesim: the run failed: AttributeError: ")
    assert lines[0].endswith("in broken)") and "cli_helpers.py:" in lines[0]
    assert re.fullmatch(r"  sink jsonl:\S+small.jsonl: collected \d+, .*", lines[1])
