"""A Kafka topic's time retention, on the real broker.

A CreateTime topic whose cleanup policy deletes accepts a record older than its
``retention.ms``, acknowledges it and deletes it at its next retention check. The sink reads
the topic's retention (or the broker's default, for a topic not created yet) with its
timestamp settings and refuses such an event with `SinkConfigError` before it is sent;
LogAppendTime and compact-only topics keep everything, and ``record_timestamp="send"`` avoids
the refusal. The test broker keeps records forever (``log.retention.ms=-1``), so the topics
here set their own ``retention.ms``; the broker-default path with a real retention is pinned
by ``test_read_rule_takes_broker_retention_for_a_topic_not_created_yet`` in
``tests/unit/test_kafka_retention_rule.py``.
Only records still within the retention are read back (the others may go at any check).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from dogesim.cli import main
from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User
from dogesim.model import Transition
from dogesim.sinks.kafka import KafkaSinkFactory
from tests.integration.kafka_helpers import (
    SHORT_TICK_MS,
    SHORT_TICKS,
    consume_all,
    create_topic,
    expected_short,
    key_function,
    now_ms,
    read_back,
    run_short,
    tiny_model_file,
    value_function,
)
from tests.integration.services import kafka_bootstrap, unique_name

pytestmark = pytest.mark.kafka

HOUR_MS = 3_600_000
RETENTION = {"retention.ms": str(HOUR_MS), "cleanup.policy": "delete"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def test_run_older_than_retention_is_refused_before_any_event() -> None:
    """A 1 h retention topic and a backfill run from 2 h ago: refused before its first event
    with SinkConfigError naming the topic, retention.ms, the time as ISO and the fixes; the
    topic stays empty."""
    topic = create_topic(unique_name("dogesim-ret-run"), RETENTION)
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = now_ms() - 2 * HOUR_MS
    with pytest.raises(SinkConfigError) as info:
        run_short(sink, start)
    message = str(info.value)
    last = start + (SHORT_TICKS - 1) * SHORT_TICK_MS
    assert f"topic {topic!r}: the run's record timestamps reach {last} ({iso(last)})" in message
    assert "retention.ms=3600000, cleanup.policy=delete" in message
    assert "next retention check" in message and "nothing was sent" in message
    assert "raise the topic's retention.ms (or set it to -1" in message
    assert "timestamp_start" in message and "record_timestamp='send'" in message
    assert (sink.ledger.collected, sink.ledger.failed) == (0, 0)
    assert read_back(topic) == []


def test_event_older_than_retention_is_refused_before_sending() -> None:
    """Events fed one by one, each older than the last: those within the retention (less
    its 5 min check margin) arrive with their timestamps, the first beyond it raises
    SinkConfigError naming it, and it is not sent."""
    topic = create_topic(unique_name("dogesim-ret-event"), RETENTION)
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    user = User(7, 100, 0, 0)
    login = Transition("login", "offline", "online", 10)
    now = now_ms()
    stamps = [now - minutes * 60_000 for minutes in (30, 40, 50, 60, 70)]  # kept: < 55 min
    with pytest.raises(SinkConfigError) as info:
        for stamp in stamps:
            sink.collect(stamp, user, login)
    with pytest.raises(SinkError, match="1 events rejected before sending"):
        sink.close()
    message = str(info.value)
    assert f"event 'login' at timestamp {stamps[3]} ({iso(stamps[3])}), 60 min behind" in message
    assert "retention.ms=3600000" in message
    assert [ts for _, _, ts in read_back(topic)] == stamps[:3]
    ledger = sink.ledger
    assert (ledger.collected, ledger.acknowledged, ledger.failed) == (4, 3, 1)


@pytest.mark.parametrize(
    "config",
    [
        {**RETENTION, "message.timestamp.type": "LogAppendTime"},
        {"retention.ms": str(HOUR_MS), "cleanup.policy": "compact"},
    ],
    ids=["log-append-time", "compact-only"],
)
def test_topics_retention_does_not_delete_from_keep_every_event(config: dict[str, str]) -> None:
    """LogAppendTime (retention counts from the broker's stamp) and compact-only topics with
    a 1 h retention take a run from 2 h ago whole: every event arrives, none refused."""
    topic = create_topic(unique_name("dogesim-ret-kept"), config)
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = now_ms() - 2 * HOUR_MS
    sent_from = now_ms()
    run_short(sink, start)
    expected = expected_short(start)
    got = read_back(topic)
    assert [(k, v) for k, v, _ in got] == [(k, v) for k, v, _ in expected]
    if config.get("message.timestamp.type") == "LogAppendTime":
        assert all(sent_from <= ts <= now_ms() for _, _, ts in got)  # the broker's stamps
    else:
        assert [ts for _, _, ts in got] == [ts for _, _, ts in expected]
    assert sink.ledger.acknowledged == len(expected) and sink.ledger.failed == 0


def test_send_time_delivers_a_run_older_than_retention() -> None:
    """record_timestamp='send' on the 1 h retention topic: a run from 2 h ago arrives whole,
    record timestamps are the send times."""
    topic = create_topic(unique_name("dogesim-ret-send"), RETENTION)
    factory = KafkaSinkFactory([kafka_bootstrap()], record_timestamp="send")
    sink = factory.create(topic, key_function, value_function)
    start = now_ms() - 2 * HOUR_MS
    sent_from = now_ms()
    run_short(sink, start)
    sent_to = now_ms()
    expected = expected_short(start)
    got = read_back(topic)
    assert [(k, v) for k, v, _ in got] == [(k, v) for k, v, _ in expected]
    assert all(sent_from <= ts <= sent_to for _, _, ts in got)
    assert sink.ledger.acknowledged == len(expected)


def test_topic_not_created_yet_reads_the_brokers_retention() -> None:
    """A topic that does not exist yet is checked against the broker's log.retention.*: the
    test broker keeps records forever (log.retention.ms=-1), so a run dated 2023 is sent
    whole, to the topic created on first send."""
    topic = unique_name("dogesim-ret-absent")
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = 1_700_000_000_000
    run_short(sink, start)
    rule = sink.topic_rules.rules[topic] if sink.topic_rules is not None else None
    assert rule is not None and rule.prefix == "log.message."
    assert (rule.retention_ms, rule.retention) == (
        None,
        "log.retention.ms=-1, log.cleanup.policy=delete",
    )
    assert sink.ledger.acknowledged == len(expected_short(start))


def test_unreadable_settings_warn_once_and_send(caplog: pytest.LogCaptureFixture) -> None:
    """When the topic's settings cannot be read in time the sink warns once, naming the
    retention, and sends (it refuses nothing it cannot know): the broker acknowledges all."""
    topic = create_topic(unique_name("dogesim-ret-unread"), RETENTION)
    sink = KafkaSinkFactory([kafka_bootstrap()], config_timeout=1e-6).create(
        topic, key_function, value_function
    )
    start = now_ms() - 2 * HOUR_MS
    with caplog.at_level(logging.WARNING, logger="dogesim.sinks.kafka"):
        run_short(sink, start)
    warnings = [r.getMessage() for r in caplog.records if "cannot read its" in r.getMessage()]
    assert len(warnings) == 1 and "retention.ms and cleanup.policy" in warnings[0]
    # Not read back: these records are past the retention, the broker may delete them now.
    assert sink.ledger.acknowledged == len(expected_short(start)) and sink.ledger.failed == 0


def model_file(tmp_path: Path, topic: str, start: int, extra: str = "") -> Path:
    return tiny_model_file(tmp_path / "old.yaml", topic, start=start, extra=extra)


def test_cli_run_older_than_retention_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run` of a model file starting 2 h ago into the 1 h retention topic: exit 2
    and one line on stderr naming the topic, retention.ms and the fixes; nothing sent."""
    topic = create_topic(unique_name("dogesim-ret-cli"), RETENTION)
    assert main(["run", str(model_file(tmp_path, topic, now_ms() - 2 * HOUR_MS))]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(rf"dogesim: topic '{topic}': the run's record timestamps reach \d+ \(", err)
    assert "retention.ms=3600000" in err and "`start:` in a model file" in err
    assert "record_timestamp='send'" in err
    assert consume_all(topic) == []


def test_cli_run_older_than_retention_with_send_time_delivers_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same run with `record_timestamp: send` on the sink: exit 0, every event
    acknowledged and in the topic."""
    topic = create_topic(unique_name("dogesim-ret-cli-send"), RETENTION)
    model = model_file(tmp_path, topic, now_ms() - 2 * HOUR_MS, ", record_timestamp: send")
    assert main(["run", str(model)]) == 0
    out = capsys.readouterr().out
    ledger = re.search(r"collected (\d+), acknowledged (\d+), failed 0, pending 0", out)
    assert ledger, out
    assert int(ledger.group(1)) == int(ledger.group(2)) == len(consume_all(topic)) > 0
