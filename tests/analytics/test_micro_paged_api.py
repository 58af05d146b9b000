"""Snowplow Micro 4's paged API (spec/protocol.md §5.2) over HTTP: /micro/events (filters, time range,
sorting, pages), /micro/timeline, /micro/columns and /micro/columnStats, on a warehouse the real duckdb
loader filled with known events; the reset watermark; bodies Micro would refuse get a 400 that says why."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from plowline.analytics.dashboard import create_dashboard_app
from plowline.config import Settings
from plowline.event import EnrichedEvent
from plowline.storage.duckdb import open_duckdb_loader

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT = {"schema": "iglu:com.acme/e2e_context/jsonschema/1-0-0", "data": {"index": 1, "step": "x"}}
UA_CONTEXT = {"schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0",
              "data": {"useragentFamily": "Chrome", "osFamily": "Linux"}}
UNSTRUCT = {"schema": "iglu:com.acme/e2e_event/jsonschema/1-0-0", "data": {"n": 3, "text": "hi"}}


def make_events() -> list[EnrichedEvent]:
    """12 events a minute apart: 6 page views, 3 struct events, 3 self-describing events; app "Shop" on even
    minutes and "blog" on odd ones; domain_sessionidx = the minute; a user_id on the first four only."""
    events = []
    for n in range(12):
        moment = T0 + timedelta(minutes=n, milliseconds=292 if n == 4 else 0)
        kind = "page_view" if n < 6 else "struct" if n < 9 else "unstruct"
        event = EnrichedEvent(
            app_id="Shop" if n % 2 == 0 else "blog", platform="web", collector_tstamp=moment, event=kind,
            etl_tstamp=moment + timedelta(seconds=1), event_id=str(uuid.UUID(int=n + 1, version=4)),
            v_collector="plowline-0.1.0", v_etl="plowline-enrich-0.1.0", domain_sessionidx=n,
            user_id=f"user-{n}" if n < 4 else None, page_url=f"https://shop.example/p{n % 3}",
        )
        if n % 3 == 0:
            event.contexts = [CONTEXT]
        if n == 1:
            event.derived_contexts = [UA_CONTEXT]
        if n == 2:
            event.geo_latitude, event.geo_longitude = 52.5, 13.25
        if kind == "struct":
            event.se_category, event.se_action, event.se_value = "shop", "add", Decimal("2.5")
        if kind == "unstruct":
            event.event_vendor, event.event_name, event.event_format, event.event_version = (
                "com.acme", "e2e_event", "jsonschema", "1-0-0")
            event.unstruct_event = UNSTRUCT
        events.append(event)
    return events


EVENTS = make_events()
NEWEST_FIRST = [event.event_id for event in reversed(EVENTS)]


@dataclass
class Micro:
    app: Any
    data_dir: Path

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async def ask() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://micro") as client:
                return await client.request(method, path, json=body)

        return asyncio.run(ask())

    def post(self, path: str, body: Any) -> Any:
        response = self.request("POST", path, body)
        assert response.status_code == 200, f"{path} {body}: {response.status_code} {response.text}"
        return response.json()

    def events(self, **body: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.post("/micro/events", {"page": 1, "pageSize": 100, **body})
        return answer

    def ids(self, **body: Any) -> list[str]:
        return [event["event_id"] for event in self.events(**body)["events"]]


async def _load(settings: Settings) -> None:
    loader = open_duckdb_loader(settings, "enriched")
    await loader.write([event.to_tsv().encode() for event in EVENTS])
    await loader.close()


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Micro]:
    data_dir = tmp_path_factory.mktemp("micro-paged") / "data"
    settings = Settings.model_validate({"data_dir": str(data_dir), "micro": {"enabled": True}})
    asyncio.run(_load(settings))
    yield Micro(create_dashboard_app(settings, host="127.0.0.1"), data_dir)


def test_events_come_newest_first_in_pages_as_the_sdk_json(micro: Micro) -> None:
    first = micro.post("/micro/events", {"filters": [], "validEvents": None, "timeRange": None, "sorting": None,
                                         "page": 1, "pageSize": 5})
    assert (first["totalItems"], first["totalPages"]) == (12, 3)
    assert [event["event_id"] for event in first["events"]] == NEWEST_FIRST[:5]
    assert first["events"][0] == EVENTS[-1].to_json()
    assert micro.events(page=3, pageSize=5)["events"] == [event.to_json() for event in reversed(EVENTS[:2])]
    beyond = micro.events(page=4, pageSize=5)
    assert (beyond["events"], beyond["totalItems"], beyond["totalPages"]) == ([], 12, 3)
    assert micro.ids() == NEWEST_FIRST
    assert micro.ids(validEvents=True) == NEWEST_FIRST
    nothing = micro.events(validEvents=False)  # Plowline's failed events are bad rows, never incomplete events
    assert (nothing["events"], nothing["totalItems"], nothing["totalPages"]) == ([], 0, 1)


def ids_of(*minutes: int) -> list[str]:
    return [EVENTS[n].event_id for n in sorted(minutes, reverse=True)]


def test_filters_match_exactly_ignoring_case(micro: Micro) -> None:
    def where(*filters: dict[str, Any]) -> list[str]:
        return micro.ids(filters=list(filters))

    assert where({"column": "app_id", "values": ["shop"]}) == ids_of(0, 2, 4, 6, 8, 10)
    assert where({"column": "app_id", "values": ["SHOP", "Blog"]}) == NEWEST_FIRST
    assert where({"column": "app_id", "value": "blog"}) == ids_of(1, 3, 5, 7, 9, 11)  # the pre-4.4 form
    assert where({"column": "app_id", "values": ["sho"]}) == []  # exact, not a substring
    assert where({"column": "app_id", "values": []}) == NEWEST_FIRST
    assert where({"column": "app_id", "values": [""]}) == NEWEST_FIRST
    assert where({"column": "event", "values": ["struct"]}, {"column": "app_id", "values": ["shop"]}) == ids_of(6, 8)
    assert where({"column": "se_value", "values": ["2.5"]}) == ids_of(6, 7, 8)
    assert where({"column": "domain_sessionidx", "values": ["10"]}) == ids_of(10)
    assert where({"column": "event_id", "values": [EVENTS[3].event_id.upper()]}) == ids_of(3)
    assert where({"column": "collector_tstamp", "values": ["2024-05-01T12:04:00.292Z"]}) == ids_of(4)
    assert where({"column": "collector_tstamp", "values": ["2024-05-01T12:05:00Z"]}) == ids_of(5)
    assert where({"column": "geo_location", "values": ["52.5,13.25"]}) == ids_of(2)
    assert where({"column": "no_such_column", "values": ["x"]}) == []
    # Filters on contexts and unstruct_event columns are ignored, as in Micro.
    assert where({"column": "contexts_com_acme_e2e_context_1", "values": ["x"]}) == NEWEST_FIRST
    assert where({"column": "unstruct_event_com_acme_e2e_event_1.n", "values": ["99"]}) == NEWEST_FIRST
    # A value is data, never SQL.
    assert where({"column": "app_id", "values": ["x' OR '1'='1"]}) == []


def test_time_range_is_start_inclusive_end_exclusive(micro: Micro) -> None:
    span = {"start": "2024-05-01T12:03:00Z", "end": "2024-05-01T12:06:00Z"}
    assert micro.ids(timeRange=span) == ids_of(3, 4, 5)
    assert micro.ids(timeRange={"start": "2024-05-01T14:10:00+02:00", "end": None}) == ids_of(10, 11)
    assert micro.ids(timeRange={"start": None, "end": "2024-05-01T12:01:00Z"}) == ids_of(0)


def test_sorting_by_a_column(micro: Micro) -> None:
    ascending = micro.ids(sorting={"column": "domain_sessionidx", "desc": False})
    assert ascending == [event.event_id for event in EVENTS]  # as numbers: 2 before 10
    assert micro.ids(sorting={"column": "domain_sessionidx", "desc": True}) == NEWEST_FIRST
    # Nulls last ascending, first descending (newest first among equals).
    assert micro.ids(sorting={"column": "user_id", "desc": False}) == [
        EVENTS[n].event_id for n in (0, 1, 2, 3)] + ids_of(*range(4, 12))
    assert micro.ids(sorting={"column": "user_id", "desc": True}) == ids_of(*range(4, 12)) + ids_of(0, 1, 2, 3)
    assert micro.ids(sorting={"column": "contexts_com_acme_e2e_context_1", "desc": False}) == NEWEST_FIRST
    paged = micro.events(sorting={"column": "domain_sessionidx", "desc": False}, page=2, pageSize=5)
    assert [event["event_id"] for event in paged["events"]] == [EVENTS[n].event_id for n in range(5, 10)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"page": 0, "pageSize": 10}, "page must be an integer from 1"),
        ({"page": 1, "pageSize": "ten"}, "pageSize must be an integer from 1"),
        ({"page": 1, "pageSize": 1_000_000}, "pageSize must be an integer from 1 to 10000"),
        ({"page": 1, "pageSize": 10, "filters": "app_id"}, "filters must be a list"),
        ({"page": 1, "pageSize": 10, "filters": [{"values": ["x"]}]}, "each filter must be"),
        ({"page": 1, "pageSize": 10, "filters": [{"column": "app_id", "values": "x"}]}, "must be a list of strings"),
        ({"page": 1, "pageSize": 10, "validEvents": "yes"}, "validEvents must be"),
        ({"page": 1, "pageSize": 10, "timeRange": {"start": "yesterday"}}, "timeRange.start must be an ISO 8601"),
        ({"page": 1, "pageSize": 10, "sorting": {"column": 3}}, "sorting must be"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
def test_events_refuses_what_micro_would(micro: Micro, body: Any, message: str) -> None:
    response = micro.request("POST", "/micro/events", body)
    assert response.status_code == 400 and message in response.json()["error"], response.text


def test_timeline_counts_each_bucket(micro: Micro) -> None:
    buckets = [{"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:06:00Z"},
               {"start": "2024-05-01T12:06:00.000Z", "end": "2024-05-01T13:00:00.000Z"},
               {"start": "2024-05-02T00:00:00Z", "end": "2024-05-03T00:00:00Z"},
               {"start": "2024-05-01T12:04:00Z", "end": "2024-05-01T12:04:01Z"}]
    points = micro.post("/micro/timeline", {"buckets": buckets})["points"]
    assert points == [{"validEvents": count, "failedEvents": 0, "bucket": bucket}
                      for count, bucket in zip([6, 6, 0, 1], buckets, strict=True)]
    assert micro.post("/micro/timeline", {"buckets": []}) == {"points": []}
    for body in ({}, {"buckets": [{"start": "2024-05-01T12:00:00Z"}]}, {"buckets": [{"start": "x", "end": "y"}]}):
        assert micro.request("POST", "/micro/timeline", body).status_code == 400


def expected_columns(events: list[EnrichedEvent]) -> list[str]:
    """Micro's columns: every key of each event's SDK JSON, and `key.field` for the fields of its contexts
    and unstruct_event values."""
    names: set[str] = set()
    for event in events:
        for key, value in event.to_json().items():
            names.add(key)
            if key.startswith("contexts_"):
                names.update(f"{key}.{field}" for entity in value for field in entity)
            elif key.startswith("unstruct_event"):
                names.update(f"{key}.{field}" for field in value)
    return sorted(names)


def test_columns_are_every_key_of_the_events(micro: Micro) -> None:
    response = micro.request("GET", "/micro/columns")
    assert response.status_code == 200
    columns = response.json()
    assert columns == expected_columns(EVENTS)
    for name in ("app_id", "geo_location", "contexts_com_acme_e2e_context_1.step",
                 "contexts_com_acme_e2e_context_1._schema_version",
                 "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1.useragentFamily",
                 "unstruct_event_com_acme_e2e_event_1", "unstruct_event_com_acme_e2e_event_1.text"):
        assert name in columns


def test_column_stats(micro: Micro) -> None:
    stats = micro.post("/micro/columnStats", {"columns": ["app_id", "collector_tstamp", "se_value", "user_id",
                                                          "contexts_com_acme_e2e_context_1", "no_such_column"]})
    assert stats == {
        "app_id": {"sortable": True, "filterable": True, "values": ["blog", "Shop"]},  # newest first
        "collector_tstamp": {"sortable": True, "filterable": False},
        "se_value": {"sortable": True, "filterable": True, "values": ["2.5"]},
        "user_id": {"sortable": True, "filterable": True, "values": ["user-3", "user-2", "user-1", "user-0"]},
        "contexts_com_acme_e2e_context_1": {"sortable": False, "filterable": False},
        "no_such_column": {"sortable": True, "filterable": True, "values": []},
    }
    assert micro.request("POST", "/micro/columnStats", {"columns": "app_id"}).status_code == 400


def test_reset_empties_the_paged_api_too(micro: Micro) -> None:
    assert micro.request("GET", "/micro/reset").text == "Reset completed"
    try:
        assert micro.events() == {"events": [], "totalPages": 1, "totalItems": 0}
        assert micro.request("GET", "/micro/columns").json() == []
        bucket = {"start": "2024-05-01T12:00:00Z", "end": "2024-05-02T00:00:00Z"}
        assert micro.post("/micro/timeline", {"buckets": [bucket]})["points"][0]["validEvents"] == 0
        assert micro.post("/micro/columnStats", {"columns": ["app_id"]})["app_id"]["values"] == []
    finally:
        (micro.data_dir / "micro-reset.json").unlink()
    assert micro.events()["totalItems"] == 12


def test_the_paged_api_before_the_warehouse_exists(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data"), "micro": {"enabled": True}})
    micro = Micro(create_dashboard_app(settings, host="127.0.0.1"), tmp_path / "data")
    assert micro.events() == {"events": [], "totalPages": 1, "totalItems": 0}
    assert micro.request("GET", "/micro/columns").json() == []
    bucket = {"start": "2024-05-01T12:00:00Z", "end": "2024-05-02T00:00:00Z"}
    assert micro.post("/micro/timeline", {"buckets": [bucket]}) == {
        "points": [{"validEvents": 0, "failedEvents": 0, "bucket": bucket}]}
    assert micro.post("/micro/columnStats", {"columns": ["app_id"]}) == {
        "app_id": {"sortable": True, "filterable": True, "values": []}}
    assert micro.request("POST", "/micro/events", {"page": -1}).status_code == 400
