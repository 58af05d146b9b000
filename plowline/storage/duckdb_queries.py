"""The DuckDB warehouse's query socket: read-only queries, and the models' scripts, from other processes.

DuckDB lets only one process open a database file for writing, and no other
process may open it at all meanwhile, not even read-only. So the process that holds the warehouse
serves read-only queries for everyone else: while a loader is open it listens on a unix socket
(`query_socket_path`: DATA_DIR/warehouse.duckdb.sock, mode 0600; a short path under the temp
directory when that one is too long for a socket). `plowline query` (plowline.analytics.query)
uses the socket when it answers and otherwise opens the file read-only itself. Each query runs on
its own cursor inside `BEGIN TRANSACTION READ ONLY`, after a check that it is exactly one SELECT
or EXPLAIN statement, so it sees the last committed batch and cannot change anything.

Protocol, one request per connection (big-endian lengths; mirrored in plowline/analytics/query.py,
which may not import storage):

    request:  u32 length, then that many bytes of JSON {"sql": "<one statement>"}
              or {"script": "<statements separated by ;>"}
    response: u32 length, then JSON {"ok": true} followed by an Arrow IPC stream of the result
              until the server closes the connection; or {"ok": false, "error": "<message>"}

A script is how `plowline models run` (plowline.analytics.runner) writes the derived tables while a
loader holds the file. It runs on its own cursor in ONE transaction, committed only if every
statement succeeds; the answer is the last statement's result. Before anything runs, every
statement is checked (`check_derived_script`): a SELECT, or a write whose target is in the schema
`derived` (CREATE SCHEMA derived, CREATE TABLE, INSERT INTO, DELETE FROM, UPDATE or DROP TABLE of
derived.<table>). Anything else refuses the whole script, so a script cannot touch atomic.*.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import socketserver
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import duckdb
import orjson
import pyarrow as pa

from plowline.observability import get_logger

__all__ = [
    "WRITABLE_SCHEMA",
    "QueryRefused",
    "QueryServer",
    "check_derived_script",
    "query_socket_path",
    "read_only_query",
    "run_derived_script",
]

log = get_logger("storage.duckdb")

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
_MAX_REQUEST_BYTES = 1 << 20
_READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_MAX_SCRIPT_BYTES = 16 << 20
#: The only schema a script sent to the query socket may write.
WRITABLE_SCHEMA = "derived"
# A write statement's leading words, up to its target, which must be in WRITABLE_SCHEMA. Leading
# comments are stripped first.
_SCRIPT_TARGET = re.compile(
    r"""^(?:
        CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<schema>"?\w+"?)\s*;?\s*$
      | CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<created>"?\w+"?)\.
      | INSERT\s+INTO\s+(?P<inserted>"?\w+"?)\.
      | DELETE\s+FROM\s+(?P<deleted>"?\w+"?)\.
      | UPDATE\s+(?P<updated>"?\w+"?)\.
      | DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<dropped>"?\w+"?)\.
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*\n|/\*.*?\*/)*", re.DOTALL)



