"""`run_query` over the DuckDB warehouse: while another process's loader holds it, from the file, refusals, formats."""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from plowline.analytics import query
from plowline.analytics.query import QueryError, format_result, run_query
from plowline.config import Settings
from plowline.storage import duckdb as storage_duckdb

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# A loader in a child process, as `plowline up` runs it: it loads 50 events, says "ready", then
# loads `<start> <count>` more events for each line it reads, answering "written", until stdin closes.
_LOADER = textwrap.dedent("""
    import asyncio, sys, uuid
    from datetime import datetime, timedelta, UTC
    from plowline.config import Settings
    from plowline.event import EnrichedEvent
    from plowline.storage.duckdb import open_duckdb_loader

    def events(start, count):
        t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        return [EnrichedEvent(event_id=str(uuid.UUID(int=n + 1, version=4)), collector_tstamp=t0 + timedelta(seconds=n),
                              v_collector="ssc-3.2.0", v_etl="enrich-6.1.0", app_id=f"app-{n % 3}",
                              se_value=n / 4).to_tsv().encode() for n in range(start, start + count)]

    async def main():
        loader = open_duckdb_loader(Settings.model_validate({"data_dir": sys.argv[1]}), "enriched")
        await loader.write(events(0, 50))
        print("ready", flush=True)
        for line in sys.stdin:
            start, count = map(int, line.split())
            await loader.write(events(start, count))
            print("written", flush=True)
        await loader.close()

    asyncio.run(main())
""")


class LoaderProcess:
    """The child process above."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(data_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.expect("ready")

    def expect(self, word: str) -> None:
        """Read the child's output (its log lines too) up to a line that is `word`."""
        assert self.process.stdout is not None
        said: list[str] = []
        for line in self.process.stdout:
            if line.strip() == word:
                return
            said.append(line)
        pytest.fail(f"loader process exited ({self.process.wait()}) without {word!r}: {''.join(said)}")

    def load(self, start: int, count: int) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{start} {count}\n")
        self.process.stdin.flush()
        self.expect("written")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"data_dir": str(tmp_path)})


@pytest.fixture
def loader_process(tmp_path: Path) -> Iterator[LoaderProcess]:
    process = LoaderProcess(tmp_path)
    try:
        yield process
    finally:
        process.stop()
        if process.process.poll() is None:
            process.process.kill()


def _count(settings: Settings) -> int:
    _, rows = run_query(settings, "SELECT count(*) FROM atomic.events")
    return int(rows[0][0])


# --- while a loader holds the warehouse -----------------------------------------------------------


def test_a_query_returns_the_rows_while_another_process_holds_the_write_lock(
    settings: Settings, tmp_path: Path, loader_process: LoaderProcess
) -> None:
    with pytest.raises(duckdb.IOException, match="lock"):  # the file really is held
        duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)

    columns, rows = run_query(
        settings, "SELECT app_id, count(*) AS events, sum(se_value) AS value FROM atomic.events GROUP BY 1 ORDER BY 1"
    )
    assert columns == ["app_id", "events", "value"]
    assert rows == [("app-0", 17, Decimal("102.000000000")), ("app-1", 17, Decimal("106.250000000")),
                    ("app-2", 16, Decimal("98.000000000"))]

    loader_process.load(50, 25)  # the query sees each committed batch
    assert _count(settings) == 75
    _, [(first, event_id)] = run_query(
        settings, "SELECT collector_tstamp, event_id FROM atomic.events ORDER BY collector_tstamp LIMIT 1"
    )
    assert (first, event_id) == (T0.replace(tzinfo=None), "00000000-0000-4000-8000-000000000001")

    loader_process.stop()  # no loader: the file is opened read-only instead
    assert not query.query_socket_path(tmp_path / "warehouse.duckdb").exists()
    assert _count(settings) == 75


@pytest.mark.parametrize(
    "sql", ["DELETE FROM atomic.events", "DROP TABLE atomic.events", "SELECT 1; DELETE FROM atomic.events",
            "COPY atomic.events TO 'stolen.csv'"],
)
def test_a_query_that_would_write_is_refused_and_changes_nothing(
    settings: Settings, loader_process: LoaderProcess, sql: str
) -> None:
    with pytest.raises(QueryError):
        run_query(settings, sql)
    assert _count(settings) == 50


