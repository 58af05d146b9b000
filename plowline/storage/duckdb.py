"""The `duckdb` loader: the embedded warehouse (atomic.events, atomic.bad_rows), which also answers read-only queries.

Contract (plowline.storage.base, checked by tests/storage/test_loader_contract.py):

* The database is storage.duckdb.path (default DATA_DIR/warehouse.duckdb). Opening the first
  loader of a process creates the schema and applies the migrations of `sql/duckdb.sql` that are
  new, once each. The enriched and the bad loader of one process share one connection. If the
  file is locked by another process then, the first write tries again (and raises TransportError
  while it stays locked), so a loader never dies because a reader held the file for a moment.
* `write(records)` stores the batch in ONE transaction and returns after its COMMIT (DuckDB
  fsyncs its write-ahead log on commit; it checkpoints by itself when the log reaches
  storage.duckdb.checkpoint_threshold_mb, and on close). Each checkpoint rewrites the primary-key
  index, so DuckDB's default threshold (16 MiB) checkpoints every few thousand rows and halves the
  load rate of a growing table; 256 MiB costs a few seconds of log replay after a crash.
  DuckDB runs with storage.duckdb.threads (default 1): on a small machine shared with the rest of
  the pipeline a second thread costs ~35% more CPU per loaded row for no gain in wall time.
  Rows go in as an Arrow table (`parquet.enriched_table`: typed by Arrow's C++ CSV reader) with
  `INSERT … ON CONFLICT DO NOTHING` on the primary key (event_id, event_fingerprint_key), where
  event_fingerprint_key is event_fingerprint with '' for NULL; bad rows on row_hash. So an event
  stored before, or earlier in the same batch, is skipped: redelivery is harmless, exactly.
* Lines that are not events, or that DuckDB refuses (a batch refused as data is retried row by
  row), are stored as `loader_parsing_error` rows in atomic.bad_rows, so nothing is lost.
* Any other database failure raises TransportError; the connection is closed and the next write
  opens it again.

Queries while loading: the process holding the warehouse answers other processes' queries on a unix
socket (plowline/storage/duckdb_queries.py, which documents the protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from plowline.badrows import generic_error, serialize
from plowline.config import Settings
from plowline.errors import TransportError
from plowline.observability import get_logger
from plowline.storage.base import Kind
from plowline.storage.duckdb_queries import QueryServer, query_socket_path
from plowline.storage.parquet import ENRICHED_SCHEMA, bad_rows_table, enriched_table
from plowline.storage.rows import PROCESSOR, loader_parsing_error, unhandled_failure

__all__ = [
    "MIGRATIONS",
    "DuckDBLoader",
    "Migration",
    "migrate",
    "open_duckdb_loader",
    "warehouse_path",
]

log = get_logger("storage.duckdb")

_MIGRATION_HEADER = re.compile(r"^-- migration: (\d+) (.+)$", re.MULTILINE)
# Errors that mean "this data", not "this database": the batch is redone row by row.
_ROW_ERRORS: tuple[type[duckdb.Error], ...] = (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)

_INSERT_EVENTS = "INSERT INTO atomic.events BY NAME SELECT * FROM plowline_events_stage ON CONFLICT DO NOTHING"
_INSERT_BAD = "INSERT INTO atomic.bad_rows BY NAME SELECT * FROM plowline_bad_stage ON CONFLICT DO NOTHING"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of sql/duckdb.sql."""

    version: int
    description: str
    sql: str


def _load_migrations() -> tuple[Migration, ...]:
    text = resources.files("plowline.storage").joinpath("sql", "duckdb.sql").read_text(encoding="utf-8")
    headers = list(_MIGRATION_HEADER.finditer(text))
    migrations = tuple(
        Migration(int(match[1]), match[2].strip(), text[match.end() : ends].strip())
        for match, ends in zip(headers, [h.start() for h in headers[1:]] + [len(text)], strict=True)
    )
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise RuntimeError("sql/duckdb.sql: migrations must be numbered 1, 2, 3, … in order")
    return migrations


#: The schema's history, in order (from sql/duckdb.sql).
MIGRATIONS: tuple[Migration, ...] = _load_migrations()


