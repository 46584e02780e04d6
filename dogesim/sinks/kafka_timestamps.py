"""What record timestamps a Kafka topic accepts and keeps, read once per topic before the first
send.

- `TimestampRule`: a topic's ``message.timestamp.type``, its accepted window
  (``message.timestamp.before.max.ms`` / ``after.max.ms``), its time retention
  (``retention.ms`` under a ``cleanup.policy`` with ``delete``), and where they came from.
- `read_rule`: the rule for one topic, from the topic's configuration or, for a topic that
  does not exist yet (auto-created on first send), the broker's defaults.
- `TopicRules`: reads each topic's rule once (bounded time) and caches it, for all the sinks
  of one factory.
- `RECORD_TIMESTAMPS`: the values of the sinks' ``record_timestamp`` option.
- `RETENTION_CHECK_MS`: the broker's default retention check interval, the margin kept
  inside the retention.

Kafka 4 brokers reject a CreateTime record whose timestamp is more than
``message.timestamp.after.max.ms`` (1 hour by default) ahead of the broker's clock, or more
than ``before.max.ms`` behind it, with only "Broker failed to validate record". A simulated run
easily reaches past that, so the sink checks each event against the rule before sending it.

Worse, a CreateTime topic whose cleanup policy deletes (the default) accepts and acknowledges a
record older than its ``retention.ms`` (7 days by default), then deletes it at its next
retention check, minutes later: a backfill of last month would be lost after the ledger said
delivered. The rule's window therefore also starts where retention would delete.

Importing this module imports confluent_kafka's admin client (the ``kafka`` extra).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

__all__ = ["RECORD_TIMESTAMPS", "RETENTION_CHECK_MS", "TimestampRule", "TopicRules", "read_rule"]

log = logging.getLogger("dogesim.sinks.kafka")

#: ``"event"``: the record timestamp is the event's timestamp (doge-datagen's behaviour);
#: ``"send"``: the record timestamp is the time it is sent (the event time stays in the payload).
RECORD_TIMESTAMPS = ("event", "send")

#: Kafka writes "no limit" as Long.MAX_VALUE; anything this large is no limit in practice.
_UNBOUNDED = 2**62

#: The broker's default ``log.retention.check.interval.ms`` (5 min). A record with less than
#: this left to live (or half its retention, on shorter-lived topics) may be deleted at the
#: check after it is acknowledged, so the window ends that far inside the retention.
RETENTION_CHECK_MS = 300_000

#: Time retention settings in Kafka's precedence (the first one set wins) and their units.
_RETENTION_UNITS = (
    ("retention.ms", 1),
    ("retention.minutes", 60_000),
    ("retention.hours", 3_600_000),
)

#: Client settings the admin client needs to reach the cluster as the producer does; the
#: producer's own settings (idempotence, batching, ...) would make it do producer work.
_ADMIN_PREFIXES = (
    "bootstrap.",
    "metadata.broker.list",
    "client.",
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "socket.",
    "broker.",
    "oauth",
    "logger",
    "log_level",
    "log.",
    "api.version",
    "reconnect.",
    "enable.ssl",
    "enable.sasl",
    "https.",
)


@dataclass(frozen=True)
class TimestampRule:
    """The record timestamps one topic accepts.

    Attributes:
        topic: the topic.
        log_append_time: True when the broker overwrites record timestamps with its own clock
            (``message.timestamp.type=LogAppendTime``): then any timestamp is accepted.
        before_ms: how far behind the broker's clock a timestamp may be; None for no limit.
        after_ms: how far ahead of the broker's clock a timestamp may be; None for no limit.
        source: where the settings came from (``topic 'x'`` or ``broker 1 defaults``).
        prefix: the settings' name prefix there (``message.`` or ``log.message.``).
        retention_ms: how long after its timestamp the broker keeps a record before its
            retention deletes it; None when time retention deletes nothing (``-1``, a cleanup
            policy without ``delete``, or not reported).
        retention: the retention settings as read, for messages
            (``retention.ms=3600000, cleanup.policy=delete``); empty when not reported.
    """

    topic: str
    log_append_time: bool
    before_ms: int | None
    after_ms: int | None
    source: str
    prefix: str = "message."
    retention_ms: int | None = None
    retention: str = ""

    def window(self, now_ms: float, margin_ms: float = 1000.0) -> tuple[float, float]:
        """The timestamps accepted at `now_ms` (`margin_ms` inside the lower limit) and kept
        past the broker's next retention check."""
        if self.log_append_time:
            return (float("-inf"), float("inf"))
        high = float("inf") if self.after_ms is None else now_ms + self.after_ms
        return (max(self.before_floor(now_ms, margin_ms), self.retention_floor(now_ms)), high)

    def before_floor(self, now_ms: float, margin_ms: float = 1000.0) -> float:
        """The oldest timestamp the broker accepts at `now_ms` (``before.max.ms``),
        `margin_ms` inside it; -inf for no limit."""
        if self.log_append_time or self.before_ms is None:
            return float("-inf")
        return now_ms - self.before_ms + margin_ms

    def retention_floor(self, now_ms: float) -> float:
        """The oldest timestamp whose record, sent at `now_ms`, outlives the next retention
        check (-inf when retention deletes nothing, or counts from the broker's own clock)."""
        if self.log_append_time or self.retention_ms is None:
            return float("-inf")
        return now_ms - self.retention_ms + min(RETENTION_CHECK_MS, self.retention_ms / 2)


