"""Loader test fixtures: `loader_factory`, one per loader, so the contract suite runs against each.

A loader joins the contract suite with ONE entry in `_FACTORIES`: a function that, for one test,
sets up an isolated store (its own directory, database or schema; fixtures come from `request`),
yields a `LoaderFactory` for it, and tears the store down afterwards. A `LoaderFactory` says how
to open the loader for a kind and how to read back what it stored:

* `read_enriched()` returns the stored events as dicts of the 131 fields, typed as
  `normalize_enriched` makes them (str, int, float, Decimal, bool, aware UTC datetime, parsed
  JSON). A typed store returns its columns through `normalize_enriched`; a text store parses its
  TSV with `enriched_dict_from_tsv`.
* `read_bad()` returns the stored bad rows as parsed JSON dicts.
* `outage()`, where the store can be made unavailable, is a context manager during which writes
  must fail; the tests that need it skip, saying why, for a loader that gives None.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import orjson
import pytest

from plowline.badrows import Processor, generic_error, serialize, size_violation
from plowline.config import Settings
from plowline.event import FIELD_KINDS, FIELD_NAMES, EnrichedEvent, FieldKind
from plowline.event_format import parse_timestamp, render_contexts, render_unstruct
from plowline.storage.base import Kind, Loader

if TYPE_CHECKING:  # psycopg is imported where used: the other loaders' tests run without it
    import psycopg

POSTGRES_DSN = os.environ.get("PLOWLINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class LoaderFactory:
    """One loader under test, over one isolated store; see the module docstring."""

    name: str
    opener: Callable[[Kind], Loader]
    read_enriched: Callable[[], list[dict[str, Any]]]
    read_bad: Callable[[], list[dict[str, Any]]]
    outage: Callable[[], AbstractContextManager[None]] | None = None
    typed: bool = True  # False for a store that keeps the TSV text (its values are typed on reading)
    opened: list[Loader] = field(default_factory=list)

    def open(self, kind: Kind) -> Loader:
        """A new loader of `kind` over this store (closed after the test if the test does not)."""
        loader = self.opener(kind)
        self.opened.append(loader)
        return loader

    async def close_all(self) -> None:
        for loader in self.opened:
            await loader.close()


# --- values as every store reads them back ----------------------------------------------------


def normalize_enriched(values: Mapping[str, Any]) -> dict[str, Any]:
    """The 131 fields of a stored event in comparable form: naive timestamps are UTC, UUIDs and
    other string-ish values are str, JSON text is parsed. Keys other than the 131 are dropped."""
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = values[name]
        if value is not None:
            value = _NORMALIZE[FIELD_KINDS[name]](value)
        out[name] = value
    return out


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        return parse_timestamp(value)
    moment = cast(datetime, value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


_NORMALIZE: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.STRING: str,
    FieldKind.INTEGER: lambda value: value,
    FieldKind.FLOAT: lambda value: value,
    FieldKind.DECIMAL: lambda value: value,
    FieldKind.BOOLEAN: lambda value: value,
    FieldKind.TIMESTAMP: _timestamp,
    FieldKind.JSON: _json,
}


def expected_enriched(event: EnrichedEvent) -> dict[str, Any]:
    """What a store must give back for `event`: its typed values, the JSON columns as the full
    self-describing JSON of the TSV (contexts/1-0-1 and unstruct_event/1-0-0 wrappers), parsed."""
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = getattr(event, name)
        if value is not None and FIELD_KINDS[name] is FieldKind.JSON:
            value = orjson.loads(render_unstruct(value) if name == "unstruct_event" else render_contexts(value))
        out[name] = value
    return out


def enriched_dict_from_tsv(line: bytes | str) -> dict[str, Any]:
    """For stores that keep the TSV: the stored line read back the way a typed store is."""
    text = line.decode() if isinstance(line, bytes) else line
    return expected_enriched(EnrichedEvent.from_tsv(text))


# --- events and bad rows to store -------------------------------------------------------------

T0 = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)

CONTEXTS = [
    {
        "schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
        "data": {"id": "0a6c3d3e-6a93-4f4a-9d6c-1f3b2e1d0c9b"},
    },
    {
        "schema": "iglu:com.acme/product/jsonschema/1-2-0",
        "data": {
            "name": "Schuhe “blau” ☃ 日本語 🎉",
            "price": Decimal("39.90"),
            "tags": ["a", "b"],
            "stock": None,
            "onSale": True,
            "dims": {"w": 1.5, "h": -2},
        },
    },
]
UNSTRUCT = {
    "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
    "data": {"targetUrl": 'https://example.com/ä?q=1&r=\\"x"', "elementClasses": ["btn", "cta"]},
}
DERIVED = [
    {
        "schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0",
        "data": {"useragentFamily": "Firefox", "useragentMajor": "125", "osFamily": "Linux", "deviceFamily": "Other"},
    },
    {
        "schema": "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0",
        "data": {"spiderOrRobot": False, "category": "BROWSER", "reason": "PASSED_ALL", "primaryImpact": "NONE"},
    },
]

# A representative value of each non-string kind, by field; every other field is a string.
_TYPED: dict[str, Any] = {
    "etl_tstamp": T0 + timedelta(seconds=2, milliseconds=7),
    "collector_tstamp": T0,
    "dvce_created_tstamp": T0 - timedelta(milliseconds=999),
    "dvce_sent_tstamp": T0 - timedelta(milliseconds=1),
    "refr_dvce_tstamp": datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "derived_tstamp": T0 - timedelta(microseconds=500_000),
    "true_tstamp": datetime(2030, 1, 1, tzinfo=UTC),
    "txn_id": 2_147_483_647,
    "domain_sessionidx": 3,
    "page_urlport": 443,
    "refr_urlport": 8080,
    "ti_quantity": 2,
    "pp_xoffset_min": -12,
    "pp_xoffset_max": 0,
    "pp_yoffset_min": 100,
    "pp_yoffset_max": 4000,
    "br_viewwidth": 1440,
    "br_viewheight": 789,
    "dvce_screenwidth": 1920,
    "dvce_screenheight": 1080,
    "doc_width": 1425,
    "doc_height": 5120,
    "geo_latitude": 52.532123456789,
    "geo_longitude": -122.4194155,
    "se_value": Decimal("-0.000123"),
    "tr_total": Decimal("35708.23"),
    "tr_tax": Decimal("8000"),
    "tr_shipping": Decimal("0.00"),
    "ti_price": Decimal("39.90"),
    "tr_total_base": Decimal("1234567890.123456"),
    "tr_tax_base": Decimal("7.5"),
    "tr_shipping_base": Decimal("-4.95"),
    "ti_price_base": Decimal("12"),
    "br_features_pdf": True,
    "br_features_flash": False,
    "br_features_java": True,
    "br_features_director": False,
    "br_features_quicktime": True,
    "br_features_realplayer": False,
    "br_features_windowsmedia": True,
    "br_features_gears": False,
    "br_features_silverlight": True,
    "br_cookies": False,
    "dvce_ismobile": True,
    "contexts": CONTEXTS,
    "unstruct_event": UNSTRUCT,
    "derived_contexts": DERIVED,
    "event_id": "c6ef3124-b53a-4b13-a233-0088f79dcbcb",
    "event_fingerprint": "e3dbfa9ca0a1ed7f1e1c0b4b6f0f4f5e",
    "page_title": "Ünïcødé ☃ 日本語 🎉 “quotes” \\ back\\slash 'single'",
    "geo_country": "DE",
    "tr_currency": "EUR",
}


def full_event(**changes: Any) -> EnrichedEvent:
    """An event with every one of the 131 fields set to a representative typed value."""
    values = {name: _TYPED.get(name, f"{name} value ü") for name in FIELD_NAMES}
    return EnrichedEvent(**{**values, **changes})


def minimal_event(number: int = 0, **changes: Any) -> EnrichedEvent:
    """An event with only what every store requires: event_id, collector_tstamp, v_collector, v_etl."""
    values: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=number + 1, version=4)),
        "collector_tstamp": T0 + timedelta(milliseconds=number),
        "v_collector": "ssc-3.2.0-kinesis",
        "v_etl": "enrich-kinesis-6.1.0",
        "event_fingerprint": f"fingerprint-{number}",
    }
    return EnrichedEvent(**{**values, **changes})


def tsv(*events: EnrichedEvent) -> list[bytes]:
    return [event.to_tsv().encode() for event in events]


def bad_rows(count: int, start: int = 0) -> list[bytes]:
    """Distinct serialised bad rows of a few types."""
    rows: list[bytes] = []
    for number in range(start, start + count):
        when = T0 + timedelta(seconds=number)
        if number % 2:
            row = generic_error(_PROCESSOR, [f"error {number}: naïve ☃"], f"payload {number}", when)
        else:
            row = size_violation(_PROCESSOR, 1000, 2000 + number, "too big", "x" * 10, when, as_dict=True)
        rows.append(serialize(row))
    return rows


_PROCESSOR = Processor("plowline-test", "0.1.0")


# --- postgres -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test server ($PLOWLINE_TEST_POSTGRES_DSN); tests needing it skip when it does not answer."""
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_DSN} is not reachable: {exc}")
    return POSTGRES_DSN


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    import psycopg
    from psycopg import sql

    schema = f"plowline_test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            terminate_loader_sessions(conn, schema)
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"{schema}_away")))