def test_a_failing_query_raises_query_error_with_duckdbs_message(settings: Settings, loader_process: LoaderProcess) -> None:
    with pytest.raises(QueryError, match="no_such_table"):
        run_query(settings, "SELECT * FROM atomic.no_such_table")


async def test_a_query_in_the_loaders_own_process_uses_its_socket(settings: Settings) -> None:
    loader = storage_duckdb.open_duckdb_loader(settings, "enriched")
    try:
        assert _count(settings) == 0
    finally:
        await loader.close()


# --- without a loader -----------------------------------------------------------------------------


def _warehouse(settings: Settings) -> None:
    with duckdb.connect(str(query.warehouse_path(settings))) as con:
        storage_duckdb.migrate(con)


def test_without_a_loader_the_file_is_opened_read_only(settings: Settings) -> None:
    _warehouse(settings)
    assert run_query(settings, "SELECT count(*) AS n FROM atomic.events") == (["n"], [(0,)])
    with pytest.raises(QueryError, match="only SELECT and EXPLAIN"):
        run_query(settings, "INSERT INTO atomic.plowline_migrations VALUES (9, 'x', now())")


def test_a_socket_left_by_a_crashed_loader_is_ignored(settings: Settings, tmp_path: Path) -> None:
    _warehouse(settings)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(query.query_socket_path(tmp_path / "warehouse.duckdb")))
    stale.close()  # the file stays; nobody listens
    assert _count(settings) == 0


def test_no_warehouse_says_how_to_make_one(settings: Settings) -> None:
    with pytest.raises(QueryError, match="plowline up"):
        run_query(settings, "SELECT 1")


def test_the_query_module_and_the_loader_agree_on_paths(tmp_path: Path) -> None:
    custom = Settings.model_validate({"data_dir": str(tmp_path), "storage": {"duckdb": {"path": str(tmp_path / "w.db")}}})
    for settings in (Settings.model_validate({"data_dir": str(tmp_path)}), custom):
        assert query.warehouse_path(settings) == storage_duckdb.warehouse_path(settings)
    for database in (tmp_path / "warehouse.duckdb", tmp_path / ("x" * 150) / "warehouse.duckdb", Path("rel.duckdb")):
        assert query.query_socket_path(database) == storage_duckdb.query_socket_path(database)


# --- output formats -------------------------------------------------------------------------------

COLUMNS = ["app_id", "n", "amount", "at", "ok", "note"]
ROWS = [("shop", 3, Decimal("39.90"), datetime(2024, 5, 1, 12, 0, 1), True, None),
        ("blog, \"news\"", 12, Decimal("-0.5"), datetime(2024, 5, 2), False, "line\nbreak")]


def test_table_format_aligns_columns_and_counts_rows() -> None:
    text = format_result(COLUMNS, ROWS, "table")
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[0].split(" | ")[0].strip() == "app_id"
    assert set(lines[1]) <= {"-", "+"}
    assert "NULL" in lines[2] and "line\\nbreak" in lines[3]
    assert len({line.index("|") for line in lines[:4] if "|" in line}) == 1
    assert lines[-1] == "(2 rows)"


def test_csv_format_round_trips_through_a_csv_reader() -> None:
    text = format_result(COLUMNS, ROWS, "csv")
    assert isinstance(text, str)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == COLUMNS
    assert rows[2] == ["blog, \"news\"", "12", "-0.5", "2024-05-02 00:00:00", "false", "line\nbreak"]
    assert rows[1][-1] == ""


def test_json_format_is_an_array_of_objects_with_exact_numbers() -> None:
    text = format_result(COLUMNS, ROWS, "json")
    assert isinstance(text, str)
    rows = orjson.loads(text)
    assert rows[0] == {"app_id": "shop", "n": 3, "amount": 39.9, "at": "2024-05-01T12:00:01Z", "ok": True, "note": None}
    assert '"amount":39.90' in text


def test_parquet_format_writes_a_file(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    data = format_result(COLUMNS, ROWS, "parquet", path)
    assert isinstance(data, bytes) and path.read_bytes() == data
    table = pq.read_table(path)
    assert table.column_names == COLUMNS
    assert table.to_pylist()[0]["amount"] == Decimal("39.90")
    assert duckdb.execute(f"SELECT count(*) FROM '{path}'").fetchall() == [(2,)]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="table, csv, json, parquet"):
        format_result(COLUMNS, ROWS, "xml")
