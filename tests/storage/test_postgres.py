"""The postgres loader beyond the shared contract: DDL, migrations, JSONB, rejected lines, outages."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

pytest.importorskip("psycopg")

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from plowline.config import Settings
from plowline.errors import ConfigError, TransportError
from plowline.event import FIELD_NAMES
from plowline.storage import open_loader
from plowline.storage.postgres import MIGRATIONS, PostgresLoader, migrate, open_postgres_loader
from plowline.storage.rows import LOADER_PARSING_ERROR, column_types

from .conftest import T0, bad_rows, full_event, minimal_event, postgres_settings, tsv

LOADER_PARSING_ERROR_SCHEMA = orjson.loads(
    (
        Path(__file__).resolve().parents[2]
        / "plowline/iglu/schemas/com.snowplowanalytics.snowplow.badrows"
        / "loader_parsing_error/jsonschema/2-0-0"
    ).read_bytes()
)

# information_schema's names for the types of sql/postgres.sql.
_INFORMATION_SCHEMA_TYPES = {"timestamp": "timestamp without time zone"}


@pytest.fixture
def settings(postgres_dsn: str, postgres_schema: str) -> Settings:
    return postgres_settings(postgres_dsn, postgres_schema)


@pytest.fixture
def db(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def _one(conn: psycopg.Connection[Any], query: str, schema: str, *params: Any) -> Any:
    row = conn.execute(sql.SQL(query).format(schema=sql.Identifier(schema)), params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def _bad(conn: psycopg.Connection[Any], schema: str) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT * FROM {}.bad_rows ORDER BY failure_tstamp, row_hash").format(sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query).fetchall()


# --- tables and migrations ------------------------------------------------------------------------


async def test_the_registry_opens_it(settings: Settings) -> None:
    loader = open_loader("postgres", settings, "enriched")
    assert isinstance(loader, PostgresLoader)
    await loader.close()


def test_events_has_the_typed_columns_of_rows_py(settings: Settings, db: psycopg.Connection[Any]) -> None:
    open_postgres_loader(settings, "enriched")
    schema = settings.storage.postgres.schema_name
    columns = db.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'events' ORDER BY ordinal_position",
        [schema],
    ).fetchall()
    expected = [(name, _INFORMATION_SCHEMA_TYPES.get(kind, kind)) for name, kind in column_types("postgres")]
    assert [(name, kind) for name, kind, _ in columns] == [*expected, ("load_tstamp", "timestamp without time zone")]
    assert {name for name, _, nullable in columns if nullable == "NO"} == {
        "collector_tstamp",
        "event_id",
        "v_collector",
        "v_etl",
    }
    assert dict(expected)["event_id"] == "uuid"
    assert (
        dict(expected)["contexts"] == dict(expected)["unstruct_event"] == dict(expected)["derived_contexts"] == "jsonb"
    )
    assert dict(expected)["tr_total"] == "numeric"


def test_bad_rows_has_its_columns(settings: Settings, db: psycopg.Connection[Any]) -> None:
    open_postgres_loader(settings, "bad")
    columns = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'bad_rows' ORDER BY ordinal_position",
        [settings.storage.postgres.schema_name],
    ).fetchall()
    assert columns == [
        ("row_hash", "text"),
        ("schema", "text"),
        ("failure_tstamp", "timestamp without time zone"),
        ("processor", "text"),
        ("data", "jsonb"),
        ("loaded_at", "timestamp without time zone"),
    ]


def test_migrations_apply_once_and_opening_again_changes_nothing(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    schema = settings.storage.postgres.schema_name
    first = PostgresLoader(settings.storage.postgres.dsn, schema, "enriched")
    assert first.ensure_schema() == [m.version for m in MIGRATIONS]
    assert first.ensure_schema() == []
    open_postgres_loader(settings, "enriched")
    open_postgres_loader(settings, "bad")
    versions = db.execute(
        sql.SQL("SELECT version FROM {}.plowline_migrations ORDER BY version").format(sql.Identifier(schema))
    ).fetchall()
    assert [v for (v,) in versions] == [1, 2, 3]


def test_a_later_migration_applies_once_to_an_existing_schema(settings: Settings, db: psycopg.Connection[Any]) -> None:
    schema, dsn = settings.storage.postgres.schema_name, settings.storage.postgres.dsn
    with psycopg.connect(dsn) as conn:
        assert migrate(conn, schema, MIGRATIONS[:1]) == [1]
    db.execute(
        sql.SQL(
            "INSERT INTO {}.events (event_id, collector_tstamp, v_collector, v_etl)"
            " VALUES (gen_random_uuid(), now(), 'c', 'e')"
        ).format(sql.Identifier(schema))
    )

    assert PostgresLoader(dsn, schema, "enriched").ensure_schema() == [2, 3]
    assert PostgresLoader(dsn, schema, "enriched").ensure_schema() == []
    assert _one(db, "SELECT count(load_tstamp) FROM {schema}.events", schema) == 1
    indexes = db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'events'",
                         [schema]).fetchall()
    assert {name for (name,) in indexes} >= {"events_collector_tstamp_brin", "events_load_tstamp_brin"}


def test_loaders_starting_at_once_migrate_once(settings: Settings, db: psycopg.Connection[Any]) -> None:
    schema = settings.storage.postgres.schema_name
    loaders = [PostgresLoader(settings.storage.postgres.dsn, schema, "enriched") for _ in range(6)]
    barrier = threading.Barrier(len(loaders))

    def start(loader: PostgresLoader) -> list[int]:
        barrier.wait()
        return loader.ensure_schema()

    with ThreadPoolExecutor(len(loaders)) as pool:
        applied = list(pool.map(start, loaders))
    assert sorted(map(tuple, applied)) == [(), (), (), (), (), (1, 2, 3)]
    assert _one(db, "SELECT count(*) FROM {schema}.plowline_migrations", schema) == 3


def test_an_empty_dsn_is_a_config_error(postgres_schema: str) -> None:
    with pytest.raises(ConfigError, match=r"storage\.postgres\.dsn"):
        open_postgres_loader(postgres_settings("", postgres_schema), "enriched")


async def test_a_server_that_is_not_there_fails_writes_not_the_opening() -> None:
    settings = postgres_settings("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", "atomic")
    loader = open_postgres_loader(settings, "enriched")  # logs, and leaves the tables to the first write
    assert loader.healthy()
    with pytest.raises(TransportError):
        await loader.write(tsv(minimal_event()))
    assert not loader.healthy()
    await loader.close()


# --- what is stored -------------------------------------------------------------------------------


async def test_json_columns_are_queryable_jsonb(settings: Settings, db: psycopg.Connection[Any]) -> None:
    loader = open_postgres_loader(settings, "enriched")
    await loader.write(tsv(full_event()))
    await loader.close()

    row = db.execute(
        sql.SQL(
            "SELECT contexts->>'schema', contexts->'data'->0->>'schema', contexts->'data'->1->'data'->>'name',"
            " unstruct_event->'data'->>'schema', unstruct_event->'data'->'data'->>'targetUrl',"
            " jsonb_array_length(derived_contexts->'data'),"
            " (SELECT count(*) FROM jsonb_array_elements(contexts->'data') e"
            "   WHERE e->>'schema' LIKE 'iglu:com.acme/product/%%')"
            " FROM {}.events"
        ).format(sql.Identifier(settings.storage.postgres.schema_name))
    ).fetchone()
    assert row == (
        "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
        "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
        "Schuhe “blau” ☃ 日本語 🎉",
        "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
        'https://example.com/ä?q=1&r=\\"x"',
        2,
        1,
    )


async def test_values_are_stored_exactly(settings: Settings, db: psycopg.Connection[Any]) -> None:
    loader = open_postgres_loader(settings, "enriched")
    await loader.write(tsv(full_event()))
    await loader.close()

    row = db.execute(
        sql.SQL(
            "SELECT ti_price::text, tr_tax::text, se_value::text, tr_shipping::text, collector_tstamp::text,"
            " refr_dvce_tstamp::text, pg_typeof(event_id)::text, geo_latitude, txn_id, br_features_pdf"
            " FROM {}.events"
        ).format(sql.Identifier(settings.storage.postgres.schema_name))
    ).fetchone()
    assert row == (
        "39.90",
        "8000",
        "-0.000123",
        "0.00",
        "2024-05-01 12:30:15.123",
        "1999-12-31 23:59:59.999",
        "uuid",
        52.532123456789,
        2_147_483_647,
        True,
    )


async def test_a_timestamp_with_an_offset_is_stored_in_utc(settings: Settings, db: psycopg.Connection[Any]) -> None:
    columns = minimal_event().to_tsv().split("\t")
    columns[FIELD_NAMES.index("collector_tstamp")] = "2024-05-01T14:30:15.123+02:00"
    loader = open_postgres_loader(settings, "enriched")
    await loader.write(["\t".join(columns).encode()])
    await loader.close()

    stored = _one(db, "SELECT collector_tstamp FROM {schema}.events", settings.storage.postgres.schema_name)
    assert stored == datetime(2024, 5, 1, 12, 30, 15, 123000)


async def test_bad_rows_are_queryable_by_type_time_and_processor(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    loader = open_postgres_loader(settings, "bad")
    await loader.write(bad_rows(2))
    await loader.close()

    [first, second] = _bad(db, settings.storage.postgres.schema_name)
    assert first["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0"
    assert second["schema"] == "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0"
    assert first["failure_tstamp"] == T0.replace(tzinfo=None)
    assert first["processor"] == "plowline-test-0.1.0"
    assert len(first["row_hash"]) == 64
    assert first["data"]["data"]["failure"]["actualSizeBytes"] == 2000


async def test_a_bad_line_that_is_not_a_bad_row_is_kept_as_a_generic_error(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    loader = open_postgres_loader(settings, "bad")
    await loader.write(
        [b"not json \xff", b'{"no": "schema"}', b'{"schema":"iglu:x/y/jsonschema/1-0-0","data":"\\u0000"}']
    )
    await loader.write([b"not json \xff"])
    await loader.close()

    rows = {
        row["data"]["data"].get("payload") if isinstance(row["data"]["data"], dict) else row["data"]["data"]: row
        for row in _bad(db, settings.storage.postgres.schema_name)
    }
    assert set(rows) == {"not json \ufffd", '{"no": "schema"}', "\ufffd"}
    assert rows["not json \ufffd"]["schema"].endswith("/generic_error/jsonschema/1-0-0")
    assert rows["\ufffd"]["schema"] == "iglu:x/y/jsonschema/1-0-0"  # jsonb cannot hold U+0000


# --- lines that are not events --------------------------------------------------------------------


def _line(event_number: int, **columns: str) -> bytes:
    values = minimal_event(event_number).to_tsv().split("\t")
    for name, text in columns.items():
        values[FIELD_NAMES.index(name)] = text
    return "\t".join(values).encode()


REJECTED = {
    "garbage": b"this is not an enriched event",
    "too few columns": b"a\tb\tc",
    "not an integer": _line(101, txn_id="12x"),
    "not UTF-8": _line(102, app_id="caf\xe9").replace("caf\xe9".encode(), b"caf\xe9"),
    "bad contexts": _line(103, contexts='{"schema":"iglu:x","data":{}}'),
    "integer out of range": _line(104, doc_width="2147483648"),
    "event_id not a UUID": _line(105, event_id="not-a-uuid"),
    "no event_id": _line(106, event_id=""),
}


async def test_lines_that_are_not_events_become_bad_rows_and_the_rest_is_loaded(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    schema = settings.storage.postgres.schema_name
    good = tsv(*(minimal_event(number) for number in range(5)))
    batch = good[:2] + list(REJECTED.values()) + good[2:]
    loader = open_postgres_loader(settings, "enriched")
    await loader.write(batch)
    await loader.write(batch)  # redelivered: neither events nor bad rows twice
    await loader.close()

    assert _one(db, "SELECT count(*) FROM {schema}.events", schema) == 5
    bad = _bad(db, schema)
    assert len(bad) == len(REJECTED)
    payloads = {row["data"]["data"]["payload"]: row["data"] for row in bad}
    assert {row["schema"] for row in bad} == {LOADER_PARSING_ERROR}
    for row in bad:
        Draft4Validator(LOADER_PARSING_ERROR_SCHEMA).validate(row["data"]["data"])
    assert payloads["this is not an enriched event"]["data"]["failure"] == {"type": "NotTSV"}
    assert payloads["a\tb\tc"]["data"]["failure"] == {"type": "FieldNumberMismatch", "fieldCount": 3}
    [invalid] = payloads[REJECTED["not an integer"].decode()]["data"]["failure"]["errors"]
    assert (invalid["type"], invalid["key"], invalid["value"]) == ("InvalidValue", "txn_id", "12x")
    refused = payloads[REJECTED["integer out of range"].decode()]["data"]["failure"]["errors"][0]
    assert refused["type"] == "UnhandledRowDecodingError"
    assert "PostgreSQL refused the row" in refused["message"]


async def test_unusual_but_valid_lines_are_loaded(settings: Settings, db: psycopg.Connection[Any]) -> None:
    schema = settings.storage.postgres.schema_name
    nul_contexts = (
        '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":['
        '{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"text":"a\\u0000b"}}]}'
    )
    lines = [
        _line(1, page_title="carriage\rreturn"),
        _line(2, page_title="quote \x01 char"),
        _line(3, contexts=nul_contexts),
        _line(4, page_title='"quoted", with \\N and \\. and ;'),
    ]
    loader = open_postgres_loader(settings, "enriched")
    await loader.write(lines)
    await loader.close()

    rows = db.execute(
        sql.SQL(
            "SELECT page_title, contexts->'data'->0->'data'->>'text' FROM {}.events ORDER BY collector_tstamp"
        ).format(sql.Identifier(schema))
    ).fetchall()
    assert rows == [
        ("carriage\rreturn", None),
        ("quote \x01 char", None),
        (None, "a\ufffdb"),
        ('"quoted", with \\N and \\. and ;', None),
    ]
    assert _bad(db, schema) == []


async def test_concurrent_loaders_with_overlapping_batches_store_each_event_once(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    events = tsv(*(minimal_event(number) for number in range(600)))
    loaders = [open_postgres_loader(settings, "enriched") for _ in range(3)]
    await asyncio.gather(
        *(loader.write(events[start : start + 300]) for loader in loaders for start in range(0, 600, 100))
    )
    for loader in loaders:
        await loader.close()
    assert _one(
        db, "SELECT count(*), count(DISTINCT event_id) FROM {schema}.events", settings.storage.postgres.schema_name
    ) == (600, 600)


# --- a server restart -----------------------------------------------------------------------------


def _cluster() -> list[str]:
    versions = sorted(Path("/etc/postgresql").glob("*/main"))
    if not shutil.which("pg_ctlcluster") or not versions:
        pytest.skip("needs a local cluster managed by pg_ctlcluster")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].parent.name, "main"]


def _wait_until_up(dsn: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _ensure_running(cluster: list[str], dsn: str) -> None:
    """Start the cluster if a failed test left it stopped, and wait until it answers."""
    if subprocess.run([*cluster, "status"], check=False, capture_output=True).returncode != 0:
        subprocess.run([*cluster, "start"], check=False, capture_output=True)
    _wait_until_up(dsn)


@pytest.mark.slow
async def test_a_server_restart_mid_load_raises_transport_error_then_loads_everything_once(
    settings: Settings, postgres_dsn: str
) -> None:
    if "127.0.0.1" not in postgres_dsn and "localhost" not in postgres_dsn:
        pytest.skip("restarts only a server on this machine")
    cluster = _cluster()
    batches = [tsv(*(minimal_event(start + number) for number in range(200))) for start in range(0, 6000, 200)]
    loader = open_postgres_loader(settings, "enriched")
    failures: list[TransportError] = []

    def restart_after_a_few_batches() -> None:
        loaded_some.wait(30)
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)
        time.sleep(2)
        subprocess.run([*cluster, "start"], check=True, capture_output=True)

    loaded_some = threading.Event()
    restarter = threading.Thread(target=restart_after_a_few_batches)
    restarter.start()
    try:
        async with asyncio.timeout(120):
            for number, batch in enumerate(batches):
                while True:  # as the load loop does: the same batch again until it is stored
                    try:
                        await loader.write(batch)
                        break
                    except TransportError as exc:
                        failures.append(exc)
                        assert not loader.healthy()
                        await asyncio.sleep(0.2)
                if number == 3:
                    loaded_some.set()
                    await asyncio.sleep(0.5)  # let the stop land while the next writes are in flight
    finally:
        loaded_some.set()
        await asyncio.to_thread(restarter.join)
        await asyncio.to_thread(_ensure_running, cluster, postgres_dsn)
        await loader.close()

    assert failures, "the restart went unnoticed"
    assert loader.healthy()
    with psycopg.connect(postgres_dsn) as conn:
        assert _one(
            conn,
            "SELECT count(*), count(DISTINCT event_id) FROM {schema}.events",
            settings.storage.postgres.schema_name,
        ) == (6000, 6000)


def test_the_wall_clock_is_utc_in_stored_defaults(settings: Settings, db: psycopg.Connection[Any]) -> None:
    open_postgres_loader(settings, "enriched")
    schema = settings.storage.postgres.schema_name
    db.execute("SET TIME ZONE 'America/New_York'")
    db.execute(
        sql.SQL(
            "INSERT INTO {}.events (event_id, collector_tstamp, v_collector, v_etl)"
            " VALUES (gen_random_uuid(), now(), 'c', 'e')"
        ).format(sql.Identifier(schema))
    )
    stored = _one(db, "SELECT load_tstamp FROM {schema}.events", schema)
    assert abs((stored.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 60
