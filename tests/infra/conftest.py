"""Fixtures: a fresh database on the PostgreSQL at 127.0.0.1:5432 (trust auth), dropped after.

Tests that need it skip where no PostgreSQL answers, unless ``CI=true``: there they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PG_HOST = os.environ.get("SKYSENSE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SKYSENSE_TEST_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")


@dataclass(frozen=True)
class PgDatabase:
    """A database created for one test: its name, the role, and URLs for SQLAlchemy drivers."""

    name: str
    user: str
    host: str
    port: int

    def url(self, driver: str = "postgresql") -> str:
        """``driver://user@host:port/name`` (trust auth: no password)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{self.name}"


def _admin_connection():
    import psycopg2

    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg2.connect(
                host=PG_HOST, port=PG_PORT, dbname="test", user=user, connect_timeout=3
            )
        except psycopg2.Error as exc:
            errors.append(f"{user}: {str(exc).strip()}")
            continue
        conn.autocommit = True
        return conn, user
    message = f"no PostgreSQL at {PG_HOST}:{PG_PORT} (database test): " + "; ".join(errors)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " -- CI=true, so this test must run")
    pytest.skip(message)


@pytest.fixture()
def pg_database() -> Iterator[PgDatabase]:
    """A new, empty database with a unique name; dropped (connections ended) after the test."""
    conn, user = _admin_connection()
    name = f"skysense_test_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PgDatabase(name=name, user=user, host=PG_HOST, port=PG_PORT)
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND "
                "pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()
