"""Kafka sinks on confluent-kafka's `Producer`, with delivery accounting.

- `KafkaSinkFactory`: one producer for a cluster; ``create(topic, key_function,
  value_function, key_serializer, value_serializer)`` makes a `KafkaSink` per topic
  (doge-datagen's call). All sinks of one factory share its producer.
- `KafkaSink`: serializes each event and produces it with the event's timestamp as the record
  timestamp, keeping its own `DeliveryLedger` (several sinks share a producer, not a ledger).
- `DEFAULT_PRODUCER_CONF`, `DEFAULT_MESSAGE_TIMEOUT_MS`: the settings dogesim adds when
  ``conf`` does not set them.
- `SERIALIZATION_ERRORS`: what a serializer raises for a value it cannot take.

Nothing is dropped: a full local queue (`BufferError`) makes ``collect`` wait for delivery
reports and retry. The first failed delivery makes the next ``collect`` raise `SinkError`, and
``close()`` flushes with a bounded timeout and raises `SinkError` naming the topic and the
counts when any event was not acknowledged. With no cluster answering, the first event fails
after ``connect_timeout`` seconds.

Importing this module imports confluent_kafka (the ``kafka`` extra).
"""

from __future__ import annotations

import codecs
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
    Serializer,
    StringSerializer,
)

from dogesim.errors import SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "DEFAULT_MESSAGE_TIMEOUT_MS",
    "DEFAULT_PRODUCER_CONF",
    "SERIALIZATION_ERRORS",
    "KafkaSink",
    "KafkaSinkFactory",
]

log = logging.getLogger("dogesim.sinks.kafka")

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

#: What a serializer raises for a value it cannot take: confluent's own error, and what
#: ``str.encode`` / fastavro / json raise for the wrong kind of value.
SERIALIZATION_ERRORS: tuple[type[Exception], ...] = (
    SerializationError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    KeyError,
)

#: A serializer that knows dogesim (the Avro one) raises SinkError itself.
SINK_OR_SERIALIZATION_ERRORS: tuple[type[Exception], ...] = (SinkError, *SERIALIZATION_ERRORS)

#: Distinct error messages kept per sink for the `SinkError` text.
_KEEP_ERRORS = 5


def _remember(errors: dict[str, int], text: str) -> None:
    """Count `text` in `errors`, keeping at most `_KEEP_ERRORS` distinct messages."""
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


