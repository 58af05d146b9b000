"""The dashboard's JSON API over HTTP: `plowline dashboard` on a warehouse the real duckdb loader filled.

Events and bad rows go in through `open_duckdb_loader` (as `plowline load` writes them); the API must give
them back: totals, the traffic series, top pages/referrers/campaigns/devices/browsers/countries over a date
range, the feed with each filter, one event's full SDK JSON (equal to EnrichedEvent.to_json of what went in),
one bad row with its messages; it must stay read-only and refuse the network without a token.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from plowline import badrows
from plowline.config import Settings
from plowline.event import EnrichedEvent
from plowline.storage.duckdb import open_duckdb_loader
from tests.support.collector_process import free_port
from tests.support.plowline_cli import PlowlineProcess, run_plowline

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
#: A clean stop: uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
STOPPED = (0, -signal.SIGTERM)
DAY = {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
PROCESSOR = badrows.Processor("plowline-enrich", "0.1.0")
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
CONTEXT: dict[str, Any] = {"schema": "iglu:com.acme/e2e_context/jsonschema/1-0-0",
                          "data": {"index": 1, "step": "x", "runner": "python"}}
UNSTRUCT: dict[str, Any] = {"schema": "iglu:com.acme/e2e_event/jsonschema/1-0-0", "data": {"index": 7, "n": 3, "text": "it's <b>"}}


def make_events() -> list[EnrichedEvent]:
    """30 page views on 3 pages by 5 users in the day (one campaign, one Google referrer), 10 struct events,
    2 self-describing events, and 4 page views the day after (outside DAY)."""
    events = []
    for n in range(46):
        moment = T0 + timedelta(minutes=n) if n < 42 else T0 + timedelta(days=1, minutes=n)
        kind = "page_view" if n < 30 or n >= 42 else "struct" if n < 40 else "unstruct"
        page = f"/p{n % 3}"
        event = EnrichedEvent(
            app_id="shop" if n % 2 == 0 else "blog", platform="web", collector_tstamp=moment,
            etl_tstamp=moment + timedelta(seconds=1), event=kind, event_id=str(uuid.UUID(int=n + 1, version=4)),
            v_collector="plowline-0.1.0", v_etl="plowline-enrich-0.1.0", domain_userid=f"user-{n % 5}",
            domain_sessionid=str(uuid.UUID(int=1000 + n % 5, version=4)), network_userid=f"nu-{n % 5}",
            useragent=IPHONE_UA if n % 4 == 0 else CHROME_UA, geo_country="DE" if n % 3 == 0 else None,
            page_url=f"https://shop.example{page}", page_urlhost="shop.example", page_urlpath=page,
            page_title=f"Page {n % 3}",
        )
        if kind == "page_view" and n == 0:
            event.refr_urlhost, event.refr_medium, event.refr_source = "www.google.com", "search", "Google"
            event.mkt_campaign, event.mkt_source, event.mkt_medium = "spring", "news", "email"
            event.contexts = [CONTEXT]
        if kind == "struct":
            event.event_vendor, event.event_name = "com.google.analytics", "event"
            event.event_format, event.event_version = "jsonschema", "1-0-0"
            event.se_category, event.se_action, event.se_value = "shop", "add", Decimal("2.5")
        if kind == "unstruct":
            event.event_vendor, event.event_name, event.event_format, event.event_version = (
                "com.acme", "e2e_event", "jsonschema", "1-0-0")
            event.unstruct_event = UNSTRUCT
        if kind == "page_view":
            event.event_vendor, event.event_name = "com.snowplowanalytics.snowplow", "page_view"
            event.event_format, event.event_version = "jsonschema", "1-0-0"
        events.append(event)
    return events


def make_bad_rows() -> list[dict[str, Any]]:
    raw = {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2",
           "parameters": [{"name": "e", "value": "ue"}, {"name": "aid", "value": "shop"}],
           "contentType": "application/json", "loaderName": "ssc", "encoding": "UTF-8", "hostname": "h",
           "timestamp": "2024-05-01T12:30:00.000Z", "ipAddress": "127.0.0.1", "useragent": "ua",
           "refererUri": None, "headers": [], "userId": "nu-1"}
    schema = badrows.schema_violations(
        PROCESSOR, [{"schemaKey": "iglu:com.acme/e2e_event/jsonschema/1-0-0",
                     "error": {"error": "ValidationError", "dataReports": [
                         {"message": "$.n: string found, integer expected", "path": "$.n", "keyword": "type"}]}}],
        {"event_id": None}, raw, T0 + timedelta(minutes=30))
    payload = badrows.collector_payload_json("com.snowplowanalytics.snowplow", "tp2", [("e", "zz")], None, None,
                                             "ssc", "UTF-8", timestamp=int(T0.timestamp() * 1000))
    protocol = badrows.tracker_protocol_violations(
        PROCESSOR, "com.snowplowanalytics.snowplow", "tp2",
        [{"field": "e", "value": "zz", "expectation": "not a valid event type"}], payload, T0 + timedelta(minutes=31))
    return [schema, protocol]


@dataclass
class Dashboard:
    base_url: str
    events: list[EnrichedEvent]
    bad: list[dict[str, Any]]

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.base_url + path, params=params, timeout=30)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()


async def _load(settings: Settings, events: list[EnrichedEvent], bad: list[dict[str, Any]]) -> None:
    good_loader = open_duckdb_loader(settings, "enriched")
    bad_loader = open_duckdb_loader(settings, "bad")
    await good_loader.write([event.to_tsv().encode() for event in events])
    await bad_loader.write([badrows.serialize(row) for row in bad])
    await good_loader.close()
    await bad_loader.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("dashboard")
    events, bad = make_events(), make_bad_rows()
    asyncio.run(_load(Settings.model_validate({"data_dir": str(root / "data")}), events, bad))
    with duckdb.connect(str(root / "data" / "warehouse.duckdb")) as con:  # what `plowline models run` makes
        con.execute("CREATE SCHEMA derived; CREATE TABLE derived.page_views AS SELECT * FROM range(3) t(n)")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(base_url + "/dashboard/api/config", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    process = PlowlineProcess(["dashboard", "--data-dir", str(root / "data"), "--port", str(port)], root,
                              root / "dashboard.log").start(ready)
    try:
        yield Dashboard(base_url, events, bad)
    finally:
        assert process.stop() in STOPPED, process.log()


def test_page_and_assets_are_served(dashboard: Dashboard) -> None:
    page = httpx.get(dashboard.base_url + "/dashboard", follow_redirects=True, timeout=10)
    assert page.status_code == 200 and page.url.path == "/dashboard/"
    assert "text/html" in page.headers["content-type"] and 'src="static/dashboard.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("dashboard.js", "dashboard.css"):
        asset = httpx.get(f"{dashboard.base_url}/dashboard/static/{name}", timeout=10)
        assert asset.status_code == 200 and len(asset.content) > 1000
    assert httpx.get(dashboard.base_url + "/dashboard/static/../app.py", timeout=10).status_code == 404
    assert dashboard.get("/dashboard/api/config")["refresh_s"] == 5.0


def test_summary_counts_the_range(dashboard: Dashboard) -> None:
    day = dashboard.get("/dashboard/api/summary", **DAY)
    assert day | {"first": None, "last": None} == {
        "events": 42, "page_views": 30, "users": 5, "sessions": 5, "bad": 2, "first": None, "last": None}
    assert day["first"] == "2024-05-01T12:00:00Z" and day["last"] == "2024-05-01T12:41:00Z"
    everything = dashboard.get("/dashboard/api/summary")
    assert (everything["events"], everything["page_views"], everything["bad"]) == (46, 34, 2)


def test_timeseries_buckets_by_span(dashboard: Dashboard) -> None:
    hour = dashboard.get("/dashboard/api/timeseries", **{"from": "2024-05-01T12:00:00Z", "to": "2024-05-01T13:00:00Z"})
    assert hour["bucket"] == "minute" and len(hour["points"]) == 60
    assert [point["events"] for point in hour["points"]] == [1] * 42 + [0] * 18
    assert sum(point["bad"] for point in hour["points"]) == 2 and hour["points"][30]["bad"] == 1
    assert hour["points"][0] == {"t": "2024-05-01T12:00:00Z", "events": 1, "page_views": 1, "users": 1, "bad": 0}
    day = dashboard.get("/dashboard/api/timeseries", **DAY)
    assert day["bucket"] == "hour" and len(day["points"]) == 24
    assert day["points"][12]["events"] == 42 and day["points"][12]["users"] == 5
    everything = dashboard.get("/dashboard/api/timeseries")
    assert everything["bucket"] == "hour" and sum(point["events"] for point in everything["points"]) == 46


def test_top_breakdowns(dashboard: Dashboard) -> None:
    pages = dashboard.get("/dashboard/api/top/pages", **DAY)
    assert [(row["label"], row["count"]) for row in pages] == [
        ("shop.example/p0", 10), ("shop.example/p1", 10), ("shop.example/p2", 10)]
    assert pages[0]["detail"] == "Page 0"
    referrers = dashboard.get("/dashboard/api/top/referrers", **DAY)
    assert [(row["label"], row["detail"], row["count"]) for row in referrers] == [("www.google.com", "search", 1)]
    campaigns = dashboard.get("/dashboard/api/top/campaigns", **DAY)
    assert [(row["label"], row["detail"]) for row in campaigns] == [("spring", "news / email")]
    devices = {row["label"]: row["count"] for row in dashboard.get("/dashboard/api/top/devices", **DAY)}
    assert devices == {"Computer": 31, "Mobile": 11}
    browsers = {row["label"]: row["count"] for row in dashboard.get("/dashboard/api/top/browsers", **DAY)}
    assert browsers == {"Chrome": 31, "Safari": 11}
    countries = {row["label"]: row["count"] for row in dashboard.get("/dashboard/api/top/countries", **DAY)}
    assert countries == {"(none)": 28, "DE": 14}
    assert dashboard.get("/dashboard/api/top/pages", limit=1, **DAY)[0]["label"] == "shop.example/p0"
    assert httpx.get(dashboard.base_url + "/dashboard/api/top/passwords", timeout=10).status_code == 404


def test_feed_filters_and_pages(dashboard: Dashboard) -> None:
    everything = dashboard.get("/dashboard/api/events", limit=500)["items"]
    assert len(everything) == 48 and everything[0]["time"] == "2024-05-02T12:45:00Z"
    assert [item["status"] for item in everything].count("bad") == 2
    times = [item["time"] for item in everything]
    assert times == sorted(times, reverse=True)
    good = dashboard.get("/dashboard/api/events", status="good", limit=500)["items"]
    assert len(good) == 46 and {item["status"] for item in good} == {"good"}
    bad = dashboard.get("/dashboard/api/events", status="bad")["items"]
    assert [item["type"] for item in bad] == ["tracker_protocol_violations", "schema_violations"]
    assert bad[1]["detail"] == "ValidationError; $.n: string found, integer expected; path: $.n; keyword: type"
    structs = dashboard.get("/dashboard/api/events", event="struct")["items"]
    assert len(structs) == 10 and {item["type"] for item in structs} == {"struct"}
    assert {item["detail"] for item in structs} == {"shop / add"}
    blog = dashboard.get("/dashboard/api/events", app="blog", limit=500)["items"]
    assert len(blog) == 23 and {item["app"] for item in blog} == {"blog"}
    by_schema = dashboard.get("/dashboard/api/events", schema="iglu:com.acme/e2e_event/jsonschema/1-0-0")["items"]
    assert [item["id"] for item in by_schema] == [str(uuid.UUID(int=n + 1, version=4)) for n in (41, 40)]
    bad_by_schema = dashboard.get("/dashboard/api/events", schema=badrows.SCHEMA_VIOLATIONS)["items"]
    assert [item["status"] for item in bad_by_schema] == ["bad"]
    in_day = dashboard.get("/dashboard/api/events", status="good", limit=500, **DAY)["items"]
    assert len(in_day) == 42
    first, second = (dashboard.get("/dashboard/api/events", limit=20, offset=offset)["items"] for offset in (0, 20))
    assert [item["id"] for item in first + second] == [item["id"] for item in everything[:40]]
    # A quote in a filter value is data, not SQL.
    assert dashboard.get("/dashboard/api/events", app="x' OR '1'='1")["items"] == []


def test_options_list_what_is_there(dashboard: Dashboard) -> None:
    options = dashboard.get("/dashboard/api/options")
    assert options["event"] == ["page_view", "struct", "unstruct"]
    assert options["app"] == ["blog", "shop"]
    assert "iglu:com.acme/e2e_event/jsonschema/1-0-0" in options["schema"]
    assert sorted(options["bad_schema"]) == sorted([badrows.SCHEMA_VIOLATIONS, badrows.TRACKER_PROTOCOL_VIOLATIONS])
    assert dashboard.get("/dashboard/api/derived") == [{"name": "page_views", "rows": 3}]


def test_an_event_opens_to_its_full_json(dashboard: Dashboard) -> None:
    for event in (dashboard.events[0], dashboard.events[35], dashboard.events[41]):
        detail = dashboard.get(f"/dashboard/api/events/{event.event_id}")
        assert detail["event"] == orjson.loads(orjson.dumps(event.to_json()))
        assert detail["tsv"] == event.to_tsv()
    assert dashboard.get(f"/dashboard/api/events/{dashboard.events[0].event_id}")["event"][
        "contexts_com_acme_e2e_context_1"] == [{**CONTEXT["data"], "_schema_version": "1-0-0"}]
    missing = httpx.get(f"{dashboard.base_url}/dashboard/api/events/{uuid.uuid4()}", timeout=10)
    assert missing.status_code == 404
    assert httpx.get(f"{dashboard.base_url}/dashboard/api/events/not-a-uuid", timeout=10).status_code == 404


def test_a_bad_row_opens_with_its_messages(dashboard: Dashboard) -> None:
    feed = dashboard.get("/dashboard/api/events", status="bad")["items"]
    protocol = dashboard.get(f"/dashboard/api/bad/{feed[0]['id']}")
    assert protocol["row"] == dashboard.bad[1]
    assert protocol["messages"] == ["field: e; value: zz; not a valid event type"]
    schema = dashboard.get(f"/dashboard/api/bad/{feed[1]['id']}")
    assert schema["row"] == dashboard.bad[0] and schema["schema"] == badrows.SCHEMA_VIOLATIONS
    assert httpx.get(dashboard.base_url + "/dashboard/api/bad/nothing", timeout=10).status_code == 404


def test_read_only_and_bad_parameters(dashboard: Dashboard) -> None:
    assert httpx.post(dashboard.base_url + "/dashboard/api/events", timeout=10).status_code == 405
    assert httpx.delete(dashboard.base_url + "/dashboard/api/events/x", timeout=10).status_code == 405
    bad_time = httpx.get(dashboard.base_url + "/dashboard/api/summary", params={"from": "yesterday"}, timeout=10)
    assert bad_time.status_code == 400 and "ISO 8601" in bad_time.json()["error"]
    assert httpx.get(dashboard.base_url + "/dashboard/api/events", params={"status": "odd"}, timeout=10).status_code == 400
    # Micro is off by default.
    assert httpx.get(dashboard.base_url + "/micro/all", timeout=10).status_code == 404


@pytest.mark.parametrize("command", [["dashboard"], ["collector", "--dashboard"], ["up"]])
def test_beyond_loopback_needs_a_token(tmp_path: Path, command: list[str]) -> None:
    """`plowline dashboard`, and the collector's port serving it (as under `plowline up`), refuse to start."""
    refused = run_plowline([*command, "--data-dir", str(tmp_path / "data"), "--host", "0.0.0.0",
                            "--port", str(free_port())], cwd=tmp_path, timeout_s=60)
    assert refused.returncode == 2 and "dashboard.token" in refused.stderr, refused.stderr
    assert "Uvicorn running" not in refused.stderr