def migrate(con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks, each in its own transaction. Returns the versions applied now."""
    con.execute("CREATE SCHEMA IF NOT EXISTS atomic")
    con.execute(
        "CREATE TABLE IF NOT EXISTS atomic.plowline_migrations (version INTEGER PRIMARY KEY,"
        " description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM atomic.plowline_migrations").fetchall()}
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        con.begin()
        try:
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO atomic.plowline_migrations VALUES (?, ?, ?)",
                [migration.version, migration.description, _utc_now()],
            )
            con.commit()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.rollback()
            raise
        applied.append(migration.version)
    return applied


def warehouse_path(settings: Settings) -> Path:
    """storage.duckdb.path, or DATA_DIR/warehouse.duckdb."""
    return Path(settings.storage.duckdb.path or settings.data_dir / "warehouse.duckdb")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- the warehouse: one connection per database file and process ---------------------------------------


class _Warehouse:
    """An open database file, shared by the loaders of one process, and its query server."""

    _open: ClassVar[dict[Path, _Warehouse]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, serve_queries: bool, checkpoint_threshold_mb: int, threads: int) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.users = 0
        self.closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(os.fspath(path))
        self.server: QueryServer | None = None
        try:
            self.con.execute(f"SET checkpoint_threshold = '{int(checkpoint_threshold_mb)}MiB'")
            self.con.execute(f"SET threads = {int(threads)}")
            applied = migrate(self.con)
            if applied:
                log.info("duckdb migrations applied", path=str(path), versions=applied)
            if serve_queries:
                self.server = QueryServer(self.con, query_socket_path(path))
                self.server.start()
        except BaseException:
            self.con.close()
            raise

    @classmethod
    def acquire(cls, path: Path, serve_queries: bool, checkpoint_threshold_mb: int, threads: int) -> _Warehouse:
        key = path.absolute()
        with cls._registry_lock:
            warehouse = cls._open.get(key)
            if warehouse is None or warehouse.closed:
                warehouse = cls._open[key] = _Warehouse(key, serve_queries, checkpoint_threshold_mb, threads)
            warehouse.users += 1
            return warehouse

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            if self._open.get(self.path) is self:
                del self._open[self.path]
        self.close(checkpoint=True)

    def close(self, checkpoint: bool = False) -> None:
        """Stop serving and close the connection (after a CHECKPOINT, when asked and possible)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.server is not None:
                self.server.stop()
            if checkpoint:
                with contextlib.suppress(duckdb.Error):
                    self.con.execute("CHECKPOINT")
            with contextlib.suppress(duckdb.Error):
                self.con.close()
        with self._registry_lock:
            if self._open.get(self.path) is self:
                del self._open[self.path]

    def insert(self, events: pa.Table | None, bad: pa.Table | None) -> None:
        """Insert staged events and bad rows in one transaction, skipping stored keys."""
        staged = [
            (name, table, statement)
            for name, table, statement in (
                ("plowline_events_stage", events, _INSERT_EVENTS),
                ("plowline_bad_stage", bad, _INSERT_BAD),
            )
            if table is not None and table.num_rows
        ]
        if not staged:
            return
        with self.lock:
            if self.closed:
                raise duckdb.ConnectionException("the warehouse connection is closed")
            con = self.con
            for name, table, _ in staged:
                con.register(name, table)
            try:
                con.begin()
                try:
                    for _, _, statement in staged:
                        con.execute(statement)
                    con.commit()
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        con.rollback()
                    raise
            finally:
                for name, _, _ in staged:
                    with contextlib.suppress(duckdb.Error):
                        con.unregister(name)


# --- the loader ---------------------------------------------------------------------------------------


class DuckDBLoader:
    """A Loader into the DuckDB warehouse for one kind of record; see the module docstring."""

    name: ClassVar[str] = "duckdb"
    max_record_bytes: int = 10_000_000

    def __init__(
        self,
        path: Path,
        kind: Kind,
        *,
        serve_queries: bool = True,
        checkpoint_threshold_mb: int = 256,
        threads: int = 1,
    ) -> None:
        if kind not in ("enriched", "bad"):
            raise ValueError(f"kind must be 'enriched' or 'bad', not {kind!r}")
        self.path = path
        self.kind: Kind = kind
        self.serve_queries = serve_queries
        self.checkpoint_threshold_mb = checkpoint_threshold_mb
        self.threads = threads
        self._warehouse: _Warehouse | None = None
        self._healthy = True
        self._lock = asyncio.Lock()

    def open(self) -> None:
        """Open (create, migrate) the warehouse now. Raises duckdb.Error, e.g. when another process holds it."""
        if self._warehouse is not None and not self._warehouse.closed:
            return
        if self._warehouse is not None:
            self._warehouse.release()
            self._warehouse = None
        self._warehouse = _Warehouse.acquire(self.path, self.serve_queries, self.checkpoint_threshold_mb, self.threads)

    async def write(self, records: Sequence[bytes]) -> None:
        """Store the records in one transaction and return after COMMIT; see the module docstring."""
        if not records:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, list(records))
            except duckdb.Error as exc:
                self._healthy = False
                warehouse = self._warehouse
                if warehouse is not None and not isinstance(exc, duckdb.IOException | duckdb.ConnectionException):
                    await asyncio.to_thread(warehouse.close)  # after an unexpected error, start from a new connection
                raise TransportError(f"duckdb {self.kind} write to {self.path} failed: {exc}") from exc
        self._healthy = True

    def healthy(self) -> bool:
        """False from a failed write until a write succeeds."""
        return self._healthy

    async def close(self) -> None:
        """Release the warehouse; the last loader of the process checkpoints and closes it."""
        async with self._lock:
            warehouse, self._warehouse = self._warehouse, None
            if warehouse is not None:
                await asyncio.to_thread(warehouse.release)

    # --- writing --------------------------------------------------------------------------------

    def _write(self, records: list[bytes]) -> None:
        self.open()
        warehouse = self._warehouse
        assert warehouse is not None
        now = datetime.now(UTC)
        if self.kind == "bad":
            _insert_bad(warehouse, bad_rows_table(records, now))
            return
        converted = enriched_table(records)
        rejected = list(converted.rejected)
        events = _events_stage(converted.table, now)
        try:
            warehouse.insert(events, _bad_stage(bad_rows_table(rejected, now)) if rejected else None)
        except _ROW_ERRORS as exc:
            log.warning("duckdb refused a batch; loading it row by row", path=str(self.path), error=str(exc))
            rejected += _insert_one_by_one(warehouse, events, converted.lines)
            if rejected:
                _insert_bad(warehouse, bad_rows_table(rejected, now))
        if rejected:
            log.warning("enriched lines stored as bad rows", path=str(self.path), count=len(rejected))


