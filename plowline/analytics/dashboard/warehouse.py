"""The dashboard's questions to the warehouse: each one SELECT on atomic.events / atomic.bad_rows.

Every function takes a `Runner` (one read-only SQL statement in, an Arrow table out), normally
`warehouse_runner(settings)`, which goes through plowline/analytics/query.py: the duckdb loader's
query socket while `plowline up` runs, the file opened read-only otherwise. Values from the
browser never reach SQL text unchecked: strings go through `sql_string` (quoted, NUL refused),
timestamps are parsed first, numbers are ints.

Timestamps are UTC (the warehouse stores naive UTC). The good/bad feed orders a good event by
`collector_tstamp` and a bad row by its failure time (`loaded_at` when the row has none).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import orjson
import pyarrow as pa

from plowline import event_format as fmt
from plowline.analytics.query import NoWarehouse, QueryError, query_arrow
from plowline.config import Settings
from plowline.event import FIELD_KINDS, FIELD_NAMES, EnrichedEvent, FieldKind

__all__ = [
    "DIMENSIONS",
    "EVENT_COLUMNS",
    "SCHEMA_SQL",
    "FeedFilters",
    "Runner",
    "TimeRange",
    "bad_detail",
    "bad_row_messages",
    "derived_tables",
    "event_detail",
    "event_from_row",
    "event_schema",
    "events_feed",
    "filter_options",
    "parse_time",
    "schema_condition",
    "sql_string",
    "sql_timestamp",
    "summary",
    "timeseries",
    "top",
    "warehouse_runner",
    "without_duckdb_loader",
]

Runner = Callable[[str], pa.Table]
Status = Literal["all", "good", "bad"]

#: SELECT list giving every enriched field under its own name, in types `event_from_row` takes.
EVENT_COLUMNS = ", ".join(
    f"CAST({name} AS VARCHAR) AS {name}" if name == "event_id" or FIELD_KINDS[name] is FieldKind.JSON else name
    for name in FIELD_NAMES
)
_BAD_TIME = "COALESCE(failure_tstamp, loaded_at)"
_USER = "COALESCE(domain_userid, network_userid)"
SCHEMA_SQL = (
    "CASE WHEN event_vendor IS NULL THEN NULL ELSE "
    "'iglu:' || event_vendor || '/' || event_name || '/' || event_format || '/' || event_version END"
)
# Devices and browsers: the user-agent enrichments' columns when they ran, else a coarse guess
# from the User-Agent header, so the charts are useful on a pipeline without those enrichments. The
# guess runs once per distinct header (`ua` in `top`), not once per event: a few hundred regex
# matches instead of millions.
_DEVICE_GUESS = (
    "CASE WHEN ua IS NULL THEN NULL "
    "WHEN regexp_matches(ua, '(?i)ipad|tablet') THEN 'Tablet' "
    "WHEN regexp_matches(ua, '(?i)mobi|iphone|android') THEN 'Mobile' "
    "WHEN regexp_matches(ua, '(?i)bot|crawl|spider') THEN 'Robot' "
    "WHEN regexp_matches(ua, '(?i)windows|macintosh|x11|linux') THEN 'Computer' ELSE 'Other' END"
)
_BROWSER_GUESS = (
    "CASE WHEN ua IS NULL THEN NULL "
    "WHEN regexp_matches(ua, 'Edg/') THEN 'Edge' "
    "WHEN regexp_matches(ua, 'Firefox/') THEN 'Firefox' "
    "WHEN regexp_matches(ua, 'Chrom(e|ium)/') THEN 'Chrome' "
    "WHEN regexp_matches(ua, 'Safari/') THEN 'Safari' "
    "ELSE regexp_extract(ua, '^([A-Za-z][A-Za-z0-9._-]*)', 1) END"
)


@dataclass(frozen=True, slots=True)
class Dimension:
    """One "top N" breakdown: the label expression, an optional second column, which rows count."""

    label: str
    detail: str | None = None
    where: str = "TRUE"
    #: An expression over `ua` (the User-Agent header) for rows where `label` is NULL.
    guess: str | None = None


#: The breakdowns of /dashboard/api/top/<name>.
DIMENSIONS: dict[str, Dimension] = {
    "pages": Dimension("COALESCE(page_urlhost, '') || COALESCE(page_urlpath, '')", "any_value(page_title)",
                       "event = 'page_view'"),
    "referrers": Dimension(
        "refr_urlhost", "any_value(refr_medium)",
        "event = 'page_view' AND refr_urlhost IS NOT NULL AND COALESCE(refr_medium, '') <> 'internal'",
    ),
    "campaigns": Dimension("mkt_campaign", "any_value(COALESCE(mkt_source, '') || ' / ' || COALESCE(mkt_medium, ''))",
                           "mkt_campaign IS NOT NULL"),
    "devices": Dimension("dvce_type", guess=_DEVICE_GUESS),
    "browsers": Dimension("br_family", guess=_BROWSER_GUESS),
    "countries": Dimension("geo_country"),
    "event_types": Dimension("event"),
    "apps": Dimension("app_id"),
}


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end) in UTC, naive; None is open."""

    start: datetime | None = None
    end: datetime | None = None

    def where(self, column: str) -> list[str]:
        out = []
        if self.start is not None:
            out.append(f"{column} >= {sql_timestamp(self.start)}")
        if self.end is not None:
            out.append(f"{column} < {sql_timestamp(self.end)}")
        return out


