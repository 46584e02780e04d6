"""doge-datagen's ``doge_datagen.db_sink_factory`` module path, served by dogesim.

- `DbSinkFactory`, `DbSink`: `dogesim.sinks.db`'s (``DbSinkFactory(db_url)`` and
  ``create(table_name, row_mapper_function, batch_size=1000)`` as in doge-datagen; a missing
  table is still a `ValueError`).
- `Subject`, `Transition`, `EventSink`: the names doge-datagen's module also provides.

Importing this module imports SQLAlchemy (the ``db`` extra).
"""

from __future__ import annotations

from dogesim.compat import EventSink, Subject, Transition
from dogesim.sinks.db import DbSink, DbSinkFactory

__all__ = ["DbSink", "DbSinkFactory", "EventSink", "Subject", "Transition"]
