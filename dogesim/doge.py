"""doge-datagen's ``doge_datagen.doge`` module path, served by dogesim.

A doge-datagen program that imports from ``doge_datagen.doge`` runs after changing only that
line to ``dogesim.doge``. It holds the same public names, each the dogesim object:

- `DataOnlineGenerator`, `SubjectFactory`, `Subject` (a type variable), `Transition`,
  `EventSink`: from `dogesim.compat`.
- `LOGGER`: the logger runs report to (``dogesim``). Unlike doge-datagen, importing this
  module does not call ``logging.basicConfig``: the program decides where logs go.
"""

from __future__ import annotations

import logging

from dogesim.compat import DataOnlineGenerator, EventSink, Subject, SubjectFactory, Transition

__all__ = [
    "LOGGER",
    "DataOnlineGenerator",
    "EventSink",
    "Subject",
    "SubjectFactory",
    "Transition",
]

LOGGER = logging.getLogger("dogesim")