def query_socket_path(database: Path) -> Path:
    """Where the process holding `database` answers queries: beside it, or, when that path is too
    long for a unix socket, under the temp directory by a hash of the database's absolute path."""
    database = database.absolute()
    beside = database.with_name(database.name + ".sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    tag = hashlib.sha256(os.fsencode(database)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"plowline-{os.getuid()}-{tag}.sock"


# --- read-only queries --------------------------------------------------------------------------------


class QueryRefused(ValueError):
    """A query that is not one read-only statement."""


def read_only_query(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run `sql`, which must be one SELECT or EXPLAIN statement, in a read-only transaction on `con`
    (a connection of its own: the transaction is rolled back after)."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise QueryRefused(f"give exactly one statement, not {len(statements)}")
    if statements[0].type not in _READ_ONLY_STATEMENTS:
        raise QueryRefused(f"only SELECT and EXPLAIN queries are allowed, not {statements[0].type.name}")
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        return con.sql(statements[0].query).to_arrow_table()
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")


def check_derived_script(con: duckdb.DuckDBPyConnection, script: str) -> list[str]:
    """The statements of `script`, if each is a SELECT or writes only schema `derived` (see the
    module docstring); raises QueryRefused otherwise."""
    statements = con.extract_statements(script)
    if not statements:
        raise QueryRefused("the script has no statement")
    checked: list[str] = []
    for statement in statements:
        text = statement.query
        if statement.type is not duckdb.StatementType.SELECT:
            match = _SCRIPT_TARGET.match(_LEADING_COMMENTS.sub("", text, count=1))
            target = next((value for value in match.groupdict().values() if value), None) if match else None
            if target is None or target.strip('"').lower() != WRITABLE_SCHEMA:
                summary = " ".join(text.split())[:80]
                raise QueryRefused(
                    f"a script may only read, and write schema {WRITABLE_SCHEMA}: refused {statement.type.name}"
                    f" statement {summary!r}"
                )
        checked.append(text)
    return checked


def run_derived_script(con: duckdb.DuckDBPyConnection, script: str) -> pa.Table:
    """Run a checked script in one transaction on `con` (a connection of its own); the last
    statement's result, as Arrow."""
    statements = check_derived_script(con, script)
    con.execute("BEGIN TRANSACTION")
    try:
        for text in statements[:-1]:
            con.execute(text)
        relation = con.sql(statements[-1])
        table = relation.to_arrow_table() if relation is not None else pa.table({})
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return table


def _read_frame(stream: io.BufferedIOBase, limit: int) -> bytes:
    header = stream.read(4)
    if len(header) != 4:
        raise ValueError("connection closed before a request")
    (length,) = struct.unpack(">I", header)
    if length > limit:
        raise ValueError(f"request of {length} bytes is over the {limit} limit")
    body = stream.read(length)
    if len(body) != length:
        raise ValueError("connection closed mid-request")
    return body


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    query_server: QueryServer


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        owner = cast(_Server, self.server).query_server
        try:
            request = orjson.loads(_read_frame(self.rfile, _MAX_SCRIPT_BYTES))
            sql = request.get("sql") if isinstance(request, dict) else None
            script = request.get("script") if isinstance(request, dict) else None
            if isinstance(sql, str) and len(sql) <= _MAX_REQUEST_BYTES:
                table = owner.run(sql)
            elif isinstance(script, str):
                table = owner.run_script(script)
            else:
                raise QueryRefused('the request must be {"sql": "<statement>"} or {"script": "<statements>"}')
        except (QueryRefused, duckdb.Error, ValueError, KeyError) as exc:
            with contextlib.suppress(OSError):
                self.wfile.write(_frame(orjson.dumps({"ok": False, "error": str(exc)})))
            return
        with contextlib.suppress(OSError):  # the client went away
            self.wfile.write(_frame(orjson.dumps({"ok": True})))
            with pa.ipc.new_stream(self.wfile, table.schema) as writer:
                writer.write_table(table)


class QueryServer:
    """Read-only queries over a unix socket, on connections of their own to an open database."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.path = path
        self._base = con.cursor()
        self._cursor_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def run(self, sql: str) -> pa.Table:
        """One read-only statement (`read_only_query`)."""
        return self._on_own_cursor(read_only_query, sql)

    def run_script(self, script: str) -> pa.Table:
        """A script that writes only schema derived, in one transaction (`run_derived_script`)."""
        return self._on_own_cursor(run_derived_script, script)

    def _on_own_cursor(self, run: Callable[[duckdb.DuckDBPyConnection, str], pa.Table], text: str) -> pa.Table:
        # Each request gets a cursor of its own (its own transaction); creating one is not thread-safe.
        with self._cursor_lock:
            cursor = self._base.cursor()
        try:
            return run(cursor, text)
        finally:
            cursor.close()

    def start(self) -> None:
        """Listen on the socket. A socket file left by a crashed process is replaced: whoever
        holds the database's write lock (this process, now) is the only one that can serve it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)  # the socket is created 0600: only this user may query
        try:
            server = _Server(os.fspath(self.path), _Handler)
        finally:
            os.umask(old_umask)
        server.query_server = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="duckdb-query-server", daemon=True)
        self._thread.start()
        log.info("duckdb query socket listening", path=str(self.path))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(duckdb.Error):
            self._base.close()
