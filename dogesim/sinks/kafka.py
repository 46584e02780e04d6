"""Kafka sinks on confluent-kafka's `Producer`, with delivery accounting.

- `KafkaSinkFactory`: one producer for a cluster; ``create(topic, key_function,
  value_function, key_serializer, value_serializer)`` makes a `KafkaSink` per topic
  (doge-datagen's call). All sinks of one factory share its producer. Both of doge-datagen's
  signatures work: 1.0.4's ``KafkaSinkFactory(servers, client_id, buffer_size)`` and the
  later ``KafkaSinkFactory(servers, client_id, conf, buffer_size)``.
- `KafkaSink`: serializes each event and produces it with the event's timestamp as the record
  timestamp (or, with ``record_timestamp="send"``, the send time), keeping its own
  `DeliveryLedger` (several sinks share a producer, not a ledger). A sink closed at the end
  of one run and given events again (a second run) opens a new producer and a new ledger.
- `CounterHolder`: doge-datagen's shared message counter: events the factory's sinks produced
  since the producer was last flushed (``factory.counter_holder``, ``sink.msg_count_holder``).
- `DEFAULT_PRODUCER_CONF`, `DEFAULT_MESSAGE_TIMEOUT_MS`: the settings dogesim adds when
  ``conf`` does not set them.
- `DEFAULT_BUFFER_SIZE`: doge-datagen's default ``buffer_size``.
- `CONNECT_TIMEOUT`: the default ``config_timeout``: as long as ``connect_timeout``.

Nothing is dropped: a full local queue (`BufferError`) makes ``collect`` wait for delivery
reports and retry. The first failed delivery makes the next ``collect`` raise `SinkError`, and
``close()`` flushes with a bounded timeout and raises `SinkError` naming the topic and the
counts when any event was not acknowledged; a second ``close()`` raises the same error. With
no cluster answering, the run fails after ``connect_timeout`` seconds: before its first event
for a backfill run (`check_timestamps`), at the first event otherwise. An exception in
a key or value function or a serializer fails the event with `SinkError` and the counts.

Before the first event of a topic, the sink reads the record timestamps the topic accepts
and keeps (`dogesim.sinks.kafka_timestamps`); an event the broker would refuse (Kafka 4 refuses
timestamps over an hour ahead of its clock by default), or would acknowledge and then delete
at its next retention check (older than the topic's ``retention.ms``, 7 days by default),
fails with `SinkConfigError` saying what to do, before it is sent. A record timestamp of 0
means "now" to Kafka: the sink warns once.

Importing this module imports confluent_kafka (the ``kafka`` extra).
"""

from __future__ import annotations

import codecs
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    Serializer,
    StringSerializer,
)

from dogesim.errors import SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.kafka_timestamps import (
    RECORD_TIMESTAMPS,
    RETENTION_CHECK_MS,
    TimestampRule,
    TopicRules,
)

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_MESSAGE_TIMEOUT_MS",
    "DEFAULT_PRODUCER_CONF",
    "CounterHolder",
    "KafkaSink",
    "KafkaSinkFactory",
]

log = logging.getLogger("dogesim.sinks.kafka")

#: doge-datagen's default ``buffer_size``: messages the producer may hold unconfirmed.
DEFAULT_BUFFER_SIZE = 100000

#: How long librdkafka keeps retrying one message before reporting it failed (2 minutes):
#: long enough to ride out a broker restart or a leader election, short enough that a run
#: against a dead cluster fails instead of hanging.
DEFAULT_MESSAGE_TIMEOUT_MS = 120_000

#: Producer settings added unless ``conf`` sets them (or an alias of them). Idempotence with
#: acks=all means a retried send is never written twice and an acknowledged event is on every
#: in-sync replica; linger and batch sizes favour throughput. Only failed deliveries are
#: reported one by one (a Python callback per success would cost a third of the throughput);
#: successes are counted whenever nothing is outstanding.
DEFAULT_PRODUCER_CONF: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "message.timeout.ms": DEFAULT_MESSAGE_TIMEOUT_MS,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "compression.type": "lz4",
    "delivery.report.only.error": True,
}

#: librdkafka's names for the same setting; a key set under any of them counts as set.
_ALIASES: dict[str, tuple[str, ...]] = {
    "acks": ("acks", "request.required.acks"),
    "message.timeout.ms": ("message.timeout.ms", "delivery.timeout.ms"),
    "linger.ms": ("linger.ms", "queue.buffering.max.ms"),
    "compression.type": ("compression.type", "compression.codec"),
    "queue.buffering.max.messages": ("queue.buffering.max.messages",),
}

#: Distinct error messages kept per sink for the `SinkError` text.
_KEEP_ERRORS = 5


#: librdkafka's retry timing inside an error text ("(after 3ms in state CONNECT)"): the same
#: failure is reported with another timing on every retry, so it is left out when counting.
_RETRY_TIMING = re.compile(r" \(after \d+ms in state [A-Z_]+\)")

