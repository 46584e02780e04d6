"""Fuzz: mutated shipped model files give a `DogesimError` or a model, never another
exception, a hang or a memory blow-up.

Each case takes a file from ``models/``, mutates it (deletes, duplicates or retypes keys;
puts garbage of every YAML type, huge numbers, deep nesting, aliases, bad dates, nulls,
unicode and long strings in its values; duplicates or drops lines), then loads and
validates it and, when it validates, runs it briefly (3 subjects, 5 ticks, events into a
`MemorySink`, live pacing off). A watchdog (SIGALRM) turns a case running over
`HANG_SECONDS` into a failure. The fast profile runs in the default suite; the long one
(``slow``) runs `LONG_CASES` cases in a subprocess limited to 2 GiB of address space and
reports its figures (cases, clean errors, models, runs, tracebacks, hangs).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim.errors import DogesimError
from dogesim.modelfile import load_model_text
from dogesim.modelfile.spec import _arrivals_per_tick
from dogesim.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[2]
MODELS = {p.stem: p.read_text(encoding="utf-8") for p in sorted((ROOT / "models").glob("*.yaml"))}
HANG_SECONDS = 10
LONG_CASES = 2_000
TINY_RUN_ARRIVALS = 100_000
MEMORY_LIMIT = 2 * 1024**3
SECRET = "fuzz-Secret-7Hq"
ENVIRON = {"FUZZ_SECRET": SECRET, "DOGESIM_OUT_DIR": "/nonexistent-dogesim-fuzz"}

_BOMB = (
    "{"
    + ", ".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]"
        for i in range(9)
    )
    + "}"
)
#: YAML written out as text where a value goes: what a structure cannot express.
RAW = (
    "2024-02-30",
    "2024-01-01T25:00:00",
    "2024-13-45T00:00:00Z",
    "T25:00",
    "99999999999999999",
    "9999-12-31T23:59:59Z",
    "1" + "0" * 400,
    "9" * 4301,
    "-" + "7" * 5000,
    "1e400",
    "-.inf",
    ".nan",
    "0x7fffffffffffffffffff",
    "[" * 500 + "]" * 500,
    "{a: " * 300 + "1" + "}" * 300,
    _BOMB,
    "&anchor [1, 2, 3]",
    "*undefined_alias",
    "{<<: {a: 1}, b: 2}",
    "null",
    "~",
    "",
    "'${FUZZ_SECRET}'",
    "'${UNSET_FUZZ_VARIABLE}'",
    "'${MALFORMED'",
    "'$${literal}'",
    "!!python/object:os.system ls",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "'\u202e\u0000\ud7ff'",
    '"\\ud800"',
    "on",
    "yes",
    "1_000",
    "0o17",
    "12:30:00",
    "'" + "x" * 100_000 + "'",
    "[a, b, a]",
    "{trigger: x, from: y}",
    "'os:system'",
    "'dogesim.examples.banking:nope'",
    "'sys:exit'",
    "'100% per tick'",
    "'-5 per hour'",
    "'1e308 per 1ms'",
    "'5 per 0s'",
    "0.0000001",
    "-1",
    "100.0000001",
    # Law and distribution parameters at float's and int64's ends (YAML floats need the
    # dot and the exponent's sign), and past the grid's horizon of 2**62 ticks.
    "1.0e+300",
    "5.0e-324",
    "1.7e+308",
    ".inf",
    "9223372036854775808",
    "-9223372036854775809",
    "4611686018427387905",
    "{law: lognormal, median: 1 s, sigma: 1.0e+3}",
    "{law: gamma, shape: 1.0e+300, scale: 1 s}",
    "{law: uniform, low: 1, high: 4611686018427387904}",
    "{uniform_int: [-10000000000000000000000000000000, 5]}",
    "{choice: {a: 1.0e+308, b: 1.0e+308}}",
    # Plausible values, so that more mutants validate and reach the run.
    "0",
    "1",
    "99",
    "'1m'",
    "2030-01-01",
    "'10 per hour'",
    "true",
    "250ms",
)
_PLACEHOLDER = "__fuzz_raw_{}__"
#: Keys whose values reach the run: mutated more often than the others.
TARGETS = frozenset(
    {
        "start",
        "tick",
        "ticks",
        "seed",
        "probability",
        "probability_tick",
        "count",
        "arrivals",
        "churn",
        "rate",
        "hold",
        "speed",
        "max_lag",
        "hourly",
        "weekly",
        "dates",
        "utc_offset_hours",
        "path",
        "url",
        "template",
        "callback",
        "factory",
        "mapper",
        "states",
        "initial_state",
        "from",
        "to",
        "trigger",
        "sinks",
        "default_sinks",
        # payload templates, faults and entity types (models/shop.yaml)
        "faker",
        "locale",
        "subject",
        "expr",
        "ref",
        "law",
        "median",
        "sigma",
        "value",
        "uniform_int",
        "choice",
        "exponential",
        "args",
        "object",
        "duplicate",
        "late",
        "delay",
        "faults",
        "entities",
        "weight",
    }
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1m", "0s", "-1s", "500ms", "1d", "5 per hour", "a", "b", "x" * 1000]),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, container) in `node`, the root first."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _containers(value, (*path, key))
    elif isinstance(node, list):
        yield path, node
        for i, value in enumerate(node):
            yield from _containers(value, (*path, i))


@st.composite
def mutated_models(draw: st.DrawFn) -> str:
    """The text of a shipped model file after 1-4 mutations."""
    name = draw(st.sampled_from(sorted(MODELS)))
    data = yaml.safe_load(MODELS[name])
    raw: list[str] = []
    # One mutation half of the time, so that many cases stay valid enough to run.
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4]))):
        containers = list(_containers(data))
        targeted = [c for c in containers if isinstance(c[1], dict) and TARGETS & set(c[1])]
        if targeted and draw(st.booleans()):
            # A key whose value the run uses (a time, a count, a chance), not just any key.
            _, box = targeted[draw(st.integers(0, len(targeted) - 1))]
            key = draw(st.sampled_from(sorted(TARGETS & set(box))))
            raw.append(draw(st.sampled_from(RAW)))
            box[key] = _PLACEHOLDER.format(len(raw) - 1)
            continue
        _, box = containers[draw(st.integers(0, len(containers) - 1))]
        keys = list(box) if isinstance(box, dict) else list(range(len(box)))
        op = draw(st.sampled_from(["delete", "garbage", "raw", "wrap", "duplicate", "add"]))
        if not keys or op == "add":
            key = draw(st.text(max_size=10)) if isinstance(box, dict) else len(box)
            if isinstance(box, dict):
                box[key] = draw(garbage)
            else:
                box.append(draw(garbage))
            continue
        key = keys[draw(st.integers(0, len(keys) - 1))]
        if op == "delete":
            del box[key]
        elif op == "garbage":
            box[key] = draw(garbage)
        elif op == "raw":
            raw.append(draw(st.sampled_from(RAW)))
            box[key] = _PLACEHOLDER.format(len(raw) - 1)
        elif op == "wrap":
            box[key] = draw(st.sampled_from([[box[key]], {"x": box[key]}, [box[key]] * 3]))
        elif isinstance(box, list):
            box.append(box[key])
        else:
            box[f"{key}_copy"] = box[key]
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**9)
    for i, snippet in enumerate(raw):
        text = text.replace(_PLACEHOLDER.format(i), snippet)
    lines = text.splitlines()
    if lines and draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, len(lines) - 1))
        if draw(st.booleans()):
            lines.insert(i, lines[i])  # a duplicated key (or list item)
        else:
            del lines[i]
    return "\n".join(lines) + "\n"


class Hang(Exception):
    """A case ran longer than `HANG_SECONDS`."""


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """Raise `Hang` in the main thread when the block runs longer than `seconds`."""

    def ring(signum: int, frame: object) -> None:
        raise Hang(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    # Keep an alarm someone else set (pytest-timeout's signal method): re-arm it after.
    pending = signal.alarm(seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if pending:
            signal.alarm(max(1, pending - int(time.monotonic() - started)))


def check_case(text: str) -> str:
    """Load, validate and (when valid) briefly run `text`; the outcome's name.

    Returns ``clean`` (a DogesimError), ``model`` (valid, its tiny run a DogesimError),
    ``callback`` (valid, an example callback failed on the mutated subjects), ``big`` (valid,
    but too many arrivals for a tiny run) or ``ran``.
    Any other exception propagates, `Hang` included.
    """
    with watchdog(HANG_SECONDS):
        try:
            spec = load_model_text(text, source="fuzz.yaml", environ=ENVIRON)
            spec.summary()
            repr(spec)
        except DogesimError as exc:
            _check_message(exc)
            return "clean"
        try:
            small = load_model_text(text, source="fuzz.yaml", environ=ENVIRON, subjects=3, ticks=5)
            if _arrivals_per_tick(small) * small.ticks > TINY_RUN_ARRIVALS:
                # Valid, and within the limits, but millions of newcomers are no tiny run.
                return "big"
            if hasattr(small, "entities"):  # several entity types: one run each
                for _, simulation in small.simulations(sinks=[MemorySink()], live=False):
                    simulation.run()
            else:
                small.simulation(sinks=[MemorySink()], live=False).run()
        except DogesimError as exc:
            _check_message(exc)
            return "model"
        except Exception as exc:
            # An example callback reading an attribute a mutation deleted fails in user
            # code: the model file cannot say what a callback needs. Not a dogesim failure.
            if _raised_in_user_code(exc):
                return "callback"
            raise
        return "ran"


#: The longest message a mutant may give: one quoting a 100,000-character value whole fails.
MAX_MESSAGE = 3_000


def _check_message(exc: DogesimError) -> None:
    message = str(exc)
    assert SECRET not in message, message
    assert len(message) <= MAX_MESSAGE, message[:500]


def _raised_in_user_code(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}examples{os.sep}" in frames[-1].filename


FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@FAST
@given(mutated_models())
def test_mutated_models_fail_cleanly(text: str) -> None:
    """Fast profile: 150 mutated model files, each a model or a DogesimError within 10 s."""
    check_case(text)


def test_the_harness_catches_hangs_and_stray_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog turns a hang into `Hang`, and an exception that is not a DogesimError
    escapes `check_case` (so the fuzz test can fail)."""
    with pytest.raises(Hang), watchdog(1):
        time.sleep(5)
    module = sys.modules[__name__]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("not a DogesimError")

    monkeypatch.setattr(module, "load_model_text", broken)
    with pytest.raises(TypeError):
        check_case(MODELS["banking"])


