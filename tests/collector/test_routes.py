"""Every collector route and response of spec/protocol.md 3.1-3.3, 3.7-3.10."""

from __future__ import annotations

import uuid

import pytest

from plowline.collector.responses import PIXEL, ROBOTS_TXT
from tests.collector.conftest import Harness, HarnessFactory

TP2 = "/com.snowplowanalytics.snowplow/tp2"
JSON = "application/json; charset=UTF-8"
BODY = '{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","tv":"js-3","p":"web"}]}'


def is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(value or "")
    except ValueError:
        return False
    return True


async def test_get_pixel_answers_the_gif_and_stores_the_request(collector_app: Harness) -> None:
    response = await collector_app.client.get(
        "/i?e=pv&url=https%3A%2F%2Fexample.com%2F&aid=shop",
        headers={"User-Agent": "Mozilla/5.0 test", "Referer": "https://example.com/", "Accept-Language": "en"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL and len(PIXEL) == 43
    assert response.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-credentials"] == "true"
    [record] = collector_app.records()
    assert record.path == "/i"
    assert record.querystring == "e=pv&url=https%3A%2F%2Fexample.com%2F&aid=shop"
    assert record.ip_address == "203.0.113.7"
    assert record.user_agent == "Mozilla/5.0 test"
    assert record.referer_uri == "https://example.com/"
    assert record.hostname == "collector.test"
    assert record.encoding == "UTF-8"
    assert record.collector == "plowline-test-memory"
    assert record.body is None
    assert "Accept-Language: en" in (record.headers or [])
    assert record.header("user-agent") == "Mozilla/5.0 test"
    assert is_uuid(record.network_user_id)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"sp={record.network_user_id}; Expires=")
    for attribute in ("Path=/", "SameSite=None", "Secure", "HttpOnly"):
        assert attribute in cookie


@pytest.mark.parametrize("path", ["/i", "/ice.png", TP2, "/com.snowplowanalytics.iglu/v1", "/com.acme/v1"])
async def test_get_and_head_on_pixel_routes(collector_app: Harness, path: str) -> None:
    get = await collector_app.client.get(path + "?e=pv")
    head = await collector_app.client.head(path + "?e=pv")
    assert get.status_code == head.status_code == 200
    assert get.content == PIXEL
    assert head.content == b""
    assert [r.path for r in collector_app.records()] == [path, path]


async def test_post_tp2_answers_ok_and_keeps_the_body(collector_app: Harness) -> None:
    response = await collector_app.client.post(TP2, content=BODY, headers={"Content-Type": JSON})
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")
    [record] = collector_app.records()
    assert record.path == TP2
    assert record.body == BODY
    assert record.content_type == "application/json; charset=utf-8"
    assert record.headers is not None and record.headers[-1] == "application/json; charset=utf-8"
    assert record.querystring == ""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/i"),
        ("GET", "/a/b/c"),
        ("GET", "/nothing"),
        ("PUT", TP2),
        ("DELETE", "/i"),
        ("PATCH", "/com.acme/v1"),
        ("GET", "/"),
        ("GET", "/crossdomain.xml"),
        ("GET", TP2 + "/"),
    ],
)
async def test_everything_else_is_404_and_stores_nothing(collector_app: Harness, method: str, path: str) -> None:
    response = await collector_app.client.request(method, path)
    assert response.status_code == 404
    assert collector_app.records() == []


