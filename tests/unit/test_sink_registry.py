"""The sink registry: one table of types for Python and model files, plus entry-point plugins."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dogesim.errors import ModelError, SinkConfigError
from dogesim.modelfile import SINK_TYPES, load_model_text
from dogesim.sinks import registry
from dogesim.sinks.files import JsonLinesSink
from dogesim.sinks.registry import BUILTIN_TYPES, SinkType, build_sink

MODEL = """\
name: tiny
seed: 5
states: [a, b]
initial_state: a
tick: 1s
ticks: 20
subjects: {{count: 10}}
sinks:
  out: {sink}
default_sinks: [out]
transitions:
  - {{trigger: go, from: a, to: b, probability: 30}}
  - {{trigger: back, from: b, to: a, probability: 50}}
"""


def model_with(sink: str) -> str:
    """The tiny model with `sink` (a YAML flow mapping) as its only sink ``out``."""
    return MODEL.format(sink=sink)


def test_model_files_read_the_registry_table() -> None:
    """SINK_TYPES is the registry's built-in table, every type with a builder and settings."""
    assert {name: tuple(kind.settings) for name, kind in BUILTIN_TYPES.items()} == SINK_TYPES
    assert {"memory", "counting", "printing", "stdout", "jsonl", "csv", "db", "sql"} <= set(
        BUILTIN_TYPES
    )
    assert {"kafka", "kafka_avro"} <= set(BUILTIN_TYPES)
    assert BUILTIN_TYPES["kafka"].extra == "kafka" and BUILTIN_TYPES["db"].extra == "db"
    assert BUILTIN_TYPES["jsonl"].required == ("path",)
    assert {"counting", "memory", "printing", "stdout"} <= set(registry.plain_types())
    for kind in BUILTIN_TYPES.values():
        module, _, attr = kind.builder.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), kind.name


def test_build_sink_from_python_settings(tmp_path: Path) -> None:
    """build_sink makes what a model file's settings make, checked by the same schema."""
    sink = build_sink("jsonl", {"path": tmp_path / "e.jsonl", "append": True})
    assert isinstance(sink, JsonLinesSink)
    sink.close()
    assert (tmp_path / "e.jsonl").read_bytes() == b""


def test_unknown_settings_are_all_listed(tmp_path: Path) -> None:
    """Every unknown key is named at once, with the keys that are allowed."""
    with pytest.raises(SinkConfigError, match=r"unknown setting\(s\) 'colour', 'size' for sink"):
        build_sink("jsonl", {"path": tmp_path / "e.jsonl", "colour": 1, "size": 2})
    with pytest.raises(ModelError, match=r"sinks.out.colour: unknown keys 'colour', 'size'"):
        load_model_text(model_with("{type: memory, colour: red, size: 2}"))


def test_required_settings_and_kinds() -> None:
    """A missing or null required setting, or a value of the wrong kind, is a clear error."""
    with pytest.raises(SinkConfigError, match="sink type 'jsonl' needs 'path'"):
        build_sink("jsonl", {"path": None})
    with pytest.raises(SinkConfigError, match=r"'batch_size' .* takes an integer >= 1, got int 0"):
        build_sink("db", {"url": "sqlite://", "table": "t", "batch_size": 0})
    with pytest.raises(SinkConfigError, match=r"'url' of sink type 'db' takes a string, got int"):
        build_sink("db", {"url": 5, "table": "t"})
    with pytest.raises(ModelError, match=r"sinks.out.path: 'path' is null; it is required"):
        load_model_text(model_with("{type: jsonl, path: null}"))
    with pytest.raises(ModelError, match=r"sinks.out.url: 'url' is null; it is required"):
        load_model_text(model_with("{type: db, url: null, table: t}"))


def test_unknown_type_suggests_a_close_one() -> None:
    """An unknown type names the closest known one and lists them all."""
    with pytest.raises(SinkConfigError, match=r"unknown sink type 'jsnl' \(did you mean 'jsonl'"):
        build_sink("jsnl", {})


def test_missing_extra_names_the_pip_install() -> None:
    """A type whose module is missing says which dogesim extra installs it."""
    kind = SinkType(
        "needs_nothing_here",
        "dogesim.sinks.builders:build_counting",
        extra="fancy",
        needs="dogesim_no_such_module",
    )
    registry.register(kind, replace=True)
    with pytest.raises(SinkConfigError, match=r"pip install 'dogesim\[fancy\]'"):
        build_sink("needs_nothing_here")
    with pytest.raises(ModelError, match=r"sinks.out: .*pip install 'dogesim\[fancy\]'"):
        load_model_text(model_with("{type: needs_nothing_here}"))


def test_builtin_types_cannot_be_replaced() -> None:
    """register() refuses a name the built-in table has."""
    with pytest.raises(SinkConfigError, match="'jsonl' already exists"):
        registry.register(SinkType("jsonl", "x:y"))