def postgres_settings(dsn: str, schema: str, **storage: Any) -> Settings:
    return Settings.model_validate({"storage": {**storage, "postgres": {"dsn": dsn, "schema_name": schema}}})


def terminate_loader_sessions(conn: psycopg.Connection[Any], schema: str) -> int:
    """Kill the server sessions of the loaders of `schema` (their application_name names it)."""
    row = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE %s",
        [f"plowline % loader ({schema})"],
    ).fetchone()
    return int(row[0]) if row else 0


@contextlib.asynccontextmanager
async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[LoaderFactory]:
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    from plowline.storage.postgres import open_postgres_loader

    dsn = cast(str, request.getfixturevalue("postgres_dsn"))
    schema = cast(str, request.getfixturevalue("postgres_schema"))
    settings = postgres_settings(dsn, schema)
    table = sql.Identifier(schema, "events")
    bad = sql.Identifier(schema, "bad_rows")

    def read_enriched() -> list[dict[str, Any]]:
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY collector_tstamp, event_id").format(table))
            return [normalize_enriched(row) for row in rows]

    def read_bad() -> list[dict[str, Any]]:
        with psycopg.connect(dsn) as conn:
            return [row[0] for row in conn.execute(sql.SQL("SELECT data FROM {} ORDER BY row_hash").format(bad))]

    @contextlib.contextmanager
    def outage() -> Iterator[None]:
        # The schema vanishes and the loaders' sessions are killed: the next write loses its
        # connection, the ones after it find no table, until the schema is back.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(schema), sql.Identifier(f"{schema}_away"))
            )
            terminate_loader_sessions(conn, schema)
        try:
            yield
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(f"{schema}_away"), sql.Identifier(schema)
                    )
                )

    yield LoaderFactory("postgres", lambda kind: open_postgres_loader(settings, kind), read_enriched, read_bad, outage)