async def test_preflight_on_any_path_echoes_origin(collector_app: Harness) -> None:
    response = await collector_app.client.options("/anything/at/all", headers={"Origin": "https://shop.example"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-headers"] == "Content-Type, SP-Anonymous"
    assert response.headers["access-control-max-age"] == "3600"
    assert "access-control-allow-methods" not in response.headers
    assert collector_app.records() == []


async def test_tracking_response_echoes_first_origin(collector_app: Harness) -> None:
    response = await collector_app.client.post(
        TP2, content=BODY, headers={"Content-Type": JSON, "Origin": "https://a.example https://b.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://a.example"
    null = await collector_app.client.get("/i?e=pv", headers={"Origin": "null"})
    assert null.headers["access-control-allow-origin"] == "*"


async def test_health_robots_and_metrics(collector_app: Harness) -> None:
    health = await collector_app.client.get("/health")
    assert (health.status_code, health.text) == (200, "ok")
    sink_health = await collector_app.client.get("/sink-health")
    assert (sink_health.status_code, sink_health.text) == (200, "ok")
    robots = await collector_app.client.get("/robots.txt")
    assert robots.content == ROBOTS_TXT
    await collector_app.client.get("/i?e=pv")
    metrics = await collector_app.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'plowline_collector_requests_total{route="pixel",status="200"}' in metrics.text
    assert "plowline_collector_sink_write_seconds_bucket" in metrics.text
    assert collector_app.records()[0].path == "/i"


async def test_sink_health_reports_an_unhealthy_sink(collector_app: Harness) -> None:
    collector_app.bad.set_healthy(False)
    response = await collector_app.client.get("/sink-health")
    assert (response.status_code, response.text) == (503, "Service Unavailable")


async def test_redirect_is_off_by_default(collector_app: Harness) -> None:
    response = await collector_app.client.get("/r/tp2?u=https%3A%2F%2Fgithub.com%2F")
    assert (response.status_code, response.text) == (404, "redirects disabled")
    assert collector_app.records() == []


async def test_redirect_only_to_allow_listed_hosts(make_collector: HarnessFactory) -> None:
    harness = make_collector(enable_default_redirect=True, redirect_domains=["github.com"])
    allowed = await harness.client.get("/r/tp2?u=https%3A%2F%2Fgithub.com%2Fsnowplow%2Fsnowplow&aid=ads")
    assert allowed.status_code == 302
    assert allowed.headers["location"] == "https://github.com/snowplow/snowplow"
    assert "sp=" in allowed.headers["set-cookie"]
    for refused in ("/r/tp2?u=https%3A%2F%2Fevil.example%2F", "/r/tp2?u=https%3A%2F%2Fgithub.com.evil.example%2F",
                    "/r/tp2?u=javascript%3Aalert(1)", "/r/tp2?aid=ads", "/r/tp2?u=%2F%2Fevil.example"):
        response = await harness.client.get(refused)
        assert response.status_code == 400, refused
        assert "location" not in response.headers
    # The event is stored even when the redirect is refused (spec 3.8).
    assert [r.path for r in harness.records()] == ["/r/tp2"] * 6
    assert harness.records()[0].querystring == "u=https%3A%2F%2Fgithub.com%2Fsnowplow%2Fsnowplow&aid=ads"


async def test_redirect_enabled_with_empty_allow_list_redirects_nowhere(make_collector: HarnessFactory) -> None:
    harness = make_collector(enable_default_redirect=True)
    response = await harness.client.get("/r/tp2?u=https%3A%2F%2Fgithub.com%2F")
    assert response.status_code == 400


async def test_custom_paths_are_stored_as_canonical(make_collector: HarnessFactory) -> None:
    harness = make_collector(paths={"/acme/track": TP2, "/acme/redirect": "/r/tp2", "/acme/iglu": "/com.snowplowanalytics.iglu/v1"},
                             redirect_domains=["acme.example"])
    assert (await harness.client.post("/acme/track", content=BODY, headers={"Content-Type": JSON})).text == "ok"
    redirect = await harness.client.get("/acme/redirect?u=https%3A%2F%2Facme.example%2Fx")
    assert redirect.status_code == 302  # a custom path mapping to /r/tp2 works with the default redirect off
    assert (await harness.client.get("/acme/iglu?schema=x")).status_code == 200
    assert [r.path for r in harness.records()] == [TP2, "/r/tp2", "/com.snowplowanalytics.iglu/v1"]


async def test_root_response_and_crossdomain_when_enabled(make_collector: HarnessFactory) -> None:
    harness = make_collector(
        root_response={"enabled": True, "status_code": 302, "headers": {"Location": "https://acme.example/"}, "body": ""},
        cross_domain={"enabled": True, "domains": ["*.acme.example", "acme.example"], "secure": False},
    )
    root = await harness.client.get("/")
    assert root.status_code == 302
    assert root.headers["location"] == "https://acme.example/"
    cross = await harness.client.get("/crossdomain.xml")
    assert cross.status_code == 200
    assert cross.headers["content-type"] == "text/xml"
    assert cross.text == (
        '<?xml version="1.0"?>\n<cross-domain-policy>\n'
        '  <allow-access-from domain="*.acme.example" secure="false" />\n'
        '  <allow-access-from domain="acme.example" secure="false" />\n'
        "</cross-domain-policy>"
    )


async def test_hsts_header_when_enabled(make_collector: HarnessFactory) -> None:
    harness = make_collector(hsts={"enable": True, "max_age_s": 600})
    response = await harness.client.get("/health")
    assert response.headers["strict-transport-security"] == "max-age=600"
