"""A Kafka topic's time retention in the record-timestamp rule, without a broker.

A topic with ``cleanup.policy=delete`` and CreateTime timestamps deletes a record once its
timestamp is older than ``retention.ms``, at the broker's next retention check, after having
acknowledged it. These tests pin how the rule is read from a described configuration (the
topic's, or the broker's defaults for a topic not created yet, through `read_rule`), the
window it gives (one comparison per event in the sink), and the sink's refusal of an event
that retention would delete: `SinkConfigError`, counted as failed, nothing sent.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigEntry, ConfigResource, ResourceType
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User, banking_simulation
from dogesim.model import Transition
from dogesim.sinks.kafka import KafkaSink, KafkaSinkFactory
from dogesim.sinks.kafka_timestamps import (
    RETENTION_CHECK_MS,
    TimestampRule,
    TopicRules,
    _rule,
    read_rule,
)
from tests.unit.test_kafka_args import closed_port, entries

HOUR_MS = 3_600_000
WEEK_MS = 168 * HOUR_MS
NOW = 1_800_000_000_000.0
LOGIN = Transition("login", "offline", "online", 0.1)
USER = User(1, 100, 0, 0)


def topic_rule(**values: str) -> TimestampRule:
    """The rule of topic 't' described with `values` (``retention_ms`` for retention.ms)."""
    return _rule("t", entries(**values), "message.", "topic 't'")


def broker_rule(**values: str) -> TimestampRule:
    """The rule of a topic not created yet, from broker defaults described with `values`."""
    return _rule("t", entries(**values), "log.message.", "broker 1 defaults")


def retained(rule: TimestampRule, timestamp: float, now_ms: float) -> bool:
    """The law, written out: is a record stamped `timestamp`, sent at `now_ms`, kept past the
    broker's next retention check? (the slow twin of the window's lower bound)"""
    if rule.log_append_time or rule.retention_ms is None:
        return True
    left_to_live = timestamp + rule.retention_ms - now_ms
    return left_to_live >= min(RETENTION_CHECK_MS, rule.retention_ms / 2)


# -- reading the rule ----------------------------------------------------------------------------


def test_topic_retention_and_delete_policy_are_read() -> None:
    """retention.ms=3600000 with cleanup.policy=delete: records live 1 h past their timestamp,
    and the rule names the settings as written."""
    rule = topic_rule(retention_ms="3600000", cleanup_policy="delete")
    assert rule.retention_ms == HOUR_MS
    assert rule.retention == "retention.ms=3600000, cleanup.policy=delete"


def test_keep_forever_retention_deletes_nothing() -> None:
    """retention.ms=-1 (keep forever) and Long.MAX both mean no time retention."""
    assert topic_rule(retention_ms="-1", cleanup_policy="delete").retention_ms is None
    forever = topic_rule(retention_ms="9223372036854775807", cleanup_policy="delete")
    assert forever.retention_ms is None


@pytest.mark.parametrize(
    ("policy", "deletes"),
    [("compact", False), ("delete", True), ("compact,delete", True), ("delete, compact", True)],
)
def test_only_policies_with_delete_apply_retention(policy: str, deletes: bool) -> None:
    """compact-only topics never delete by time; compact,delete ones do."""
    rule = topic_rule(retention_ms="3600000", cleanup_policy=policy)
    assert (rule.retention_ms == HOUR_MS) is deletes
    assert (rule.retention_ms is None) is not deletes


def test_an_empty_cleanup_policy_deletes_nothing() -> None:
    """An empty cleanup.policy (no cleanup at all) keeps every record."""
    assert topic_rule(retention_ms="3600000", cleanup_policy="").retention_ms is None


def test_missing_policy_is_kafkas_default_delete() -> None:
    """A configuration that reports retention.ms but no cleanup.policy gets Kafka's default,
    delete."""
    rule = topic_rule(retention_ms="3600000")
    assert rule.retention_ms == HOUR_MS
    assert rule.retention == "retention.ms=3600000, cleanup.policy=delete (the default)"


def test_no_retention_reported_means_no_check() -> None:
    """A configuration without retention.ms (a Kafka-compatible service) checks nothing."""
    rule = topic_rule(cleanup_policy="delete")
    assert (rule.retention_ms, rule.retention) == (None, "")
    assert rule.window(NOW)[0] == -math.inf


def test_broker_hours_default_for_a_topic_not_created_yet() -> None:
    """Broker defaults: log.retention.hours=168 with .ms and .minutes unset is 7 days."""
    rule = broker_rule(log_retention_hours="168", log_cleanup_policy="delete")
    assert rule.retention_ms == WEEK_MS
    assert rule.retention == "log.retention.hours=168, log.cleanup.policy=delete"


def test_broker_retention_precedence_is_kafkas() -> None:
    """log.retention.ms wins over .minutes, which wins over .hours (the first one set)."""
    minutes = broker_rule(log_retention_minutes="90", log_retention_hours="168")
    assert minutes.retention_ms == 90 * 60_000
    assert minutes.retention.startswith("log.retention.minutes=90, ")
    ms = broker_rule(
        log_retention_ms="120000", log_retention_minutes="90", log_retention_hours="168"
    )
    assert ms.retention_ms == 120_000
    forever = broker_rule(log_retention_ms="-1", log_retention_hours="168")
    assert forever.retention_ms is None  # -1 is set: keep forever, whatever the hours say
    assert forever.retention.startswith("log.retention.ms=-1")


def test_broker_compact_policy_deletes_nothing() -> None:
    """log.cleanup.policy=compact: topics created on first send are never deleted by time."""
    assert broker_rule(log_retention_hours="168", log_cleanup_policy="compact").retention_ms is None


class _Future:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _Metadata:
    def __init__(self) -> None:
        self.controller_id = 1
        self.brokers = {1: object()}


class _DescribedAdmin:
    """An admin client answering with fixed configurations: none for the topic (it does
    not exist), `broker` for broker 1."""

    def __init__(self, broker: dict[str, ConfigEntry]) -> None:
        self.broker = broker
        self.asked: list[tuple[ResourceType, str]] = []

    def describe_configs(self, resources: list[ConfigResource], **_: Any) -> dict[Any, Any]:
        (resource,) = resources
        self.asked.append((resource.restype, resource.name))
        if resource.restype == ResourceType.TOPIC:
            missing = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            return {resource: _Future(missing)}
        return {resource: _Future(self.broker)}

    def list_topics(self, timeout: float | None = None) -> _Metadata:
        return _Metadata()


def test_read_rule_takes_broker_retention_for_a_topic_not_created_yet() -> None:
    """read_rule on a topic the cluster does not know reads broker 1's defaults: the stock
    168 h retention with delete, which a run of last month's events would lose."""
    admin = _DescribedAdmin(
        entries(
            log_retention_ms=None,  # type: ignore[arg-type]  # unset, as Kafka describes it
            log_retention_minutes=None,  # type: ignore[arg-type]
            log_retention_hours="168",
            log_cleanup_policy="delete",
            log_message_timestamp_type="CreateTime",
        )
    )
    rule = read_rule(admin, "absent", 1.0)  # type: ignore[arg-type]
    assert admin.asked == [(ResourceType.TOPIC, "absent"), (ResourceType.BROKER, "1")]
    assert rule.retention_ms == WEEK_MS
    assert rule.source == "broker 1 defaults (topic 'absent' does not exist yet)"
    assert rule.retention == "log.retention.hours=168, log.cleanup.policy=delete"
    assert rule.window(NOW)[0] == NOW - WEEK_MS + RETENTION_CHECK_MS


