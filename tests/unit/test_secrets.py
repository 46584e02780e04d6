"""Secrets: ${VAR} values and URL passwords never appear in reprs, errors or CLI output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dogesim import redact
from dogesim.errors import ModelError
from dogesim.modelfile import load_model_text

ROOT = Path(__file__).resolve().parents[2]
# Unusual enough that no other output contains it by chance.
SECRET = "Zq8-h7-s3cret-Pw"

MODEL = """\
name: secretive
states: [a, b]
initial_state: a
tick: 1s
ticks: 5
subjects: {{count: 2}}
sinks:
{sinks}
default_sinks: [{default}]
transitions:
  - {{trigger: go, from: a, to: b, probability: 50}}
"""


def model_text(sinks: str, default: str = "s") -> str:
    return MODEL.format(sinks=textwrap.indent(sinks, "  "), default=default)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:p@ss@w@rd@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("sasl://u:p:w@h", "sasl://u:***@h"),
        ("sqlite:///events.db", "sqlite:///events.db"),
        ("http://host:8081/path@x", "http://host:8081/path@x"),
        (
            "postgresql://u@h:5432/db?password=S3cretPW&sslmode=require",
            "postgresql://u@h:5432/db?password=***&sslmode=require",
        ),
        ("mysql://u@h/db?sslmode=x&PWD=a%40b", "mysql://u@h/db?sslmode=x&PWD=***"),
        ("kafka://h/?sasl.password=pw1;x", "kafka://h/?sasl.password=***;x"),
        ("http://h/search?passage=ok", "http://h/search?passage=ok"),
    ],
)
def test_mask_url_masks_the_whole_password(url: str, shown: str) -> None:
    """The password is masked up to the last '@', so an '@' in it hides nothing; a password,
    token or secret given as a query parameter is masked too (`masked_url` agrees)."""
    from dogesim.sinks.urls import masked_url

    assert redact.mask_url(url) == shown
    assert redact.mask(url) == shown
    if "?" in url:  # (for an '@' after the host, masked_url hides more, on purpose)
        assert masked_url(url) == shown


def test_cli_never_prints_a_password_given_as_a_query_parameter(tmp_path: Path) -> None:
    """A database URL with ``?password=...`` that cannot connect: the error names the URL
    with the password masked."""
    pytest.importorskip("sqlalchemy")
    url = f"postgresql://u@127.0.0.1:1/db?password={SECRET}"
    model = tmp_path / "m.yaml"
    model.write_text(model_text(f"s: {{type: db, url: '{url}', table: t}}"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "dogesim.cli", "run", str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    assert SECRET not in done.stdout + done.stderr
    assert "password=***" in done.stderr, done.stderr


def test_registered_secrets_are_masked_longest_first() -> None:
    """A registered value is masked wherever it appears; short values are not registered."""
    redact.register_secret("h7-alpha-secret")
    redact.register_secret("h7-alpha-secret-longer")
    redact.register_secret("ab")
    assert redact.mask("x h7-alpha-secret-longer y h7-alpha-secret ab") == "x *** y *** ab"


def test_repr_of_spec_and_sinks_hides_passwords() -> None:
    """repr(spec) and repr(spec.sinks) show neither sasl.password (literal in the file), nor a
    URL password, nor a ${VAR} value."""
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("sqlalchemy")
    literal = "h7-literal-sasl-pw"
    text = model_text(
        "s: {type: memory}\n"
        "k: {type: kafka, bootstrap_servers: 'h:9092', topic: t,\n"
        f"    conf: {{sasl.username: u, sasl.password: {literal},\n"
        "            client.secret: '${SECRET}'}}\n"
        "d: {type: db, url: 'postgresql://u:${SECRET}@h:5432/db', table: t}\n"
        "d2: {type: db, url: 'postgresql://u:h7-url-pw@h/db', table: t}",
        default="s, k, d, d2",
    )
    spec = load_model_text(text, environ={"SECRET": SECRET})
    for shown in (repr(spec), repr(spec.sinks), str(spec.sinks["k"].settings), spec.summary()):
        assert SECRET not in shown
        assert literal not in shown
        assert "h7-url-pw" not in shown
    assert "sasl.password': '***'" in repr(spec.sinks)
    # The settings themselves keep the real values: the sink needs them.
    assert spec.sinks["k"].settings["conf"]["sasl.password"] == literal
    assert SECRET in spec.sinks["d"].settings["url"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:${SECRET}@h:notaport/db", "the port 'notaport'"),
        ("postgresql://u:${SECRET}@h:99999/db", "the port '99999'"),
        ("postgresql://u:p@${SECRET}@h/db", "percent-encode it as %40"),
        ("not a url ${SECRET}", "is not a database URL"),
    ],
)
def test_bad_database_urls_are_refused_at_load_masked(url: str, expected: str) -> None:
    """An unparsable DB URL (bad port, '@' in the password, no scheme) is a ModelError at
    load (validate and run agree), and its message hides the password."""
    pytest.importorskip("sqlalchemy")
    text = model_text(f"s: {{type: db, url: '{url}', table: t}}")
    with pytest.raises(ModelError) as info:
        load_model_text(text, environ={"SECRET": SECRET})
    message = str(info.value)
    assert expected in message
    assert "sinks.s.url" in message
    assert SECRET not in message


def test_error_messages_quoting_an_env_value_mask_it() -> None:
    """A value from the environment quoted in an error is masked."""
    text = model_text("s: {type: memory}").replace("ticks: 5", "ticks: ${SECRET}")
    with pytest.raises(ModelError) as info:
        load_model_text(text, environ={"SECRET": SECRET})
    assert "ticks: '***' is not a whole number" in str(info.value)


ERROR_PATHS = {
    "bad port": "s: {type: db, url: 'postgresql://u:${SECRET}@h:port/db', table: t}",
    "at in password": "s: {type: db, url: 'postgresql://u:a@${SECRET}@h/db', table: t}",
    "unreachable db": "s: {type: db, url: 'postgresql://u:${SECRET}@127.0.0.1:1/db', table: t}",
    "unknown dialect": "s: {type: db, url: 'nosuchdb://u:${SECRET}@h/db', table: t}",
    "bad sink key": "s: {type: jsonl, path: x.jsonl, bogus: '${SECRET}'}",
    "bad path type": "s: {type: jsonl, path: '${SECRET}/x.jsonl', mapper: 'no:such'}",
    "template": "s: {type: stdout, template: '{nope} ${SECRET}'}",
    "kafka conf": "s: {type: kafka, bootstrap_servers: '${SECRET}', topic: t, conf: {x: [1]}}",
    "ok summary": "s: {type: jsonl, path: 'out-${SECRET}.jsonl'}",
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(ERROR_PATHS))
def test_cli_never_prints_the_secret(tmp_path: Path, command: str, case: str) -> None:
    """Over many error paths (and a success), the secret from the environment appears
    nowhere in the CLI's stdout or stderr, and no traceback is printed."""
    pytest.importorskip("sqlalchemy")
    model = tmp_path / "m.yaml"
    model.write_text(model_text(ERROR_PATHS[case]), encoding="utf-8")
    env = {**os.environ, "SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "dogesim.cli", command, str(model), "--quiet"][
            : 4 if command == "validate" else 5
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert SECRET not in done.stdout
    assert SECRET not in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1, 2), done.stderr
