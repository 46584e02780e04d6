"""Integration-test gate: tests marked ``kafka`` / ``db`` need the real services.

Before each such test the service is probed; when it does not answer the test is skipped with
the reason and the command that starts it, unless ``DOGESIM_REQUIRE_SERVICES=1`` is set, in
which case it fails loudly (CI sets it so a dead service is never a silent skip).
"""

from __future__ import annotations

import pytest

from tests.integration.services import require_db, require_kafka


@pytest.fixture(autouse=True)
def _require_marked_services(request: pytest.FixtureRequest) -> None:
    """Skip (or, with DOGESIM_REQUIRE_SERVICES=1, fail) when a marked service is down."""
    if request.node.get_closest_marker("kafka") is not None:
        require_kafka()
    if request.node.get_closest_marker("db") is not None:
        require_db()
