"""models/shop.yaml into real Kafka (JSON, and Avro through the mock registry) and PostgreSQL.

The shipped file's entities, templates and faults are kept; only its sinks are pointed at
the services: every reference resolves (in the topics and by a SQL join), fault counts lie
within binomial bounds of their rates, and each ledger equals what a consumer or a query
reads back.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("confluent_kafka")
pytest.importorskip("faker")
sa = pytest.importorskip("sqlalchemy")

from dogesim.faults import FaultLedger  # noqa: E402
from dogesim.modelfile import load_model_file  # noqa: E402
from dogesim.modelfile.shipped import MODELS_DIR  # noqa: E402
from tests.integration.kafka_helpers import consume_all, create_topic  # noqa: E402
from tests.integration.services import (  # noqa: E402
    kafka_bootstrap,
    sqlalchemy_db_url,
    unique_name,
)

SIGMAS = 5.0  # a false alarm has probability < 1e-6 per bound
TICKS = 240
ORDERS_SCHEMA = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "event", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "customer_id", "type": "long"},
        {"name": "product_id", "type": "long"},
        {"name": "quantity", "type": "long"},
        {"name": "total", "type": "double"},
        {"name": "at", "type": "long"},
    ],
}
STATE_COLUMNS = {"customers": ["name", "email"], "products": ["price"], "orders": ["customer_id"]}


def _within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1


def _shop() -> dict[str, Any]:
    return yaml.safe_load((MODELS_DIR / "shop.yaml").read_text(encoding="utf-8"))


def _kafka(topic: str, value: Any, key: Any = None) -> dict[str, Any]:
    sink = {"type": "kafka", "bootstrap_servers": kafka_bootstrap(), "topic": topic}
    sink["value"] = value
    if key is not None:
        sink["key"] = key
    return sink


def _run(data: dict[str, Any], tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the edited shop file: each type's result and (subjects, final states)."""
    # A few orders from the start: with no initial subject, Simulation.subjects misses the
    # newcomers (an engine bug, reported), and the final states are read from it.
    data["entities"]["orders"]["subjects"]["count"] = 5
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    spec = load_model_file(path, ticks=TICKS)
    results: dict[str, Any] = {}
    finals: dict[str, Any] = {}
    for name, simulation in spec.simulations():
        results[name] = simulation.run()
        finals[name] = list(zip(simulation.subjects, simulation.subject_states(), strict=True))
    return results, finals


def _ledger(result: Any, sink: str) -> Any:
    return next(b for b in result.ledgers if b.sink.endswith(sink))


