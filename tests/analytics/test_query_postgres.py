"""`plowline query` on PostgreSQL: the configured warehouse when only the postgres loader runs, read-only, exact values.

Events go in through the real postgres loader into a database of the test's own; the queries then run as
users run them: `query_warehouse` in-process and the `plowline query` command in a subprocess, configured
by environment variables only.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from plowline.analytics.query import QueryError, query_postgres, query_warehouse, warehouse_kind
from plowline.config import Settings
from plowline.event import EnrichedEvent
from plowline.storage.postgres import open_postgres_loader
from tests.support.plowline_cli import run_plowline

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT = {"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", "data": {"id": "page-1"}}
COUNT = "SELECT count(*) AS n FROM atomic.events"


def _event(n: int) -> EnrichedEvent:
    return EnrichedEvent(
        event_id=str(uuid.UUID(int=n + 1, version=4)),
        collector_tstamp=T0 + timedelta(seconds=n),
        v_collector="ssc-3.2.0",
        v_etl="plowline-enrich-0.1.0",
        app_id=f"app-{n % 2}",
        event="struct",
        se_value=Decimal(n) / 4,
        dvce_ismobile=n % 2 == 0,
        contexts=[CONTEXT] if n == 0 else None,
    )


def _settings(tmp_path: Path, dsn: str, loaders: list[str]) -> Settings:
    return Settings.model_validate({"data_dir": str(tmp_path), "storage": {"loaders": loaders, "postgres": {"dsn": dsn}}})


@pytest.fixture
async def loaded(tmp_path: Path, postgres_database: str) -> Settings:
    """A postgres-only configuration whose warehouse holds events 0..4, loaded by the real loader."""
    settings = _settings(tmp_path, postgres_database, ["files", "postgres"])
    loader = open_postgres_loader(settings, "enriched")
    try:
        await loader.write([_event(n).to_tsv().encode() for n in range(5)])
    finally:
        await loader.close()
    return settings


def _count(settings: Settings) -> int:
    with psycopg.connect(settings.storage.postgres.dsn) as conn:
        row = conn.execute(COUNT).fetchone()
    assert row is not None
    return int(row[0])


def test_auto_picks_postgres_only_when_postgres_is_the_only_warehouse_loaded(tmp_path: Path) -> None:
    assert warehouse_kind(_settings(tmp_path, "", ["files", "postgres"])) == "postgres"
    assert warehouse_kind(_settings(tmp_path, "", ["duckdb", "postgres"])) == "duckdb"
    assert warehouse_kind(_settings(tmp_path, "", ["files", "duckdb"])) == "duckdb"
    assert warehouse_kind(_settings(tmp_path, "", ["files"])) == "duckdb"


async def test_values_come_back_typed_as_duckdb_gives_them(loaded: Settings) -> None:
    table = query_warehouse(
        loaded,
        "SELECT event_id, collector_tstamp, se_value, dvce_ismobile, contexts, app_id"
        " FROM atomic.events ORDER BY collector_tstamp",
    )
    rows = table.to_pylist()
    assert len(rows) == 5
    first = rows[0]
    assert first["event_id"] == str(uuid.UUID(int=1, version=4))  # uuid as text
    assert first["collector_tstamp"] == datetime(2024, 5, 1, 12, 0)  # naive UTC, as stored
    assert rows[3]["se_value"] == Decimal("0.75")
    assert [row["dvce_ismobile"] for row in rows] == [True, False, True, False, True]
    assert json.loads(first["contexts"]) == {  # jsonb as its JSON text: the TSV column's envelope
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
        "data": [CONTEXT],
    }
    assert rows[1]["contexts"] is None
    # Unqualified names resolve in storage.postgres.schema_name first.
    assert query_postgres(loaded, "SELECT count(*) AS n FROM events").to_pylist() == [{"n": 5}]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM atomic.events",
        "CREATE TABLE atomic.sneaky (a int)",
        "SELECT 1; DELETE FROM atomic.events",
        "SELECT 1; COMMIT; DELETE FROM atomic.events",
        "WITH gone AS (DELETE FROM atomic.events RETURNING 1) SELECT count(*) FROM gone",
    ],
)
async def test_writes_are_refused_and_change_nothing(loaded: Settings, statement: str) -> None:
    with pytest.raises(QueryError, match="postgres: "):
        query_postgres(loaded, statement)
    assert _count(loaded) == 5


async def test_a_failing_query_says_what_postgres_said(loaded: Settings) -> None:
    with pytest.raises(QueryError, match='column "no_such_column" does not exist'):
        query_postgres(loaded, "SELECT no_such_column FROM atomic.events")


def test_without_a_dsn_it_says_which_key_to_set(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"storage\.postgres\.dsn is empty"):
        query_warehouse(_settings(tmp_path, "", ["postgres"]), COUNT)


async def test_plowline_query_reads_the_configured_postgres_warehouse(loaded: Settings, tmp_path: Path) -> None:
    env = {"PLOWLINE_STORAGE__LOADERS": '["files", "postgres"]', "PLOWLINE_STORAGE__POSTGRES__DSN": loaded.storage.postgres.dsn}
    done = run_plowline(
        ["query", "--data-dir", str(tmp_path), "--format", "json",
         "SELECT app_id, count(*) AS n, sum(se_value) AS total FROM atomic.events GROUP BY 1 ORDER BY 1"],
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    assert result == [{"app_id": "app-0", "n": 3, "total": 1.5}, {"app_id": "app-1", "n": 2, "total": 1.0}]

    refused = run_plowline(["query", "--data-dir", str(tmp_path), "DROP TABLE atomic.events"], cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert "read-only transaction" in refused.stderr
    assert _count(loaded) == 5

    # --target duckdb asks the (absent) DuckDB warehouse instead, and says how to make one.
    duck = run_plowline(["query", "--data-dir", str(tmp_path), "--target", "duckdb", COUNT], cwd=tmp_path, env=env)
    assert duck.returncode == 1
    assert "no warehouse at" in duck.stderr
