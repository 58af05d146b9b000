"""Snowplow Micro 4's paged API (spec/protocol.md §5.2): /micro/events, /micro/timeline, /micro/columns and
/micro/columnStats, answered from the warehouse with SQL.

Like the rest of the Micro API, every answer counts only events since the reset watermark (micro.py), and
the events are the enriched events' Analytics SDK JSON (`EnrichedEvent.to_json`), the JSON Micro returns.
A column is a key of that JSON: the atomic fields (`app_id`, `collector_tstamp`, …, `geo_location`), the
shredded `contexts_<vendor>_<name>_<major>` and `unstruct_event_<vendor>_<name>_<major>` keys, and their
`key.field` sub-columns. As in Micro, contexts and unstruct_event columns ("complex" columns) cannot be
filtered or sorted on (such filters and sortings are ignored) and `*_tstamp` columns are sortable but not
offered as filters.

/micro/events follows Micro 4.4+: a filter is `{"column", "values": [...]}` and matches when the column's
value, as the JSON shows it, equals one of the values ignoring case (the older `"value": str` form is taken
as a one-value list; an empty value filters nothing). A filter on a column no event has matches nothing.
Without `sorting`, events come newest first (by collector_tstamp), as in Micro.

Where Plowline differs:
* sorting is by the column's type (numbers as numbers), where Micro compares the JSON text; nulls come
  last ascending and first descending, as in Micro;
* Plowline has no incomplete events (a failed event is a bad row, in /micro/bad), so `validEvents: false`
  finds nothing and the timeline's `failedEvents` is always 0;
* a column's `values` in /micro/columnStats leave out nulls (Micro lists the text "null").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plowline import event_format as fmt
from plowline.analytics.dashboard.warehouse import (
    EVENT_COLUMNS,
    Runner,
    event_from_row,
    parse_time,
    sql_string,
    sql_timestamp,
)
from plowline.event import FIELD_KINDS, FieldKind

__all__ = [
    "MAX_BUCKETS",
    "MAX_PAGE_SIZE",
    "Bucket",
    "ColumnFilter",
    "EventsQuery",
    "column_stats",
    "columns",
    "events_page",
    "parse_buckets",
    "parse_stats_columns",
    "timeline",
]

MAX_PAGE_SIZE = 10_000
MAX_BUCKETS = 10_000
_MAX_STATS_COLUMNS = 500
_STATS_VALUES = 20

# A column's value as the event JSON shows it (what a filter compares and columnStats lists), per kind:
# strings as they are, numbers as JSON numbers, booleans as true/false, timestamps as java.time.Instant
# prints them (`2024-05-01T12:00:05Z`, `…:05.292Z`; the warehouse keeps milliseconds).
_TIMESTAMP_TEXT = (
    "(strftime({c}, '%Y-%m-%dT%H:%M:%S') || "
    "CASE WHEN epoch_ms({c}) % 1000 = 0 THEN 'Z' ELSE strftime({c}, '.%g') || 'Z' END)"
)
_TEXT_BY_KIND = {
    FieldKind.STRING: "CAST({c} AS VARCHAR)",  # event_id is a UUID column
    FieldKind.INTEGER: "CAST({c} AS VARCHAR)",
    FieldKind.FLOAT: "CAST({c} AS VARCHAR)",
    FieldKind.DECIMAL: "CAST(CAST({c} AS DOUBLE) AS VARCHAR)",
    FieldKind.BOOLEAN: "CAST({c} AS VARCHAR)",
    FieldKind.TIMESTAMP: _TIMESTAMP_TEXT,
}
_GEO_LOCATION = (
    "CASE WHEN geo_latitude IS NOT NULL AND geo_longitude IS NOT NULL "
    "THEN CAST(geo_latitude AS VARCHAR) || ',' || CAST(geo_longitude AS VARCHAR) END"
)
#: Each simple column of the event JSON: (its value as text, the expression it sorts by).
_SIMPLE_COLUMNS: dict[str, tuple[str, str]] = {
    name: (_TEXT_BY_KIND[kind].format(c=name), name) for name, kind in FIELD_KINDS.items() if kind is not FieldKind.JSON
}
_SIMPLE_COLUMNS["geo_location"] = (_GEO_LOCATION, _GEO_LOCATION)
#: A timeline bucket: as the request gave it (echoed in the answer), its start and its end.
Bucket = tuple[dict[str, Any], datetime, datetime]
_NEWEST_FIRST = "collector_tstamp DESC, load_tstamp DESC, event_id"


def _is_complex(column: str) -> bool:
    return column.startswith(("contexts_", "unstruct_event"))


@dataclass(frozen=True, slots=True)
class ColumnFilter:
    """Events whose `column` equals one of `values`, ignoring case."""

    column: str
    values: tuple[str, ...]

    def condition(self) -> str | None:
        """The SQL condition; None when the filter filters nothing (a complex column, no values)."""
        values = [value for value in self.values if value]
        if _is_complex(self.column) or not values:
            return None
        if self.column not in _SIMPLE_COLUMNS:
            return "FALSE"  # no event has the column, so none has the value
        text = _SIMPLE_COLUMNS[self.column][0]
        return f"lower({text}) IN ({', '.join(sql_string(value.lower()) for value in values)})"


@dataclass(frozen=True, slots=True)
class EventsQuery:
    """A POST /micro/events body."""

    filters: tuple[ColumnFilter, ...] = ()
    valid_events: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    sort_column: str | None = None
    sort_desc: bool = False
    page: int = 1
    page_size: int = 50

    @classmethod
    def from_json(cls, body: Any) -> EventsQuery:
        """The query of a decoded JSON body; ValueError, saying what is wrong, for a body Micro would refuse."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        page = _positive_int(body.get("page", 1), "page", 1 << 31)
        page_size = _positive_int(body.get("pageSize", 50), "pageSize", MAX_PAGE_SIZE)
        valid = body.get("validEvents")
        if valid is not None and not isinstance(valid, bool):
            raise ValueError("validEvents must be true, false or null")
        start = end = None
        span = body.get("timeRange")
        if span is not None:
            if not isinstance(span, dict):
                raise ValueError('timeRange must be {"start": ISO time or null, "end": ISO time or null}')
            start, end = _time(span.get("start"), "timeRange.start"), _time(span.get("end"), "timeRange.end")
        sort_column, sort_desc = None, False
        sorting = body.get("sorting")
        if sorting is not None:
            if not isinstance(sorting, dict) or not isinstance(sorting.get("column"), str):
                raise ValueError('sorting must be {"column": str, "desc": bool}')
            sort_column, sort_desc = sorting["column"], sorting.get("desc") is True
        return cls(_filters(body.get("filters")), valid, start, end, sort_column, sort_desc, page, page_size)

    def where(self, since: datetime) -> str:
        conditions = [f"collector_tstamp >= {sql_timestamp(since)}"]
        if self.start is not None:
            conditions.append(f"collector_tstamp >= {sql_timestamp(self.start)}")
        if self.end is not None:
            conditions.append(f"collector_tstamp < {sql_timestamp(self.end)}")
        conditions += [condition for f in self.filters if (condition := f.condition()) is not None]
        return " AND ".join(conditions)

    def order(self) -> str:
        if self.sort_column is None or self.sort_column not in _SIMPLE_COLUMNS:
            return _NEWEST_FIRST  # complex or unknown columns: every value is the same, so no order changes
        key = _SIMPLE_COLUMNS[self.sort_column][1]
        return f"{key} {'DESC NULLS FIRST' if self.sort_desc else 'ASC NULLS LAST'}, {_NEWEST_FIRST}"