class _SharedProducer:
    """One producer shared by the sinks of a factory, closed when the last sink closes.

    With ``delivery.report.only.error`` (the default), librdkafka reports only failed
    deliveries; whenever nothing is outstanding (``len(producer) == 0``) every event a sink
    produced and did not see fail is acknowledged, and `settle` records that in each ledger.
    """

    def __init__(self, conf: dict[str, Any], user_error_cb: Callable[[KafkaError], Any] | None):
        self.user_error_cb = user_error_cb
        self.fatal: KafkaError | None = None
        self.errors: dict[str, int] = {}
        self.bootstrap = str(conf.get("bootstrap.servers"))
        self.errors_only = str(conf.get("delivery.report.only.error", "false")).lower() in (
            "true",
            "1",
        )
        conf = dict(conf)
        conf["error_cb"] = self._on_error
        try:
            self.producer = Producer(conf)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            detail = error.str() if isinstance(error, KafkaError) else str(exc)
            raise SinkConfigError(
                f"Kafka producer configuration rejected: {detail} "
                f"(settings given: {sorted(k for k in conf if k not in ('error_cb', 'logger'))})"
            ) from exc
        self.sinks: list[KafkaSink] = []
        self.open_sinks = 0
        self.closed = False
        self.since_poll = 0
        self.connected = False

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
        _remember(self.errors, error.str())
        if self.user_error_cb is not None:
            self.user_error_cb(error)

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports and errors; settle the ledgers when nothing is outstanding."""
        self.since_poll = 0
        producer = self.producer
        producer.poll(timeout)
        if self.errors_only and not len(producer):
            self.settle()

    def settle(self) -> None:
        """Nothing is outstanding: every produced event that did not fail was acknowledged."""
        if self.errors_only:
            for sink in self.sinks:
                ledger = sink.ledger
                ledger.acknowledged = ledger.collected - ledger.failed

    def release(self, sink: KafkaSink) -> None:
        """One sink is done; the last one closes the producer."""
        self.open_sinks -= 1
        if self.open_sinks <= 0 and not self.closed:
            self.closed = True
            producer = self.producer
            if len(producer):
                # Still in flight after the flush timeout: Producer.close() would wait for
                # them without bound. Their outcome stays unknown (pending), not failed.
                producer.purge(in_queue=True, in_flight=True, blocking=True)
                producer.poll(0)
            close = getattr(producer, "close", None)
            if close is not None:
                close()


class KafkaSinkFactory:
    """Creates `KafkaSink` s that share one confluent-kafka producer.

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
            when it is full, ``collect`` waits for deliveries and retries.
        flush_timeout: seconds ``close()`` waits for outstanding deliveries; by default the
            message timeout plus 10 s, so every message is either acknowledged or failed.
        connect_timeout: seconds the first event waits for the cluster to answer a metadata
            request; an unreachable cluster then fails the run at once instead of after the
            message timeout. None skips the check.

    Raises:
        SinkError: no or malformed bootstrap servers, or librdkafka rejects a setting.
    """

    def __init__(
        self,
        bootstrap_servers: str | Iterable[str] | None = None,
        client_id: str | None = None,
        conf: Mapping[str, Any] | None = None,
        buffer_size: int = 100000,
        *,
        flush_timeout: float | None = None,
        connect_timeout: float | None = 30.0,
    ) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise SinkConfigError(
                f"Kafka: buffer_size must be an integer >= 1, got {buffer_size!r}"
            )
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
        self._shared = _SharedProducer(self.conf, self._user_error_cb)

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
    ) -> KafkaSink:
        """A sink producing to `topic`.

        Args:
            topic: the topic events go to.
            key_function: ``(subject, transition) -> key``, given to `key_serializer`.
            value_function: ``(timestamp, subject, transition) -> value``, given to
                `value_serializer`.
            key_serializer: turns the key into bytes (UTF-8 strings by default).
            value_serializer: turns the value into bytes (UTF-8 strings by default).
        """
        if not isinstance(topic, str) or not topic:
            raise SinkConfigError(f"Kafka: topic must be a non-empty string, got {topic!r}")
        if self._shared.closed:
            self._shared = _SharedProducer(self.conf, self._user_error_cb)
        self._shared.open_sinks += 1
        return KafkaSink(
            self._shared,
            topic,
            key_function,
            key_serializer,
            value_function,
            value_serializer,
            flush_timeout=self.flush_timeout,
            connect_timeout=self.connect_timeout,
        )


def _plain_utf8(serializer: object) -> bool:
    """True for confluent's own UTF-8 `StringSerializer`: then ``produce`` encodes str itself."""
    if type(serializer) is not StringSerializer:
        return False
    try:
        return codecs.lookup(serializer.codec).name == "utf-8"
    except LookupError:
        return False


