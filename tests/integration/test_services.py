"""Smoke tests for the real services started by ``scripts/services up``.

conftest.py skips (or, with DOGESIM_REQUIRE_SERVICES=1, fails) marked tests whose service is down.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.services import (
    kafka_available,
    kafka_bootstrap,
    sqlalchemy_db_url,
    start_kafka,
    stop_kafka,
    unique_name,
)


def _produce(topic: str, pairs: list[tuple[str, str]]) -> None:
    from confluent_kafka import Producer

    errors: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap(), "enable.idempotence": True, "linger.ms": 5}
    )
    for key, value in pairs:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert errors == []


def _consume(
    topic: str, n: int, *, subscribe: bool, timeout: float = 60.0
) -> list[tuple[str, str]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "group.id": unique_name("dogesim-test-group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        if subscribe:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key().decode(), msg.value().decode()))
        return got
    finally:
        consumer.close()


@pytest.mark.kafka
def test_kafka_produce_consume_roundtrip() -> None:
    topic = unique_name()
    expected = [(f"key-{i}", f"value-{i}") for i in range(10)]
    _produce(topic, expected)  # topic is auto-created (num.partitions=1 keeps the order total)
    assert _consume(topic, 10, subscribe=True) == expected


@pytest.mark.db
def test_db_temp_table_roundtrip() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlalchemy_db_url())
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "dogesim"
            conn.execute(text("CREATE TEMP TABLE doge_smoke (id int PRIMARY KEY, name text)"))
            conn.execute(
                text("INSERT INTO doge_smoke (id, name) VALUES (:id, :name)"),
                [{"id": 1, "name": "shiba"}, {"id": 2, "name": "inu"}],
            )
            rows = conn.execute(text("SELECT id, name FROM doge_smoke ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "shiba"), (2, "inu")]
    finally:
        engine.dispose()


@pytest.mark.kafka
def test_kafka_data_survives_broker_restart() -> None:
    topic = unique_name()
    before = [(f"k{i}", f"before-{i}") for i in range(5)]
    _produce(topic, before)

    stop_kafka()
    try:
        assert not kafka_available(timeout=1.0)
    finally:
        start_kafka()
    assert kafka_available()

    after = [(f"k{i}", f"after-{i}") for i in range(5, 8)]
    _produce(topic, after)
    assert _consume(topic, 8, subscribe=False) == before + after


@pytest.mark.kafka
def test_kafka_keeps_records_of_any_age() -> None:
    """The tests write records dated years back (T0 is in 2023): a time retention on the
    test broker deletes them at its next check, every five minutes, while a test may be
    reading them (a CI run once read 0 of 25 records, the low watermark moved past them)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    topic = unique_name()
    _produce(topic, [("k", "v")])
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    settings = admin.describe_configs([resource])[resource].result(30)
    assert settings["retention.ms"].value == "-1"
