"""The parquet loader: typed standard Parquet read back by DuckDB and pyarrow, atomic files, dedupe from the files."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from plowline.config import Settings
from plowline.errors import TransportError
from plowline.event import FIELD_NAMES, EnrichedEvent
from plowline.storage import open_loader
from plowline.storage.parquet import (
    BAD_ROWS_SCHEMA,
    EVENTS_SCHEMA,
    ParquetLoader,
    _row_by_row,
    enriched_table,
)

from .conftest import bad_rows, expected_enriched, full_event, minimal_event, normalize_enriched, tsv


def _files(root: Path, table: str = "events") -> list[Path]:
    """The Parquet files of a table, or with table "*" every file under root."""
    if table == "*":
        return sorted(path for path in root.rglob("*") if path.is_file())
    return sorted((root / table).rglob("*.parquet"))


def _on(day: int, number: int = 0, **changes: Any) -> EnrichedEvent:
    return minimal_event(number, collector_tstamp=datetime(2024, 5, day, 23, 59, 59, 999000, tzinfo=UTC), **changes)


# --- types and readers ----------------------------------------------------------------------------


async def test_files_have_the_documented_standard_types(tmp_path: Path) -> None:
    await ParquetLoader(tmp_path, "enriched").write(tsv(full_event()))
    [path] = _files(tmp_path)

    assert pq.read_schema(path).remove_metadata() == EVENTS_SCHEMA.remove_metadata()
    parquet_schema = pq.ParquetFile(path).schema
    logical = {parquet_schema.column(i).name: str(parquet_schema.column(i).logical_type)
               for i in range(len(parquet_schema))}
    physical = {parquet_schema.column(i).name: parquet_schema.column(i).physical_type
                for i in range(len(parquet_schema))}
    assert logical["collector_tstamp"].startswith("Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds")
    assert physical["collector_tstamp"] == "INT64"  # not the legacy INT96
    assert logical["tr_total"] == "Decimal(precision=38, scale=9)"
    assert (physical["txn_id"], physical["geo_latitude"], physical["br_cookies"]) == ("INT32", "DOUBLE", "BOOLEAN")
    assert logical["contexts"] == logical["event_id"] == "String"  # no JSON/UUID logical types
    assert pq.ParquetFile(path).metadata.format_version == "2.6"


async def test_duckdb_reads_the_lake_with_its_types_and_values(tmp_path: Path) -> None:
    event = full_event()
    loader = ParquetLoader(tmp_path, "enriched")
    await loader.write(tsv(event, _on(2, 1), _on(3, 2)))

    con = duckdb.connect()
    relation = con.sql(f"SELECT * FROM read_parquet('{tmp_path}/events/**/*.parquet', hive_partitioning=true)")
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert types["collector_tstamp"] == "TIMESTAMP WITH TIME ZONE"
    assert (types["txn_id"], types["geo_latitude"], types["se_value"]) == ("INTEGER", "DOUBLE", "DECIMAL(38,9)")
    assert (types["br_cookies"], types["contexts"], types["date"]) == ("BOOLEAN", "VARCHAR", "DATE")
    rows = relation.to_arrow_table().to_pylist()
    assert len(rows) == 3
    [stored] = [row for row in rows if row["event_id"] == event.event_id]
    assert normalize_enriched(stored) == expected_enriched(event)
    [(schema,)] = con.sql(
        f"SELECT contexts::JSON->>'$.schema' FROM read_parquet('{tmp_path}/events/**/*.parquet')"
        f" WHERE event_id = '{event.event_id}'"
    ).fetchall()
    assert schema.endswith("/contexts/jsonschema/1-0-1")


async def test_pyarrow_reads_the_lake_as_a_partitioned_dataset(tmp_path: Path) -> None:
    loader = ParquetLoader(tmp_path, "enriched")
    await loader.write(tsv(*(_on(1 + number % 3, number) for number in range(30))))
    await loader.write(tsv(full_event()))

    dataset = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 31
    assert table.schema.field("collector_tstamp").type == pa.timestamp("ms", tz="UTC")
    days = dataset.to_table(filter=ds.field("date") == "2024-05-02").num_rows
    assert days == 10
    [stored] = [row for row in table.to_pylist() if row["event_id"] == full_event().event_id]
    assert normalize_enriched(stored) == expected_enriched(full_event())


async def test_events_are_partitioned_by_collector_date_and_bad_rows_by_failure_date(tmp_path: Path) -> None:
    enriched, bad = ParquetLoader(tmp_path, "enriched"), ParquetLoader(tmp_path, "bad")
    await enriched.write(tsv(_on(1, 1), _on(2, 2), _on(1, 3)))
    await bad.write(bad_rows(2))

    assert [path.parent.name for path in _files(tmp_path)] == ["date=2024-05-01", "date=2024-05-02"]
    [bad_file] = _files(tmp_path, "bad_rows")
    assert bad_file.parent.name == "date=2024-05-01"  # the rows' failure timestamps (conftest's T0)
    stored = pq.read_table(bad_file)
    assert stored.schema.remove_metadata() == BAD_ROWS_SCHEMA.remove_metadata()
    assert sorted(stored.column("data").to_pylist()) == sorted(row.decode() for row in bad_rows(2))


# --- conversion -----------------------------------------------------------------------------------


def test_the_fast_path_gives_the_same_table_as_row_by_row_conversion() -> None:
    lines = tsv(full_event(), minimal_event(1), minimal_event(2, event_fingerprint=None, br_cookies=False),
                minimal_event(3, tr_total=Decimal("-12.5"), geo_latitude=-0.0, page_title="tab\there"))
    fast = enriched_table(lines)
    slow = _row_by_row(lines)
    assert fast.rejected == slow.rejected == []
    assert fast.table.equals(slow.table)
    assert fast.lines == slow.lines == lines


def test_decimals_with_more_than_nine_places_are_rounded_half_even() -> None:
    converted = enriched_table(tsv(minimal_event(1, se_value=Decimal("0.30000000000000004"),
                                                 tr_total=Decimal("2.0000000005"))))
    assert converted.table.column("se_value").to_pylist() == [Decimal("0.300000000")]
    assert converted.table.column("tr_total").to_pylist() == [Decimal("2.000000000")]


def test_values_that_do_not_fit_become_loader_parsing_errors() -> None:
    too_big = minimal_event(1).to_tsv().split("\t")
    too_big[FIELD_NAMES.index("txn_id")] = str(2**31)
    no_event_id = minimal_event(2).to_tsv().split("\t")
    no_event_id[FIELD_NAMES.index("event_id")] = ""
    converted = enriched_table(["\t".join(too_big).encode(), "\t".join(no_event_id).encode(), b"x", *tsv(minimal_event(3))])

    assert converted.table.num_rows == 1
    messages = [orjson.loads(row)["data"]["failure"] for row in converted.rejected]
    assert "txn_id 2147483648 does not fit a 32-bit integer" in str(messages[0])
    assert "event_id is empty" in str(messages[1])
    assert messages[2] == {"type": "NotTSV"}


async def test_lines_that_are_not_events_are_stored_as_bad_rows(tmp_path: Path) -> None:
    await ParquetLoader(tmp_path, "enriched").write([b"junk", *tsv(minimal_event(1))])
    assert pq.read_table(_files(tmp_path)[0]).num_rows == 1
    [bad] = pq.read_table(_files(tmp_path, "bad_rows")[0]).to_pylist()
    assert bad["schema"].endswith("/loader_parsing_error/jsonschema/2-0-0")


# --- durability -----------------------------------------------------------------------------------


async def test_a_failed_write_leaves_no_file_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = ParquetLoader(tmp_path, "enriched")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(TransportError):
        await loader.write(tsv(minimal_event(1)))
    monkeypatch.undo()

    assert [path.name for path in _files(tmp_path, "*")] == []
    await loader.write(tsv(minimal_event(1)))
    assert len(_files(tmp_path)) == 1


async def test_a_temporary_file_left_by_a_crash_is_ignored_then_removed(tmp_path: Path) -> None:
    partition = tmp_path / "events" / "date=2024-05-01"
    partition.mkdir(parents=True)
    stale = partition / ".part-deadbeef0000-000001.parquet.1234abcd.tmp"
    stale.write_bytes(b"PAR1 half a file")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    await ParquetLoader(tmp_path, "enriched").write(tsv(minimal_event(1)))
    assert not stale.exists()
    assert duckdb.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/events/**/*.parquet')").fetchall() == [(1,)]


# --- dedupe ---------------------------------------------------------------------------------------


async def test_a_writer_sees_what_another_writer_stored_since(tmp_path: Path) -> None:
    one, other = ParquetLoader(tmp_path, "enriched"), ParquetLoader(tmp_path, "enriched")
    await one.write(tsv(minimal_event(1)))
    await other.write(tsv(minimal_event(2)))
    await one.write(tsv(minimal_event(3)))
    await other.write(tsv(minimal_event(1), minimal_event(3), minimal_event(4)))

    ids = pa.concat_tables([pq.read_table(path) for path in _files(tmp_path)]).column("event_id").to_pylist()
    assert sorted(ids) == sorted(str(minimal_event(n).event_id) for n in (1, 2, 3, 4))


async def test_a_late_redelivery_into_a_partition_no_longer_in_memory_is_deduplicated(tmp_path: Path) -> None:
    loader = ParquetLoader(tmp_path, "enriched")
    for day in range(1, 8):
        await loader.write(tsv(_on(day, day)))
    await loader.write(tsv(_on(1, 1), _on(2, 2)))
    assert len(_files(tmp_path)) == 7


async def test_bad_rows_without_a_timestamp_are_deduplicated_against_yesterday(tmp_path: Path) -> None:
    moment = [datetime(2026, 1, 2, 23, 59, tzinfo=UTC)]
    loader = ParquetLoader(tmp_path, "bad", clock=lambda: moment[0])
    await loader.write([b"not json at all"])
    moment[0] += timedelta(minutes=2)
    await ParquetLoader(tmp_path, "bad", clock=lambda: moment[0]).write([b"not json at all", b"another"])

    rows = [row for path in _files(tmp_path, "bad_rows") for row in pq.read_table(path).to_pylist()]
    assert len(rows) == 2
    assert {orjson.loads(row["data"])["schema"].rsplit("/", 3)[1] for row in rows} == {"generic_error"}


async def test_open_parquet_loader_defaults_to_the_lake_in_the_data_dir(tmp_path: Path) -> None:
    loader = open_loader("parquet", Settings.model_validate({"data_dir": str(tmp_path)}), "enriched")
    await loader.write(tsv(minimal_event(1)))
    assert [path.relative_to(tmp_path).parts[:3] for path in _files(tmp_path, "*")] == [
        ("lake", "events", "date=2024-05-01")
    ]