class KafkaSink(LedgeredSink):
    """Produces one Kafka record per event; made by `KafkaSinkFactory.create`.

    The record's key and value are ``key_serializer(key_function(subject, transition))``
    and ``value_serializer(value_function(timestamp, subject, transition))``; its timestamp is
    the event timestamp. librdkafka reads a timestamp of 0 as "now", so a run starting at
    ``timestamp_start=0`` gets the produce time on its first tick's records: start runs at a
    real epoch time in milliseconds.

    The ledger's ``acknowledged`` count is brought up to date whenever the producer has
    nothing outstanding (at the latest by ``close()``); ``failed`` counts as failures arrive.
    """

    def __init__(
        self,
        shared: _SharedProducer,
        topic: str,
        key_function: Callable[[Any, Transition], Any],
        key_serializer: Serializer,
        value_function: Callable[[int, Any, Transition], Any],
        value_serializer: Serializer,
        *,
        flush_timeout: float,
        connect_timeout: float | None,
    ) -> None:
        super().__init__(f"kafka:{topic}")
        self._shared = shared
        shared.sinks.append(self)
        self.producer = shared.producer
        self.topic = topic
        self.key_function = key_function
        self.key_serializer = key_serializer
        self.value_function = value_function
        self.value_serializer = value_serializer
        self.flush_timeout = flush_timeout
        self.connect_timeout = connect_timeout
        self.errors: dict[str, int] = {}
        self._failure: str | None = None
        self._rejected = 0
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

    # -- collecting ------------------------------------------------------------------------

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Serialize the event and hand it to the producer (waiting while its queue is full)."""
        shared = self._shared
        if self._failure is not None or shared.fatal is not None:
            raise self._error("delivery failed, stopping")
        if not shared.connected:
            self._check_connection()
        key = self.key_function(subject, transition)
        if not (self._key_plain and type(key) is str):
            try:
                key = self.key_serializer(key, self._key_ctx)
            except SINK_OR_SERIALIZATION_ERRORS as exc:
                raise self._serialization_error("key", key, transition, timestamp, exc) from exc
        value = self.value_function(timestamp, subject, transition)
        if not (self._value_plain and type(value) is str):
            try:
                value = self.value_serializer(value, self._value_ctx)
            except SINK_OR_SERIALIZATION_ERRORS as exc:
                raise self._serialization_error("value", value, transition, timestamp, exc) from exc
        try:
            self.producer.produce(
                self.topic, value, key, timestamp=timestamp, on_delivery=self._on_delivery
            )
        except BufferError:
            self._produce_when_room(key, value, timestamp)
        except KafkaException as exc:
            self.ledger.collected += 1
            self.ledger.failed += 1
            self._rejected += 1
            raise self._error(
                f"cannot produce event {transition.trigger!r} at {timestamp}: "
                f"{exc.args[0].str() if exc.args else exc}"
            ) from exc
        self.ledger.collected += 1
        shared.since_poll += 1
        if shared.since_poll >= _POLL_EVERY:
            shared.poll(0)

    def _produce_when_room(self, key: Any, value: Any, timestamp: int) -> None:
        """The local queue is full: serve delivery reports until there is room (never drop)."""
        shared = self._shared
        while True:
            shared.poll(0.05)
            if self._failure is not None or shared.fatal is not None:
                self.ledger.collected += 1
                self.ledger.failed += 1
                self._rejected += 1
                raise self._error("delivery failed while waiting for room in the queue")
            try:
                self.producer.produce(
                    self.topic, value, key, timestamp=timestamp, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                continue

    def _check_connection(self) -> None:
        """Fail fast when the cluster does not answer at all (once per producer)."""
        if self.connect_timeout is None:
            self._shared.connected = True
            return
        started = time.monotonic()
        try:
            self.producer.list_topics(timeout=self.connect_timeout)
        except KafkaException as exc:
            waited = time.monotonic() - started
            self.ledger.collected += 1
            self.ledger.failed += 1
            self._rejected += 1
            self.producer.poll(0)  # serve error_cb: it says why (refused, unresolvable, ...)
            recent = _describe(self._shared.errors) or (exc.args[0].str() if exc.args else str(exc))
            raise self._error(
                f"the cluster at {self._shared.bootstrap} did not answer within "
                f"{waited:.1f} s ({recent})",
                details=False,
            ) from exc
        self._shared.connected = True

    def _serialization_error(
        self, field: str, obj: Any, transition: Transition, timestamp: int, exc: Exception
    ) -> SinkError:
        self.ledger.collected += 1
        self.ledger.failed += 1
        self._rejected += 1
        if isinstance(exc, SinkError):
            return exc
        text = str(exc) or type(exc).__name__
        serializer = self.value_serializer if field == "value" else self.key_serializer
        name = getattr(serializer, "name", type(serializer).__name__)
        return SinkError(
            f"topic {self.topic!r}: cannot serialize the {field} of event "
            f"{transition.trigger!r} at {timestamp} with {name}: {type(exc).__name__}: {text}; "
            f"{field} = {obj!r}",
            [self.ledger],
        )

    def _error(self, cause: str, *, details: bool = True) -> SinkError:
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
        return SinkError(
            f"topic {self.topic!r}: {cause}: {ledger.acknowledged} of {ledger.collected} "
            f"events acknowledged, {ledger.failed} failed, {ledger.pending} unconfirmed{detail}",
            [ledger],
        )

    # -- closing ---------------------------------------------------------------------------

    def _close(self) -> None:
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