#: What librdkafka reports when the peer answered, but not in Kafka's protocol (a web server,
#: a database on the port given as the broker's): a framing size no broker sends.
_NOT_KAFKA = ("Invalid response size", "Unsupported protocol")


def _remember(errors: dict[str, int], text: str) -> None:
    """Count `text` in `errors`, keeping at most `_KEEP_ERRORS` distinct messages."""
    text = _RETRY_TIMING.sub("", text)
    if text in errors:
        errors[text] += 1
    elif len(errors) < _KEEP_ERRORS:
        errors[text] = 1


def _describe(errors: dict[str, int]) -> str:
    return "; ".join(f"{text} (x{n})" if n > 1 else text for text, n in errors.items())


#: Produce calls between two polls for delivery reports (a poll costs ~0.7 us).
_POLL_EVERY = 1000


def _is_set(conf: Mapping[str, Any], key: str) -> bool:
    return any(alias in conf for alias in _ALIASES.get(key, (key,)))


def _bootstrap_string(bootstrap_servers: str | Iterable[str] | None) -> str | None:
    if bootstrap_servers is None:
        return None
    if isinstance(bootstrap_servers, str):
        return bootstrap_servers
    try:
        servers = [str(server) for server in bootstrap_servers]
    except TypeError:
        raise SinkConfigError(
            "Kafka: bootstrap_servers must be a 'host:port,host:port' string or a list of "
            f"'host:port' strings, got {bootstrap_servers!r}"
        ) from None
    return ",".join(servers)


def _check_bootstrap(value: object) -> None:
    """Reject what librdkafka would silently accept and never connect with."""
    where = "Kafka: bootstrap.servers"
    if not isinstance(value, str) or not value.strip():
        raise SinkConfigError(
            f"{where} is {value!r}; give the cluster's 'host:port' list "
            "(bootstrap_servers=['127.0.0.1:9092'] or conf={'bootstrap.servers': ...})"
        )
    for entry in value.split(","):
        server = entry.strip()
        if "://" in server:
            server = server.split("://", 1)[1]
        host, sep, port = server.rpartition(":")
        if not sep:
            host, port = server, "9092"
        if not host or host.startswith(":") or any(c.isspace() for c in host):
            raise SinkConfigError(f"{where} {value!r}: {entry!r} is not a 'host:port' address")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SinkConfigError(
                f"{where} {value!r}: {entry!r} has port {port!r}; a port is a number 1-65535"
            )


def _conf_and_buffer(
    conf: Mapping[str, Any] | int | None, buffer_size: int | None, where: str
) -> tuple[Mapping[str, Any] | None, int]:
    """Tell doge-datagen 1.0.4's ``(servers, client_id, buffer_size)`` from the later
    ``(servers, client_id, conf, buffer_size)``: an integer where ``conf`` goes is 1.0.4's
    ``buffer_size``."""
    if isinstance(conf, int) and not isinstance(conf, bool):
        if buffer_size is not None:
            raise SinkConfigError(
                f"{where}: conf is the integer {conf!r} and buffer_size is {buffer_size!r}; "
                "give conf as a dict of librdkafka settings (or the buffer size alone, "
                "in conf's place, as doge-datagen 1.0.4 did)"
            )
        conf, buffer_size = None, conf
    if conf is not None and not isinstance(conf, Mapping):
        raise SinkConfigError(
            f"{where}: conf must be a dict of librdkafka settings "
            f"(e.g. {{'bootstrap.servers': 'host:9092'}}), got {type(conf).__name__} {conf!r}"
        )
    if buffer_size is None:
        buffer_size = DEFAULT_BUFFER_SIZE
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
        raise SinkConfigError(f"{where}: buffer_size must be an integer >= 1, got {buffer_size!r}")
    return conf, buffer_size


def _check_record_timestamp(value: object) -> Literal["event", "send"]:
    if value not in RECORD_TIMESTAMPS:
        raise SinkConfigError(
            f"Kafka: record_timestamp must be 'event' (the record timestamp is the event's) "
            f"or 'send' (the time it is sent; the event time stays in the payload), got {value!r}"
        )
    return "send" if value == "send" else "event"