@dataclass(frozen=True, slots=True)
class FeedFilters:
    """The live feed's filters; empty strings are no filter."""

    status: Status = "all"
    event: str = ""
    app: str = ""
    schema: str = ""
    range: TimeRange = TimeRange()


def warehouse_runner(settings: Settings) -> Runner:
    """Run SQL on the warehouse of `settings` (a short wait while a starting loader opens its socket)."""

    def run(sql: str) -> pa.Table:
        try:
            return query_arrow(settings, sql, wait_s=5.0, timeout_s=60.0)
        except NoWarehouse as exc:
            # "Nothing yet" (Micro's empty answer) would be a lie when no duckdb loader will ever
            # make the warehouse: say what to change instead.
            if "duckdb" in settings.storage.loaders:
                raise
            raise QueryError(without_duckdb_loader(settings)) from exc

    return run


def without_duckdb_loader(settings: Settings) -> str:
    """Why the dashboard and Micro show nothing when storage.loaders has no duckdb, and the fix."""
    loaders = ", ".join(settings.storage.loaders) or "none"
    return (
        f"the dashboard and the Micro API read the DuckDB warehouse, and storage.loaders ({loaders}) has no "
        'duckdb loader: add "duckdb" to storage.loaders (it loads beside postgres) to use them'
    )


# --- SQL values ---------------------------------------------------------------------------------------


def sql_string(value: str) -> str:
    """A SQL string literal."""
    if "\x00" in value:
        raise ValueError("NUL in a filter value")
    return "'" + value.replace("'", "''") + "'"


def sql_timestamp(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(' ')}'"


_IGLU_URI = re.compile(r"iglu:([^/]+)/([^/]+)/([^/]+)/([0-9]+-[0-9]+-[0-9]+)")


def schema_condition(schema: str) -> str:
    """SQL that holds for events of the self-describing event `schema` (an iglu: URI): a comparison of the
    four event_* columns, which DuckDB filters far faster than the URI rebuilt for every row."""
    match = _IGLU_URI.fullmatch(schema)
    if match is None:
        return f"({SCHEMA_SQL}) = {sql_string(schema)}"
    columns = ("event_vendor", "event_name", "event_format", "event_version")
    return " AND ".join(f"{column} = {sql_string(part)}" for column, part in zip(columns, match.groups(), strict=True))


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from a query parameter as naive UTC (a time without zone is UTC); None for empty."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def _and(conditions: list[str]) -> str:
    return " AND ".join(conditions) if conditions else "TRUE"


