"""Size limits (3.11), request-line and header limits, sink failures, and malformed input."""

from __future__ import annotations

import orjson
import pytest

from plowline.payload import CollectorPayload
from tests.collector.conftest import Harness, HarnessFactory

TP2 = "/com.snowplowanalytics.snowplow/tp2"
SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
JSON = {"Content-Type": "application/json; charset=UTF-8"}
SIZE_VIOLATION = "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0"


def body_of(events: list[dict[str, str]]) -> str:
    return orjson.dumps({"schema": SCHEMA, "data": events}).decode()


def events(count: int, size: int) -> list[dict[str, str]]:
    return [{"e": "pv", "eid": f"event-{i:05d}", "url": "x" * size} for i in range(count)]


async def test_body_over_drop_size_is_refused_with_413(make_collector: HarnessFactory) -> None:
    harness = make_collector(networking={"max_payload_size": 1000, "drop_payload_size": 2000})
    response = await harness.client.post(TP2, content="x" * 2001, headers=JSON)
    assert response.status_code == 413
    assert harness.records() == [] and harness.bad_rows() == []


async def test_record_over_max_payload_size_becomes_a_size_violation(make_collector: HarnessFactory) -> None:
    harness = make_collector(max_record_bytes=500, networking={"max_payload_size": 1000, "drop_payload_size": 5000})
    response = await harness.client.post(TP2, content=body_of(events(3, 600)), headers=JSON)
    assert response.status_code == 200  # the request was handled: its bad row is durable
    assert harness.records() == []
    [row] = [orjson.loads(raw) for raw in harness.bad_rows()]
    assert row["schema"] == SIZE_VIOLATION
    failure = row["data"]["failure"]
    assert failure["maximumAllowedSizeBytes"] == 1000
    assert failure["actualSizeBytes"] > 1000
    assert failure["expectation"].startswith("oversized collector payload: Payload exceeds max size of 1000. Actual length: ")
    assert row["data"]["processor"]["artifact"] == "plowline-collector"
    assert len(row["data"]["payload"]) == 100  # first tenth of the allowed size
    assert failure["timestamp"].endswith("Z")


async def test_post_between_sink_limit_and_max_payload_is_split(make_collector: HarnessFactory) -> None:
    harness = make_collector(max_record_bytes=1200, networking={"max_payload_size": 100_000})
    sent = events(12, 150)
    huge = {"e": "pv", "eid": "huge", "url": "y" * 2000}
    response = await harness.client.post(TP2, content=body_of([*sent[:6], huge, *sent[6:]]), headers=JSON)
    assert response.status_code == 200
    records = harness.raw.records
    assert len(records) > 1
    assert all(len(record) <= 1200 for record in records)
    stored = [event for payload in harness.records() for event in orjson.loads(payload.body or "")["data"]]
    assert stored == sent  # every event kept once, in order, except the one too big on its own
    for payload in harness.records():
        assert orjson.loads(payload.body or "")["schema"] == SCHEMA
        assert payload.path == TP2
    [row] = [orjson.loads(raw) for raw in harness.bad_rows()]
    assert row["data"]["failure"]["expectation"] == "oversized collector payload: this POST request split is still too large"
    assert row["data"]["failure"]["maximumAllowedSizeBytes"] == 1200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json " * 100, "cannot split POST requests which are not json"),
        (orjson.dumps(["a" * 900]).decode(), "cannot split POST requests which are not self-describing"),
        (orjson.dumps({"schema": SCHEMA, "data": "b" * 900}).decode(), "which do not contain a data array"),
    ],
)
async def test_unsplittable_posts_become_one_size_violation(make_collector: HarnessFactory, body: str, message: str) -> None:
    harness = make_collector(max_record_bytes=600, networking={"max_payload_size": 100_000})
    response = await harness.client.post(TP2, content=body, headers=JSON)
    assert response.status_code == 200
    assert harness.records() == []
    [row] = [orjson.loads(raw) for raw in harness.bad_rows()]
    assert message in row["data"]["failure"]["expectation"]


async def test_oversized_get_cannot_be_split(make_collector: HarnessFactory) -> None:
    harness = make_collector(max_record_bytes=600, networking={"max_payload_size": 100_000})
    response = await harness.client.get("/i?e=pv&url=" + "z" * 1000)
    assert response.status_code == 200
    [row] = [orjson.loads(raw) for raw in harness.bad_rows()]
    assert row["data"]["failure"]["expectation"] == "oversized collector payload: GET requests cannot be split"


async def test_request_line_and_headers_limits_give_400(make_collector: HarnessFactory) -> None:
    harness = make_collector(networking={"max_request_line_length": 200, "max_headers_length": 400})
    long_line = await harness.client.get("/i?e=pv&x=" + "a" * 300)
    assert long_line.status_code == 400
    big_headers = await harness.client.get("/i?e=pv", headers={"X-Big": "b" * 500})
    assert big_headers.status_code == 400
    assert harness.records() == []


async def test_sink_failure_answers_503_and_recovers(collector_app: Harness) -> None:
    collector_app.raw.fail_next(1)
    failed = await collector_app.client.get("/i?e=pv&n=1")
    assert failed.status_code == 503
    assert collector_app.records() == []
    ok = await collector_app.client.get("/i?e=pv&n=2")
    assert ok.status_code == 200
    assert [r.querystring for r in collector_app.records()] == ["e=pv&n=2"]


async def test_invalid_utf8_querystring_is_kept_percent_encoded(collector_app: Harness) -> None:
    status, _, _ = await collector_app.asgi(
        "GET", "/i", b"e=pv&raw=\xff\xfe&ok=\xc3\xa9",
        headers=[(b"host", b"c.test"), (b"user-agent", b"\xff\xfeodd-agent")],
    )
    assert status == 200
    [record] = collector_app.records()
    assert record.querystring == "e=pv&raw=%FF%FE&ok=\u00e9"
    assert record.user_agent == "\u00ff\u00feodd-agent"  # Latin-1, so no byte is lost


async def test_invalid_utf8_body_is_stored_with_replacement_characters(collector_app: Harness) -> None:
    response = await collector_app.client.post(TP2, content=b'{"a":"\xff"}', headers=JSON)
    assert response.status_code == 200
    assert collector_app.records()[0].body == '{"a":"\ufffd"}'


@pytest.mark.parametrize(
    "query", [b"&&&", b"e=pv&%zz=1", b"=novalue", b"e=pv&a=%", b"a=b=c&&", b"%E0%A4%A", b"a={\"x\"}&b=<script>", b"q=a b"]
)
async def test_malformed_querystrings_are_stored_exactly_as_received(collector_app: Harness, query: bytes) -> None:
    # Enrich decides what they mean; the collector keeps them byte for byte (spec 4.2).
    status, _, body = await collector_app.asgi("GET", "/i", query)
    assert status == 200
    assert body[:6] == b"GIF89a"
    assert [r.querystring for r in collector_app.records()] == [query.decode()]


@pytest.mark.parametrize("path", ["/%ZZ/v1", "/com.acme/%C0%AF", "/../etc/passwd", "//i", "/i/", "/\u00e9/\u00e8/x"])
async def test_odd_paths_never_fail(collector_app: Harness, path: str) -> None:
    status, _, _ = await collector_app.asgi("GET", path)
    assert status in (200, 404)


async def test_stored_records_decode_round_trip(collector_app: Harness) -> None:
    await collector_app.client.get("/i?e=pv", headers={"Referer": "https://r.example/"})
    raw = collector_app.raw.records[0]
    assert CollectorPayload.from_thrift(raw).to_thrift() == raw
