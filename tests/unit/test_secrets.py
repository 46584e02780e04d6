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


@pytest.mark.parametrize("cut", ["/", "?", "#"])
@pytest.mark.parametrize("name", ["DB_PASSWORD", "PGPASS"])
def test_a_password_holding_a_url_delimiter_is_read_whole_and_never_shown(
    cut: str, name: str
) -> None:
    """A password may hold '/', '?' or '#' (SQLAlchemy reads it up to the '@'): the URL loads
    and no part of the password shows. The check at load read its first part as a port and
    quoted it ("the port 'Hunter2Secret' ... is not a number")."""
    pytest.importorskip("sqlalchemy")
    from sqlalchemy.engine import make_url

    password = f"Hunter2Secret{cut}x"
    text = model_text(f"s: {{type: db, url: 'postgresql://u:${{{name}}}@h:5432/db', table: t}}")
    spec = load_model_text(text, environ={name: password})
    url = spec.sinks["s"].settings["url"]
    assert make_url(url).password == password and make_url(url).port == 5432
    for shown in (repr(spec), repr(spec.sinks), spec.summary()):
        assert "Hunter2" not in shown


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


# -- which values are secrets ------------------------------------------------------------------

VISIBLE_MODEL = """\
name: plain
states: [a, b]
initial_state: a
tick: 1s
ticks: 5
subjects: {count: 2}
sinks:
  f: {type: jsonl, path: '${OUT_DIR}/x.jsonl'}
  k: {type: kafka, bootstrap_servers: '${BROKERS}', topic: '${TOPIC}'}
default_sinks: [f, k]
transitions:
  - {trigger: go, from: a, to: b, probability: 50}
"""
# Values no other test registers as a secret.
PLAIN = {"OUT_DIR": "/data/h7-out-dir", "BROKERS": "h7-broker:9092", "TOPIC": "h7-topic-events"}


def test_plain_env_values_stay_visible() -> None:
    """A ${VAR} that is no secret (a path, a topic, brokers) shows in the summary, the
    reprs and the errors quoting it: masking them made every message useless."""
    pytest.importorskip("confluent_kafka")
    spec = load_model_text(VISIBLE_MODEL, environ=PLAIN)
    for shown in (spec.summary(), repr(spec.sinks)):
        assert "h7-out-dir" in shown
        assert "h7-topic-events" in shown or "h7-broker:9092" in shown
    assert "h7-topic-events" in repr(spec.sinks)
    bad = VISIBLE_MODEL.replace("ticks: 5", "ticks: ${TICKS}")
    with pytest.raises(ModelError) as info:
        load_model_text(bad, environ={**PLAIN, "TICKS": "h7-lots-of-ticks"})
    assert "ticks: 'h7-lots-of-ticks' is not a whole number" in str(info.value)