def test_unreadable_settings_warn_once_and_check_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """No answer to DescribeConfigs (here: nobody listens): one warning naming the retention
    settings, no rule (nothing refused), and a second ask is answered from the cache."""
    rules = TopicRules({"bootstrap.servers": closed_port(), "log_level": 0}, 0.05)
    with caplog.at_level(logging.WARNING, logger="dogesim.sinks.kafka"):
        assert rules.get("t") is None
        assert rules.get("t") is None
    warnings = [r.getMessage() for r in caplog.records if "cannot read its" in r.getMessage()]
    assert len(warnings) == 1
    assert "message.timestamp.*, retention.ms and cleanup.policy settings" in warnings[0]
    assert "also not against the retention" in warnings[0]


# -- the window --------------------------------------------------------------------------------


def test_window_low_is_retention_less_the_check_interval() -> None:
    """A 1 h retention: the oldest timestamp let through is now - 1 h + 5 min (the broker's
    default retention check interval, so it is not deleted at the next check)."""
    rule = topic_rule(retention_ms="3600000", cleanup_policy="delete")
    assert RETENTION_CHECK_MS == 300_000
    assert rule.window(NOW) == (NOW - HOUR_MS + 300_000, math.inf)


def test_short_retention_margin_is_half_of_it() -> None:
    """A 1 min retention topic takes events 30 s old (half its life), and events of now."""
    rule = topic_rule(retention_ms="60000", cleanup_policy="delete")
    assert rule.window(NOW)[0] == NOW - 30_000