# --- enriched events back from rows -------------------------------------------------------------------


def event_from_row(row: dict[str, Any]) -> EnrichedEvent:
    """The EnrichedEvent of a row selected with EVENT_COLUMNS."""
    values: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = row.get(name)
        if value is None:
            values[name] = None
            continue
        kind = FIELD_KINDS[name]
        if kind is FieldKind.TIMESTAMP:
            value = value.replace(tzinfo=UTC)
        elif kind is FieldKind.JSON:
            value = fmt.parse_unstruct(value) if name == "unstruct_event" else fmt.parse_contexts(value)
        elif kind is FieldKind.DECIMAL:
            # The warehouse pads to DECIMAL(38, 9)'s nine places; the event as sent had no trailing zeros.
            value = (value if isinstance(value, Decimal) else Decimal(str(value))).normalize()
        values[name] = value
    return EnrichedEvent(**values)


def event_schema(event: EnrichedEvent) -> str | None:
    """`iglu:<event_vendor>/<event_name>/<event_format>/<event_version>`, as Micro reports it."""
    if event.event_vendor is None:
        return None
    return f"iglu:{event.event_vendor}/{event.event_name}/{event.event_format}/{event.event_version}"


# --- bad rows -------------------------------------------------------------------------------------------


def bad_row_messages(row: Any) -> list[str]:
    """The human-readable failure messages of a bad row (its failure part, searched for the texts
    the badrows schemas put there: message, error, expectation, errors), else the compact failure."""
    failure = row.get("data", {}).get("failure") if isinstance(row, dict) else None
    if failure is None:
        return []
    found: list[str] = []
    for item in failure.get("messages", [failure]) if isinstance(failure, dict) else [failure]:
        texts = list(_texts(item))
        found.append("; ".join(texts) if texts else orjson.dumps(item).decode())
    return found


def _texts(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, str):
        if key in ("message", "error", "expectation", "errors"):
            yield value
        elif key in ("field", "value", "path", "keyword"):
            yield f"{key}: {value}"
    elif isinstance(value, dict):
        for sub_key, sub in value.items():
            yield from _texts(sub, sub_key)
    elif isinstance(value, list):
        for sub in value:
            yield from _texts(sub, key)


# --- the questions --------------------------------------------------------------------------------------


def events_feed(run: Runner, filters: FeedFilters, limit: int, offset: int) -> dict[str, Any]:
    """Newest first: good events and bad rows as feed items {status, id, time, type, app, schema, detail}."""
    parts: list[str] = []
    if filters.status in ("all", "good"):
        where = filters.range.where("collector_tstamp")
        if filters.event:
            where.append(f"event = {sql_string(filters.event)}")
        if filters.app:
            where.append(f"app_id = {sql_string(filters.app)}")
        if filters.schema:
            where.append(schema_condition(filters.schema))
        parts.append(
            "SELECT 'good' AS status, CAST(event_id AS VARCHAR) AS id, collector_tstamp AS time, event AS type, "
            f"app_id AS app, {SCHEMA_SQL} AS schema, "
            "COALESCE(CASE WHEN event = 'struct' THEN se_category || ' / ' || se_action END, page_url, useragent) "
            "AS detail, NULL AS failure "
            f"FROM atomic.events WHERE {_and(where)}"
        )
    if filters.status in ("all", "bad") and not filters.event and not filters.app:
        where = filters.range.where(_BAD_TIME)
        if filters.schema:
            where.append(f"schema = {sql_string(filters.schema)}")
        parts.append(
            f"SELECT 'bad' AS status, row_hash AS id, {_BAD_TIME} AS time, "
            "regexp_extract(schema, 'badrows/([^/]+)/', 1) AS type, NULL AS app, schema, NULL AS detail, "
            "CAST(json_extract(data, '$.data.failure') AS VARCHAR) AS failure "
            f"FROM atomic.bad_rows WHERE {_and(where)}"
        )
    if not parts:
        return {"items": [], "limit": limit, "offset": offset}
    # Each side keeps only its own newest offset+limit rows first, so the union never sorts the whole table.
    head = f" ORDER BY time DESC, id LIMIT {int(offset) + int(limit)}"
    sql = (" UNION ALL ".join(f"({part}{head})" for part in parts)
           + f" ORDER BY time DESC, id LIMIT {int(limit)} OFFSET {int(offset)}")
    items = _rows(run(sql))
    for item in items:
        failure = item.pop("failure")
        if failure is not None:
            messages = bad_row_messages({"data": {"failure": orjson.loads(failure)}})
            item["detail"] = messages[0] if messages else None
    return {"items": items, "limit": limit, "offset": offset}


