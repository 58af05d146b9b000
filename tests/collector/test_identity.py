"""network_userid, the sp cookie, SP-Anonymous, nuid, do-not-track, cookie bounce, X-Forwarded-For (3.2-3.6)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tests.collector.conftest import Harness, HarnessFactory

NUID = "c5f3a09f-75f8-4309-bec5-fea560f78455"
TP2 = "/com.snowplowanalytics.snowplow/tp2"


async def test_existing_cookie_is_reused_and_renewed(collector_app: Harness) -> None:
    response = await collector_app.client.get("/i?e=pv", headers={"Cookie": f"other=1; sp={NUID}"})
    [record] = collector_app.records()
    assert record.network_user_id == NUID
    assert response.headers["set-cookie"].startswith(f"sp={NUID}; ")
    expires = parsedate_to_datetime(response.headers["set-cookie"].split("Expires=")[1].split(";")[0])
    assert 364 * 86400 < (expires - datetime.now(UTC)).total_seconds() <= 365 * 86400


async def test_nuid_parameter_wins_over_cookie(collector_app: Harness) -> None:
    await collector_app.client.get(f"/i?e=pv&nuid={NUID}", headers={"Cookie": "sp=11111111-1111-4111-8111-111111111111"})
    assert collector_app.records()[0].network_user_id == NUID


async def test_x_forwarded_for_first_value_is_the_ip(collector_app: Harness) -> None:
    await collector_app.client.get("/i?e=pv", headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.1"})
    record = collector_app.records()[0]
    assert record.ip_address == "198.51.100.1"
    assert record.header("X-Forwarded-For") == "198.51.100.1, 10.0.0.1"


async def test_sp_anonymous_hides_identity_and_clears_the_cookie(collector_app: Harness) -> None:
    response = await collector_app.client.post(
        TP2,
        content="{}",
        headers={"Content-Type": "application/json", "SP-Anonymous": "*", "Cookie": f"sp={NUID}",
                 "X-Forwarded-For": "198.51.100.1", "X-Real-Ip": "198.51.100.1"},
    )
    assert response.status_code == 200
    [record] = collector_app.records()
    assert record.ip_address == "unknown"
    assert record.network_user_id == "00000000-0000-0000-0000-000000000000"
    names = [line.split(":")[0].lower() for line in record.headers or [] if ":" in line]
    assert "sp-anonymous" in names
    assert not {"cookie", "x-forwarded-for", "x-real-ip"} & set(names)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sp=; Expires=")
    assert parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0]) < datetime.now(UTC)


async def test_sp_anonymous_without_cookie_sets_none(collector_app: Harness) -> None:
    response = await collector_app.client.get("/i?e=pv", headers={"SP-Anonymous": "*"})
    assert "set-cookie" not in response.headers
    assert collector_app.records()[0].network_user_id == "00000000-0000-0000-0000-000000000000"


async def test_cookie_attributes_and_domain_choice(make_collector: HarnessFactory) -> None:
    harness = make_collector(cookie={
        "name": "uid", "domains": ["acme.com", "other.org"], "fallback_domain": "fallback.net",
        "secure": False, "http_only": False, "same_site": "lax", "client_cookie_name": "uid_client",
        "expiration_days": 30,
    })
    first = await harness.client.get("/i?e=pv", headers={"Origin": "https://www.acme.com"})
    cookies = first.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("uid=") and cookies[1].startswith("uid_client=")
    assert "Domain=acme.com" in cookies[0]
    assert "SameSite=Lax" in cookies[0]
    assert "Secure" not in cookies[0] and "HttpOnly" not in cookies[0]
    no_match = await harness.client.get("/i?e=pv", headers={"Origin": "https://client.acme.co"})
    assert "Domain=fallback.net" in no_match.headers["set-cookie"]
    second_origin = await harness.client.get("/i?e=pv", headers={"Origin": "https://x.example https://shop.other.org"})
    assert "Domain=other.org" in second_origin.headers["set-cookie"]


async def test_cookie_can_be_disabled(make_collector: HarnessFactory) -> None:
    harness = make_collector(cookie={"enabled": False})
    response = await harness.client.get("/i?e=pv")
    assert "set-cookie" not in response.headers
    assert len(harness.records()) == 1


async def test_do_not_track_cookie_stores_nothing_but_answers_normally(make_collector: HarnessFactory) -> None:
    harness = make_collector(do_not_track_cookie={"enabled": True, "name": "dnt", "value": "y.s"})
    response = await harness.client.get("/i?e=pv", headers={"Cookie": "dnt=yes"})
    assert response.status_code == 200 and response.content[:6] == b"GIF89a"
    assert "set-cookie" not in response.headers
    not_full_match = await harness.client.get("/i?e=pv", headers={"Cookie": "dnt=yess"})
    assert not_full_match.status_code == 200
    assert len(harness.records()) == 1


async def test_cookie_bounce(make_collector: HarnessFactory) -> None:
    harness = make_collector(cookie_bounce={"enabled": True})
    bounce = await harness.client.get("/i?e=pv&aid=x")
    assert bounce.status_code == 302
    assert bounce.headers["location"] == "/i?e=pv&aid=x&n3pc=true"
    assert "sp=" in bounce.headers["set-cookie"]
    assert harness.records() == []  # a bounce stores nothing
    blocked = await harness.client.get("/i?e=pv&aid=x&n3pc=true")  # third-party cookies blocked
    assert blocked.status_code == 200
    [record] = harness.records()
    assert record.network_user_id == "00000000-0000-4000-A000-000000000000"
    assert record.querystring.endswith("n3pc=true")
    with_cookie = await harness.client.get("/i?e=pv", headers={"Cookie": f"sp={NUID}"})
    assert with_cookie.status_code == 200
    post = await harness.client.post(TP2, content="{}", headers={"Content-Type": "application/json"})
    assert post.status_code == 200  # never bounced
    assert len(harness.records()) == 3


async def test_cookie_bounce_with_forwarded_protocol(make_collector: HarnessFactory) -> None:
    harness = make_collector(cookie_bounce={"enabled": True, "forwarded_protocol_header": "X-Forwarded-Proto"})
    bounce = await harness.client.get("/i?e=pv", headers={"X-Forwarded-Proto": "https"})
    assert bounce.headers["location"] == "https://collector.test/i?e=pv&n3pc=true"


async def test_cookie_header_is_cleaned_as_snowplow_records_it(collector_app: Harness) -> None:
    await collector_app.client.get("/i?e=pv", headers={"Cookie": f'cookie=value; bad="quoted"; sp={NUID}'})
    record = collector_app.records()[0]
    assert record.header("Cookie") == f"cookie=value;sp={NUID}"
    assert record.network_user_id == NUID


async def test_headers_are_recorded_in_order_with_content_type_last(collector_app: Harness) -> None:
    sent = [(b"host", b"c.test"), (b"accept", b"*/*"), (b"content-type", b"Application/JSON"),
            (b"x-custom-thing", b"v1"), (b"user-agent", b"ua/1")]
    status, _, _ = await collector_app.asgi("POST", TP2, headers=sent, body=b"{}")
    assert status == 200
    assert collector_app.records()[0].headers == [
        "Host: c.test", "Accept: */*", "Content-Type: Application/JSON", "X-Custom-Thing: v1", "User-Agent: ua/1",
        "application/json",
    ]
