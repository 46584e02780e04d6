"""The key tables of a model file, and the run settings a caller may override.

- `_TOP_KEYS`, `_TOP_REQUIRED`: the keys a model file may and must have at its top level.
- `_TRANSITION_KEYS`, `_TRANSITION_REQUIRED`: the same for one entry of ``transitions:``.
- `RUN_OVERRIDES`: the run settings `ModelSpec.options` (and `simulation`, `run`) accept as
  overrides; `_check_overrides` refuses any other name, with the near miss.
- `_did_you_mean(name, choices)`: `` (did you mean 'x'?)`` for a near miss, else empty.

A new key is added here and read in the module of its section (`parse` for the top level,
`transitions`, `runkeys`, `sinkkeys`, or the older `subjects`, `online`, `cohorts`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from dogesim.errors import ModelError

_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "states",
    "initial_state",
    "dwell",
    "tick",
    "ticks",
    "start",
    "subjects",
    "sinks",
    "default_sinks",
    "transitions",
    "probability_tick",
    "profiles",
    "resources",
    "arrivals",
    "churn",
    "jitter",
    "record_every",
    "live",
    "checkpoint",
    "shards",
)
_TOP_REQUIRED = ("states", "initial_state", "tick", "ticks", "subjects", "transitions")
_TRANSITION_KEYS = (
    "trigger",
    "from",
    "to",
    "probability",
    "callback",
    "sinks",
    "description",
    "profile",
    "resource",
    "hold",
    "delay",
    "rate_attribute",
    "args",
    "by_month",
    "by_age",
)
_TRANSITION_REQUIRED = ("trigger", "from", "to", "probability")

#: The run settings `ModelSpec.options` (and `simulation`, `run`) accept as overrides.
RUN_OVERRIDES = (
    "seed",
    "jitter",
    "record_every",
    "progress",
    "live",
    "speed",
    "max_lag_ms",
    "on_lag",
    "until_stopped",
    "checkpoint_path",
    "checkpoint_every",
)


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when one of `choices` is close to `name`, else ``""``."""
    hint = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _check_overrides(where: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that were given (not None), refusing a name that is no run setting."""
    for name in overrides:
        if name not in RUN_OVERRIDES:
            raise ModelError(
                f"{where}: {name!r} is not a run setting{_did_you_mean(name, RUN_OVERRIDES)}; "
                "the settings a run may "
                f"override are {', '.join(RUN_OVERRIDES)}"
            )
    return {k: v for k, v in overrides.items() if v is not None}
