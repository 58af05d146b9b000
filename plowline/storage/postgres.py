"""The `postgres` loader: enriched events into typed `<schema>.events`, bad rows into `<schema>.bad_rows`.

Contract (plowline.storage.base, checked by tests/storage/test_loader_contract.py):

* Opening a loader creates the schema and tables, and applies the migrations of
  `sql/postgres.sql` that are new, once each, under an advisory lock (so loaders starting together
  are safe). If the server is unreachable then, the first write does it.
* `write(records)` stores the whole batch in ONE transaction and returns after its COMMIT. An
  event already stored with the same (event_id, event_fingerprint), from an earlier batch or
  earlier in the same one, is skipped, and so is a bad row with the same hash: redelivery is
  harmless. An empty write does nothing.
* How: the records go by COPY into a temporary staging table, then `INSERT … SELECT … ON CONFLICT
  DO NOTHING` moves them over. Enriched lines go to the server as they are (COPY parses them, as
  psql's \\copy does). In the common case, a batch none of which is stored yet, the COPY goes
  straight into events on a savepoint instead (a third faster); the first duplicate key undoes
  it, and the batch takes the staging path.
* A line that the cheap checks flag, or any batch the server refuses as data, is redone row by row
  with `rows.enriched_row`; a line that is not an enriched event, or that the server refuses, is
  stored as a `loader_parsing_error` bad row in `<schema>.bad_rows` in the same transaction, so
  nothing is lost and one bad line never blocks the stream.
* Any other database failure (server down or restarting, connection lost, lock or disk trouble)
  raises TransportError: the caller retries the batch, and the next write reconnects. A commit
  that fails midway may have stored the batch; the retry then skips it.

Knobs: `storage.batch_size` (records per write, from the load loop; also the COPY chunk size),
`storage.postgres.dsn` and `storage.postgres.schema_name`. Sessions run in UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from plowline.config import Settings
from plowline.errors import ConfigError, TransportError
from plowline.event import FieldKind
from plowline.observability import get_logger
from plowline.storage.base import Kind
from plowline.storage.rows import (
    BAD_ROW_COLUMNS,
    ENRICHED_COLUMNS,
    JSON_COLUMNS,
    BadRowValues,
    RowError,
    bad_row,
    column_types,
    enriched_row,
    loader_parsing_error,
    unhandled_failure,
)

__all__ = ["MIGRATIONS", "Migration", "PostgresLoader", "migrate", "open_postgres_loader"]

log = get_logger("storage.postgres")

_FIELD_COUNT = len(ENRICHED_COLUMNS)
_TIMESTAMP_COLUMNS = tuple(i for i, column in enumerate(ENRICHED_COLUMNS) if column.kind is FieldKind.TIMESTAMP)
_MIGRATION_HEADER = re.compile(r"^-- migration: (\d+) (.+)$", re.MULTILINE)
# Advisory-lock namespace (first key) for migrations; the second key is the schema's hashtext.
_MIGRATION_LOCK_CLASS = 0x706C6F77  # "plow"

# SQLSTATEs that mean "this data", not "this server": the batch is redone row by row. Class 22
# (data exception: bad number, bad UTF-8, bad JSON), class 23 (a NOT NULL column left empty) and
# 54000 (a value too big for an index row).
_ROW_ERRORS: tuple[type[psycopg.Error], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of sql/postgres.sql."""

    version: int
    description: str
    sql: str


def _load_migrations() -> tuple[Migration, ...]:
    text = resources.files("plowline.storage").joinpath("sql", "postgres.sql").read_text(encoding="utf-8")
    headers = list(_MIGRATION_HEADER.finditer(text))
    migrations = tuple(
        Migration(int(match[1]), match[2].strip(), text[match.end() : ends].strip())
        for match, ends in zip(headers, [h.start() for h in headers[1:]] + [len(text)], strict=True)
    )
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise RuntimeError("sql/postgres.sql: migrations must be numbered 1, 2, 3, … in order")
    return migrations


#: The schema's history, in order (from sql/postgres.sql).
MIGRATIONS: tuple[Migration, ...] = _load_migrations()