def _value(entries: Mapping[str, Any], name: str) -> str | None:
    """The value of setting `name` in `entries`, None when absent or unset."""
    entry = entries.get(name)
    return None if entry is None or entry.value is None else str(entry.value)


def _limit(entries: Mapping[str, Any], *names: str) -> int | None:
    """The first of `names` that `entries` holds, as milliseconds (None: no limit/absent)."""
    for name in names:
        raw = _value(entries, name)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            continue
        return None if value >= _UNBOUNDED else value
    return None


def _deletes(policy: str | None) -> bool:
    """Whether a ``cleanup.policy`` (None: not reported) deletes old segments: a list such as
    ``compact,delete``; empty means no cleanup at all, and Kafka's default is delete."""
    return policy is None or "delete" in re.split(r"[\s,\[\]]+", policy.lower())


def _retention(entries: Mapping[str, Any], base: str) -> tuple[int | None, str]:
    """The time retention in `entries` (``base``: ``""`` for a topic, ``log.`` for broker
    defaults) and the settings it came from; None when records are never deleted by time."""
    for name, unit in _RETENTION_UNITS:
        raw = _value(entries, base + name)
        if raw is None:
            continue
        try:
            value = int(raw) * unit
        except ValueError:
            continue
        policy_name = base + "cleanup.policy"
        policy = _value(entries, policy_name)
        said = f"{base}{name}={raw}, {policy_name}="
        said += "delete (the default)" if policy is None else policy
        # Any negative value is Kafka's "keep forever" (-1).
        kept = value < 0 or value >= _UNBOUNDED or not _deletes(policy)
        return (None if kept else value), said
    return None, ""


def _rule(topic: str, entries: Mapping[str, Any], prefix: str, source: str) -> TimestampRule:
    kind_value = _value(entries, prefix + "timestamp.type") or ""
    # Before Kafka 3.6 one setting bounded both sides: message.timestamp.difference.max.ms.
    difference = prefix + "timestamp.difference.max.ms"
    retention_ms, retention = _retention(entries, prefix.removesuffix("message."))
    return TimestampRule(
        topic=topic,
        log_append_time=kind_value.lower() == "logappendtime",
        before_ms=_limit(entries, prefix + "timestamp.before.max.ms", difference),
        after_ms=_limit(entries, prefix + "timestamp.after.max.ms", difference),
        source=source,
        prefix=prefix,
        retention_ms=retention_ms,
        retention=retention,
    )


def read_rule(admin: AdminClient, topic: str, timeout: float) -> TimestampRule:
    """The timestamp rule for `topic` (window and retention): its own settings, or the
    broker's defaults when the topic does not exist yet.

    Raises:
        KafkaException: the cluster refused to describe the configuration (no permission)
            or timed out.
        TimeoutError: no answer within `timeout` seconds.
    """
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout
        )
        return _rule(topic, entries, "message.", f"topic {topic!r}")
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError) or error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise
    metadata = admin.list_topics(timeout=timeout)
    broker = metadata.controller_id if metadata.controller_id >= 0 else min(metadata.brokers)
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    return _rule(
        topic,
        entries,
        "log.message.",
        f"broker {broker} defaults (topic {topic!r} does not exist yet)",
    )


class TopicRules:
    """Each topic's `TimestampRule`, read once with an admin client and cached.

    Args:
        conf: the producer's settings; the admin client takes the connection ones.
        timeout: seconds to wait for the cluster per topic; None turns the check off.
    """

    def __init__(self, conf: Mapping[str, Any], timeout: float | None) -> None:
        self.admin_conf = {k: v for k, v in conf.items() if k.startswith(_ADMIN_PREFIXES)}
        self.timeout = timeout
        self.rules: dict[str, TimestampRule | None] = {}

    def get(self, topic: str) -> TimestampRule | None:
        """The rule for `topic`, or None when it cannot be read (the check is then skipped,
        with a warning: the broker still validates, and a failure is still loud)."""
        if topic in self.rules:
            return self.rules[topic]
        rule: TimestampRule | None = None
        if self.timeout is not None:
            # A client per topic, dropped once read: a factory has few topics, and an idle
            # admin client would keep a connection and librdkafka threads for the whole run.
            try:
                rule = read_rule(AdminClient(self.admin_conf), topic, self.timeout)
            except (KafkaException, TimeoutError, ValueError) as exc:
                # No answer in time, no permission (DescribeConfigs), no broker listed.
                log.warning(
                    "topic %r: cannot read its message.timestamp.*, retention.ms and "
                    "cleanup.policy settings (%s); record timestamps are not checked before "
                    "sending, also not against the retention",
                    topic,
                    exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc,
                )
        self.rules[topic] = rule
        return rule