def event_detail(run: Runner, event_id: str) -> dict[str, Any] | None:
    """One good event: its Analytics SDK JSON (EnrichedEvent.to_json) and its TSV line."""
    try:
        wanted = uuid.UUID(event_id)
    except ValueError:
        return None
    sql = (
        f"SELECT {EVENT_COLUMNS}, load_tstamp FROM atomic.events WHERE event_id = '{wanted}'::UUID "
        "ORDER BY load_tstamp LIMIT 1"
    )
    rows = _rows(run(sql))
    if not rows:
        return None
    event = event_from_row(rows[0])
    return {"status": "good", "id": event.event_id, "schema": event_schema(event), "loaded": rows[0]["load_tstamp"],
            "event": event.to_json(), "tsv": event.to_tsv()}


def bad_detail(run: Runner, row_hash: str) -> dict[str, Any] | None:
    """One bad row: the whole self-describing JSON and its failure messages."""
    sql = (
        "SELECT row_hash, schema, failure_tstamp, processor, CAST(data AS VARCHAR) AS data, loaded_at "
        f"FROM atomic.bad_rows WHERE row_hash = {sql_string(row_hash)}"
    )
    rows = _rows(run(sql))
    if not rows:
        return None
    row = rows[0]
    data = orjson.loads(row.pop("data"))
    return {"status": "bad", "id": row["row_hash"], **row, "messages": bad_row_messages(data), "row": data}


def summary(run: Runner, span: TimeRange) -> dict[str, Any]:
    """Totals over the range: events, bad rows, page views, users, sessions, first and last event."""
    # One statement: without a loader's socket every statement opens the file, which costs more than the query.
    return _rows(run(
        f"SELECT count(*) AS events, count(*) FILTER (WHERE event = 'page_view') AS page_views, "
        f"count(DISTINCT {_USER}) AS users, count(DISTINCT domain_sessionid) AS sessions, "
        "min(collector_tstamp) AS first, max(collector_tstamp) AS last, "
        f"(SELECT count(*) FROM atomic.bad_rows WHERE {_and(span.where(_BAD_TIME))}) AS bad "
        f"FROM atomic.events WHERE {_and(span.where('collector_tstamp'))}"
    ))[0]


_BUCKETS: tuple[tuple[str, timedelta, timedelta], ...] = (
    # (bucket, step, the longest span drawn with it)
    ("minute", timedelta(minutes=1), timedelta(hours=3)),
    ("hour", timedelta(hours=1), timedelta(days=4)),
    ("day", timedelta(days=1), timedelta.max),
)