def test_window_low_is_the_stricter_of_retention_and_before_max() -> None:
    """With both message.timestamp.before.max.ms and retention.ms, the higher floor binds."""
    rule = topic_rule(
        retention_ms=str(2 * HOUR_MS),
        cleanup_policy="delete",
        message_timestamp_before_max_ms=str(HOUR_MS),
    )
    assert rule.window(NOW, margin_ms=1000.0)[0] == NOW - HOUR_MS + 1000.0
    looser = topic_rule(
        retention_ms=str(HOUR_MS),
        cleanup_policy="delete",
        message_timestamp_before_max_ms=str(2 * HOUR_MS),
    )
    assert looser.window(NOW)[0] == NOW - HOUR_MS + RETENTION_CHECK_MS


def test_log_append_time_topics_ignore_retention() -> None:
    """LogAppendTime: the broker stamps records itself, so retention counts from the send."""
    rule = topic_rule(
        message_timestamp_type="LogAppendTime", retention_ms="3600000", cleanup_policy="delete"
    )
    assert rule.window(NOW) == (-math.inf, math.inf)


@settings(max_examples=400)  # pure arithmetic: cheap, and short retentions need the draws
@given(
    # Short retentions too: under 10 min the margin is half the retention, not 5 min.
    retention=st.one_of(st.none(), st.integers(1, 4 * RETENTION_CHECK_MS), st.integers(1, WEEK_MS)),
    before=st.one_of(st.none(), st.integers(1, 4 * RETENTION_CHECK_MS), st.integers(1, WEEK_MS)),
    append=st.booleans(),
    data=st.data(),
)
def test_window_lower_bound_matches_the_law(
    retention: int | None, before: int | None, append: bool, data: st.DataObject
) -> None:
    """Randomised: the window's one comparison lets a timestamp through exactly when the
    broker would accept it (before.max.ms) and keep it past its next retention check; ages
    are drawn anywhere and within 2 s of either limit."""
    rule = TimestampRule("t", append, before, None, "topic 't'", retention_ms=retention)
    limits = [0.0]
    if retention is not None:
        limits.append(retention - min(RETENTION_CHECK_MS, retention / 2))
    if before is not None:
        limits.append(before - 1000.0)
    near = st.sampled_from(limits).flatmap(
        lambda limit: st.integers(-2000, 2000).map(lambda d: limit + d)
    )
    age = data.draw(st.one_of(st.integers(-WEEK_MS, 20 * WEEK_MS), near), label="age")
    timestamp = NOW - age
    low, high = rule.window(NOW, margin_ms=1000.0)
    accepted = append or before is None or timestamp >= NOW - before + 1000.0
    assert (low <= timestamp <= high) is (accepted and retained(rule, timestamp, NOW))


# -- the sink ----------------------------------------------------------------------------------