def _positive_int(value: Any, name: str, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise ValueError(f"{name} must be an integer from 1 to {most}")
    return value


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 time or null")
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time, not {value!r}") from None


def _filters(value: Any) -> tuple[ColumnFilter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError('filters must be a list of {"column": str, "values": [str]}')
    out = []
    for item in value:
        column = item.get("column") if isinstance(item, dict) else None
        if not isinstance(column, str):
            raise ValueError('each filter must be {"column": str, "values": [str]}')
        values = item.get("values", [item["value"]] if "value" in item else [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"the values of the filter on {column} must be a list of strings")
        out.append(ColumnFilter(column, tuple(values)))
    return tuple(out)


def events_page(run: Runner, since: datetime, query: EventsQuery) -> dict[str, Any]:
    """`{"events", "totalPages", "totalItems"}`: one page of the events the query selects."""
    if query.valid_events is False:
        return {"events": [], "totalPages": 1, "totalItems": 0}
    where = query.where(since)
    total = int(run(f"SELECT count(*) AS n FROM atomic.events WHERE {where}").to_pylist()[0]["n"])
    events: list[dict[str, Any]] = []
    offset = (query.page - 1) * query.page_size
    if offset < total:
        rows = run(
            f"SELECT {EVENT_COLUMNS} FROM atomic.events WHERE {where} "
            f"ORDER BY {query.order()} LIMIT {query.page_size} OFFSET {offset}"
        ).to_pylist()
        events = [event_from_row(row).to_json() for row in rows]
    return {"events": events, "totalPages": max(1, -(-total // query.page_size)), "totalItems": total}


def parse_buckets(body: Any) -> list[Bucket]:
    """The buckets of a POST /micro/timeline body: (the bucket as sent, start, end)."""
    buckets = body.get("buckets") if isinstance(body, dict) else None
    if not isinstance(buckets, list):
        raise ValueError('the body must be {"buckets": [{"start": ISO time, "end": ISO time}, …]}')
    if len(buckets) > MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} buckets")
    out = []
    for bucket in buckets:
        if not isinstance(bucket, dict):
            raise ValueError('each bucket must be {"start": ISO time, "end": ISO time}')
        start, end = _time(bucket.get("start"), "bucket start"), _time(bucket.get("end"), "bucket end")
        if start is None or end is None:
            raise ValueError("each bucket needs a start and an end")
        out.append((bucket, start, end))
    return out


def timeline(run: Runner | None, since: datetime, buckets: Sequence[Bucket]) -> dict[str, Any]:
    """`{"points": [{"validEvents", "failedEvents", "bucket"}]}`, a point per bucket: events received
    (collector_tstamp) from its start, inclusive, to its end, exclusive. No runner: no warehouse yet."""
    counts = [0] * len(buckets)
    if buckets and run is not None:
        select = ", ".join(
            f"count(*) FILTER (WHERE collector_tstamp >= {sql_timestamp(start)} "
            f"AND collector_tstamp < {sql_timestamp(end)}) AS b{index}"
            for index, (_, start, end) in enumerate(buckets)
        )
        row = run(f"SELECT {select} FROM atomic.events WHERE collector_tstamp >= {sql_timestamp(since)}").to_pylist()[0]
        counts = [int(row[f"b{index}"]) for index in range(len(buckets))]
    return {
        "points": [
            {"validEvents": count, "failedEvents": 0, "bucket": bucket}
            for count, (bucket, _, _) in zip(counts, buckets, strict=True)
        ]
    }


_SHREDDED_KEYS = """
SELECT DISTINCT prefix, schema, keys FROM (
    SELECT 'contexts_' AS prefix, json_extract_string(entity, '$.schema') AS schema,
           json_keys(entity, '$.data') AS keys
    FROM (SELECT unnest(json_extract(contexts, '$.data[*]')) AS entity FROM atomic.events
          WHERE contexts IS NOT NULL AND {since})
    UNION ALL
    SELECT 'contexts_', json_extract_string(entity, '$.schema'), json_keys(entity, '$.data')
    FROM (SELECT unnest(json_extract(derived_contexts, '$.data[*]')) AS entity FROM atomic.events
          WHERE derived_contexts IS NOT NULL AND {since})
    UNION ALL
    SELECT 'unstruct_event_', json_extract_string(unstruct_event, '$.data.schema'),
           json_keys(unstruct_event, '$.data.data')
    FROM atomic.events WHERE unstruct_event IS NOT NULL AND {since}
)
"""


def columns(run: Runner, since: datetime) -> list[str]:
    """Every column of the events since `since`, sorted: none when there are no events."""
    condition = f"collector_tstamp >= {sql_timestamp(since)}"
    seen = run(
        f"SELECT count(*) AS events, count(geo_latitude * geo_longitude) AS located "
        f"FROM atomic.events WHERE {condition}"
    ).to_pylist()[0]
    if not seen["events"]:
        return []
    names = {name for name in _SIMPLE_COLUMNS if name != "geo_location"}
    if seen["located"]:
        names.add("geo_location")
    for row in run(_SHREDDED_KEYS.format(since=condition)).to_pylist():
        names.update(_shredded_columns(row["prefix"], row["schema"], row["keys"]))
    return sorted(names)


def _shredded_columns(prefix: str, schema: str | None, keys: Iterable[str] | None) -> set[str]:
    try:
        column, _ = fmt.shred_key(prefix, schema or "")
    except ValueError:  # not an Iglu URI: enrich never lets one through, but the JSON column could hold it
        return set()
    fields = list(keys or [])
    if prefix == "contexts_":
        fields.append("_schema_version")  # each shredded entity carries it (event_format.shred_contexts)
    return {column} | {f"{column}.{field}" for field in fields}


def parse_stats_columns(body: Any) -> list[str]:
    """The columns of a POST /micro/columnStats body."""
    names = body.get("columns") if isinstance(body, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError('the body must be {"columns": [column name, …]}')
    if len(names) > _MAX_STATS_COLUMNS:
        raise ValueError(f"at most {_MAX_STATS_COLUMNS} columns")
    return names


def column_stats(run: Runner | None, since: datetime, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per column: whether it can be sorted and filtered on and, when it can be filtered on, up to 20 of
    its distinct values, those of the newest events first. No runner: no warehouse yet, so no values."""
    condition = f"collector_tstamp >= {sql_timestamp(since)}"
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        complex_column = _is_complex(name)
        stats: dict[str, Any] = {"sortable": not complex_column,
                                 "filterable": not complex_column and not name.endswith("_tstamp")}
        if stats["filterable"]:
            stats["values"] = _distinct_values(run, condition, name)
        out[name] = stats
    return out


def _distinct_values(run: Runner | None, condition: str, name: str) -> list[str]:
    if run is None or name not in _SIMPLE_COLUMNS:
        return []
    text = _SIMPLE_COLUMNS[name][0]
    rows = run(
        f"SELECT value FROM (SELECT {text} AS value, max(collector_tstamp) AS latest FROM atomic.events "
        f"WHERE {condition} GROUP BY ALL) WHERE value IS NOT NULL "
        f"ORDER BY latest DESC, value LIMIT {_STATS_VALUES}"
    ).to_pylist()
    return [str(row["value"]) for row in rows]
