"""Helpers for integration tests that use the real services started by ``scripts/services``.

The addresses come from the environment (``DOGESIM_KAFKA_BOOTSTRAP``, ``DOGESIM_DB_URL``) or
the defaults that ``scripts/services up`` uses. ``stop_kafka()`` / ``start_kafka()`` stop and
restart the broker (same data dir, so no committed message is lost).

``require_kafka()`` / ``require_db()`` skip the calling test when the service does not answer,
or fail it when ``DOGESIM_REQUIRE_SERVICES=1`` (set that in CI so a dead service is never a
silent skip).
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services"

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_DB_URL = "postgresql://dogesim:dogesim@127.0.0.1:5432/dogesim"


def kafka_bootstrap() -> str:
    """``host:port`` of the test broker."""
    return os.environ.get("DOGESIM_KAFKA_BOOTSTRAP") or DEFAULT_KAFKA_BOOTSTRAP


def db_url() -> str:
    """PostgreSQL URL as configured (``postgresql://user:pass@host:port/db``)."""
    return os.environ.get("DOGESIM_DB_URL") or DEFAULT_DB_URL


def sqlalchemy_db_url() -> str:
    """``db_url()`` with the psycopg (v3) driver named, as SQLAlchemy needs it.

    A bare ``postgresql://`` means psycopg2 to SQLAlchemy, which is not installed here.
    """
    url = db_url()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_db_url() -> str:
    """``db_url()`` without any SQLAlchemy driver suffix, for psycopg / libpq."""
    url = db_url()
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def unique_name(prefix: str = "dogesim-test") -> str:
    """A topic / group / table-safe unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def kafka_available(timeout: float = 5.0) -> bool:
    """True when a metadata request to the broker succeeds and lists at least one broker."""
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
    except ImportError:
        return False
    host, _, port = kafka_bootstrap().split(",")[0].rpartition(":")
    try:  # fail fast when nothing listens (librdkafka would retry until the timeout)
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "socket.timeout.ms": max(1000, int(timeout * 1000)),
            "log_level": 0,  # no librdkafka "connection refused" noise when it is down
        }
    )
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def db_available(timeout: float = 5.0) -> bool:
    """True when ``SELECT 1`` works over the configured URL."""
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(libpq_db_url(), connect_timeout=max(1, int(timeout))) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def _require(what: str, ok: bool) -> None:
    import pytest

    if ok:
        return
    msg = f"{what} is not answering; start it with: scripts/services up"
    if os.environ.get("DOGESIM_REQUIRE_SERVICES") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def require_kafka(timeout: float = 5.0) -> None:
    _require(f"Kafka at {kafka_bootstrap()}", kafka_available(timeout))


def require_db(timeout: float = 5.0) -> None:
    _require("PostgreSQL at " + db_url().rsplit("@", 1)[-1], db_available(timeout))


def run_services(*args: str, timeout: float = 180.0) -> str:
    """Run ``scripts/services <args>``; return its stderr (the status lines) or raise."""
    proc = subprocess.run(
        [str(SERVICES_SCRIPT), *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/services {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc.stderr


def stop_kafka() -> None:
    """Stop the broker (clean shutdown; returns when the process is gone)."""
    run_services("down", "kafka")


def start_kafka() -> None:
    """Start the broker again on the same data; returns when it answers."""
    run_services("up", "kafka")