def _insert_one_by_one(warehouse: _Warehouse, events: pa.Table, lines: list[bytes]) -> list[bytes]:
    """Insert each staged event on its own; return loader_parsing_error rows for those DuckDB refuses."""
    rejected: list[bytes] = []
    for index, line in enumerate(lines):
        try:
            warehouse.insert(events.slice(index, 1), None)
        except _ROW_ERRORS as exc:
            rejected.append(loader_parsing_error(line, unhandled_failure(f"DuckDB refused the row: {exc}")))
    return rejected


def _insert_bad(warehouse: _Warehouse, table: pa.Table) -> None:
    """Insert bad rows; one that DuckDB refuses (JSON its parser rejects) is kept as the payload of a
    generic_error row under the same row_hash, so it is stored and still deduplicated."""
    try:
        warehouse.insert(None, _bad_stage(table))
        return
    except _ROW_ERRORS:
        pass
    for index in range(table.num_rows):
        row = table.slice(index, 1)
        try:
            warehouse.insert(None, _bad_stage(row))
        except _ROW_ERRORS as exc:
            text = row.column("data")[0].as_py()
            wrapped = generic_error(PROCESSOR, [f"DuckDB refused the bad row: {exc}"], text)
            replacement = bad_rows_table([serialize(wrapped)], row.column("loaded_at")[0].as_py())
            replacement = replacement.set_column(0, "row_hash", row.column("row_hash"))
            warehouse.insert(None, _bad_stage(replacement))


def _events_stage(table: pa.Table, now: datetime) -> pa.Table:
    """The staged events: timestamps zoneless UTC, plus event_fingerprint_key and load_tstamp."""
    key = pc.fill_null(table.column("event_fingerprint"), "")
    loaded = pa.array([now.replace(tzinfo=None)] * table.num_rows, pa.timestamp("ms"))
    return table.cast(_NAIVE_ENRICHED_SCHEMA).append_column("event_fingerprint_key", key).append_column(
        "load_tstamp", loaded
    )


def _bad_stage(table: pa.Table) -> pa.Table:
    return table.cast(_naive(table.schema))


def _naive(schema: pa.Schema) -> pa.Schema:
    """`schema` with zoneless timestamps: DuckDB's TIMESTAMP columns hold UTC without a zone."""
    return pa.schema([pa.field(f.name, pa.timestamp("ms") if pa.types.is_timestamp(f.type) else f.type,
                               f.nullable) for f in schema])


_NAIVE_ENRICHED_SCHEMA = _naive(ENRICHED_SCHEMA)


def open_duckdb_loader(settings: Settings, kind: Kind) -> DuckDBLoader:
    """Open the loader for `kind`, creating and migrating the warehouse now unless another process holds it."""
    config = settings.storage.duckdb
    loader = DuckDBLoader(
        warehouse_path(settings), kind, checkpoint_threshold_mb=config.checkpoint_threshold_mb, threads=config.threads
    )
    try:
        loader.open()
    except duckdb.IOException as exc:
        log.warning("duckdb warehouse not available yet; the first write retries", path=str(loader.path),
                    error=str(exc))
    return loader
