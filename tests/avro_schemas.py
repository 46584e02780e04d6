"""Avro schemas the Kafka Avro sink tests share (unit tests and the real-broker ones).

- `record_schema`: an Avro record schema from its name and ``field=type`` pairs.
- `KEY_SCHEMA`: the record key doge-datagen's README uses, ``{"key": <string>}``.
- `EVENT_SCHEMA`: the value written by `dogesim.examples.banking.event_record`.
- `CONFORMANCE_SCHEMA`: the value of `dogesim.sinks.conformance.record`.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "com.getindata.doge"


def record_schema(name: str, namespace: str = NAMESPACE, **fields: Any) -> dict[str, Any]:
    """The Avro record `name` whose fields, in order, are `fields` (name = Avro type)."""
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": [{"name": field, "type": kind} for field, kind in fields.items()],
    }


KEY_SCHEMA = record_schema("Key", key="string")

EVENT_SCHEMA = record_schema(
    "Event",
    timestamp="long",
    user=record_schema("User", user_id="long", balance="long", loan_balance="long"),
    event="string",
)

CONFORMANCE_SCHEMA = record_schema(
    "Record", "dogesim.conformance", timestamp="long", trigger="string", n="long"
)
