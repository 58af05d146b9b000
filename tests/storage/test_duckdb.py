"""The duckdb loader: atomic.events DDL and migrations, row-by-row fallback, a locked file, crashes, the query socket."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb
import orjson
import pytest

from plowline.config import Settings
from plowline.errors import TransportError
from plowline.event import FIELD_NAMES
from plowline.storage.duckdb import MIGRATIONS, migrate, open_duckdb_loader
from plowline.storage.duckdb_queries import QueryRefused, query_socket_path, read_only_query
from plowline.storage.rows import column_types

from .conftest import bad_rows, full_event, minimal_event, tsv


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"data_dir": str(tmp_path)})


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def _count(database: Path, table: str = "atomic.events") -> int:
    with duckdb.connect(str(database)) as con:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


class Holder:
    """Another process that holds the database file open for writing until it is stopped."""

    def __init__(self, database: Path) -> None:
        code = f"import duckdb, sys\ncon = duckdb.connect({str(database)!r})\nprint('ready', flush=True)\nsys.stdin.read()"
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"ready"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def holder(database: Path) -> Iterator[Holder]:
    held = Holder(database)
    try:
        yield held
    finally:
        if held.process.poll() is None:
            held.stop()


# --- schema ---------------------------------------------------------------------------------------


def test_the_ddl_has_the_shared_column_types() -> None:
    ddl = resources.files("plowline.storage").joinpath("sql", "duckdb.sql").read_text(encoding="utf-8")
    table = ddl[ddl.index("CREATE TABLE IF NOT EXISTS atomic.events") : ddl.index("PRIMARY KEY (event_id")]
    declared = re.findall(r"^    ([a-z_0-9]+)\s+(.+?)(?: NOT NULL)?,$", table, re.MULTILINE)
    assert declared[: len(FIELD_NAMES)] == list(column_types("duckdb"))
    assert [name for name, _ in declared[len(FIELD_NAMES) :]] == ["event_fingerprint_key", "load_tstamp"]


async def test_the_tables_have_typed_columns_json_and_the_dedupe_key(settings: Settings, database: Path) -> None:
    loader = open_duckdb_loader(settings, "enriched")
    await loader.write(tsv(full_event()))
    await loader.close()

    with duckdb.connect(str(database)) as con:
        types = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'atomic'"
            " AND table_name = 'events'").fetchall())
        assert len(types) == 133
        assert (types["collector_tstamp"], types["event_id"], types["contexts"]) == ("TIMESTAMP", "UUID", "JSON")
        assert (types["txn_id"], types["tr_total"], types["dvce_ismobile"]) == ("INTEGER", "DECIMAL(38,9)", "BOOLEAN")
        [key] = con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = 'events'"
            " AND constraint_type = 'PRIMARY KEY'").fetchall()
        assert key == (["event_id", "event_fingerprint_key"],)
        [(schema, vendor)] = con.execute(
            "SELECT contexts->>'$.schema', unstruct_event->'$.data'->>'$.schema' FROM atomic.events").fetchall()
        assert schema.endswith("/contexts/jsonschema/1-0-1") and vendor.endswith("/link_click/jsonschema/1-0-1")


def test_migrations_apply_once(database: Path) -> None:
    with duckdb.connect(str(database)) as con:
        assert migrate(con) == [m.version for m in MIGRATIONS]
        assert migrate(con) == []
        assert con.execute("SELECT version FROM atomic.plowline_migrations").fetchall() == [(1,)]


async def test_opening_an_existing_warehouse_keeps_its_rows(settings: Settings, database: Path) -> None:
    first = open_duckdb_loader(settings, "enriched")
    await first.write(tsv(minimal_event(1)))
    await first.close()
    second = open_duckdb_loader(settings, "enriched")
    await second.write(tsv(minimal_event(2)))
    await second.close()
    assert _count(database) == 2


# --- loading --------------------------------------------------------------------------------------


async def test_a_batch_with_a_row_duckdb_refuses_is_loaded_row_by_row(settings: Settings, database: Path) -> None:
    not_a_uuid = minimal_event(2, event_id="not-a-uuid")
    loader = open_duckdb_loader(settings, "enriched")
    await loader.write(tsv(minimal_event(1), not_a_uuid, minimal_event(3)))
    await loader.write(tsv(minimal_event(1), not_a_uuid, minimal_event(3)))  # and redelivery stays harmless
    await loader.close()

    assert _count(database) == 2
    with duckdb.connect(str(database)) as con:
        [(data,)] = con.execute("SELECT data FROM atomic.bad_rows").fetchall()
    failure = orjson.loads(data)["data"]["failure"]
    assert "DuckDB refused the row" in failure["errors"][0]["message"]
    assert "not-a-uuid" in orjson.loads(data)["data"]["payload"]


async def test_the_enriched_and_bad_loaders_share_one_connection(settings: Settings, database: Path) -> None:
    enriched, bad = open_duckdb_loader(settings, "enriched"), open_duckdb_loader(settings, "bad")
    assert enriched._warehouse is bad._warehouse
    await enriched.write(tsv(minimal_event(1)))
    await bad.write(bad_rows(2))
    await enriched.close()
    assert query_socket_path(database).exists()  # still serving: the bad loader is open
    await bad.close()
    assert not query_socket_path(database).exists()
    assert not database.with_name(database.name + ".wal").exists()  # checkpointed on close
    assert (_count(database), _count(database, "atomic.bad_rows")) == (1, 2)


@pytest.mark.parametrize(("option", "setting", "configured", "expected"), [
    ("checkpoint_threshold_mb", "checkpoint_threshold", None, "256.0 MiB"),
    ("checkpoint_threshold_mb", "checkpoint_threshold", 64, "64.0 MiB"),
    ("threads", "threads", None, 1),
    ("threads", "threads", 2, 2),
])
async def test_duckdb_runs_with_the_configured_settings(
    tmp_path: Path, database: Path, option: str, setting: str, configured: int | None, expected: object
) -> None:
    storage = {} if configured is None else {"duckdb": {option: configured}}
    loader = open_duckdb_loader(Settings.model_validate({"data_dir": str(tmp_path), "storage": storage}), "enriched")
    try:
        await loader.write(tsv(minimal_event(1)))
        assert loader._warehouse is not None
        row = loader._warehouse.con.execute(f"SELECT current_setting('{setting}')").fetchone()
        assert row is not None and row[0] == expected
    finally:
        await loader.close()
    assert _count(database) == 1


def test_a_checkpoint_threshold_below_one_mb_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_threshold_mb"):
        Settings.model_validate({"data_dir": str(tmp_path), "storage": {"duckdb": {"checkpoint_threshold_mb": 0}}})


def test_a_write_returns_only_when_it_survives_a_crash(tmp_path: Path, database: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from plowline.config import Settings
        from plowline.storage.duckdb import open_duckdb_loader
        from tests.storage.conftest import minimal_event, tsv
        async def main():
            loader = open_duckdb_loader(Settings.model_validate({{"data_dir": {str(tmp_path)!r}}}), "enriched")
            await loader.write(tsv(*(minimal_event(n) for n in range(100))))
            os._exit(0)  # no close, no checkpoint
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    assert _count(database) == 100


async def test_a_file_locked_by_another_process_fails_writes_until_it_is_free(
    settings: Settings, database: Path, holder: Holder
) -> None:
    loader = open_duckdb_loader(settings, "enriched")  # does not raise: the first write tries again
    for _ in range(2):
        with pytest.raises(TransportError, match="lock"):
            await loader.write(tsv(minimal_event(1)))
        assert not loader.healthy()

    holder.stop()
    await loader.write(tsv(minimal_event(1)))
    assert loader.healthy()
    await loader.close()
    assert _count(database) == 1


# --- the query socket -----------------------------------------------------------------------------


async def test_the_query_socket_is_private_to_the_user(settings: Settings, database: Path) -> None:
    loader = open_duckdb_loader(settings, "enriched")
    try:
        mode = query_socket_path(database).stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    finally:
        await loader.close()


def test_a_socket_path_too_long_for_unix_sockets_moves_to_the_temp_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / "warehouse.duckdb"
    path = query_socket_path(deep)
    assert len(str(path)) < 100 and path.name.startswith("plowline-")
    assert path == query_socket_path(deep) != query_socket_path(tmp_path / ("e" * 120) / "warehouse.duckdb")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO atomic.bad_rows VALUES ('x', 's', NULL, NULL, '{}', now())", "not INSERT"),
        ("DELETE FROM atomic.events", "not DELETE"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("CALL checkpoint()", "not CALL"),
        ("COPY atomic.events TO 'out.csv'", "not COPY"),
        ("ATTACH 'other.duckdb'", "not ATTACH"),
        ("SET threads = 1", "not SET"),
    ],
)
def test_only_one_read_only_statement_runs(database: Path, sql: str, message: str) -> None:
    with duckdb.connect(str(database)) as con:
        migrate(con)
        with pytest.raises(QueryRefused, match=message):
            read_only_query(con.cursor(), sql)


def test_a_select_that_writes_is_stopped_by_the_read_only_transaction(database: Path) -> None:
    with duckdb.connect(str(database)) as con:
        migrate(con)
        con.execute("CREATE SEQUENCE atomic.counter")
        with pytest.raises(duckdb.Error, match="read-only"):
            read_only_query(con.cursor(), "SELECT nextval('atomic.counter')")
        assert read_only_query(con.cursor(), "EXPLAIN SELECT 1").num_rows >= 1
