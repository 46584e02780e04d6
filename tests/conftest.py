"""Suite-wide test set-up.

- Loads the hypothesis profile (``ci`` unless ``DOGESIM_HYPOTHESIS`` names another; see
  `tests.hypothesis_profiles`).
- Tests marked ``slow`` run only when asked for: ``pytest -m slow`` (or any ``-m``
  expression naming ``slow``); otherwise they are reported as skipped.
"""

from __future__ import annotations

import pytest

from tests import hypothesis_profiles

hypothesis_profiles.load()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``slow`` tests unless the marker expression asks for them."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