def timeseries(run: Runner, span: TimeRange) -> dict[str, Any]:
    """Events, page views, users and bad rows per minute, hour or day (chosen by the span), gaps as 0."""
    start, end = span.start, span.end
    if start is None or end is None:
        bounds = _rows(run(
            f"SELECT min(collector_tstamp) AS first, max(collector_tstamp) AS last FROM atomic.events "
            f"WHERE {_and(span.where('collector_tstamp'))}"
        ))[0]
        start = start or bounds["first"]
        end = end or (bounds["last"] + timedelta(seconds=1) if bounds["last"] else None)
    if start is None or end is None:
        return {"bucket": "hour", "points": []}
    bucket, step, _ = next(choice for choice in _BUCKETS if end - start <= choice[2])
    window = TimeRange(start, end)
    rows = _rows(run(
        f"SELECT date_trunc('{bucket}', collector_tstamp) AS t, count(*) AS events, "
        f"count(*) FILTER (WHERE event = 'page_view') AS page_views, count(DISTINCT {_USER}) AS users, 0 AS bad "
        f"FROM atomic.events WHERE {_and(window.where('collector_tstamp'))} GROUP BY t "
        f"UNION ALL SELECT date_trunc('{bucket}', {_BAD_TIME}) AS t, 0, 0, 0, count(*) "
        f"FROM atomic.bad_rows WHERE {_and(window.where(_BAD_TIME))} GROUP BY t"
    ))
    by_time: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        point = by_time.setdefault(row["t"], {"events": 0, "page_views": 0, "users": 0, "bad": 0})
        for key in point:
            point[key] += row[key]
    points: list[dict[str, Any]] = []
    moment = _truncate(start, bucket)
    while moment < end and len(points) < 5000:
        points.append({"t": moment, **by_time.get(moment, {"events": 0, "page_views": 0, "users": 0, "bad": 0})})
        moment += step
    return {"bucket": bucket, "points": points}


def _truncate(moment: datetime, bucket: str) -> datetime:
    if bucket == "minute":
        return moment.replace(second=0, microsecond=0)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def top(run: Runner, name: str, span: TimeRange, limit: int = 10) -> list[dict[str, Any]]:
    """The `limit` most frequent values of a dimension: {label, detail, count, users}; None is "(none)"."""
    dimension = DIMENSIONS[name]
    detail = dimension.detail or "NULL"
    where = _and([dimension.where, *span.where("collector_tstamp")])
    label = f"CAST({dimension.label} AS VARCHAR)"
    source = "atomic.events"
    if dimension.guess is not None:
        label = f"COALESCE({label}, guessed.kind)"
        source = (
            f"atomic.events LEFT JOIN (SELECT ua, {dimension.guess} AS kind FROM (SELECT DISTINCT useragent AS ua "
            f"FROM atomic.events WHERE {where})) AS guessed ON atomic.events.useragent = guessed.ua"
        )
    return _rows(run(
        f"SELECT COALESCE({label}, '(none)') AS label, {detail} AS detail, "
        f"count(*) AS count, count(DISTINCT {_USER}) AS users FROM {source} WHERE {where} "
        f"GROUP BY 1 ORDER BY count DESC, label LIMIT {int(limit)}"
    ))


def filter_options(run: Runner) -> dict[str, list[str]]:
    """The values the feed's filters offer: event types, apps, event schemas and bad-row schemas seen."""
    rows = _rows(run(
        "SELECT 'event' AS kind, event AS value FROM (SELECT DISTINCT event FROM atomic.events) "
        "UNION ALL SELECT 'app', app_id FROM (SELECT DISTINCT app_id FROM atomic.events) "
        f"UNION ALL SELECT 'schema', s FROM (SELECT DISTINCT {SCHEMA_SQL} AS s FROM atomic.events) "
        "UNION ALL SELECT 'bad_schema', schema FROM (SELECT DISTINCT schema FROM atomic.bad_rows)"
    ))
    options: dict[str, list[str]] = {"event": [], "app": [], "schema": [], "bad_schema": []}
    for row in rows:
        if row["value"] is not None:
            options[row["kind"]].append(row["value"])
    return {kind: sorted(values)[:500] for kind, values in options.items()}


def derived_tables(run: Runner) -> list[dict[str, Any]]:
    """The tables of the `derived` schema (the SQL data models), with DuckDB's row estimate; [] when none."""
    return _rows(run(
        "SELECT table_name AS name, estimated_size AS rows FROM duckdb_tables() "
        "WHERE schema_name = 'derived' ORDER BY table_name"
    ))
