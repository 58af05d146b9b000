"""`plowline models run`: derived.page_views, derived.sessions and derived.users, incremental, on DuckDB and PostgreSQL.

The models are the SQL files of plowline/analytics/models/, one text for both databases with a few
`{{placeholders}}` filled per dialect (the events table, how to read the web_page context's id
from the contexts JSON, the config's heartbeat, minimum visit length and lookback window). They run
in order, all in ONE transaction, so a run is all or nothing and readers never see half of one:

1. setup.sql: create schema `derived` and its tables when missing (with --full-refresh, drop
   the model tables first and read every event; the manifest keeps its history).
2. scope.sql: the sessions to rebuild: those with a page_view or page_ping event whose load_tstamp
   is after the window start, i.e. the last run's high-water mark (greatest load_tstamp it saw)
   minus `models.lookback_window_s`; every session on the first run.
3. page_views.sql, sessions.sql, users.sql: delete the rows of those sessions (and of their users)
   and insert them again, computed from ALL the events of those sessions.
4. finish.sql: append the run to derived.plowline_models_manifest with the new high-water mark, and
   answer the row counts.

Hence: running twice changes nothing (the second run rebuilds the same rows the same way); an
event that arrives late (an old collector_tstamp, a new load_tstamp) puts its session back in
scope, which is rebuilt whole; and the lookback window also catches a batch that committed after a
run with a load_tstamp just before that run's high-water mark (load_tstamp is stamped before
COMMIT). The transaction sees one snapshot (PostgreSQL: REPEATABLE READ), and runs on PostgreSQL
are serialised by an advisory lock.

Where it runs. PostgreSQL: storage.postgres.dsn, reading `<storage.postgres.schema_name>.events`.
DuckDB: the warehouse file. While a loader holds it (no other process may open it then), the
script goes to the loader's query socket as {"script": …} (protocol in plowline/analytics/query.py
and plowline/storage/duckdb_queries.py), which runs it in the loader's process and lets it write schema
`derived` only; when no loader answers, the file is opened here.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

import duckdb
import pyarrow as pa

from plowline.config import Settings
from plowline.errors import PlowlineError

from .query import QueryError, ask_query_socket, query_socket_path, warehouse_kind, warehouse_path

__all__ = [
    "MODELS",
    "MODEL_FILES",
    "Dialect",
    "ModelCount",
    "ModelsError",
    "ModelsRun",
    "model_statements",
    "resolve_target",
    "run_models",
]

Dialect = Literal["duckdb", "postgres"]

#: The SQL files of plowline/analytics/models/, in the order they run.
MODEL_FILES: tuple[str, ...] = ("setup", "scope", "page_views", "sessions", "users", "finish")
#: The tables the models build, in schema derived.
MODELS: tuple[str, ...] = ("page_views", "sessions", "users")

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")
_WEB_PAGE_SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-"
# The id of the first web_page context (any 1-*-* version) of an event; NULL without one.
_PAGE_VIEW_ID: dict[Dialect, str] = {
    "duckdb": (
        "json_extract_string(list_filter(CAST(json_extract(e.contexts, '$.data') AS JSON[]),"
        f" lambda c: starts_with(json_extract_string(c, '$.schema'), '{_WEB_PAGE_SCHEMA_PREFIX}'))[1], '$.data.id')"
    ),
    "postgres": (
        "(jsonb_path_query_first(e.contexts,"
        f" '$.data[*] ? (@.schema starts with \"{_WEB_PAGE_SCHEMA_PREFIX}\").data.id') #>> '{{}}')"
    ),
}
_DROP_ALL = [
    f"DROP TABLE IF EXISTS derived.{table}"
    for table in (*MODELS, "plowline_models_scope_sessions", "plowline_models_scope_users")
]
# Namespace of the PostgreSQL advisory lock that serialises runs ("plow" as in the loader's, then 2).
_PG_LOCK = (0x706C6F77, 2)


class ModelsError(PlowlineError):
    """A models run that could not be done: no warehouse, a refused script, a database error."""


class NoWarehouseYet(ModelsError):
    """The DuckDB warehouse file does not exist: nothing has been loaded yet (as just after `up` starts)."""


@dataclass(frozen=True, slots=True)
class ModelCount:
    """One model after a run: its rows, and how many of them the run rebuilt."""

    model: str
    rows: int
    rebuilt: int


@dataclass(frozen=True, slots=True)
class ModelsRun:
    """What one run did, where, and how long it took."""

    target: Dialect
    via: str  # "postgres", "duckdb file" or "duckdb loader socket"
    full_refresh: bool
    counts: tuple[ModelCount, ...]
    seconds: float


def resolve_target(settings: Settings, target: str | None = None) -> Dialect:
    """The warehouse to run on: `target`, else models.target; "auto" picks duckdb when it is among
    storage.loaders, else postgres when it is, else duckdb."""
    chosen = target or settings.models.target
    if chosen == "auto":
        return warehouse_kind(settings)
    if chosen not in ("duckdb", "postgres"):
        raise ModelsError(f"the models target must be duckdb or postgres, not {chosen!r}")
    return "duckdb" if chosen == "duckdb" else "postgres"


def model_statements(
    dialect: Dialect, settings: Settings, *, full_refresh: bool = False, run_at: datetime | None = None
) -> list[str]:
    """The statements of one run, in order (see the module docstring), for `dialect`."""
    models = settings.models
    moment = (run_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    if dialect == "postgres":
        schema = settings.storage.postgres.schema_name.replace('"', '""')
        events = f'"{schema}".events'
    else:
        events = "atomic.events"
    values = {
        "events": events,
        "page_view_id": _PAGE_VIEW_ID[dialect],
        "heartbeat_s": str(models.heartbeat_s),
        "min_visit_length_s": str(models.min_visit_length_s),
        "window_start": (
            "CAST(NULL AS timestamp)"
            if full_refresh
            else "(SELECT max(high_water_load_tstamp) - INTERVAL "
            f"'{models.lookback_window_s} seconds' FROM derived.plowline_models_manifest)"
        ),
        "previous_high_water": "(SELECT max(high_water_load_tstamp) FROM derived.plowline_models_manifest)",
        "run_at": f"TIMESTAMP '{moment.isoformat(sep=' ')}'",
        "full_refresh": "true" if full_refresh else "false",
    }
    statements = list(_DROP_ALL) if full_refresh else []
    for name in MODEL_FILES:
        text = resources.files("plowline.analytics").joinpath("models", f"{name}.sql").read_text(encoding="utf-8")
        statements += _split(_PLACEHOLDER.sub(lambda match: values[match[1]], _without_comment_lines(text)))
    return statements


def _without_comment_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def _split(text: str) -> list[str]:
    """Statements end with ';' at the end of a line (the model files keep to that)."""
    return [statement.strip() for statement in _STATEMENT_END.split(text) if statement.strip()]


# --- running ------------------------------------------------------------------------------------------


def run_models(
    settings: Settings,
    *,
    target: str | None = None,
    full_refresh: bool = False,
    wait_s: float = 10.0,
    timeout_s: float = 3600.0,
) -> ModelsRun:
    """Run the models once on the target warehouse, in one transaction; see the module docstring.

    Raises ModelsError when there is no warehouse, or the database refuses or fails the run (then
    nothing has changed).
    """
    dialect = resolve_target(settings, target)
    statements = model_statements(dialect, settings, full_refresh=full_refresh)
    started = time.monotonic()
    if dialect == "postgres":
        via, rows = "postgres", _run_postgres(settings, statements)
    else:
        via, rows = _run_duckdb(settings, statements, wait_s, timeout_s)
    counts = tuple(ModelCount(str(model), int(count), int(rebuilt)) for _, model, count, rebuilt in rows)
    return ModelsRun(dialect, via, full_refresh, counts, time.monotonic() - started)


def _run_duckdb(
    settings: Settings, statements: Sequence[str], wait_s: float, timeout_s: float
) -> tuple[str, list[tuple[Any, ...]]]:
    database = warehouse_path(settings)
    script = ";\n".join(statements) + ";"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            answered = ask_query_socket(query_socket_path(database), {"script": script}, timeout_s)
        except QueryError as exc:
            raise ModelsError(f"the models run failed in the loader's process: {exc}") from exc
        if answered is not None:
            return "duckdb loader socket", _rows(answered)
        if not database.exists():
            raise NoWarehouseYet(
                f"no warehouse at {database}: run `plowline up` or `plowline load` with the duckdb loader first"
            )
        try:
            con = duckdb.connect(os.fspath(database))
        except duckdb.IOException as exc:  # a loader holds the file and its socket is not up yet
            if time.monotonic() >= deadline:
                raise ModelsError(f"the warehouse is locked and its query socket does not answer: {exc}") from exc
            time.sleep(0.2)
            continue
        try:
            return "duckdb file", _run_duckdb_file(con, statements)
        finally:
            con.close()


def _run_duckdb_file(con: duckdb.DuckDBPyConnection, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    try:
        con.execute("BEGIN TRANSACTION")
        for statement in statements[:-1]:
            con.execute(statement)
        rows = con.execute(statements[-1]).fetchall()
        con.execute("COMMIT")
        return rows
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):  # the failed statement may have ended the transaction
            con.execute("ROLLBACK")
        raise ModelsError(f"the models run failed: {exc}") from exc


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


def _summarize_brin(conn: Any, schema: str) -> None:
    """Summarize the events table's newest BRIN ranges, so the scope and high-water scans skip the rest.

    Autovacuum summarizes a range once it is full (autosummarize), but not the one being filled, nor
    any before its next pass; unsummarized ranges are always read. Summarizing needs the table's owner
    (the loader's role): without that right the run goes on, only slower.
    """
    import psycopg

    quoted = '"' + schema.replace('"', '""') + '"'
    for index in ("events_load_tstamp_brin", "events_collector_tstamp_brin"):
        try:  # to_regclass: NULL, so nothing done, for an index a loader has not created yet
            conn.execute("SELECT brin_summarize_new_values(to_regclass(%s))", [f"{quoted}.{index}"])
        except psycopg.errors.InsufficientPrivilege:
            return


def _run_postgres(settings: Settings, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    import psycopg

    dsn = settings.storage.postgres.dsn
    if not dsn:
        raise ModelsError(
            "storage.postgres.dsn is empty: set it (e.g. postgresql://user@host:5432/db) to run the models on postgres"
        )
    try:
        with psycopg.connect(
            dsn, autocommit=True, application_name="plowline models", options="-c TimeZone=UTC"
        ) as conn:
            # A session lock, taken before the transaction starts, so that a run that waited for
            # another one takes its snapshot after that one committed.
            conn.execute("SELECT pg_advisory_lock(%s, %s)", _PG_LOCK)
            try:
                _summarize_brin(conn, settings.storage.postgres.schema_name)
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                # The window functions sort whole sessions: more sort memory than the default 4 MB
                # keeps them off disk. For this transaction only.
                conn.execute("SET LOCAL work_mem = '256MB'")
                try:
                    for statement in statements[:-1]:
                        conn.execute(statement.encode())
                    rows = conn.execute(statements[-1].encode()).fetchall()
                    conn.execute("COMMIT")
                except BaseException:
                    if not conn.closed:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", _PG_LOCK)
            return rows
    except psycopg.Error as exc:
        raise ModelsError(f"the models run failed on postgres: {exc}") from exc
