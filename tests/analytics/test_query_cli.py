"""Acceptance: `plowline query` as users run it, against a warehouse a real `plowline load --loader duckdb` fills.

Enriched events and bad rows go into the enriched and bad streams (file logs in a temporary data dir); a
`plowline load --loader duckdb` process loads them and holds the warehouse (DuckDB: one process may open the file,
no other may even read it). `plowline query` then answers from that process's query socket: every output format
with exact values, DuckDB's own message for a failing query, write statements refused with the data unchanged.
With the loader stopped it reads the file itself; with no warehouse at all it says how to make one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plowline.analytics.query import QueryError, query_socket_path, run_query
from plowline.badrows import Processor, generic_error, serialize
from plowline.config import Settings
from plowline.event import EnrichedEvent
from plowline.streams import open_sink
from tests.support.plowline_cli import PlowlineProcess, run_plowline

pytestmark = pytest.mark.e2e

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOAD_TIMEOUT_S = 60.0
COUNT = "SELECT count(*) AS n FROM atomic.events"


def event_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


def events(start: int, count: int) -> list[bytes]:
    """Event n: app-{n % 3}, collected at T0 + n s, se_value n / 4."""
    return [EnrichedEvent(event_id=event_id(n), collector_tstamp=T0 + timedelta(seconds=n), v_collector="ssc-3.2.0",
                          v_etl="plowline-enrich-0.1.0", app_id=f"app-{n % 3}", event="struct",
                          se_value=Decimal(n) / 4).to_tsv().encode() for n in range(start, start + count)]


def bad_rows(count: int) -> list[bytes]:
    return [serialize(generic_error(Processor("query-cli-test", "1"), [f"failure {n}"], f"input {n}"))
            for n in range(count)]


def append(data_dir: Path, stream: str, records: list[bytes]) -> None:
    """Write records into DATA_DIR/streams/<stream>, the file log the loader reads."""
    async def write() -> None:
        sink = open_sink(f"file://{data_dir / 'streams' / stream}")
        try:
            await sink.write(records)
        finally:
            await sink.close()

    asyncio.run(write())


@dataclass
class Warehouse:
    data_dir: Path
    loader: PlowlineProcess

    @property
    def settings(self) -> Settings:
        return Settings.model_validate({"data_dir": str(self.data_dir)})

    def count(self) -> int:
        return int(run_query(self.settings, COUNT)[1][0][0])

    def wait_for_count(self, expected: int) -> None:
        """Wait until the loader has committed `expected` events (asked through its socket, as the CLI does)."""
        def loaded() -> bool:
            try:
                return self.count() == expected
            except QueryError:  # not created yet
                return False

        self.loader.wait_until(loaded, LOAD_TIMEOUT_S, f"holding {expected} events")

    def query(self, sql: str, *options: str) -> tuple[int, str, str]:
        result = run_plowline(["query", "--data-dir", str(self.data_dir), *options, sql], cwd=self.data_dir.parent)
        return result.returncode, result.stdout, result.stderr


def start_loader(data_dir: Path, expected: int) -> Warehouse:
    loader = PlowlineProcess(["load", "--loader", "duckdb", "--data-dir", str(data_dir)], data_dir.parent,
                             data_dir.parent / "load.log")
    warehouse = Warehouse(data_dir, loader.start())
    try:
        warehouse.wait_for_count(expected)
    except BaseException:
        loader.kill()
        raise
    return warehouse


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """30 events and 2 bad rows in a warehouse that a running `plowline load --loader duckdb` holds."""
    data_dir = tmp_path_factory.mktemp("held") / "data"
    append(data_dir, "enriched", events(0, 30))
    append(data_dir, "bad", bad_rows(2))
    warehouse = start_loader(data_dir, 30)
    try:
        yield warehouse
        assert warehouse.loader.stop() == 0, warehouse.loader.log()
    finally:
        warehouse.loader.kill()


def one_line(stderr: str) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(stderr.split())


# --- while the loader holds the warehouse ---------------------------------------------------------------------


def test_the_warehouse_is_really_held_and_the_query_still_answers(held: Warehouse) -> None:
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(held.data_dir / "warehouse.duckdb"), read_only=True)
    assert query_socket_path(held.data_dir / "warehouse.duckdb").exists()
    code, out, err = held.query("SELECT app_id, count(*) AS events, sum(se_value) AS value FROM atomic.events "
                                "GROUP BY 1 ORDER BY 1")
    assert code == 0, err
    # app-0: n = 0, 3, …, 27 → sum n = 135 → 33.75; app-1: 145 → 36.25; app-2: 155 → 38.75.
    assert out == (
        "app_id | events | value\n"
        "-------+--------+-------------\n"
        "app-0  | 10     | 33.750000000\n"
        "app-1  | 10     | 36.250000000\n"
        "app-2  | 10     | 38.750000000\n"
        "(3 rows)\n"
    )
    code, out, err = held.query("SELECT schema, processor, count(*) AS n FROM atomic.bad_rows GROUP BY ALL", "-f", "csv")
    assert code == 0, err
    assert out == ("schema,processor,n\n"
                   "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0,query-cli-test-1,2\n")


SAMPLE = ("SELECT event_id, app_id, collector_tstamp, se_value FROM atomic.events "
          "WHERE app_id = 'app-1' ORDER BY collector_tstamp LIMIT 3")


def test_csv(held: Warehouse) -> None:
    code, out, err = held.query(SAMPLE, "--format", "csv")
    assert code == 0, err
    assert list(csv.reader(io.StringIO(out))) == [
        ["event_id", "app_id", "collector_tstamp", "se_value"],
        [event_id(1), "app-1", "2024-05-01 12:00:01", "0.250000000"],
        [event_id(4), "app-1", "2024-05-01 12:00:04", "1.000000000"],
        [event_id(7), "app-1", "2024-05-01 12:00:07", "1.750000000"],
    ]


def test_json(held: Warehouse) -> None:
    code, out, err = held.query(SAMPLE, "--format", "json")
    assert code == 0, err
    assert json.loads(out, parse_float=Decimal) == [
        {"event_id": event_id(n), "app_id": "app-1", "collector_tstamp": f"2024-05-01T12:00:0{n}Z",
         "se_value": Decimal(n) / 4} for n in (1, 4, 7)
    ]
    assert '"se_value":0.250000000' in out  # the decimal as stored, not a float


def expected_parquet(table: pa.Table) -> None:
    assert table.column_names == ["event_id", "app_id", "collector_tstamp", "se_value"]
    assert table.schema.field("collector_tstamp").type == pa.timestamp("us")
    assert table.schema.field("se_value").type == pa.decimal128(38, 9)
    assert table.to_pylist() == [
        {"event_id": event_id(n), "app_id": "app-1", "collector_tstamp": (T0 + timedelta(seconds=n)).replace(tzinfo=None),
         "se_value": Decimal(n) / 4} for n in (1, 4, 7)
    ]


def test_parquet_to_a_file_and_to_redirected_stdout(held: Warehouse, tmp_path: Path) -> None:
    target = tmp_path / "sample.parquet"
    code, out, err = held.query(SAMPLE, "--format", "parquet", "--output", str(target))
    assert (code, out) == (0, ""), err
    expected_parquet(pq.read_table(target))

    redirected = tmp_path / "stdout.parquet"
    with redirected.open("wb") as stdout:
        result = run_plowline(["query", "--data-dir", str(held.data_dir), "--format", "parquet", SAMPLE],
                              cwd=tmp_path, stdout=stdout)
    assert result.returncode == 0, result.stderr
    expected_parquet(pq.read_table(redirected))


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT no_such_column FROM atomic.events", 'Referenced column "no_such_column" not found'),
    ("SELECT * FROM atomic.no_such_table", "Table with name no_such_table does not exist"),
    ("SELEC 1", 'syntax error at or near "SELEC"'),
])
def test_a_failing_query_exits_1_with_duckdbs_message(held: Warehouse, sql: str, message: str) -> None:
    code, out, err = held.query(sql)
    assert (code, out) == (1, "")
    assert "query failed" in one_line(err) and message in one_line(err), err


@pytest.mark.parametrize(("sql", "message"), [
    ("DELETE FROM atomic.events", "only SELECT and EXPLAIN queries are allowed, not DELETE"),
    ("INSERT INTO atomic.events (event_id, collector_tstamp, v_collector, v_etl) VALUES ('x', now(), 'a', 'b')",
     "only SELECT and EXPLAIN queries are allowed, not INSERT"),
    ("UPDATE atomic.events SET app_id = 'changed'", "only SELECT and EXPLAIN queries are allowed, not UPDATE"),
    ("DROP TABLE atomic.bad_rows", "only SELECT and EXPLAIN queries are allowed, not DROP"),
    ("SELECT 1; DELETE FROM atomic.events", "give exactly one statement, not 2"),
])
def test_a_write_statement_is_refused_and_changes_nothing(held: Warehouse, sql: str, message: str) -> None:
    code, out, err = held.query(sql)
    assert (code, out) == (1, ""), err
    assert "query failed" in one_line(err) and message in one_line(err), err
    assert held.count() == 30
    assert run_query(held.settings, "SELECT count(*) FROM atomic.events WHERE app_id = 'changed'")[1] == [(0,)]
    assert run_query(held.settings, "SELECT count(*) FROM atomic.bad_rows")[1] == [(2,)]


def test_an_unknown_format_is_refused(held: Warehouse) -> None:
    code, out, err = held.query(COUNT, "--format", "xml")
    assert (code, out) == (2, "")
    assert "table, csv, json, parquet" in one_line(err), err


# --- new batches while loading, then the loader stopped; no warehouse ------------------------------------------


def test_the_query_sees_each_new_batch_and_the_file_once_the_loader_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    append(data_dir, "enriched", events(0, 20))
    warehouse = start_loader(data_dir, 20)
    try:
        append(data_dir, "enriched", [*events(20, 10), *events(0, 5)])  # 10 new, 5 redelivered
        warehouse.wait_for_count(30)
        code, out, err = warehouse.query("SELECT count(*) AS n, count(DISTINCT event_id) AS ids, max(collector_tstamp)"
                                         " AS last FROM atomic.events", "--format", "csv")
        assert code == 0, err
        assert out == "n,ids,last\n30,30,2024-05-01 12:00:29\n"
        assert warehouse.loader.stop() == 0, warehouse.loader.log()
    finally:
        warehouse.loader.kill()

    assert not query_socket_path(data_dir / "warehouse.duckdb").exists()
    code, out, err = warehouse.query("SELECT count(*) AS n, sum(se_value) AS value FROM atomic.events", "--format",
                                     "json")
    assert code == 0, err
    assert json.loads(out, parse_float=Decimal) == [{"n": 30, "value": Decimal("108.75")}]  # (0 + … + 29) / 4
    code, out, err = warehouse.query("DELETE FROM atomic.events")
    assert (code, out) == (1, "")
    assert "only SELECT and EXPLAIN" in one_line(err), err
    assert warehouse.count() == 30


def test_no_warehouse_yet_says_how_to_make_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_plowline(["query", "--data-dir", str(data_dir), COUNT], cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert "no warehouse at" in one_line(result.stderr) and "plowline up" in one_line(result.stderr), result.stderr
    assert not (data_dir / "warehouse.duckdb").exists()
