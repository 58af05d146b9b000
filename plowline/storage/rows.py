"""Enriched TSV lines and bad-row JSON lines as typed rows, with their SQL column types, for every typed loader.

Shared by the PostgreSQL, DuckDB and Parquet loaders so that all of them store the same values:

* `enriched_row(line)` → the 131 values in TSV order, typed as `EnrichedEvent.from_tsv` reads them
  (str, int, float, Decimal with its scale, bool, timezone-aware UTC datetime), except the three JSON
  columns, which stay the full self-describing JSON text the TSV holds (contexts wrapped in
  `contexts/1-0-1`, unstruct_event in `unstruct_event/1-0-0`), ready for a JSON/JSONB column. A
  line that is not an enriched event raises `RowError`, which carries a `loader_parsing_error` bad
  row to store instead, so a malformed record is kept rather than blocking the loader.
* `bad_row(line)` → `BadRowValues` (schema, failure timestamp, processor, row hash, JSON text). It
  never fails: a line that is not a self-describing bad row is wrapped in a `generic_error`.
* `column_types(dialect)` → each field's SQL type. Strings are unbounded text in every dialect, not
  varchar(n) with the atomic schema's lengths: enrich enforces the lengths (spec/enrich.md 2.8,
  configurable there), PostgreSQL and DuckDB store text and varchar(n) alike, and a length in the
  loader only turns an enrich limit change into rejected rows (Snowplow's own Postgres loader had
  to widen five columns in a migration). Storage may not import enrich, so no limit is copied.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal, NamedTuple

import orjson

from plowline import __version__
from plowline.badrows import Processor, generic_error
from plowline.event import FIELD_KINDS, FIELD_NAMES, EnrichedEvent, FieldKind

__all__ = [
    "BAD_ROW_COLUMNS",
    "ENRICHED_COLUMNS",
    "EVENT_FINGERPRINT",
    "EVENT_ID",
    "JSON_COLUMNS",
    "LOADER_PARSING_ERROR",
    "PROCESSOR",
    "BadRowValues",
    "Column",
    "Dialect",
    "RowError",
    "bad_row",
    "column_types",
    "enriched_row",
    "loader_parsing_error",
    "row_hash",
    "unhandled_failure",
]

Dialect = Literal["postgres", "duckdb"]

LOADER_PARSING_ERROR = "iglu:com.snowplowanalytics.snowplow.badrows/loader_parsing_error/jsonschema/2-0-0"

#: The `processor` of the bad rows the loaders themselves produce.
PROCESSOR = Processor("plowline-storage", __version__)

#: Zero-based positions of the dedupe key in an enriched row.
EVENT_ID = FIELD_NAMES.index("event_id")
EVENT_FINGERPRINT = FIELD_NAMES.index("event_fingerprint")

#: Zero-based positions of contexts, unstruct_event and derived_contexts.
JSON_COLUMNS: tuple[int, ...] = tuple(i for i, kind in enumerate(FIELD_KINDS.values()) if kind is FieldKind.JSON)

# The atomic schema's non-nullable fields (Snowplow's atomic.events has them NOT NULL too).
_NOT_NULL = frozenset({"collector_tstamp", "event_id", "v_collector", "v_etl"})


@dataclass(frozen=True, slots=True)
class Column:
    """One of the 131 enriched columns."""

    name: str
    kind: FieldKind
    not_null: bool


#: The 131 enriched columns in TSV order.
ENRICHED_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind, name in _NOT_NULL) for name, kind in FIELD_KINDS.items()
)

# Timestamps are UTC without a zone, as in Snowplow's atomic.events (its SQL models expect that);
# decimals keep their exact value and scale in PostgreSQL's unconstrained numeric (Snowplow's
# Postgres loader used double precision, Redshift decimal(18,2): both lose digits); DuckDB's
# DECIMAL needs a fixed scale, and 9 digits covers every currency and se_value seen in practice.
_SQL_TYPES: dict[Dialect, dict[FieldKind, str]] = {
    "postgres": {
        FieldKind.STRING: "text",
        FieldKind.INTEGER: "integer",
        FieldKind.FLOAT: "double precision",
        FieldKind.DECIMAL: "numeric",
        FieldKind.BOOLEAN: "boolean",
        FieldKind.TIMESTAMP: "timestamp",
        FieldKind.JSON: "jsonb",
    },
    "duckdb": {
        FieldKind.STRING: "VARCHAR",
        FieldKind.INTEGER: "INTEGER",
        FieldKind.FLOAT: "DOUBLE",
        FieldKind.DECIMAL: "DECIMAL(38, 9)",
        FieldKind.BOOLEAN: "BOOLEAN",
        FieldKind.TIMESTAMP: "TIMESTAMP",
        FieldKind.JSON: "JSON",
    },
}
# event_id is always a UUID (enrich validates the tracker's or generates one), as in Snowplow's DDL.
_SQL_TYPE_OVERRIDES: dict[Dialect, dict[str, str]] = {"postgres": {"event_id": "uuid"}, "duckdb": {"event_id": "UUID"}}

#: The columns of a stored bad row, in `BadRowValues` order.
BAD_ROW_COLUMNS: tuple[str, ...] = ("schema", "failure_tstamp", "processor", "row_hash", "data")


def column_types(dialect: Dialect) -> tuple[tuple[str, str], ...]:
    """(name, SQL type) of the 131 enriched columns in TSV order, for `dialect`."""
    types, overrides = _SQL_TYPES[dialect], _SQL_TYPE_OVERRIDES[dialect]
    return tuple((column.name, overrides.get(column.name) or types[column.kind]) for column in ENRICHED_COLUMNS)


class RowError(ValueError):
    """A record that is not an enriched event. `bad_row` is the loader_parsing_error to store instead."""

    def __init__(self, message: str, bad_row: bytes) -> None:
        super().__init__(message)
        self.bad_row = bad_row


class BadRowValues(NamedTuple):
    """A bad row as stored: what to query it by, and the whole self-describing JSON."""

    schema: str  # the bad row's Iglu URI, e.g. iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/…
    failure_tstamp: datetime | None  # data.failure.timestamp (UTC); None when the row has none
    processor: str | None  # "<artifact>-<version>" of data.processor, like v_etl
    row_hash: str  # sha256 hex of the line: identical redelivered rows share it (the dedupe key)
    data: str  # the whole bad row, JSON text


_values = attrgetter(*FIELD_NAMES)


def enriched_row(line: bytes) -> tuple[Any, ...]:
    """The 131 typed values of an enriched TSV line (a trailing newline is ignored); see the module
    docstring. Raises RowError, carrying a loader_parsing_error bad row, for anything else."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _row_error(line, unhandled_failure(f"not UTF-8: {exc}")) from None
    columns = text.rstrip("\r\n").split("\t")
    if len(columns) == 1:
        raise _row_error(line, {"type": "NotTSV"})
    if len(columns) != len(FIELD_NAMES):
        raise _row_error(line, {"type": "FieldNumberMismatch", "fieldCount": len(columns)})
    try:
        event = EnrichedEvent.from_tsv(text)
    except ValueError as exc:
        raise _row_error(line, {"type": "RowDecodingError", "errors": _invalid_values(columns)}) from exc
    values = list(_values(event))
    for index in JSON_COLUMNS:
        if values[index] is not None:
            values[index] = columns[index]
    return tuple(values)