def migrate(conn: psycopg.Connection[Any], schema: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create `schema` and apply the migrations it lacks, in one transaction under an advisory lock
    keyed by the schema, so concurrent callers wait and then find nothing left to do. Returns the
    versions applied now."""
    ident = sql.Identifier(schema)
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_MIGRATION_LOCK_CLASS, schema])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.plowline_migrations (version integer PRIMARY KEY,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        done = {row[0] for row in conn.execute(sql.SQL("SELECT version FROM {}.plowline_migrations").format(ident))}
        for migration in migrations:
            if migration.version in done:
                continue
            conn.execute(sql.SQL(migration.sql).format(schema=ident))
            conn.execute(
                sql.SQL("INSERT INTO {}.plowline_migrations (version, description) VALUES (%s, %s)").format(ident),
                [migration.version, migration.description],
            )
            applied_now.append(migration.version)
    return applied_now


@dataclass(frozen=True, slots=True)
class _Statements:
    """The SQL of one loader, built once for its schema."""

    create_events_stage: sql.Composed
    copy_events: sql.Composed
    copy_events_direct: sql.Composed
    insert_events: sql.Composed
    insert_event: sql.Composed
    create_bad_stage: sql.Composed
    copy_bad: sql.Composed
    insert_bad: sql.Composed

    @classmethod
    def for_schema(cls, schema: str) -> _Statements:
        events, bad_rows = sql.Identifier(schema, "events"), sql.Identifier(schema, "bad_rows")
        names = [name for name, _ in column_types("postgres")]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        # The staging table reads timestamps as timestamptz: in a UTC session a plain
        # 'yyyy-MM-dd HH:mm:ss.SSS' is UTC, and an explicit offset is honoured, not dropped.
        stage_types = [
            (name, "timestamptz" if kind == "timestamp" else kind) for name, kind in column_types("postgres")
        ]
        stage_columns = sql.SQL(", ").join(
            [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in stage_types]
        )
        # Snowplow's TSV has no quoting or escaping: CSV mode with a quote character that a TSV
        # line never holds (\x01 is a control character) takes every byte literally.
        tsv = sql.SQL("(FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x01')")
        on_conflict = sql.SQL("ON CONFLICT (event_id, (COALESCE(event_fingerprint, ''))) DO NOTHING")
        bad_columns = sql.SQL(", ").join(map(sql.Identifier, BAD_ROW_COLUMNS))
        return cls(
            create_events_stage=sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS plowline_events_stage ({}) ON COMMIT DELETE ROWS"
            ).format(stage_columns),
            copy_events=sql.SQL("COPY plowline_events_stage FROM STDIN {}").format(tsv),
            copy_events_direct=sql.SQL("COPY {} ({}) FROM STDIN {}").format(events, columns, tsv),
            insert_events=sql.SQL("INSERT INTO {} ({}) SELECT {} FROM plowline_events_stage {}").format(
                events, columns, columns, on_conflict
            ),
            insert_event=sql.SQL("INSERT INTO {} ({}) VALUES ({}) {}").format(
                events,
                columns,
                sql.SQL(", ").join([sql.SQL("%s::{}").format(sql.SQL(kind)) for _, kind in stage_types]),
                on_conflict,
            ),
            create_bad_stage=sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS plowline_bad_stage (schema text, failure_tstamp timestamptz,"
                " processor text, row_hash text, data jsonb) ON COMMIT DELETE ROWS"
            ).format(),
            copy_bad=sql.SQL("COPY plowline_bad_stage ({}) FROM STDIN").format(bad_columns),
            insert_bad=sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM plowline_bad_stage ON CONFLICT (row_hash) DO NOTHING"
            ).format(bad_rows, bad_columns, bad_columns),
        )


class PostgresLoader:
    """A Loader into PostgreSQL for one kind of record; see the module docstring for the contract."""

    name: ClassVar[str] = "postgres"
    max_record_bytes: int = 10_000_000

    def __init__(
        self,
        dsn: str,
        schema: str,
        kind: Kind,
        *,
        batch_size: int = 1000,
        connect_timeout_s: int = 10,
        application_name: str = "",
    ) -> None:
        if kind not in ("enriched", "bad"):
            raise ValueError(f"kind must be 'enriched' or 'bad', not {kind!r}")
        self.dsn = dsn
        self.schema = schema
        self.kind: Kind = kind
        self.batch_size = batch_size
        self.connect_timeout_s = connect_timeout_s
        # Operators (and the tests) find a loader's sessions in pg_stat_activity by this name.
        self.application_name = application_name or f"plowline {kind} loader ({schema})"[:63]
        self._sql = _Statements.for_schema(schema)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._migrated = False
        self._healthy = True
        self._lock = asyncio.Lock()

    # --- schema -----------------------------------------------------------------------------------

    def ensure_schema(self) -> list[int]:
        """Create the tables and apply new migrations now (blocking). Returns the versions applied."""
        with psycopg.connect(self.dsn, **self._connect_args()) as conn:
            applied = migrate(conn, self.schema)
        self._migrated = True
        if applied:
            log.info("postgres migrations applied", schema=self.schema, versions=applied)
        return applied

    # --- Loader -----------------------------------------------------------------------------------

    async def write(self, records: Sequence[bytes]) -> None:
        """Store the records in one transaction and return after COMMIT; see the module docstring."""
        if not records:
            return
        async with self._lock:
            try:
                conn = await self._connection()
                if self.kind == "enriched":
                    await self._write_enriched(conn, [record.rstrip(b"\r\n") for record in records])
                else:
                    async with conn.transaction():
                        await self._insert_bad(conn, [bad_row(record) for record in records])
            except psycopg.Error as exc:
                await self._discard_connection()
                self._healthy = False
                state = getattr(exc, "sqlstate", None) or "no SQLSTATE"
                raise TransportError(f"postgres {self.kind} write failed ({state}): {exc}".strip()) from exc
            except BaseException:
                await self._discard_connection()  # cancelled mid-COPY: the session state is unknown
                raise
        self._healthy = True

    def healthy(self) -> bool:
        """False from a failed write until a write succeeds."""
        return self._healthy

    async def close(self) -> None:
        """Close the connection; every write that returned is committed."""
        async with self._lock:
            await self._discard_connection()

    # --- enriched events --------------------------------------------------------------------------

    async def _write_enriched(self, conn: psycopg.AsyncConnection[Any], lines: list[bytes]) -> None:
        copyable = [_copyable(line) for line in lines]
        if any(copyable):
            fast = [line for line, ok in zip(lines, copyable, strict=True) if ok]
            odd = [line for line, ok in zip(lines, copyable, strict=True) if not ok]
            try:
                async with conn.transaction():
                    if not (all(map(_canonical_timestamps, fast)) and await self._copy_direct(conn, fast)):
                        await self._copy(conn, self._sql.copy_events, fast)
                        await conn.execute(self._sql.insert_events)
                    rejected = await self._insert_one_by_one(conn, odd)
                    await self._insert_bad(conn, rejected)
                self._log_rejected(rejected)
                return
            except _ROW_ERRORS as exc:
                log.warning("postgres refused a batch; loading it row by row", schema=self.schema, error=str(exc))
        async with conn.transaction():
            rejected = await self._insert_one_by_one(conn, lines)
            await self._insert_bad(conn, rejected)
        self._log_rejected(rejected)

    async def _copy_direct(self, conn: psycopg.AsyncConnection[Any], lines: list[bytes]) -> bool:
        """The common case, where nothing in the batch is stored yet, without the staging table:
        COPY straight into events on a savepoint. False (and nothing done) if any event is already
        stored or repeats in the batch; the caller then goes through staging and ON CONFLICT."""
        try:
            async with conn.transaction():
                await self._copy(conn, self._sql.copy_events_direct, lines)
        except psycopg.errors.UniqueViolation:
            return False
        return True

    async def _copy(self, conn: psycopg.AsyncConnection[Any], statement: sql.Composed, lines: list[bytes]) -> None:
        async with conn.cursor().copy(statement) as copy:
            for start in range(0, len(lines), self.batch_size):
                await copy.write(b"\n".join(lines[start : start + self.batch_size]) + b"\n")

    async def _insert_one_by_one(self, conn: psycopg.AsyncConnection[Any], lines: list[bytes]) -> list[BadRowValues]:
        """Insert each line on its own savepoint; return bad rows for those that are not events."""
        rejected: list[bytes] = []
        for line in lines:
            try:
                values = _pg_values(enriched_row(line))
            except RowError as exc:
                rejected.append(exc.bad_row)
                continue
            try:
                async with conn.transaction():
                    await conn.execute(self._sql.insert_event, values)
            except _ROW_ERRORS as exc:
                failure = unhandled_failure(f"PostgreSQL refused the row: {exc.diag.message_primary or exc}")
                rejected.append(loader_parsing_error(line, failure))
        return [bad_row(row) for row in rejected]

    def _log_rejected(self, rejected: list[BadRowValues]) -> None:
        if rejected:
            log.warning("enriched lines stored as bad rows", schema=self.schema, count=len(rejected))

    # --- bad rows ---------------------------------------------------------------------------------

    async def _insert_bad(self, conn: psycopg.AsyncConnection[Any], rows: list[BadRowValues]) -> None:
        if not rows:
            return
        async with conn.cursor().copy(self._sql.copy_bad) as copy:
            for row in rows:
                await copy.write_row(row._replace(data=_jsonb_safe(row.data)))
        await conn.execute(self._sql.insert_bad)

    # --- connection -------------------------------------------------------------------------------

    def _connect_args(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": self.connect_timeout_s,
            "application_name": self.application_name,
        }

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if not self._migrated:
            await asyncio.to_thread(self.ensure_schema)
        conn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_args())
        try:
            await conn.execute("SET TIME ZONE 'UTC'")
            await conn.execute("SET client_encoding TO 'UTF8'")
            if self.kind == "enriched":  # its lines that are not events become bad rows
                await conn.execute(self._sql.create_events_stage)
            await conn.execute(self._sql.create_bad_stage)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


def _copyable(line: bytes) -> bool:
    """Cheap checks that a line can go to COPY as it is: 131 columns, nothing that COPY's CSV
    framing reads specially, and no NUL (which neither text nor jsonb can hold)."""
    return (
        line.count(b"\t") == _FIELD_COUNT - 1
        and b"\x01" not in line
        and b"\n" not in line
        and b"\r" not in line
        and b"\x00" not in line
        and b"\\u0000" not in line
    )


def _canonical_timestamps(line: bytes) -> bool:
    """Every timestamp is empty or `yyyy-MM-dd HH:mm:ss.SSS`, as enrich writes them. Only then may a
    line be copied straight into events' `timestamp` columns, which would drop an explicit offset;
    the staging table's timestamptz columns honour it."""
    columns = line.split(b"\t")
    for index in _TIMESTAMP_COLUMNS:
        text = columns[index]
        if text and (len(text) != 23 or text[10] != 0x20 or text[19] != 0x2E):
            return False
    return True


def _pg_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if all(values[index] is None or "\\u0000" not in values[index] for index in JSON_COLUMNS):
        return values
    adapted = list(values)
    for index in JSON_COLUMNS:
        if adapted[index] is not None:
            adapted[index] = _jsonb_safe(adapted[index])
    return tuple(adapted)


def _jsonb_safe(text: str) -> str:
    """jsonb cannot hold U+0000: such characters become U+FFFD (the rest of the JSON is unchanged)."""
    if "\\u0000" not in text:
        return text
    return json.dumps(_replace_nul(json.loads(text)), ensure_ascii=False, separators=(",", ":"))


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_replace_nul(item) for item in value]
    if isinstance(value, dict):
        return {_replace_nul(key): _replace_nul(item) for key, item in value.items()}
    return value


def open_postgres_loader(settings: Settings, kind: Kind) -> PostgresLoader:
    """Open the loader for `kind`, creating and migrating its tables now if the server answers."""
    config = settings.storage.postgres
    if not config.dsn:
        raise ConfigError(
            "storage.postgres.dsn", "is empty", "set it to a libpq URL, e.g. postgresql://user@host:5432/db"
        )
    if not config.schema_name:
        raise ConfigError("storage.postgres.schema_name", "is empty", "name a schema, e.g. atomic")
    loader = PostgresLoader(config.dsn, config.schema_name, kind, batch_size=settings.storage.batch_size)
    try:
        loader.ensure_schema()
    except psycopg.OperationalError as exc:
        log.warning("postgres unreachable; tables will be created on the first write", error=str(exc))
    return loader
