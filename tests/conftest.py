"""Suite-wide test set-up.

- Loads the hypothesis profile (``ci`` unless ``DOGESIM_HYPOTHESIS`` names another; see
  `tests.hypothesis_profiles`).
- Tests marked ``slow`` run only when asked for: ``pytest -m slow`` (or any ``-m``
  expression naming ``slow``); otherwise they are reported as skipped.
- ``kernel_path``: runs a test module on both engine paths, the compiled kernel (``c``,
  skipped when it is not built) and the Python loops (``python``); a module opts in with
  ``pytestmark = pytest.mark.usefixtures("kernel_path")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dogesim.engine import kernel
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


@pytest.fixture(scope="module", params=["c", "python"])
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine path under test: ``c`` (the compiled kernel) or ``python`` (its twin).
    Module-scoped, so hypothesis tests may use it (it is set once per module and path)."""
    compiled = kernel.compiled()
    if request.param == "c" and compiled is None:
        pytest.skip("the compiled kernel dogesim.engine._kernel is not built")
    before = kernel.NATIVE
    kernel.NATIVE = compiled if request.param == "c" else None
    try:
        yield request.param
    finally:
        kernel.NATIVE = before