def long_run(cases: int) -> dict[str, Any]:
    """Run `cases` cases, counting outcomes instead of stopping at the first failure."""
    counts: Counter[str] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated_models())
    def one(text: str) -> None:
        counts["cases"] += 1
        try:
            counts[check_case(text)] += 1
        except Hang:
            counts["hangs"] += 1
            failures.append("hang: " + text[:300])
        except BaseException:
            counts["tracebacks"] += 1
            failures.append(traceback.format_exc()[-1500:] + "\nCASE:\n" + text[:600])

    one()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"counts": dict(counts), "peak_rss_mb": round(peak_mb), "failures": failures[:20]}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.slow
def test_long_fuzz_profile(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Long profile: >= 2,000 cases under a 2 GiB address-space limit: 0 tracebacks, 0 hangs,
    and the process survives (no memory blow-up)."""
    chosen = request.config.getoption("markexpr") or ""
    if "slow" not in chosen or "not slow" in chosen:
        pytest.skip("the long fuzz profile (minutes) runs with -m slow")
    report = tmp_path / "fuzz.json"
    code = (
        "import json, sys; from tests.unit.test_modelfile_fuzz import long_run; "
        f"json.dump(long_run({LONG_CASES}), open(sys.argv[1], 'w'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(report)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=_limit_memory,
        capture_output=True,
        text=True,
        timeout=3 * 3600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    counts = result["counts"]
    print(f"fuzz long profile: {counts}, peak RSS {result['peak_rss_mb']} MB")
    assert counts["cases"] >= LONG_CASES
    assert counts.get("tracebacks", 0) == 0, "\n\n".join(result["failures"])
    assert counts.get("hangs", 0) == 0, "\n\n".join(result["failures"])
    assert result["peak_rss_mb"] < MEMORY_LIMIT / 1024**2


if __name__ == "__main__":
    # python tests/unit/test_modelfile_fuzz.py [CASES]: the long profile's figures, here.
    _limit_memory()
    print(json.dumps(long_run(int(sys.argv[1]) if len(sys.argv) > 1 else LONG_CASES), indent=1))