def test_cli_shows_plain_env_values(tmp_path: Path) -> None:
    """`dogesim validate` prints the path and the topic the environment gave."""
    pytest.importorskip("confluent_kafka")
    model = tmp_path / "m.yaml"
    model.write_text(VISIBLE_MODEL, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "dogesim.cli", "validate", str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, **PLAIN, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "/data/h7-out-dir/x.jsonl" in done.stdout
    assert "***" not in done.stdout


# Where a value is a secret although neither its variable nor the file says "secret": the
# key it is the value of, and its place in a URL. (Variable names are neutral on purpose.)
SECRET_PLACES = {
    "sasl.password": "k: {type: kafka, bootstrap_servers: 'h:9092', topic: t,\n"
    "    conf: {sasl.username: u, sasl.password: '${VALUE}'}}",
    "ssl.key.password": "k: {type: kafka, bootstrap_servers: 'h:9092', topic: t,\n"
    "    conf: {ssl.key.password: 'pre-${VALUE}'}}",
    "oauth client secret": "k: {type: kafka, bootstrap_servers: 'h:9092', topic: t,\n"
    "    conf: {sasl.oauthbearer.client.secret: '${VALUE}'}}",
    "url password": "d: {type: db, url: 'postgresql://u:${VALUE}@h:5432/db', table: t}",
    "query password": "d: {type: db, url: 'postgresql://u@h/db?sslpassword=${VALUE}', table: t}",
    "whole url": "d: {type: db, url: '${URL}', table: t}",
    "secret-named variable": "k: {type: kafka, bootstrap_servers: '${KAFKA_TOKEN}', topic: t}",
}


@pytest.mark.parametrize("place", sorted(SECRET_PLACES))
def test_env_values_in_secret_places_are_masked(place: str) -> None:
    """A ${VAR} under a key named like a secret, in a URL's password, in a secret query
    parameter, or from a variable named like a secret is masked from then on, wherever it
    appears (a driver may quote it without the URL around it)."""
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("sqlalchemy")
    value = f"h7-{place.replace(' ', '-')}-Pw"
    environ = {"VALUE": value, "KAFKA_TOKEN": value, "URL": f"postgresql://u:{value}@h/db"}
    sinks = "s: {type: memory}\n" + SECRET_PLACES[place]
    spec = load_model_text(model_text(sinks), environ=environ)
    assert redact.mask(f"connect failed: {value}.") == "connect failed: ***."
    for shown in (repr(spec), repr(spec.sinks), spec.summary()):
        assert value not in shown


def test_whole_url_from_the_environment_shows_all_but_its_password() -> None:
    """``url: ${DATABASE_URL}`` shows as ``postgresql://u:***@host/db``, not ``***``."""
    pytest.importorskip("sqlalchemy")
    url = "postgresql://h7-user:h7-url-env-pw@h7-dbhost:5432/h7db"
    spec = load_model_text(
        model_text("s: {type: db, url: '${DATABASE_URL}', table: t}"),
        environ={"DATABASE_URL": url},
    )
    assert "postgresql://h7-user:***@h7-dbhost:5432/h7db" in spec.summary() + repr(spec.sinks)


def test_user_info_setting_masks_only_the_password() -> None:
    """``basic.auth.user.info: user:password`` hides the password, and a URL quoting the same
    user and password keeps its structure (``user:***@host``)."""
    pytest.importorskip("confluent_kafka")
    load_model_text(
        model_text(
            "s: {type: memory}\n"
            "k: {type: kafka, bootstrap_servers: 'h:9092', topic: t,\n"
            "    conf: {basic.auth.user.info: '${REGISTRY_AUTH}'}}"
        ),
        environ={"REGISTRY_AUTH": "h7-reg-user:h7-reg-pass"},
    )
    assert redact.mask("http://h7-reg-user:h7-reg-pass@registry:8081/x") == (
        "http://h7-reg-user:***@registry:8081/x"
    )
    assert redact.mask("auth h7-reg-user:h7-reg-pass") == "auth h7-reg-user:***"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://h:5432?sslpassword=p@ss", "postgresql://h:5432?sslpassword=***"),
        ("postgresql://u:pw@h?sslpassword=x@y", "postgresql://u:***@h?sslpassword=***"),
        ("postgresql://u:pw@h/db?sslpassword=x", "postgresql://u:***@h/db?sslpassword=***"),
        ("http://h:8081?token=a@b&x=1", "http://h:8081?token=***&x=1"),
        ("postgresql://u:p?w@h/db", "postgresql://u:***@h/db"),
        ("host=h password=kv-pw dbname=d", "host=h password=*** dbname=d"),
        ("mysql://u:pw@h/db', other", "mysql://u:***@h/db', other"),
    ],
)
def test_masked_urls_keep_their_structure(text: str, shown: str) -> None:
    """Masking replaces only the password: the user, the ':' before it, the host, the port
    and the query keys stay, and no tail of a password holding '@' is left showing."""
    from dogesim.sinks.urls import masked_url

    assert redact.mask(text) == shown
    if "://" in text and "'" not in text:
        assert masked_url(text) == shown


def test_the_working_directory_variable_is_no_secret() -> None:
    """``${PWD}`` (the shell's working directory, not an ODBC ``PWD=`` password) is shown."""
    spec = load_model_text(
        model_text("s: {type: jsonl, path: '${PWD}/x.jsonl'}"), environ={"PWD": "/h7/work/dir"}
    )
    assert "/h7/work/dir/x.jsonl" in spec.summary()
    assert redact.mask("in /h7/work/dir") == "in /h7/work/dir"
