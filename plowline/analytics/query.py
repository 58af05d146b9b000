"""Ad-hoc SQL over the DuckDB warehouse, also while a loader holds it, and the output formats of `plowline query`.

DuckDB lets one process open a database file for writing, and no other process may open it
meanwhile, not even read-only. The process whose duckdb loader holds the warehouse therefore
answers read-only queries on a unix socket (plowline/storage/duckdb_queries.py: `QueryServer`).
`run_query` asks that socket first; when there is none, or nobody answers it, no loader is running
and it opens the file read-only itself. Either way only one SELECT or EXPLAIN statement runs, in a
read-only transaction. If a loader holds the file but its socket is not up yet (it is starting),
`run_query` keeps trying for `wait_s` seconds.

This module may not import plowline.storage (subsystems are independent), so the few facts the
two sides share are repeated here and checked against each other by tests/analytics/test_query.py:
the database path (storage.duckdb.path, default DATA_DIR/warehouse.duckdb), the socket path and
the protocol (one request per connection; big-endian u32 lengths):

    request:  u32 length, then JSON {"sql": "<one statement>"}
              or {"script": "<statements separated by ;>"}
    response: u32 length, then JSON {"ok": true} and an Arrow IPC stream of the result until the
              connection closes; or {"ok": false, "error": "<message>"}

A script (sent by plowline.analytics.runner, through `ask_query_socket`) runs in one transaction
and answers its last statement's result; the server refuses it unless every statement is a SELECT
or writes schema `derived` only (tests/analytics/test_models.py checks this).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import struct
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from plowline.config import Settings
from plowline.errors import PlowlineError

__all__ = [
    "FORMATS",
    "WAREHOUSES",
    "Format",
    "NoWarehouse",
    "QueryError",
    "Warehouse",
    "ask_query_socket",
    "format_result",
    "query_arrow",
    "query_postgres",
    "query_socket_path",
    "query_warehouse",
    "run_query",
    "warehouse_kind",
    "warehouse_path",
]

Format = Literal["table", "csv", "json", "parquet"]
Warehouse = Literal["duckdb", "postgres"]
#: The warehouses `query_warehouse` reads.
WAREHOUSES: tuple[Warehouse, ...] = ("duckdb", "postgres")
#: The output formats of `format_result`.
FORMATS: tuple[Format, ...] = ("table", "csv", "json", "parquet")

_MAX_SOCKET_PATH = 100  # as plowline/storage/duckdb_queries.py
_MAX_HEADER_BYTES = 1 << 20
_READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class QueryError(PlowlineError):
    """A query that could not run: refused (not one read-only statement), failed, or no warehouse."""


class NoWarehouse(QueryError):
    """The warehouse file does not exist yet: no duckdb loader has run on this data dir."""


def warehouse_path(settings: Settings) -> Path:
    """storage.duckdb.path, or DATA_DIR/warehouse.duckdb (as the duckdb loader)."""
    return Path(settings.storage.duckdb.path or settings.data_dir / "warehouse.duckdb")


def query_socket_path(database: Path) -> Path:
    """Where the process holding `database` answers queries (as the duckdb loader computes it)."""
    database = database.absolute()
    beside = database.with_name(database.name + ".sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    tag = hashlib.sha256(os.fsencode(database)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"plowline-{os.getuid()}-{tag}.sock"


def warehouse_kind(settings: Settings) -> Warehouse:
    """The warehouse the configured loaders fill: duckdb when it is among storage.loaders, else
    postgres when it is, else duckdb (`plowline up`'s default)."""
    loaders = settings.storage.loaders
    return "postgres" if "postgres" in loaders and "duckdb" not in loaders else "duckdb"


# --- running a query ----------------------------------------------------------------------------------


def query_warehouse(settings: Settings, sql: str, target: str = "auto", *, timeout_s: float = 300.0) -> pa.Table:
    """One read-only statement on `target` (duckdb, postgres, or auto: `warehouse_kind`), as Arrow."""
    if target not in ("auto", *WAREHOUSES):
        raise QueryError(f"the warehouse must be auto, duckdb or postgres, not {target!r}")
    chosen = warehouse_kind(settings) if target == "auto" else target
    if chosen == "postgres":
        return query_postgres(settings, sql, timeout_s=timeout_s)
    return query_arrow(settings, sql, timeout_s=timeout_s)


def query_postgres(settings: Settings, sql: str, *, timeout_s: float = 300.0) -> pa.Table:
    """One statement on storage.postgres.dsn in a READ ONLY transaction, as an Arrow table.

    PostgreSQL itself holds the line: a prepared statement is exactly one statement (so no
    `…; COMMIT; …` can step out of the transaction), and a read-only session refuses every write
    (and nextval, locks, ...). search_path starts with
    storage.postgres.schema_name, so `events` and `<schema>.events` both name the loader's table.
    JSON and JSONB come back as their text, UUIDs as text, timestamps as naive UTC (as in DuckDB).
    """
    import psycopg

    postgres = settings.storage.postgres
    if not postgres.dsn:
        raise QueryError(
            "storage.postgres.dsn is empty: set it (e.g. postgresql://user@host:5432/db) to query postgres"
        )
    schema = '"' + postgres.schema_name.replace('"', '""') + '"'
    options = (
        "-c TimeZone=UTC -c default_transaction_read_only=on"
        f" -c statement_timeout={max(1, int(timeout_s * 1000))}"
    )
    try:
        with psycopg.connect(postgres.dsn, application_name="plowline query", options=options) as conn:
            conn.read_only = True
            conn.execute(f"SET search_path TO {schema}, public")
            with conn.cursor() as cursor:
                cursor.execute(sql.encode(), prepare=True)
                if cursor.description is None:  # a statement with no result set (SET, say): no columns
                    return pa.table({})
                names = [column.name for column in cursor.description]
                types = [column.type_code for column in cursor.description]
                rows = cursor.fetchall()
            conn.rollback()  # nothing to keep: leave no transaction behind
    except psycopg.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        raise QueryError(f"postgres: {message}") from exc
    columns = [_arrow_column([row[index] for row in rows], types[index]) for index in range(len(names))]
    return pa.Table.from_arrays(columns, names=_unique(names))


_JSON_OIDS = frozenset({114, 3802})  # json, jsonb
_UUID_OID = 2950
_TIMESTAMPTZ_OID = 1184  # the one type psycopg returns as aware datetimes


def _arrow_column(values: list[Any], oid: int) -> pa.Array:
    if oid in _JSON_OIDS:
        values = [None if value is None else orjson.dumps(value).decode() for value in values]
    elif oid == _UUID_OID:
        values = [None if value is None else str(value) for value in values]
    elif oid == _TIMESTAMPTZ_OID:
        values = [None if value is None else value.astimezone(UTC).replace(tzinfo=None) for value in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())


def _unique(names: list[str]) -> list[str]:
    """Arrow tables take duplicate names, the output formats do not all: `?column?` twice → `?column?_2`."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def run_query(settings: Settings, sql: str, *, wait_s: float = 5.0, timeout_s: float = 300.0) -> tuple[
    list[str], list[tuple[Any, ...]]
]:
    """Run one read-only statement on the warehouse: (column names, rows of Python values).

    Timestamps are naive datetimes in UTC (as stored), decimals Decimal, JSON columns str, UUIDs
    str. Raises QueryError, with DuckDB's message, when the query is refused or fails.
    """
    table = query_arrow(settings, sql, wait_s=wait_s, timeout_s=timeout_s)
    columns = list(table.column_names)
    if not columns:
        return columns, []
    values = [column.to_pylist() for column in table.columns]
    return columns, list(zip(*values, strict=True))


def query_arrow(settings: Settings, sql: str, *, wait_s: float = 5.0, timeout_s: float = 300.0) -> pa.Table:
    """`run_query`, with the result as an Arrow table (exact column types)."""
    database = warehouse_path(settings)
    deadline = time.monotonic() + wait_s
    while True:
        answered = ask_query_socket(query_socket_path(database), {"sql": sql}, timeout_s)
        if answered is not None:
            return answered
        if not database.exists():
            raise NoWarehouse(
                f"no warehouse at {database}: run `plowline up` or `plowline load` with the duckdb loader first"
            )
        try:
            return _query_file(database, sql)
        except duckdb.IOException as exc:  # a loader holds the file and its socket is not up yet
            if time.monotonic() >= deadline:
                raise QueryError(f"the warehouse is locked and its query socket does not answer: {exc}") from exc
            time.sleep(0.1)


def ask_query_socket(path: Path, request: dict[str, str], timeout_s: float) -> pa.Table | None:
    """Send `request` ({"sql": …} or {"script": …}) to the loader's query socket: the result, or
    None when no server answers there. Raises QueryError when the server refuses or fails it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_uid != os.getuid():  # a socket someone else put there: never send them our SQL
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(2.0)
        try:
            client.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            return None  # a socket file left by a process that is gone
        client.settimeout(timeout_s)
        try:
            client.sendall(_frame(orjson.dumps(request)))
            stream = client.makefile("rb")
            header = orjson.loads(_read_frame(stream))
            if not isinstance(header, dict) or not header.get("ok"):
                message = header.get("error") if isinstance(header, dict) else None
                raise QueryError(str(message or "the query failed"))
            table: pa.Table = pa.ipc.open_stream(stream).read_all()
            return table
        except TimeoutError as exc:
            raise QueryError(f"the query did not finish within {timeout_s:g} s") from exc
        except (OSError, pa.ArrowInvalid, orjson.JSONDecodeError) as exc:
            raise QueryError(f"the query socket {path} failed: {exc}") from exc
    finally:
        client.close()


def _query_file(database: Path, sql: str) -> pa.Table:
    """Open the warehouse read-only here (no loader is running) and run the query."""
    try:
        con = duckdb.connect(os.fspath(database), read_only=True)
    except duckdb.IOException:
        raise
    except duckdb.Error as exc:
        raise QueryError(f"cannot open {database}: {exc}") from exc
    try:
        statements = con.extract_statements(sql)
        if len(statements) != 1:
            raise QueryError(f"give exactly one statement, not {len(statements)}")
        if statements[0].type not in _READ_ONLY_STATEMENTS:
            raise QueryError(f"only SELECT and EXPLAIN queries are allowed, not {statements[0].type.name}")
        con.execute("BEGIN TRANSACTION READ ONLY")
        table: pa.Table = con.sql(statements[0].query).to_arrow_table()
        return table
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    finally:
        con.close()


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _read_frame(stream: io.BufferedIOBase) -> bytes:
    header = stream.read(4)
    if len(header) != 4:
        raise QueryError("the query socket closed the connection without an answer")
    (length,) = struct.unpack(">I", header)
    if length > _MAX_HEADER_BYTES:
        raise QueryError(f"the query socket sent a {length}-byte header")
    body = stream.read(length)
    if len(body) != length:
        raise QueryError("the query socket closed the connection mid-answer")
    return body


# --- output formats -----------------------------------------------------------------------------------


def format_result(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, path: Path | str | None = None
) -> str | bytes:
    """A query result as `fmt`:

    * "table": aligned text for a terminal, NULL for null, with a row count;
    * "csv": RFC 4180 with a header row, empty for null;
    * "json": an array of objects (timestamps ISO 8601, decimals exact numbers);
    * "parquet": the bytes of a Parquet file (column types inferred from the values); written to
      `path` as well when given.
    """
    if fmt == "table":
        return _table(columns, rows)
    if fmt == "csv":
        return _csv(columns, rows)
    if fmt == "json":
        return orjson.dumps(
            [dict(zip(columns, row, strict=True)) for row in rows],
            default=_json_default,
            option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS,
        ).decode()
    if fmt == "parquet":
        data = _parquet(columns, rows)
        if path is not None:
            target = Path(path)
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_bytes(data)
            temporary.replace(target)
        return data
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=_json_default).decode()
    return str(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_text(value).replace("\n", "\\n").replace("\t", "\\t") for value in row] for row in rows]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        " | ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)).rstrip(),
        "-+-".join("-" * width for width in widths),
    ]
    lines += [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines) + "\n"


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else _text(value) for value in row])
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f")) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _parquet(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    arrays = [pa.array([row[index] for row in rows]) for index in range(len(columns))]
    table = pa.Table.from_arrays(arrays, names=list(columns))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()