class Recording:
    """A producer that records what is produced through it (record timestamps), then hands
    it on: what the sink sent, whatever librdkafka counts in its queue."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.sent: list[int] = []

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.sent.append(kwargs["timestamp"])
        self.producer.produce(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)


def seeded(rule: TimestampRule, **kwargs: Any) -> tuple[Recording, KafkaSink]:
    """A sink on an offline factory whose rule for topic 't' is `rule` (already read), and
    the record of what it produces."""
    factory = KafkaSinkFactory([closed_port()], "test", connect_timeout=None, flush_timeout=0.1)
    factory.topic_rules.rules["t"] = rule
    sink = factory.create("t", lambda u, t: str(u.user_id), lambda ts, u, t: t.trigger, **kwargs)
    recording = sink.producer = Recording(sink.producer)
    return recording, sink


HOUR_RULE = TimestampRule(
    "t",
    False,
    None,
    None,
    "topic 't'",
    retention_ms=HOUR_MS,
    retention="retention.ms=3600000, cleanup.policy=delete",
)


def test_event_older_than_retention_is_refused_and_not_sent() -> None:
    """An event 2 h old on a 1 h retention topic: SinkConfigError naming the topic, the
    setting, the event time as ISO and the three fixes; counted failed; nothing queued."""
    sent, sink = seeded(HOUR_RULE)
    stamp = 1_700_000_000_000  # 2023-11-14T22:13:20+00:00, long expired
    with pytest.raises(SinkConfigError) as info:
        sink.collect(stamp, USER, LOGIN)
    message = str(info.value)
    assert message.startswith("topic 't': event 'login' at timestamp 1700000000000 ")
    assert "(2023-11-14T22:13:20+00:00)" in message
    assert "retention.ms=3600000, cleanup.policy=delete" in message
    assert "next retention check" in message and "so it was not sent" in message
    assert "raise the topic's retention.ms (or set it to -1" in message
    assert "timestamp_start" in message and "record_timestamp='send'" in message
    assert sent.sent == []
    assert (sink.ledger.collected, sink.ledger.failed, sink.ledger.acknowledged) == (1, 1, 0)
    with pytest.raises(SinkError, match="1 events rejected before sending"):
        sink.close()


def test_event_within_retention_is_sent() -> None:
    """An event 30 min old on a 1 h retention topic goes to the producer."""
    sent, sink = seeded(HOUR_RULE)
    stamp = int(time.time() * 1000) - HOUR_MS // 2
    sink.collect(stamp, USER, LOGIN)
    assert sent.sent == [stamp] and sink.ledger.failed == 0
    sent.purge()
    with pytest.raises(SinkError):
        sink.close()  # nothing listens: the purged event is not acknowledged


def test_send_time_records_ignore_retention() -> None:
    """record_timestamp='send': an expired event time is no matter, the event is sent."""
    sent, sink = seeded(HOUR_RULE, record_timestamp="send")
    sink.collect(1_700_000_000_000, USER, LOGIN)
    assert sent.sent == [0]  # 0: librdkafka stamps the record when it sends it
    sent.purge()
    with pytest.raises(SinkError):
        sink.close()


def test_backfill_run_of_expired_events_is_refused_before_it_starts() -> None:
    """A backfill run stamped in 2023 into a 1 h retention topic is refused before its first
    event (check_timestamps), naming its last timestamp (even that one would be deleted);
    nothing counted or queued."""
    sent, sink = seeded(HOUR_RULE)
    with pytest.raises(SinkConfigError) as info:
        banking_simulation(
            [sink], subjects=20, ticks=10, seed=3, timestamp_start=1_700_000_000_000
        ).run()
    message = str(info.value)
    last = 1_700_000_000_000 + 9 * 60_000
    assert f"the run's record timestamps reach {last} (2023-11-14T22:22:20+00:00)" in message
    assert "retention.ms=3600000" in message and "so nothing was sent" in message
    assert (sink.ledger.collected, sent.sent) == (0, [])


def test_before_max_refusal_is_named_before_retention() -> None:
    """Beyond both message.timestamp.before.max.ms and retention: the message names what the
    broker would refuse at once (before.max.ms)."""
    rule = TimestampRule(
        "t",
        False,
        HOUR_MS,
        None,
        "topic 't'",
        retention_ms=HOUR_MS,
        retention="retention.ms=3600000, cleanup.policy=delete",
    )
    sent, sink = seeded(rule)
    with pytest.raises(SinkConfigError) as info:
        sink.collect(1_700_000_000_000, USER, LOGIN)
    assert "message.timestamp.before.max.ms=3600000" in str(info.value)
    assert "retention" not in str(info.value).split("; ")[0]
    assert sent.sent == []
    with pytest.raises(SinkError):
        sink.close()