def loader_parsing_error(line: bytes, failure: dict[str, Any]) -> bytes:
    """A loader_parsing_error 2-0-0 bad row for `line` (the payload, decoded leniently)."""
    row = {
        "schema": LOADER_PARSING_ERROR,
        "data": {
            "processor": PROCESSOR.to_json(),
            "failure": failure,
            "payload": line.rstrip(b"\r\n").decode("utf-8", errors="replace"),
        },
    }
    return orjson.dumps(row)


def row_hash(line: bytes) -> str:
    """The dedupe key of a bad row: sha256 of the line without its trailing newline, as hex."""
    return hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()


def bad_row(line: bytes) -> BadRowValues:
    """The stored form of a bad-row JSON line. Never fails: a line that is not a self-describing
    JSON object is kept as the payload of a generic_error bad row (with the original line's hash)."""
    digest = row_hash(line)
    body = line.rstrip(b"\r\n")
    row = _json_object(body)
    if row is None or not isinstance(row.get("schema"), str):
        wrapped = generic_error(
            PROCESSOR,
            ["not a self-describing bad row"],
            body.decode("utf-8", errors="replace"),
        )
        return BadRowValues(wrapped["schema"], _failure_tstamp(wrapped), _processor(wrapped), digest, _dumps(wrapped))
    text = body.decode("utf-8", errors="replace")
    return BadRowValues(row["schema"], _failure_tstamp(row), _processor(row), digest, text)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers beyond 64 bits, which are valid JSON
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _failure_tstamp(row: dict[str, Any]) -> datetime | None:
    data = row.get("data")
    failure = data.get("failure") if isinstance(data, dict) else None
    stamp = failure.get("timestamp") if isinstance(failure, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _processor(row: dict[str, Any]) -> str | None:
    data = row.get("data")
    processor = data.get("processor") if isinstance(data, dict) else None
    if not isinstance(processor, dict):
        return None
    artifact, version = processor.get("artifact"), processor.get("version")
    if not isinstance(artifact, str):
        return None
    return f"{artifact}-{version}" if isinstance(version, str) else artifact


def unhandled_failure(message: str) -> dict[str, Any]:
    """A loader_parsing_error failure for a row that parsed but was refused (`message` says why)."""
    return {"type": "RowDecodingError", "errors": [{"type": "UnhandledRowDecodingError", "message": message}]}


def _row_error(line: bytes, failure: dict[str, Any]) -> RowError:
    return RowError(f"not an enriched event: {orjson.dumps(failure).decode()}", loader_parsing_error(line, failure))


def _invalid_values(columns: list[str]) -> list[dict[str, Any]]:
    """Each column that does not parse, found by parsing it alone (only on the error path)."""
    errors: list[dict[str, Any]] = []
    empty = [""] * len(FIELD_NAMES)
    for index, text in enumerate(columns):
        if not text:
            continue
        alone = empty.copy()
        alone[index] = text
        try:
            EnrichedEvent.from_tsv("\t".join(alone))
        except ValueError as exc:
            cause = exc.__cause__
            message = (str(cause) or type(cause).__name__) if cause is not None else str(exc)
            errors.append({"type": "InvalidValue", "key": FIELD_NAMES[index], "value": text, "message": message})
    return errors or [{"type": "UnhandledRowDecodingError", "message": "the line does not parse"}]
