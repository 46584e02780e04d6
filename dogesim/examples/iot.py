"""Callbacks of the IoT fleet model (``models/iot_fleet.yaml``): sensor readings by state.

- `read_sensors`: a telemetry event; the device's temperature and vibration drift, faster
  when it is degraded.
- `reset_sensors`: a repaired device returns to service with nominal readings.

Both draw from the global `random` module, which a seeded run seeds (see `Simulation`), so
the readings are reproducible with the run's seed.
"""

from __future__ import annotations

import random
from typing import Any

from dogesim.model import Transition

__all__ = ["NOMINAL_TEMPERATURE", "read_sensors", "reset_sensors"]

#: Temperature (deg C) a healthy device hovers around.
NOMINAL_TEMPERATURE = 21.0


def read_sensors(subject: Any, transition: Transition) -> bool:
    """Take a telemetry reading: mean-reverting when healthy, heating up when degraded."""
    if transition.from_state == "degraded":
        subject.temperature = round(subject.temperature + random.uniform(0.0, 0.8), 2)
        subject.vibration = round(min(subject.vibration + random.uniform(0.0, 0.05), 5.0), 3)
    else:
        pull = 0.2 * (NOMINAL_TEMPERATURE - subject.temperature)
        subject.temperature = round(subject.temperature + pull + random.gauss(0.0, 0.3), 2)
        subject.vibration = round(abs(random.gauss(0.1, 0.05)), 3)
    return True


def reset_sensors(subject: Any, transition: Transition) -> bool:
    """A repaired device comes back with nominal readings."""
    subject.temperature = NOMINAL_TEMPERATURE
    subject.vibration = 0.1
    return True