def test_spec_repr_hides_url_passwords_and_secret_conf() -> None:
    """repr() of a model file's sinks shows no URL password and no sasl.password."""
    text = model_with(
        "{type: kafka, bootstrap_servers: 'h:1', topic: t, "
        "conf: {sasl.password: hunter2, client.rack: r1}}"
    )
    pytest.importorskip("confluent_kafka")
    spec = load_model_text(text)
    shown = repr(spec.sinks)
    assert "hunter2" not in shown and "'sasl.password': '***'" in shown and "r1" in shown
    pytest.importorskip("sqlalchemy")
    spec = load_model_text(model_with("{type: db, url: 'postgresql://u:p%40ss@h/db', table: t}"))
    shown = repr(spec.sinks)
    assert "p%40ss" not in shown and "p@ss" not in shown and "postgresql://u:***@h/db" in shown
    assert "p%40ss" not in repr(spec) and "p@ss" not in repr(spec)
    # In a model file an unencoded '@' in the password is refused at load, still masked.
    with pytest.raises(ModelError) as refused:
        load_model_text(model_with("{type: db, url: 'postgresql://u:p@ss@h/db', table: t}"))
    assert "p@ss" not in str(refused.value) and "ss@h" not in str(refused.value)


PLUGIN = """
from dogesim.sinks.registry import Setting, SinkType

def build(settings, context):
    from dogesim.sinks.files import JsonLinesSink
    return JsonLinesSink(settings["path"], lambda ts, s, t: {"fancy": t.trigger, "ts": ts})

FANCY = SinkType("fancy", "fancy_sink_plugin:build", {"path": Setting("path", required=True)})
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real installed distribution on sys.path whose entry point registers type 'fancy'."""
    site = tmp_path / "site"
    (site / "fancy_sink_plugin").mkdir(parents=True)
    (site / "fancy_sink_plugin" / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "fancy_sink_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fancy-sink-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[dogesim.sinks]\nfancy = fancy_sink_plugin:FANCY\nbroken = fancy_sink_plugin:NOPE\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield tmp_path
    sys.modules.pop("fancy_sink_plugin", None)
    registry.refresh()


def test_entry_point_plugin_is_listed_lazily_and_builds(plugin: Path) -> None:
    """A dogesim.sinks entry point is listed without import, then used by a model file."""
    assert "fancy" in registry.sink_types()
    assert "fancy_sink_plugin" not in sys.modules
    out = plugin / "fancy.jsonl"
    spec = load_model_text(model_with(f"{{type: fancy, path: '{out}'}}"))
    assert "fancy_sink_plugin" in sys.modules
    result = spec.run()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and {line["fancy"] for line in lines} <= {"go", "back"}
    assert result.ledgers[0].acknowledged == len(lines)
    with pytest.raises(ModelError, match=r"unknown key 'colour'; allowed keys: type, path"):
        load_model_text(model_with(f"{{type: fancy, path: '{out}', colour: 1}}"))


def test_broken_entry_point_is_a_clear_error(plugin: Path) -> None:
    """An entry point that cannot be loaded names itself and its group."""
    with pytest.raises(SinkConfigError, match=r"entry point broken = fancy_sink_plugin:NOPE"):
        registry.sink_type("broken")


def test_registry_and_model_files_stay_light() -> None:
    """Reading the registry and loading a model file imports no optional dependency."""
    code = textwrap.dedent(
        f"""
        import sys
        from dogesim.modelfile import load_model_text
        from dogesim.sinks.registry import sink_types
        sink_types()
        load_model_text({model_with("{type: jsonl, path: x.jsonl}")!r})
        heavy = [m for m in ("sqlalchemy", "confluent_kafka", "matplotlib") if m in sys.modules]
        print(heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["kafka", "kafka_avro"])
def test_record_timestamp_from_a_model_file(kind: str) -> None:
    """record_timestamp: send in a model file reaches the built Kafka sink; a typo is named."""
    pytest.importorskip("confluent_kafka")
    avro = (
        ", schema_registry_url: 'mock://rt', key: 'dogesim.sinks.builders:default_key', "
        "key_schema: '\"string\"', value: 'dogesim.sinks.files:default_record', "
        "value_schema: '\"string\"'"
        if kind == "kafka_avro"
        else ""
    )
    base = f"type: {kind}, bootstrap_servers: '127.0.0.1:1', topic: t{avro}"
    spec = load_model_text(model_with(f"{{{base}, record_timestamp: send}}"))
    assert spec.sinks["out"].settings["record_timestamp"] == "send"
    sink = spec.sinks["out"].build()
    assert sink.record_timestamp == "send"
    sink.close()
    default = load_model_text(model_with(f"{{{base}}}")).sinks["out"].build()
    assert default.record_timestamp == "event"
    default.close()
    with pytest.raises(
        ModelError, match=r":9: .*'record_timestamp'.* takes 'event' .* or 'send' .*'sent'"
    ):
        load_model_text(model_with(f"{{{base}, record_timestamp: sent}}"))


def test_jsonl_and_csv_paths_ending_gz_are_compressed(tmp_path: Path) -> None:
    """build_sink('jsonl'/'csv', path=*.gz) writes gzip holding the plain sink's lines."""
    import gzip

    from dogesim.model import Transition

    step = Transition("go", "a", "b", 30)
    for kind, name, expected in (
        ("jsonl", "e.jsonl.gz", b'{"n":1}\n'),
        ("csv", "e.csv.gz", b"n\n1\n"),
    ):
        sink = build_sink(kind, {"path": str(tmp_path / name), "mapper": lambda ts, s, t: {"n": s}})
        sink.collect(1_700_000_000_000, 1, step)
        sink.close()
        assert gzip.decompress((tmp_path / name).read_bytes()) == expected
