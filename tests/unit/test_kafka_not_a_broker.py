"""A Kafka sink pointed at something that is not a Kafka broker says so, once.

A real TCP server on 127.0.0.1 answers every connection with an HTTP reply, as a web server or
a database on the wrong port would; the sink's first event fails with `SinkConfigError`
naming the address and the likely mistake, and the producer's repeated reports are counted
once instead of once per retry timing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("confluent_kafka")

from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User
from dogesim.model import Transition
from dogesim.sinks.kafka import KafkaSinkFactory

LOGIN = Transition("login", "offline", "online", 0.1)


@pytest.fixture
def not_kafka() -> Iterator[str]:
    """The address of a server that answers each connection with an HTTP 400 and closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_server_that_is_not_kafka_is_named_as_a_config_error(not_kafka: str) -> None:
    """The first event fails with SinkConfigError naming the address and saying it does not
    speak Kafka; the repeated producer reports are not listed once per retry."""
    sink = KafkaSinkFactory([not_kafka], "c", connect_timeout=2).create(
        "t", lambda s, t: None, lambda ts, s, t: "x"
    )
    with pytest.raises(SinkConfigError) as caught:
        sink.collect(1_700_000_000_000, User(1, 100, 0, 0), LOGIN)
    text = str(caught.value)
    assert not_kafka in text
    assert "does not speak the Kafka protocol" in text
    assert "after " not in text  # retry timings are not part of what is counted
    with pytest.raises(SinkError, match="1 failed"):
        sink.close()
    assert sink.ledger.failed == 1 and sink.ledger.acknowledged == 0
