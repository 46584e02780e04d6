"""Reading model files (`dogesim.modelfile.source`): ${VAR} defaults, YAML numbers, and
names without control characters."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dogesim.errors import ModelError
from dogesim.modelfile import load_model_text
from dogesim.modelfile.source import _LineLoader

BASE = """\
name: tiny
states: [a, b]
initial_state: a
tick: 1s
ticks: 5
subjects: {count: 2}
sinks:
  mem: {type: memory}
  file: {type: jsonl, path: 'PATH'}
default_sinks: [mem]
transitions:
  - {trigger: go, from: a, to: b, probability: 50}
"""


def error_of(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ModelError) as info:
        load_model_text(text, source="m.yaml", environ=environ or {})
    return str(info.value)


# -- ${VAR:-default} and ${VAR-default} ----------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "environ", "expected"),
    [
        ("${OUT:-dflt}", {}, "dflt"),
        ("${OUT:-dflt}", {"OUT": ""}, "dflt"),  # set but empty: the default, as in a shell
        ("${OUT:-dflt}", {"OUT": "given"}, "given"),
        ("${OUT-dflt}", {}, "dflt"),
        ("${OUT-dflt}", {"OUT": ""}, ""),  # without the colon: only when unset
        ("${OUT-dflt}", {"OUT": "given"}, "given"),
        ("${OUT:-}", {"OUT": ""}, ""),
        ("${OUT:-a-b}", {}, "a-b"),
    ],
)
def test_defaults_follow_shell_semantics(
    reference: str, environ: dict[str, str], expected: str
) -> None:
    """``${VAR:-d}`` gives d when VAR is unset or empty, ``${VAR-d}`` only when unset."""
    text = BASE.replace("'PATH'", f"'{reference}/x.jsonl'")
    spec = load_model_text(text, environ=environ)
    assert spec.sinks["file"].settings["path"] == f"{expected}/x.jsonl"


def test_set_but_empty_variable_without_default_is_empty() -> None:
    """``${VAR}`` with VAR set to '' is '' (set is set); unset is an error naming it."""
    text = BASE.replace("'PATH'", "'${OUT}x.jsonl'")
    assert load_model_text(text, environ={"OUT": ""}).sinks["file"].settings["path"] == "x.jsonl"
    assert "environment variable OUT is not set" in error_of(text)
    assert "${OUT:-value} or ${OUT-value}" in error_of(text)


# -- YAML numbers: YAML 1.2 core, not YAML 1.1 -----------------------------------------------


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("1e-3", 1e-3),
        ("1E+3", 1000.0),
        ("-2.5e2", -250.0),
        ("5e1", 50.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1_000.5", 1000.5),
        (".inf", float("inf")),
        ("-.inf", float("-inf")),
        ("1:30", "1:30"),  # YAML 1.1 reads 90 (base 60)
        ("1:30.5", "1:30.5"),
        ("-1:00", "-1:00"),
        ("010", 10),  # YAML 1.1 reads 8 (octal)
        ("0o17", 15),
        ("0x1F", 31),
        ("1_000", 1000),
        ("-42", -42),
        ("+7", 7),
        ("0", 0),
        ("1e", "1e"),
        ("e3", "e3"),
        ("0b101", "0b101"),  # not in YAML 1.2 core
        ("0o_", "0o_"),
        ("0x_1", "0x_1"),
        ("2024-01-02", None),  # a date stays a date (checked below)
    ],
)
def test_numbers_are_read_as_yaml_1_2_core(written: str, read: Any) -> None:
    """``1e-3`` is a float and ``1:30`` text (YAML 1.1 reads text and 90); octal needs 0o."""
    value = yaml.load(f"v: {written}", Loader=_LineLoader)["v"]
    if read is None:
        assert str(value) == written
        assert not isinstance(value, str)
        return
    assert type(value) is type(read)
    assert value == read


def test_exponent_without_a_dot_is_a_number_in_a_model_file() -> None:
    """``probability: 5e1`` is the number 50 (it was the text '5e1', refused)."""
    text = BASE.replace("probability: 50", "probability: 5e1").replace("'PATH'", "x.jsonl")
    assert load_model_text(text, environ={}).transitions[0].probability == 50.0


def test_sexagesimal_looking_value_is_refused_as_text() -> None:
    """``tick: 1:30`` is not 90 ms in base 60: it is text, refused where a duration belongs."""
    text = BASE.replace("tick: 1s", "tick: 1:30").replace("'PATH'", "x.jsonl")
    assert error_of(text).startswith("m.yaml:4: tick: '1:30' is not a duration")


# -- control characters in names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "key"),
    [
        ("trigger: go,", 'trigger: "g\\0o",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\x07",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\n",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\x7f",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\x85",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\u2028",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "\\u202ego",', 12, "transitions[0].trigger"),
        ("trigger: go,", 'trigger: "go\\ud800",', 12, "transitions[0].trigger"),
        ("trigger: go,", "trigger: '${T}',", 12, "transitions[0].trigger"),
        ("states: [a, b]", 'states: [a, "b\\0"]', 2, "states[1]"),
        ("states: [a, b]", 'states: ["\\ta", b]', 2, "states[0]"),
    ],
)
def test_names_with_control_characters_are_refused(old: str, new: str, line: int, key: str) -> None:
    """A trigger or state name holding NUL, a newline, another control character, a line
    separator, a text-direction override or half a surrogate pair is a ModelError at its
    line and key, the character shown escaped (such names reached the sinks before)."""
    text = BASE.replace(old, new).replace("'PATH'", "x.jsonl")
    message = error_of(text, {"T": "go\x00"})
    assert message.startswith(f"m.yaml:{line}: {key}: "), message
    assert "control character" in message
    assert message.isprintable(), repr(message)


def test_names_with_printable_unicode_are_accepted() -> None:
    """Names in any script, with spaces and punctuation, stay valid."""
    text = BASE.replace("states: [a, b]", "states: [a, 'état final']").replace(
        "to: b", "to: 'état final'"
    )
    text = text.replace("trigger: go,", "trigger: 'log in (über)',").replace("'PATH'", "x.jsonl")
    spec = load_model_text(text, environ={})
    assert spec.transitions[0].trigger == "log in (über)"
    assert spec.states == ("a", "état final")


@pytest.mark.parametrize("name", ["1e3", "0o17", "-2.5E-1", ".5", "1_000", "1:30", "010"])
def test_dump_model_quotes_names_that_read_as_numbers(name: str) -> None:
    """A state or trigger named like a YAML 1.2 number (``1e3``, which YAML 1.1 writers
    leave unquoted) is written quoted, so the file reads back the same names."""
    from dogesim.modelfile import dump_model

    text = (
        BASE.replace("states: [a, b]", f"states: [a, '{name}']")
        .replace("to: b", f"to: '{name}'")
        .replace("trigger: go,", f"trigger: '{name}',")
        .replace("'PATH'", "x.jsonl")
    )
    spec = load_model_text(text, environ={})
    again = load_model_text(dump_model(spec), environ={})
    assert again.states == ("a", name)
    assert again.transitions[0].trigger == name
