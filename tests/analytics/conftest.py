"""Analytics fixtures: a PostgreSQL database of its own per test, for the models and `plowline query` on postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

# The session's server check, shared with the storage tests (pytest takes fixtures imported into a conftest).
from tests.storage.conftest import postgres_dsn  # noqa: F401


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:  # noqa: F811 - the imported fixture
    """A database of its own for one test (atomic and derived in it), dropped afterwards; its DSN."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"plowline_analytics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(postgres_dsn, dbname=name)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