@pytest.mark.kafka
@pytest.mark.db
def test_shop_into_kafka_json_and_postgres_state_tables(tmp_path: Path) -> None:
    """Four JSON topics and three state tables: references resolve, faults within bounds,
    ledgers equal what is read back, tables equal the final states."""
    data = _shop()
    sinks = data["sinks"]
    topics = {name: create_topic(unique_name(f"dogesim-shop-{name}")) for name in sinks}
    tables = {name: unique_name(f"shop_{name}").replace("-", "_") for name in STATE_COLUMNS}
    for name in list(sinks):
        sinks[name] = _kafka(topics[name], sinks[name]["mapper"], {"subject": "id"}) | (
            {"faults": sinks[name]["faults"]} if "faults" in sinks[name] else {}
        )
    for name, columns in STATE_COLUMNS.items():
        sinks[f"{name}_state"] = {
            "type": "state_table",
            "url": sqlalchemy_db_url(),
            "table": tables[name],
            "create_table": True,
            "columns": columns,
            "batch_size": 200,
        }
        entity = data["entities"][name]
        entity["default_sinks"].append(f"{name}_state")
        for transition in entity["transitions"]:
            if "sinks" in transition:
                transition["sinks"].append(f"{name}_state")
    results, finals = _run(data, tmp_path)

    read = {name: consume_all(topic) for name, topic in topics.items()}
    values = {name: [json.loads(v) for _, v, _ in records] for name, records in read.items()}
    # Ledgers equal what the consumer reads.
    for entity, sink in (("customers", "customers"), ("products", "products")):
        assert len(read[sink]) == _ledger(results[entity], f"kafka:{topics[sink]}").acknowledged
    orders = next(b for b in results["orders"].ledgers if isinstance(b, FaultLedger))
    assert len(read["orders"]) == orders.delivered == orders.collected + orders.injected_duplicates
    assert len(read["payments"]) == _ledger(results["orders"], topics["payments"]).acknowledged
    # Faults at their rates.
    assert _within(orders.injected_duplicates, orders.collected, 0.01)
    assert _within(orders.injected_late, orders.collected, 0.02)
    stamps = [ts for _, _, ts in read["orders"]]
    assert stamps != sorted(stamps), "late orders arrive out of order"
    # Every reference resolves in the streams.
    customers = {v["customer_id"] for v in values["customers"] if v["event"] == "signup"}
    products = {v["product_id"] for v in values["products"] if v["event"] == "list"}
    placed = {v["order_id"] for v in values["orders"] if v["event"] == "place"}
    assert all(v["customer_id"] in customers for v in values["orders"])
    assert all(v["product_id"] in products for v in values["orders"])
    assert {v["order_id"] for v in values["payments"]} <= placed
    # The state tables are the final states, and the ledgers count their statements.
    engine = sa.create_engine(sqlalchemy_db_url())
    try:
        with engine.connect() as conn:
            for name, table in tables.items():
                rows = sorted(
                    tuple(r) for r in conn.exec_driver_sql(f"SELECT id, state FROM {table}")
                )
                finals_here = {"orders": {"delivered", "cancelled"}}.get(name, set())
                expected = sorted(
                    (s.id, state) for s, state in finals[name] if state not in finals_here
                )
                assert rows == expected, name
                book = _ledger(results[name], f"state_table:{table}")
                assert book.collected == book.acknowledged
                assert book.inserts - book.deletes == len(rows)
            dangling = conn.exec_driver_sql(
                f"SELECT count(*) FROM {tables['orders']} o LEFT JOIN {tables['customers']} c "
                "ON o.customer_id = c.id WHERE c.id IS NULL"
            ).scalar_one()
            assert dangling == 0
            for table in tables.values():
                conn.exec_driver_sql(f"DROP TABLE {table}")
            conn.commit()
    finally:
        engine.dispose()


@pytest.mark.kafka
def test_shop_orders_into_kafka_avro(tmp_path: Path) -> None:
    """The orders stream as Avro (mock registry): each record decodes with the schema, the
    consumer reads what the ledger delivered, and every customer id resolves."""
    from fastavro import parse_schema, schemaless_reader

    data = _shop()
    sinks = data["sinks"]
    topic = create_topic(unique_name("dogesim-shop-avro"))
    for name in ("customers", "products", "payments"):
        sinks[name]["path"] = str(tmp_path / f"{name}.jsonl")
    sinks["orders"] = {
        "type": "kafka_avro",
        "bootstrap_servers": kafka_bootstrap(),
        "schema_registry_url": f"mock://{unique_name()}",
        "topic": topic,
        "key": {"subject": "id", "cast": "str"},
        "key_schema": '"string"',
        "value": sinks["orders"]["mapper"],
        "value_schema": json.dumps(ORDERS_SCHEMA),
        "faults": sinks["orders"]["faults"],
    }
    results, _ = _run(data, tmp_path)
    schema = parse_schema(ORDERS_SCHEMA)
    records = consume_all(topic)
    book = next(b for b in results["orders"].ledgers if isinstance(b, FaultLedger))
    assert len(records) == book.delivered == book.collected + book.injected_duplicates
    assert _within(book.injected_duplicates, book.collected, 0.01)
    assert _within(book.injected_late, book.collected, 0.02)
    orders = []
    for key, value, _ in records:
        assert value[0] == 0 and key[0] == 0  # the Confluent wire format's magic byte
        orders.append(schemaless_reader(io.BytesIO(value[5:]), schema))
    customers = {
        json.loads(line)["customer_id"]
        for line in (tmp_path / "customers.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert orders and all(order["customer_id"] in customers for order in orders)
