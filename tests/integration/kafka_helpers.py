"""What the Kafka integration tests share: the seeded banking run, topics and a strict reader.

- `T0`, `SEED`, `SUBJECTS`, `TICKS`: the seeded banking run every test writes.
- `key_function`, `value_function`: the README's key (user id) and JSON value.
- `KEY_SCHEMA`, `EVENT_SCHEMA`: Avro schemas of that key and of `event_record`
  (from `tests.avro_schemas`).
- `reference`: the events of the same run through a `MemorySink`, mapped.
- `create_topic`: a one-partition topic, with topic settings if given.
- `consume_all`: every record of partition 0, checked against the watermarks.
- `SHORT_SUBJECTS`, `SHORT_TICKS`, `SHORT_TICK_MS`, `run_short`, `expected_short`, `as_sent`,
  `read_back`, `now_ms`: a five-minute banking run near a given start (the tests of a topic's
  timestamp window and retention), its expected records and the records read back.
- `tiny_model_file`: a two-state model file writing to one Kafka topic, for CLI runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from dogesim.examples.banking import User, banking_simulation, event_record
from dogesim.model import Transition
from dogesim.sinks.memory import MemorySink
from tests.avro_schemas import EVENT_SCHEMA, KEY_SCHEMA
from tests.integration.services import kafka_bootstrap, unique_name

__all__ = [
    "EVENT_SCHEMA",
    "KEY_SCHEMA",
    "SEED",
    "SHORT_SUBJECTS",
    "SHORT_TICKS",
    "SHORT_TICK_MS",
    "SUBJECTS",
    "T0",
    "TICKS",
    "as_sent",
    "consume_all",
    "create_topic",
    "expected_short",
    "key_function",
    "now_ms",
    "read_back",
    "reference",
    "run_short",
    "tiny_model_file",
    "value_function",
]

T0 = 1_700_000_000_000  # librdkafka reads a record timestamp of 0 as "now"
SEED = 2024
SUBJECTS = 500
TICKS = 1000


def key_function(user: User, transition: Transition) -> str:
    return str(user.user_id)


def value_function(timestamp: int, user: User, transition: Transition) -> str:
    return json.dumps(event_record(timestamp, user, transition))


def reference(
    mapper: Callable[[int, User, Transition], Any],
    *,
    subjects: int = SUBJECTS,
    ticks: int = TICKS,
    seed: int = SEED,
    timestamp_start: int = T0,
    tick_ms: int = 60_000,
) -> list[Any]:
    """The events of a MemorySink run of the seeded banking model, mapped by `mapper`."""
    memory = MemorySink(mapper)
    banking_simulation(
        [memory],
        subjects=subjects,
        ticks=ticks,
        seed=seed,
        timestamp_start=timestamp_start,
        tick_ms=tick_ms,
    ).run()
    assert len(memory.events) > 50
    return memory.events


def create_topic(name: str, config: Mapping[str, str] | None = None) -> str:
    """A one-partition topic (so the consumer sees one total order) with `config`."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    topic = NewTopic(name, 1, 1, config=dict(config or {}))
    for future in admin.create_topics([topic]).values():
        future.result(30)
    return name


def _reader() -> Consumer:
    """A consumer of a group of its own, reading committed records (what a downstream
    consumer sees), committing nothing."""
    return Consumer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "group.id": unique_name("dogesim-sink-test"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def consume_all(topic: str, timeout: float = 90.0) -> list[tuple[bytes, bytes, int]]:
    """Every record in partition 0 of `topic`: (key, value, timestamp), checked against the
    partition's watermarks so a duplicate or a gap cannot hide."""
    consumer = _reader()
    try:
        partition = TopicPartition(topic, 0)
        low, high = consumer.get_watermark_offsets(partition, timeout=30)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records: list[tuple[bytes, bytes, int]] = []
        deadline = time.monotonic() + timeout
        last_offset = low - 1
        while last_offset < high - 1 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            assert msg.offset() == last_offset + 1, "offsets must be contiguous"
            last_offset = msg.offset()
            records.append((msg.key(), msg.value(), msg.timestamp()[1]))
        assert (low, len(records)) == (0, high), (
            f"read {len(records)} of {high} records (low watermark {low})"
        )
        return records
    finally:
        consumer.close()


SHORT_SUBJECTS = 50
SHORT_TICKS = 300
SHORT_TICK_MS = 1000  # 300 ticks of 1 s: the run spans 5 min from its start


def now_ms() -> int:
    return int(time.time() * 1000)


def as_sent(timestamp: int, user: User, transition: Transition) -> tuple[str, str, int]:
    """An event as the README's key and value functions send it, with its record time."""
    return (key_function(user, transition), value_function(timestamp, user, transition), timestamp)


def run_short(sink: Any, start: int) -> None:
    """The short seeded banking run from `start` into `sink`."""
    banking_simulation(
        [sink],
        subjects=SHORT_SUBJECTS,
        ticks=SHORT_TICKS,
        tick_ms=SHORT_TICK_MS,
        seed=SEED,
        timestamp_start=start,
    ).run()


def expected_short(start: int) -> list[tuple[str, str, int]]:
    """What `run_short` from `start` sends, as `as_sent` records."""
    return reference(
        as_sent,
        subjects=SHORT_SUBJECTS,
        ticks=SHORT_TICKS,
        timestamp_start=start,
        tick_ms=SHORT_TICK_MS,
    )


def read_back(topic: str) -> list[tuple[str, str, int]]:
    """`consume_all(topic)` with keys and values decoded."""
    return [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]


_TINY_MODEL = """\
name: {name}
seed: 5
states: [a, b]
initial_state: a
tick: 1s
ticks: 300
{start}subjects: {{count: 5}}
sinks:
  k: {{type: kafka, bootstrap_servers: '{servers}', topic: '{topic}'{extra}}}
default_sinks: [k]
transitions:
  - {{trigger: go, from: a, to: b, probability: 50}}
  - {{trigger: back, from: b, to: a, probability: 50}}
"""


def tiny_model_file(path: Path, topic: str, *, start: int | None = None, extra: str = "") -> Path:
    """Write at `path` a two-state model (5 subjects, 300 ticks of 1 s) whose events go to
    `topic`, starting at `start` (epoch ms; the run's default when None); `extra` is more of
    the sink's settings (``", record_timestamp: send"``)."""
    when = ""
    if start is not None:
        moment = datetime.fromtimestamp(start / 1000, tz=timezone.utc)
        when = f"start: '{moment.isoformat(timespec='seconds')}'\n"
    text = _TINY_MODEL.format(
        name=path.stem, start=when, servers=kafka_bootstrap(), topic=topic, extra=extra
    )
    path.write_text(text, encoding="utf-8")
    return path
