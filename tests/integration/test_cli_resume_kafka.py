"""`dogesim run --live` faster than real time into a real Kafka topic: when the event times
run past what the topic accepts the run stops with exit 1 (not 2), tells what to do, and
prints each ledger after the sinks closed, matching what the topic holds; with the advised
``record_timestamp: send`` the same run delivers everything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from dogesim.cli import main
from tests.integration.kafka_helpers import consume_all, create_topic, tiny_model_file
from tests.integration.services import unique_name

pytestmark = pytest.mark.kafka

#: The topic's message.timestamp.after.max.ms: at speed 100 with 1 s ticks the event times
#: lead the clock by 99 ms per wall millisecond, past 2 s within the first second.
AFTER_MS = 2_000


def model_file(tmp_path: Path, topic: str, extra: str = "") -> Path:
    return tiny_model_file(tmp_path / "ahead.yaml", topic, extra=extra)


def test_live_run_ahead_of_the_broker_exits_1_with_ledgers_after_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Live at speed 100 into a topic accepting 2 s ahead: exit 1, the advice (sink
    `record_timestamp: send` or speed 1), and a ledger after close whose acknowledged count
    is the topic's record count, one failed and none pending."""
    topic = create_topic(
        unique_name("dogesim-cli-ahead"), {"message.timestamp.after.max.ms": str(AFTER_MS)}
    )
    assert main(["run", str(model_file(tmp_path, topic)), "--live", "--speed", "100"]) == 1
    err = capsys.readouterr().err
    assert "record_timestamp: send" in err and "--speed 1" in err, err
    assert "after closing the sinks:" in err, err
    ledger = re.search(r"collected (\d+), acknowledged (\d+), failed (\d+), pending (\d+)", err)
    assert ledger, err
    collected, acknowledged, failed, pending = map(int, ledger.groups())
    records = consume_all(topic)
    assert acknowledged == len(records) > 0
    assert (failed, pending) == (1, 0) and collected == acknowledged + failed


def test_live_run_ahead_with_send_time_records_delivers_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same run with the advised `record_timestamp: send` on the sink: exit 0, every event
    acknowledged and in the topic."""
    topic = create_topic(
        unique_name("dogesim-cli-send"), {"message.timestamp.after.max.ms": str(AFTER_MS)}
    )
    model = model_file(tmp_path, topic, ", record_timestamp: send")
    assert main(["run", str(model), "--live", "--speed", "100"]) == 0
    out = capsys.readouterr().out
    ledger = re.search(r"collected (\d+), acknowledged (\d+), failed 0, pending 0", out)
    assert ledger, out
    assert int(ledger.group(1)) == int(ledger.group(2)) == len(consume_all(topic)) > 0
