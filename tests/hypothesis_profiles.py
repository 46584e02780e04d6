"""Hypothesis profiles of the suite.

- ``ci`` (the default): few examples, derandomized (the same examples every run, so a
  statistical bound's false-alarm rate is spent once), no deadline (a loaded 2-core box),
  no shrinking (a failing example is reported as found, without minutes of re-runs).
- ``long``: many more examples, randomized; used by the tests marked ``slow`` (run them with
  ``pytest -m slow``), or for every hypothesis test with ``DOGESIM_HYPOTHESIS=long``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["CI", "LONG", "load"]

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

CI = settings(
    max_examples=30,
    derandomize=True,
    # No shrinking: a failing statistical example is reported as found, at once.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
LONG = settings(
    max_examples=200,
    derandomize=False,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.register_profile("ci", CI)
settings.register_profile("long", LONG)


def load() -> None:
    """Load the profile named by ``DOGESIM_HYPOTHESIS`` (default ``ci``)."""
    settings.load_profile(os.environ.get("DOGESIM_HYPOTHESIS", "ci"))
