"""JSON Schema and Protobuf descriptions of the values the Kafka format tests write.

- `EVENT_JSON_SCHEMA`, `EVENT_PROTO`, `EVENT_PROTO_FLAT`: `dogesim.examples.banking.event_record`
  (the last with dotted names, as a model file writes it).
- `RECORD_JSON_SCHEMA`, `RECORD_PROTO`: `dogesim.sinks.conformance.record`.
"""

from __future__ import annotations

from typing import Any


def object_schema(**properties: Any) -> dict[str, Any]:
    """A closed JSON Schema object with every property required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


INTEGER, STRING = {"type": "integer"}, {"type": "string"}

EVENT_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Event",
    **object_schema(
        timestamp=INTEGER,
        user=object_schema(user_id=INTEGER, balance=INTEGER, loan_balance=INTEGER),
        event=STRING,
    ),
}
EVENT_PROTO = {
    "timestamp": "int64",
    "user": {"user_id": "int64", "balance": "int64", "loan_balance": "int64"},
    "event": "string",
}
#: `EVENT_PROTO` with dotted names, as a model file gives it (a flat mapping).
EVENT_PROTO_FLAT = {
    "timestamp": "int64",
    "user.user_id": "int64",
    "user.balance": "int64",
    "user.loan_balance": "int64",
    "event": "string",
}

RECORD_JSON_SCHEMA = {
    "title": "Record",
    **object_schema(timestamp=INTEGER, trigger=STRING, n=INTEGER),
}
RECORD_PROTO = {"timestamp": "int64", "trigger": "string", "n": "int64"}
