"""Sharded runs into the real services: Kafka keyed by subject, PostgreSQL one connection per
shard. Each run also writes a merged JSONL of the same events, the reference it is read back
against.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from dogesim import LiveOptions, Model
from dogesim.examples.banking import UserFactory, build_banking_model, event_record, event_row
from dogesim.shards import Shard, ShardedRun, run_sharded
from tests.integration.services import (
    kafka_bootstrap,
    libpq_db_url,
    sqlalchemy_db_url,
    unique_name,
)

T0 = 1_700_000_000_000  # librdkafka reads a record timestamp of 0 as "now"


def user_key(user: Any, transition: Any) -> str:
    """The Kafka key: the user's (global) id."""
    return str(user.user_id)


def user_value(timestamp: int, user: Any, transition: Any) -> str:
    """The Kafka value: the README's record as JSON."""
    return json.dumps(event_record(timestamp, user, transition), separators=(",", ":"))


def banking_to_kafka(topic: str, path: str, shard: Shard) -> Model:
    """Banking into Kafka (one producer per shard) and into this shard's part of `path`."""
    from dogesim.sinks.kafka import KafkaSinkFactory

    kafka = KafkaSinkFactory(kafka_bootstrap()).create(topic, user_key, user_value)
    return build_banking_model([kafka, shard.jsonl(path, event_record)])


def banking_to_postgres(table: str, path: str, shard: Shard) -> Model:
    """Banking into a PostgreSQL table (one connection per shard) and into `path`."""
    from dogesim.sinks.db import DbSinkFactory

    db = DbSinkFactory(sqlalchemy_db_url()).create(table, event_row, 500)
    return build_banking_model([db, shard.jsonl(path, event_record)])


def _run(build: Any, shards: int) -> ShardedRun:
    return ShardedRun(
        build,
        subjects=1200,
        subject_factory=UserFactory,
        ticks=600,
        tick_ms=60_000,
        timestamp_start=T0,
        seed=31,
        shards=shards,
    )


def _per_user(records: list[dict[str, Any]]) -> dict[int, list[tuple[int, str, int]]]:
    out: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    for record in records:
        user = record["user"]
        out[user["user_id"]].append((record["timestamp"], record["event"], user["balance"]))
    return dict(out)


def _consume(topic: str, expected: int, timeout: float = 90.0) -> list[tuple[bytes, bytes]]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "group.id": unique_name("dogesim-shards-test"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    records: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            records.append((message.key(), message.value()))
        # Nothing more than was acknowledged arrives.
        assert consumer.poll(2.0) is None
    finally:
        consumer.close()
    return records


@pytest.mark.kafka
@pytest.mark.parametrize("live", [False, True])
def test_shards_into_kafka_keep_every_subjects_order(tmp_path: Path, live: bool) -> None:
    """4 shards on 2 processes into a 3-partition topic, backfilled or live-paced (each shard
    paces itself, 1 ms a tick): every acknowledged event arrives once, keyed by its user, and
    each user's events come in the order of the merged JSONL."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = unique_name("dogesim-shards")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(30)
    out = tmp_path / "events.jsonl"
    run = _run(functools.partial(banking_to_kafka, topic, str(out)), 4)
    if live:
        run = dataclasses.replace(run, live=LiveOptions(True, speed=60_000.0))
    result = run_sharded(run, workers=2)
    kafka_ledger = next(ledger for ledger in result.ledgers if ledger.sink.startswith("kafka"))
    assert kafka_ledger.acknowledged == kafka_ledger.collected == result.events
    received = _consume(topic, result.events)
    assert len(received) == result.events
    assert all(key == str(json.loads(value)["user"]["user_id"]).encode() for key, value in received)
    reference = [json.loads(line) for line in out.read_text().splitlines()]
    assert _per_user([json.loads(value) for _, value in received]) == _per_user(reference)


@pytest.mark.db
def test_shards_into_postgres_write_every_event_once(tmp_path: Path) -> None:
    """3 shards on 2 processes, one connection each, into one table: its rows are exactly the
    merged JSONL's events."""
    import psycopg

    table = unique_name("dogesim_shards").replace("-", "_")
    with psycopg.connect(libpq_db_url(), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (timestamp BIGINT, user_id BIGINT, balance BIGINT, "
            "loan_balance BIGINT, event TEXT)"
        )
    try:
        out = tmp_path / "events.jsonl"
        build = functools.partial(banking_to_postgres, table, str(out))
        result = run_sharded(_run(build, 3), workers=2)
        with psycopg.connect(libpq_db_url()) as conn:
            rows = conn.execute(
                f"SELECT timestamp, user_id, balance, loan_balance, event FROM {table}"
            ).fetchall()
    finally:
        with psycopg.connect(libpq_db_url(), autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    db_ledger = next(ledger for ledger in result.ledgers if ledger.sink.startswith("db:"))
    assert db_ledger.acknowledged == result.events == len(rows)
    expected = [
        (r["timestamp"], r["user"]["user_id"], r["user"]["balance"], r["user"]["loan_balance"])
        for r in map(json.loads, out.read_text().splitlines())
    ]
    assert sorted(row[:4] for row in rows) == sorted(expected)
