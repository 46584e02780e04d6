"""The README's examples that need the real Kafka broker and PostgreSQL.

Holds the test that runs the "Sinks and the delivery ledger" block — the python block that
names the broker and a PostgreSQL URL — with the reader's own functions (`key_function`,
`value_function`, `row_mapper_function`) and Avro schema files supplied, against the running
services, then feeds a short run into the sinks it built and checks every event arrived.
The topic and table names are made unique so parallel runs cannot meet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dogesim import Model, Simulation, Transition
from tests.integration.kafka_helpers import consume_all, create_topic
from tests.integration.services import unique_name
from tests.readme_blocks import readme_blocks

pytest.importorskip("confluent_kafka")
pytest.importorskip("sqlalchemy")

SERVICE_BLOCKS = [
    block for block in readme_blocks("python") if block.needs_services and not block.fragment
]

KEY_SCHEMA = '{"type": "string"}'
EVENT_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Event",
        "fields": [{"name": "ts", "type": "long"}, {"name": "trigger", "type": "string"}],
    }
)


def _reader_functions() -> dict[str, Any]:
    """The functions the README block leaves to the reader."""

    def key_function(subject: Any, transition: Transition) -> str:
        return str(id(subject))

    def value_function(timestamp: int, subject: Any, transition: Transition) -> str:
        return json.dumps({"ts": timestamp, "trigger": transition.trigger})

    def row_mapper_function(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        return {"ts": timestamp, "trigger": transition.trigger}

    return {
        "key_function": key_function,
        "value_function": value_function,
        "row_mapper_function": row_mapper_function,
    }


def test_readme_has_a_service_block() -> None:
    """The sinks example is found by the extractor."""
    assert SERVICE_BLOCKS


@pytest.mark.kafka
@pytest.mark.db
@pytest.mark.parametrize("block", SERVICE_BLOCKS, ids=[b.name for b in SERVICE_BLOCKS])
def test_sinks_block_builds_working_sinks(
    block: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block builds Kafka, Avro, SQL and JSONL sinks; a run through them loses nothing."""
    import sqlalchemy

    monkeypatch.chdir(tmp_path)
    (tmp_path / "avro").mkdir()
    (tmp_path / "avro" / "Key.avsc").write_text(KEY_SCHEMA)
    (tmp_path / "avro" / "Event.avsc").write_text(EVENT_SCHEMA)
    (tmp_path / "out").mkdir()
    topic = create_topic(unique_name("readme-clicks"))
    table = unique_name("readme_rows").replace("-", "_")
    code = block.text.replace('"clickstream"', repr(topic)).replace(
        'create(\n    "events"', f"create(\n    {table!r}"
    )
    assert repr(topic) in code and repr(table) in code, "the block's names changed"
    namespace = _reader_functions()
    exec(compile(code, block.name, "exec"), namespace)

    sinks = [namespace["clicks"], namespace["rows"], namespace["jsonl"]]
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 50, event_sinks=sinks)
    model.add_transition("back", "b", "a", 50, event_sinks=sinks)
    start = int(time.time() * 1000)  # Kafka 4 refuses record timestamps far from now
    result = Simulation(model, 20, ticks=20, tick_ms=1000, timestamp_start=start, seed=3).run()
    assert result.events > 0
    for ledger in result.ledgers:
        assert ledger.acknowledged == result.events, ledger

    assert len(consume_all(topic)) == result.events
    engine = sqlalchemy.create_engine(
        block.text.split('DbSinkFactory("', 1)[1]
        .split('"', 1)[0]
        .replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        with engine.begin() as connection:
            count = connection.execute(sqlalchemy.text(f'SELECT count(*) FROM "{table}"'))
            assert count.scalar_one() == result.events
            connection.execute(sqlalchemy.text(f'DROP TABLE "{table}"'))
    finally:
        engine.dispose()
    lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    assert len(lines) == result.events