def _span(ms: float) -> str:
    """`ms` milliseconds for a person: ``2 h 5 min``, ``40 s``."""
    seconds = int(abs(ms) // 1000)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def _utc(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "out of the calendar"


def _refusal(
    what: str, timestamp: int, rule: TimestampRule, now_ms: float, outcome: str
) -> tuple[str, str]:
    """Why the broker would refuse `timestamp` under `rule` (or delete it, acknowledged, at
    its next retention check), and what to do about it."""
    ahead = timestamp > now_ms
    if not ahead and timestamp >= rule.before_floor(now_ms):
        # Behind, but accepted: only the retention can have put it out of the window.
        return _expiry(what, timestamp, rule, now_ms, outcome)
    side = "after" if ahead else "before"
    limit = rule.after_ms if ahead else rule.before_ms
    relation = "ahead of" if ahead else "behind"
    cause = (
        f"{what} {timestamp} ({_utc(timestamp)}), {_span(timestamp - now_ms)} {relation} "
        f"now, but {rule.source} accepts record timestamps at most {limit} ms "
        f"({_span(limit or 0)}) {relation} the broker's clock "
        f"({rule.prefix}timestamp.{side}.max.ms={limit}); the broker would refuse such records "
        f"('Broker failed to validate record'), {outcome}"
    )
    advice = (
        "; give timestamp_start near now (e.g. int(time.time() * 1000)), raise the topic's "
        f"message.timestamp.{side}.max.ms, or create the sink with record_timestamp='send' "
        "(record time = send time; the event time stays in the payload)"
    )
    return cause, advice


def _expiry(
    what: str, timestamp: int, rule: TimestampRule, now_ms: float, outcome: str
) -> tuple[str, str]:
    """Why the broker's retention would delete `timestamp` right after acknowledging it, and
    what to do about it."""
    kept = rule.retention_ms or 0
    cause = (
        f"{what} {timestamp} ({_utc(timestamp)}), {_span(now_ms - timestamp)} behind now, but "
        f"{rule.source} deletes a record once its timestamp is {kept} ms ({_span(kept)}) old "
        f"({rule.retention}); the broker would acknowledge such records and delete them at "
        f"its next retention check (every {_span(RETENTION_CHECK_MS)} by default), {outcome}"
    )
    keep = (
        "raise the topic's retention.ms (or set it to -1: keep forever)"
        if rule.prefix == "message."
        else "create the topic first with a larger retention.ms (or -1: keep forever)"
    )
    advice = (
        f"; {keep}, start the run later (timestamp_start=..., `start:` in a model file, "
        f"within {_span(kept)} of now), or create the sink with record_timestamp='send' "
        "(record time = send time; the event time stays in the payload)"
    )
    return cause, advice


class CounterHolder:
    """doge-datagen's message counter shared by the sinks of one factory.

    ``counter`` is the number of events those sinks produced since the producer was last
    flushed (``close()`` flushes it and sets it back to 0). doge-datagen flushed whenever it
    reached ``buffer_size``; dogesim bounds the producer's queue to ``buffer_size`` messages
    instead, which keeps memory bounded the same way without stopping to flush.
    """

    def __init__(self) -> None:
        self.counter = 0


class _SharedProducer:
    """One producer shared by the sinks of a factory, closed when the last sink closes.

    With ``delivery.report.only.error`` (the default), librdkafka reports only failed
    deliveries; whenever nothing is outstanding (``len(producer) == 0``) every event a sink
    produced and did not see fail is acknowledged, and `settle` records that in each ledger.
    Once closed, `current` gives the producer that replaces it (made on first use), so sinks
    given events again after ``close()`` share a new producer as they shared the old one.

    Given a `producer` (a program's own, as doge-datagen's ``KafkaSink(producer, ...)`` takes
    one), it uses that one and never closes it: every delivery is then reported one by one,
    as nobody can tell its settings.
    """

    def __init__(
        self,
        conf: dict[str, Any],
        user_error_cb: Callable[[KafkaError], Any] | None,
        counter_holder: CounterHolder,
        producer: Producer | None = None,
    ) -> None:
        self.conf = conf
        self.user_error_cb = user_error_cb
        self.counter_holder = counter_holder
        self.fatal: KafkaError | None = None
        self.errors: dict[str, int] = {}
        self.owned = producer is None
        self.bootstrap = str(conf.get("bootstrap.servers", "the given producer's cluster"))
        self.errors_only = self.owned and str(
            conf.get("delivery.report.only.error", "false")
        ).lower() in ("true", "1")
        self.producer = producer if producer is not None else self._new_producer()
        self.sinks: list[KafkaSink] = []
        self.open_sinks = 0
        self.closed = False
        self.next_poll = counter_holder.counter + _POLL_EVERY
        self.connected = False
        self.successor: _SharedProducer | None = None

    def _new_producer(self) -> Producer:
        conf = dict(self.conf)
        conf["error_cb"] = self._on_error
        try:
            return Producer(conf)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            detail = error.str() if isinstance(error, KafkaError) else str(exc)
            raise SinkConfigError(
                f"Kafka producer configuration rejected: {detail} "
                f"(settings given: {sorted(k for k in self.conf if k != 'logger')})"
            ) from exc

    def current(self) -> _SharedProducer:
        """This producer while it is open, else the (new) one that replaces it."""
        if not self.owned:
            self.closed = False  # a program's own producer stays open: use it again
            return self
        shared = self
        while shared.closed:
            if shared.successor is None:
                shared.successor = _SharedProducer(
                    shared.conf, shared.user_error_cb, shared.counter_holder
                )
            shared = shared.successor
        return shared

    def join(self, sink: KafkaSink) -> None:
        """`sink` produces through this producer until it closes."""
        if sink not in self.sinks:
            self.sinks.append(sink)
        self.open_sinks += 1

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
            for sink in self.sinks:
                sink._ready = False  # the next collect raises
        _remember(self.errors, error.str())
        if self.user_error_cb is not None:
            self.user_error_cb(error)

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports and errors; settle the ledgers when nothing is outstanding."""
        self.next_poll = self.counter_holder.counter + _POLL_EVERY
        producer = self.producer
        producer.poll(timeout)
        if self.errors_only and not len(producer):
            self.settle()
        now_ms = time.time() * 1000.0
        for sink in self.sinks:
            sink.refresh_window(now_ms)

    def settle(self) -> None:
        """Nothing is outstanding: every produced event that did not fail was acknowledged."""
        if self.errors_only:
            for sink in self.sinks:
                ledger = sink.ledger
                ledger.acknowledged = ledger.collected - ledger.failed

    def flushed(self) -> None:
        """The producer holds nothing: doge-datagen's counter starts again."""
        self.counter_holder.counter = 0
        self.next_poll = _POLL_EVERY

    def release(self, sink: KafkaSink) -> None:
        """One sink is done; the last one closes the producer."""
        self.open_sinks -= 1
        if self.open_sinks <= 0 and not self.closed:
            self.closed = True
            if not self.owned:
                return
            producer = self.producer
            if len(producer):
                # Still in flight after the flush timeout: Producer.close() would wait for
                # them without bound. Their outcome stays unknown (pending), not failed.
                producer.purge(in_queue=True, in_flight=True, blocking=True)
                producer.poll(0)
            close = getattr(producer, "close", None)
            if close is not None:
                close()


#: Seconds to wait for a topic's timestamp settings: the same as the connect check.
CONNECT_TIMEOUT: Literal["connect_timeout"] = "connect_timeout"


class KafkaSinkFactory:
    """Creates `KafkaSink` s that share one confluent-kafka producer.

    Accepts doge-datagen 1.0.4's ``KafkaSinkFactory(bootstrap_servers, client_id,
    buffer_size)`` (an integer in ``conf``'s place is the buffer size) as well as the later
    ``KafkaSinkFactory(bootstrap_servers, client_id, conf, buffer_size)``.

    Args:
        bootstrap_servers: the cluster, as a list of ``host:port`` or a comma-separated
            string. ``conf['bootstrap.servers']`` wins when both are given.
        client_id: the producer's ``client.id`` (``conf['client.id']`` wins); ``dogesim``
            when neither is given.
        conf: librdkafka settings, passed through untouched (SASL, TLS, ...). dogesim adds
            `DEFAULT_PRODUCER_CONF` for every key not set here: an idempotent producer with
            acks=all (not added when ``acks`` is set to something else), a
            `DEFAULT_MESSAGE_TIMEOUT_MS` delivery timeout, and throughput-minded batching.
        buffer_size: messages the local queue holds (``queue.buffering.max.messages``);
            when it is full, ``collect`` waits for deliveries and retries. doge-datagen
            flushed every ``buffer_size`` messages; the memory bound is the same.
        flush_timeout: seconds ``close()`` waits for outstanding deliveries; by default the
            message timeout plus 10 s, so every message is either acknowledged or failed.
        connect_timeout: seconds the first event waits for the cluster to answer a metadata
            request; an unreachable cluster then fails the run at once instead of after the
            message timeout. None skips the check.
        record_timestamp: ``"event"`` (default, as doge-datagen): each record's timestamp is
            the event's. ``"send"``: the time it is sent, which any broker accepts (the event
            time stays wherever the value function puts it, e.g. the payload).
        config_timeout: seconds to wait, once per topic before its first event, for the
            topic's ``message.timestamp.*``, ``retention.ms`` and ``cleanup.policy`` settings
            (or the broker's defaults), against which each event's timestamp is checked
            before it is sent. By default the ``connect_timeout``; None skips the check.

    Raises:
        SinkConfigError: no or malformed bootstrap servers, a bad ``buffer_size`` or
            ``record_timestamp``, or librdkafka rejects a setting.
    """

    def __init__(
        self,
        bootstrap_servers: str | Iterable[str] | None = None,
        client_id: str | None = None,
        conf: Mapping[str, Any] | int | None = None,
        buffer_size: int | None = None,
        *,
        flush_timeout: float | None = None,
        connect_timeout: float | None = 30.0,
        record_timestamp: Literal["event", "send"] = "event",
        config_timeout: float | Literal["connect_timeout"] | None = CONNECT_TIMEOUT,
    ) -> None:
        conf, buffer_size = _conf_and_buffer(conf, buffer_size, "Kafka")
        self.record_timestamp = _check_record_timestamp(record_timestamp)
        merged: dict[str, Any] = dict(conf or {})
        servers = _bootstrap_string(bootstrap_servers)
        if "bootstrap.servers" not in merged and servers is not None:
            merged["bootstrap.servers"] = servers
        _check_bootstrap(merged.get("bootstrap.servers"))
        if "client.id" not in merged:
            merged["client.id"] = client_id if client_id is not None else "dogesim"
        acks = next((merged[k] for k in _ALIASES["acks"] if k in merged), "all")
        for key, value in DEFAULT_PRODUCER_CONF.items():
            if key == "enable.idempotence" and str(acks).lower() not in ("all", "-1"):
                continue
            if not _is_set(merged, key):
                merged[key] = value
        if not _is_set(merged, "queue.buffering.max.messages"):
            merged["queue.buffering.max.messages"] = buffer_size
        merged.setdefault("logger", log)
        self._user_error_cb = merged.pop("error_cb", None)
        self.conf = merged
        self.buffer_size = buffer_size
        timeout_ms = next(
            (merged[k] for k in _ALIASES["message.timeout.ms"] if k in merged),
            DEFAULT_MESSAGE_TIMEOUT_MS,
        )
        try:
            timeout_s = float(timeout_ms) / 1000.0
        except (TypeError, ValueError):
            raise SinkConfigError(
                f"Kafka: message.timeout.ms must be a number of milliseconds, got {timeout_ms!r}"
            ) from None
        self.flush_timeout = flush_timeout if flush_timeout is not None else timeout_s + 10.0
        self.connect_timeout = connect_timeout
        if config_timeout == CONNECT_TIMEOUT:
            config_timeout = connect_timeout
        self.topic_rules = TopicRules(merged, config_timeout)
        self.counter_holder = CounterHolder()
        self._shared = _SharedProducer(self.conf, self._user_error_cb, self.counter_holder)

    @property
    def producer(self) -> Producer:
        """The producer the factory's current sinks share."""
        return self._shared.producer

    def create(
        self,
        topic: str,
        key_function: Callable[[Any, Transition], Any],
        value_function: Callable[[int, Any, Transition], Any],
        key_serializer: Serializer = StringSerializer(),  # noqa: B008 - doge-datagen's default
        value_serializer: Serializer = StringSerializer(),  # noqa: B008
        *,
        record_timestamp: Literal["event", "send"] | None = None,
    ) -> KafkaSink:
        """A sink producing to `topic`.

        Args:
            topic: the topic events go to.
            key_function: ``(subject, transition) -> key``, given to `key_serializer`.
            value_function: ``(timestamp, subject, transition) -> value``, given to
                `value_serializer`.
            key_serializer: turns the key into bytes (UTF-8 strings by default).
            value_serializer: turns the value into bytes (UTF-8 strings by default).
            record_timestamp: ``"event"`` or ``"send"``, for this sink only; by default the
                factory's.
        """
        if not isinstance(topic, str) or not topic:
            raise SinkConfigError(f"Kafka: topic must be a non-empty string, got {topic!r}")
        mode = self.record_timestamp
        if record_timestamp is not None:
            mode = _check_record_timestamp(record_timestamp)
        shared = self._shared = self._shared.current()
        return KafkaSink(
            shared.producer,
            shared.counter_holder,
            topic,
            key_function,
            key_serializer,
            value_function,
            value_serializer,
            self.buffer_size,
            shared=shared,
            flush_timeout=self.flush_timeout,
            connect_timeout=self.connect_timeout,
            topic_rules=self.topic_rules,
            record_timestamp=mode,
        )


def _plain_utf8(serializer: object) -> bool:
    """True for confluent's own UTF-8 `StringSerializer`: then ``produce`` encodes str itself."""
    if type(serializer) is not StringSerializer:
        return False
    try:
        return codecs.lookup(serializer.codec).name == "utf-8"
    except LookupError:
        return False


#: Marks "the key/value function did not return" in error messages.
_NOT_MADE: Any = object()

_INF = float("inf")


class KafkaSink(LedgeredSink):
    """Produces one Kafka record per event; made by `KafkaSinkFactory.create`.

    The record's key and value are ``key_serializer(key_function(subject, transition))``
    and ``value_serializer(value_function(timestamp, subject, transition))``; its timestamp is
    the event timestamp (``record_timestamp="event"``) or the send time (``"send"``).
    librdkafka reads a timestamp of 0 as "now", so a run starting at ``timestamp_start=0``
    gets the produce time on its first tick's records (the sink warns once): start runs at a
    real epoch time in milliseconds.

    The ledger's ``acknowledged`` count is brought up to date whenever the producer has
    nothing outstanding (at the latest by ``close()``); ``failed`` counts as failures arrive.
    After ``close()``, an event starts a new run: the sink joins a new producer and starts a
    new ledger (the old one stays as the closed run left it).

    The positional arguments are doge-datagen's, so ``KafkaSink(producer, CounterHolder(),
    topic, key_function, key_serializer, value_function, value_serializer)`` works: the sink
    then produces through that producer, flushes it on ``close()`` and leaves it open (its
    topic's timestamp settings are not read: dogesim does not know how to reach the cluster
    with an admin client).

    Args:
        producer: the confluent-kafka producer to produce through.
        msg_count_holder: the `CounterHolder` counting events produced since the last flush.
        buffer_size: kept for doge-datagen's signature; the producer's own queue bound
            (``queue.buffering.max.messages``) limits memory.
        flush_timeout: seconds ``close()`` waits for outstanding deliveries.
        connect_timeout, record_timestamp: as for `KafkaSinkFactory`.
        topic_rules: where the topic's timestamp settings are read; None skips the check.
    """

    def __init__(
        self,
        producer: Producer,
        msg_count_holder: CounterHolder,
        topic: str,
        key_function: Callable[[Any, Transition], Any],
        key_serializer: Serializer,
        value_function: Callable[[int, Any, Transition], Any],
        value_serializer: Serializer,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        *,
        flush_timeout: float = DEFAULT_MESSAGE_TIMEOUT_MS / 1000.0 + 10.0,
        connect_timeout: float | None = 30.0,
        topic_rules: TopicRules | None = None,
        record_timestamp: Literal["event", "send"] = "event",
        shared: _SharedProducer | None = None,
    ) -> None:
        super().__init__(f"kafka:{topic}")
        if shared is None:
            shared = _SharedProducer({}, None, msg_count_holder, producer)
        self._shared = shared
        shared.join(self)
        self.producer = shared.producer
        self.msg_count_holder = shared.counter_holder
        self.buffer_size = buffer_size
        self.topic = topic
        self.key_function = key_function
        self.key_serializer = key_serializer
        self.value_function = value_function
        self.value_serializer = value_serializer
        self.flush_timeout = flush_timeout
        self.connect_timeout = connect_timeout
        self.topic_rules = topic_rules
        self.record_timestamp = _check_record_timestamp(record_timestamp)
        self._event_time = self.record_timestamp == "event"
        self.errors: dict[str, int] = {}
        self._failure: str | None = None
        self._rejected = 0
        # False until the first event (connection and topic checks), after a failure and
        # after close(): collect then takes the slow path, `_prepare`.
        self._ready = False
        self._rule: TimestampRule | None = None
        self._rule_read = False
        self._warned_zero = False
        # Timestamps collect sends without a second look (see refresh_window).
        self._low = -_INF
        self._high = _INF
        self._key_ctx = SerializationContext(topic, MessageField.KEY)
        self._value_ctx = SerializationContext(topic, MessageField.VALUE)
        # str keys/values for a plain UTF-8 serializer go to produce() as they are: the C
        # client encodes them, saving two Python calls per event.
        self._key_plain = _plain_utf8(key_serializer)
        self._value_plain = _plain_utf8(value_serializer)
        # One bound method, made once: the per-message delivery callback.
        self._on_delivery = self._delivered

    # -- delivery reports ------------------------------------------------------------------

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            if not self._shared.errors_only:
                self.ledger.acknowledged += 1
            return
        if error.code() == KafkaError._PURGE_INFLIGHT:
            return  # sent, outcome unknown: it stays pending (unconfirmed), not failed
        self.ledger.failed += 1
        _remember(self.errors, error.str())
        if self._failure is None:
            self._failure = error.str()
            self._ready = False

    # -- record timestamps -----------------------------------------------------------------

    def refresh_window(self, now_ms: float) -> None:
        """Recompute the timestamps `collect` lets through unchecked, as of `now_ms`.

        Outside them lies the slow path: a timestamp the topic refuses (an error), 0 (a
        warning, once) and negative ones. Called at the first event and at every poll, as
        the broker's window moves with its clock.
        """
        if not self._event_time:
            self._low, self._high = -_INF, _INF
            return
        low, high = self._rule.window(now_ms) if self._rule is not None else (-_INF, _INF)
        if low < 1 and not self._warned_zero:
            low = 1
        self._low, self._high = low, high

    def _check_timestamp(self, timestamp: int, transition: Transition) -> None:
        """The slow path for a timestamp outside the window: warn, or refuse before sending."""
        now_ms = time.time() * 1000.0
        if timestamp == 0:
            if not self._warned_zero:
                self._warned_zero = True
                log.warning(
                    "topic %r: event %r has timestamp 0, which Kafka reads as 'now': its "
                    "record gets the send time. Start the run at a real epoch time in "
                    "milliseconds (timestamp_start=...) to keep event times in the records",
                    self.topic,
                    transition.trigger,
                )
            self.refresh_window(now_ms)
            return
        rule = self._rule
        if rule is None:
            return
        low, high = rule.window(now_ms)
        if low <= timestamp <= high:
            self.refresh_window(now_ms)
            return
        raise self._timestamp_error(timestamp, transition, rule, now_ms)

    def _timestamp_error(
        self, timestamp: int, transition: Transition, rule: TimestampRule, now_ms: float
    ) -> SinkConfigError:
        self._count_rejected()
        what = f"event {transition.trigger!r} at timestamp"
        cause, advice = _refusal(what, timestamp, rule, now_ms, "so it was not sent")
        error = self._error(cause, details=False, advice=advice, kind=SinkConfigError)
        assert isinstance(error, SinkConfigError)
        return error

    def check_timestamps(self, first_ms: int, last_ms: int) -> None:
        """Refuse, before a run starts, one whose record timestamps from `first_ms` to
        `last_ms` the topic would not accept (a backfill run; a live run's events are near
        now). Reads the topic's settings as the first event would.

        Raises:
            SinkConfigError: naming the timestamp out of bounds and what to do.
        """
        if not self._event_time or self.topic_rules is None:
            return
        if not self._shared.connected:
            # First: a cluster nobody answers fails the run now, after one wait, instead of
            # after a second one for the topic's settings and a third at the first event.
            self._check_connection(event=False)
        if not self._rule_read:
            self._rule = self.topic_rules.get(self.topic)
            self._rule_read = True
        rule = self._rule
        if rule is None:
            return
        now_ms = time.time() * 1000.0
        low, high = rule.window(now_ms)
        for timestamp in (last_ms, first_ms):
            if not low <= timestamp <= high:
                what = "the run's record timestamps reach"
                cause, advice = _refusal(what, timestamp, rule, now_ms, "so nothing was sent")
                raise SinkConfigError(f"topic {self.topic!r}: {cause}{advice}", [self.ledger])

    # -- collecting ------------------------------------------------------------------------

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Serialize the event and hand it to the producer (waiting while its queue is full)."""
        if not self._ready:
            self._prepare()
        if not self._low <= timestamp <= self._high:
            self._check_timestamp(timestamp, transition)
        # `field` and `made` say, if anything raises, which step did: the function (nothing
        # made yet) or the serializer (given `made`).
        field, made = "key", _NOT_MADE
        try:
            made = self.key_function(subject, transition)
            key = (
                made
                if self._key_plain and type(made) is str
                else self.key_serializer(made, self._key_ctx)
            )
            field, made = "value", _NOT_MADE
            made = self.value_function(timestamp, subject, transition)
            value = (
                made
                if self._value_plain and type(made) is str
                else self.value_serializer(made, self._value_ctx)
            )
        except Exception as exc:
            raise self._event_error(field, made, transition, timestamp, exc) from exc
        record_ts = timestamp if self._event_time else 0
        try:
            self.producer.produce(
                self.topic, value, key, timestamp=record_ts, on_delivery=self._on_delivery
            )
        except BufferError:
            self._produce_when_room(key, value, record_ts)
        except KafkaException as exc:
            self._count_rejected()
            raise self._error(
                f"cannot produce event {transition.trigger!r} at {timestamp}: "
                f"{exc.args[0].str() if exc.args else exc}"
            ) from exc
        self.ledger.collected += 1
        shared = self._shared
        holder = shared.counter_holder
        holder.counter += 1
        if holder.counter >= shared.next_poll:
            shared.poll(0)

    def _prepare(self) -> None:
        """The slow path of `collect`: reopen after close, stop after a failure, check the
        cluster and the topic's timestamp settings before the first event."""
        if self._closed:
            self.reopen()
        shared = self._shared
        if self._failure is not None or shared.fatal is not None:
            raise self._error("delivery failed, stopping")
        if not shared.connected:
            self._check_connection()
        if not self._rule_read:
            if self._event_time and self.topic_rules is not None:
                self._rule = self.topic_rules.get(self.topic)
            self._rule_read = True
        self.refresh_window(time.time() * 1000.0)
        self._ready = True

    def _reopen(self) -> None:
        """A closed sink gets events again (a second run; `LedgeredSink.reopen` has given it
        a new ledger): it joins the producer that replaces the closed one."""
        self.errors = {}
        self._failure = None
        self._rejected = 0
        self._ready = False
        shared = self._shared.current()
        shared.join(self)
        self._shared = shared
        self.producer = shared.producer

    def _produce_when_room(self, key: Any, value: Any, timestamp: int) -> None:
        """The local queue is full: serve delivery reports until there is room (never drop)."""
        shared = self._shared
        while True:
            shared.poll(0.05)
            if self._failure is not None or shared.fatal is not None:
                self._count_rejected()
                raise self._error("delivery failed while waiting for room in the queue")
            try:
                self.producer.produce(
                    self.topic, value, key, timestamp=timestamp, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                continue

    def _check_connection(self, *, event: bool = True) -> None:
        """Fail fast when the cluster does not answer at all (once per producer); `event`:
        the check is made for an event, which then counts as failed (before a run, none)."""
        if self.connect_timeout is None:
            self._shared.connected = True
            return
        started = time.monotonic()
        try:
            self.producer.list_topics(timeout=self.connect_timeout)
        except KafkaException as exc:
            waited = time.monotonic() - started
            if event:
                self._count_rejected()
            self.producer.poll(0)  # serve error_cb: it says why (refused, unresolvable, ...)
            recent = _describe(self._shared.errors) or (exc.args[0].str() if exc.args else str(exc))
            if any(sign in recent for sign in _NOT_KAFKA):
                raise self._error(
                    f"something answers at {self._shared.bootstrap}, but it does not speak the "
                    f"Kafka protocol ({recent})",
                    details=False,
                    advice="; check that bootstrap_servers names the brokers' port",
                    kind=SinkConfigError,
                ) from exc
            raise self._error(
                f"the cluster at {self._shared.bootstrap} did not answer within "
                f"{waited:.1f} s ({recent})",
                details=False,
            ) from exc
        self._shared.connected = True

    def _event_error(
        self, field: str, made: Any, transition: Transition, timestamp: int, exc: Exception
    ) -> SinkError:
        """The key or value of an event could not be made: count it and say which step."""
        self._count_rejected()
        if isinstance(exc, SinkError):
            return SinkError(f"{exc}; {self._counts()}", [self.ledger])
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        event = f"event {transition.trigger!r} at {timestamp}"
        if made is _NOT_MADE:
            function = self.key_function if field == "key" else self.value_function
            name = getattr(function, "__qualname__", type(function).__name__)
            cause = f"the {field} function {name} raised {text} for {event}"
        else:
            serializer = self.value_serializer if field == "value" else self.key_serializer
            name = getattr(serializer, "name", type(serializer).__name__)
            cause = (
                f"cannot serialize the {field} of {event} with {name}: {text}; {field} = {made!r}"
            )
        return self._error(cause, details=False)

    def _count_rejected(self) -> None:
        """One event failed before it was sent."""
        self.ledger.collected += 1
        self.ledger.failed += 1
        self._rejected += 1

    def _counts(self) -> str:
        ledger = self.ledger
        return (
            f"{ledger.acknowledged} of {ledger.collected} events acknowledged, "
            f"{ledger.failed} failed, {ledger.pending} unconfirmed"
        )

    def _error(
        self,
        cause: str,
        *,
        details: bool = True,
        advice: str = "",
        kind: type[SinkError] = SinkError,
    ) -> SinkError:
        """`SinkError` naming the topic, `cause`, the counts and what the producer reported."""
        ledger = self.ledger
        detail = ""
        fatal = self._shared.fatal
        if fatal is not None:
            detail += f"; fatal producer error: {fatal.str()}"
        if details and self.errors:
            detail += f"; delivery errors: {_describe(self.errors)}"
        if details and self._shared.errors and ledger.failed + ledger.pending > self._rejected:
            detail += f"; producer errors: {_describe(self._shared.errors)}"
        return kind(f"topic {self.topic!r}: {cause}: {self._counts()}{detail}{advice}", [ledger])

    # -- closing ---------------------------------------------------------------------------

    def _close(self) -> None:
        """Flush the producer, settle the ledger and leave the producer (see
        `LedgeredSink.close`, which keeps the first failure for a second ``close()``)."""
        self._ready = False  # the next event takes the slow path: it reopens the sink
        producer = self.producer
        shared = self._shared
        try:
            if self._failure is not None or shared.fatal is not None:
                # Already failed: drop what never left this process (reported as failed)
                # and wait only for what is in flight.
                producer.purge(in_queue=True, in_flight=False, blocking=True)
            remaining = producer.flush(self.flush_timeout)
            if remaining:
                producer.purge(in_queue=True, in_flight=False, blocking=True)
                remaining = producer.flush(0)
            if not remaining:
                shared.settle()
                shared.flushed()
            elif shared.errors_only:
                # Some messages are still in flight and nobody can say whose: count as
                # acknowledged only what cannot be among them.
                ledger = self.ledger
                ledger.acknowledged = max(
                    ledger.acknowledged, ledger.collected - ledger.failed - remaining
                )
        finally:
            shared.release(self)
        if not self.ledger.ok:
            causes = []
            if self._rejected:
                causes.append(f"{self._rejected} events rejected before sending")
            if self.ledger.failed > self._rejected:
                causes.append(f"{self.ledger.failed - self._rejected} deliveries failed")
            if self.ledger.pending:
                causes.append(
                    f"{self.ledger.pending} events unconfirmed after {self.flush_timeout:g} s"
                )
            raise self._error(", ".join(causes) or "events were lost")