# --- files, parquet, duckdb: stores under the test's tmp_path ------------------------------------


@contextlib.contextmanager
def _replaced_by_a_file(directory: Any) -> Iterator[None]:
    """An outage of a local store: its root directory is swapped for a plain file, so every write
    fails with an OSError (permissions would not do: the tests may run as root)."""
    away = directory.with_name(directory.name + "-away")
    directory.rename(away)
    directory.write_bytes(b"")
    try:
        yield
    finally:
        directory.unlink()
        away.rename(directory)


@contextlib.asynccontextmanager
async def _files(request: pytest.FixtureRequest) -> AsyncIterator[LoaderFactory]:
    import gzip

    from plowline.storage.files import open_files_loader

    root = request.getfixturevalue("tmp_path") / "data"
    settings = Settings.model_validate({"data_dir": str(root)})

    def lines(kind: str, pattern: str) -> list[bytes]:
        return [
            line
            for path in sorted((root / kind).rglob(pattern))
            for line in gzip.decompress(path.read_bytes()).splitlines()
        ]

    yield LoaderFactory(
        "files",
        lambda kind: open_files_loader(settings, kind),
        lambda: [enriched_dict_from_tsv(line) for line in lines("enriched", "*.tsv.gz")],
        lambda: [orjson.loads(line) for line in lines("bad", "*.json.gz")],
        lambda: _replaced_by_a_file(root),
        typed=False,
    )


@contextlib.asynccontextmanager
async def _parquet(request: pytest.FixtureRequest) -> AsyncIterator[LoaderFactory]:
    import pyarrow.parquet as pq

    from plowline.storage.parquet import open_parquet_loader

    root = request.getfixturevalue("tmp_path") / "data"
    settings = Settings.model_validate({"data_dir": str(root)})

    def rows(table: str) -> list[dict[str, Any]]:
        return [
            row
            for path in sorted((root / "lake" / table).rglob("*.parquet"))
            for row in pq.read_table(path).to_pylist()
        ]

    yield LoaderFactory(
        "parquet",
        lambda kind: open_parquet_loader(settings, kind),
        lambda: [normalize_enriched(row) for row in rows("events")],
        lambda: [orjson.loads(row["data"]) for row in rows("bad_rows")],
        lambda: _replaced_by_a_file(root / "lake"),
    )


@contextlib.asynccontextmanager
async def _duckdb(request: pytest.FixtureRequest) -> AsyncIterator[LoaderFactory]:
    import duckdb

    from plowline.storage.duckdb import open_duckdb_loader

    root = request.getfixturevalue("tmp_path") / "data"
    settings = Settings.model_validate({"data_dir": str(root)})
    database = root / "warehouse.duckdb"

    def query(sql: str) -> list[dict[str, Any]]:
        if not database.exists():
            return []
        # In this process a loader may hold the file: connect() then shares its database.
        with duckdb.connect(str(database)) as con:
            cursor = con.execute(sql)
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    yield LoaderFactory(
        "duckdb",
        lambda kind: open_duckdb_loader(settings, kind),
        lambda: [
            normalize_enriched(row) for row in query("SELECT * FROM atomic.events ORDER BY collector_tstamp, event_id")
        ],
        lambda: [orjson.loads(row["data"]) for row in query("SELECT data FROM atomic.bad_rows ORDER BY row_hash")],
        None,  # embedded in the loader's process: no server to take away (its own tests cover a locked file)
    )


# --- the fixture --------------------------------------------------------------------------------

# One entry per loader. Each sets up and tears down its own isolated store for one test.
_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[LoaderFactory]]] = {
    "postgres": _postgres,
    "files": _files,
    "parquet": _parquet,
    "duckdb": _duckdb,
}


@pytest.fixture(params=list(_FACTORIES), ids=list(_FACTORIES))
async def loader_factory(request: pytest.FixtureRequest) -> AsyncIterator[LoaderFactory]:
    async with _FACTORIES[cast(str, request.param)](request) as factory:
        try:
            yield factory
        finally:
            await factory.close_all()
