"""The `parquet` loader: enriched events and bad rows as typed Parquet files in a lake partitioned by date.

Layout (Hive-style; DuckDB `read_parquet('…/events/**/*.parquet', hive_partitioning=true)`, Spark,
Trino and pandas read it as one table; files starting with `.` or `_` are ignored by them):

    ROOT/events/date=YYYY-MM-DD/part-<writer>-<seq>.parquet      by the event's collector_tstamp (UTC)
    ROOT/bad_rows/date=YYYY-MM-DD/part-<writer>-<seq>.parquet    by the bad row's failure timestamp
                                                                 (its load time if it has none)

ROOT is storage.parquet.path (default DATA_DIR/lake), a local directory or any fsspec URL (s3://…).
Each `write` adds one new file per partition it touches. Locally the file is written under a
hidden temporary name, fsynced, renamed into place and its directory fsynced, so a reader sees a
whole file or nothing and a returned write survives a crash; remotely it is one object upload.

Columns (standard Parquet types only, so every engine reads them): the 131 enriched fields in TSV
order, then `load_tstamp`. Timestamps are timestamp[ms, UTC] (INT64 TIMESTAMP_MILLIS, adjusted to
UTC); integers int32 (Snowplow's atomic schema is Java int); geo_latitude/longitude float64;
se_value, tr_*, ti_price and the *_base amounts decimal128(38, 9), the DuckDB warehouse's type,
exact for every currency (a value with more than 9 decimal places is rounded half-even to 9; the
TSV archive keeps it exact); booleans boolean; strings, event_id and the three JSON columns (the
TSV's whole self-describing JSON text) UTF-8 strings. Bad rows: row_hash, schema, failure_tstamp,
processor, data (the whole JSON), loaded_at.

Dedupe (redelivery is harmless): the Parquet files are their own manifest. Before writing into a
partition the loader reads the key columns (event_id, event_fingerprint / row_hash) of every file
there that it has not read yet (only those two columns are read), and skips rows whose key is
already stored or earlier in the batch. Because a file appears only whole (rename / one upload),
data and keys are committed together: there is no window in which data is stored but its keys
are not. Enriched events always land in their collector_tstamp date, so dedupe is exact for any
redelivery however late, across restarts and across writers, except for one event written at
the same moment by two writers. Keys are per partition: the same event collected on two days (a
tracker retrying after midnight) is kept twice; the warehouses key on (event_id,
event_fingerprint) alone. Bad rows are exact the same way when they carry a failure
timestamp (every Snowplow bad row does); one without is checked against the current and the
previous load date only. The key sets of the 3 most recent partitions stay in memory (16 bytes
per key plus set overhead); an older one is read back from its files when a late event reaches it.

Enriched lines that are not events, or whose values do not fit their column, become
`loader_parsing_error` bad rows in ROOT/bad_rows, so nothing is lost. `enriched_table` and
`bad_rows_table` (the typed Arrow conversion) are shared with the DuckDB loader.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from plowline.config import Settings
from plowline.errors import ConfigError
from plowline.event import FIELD_KINDS, FIELD_NAMES, FieldKind
from plowline.event_format import parse_contexts, parse_unstruct
from plowline.observability import get_logger
from plowline.storage.base import Kind
from plowline.storage.file_store import FileStore, KeyDigest, StoreLoader, enriched_key
from plowline.storage.rows import (
    ENRICHED_COLUMNS,
    JSON_COLUMNS,
    RowError,
    bad_row,
    enriched_row,
    loader_parsing_error,
    unhandled_failure,
)

__all__ = [
    "BAD_ROWS_SCHEMA",
    "ENRICHED_SCHEMA",
    "EVENTS_SCHEMA",
    "Converted",
    "ParquetLoader",
    "bad_rows_table",
    "enriched_table",
    "open_parquet_loader",
]

log = get_logger("storage.parquet")

_ARROW_TYPES: dict[FieldKind, pa.DataType] = {
    FieldKind.STRING: pa.string(),
    FieldKind.INTEGER: pa.int32(),
    FieldKind.FLOAT: pa.float64(),
    FieldKind.DECIMAL: pa.decimal128(38, 9),
    FieldKind.BOOLEAN: pa.bool_(),
    FieldKind.TIMESTAMP: pa.timestamp("ms", tz="UTC"),
    FieldKind.JSON: pa.string(),
}

#: The 131 enriched columns as Arrow types, in TSV order (what `enriched_table` returns).
ENRICHED_SCHEMA: pa.Schema = pa.schema(
    [pa.field(column.name, _ARROW_TYPES[column.kind], nullable=not column.not_null) for column in ENRICHED_COLUMNS]
)
#: The columns of the lake's event files: the 131, then when the row was written.
EVENTS_SCHEMA: pa.Schema = ENRICHED_SCHEMA.append(pa.field("load_tstamp", pa.timestamp("ms", tz="UTC"), False))
#: The columns of a stored bad row (what `bad_rows_table` returns, and the lake's bad-row files).
BAD_ROWS_SCHEMA: pa.Schema = pa.schema([
    pa.field("row_hash", pa.string(), False),  # sha256 of the line: the dedupe key
    pa.field("schema", pa.string(), False),
    pa.field("failure_tstamp", pa.timestamp("ms", tz="UTC")),
    pa.field("processor", pa.string()),
    pa.field("data", pa.string(), False),  # the whole self-describing bad row, JSON text
    pa.field("loaded_at", pa.timestamp("ms", tz="UTC"), False),
])

_TABS = len(FIELD_NAMES) - 1
_UNSTRUCT = FIELD_NAMES.index("unstruct_event")
_INTEGERS = tuple(i for i, kind in enumerate(FIELD_KINDS.values()) if kind is FieldKind.INTEGER)
_DECIMALS = tuple(i for i, kind in enumerate(FIELD_KINDS.values()) if kind is FieldKind.DECIMAL)
_NOT_NULL = tuple(i for i, column in enumerate(ENRICHED_COLUMNS) if column.not_null)
_INT32 = range(-(2**31), 2**31)
_SCALE = Decimal("1e-9")
_DECIMAL_LIMIT = Decimal(10) ** 29  # decimal128(38, 9): 29 digits before the point
_CACHED_PARTITIONS = 3

# Snowplow's TSV has no quoting and no escaping; an empty column is null.
_CSV_READ = pa_csv.ReadOptions(column_names=list(FIELD_NAMES), use_threads=True, block_size=1 << 24)
_CSV_PARSE = pa_csv.ParseOptions(
    delimiter="\t", quote_char=False, escape_char=False, double_quote=False, newlines_in_values=False
)
_CSV_CONVERT = pa_csv.ConvertOptions(
    # Timestamps are read zoneless (the TSV has no offset), then cast to UTC: a cast that keeps the instant.
    column_types={
        name: pa.timestamp("ms") if kind is FieldKind.TIMESTAMP else _ARROW_TYPES[kind]
        for name, kind in FIELD_KINDS.items()
    },
    null_values=[""],
    strings_can_be_null=True,
    true_values=["1"],
    false_values=["0"],
    check_utf8=True,
)


class Converted(NamedTuple):
    """Lines as a typed Arrow table, and the bad rows (JSON lines) for lines that could not be."""

    table: pa.Table
    rejected: list[bytes]
    lines: list[bytes]  # the line of each table row

# --- enriched lines → Arrow ---------------------------------------------------------------------------


def enriched_table(lines: Sequence[bytes]) -> Converted:
    """The typed table (ENRICHED_SCHEMA) of enriched TSV lines; lines that are not events, or whose
    values do not fit their column type, come back as loader_parsing_error bad rows instead.

    Values are exactly those of `rows.enriched_row`. The fast path hands the whole batch to Arrow's
    C++ CSV reader; a batch it refuses, or with any line the cheap checks flag, is converted line
    by line with `enriched_row`, which names what is wrong with each bad line.
    """
    lines = [line.rstrip(b"\r\n") for line in lines]
    if not lines:
        return Converted(ENRICHED_SCHEMA.empty_table(), [], [])
    if all(_fast_path_ok(line) for line in lines):
        with contextlib.suppress(pa.ArrowInvalid):
            table = pa_csv.read_csv(
                pa.py_buffer(b"\n".join(lines) + b"\n"),
                read_options=_CSV_READ,
                parse_options=_CSV_PARSE,
                convert_options=_CSV_CONVERT,
            )
            if table.num_rows == len(lines) and all(table.column(i).null_count == 0 for i in _NOT_NULL):
                return Converted(table.cast(ENRICHED_SCHEMA), [], lines)
    return _row_by_row(lines)


def _fast_path_ok(line: bytes) -> bool:
    """131 columns, no line break, and JSON columns that `enriched_row` keeps as they are."""
    if line.count(b"\t") != _TABS or b"\r" in line or b"\n" in line:
        return False
    columns = line.split(b"\t")
    for index in JSON_COLUMNS:
        text = columns[index]
        if text:
            try:
                value = (parse_unstruct if index == _UNSTRUCT else parse_contexts)(text.decode())
            except (ValueError, UnicodeDecodeError, orjson.JSONDecodeError):
                return False
            if value is None:  # an empty contexts array: enriched_row reads it as null
                return False
    return True


def _row_by_row(lines: list[bytes]) -> Converted:
    good: list[tuple[Any, ...]] = []
    kept: list[bytes] = []
    rejected: list[bytes] = []
    for line in lines:
        try:
            values = enriched_row(line)
        except RowError as exc:
            rejected.append(exc.bad_row)
            continue
        fitted, problem = _fit(values)
        if problem is not None:
            rejected.append(loader_parsing_error(line, unhandled_failure(problem)))
            continue
        good.append(fitted)
        kept.append(line)
    if not good:
        return Converted(ENRICHED_SCHEMA.empty_table(), rejected, [])
    columns = list(zip(*good, strict=True))
    arrays = [pa.array(values, type=f.type) for values, f in zip(columns, ENRICHED_SCHEMA, strict=True)]
    return Converted(pa.Table.from_arrays(arrays, schema=ENRICHED_SCHEMA), rejected, kept)


def _fit(values: tuple[Any, ...]) -> tuple[tuple[Any, ...], str | None]:
    """The values made to fit their Arrow types, or why they cannot."""
    for index in _NOT_NULL:
        if values[index] is None:
            return values, f"{FIELD_NAMES[index]} is empty"
    for index in _INTEGERS:
        if values[index] is not None and values[index] not in _INT32:
            return values, f"{FIELD_NAMES[index]} {values[index]} does not fit a 32-bit integer"
    adjusted: list[Any] | None = None
    for index in _DECIMALS:
        value = values[index]
        if value is None:
            continue
        if not value.is_finite() or abs(value) >= _DECIMAL_LIMIT:
            return values, f"{FIELD_NAMES[index]} {value} does not fit decimal(38, 9)"
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -9:
            adjusted = adjusted or list(values)
            adjusted[index] = value.quantize(_SCALE, rounding=ROUND_HALF_EVEN)
    return (tuple(adjusted) if adjusted is not None else values), None


# --- bad-row lines → Arrow ----------------------------------------------------------------------------


def bad_rows_table(lines: Sequence[bytes], loaded_at: datetime | None = None) -> pa.Table:
    """The BAD_ROWS_SCHEMA table of bad-row JSON lines (never fails; see `rows.bad_row`)."""
    moment = loaded_at or datetime.now(UTC)
    values = [bad_row(line) for line in lines]
    return pa.Table.from_arrays(
        [
            pa.array([row.row_hash for row in values], pa.string()),
            pa.array([row.schema for row in values], pa.string()),
            pa.array([row.failure_tstamp for row in values], pa.timestamp("ms", tz="UTC")),
            pa.array([row.processor for row in values], pa.string()),
            pa.array([row.data for row in values], pa.string()),
            pa.array([moment] * len(values), pa.timestamp("ms", tz="UTC")),
        ],
        schema=BAD_ROWS_SCHEMA,
    )


# --- the loader ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _PartitionKeys:
    keys: set[KeyDigest] = field(default_factory=set)
    files: set[str] = field(default_factory=set)  # files whose keys are in `keys`


class ParquetLoader(StoreLoader[_PartitionKeys]):
    """A Loader into the Parquet lake for one kind of record; see the module docstring."""

    name: ClassVar[str] = "parquet"
    max_record_bytes: int = 10_000_000

    def __init__(
        self,
        root: str | Path,
        kind: Kind,
        *,
        storage_options: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if kind not in ("enriched", "bad"):
            raise ValueError(f"kind must be 'enriched' or 'bad', not {kind!r}")
        super().__init__()
        self.kind: Kind = kind
        self.store = FileStore(str(root), storage_options)
        self.writer_id = uuid.uuid4().hex[:12]
        self._clock = clock
        self._sequence = 0
        self._partitions: OrderedDict[str, _PartitionKeys] = OrderedDict()

    # --- writing --------------------------------------------------------------------------------

    def _write(self, records: list[bytes]) -> None:
        now = self._clock()
        if self.kind == "bad":
            self._write_bad(bad_rows_table(records, now), now)
            return
        converted = enriched_table(records)
        table = converted.table
        if table.num_rows:
            ids = table.column("event_id").to_pylist()
            fingerprints = table.column("event_fingerprint").to_pylist()
            keys = [enriched_key(event_id, print_) for event_id, print_ in zip(ids, fingerprints, strict=True)]
            days = table.column("collector_tstamp").cast(pa.date32()).to_pylist()
            loaded = pa.array([now] * table.num_rows, pa.timestamp("ms", tz="UTC"))
            table = table.append_column(EVENTS_SCHEMA.field("load_tstamp"), loaded)
            self._store(table, keys, [f"events/date={day:%Y-%m-%d}" for day in days], {})
        if converted.rejected:
            log.warning("enriched lines stored as bad rows", root=self.store.url, count=len(converted.rejected))
            self._write_bad(bad_rows_table(converted.rejected, now), now)

    def _write_bad(self, table: pa.Table, now: datetime) -> None:
        keys = [bytes.fromhex(row_hash)[:16] for row_hash in table.column("row_hash").to_pylist()]
        failed = table.column("failure_tstamp").to_pylist()
        today, yesterday = f"bad_rows/date={now:%Y-%m-%d}", f"bad_rows/date={now - timedelta(days=1):%Y-%m-%d}"
        partitions = [today if moment is None else f"bad_rows/date={moment:%Y-%m-%d}" for moment in failed]
        self._store(table, keys, partitions, {today: yesterday})

    def _store(self, table: pa.Table, keys: list[KeyDigest], partitions: list[str], also: dict[str, str]) -> None:
        """Write each partition's new rows as one file. `also` names, for a partition, another whose
        keys count as stored too (bad rows without a timestamp: yesterday's load date)."""
        rows: dict[str, list[int]] = {}
        for index, partition in enumerate(partitions):
            rows.setdefault(partition, []).append(index)
        for partition, indices in rows.items():
            known = [self._refresh(partition)]
            if partition in also:
                known.append(self._refresh(also[partition]))
            seen: set[KeyDigest] = set()
            fresh: list[int] = []
            for index in indices:
                key = keys[index]
                if key in seen or any(key in state.keys for state in known):
                    continue
                seen.add(key)
                fresh.append(index)
            if not fresh:
                continue
            self._sequence += 1
            name = f"part-{self.writer_id}-{self._sequence:06d}.parquet"
            self.store.put(f"{partition}/{name}", _parquet_bytes(table.take(fresh)))
            known[0].keys.update(seen)
            known[0].files.add(name)

    def _refresh(self, partition: str) -> _PartitionKeys:
        """The partition's key set, with the keys of files other writers added since."""
        state = self._partitions.pop(partition, None)
        first = state is None
        state = state or _PartitionKeys()
        self._partitions[partition] = state
        while len(self._partitions) > _CACHED_PARTITIONS:
            self._partitions.popitem(last=False)
        names = self.store.sizes(partition)
        columns = ["event_id", "event_fingerprint"] if partition.startswith("events/") else ["row_hash"]
        for name in names:
            if first and self.store.local and name.startswith(".part-") and name.endswith(".tmp"):
                _remove_stale(Path(self.store.full(f"{partition}/{name}")))
            if "/" in name or not name.startswith("part-") or not name.endswith(".parquet") or name in state.files:
                continue
            with self.store.fs.open(self.store.full(f"{partition}/{name}"), "rb") as handle:
                keys = pq.ParquetFile(handle).read(columns=columns)
            if len(columns) == 2:
                pairs = zip(keys.column(0).to_pylist(), keys.column(1).to_pylist(), strict=True)
                state.keys.update(enriched_key(event_id, fingerprint) for event_id, fingerprint in pairs)
            else:
                state.keys.update(bytes.fromhex(row_hash)[:16] for row_hash in keys.column(0).to_pylist())
            state.files.add(name)
        return state


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    # Snappy and Parquet format 2.6: what every engine (Spark 3, Trino, DuckDB, pandas) reads.
    pq.write_table(table, buffer, compression="snappy", version="2.6", coerce_timestamps="ms")
    return buffer.getvalue()


def _remove_stale(path: Path, older_than_s: float = 3600.0) -> None:
    """Remove a temporary file a crashed writer left (an hour old: no live writer still owns it)."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > older_than_s:
            path.unlink()
            log.info("stale temporary file removed", path=str(path))


def open_parquet_loader(settings: Settings, kind: Kind) -> ParquetLoader:
    """Open the parquet loader for `kind` at storage.parquet.path (default DATA_DIR/lake)."""
    config = settings.storage.parquet
    root = config.path or os.fspath(settings.data_dir / "lake")
    try:
        return ParquetLoader(root, kind, storage_options=dict(config.storage_options))
    except (ValueError, ImportError) as exc:
        raise ConfigError("storage.parquet.path", f"{root!r} cannot be opened: {exc}",
                          "give a local directory or an s3://bucket/prefix URL (with s3fs installed)") from exc