def test_token_as_bearer_or_cookie(dashboard: Dashboard, tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    asyncio.run(_load(Settings.model_validate({"data_dir": str(data_dir)}), dashboard.events[:3], []))

    def ready() -> bool:
        try:
            return httpx.get(base_url + "/dashboard/api/config", timeout=1).status_code == 401
        except httpx.TransportError:
            return False

    process = PlowlineProcess(["dashboard", "--data-dir", str(data_dir), "--host", "0.0.0.0", "--port", str(port)],
                              tmp_path, tmp_path / "dashboard.log", env={"PLOWLINE_DASHBOARD__TOKEN": "s3cret"})
    process.start(ready)
    try:
        assert httpx.get(base_url + "/dashboard/", timeout=10).status_code == 401
        wrong = httpx.get(base_url + "/dashboard/api/summary", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        right = httpx.get(base_url + "/dashboard/api/summary", headers={"Authorization": "Bearer s3cret"}, timeout=10)
        assert right.status_code == 200 and right.json()["events"] == 3
        with httpx.Client(base_url=base_url, timeout=10) as client:
            trade = client.get("/dashboard/", params={"token": "s3cret", "x": "1"})
            assert trade.status_code == 303 and trade.headers["location"] == "/dashboard/?x=1"
            cookie = trade.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret" in cookie
            assert client.get("/dashboard/").status_code == 200  # the cookie now opens it
            assert client.get("/dashboard/api/summary").json()["events"] == 3
    finally:
        assert process.stop() in STOPPED, process.log()
