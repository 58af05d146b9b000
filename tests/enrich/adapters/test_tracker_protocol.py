"""TP1 and TP2 adapters against the spec's examples and every violation Enrich's Tp1/Tp2Adapter reports."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from plowline.enrich.adapters.common import MAX_JSON_DEPTH, InvalidJson, parse_json
from plowline.enrich.adapters.tracker_protocol import _events
from plowline.enrich.errors import AdapterFailure
from plowline.enrich.loader import load_request
from plowline.iglu.resolver import Resolver
from plowline.iglu.validation import json_depth_exceeds
from tests.enrich.adapters.conftest import failure_messages, raw_events
from tests.enrich.adapters.examples import NUID, TIMESTAMP, Example, example, example_base64

TP2 = "/com.snowplowanalytics.snowplow/tp2"
EXPECTED_CT = ("expected one of application/json, application/json; charset=utf-8, "
               "application/json; charset=UTF-8")


def post(body: str | None, content_type: str | None = "application/json", querystring: str | None = None) -> bytes:
    headers = [f"Content-Type: {content_type}"] if content_type is not None else []
    return Example("POST", TP2, querystring, headers, body).record(content_type=content_type)


def payload_data(*events: dict[str, Any], version: str = "1-0-4") -> str:
    return json.dumps({"schema": f"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/{version}",
                       "data": list(events)})


# --- the spec's examples ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["EX01", "EX02", "EX03", "EX04"])
def test_post_examples_one_event_each_with_the_body_parameters(name: str, resolver: Resolver) -> None:
    request = example(name)
    assert request.body is not None
    expected = json.loads(request.body)["data"]
    events = raw_events(request.record(), resolver)
    assert [event.parameters for event in events] == expected
    assert [list(event.parameters) for event in events] == [list(item) for item in expected]


def test_post_event_carries_the_request_context(resolver: Resolver) -> None:
    request = example("EX03")
    [event] = raw_events(request.record(), resolver)
    assert (event.vendor, event.version) == ("com.snowplowanalytics.snowplow", "tp2")
    assert event.content_type == "application/json"
    assert event.loader_name == "thrift"
    assert event.encoding == "UTF-8"
    assert event.hostname == "collector.acme.com"
    assert event.timestamp == TIMESTAMP
    assert event.ip_address == "203.0.113.9"
    assert event.useragent == "Mozilla/5.0 (example)"
    assert event.referer_uri is None
    assert event.headers == ["Content-Type: application/json", "application/json"]
    assert event.user_id == NUID


def test_ex19_querystring_overrides_and_extends_every_body_event(resolver: Resolver) -> None:
    events = raw_events(example("EX19").record(), resolver)
    assert [event.parameters for event in events] == [
        {"tv": "0", "p": "1", "e": "1", "nuid": "123"},
        {"tv": "0", "p": "2", "e": "2", "nuid": "123"},
        {"tv": "0", "p": "3", "e": "3", "nuid": "123"},
    ]


def test_querystring_name_without_value_overrides_with_null(resolver: Resolver) -> None:
    record = post(payload_data({"e": "pv", "p": "web", "tv": "js-3", "aid": "x"}), querystring="aid")
    [event] = raw_events(record, resolver)
    assert event.parameters == {"e": "pv", "p": "web", "tv": "js-3", "aid": None}


GETS = [
    ("EX05", {"e": "pv", "page": "Root README", "url": "http://github.com/snowplow/snowplow", "aid": "snowplow",
              "p": "web", "tv": "no-js-0.1.0"}),
    ("EX06", {"e": "ue", "ue_pr": '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
                                  '"data":{"schema":"iglu:com.acme/email_open/jsonschema/1-0-0",'
                                  '"data":{"emailId":"abc123","campaign":"spring-sale"}}}',
              "aid": "acme", "p": "web", "tv": "no-js-0.1.0"}),
    ("EX07", {"e": "pv", "page": "Root README", "url": "http://github.com/snowplow/snowplow",
              "co": '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",'
                    '"data":[{"schema":"iglu:com.acme/email_open/jsonschema/1-0-0",'
                    '"data":{"emailId":"abc123","campaign":"spring-sale"}}]}',
              "aid": "snowplow", "p": "web", "tv": "no-js-0.1.0"}),
]


@pytest.mark.parametrize(("name", "parameters"), GETS, ids=[name for name, _ in GETS])
def test_get_pixel_examples(name: str, parameters: dict[str, str], resolver: Resolver) -> None:
    [event] = raw_events(example(name).record(), resolver)
    assert (event.vendor, event.version) == ("com.snowplowanalytics.snowplow", "tp1")
    assert event.parameters == parameters


def test_ex16_record_through_tp1(resolver: Resolver) -> None:
    [event] = raw_events(example_base64("EX16"), resolver)
    assert event.parameters == {"testParam": "3", "testParam2": "4"}
    assert event.user_id == "c5f3a09f-75f8-4309-bec5-fea560f78455"
    assert event.ip_address == "127.0.0.1"
    assert event.timestamp == 1389833398278


def test_ex17_record_through_tp1(resolver: Resolver) -> None:
    [event] = raw_events(example_base64("EX17"), resolver)
    assert event.parameters == load_request(example_base64("EX17")).parameters()
    assert event.parameters["uid"] == "alex 123"
    assert event.parameters["co"] == \
        '{"page":{"page_type":"test","last_updated$tms":1393372800000},"user":{"user_type":"tester"}}'
    assert event.user_id == "75a13583-5c99-40e3-81fc-541084dfc784"


def test_tp2_get_querystring_is_one_event(resolver: Resolver) -> None:
    record = Example("GET", TP2, "e=pv&p=web&tv=js-3&e=pp").record()
    [event] = raw_events(record, resolver)
    assert event.parameters == {"e": "pp", "p": "web", "tv": "js-3"}


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/json; charset=UTF-8"])
def test_tp2_accepted_content_types(content_type: str, resolver: Resolver) -> None:
    [event] = raw_events(post(payload_data({"e": "pv", "p": "web", "tv": "t"}), content_type), resolver)
    assert event.content_type == content_type


@pytest.mark.parametrize("version", ["1-0-0", "1-0-1", "1-0-2", "1-0-3", "1-0-4"])
def test_tp2_any_payload_data_1_0_x(version: str, resolver: Resolver) -> None:
    events = raw_events(post(payload_data({"e": "pv", "p": "web", "tv": "t"}, version=version)), resolver)
    assert len(events) == 1


# --- violations ----------------------------------------------------------------------------------------

def im(field: str, value: str | None, expectation: str) -> dict[str, Any]:
    return {"field": field, "value": value, "expectation": expectation}


VIOLATIONS: list[tuple[str, bytes, list[dict[str, Any]]]] = [
    ("tp1-empty-querystring", Example("GET", "/i", None).record(),
     [im("querystring", None, "empty querystring: not a valid URI redirect")]),
    ("tp1-only-separators", Example("GET", "/i", "&&=x").record(),
     [im("querystring", None, "empty querystring: not a valid URI redirect")]),
    ("tp2-nothing", Example("GET", TP2, None).record(),
     [im("body", None, "empty body: not a valid tracker protocol event"),
      im("querystring", None, "empty querystring: not a valid tracker protocol event")]),
    ("tp2-content-type-but-nothing", post(None),
     [im("body", None, "empty body: not a valid tracker protocol event"),
      im("querystring", None, "empty querystring: not a valid tracker protocol event")]),
    ("tp2-get-with-other-content-type", post(None, "text/plain", "e=pv"), [im("contentType", "text/plain", EXPECTED_CT)]),
    ("tp2-content-type-without-space", post(payload_data({"e": "pv"}), "application/json;charset=utf-8"),
     [im("contentType", "application/json;charset=utf-8", EXPECTED_CT)]),
    ("tp2-content-type-upper-case", post(payload_data({"e": "pv"}), "Application/JSON"),
     [im("contentType", "Application/JSON", EXPECTED_CT)]),
    ("tp2-body-without-content-type", post(payload_data({"e": "pv"}), None), [im("contentType", None, EXPECTED_CT)]),
    ("tp2-content-type-without-body", post(None, "application/json", "e=pv"),
     [im("body", None, "empty body: not a valid track protocol event")]),
    ("tp2-not-self-describing", post('{"e": "pv"}'), [{"json": {"e": "pv"}, "error": "INVALID_DATA_PAYLOAD"}]),
    ("tp2-bad-iglu-uri", post('{"schema": "payload_data", "data": []}'),
     [{"json": {"schema": "payload_data", "data": []}, "error": "INVALID_IGLUURI"}]),
    ("tp2-contexts-not-payload-data",
     post('{"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "data": []}'),
     [{"schemaKey": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
       "schemaCriterion": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*"}]),
]


@pytest.mark.parametrize(("record", "messages"), [(r, m) for _, r, m in VIOLATIONS], ids=[i for i, _, _ in VIOLATIONS])
def test_violation_messages(record: bytes, messages: list[dict[str, Any]], resolver: Resolver) -> None:
    assert failure_messages(record, resolver) == messages


@pytest.mark.parametrize("body", ["", "not json", "{", '{"schema": 1,}', "[1, 2"])
def test_body_that_is_not_json(body: str, resolver: Resolver) -> None:
    [message] = failure_messages(post(body), resolver)
    assert set(message) == {"field", "value", "error"}
    assert (message["field"], message["value"]) == ("body", body)
    assert str(message["error"]).startswith("invalid json: ")


def test_body_nested_too_deep(resolver: Resolver) -> None:
    body = "[" * 60 + "]" * 60
    assert failure_messages(post(body), resolver) == [
        {"field": "body", "value": body, "error": "invalid json: deeper than 50"}]


@pytest.mark.parametrize("text", [
    "[" * 50 + "]" * 50, "[" * 51 + "]" * 51, "[" * 50 + "1" + "]" * 50, "[" * 49 + "{}" + "]" * 49,
    "[" * 50 + "{}" + "]" * 50, '{"a":' * 50 + "1" + "}" * 50, '{"a":' * 50 + "[]" + "}" * 50,
    "[" + ", ".join(["[" * 49 + "]" * 49] * 3) + "]", "[" + "[]," * 60 + "[]]",
])
def test_body_depth_limit_is_the_resolvers(text: str) -> None:
    # The adapter's limit on a body and the resolver's on an entity count depth the same way,
    # empty containers included, so no payload passes one and fails the other at the limit.
    too_deep = json_depth_exceeds(orjson.loads(text), MAX_JSON_DEPTH)
    if too_deep:
        with pytest.raises(InvalidJson, match="deeper than 50"):
            parse_json(text)
    else:
        assert parse_json(text) == orjson.loads(text)


def test_unknown_schema_is_a_resolution_error(resolver: Resolver) -> None:
    [message] = failure_messages(post('{"schema": "iglu:com.acme/nope/jsonschema/1-0-0", "data": []}'), resolver)
    assert message["schemaKey"] == "iglu:com.acme/nope/jsonschema/1-0-0"
    assert isinstance(message["error"], dict) and message["error"]["error"] == "ResolutionError"


def test_unknown_payload_data_version_is_a_resolution_error(resolver: Resolver) -> None:
    [message] = failure_messages(post(payload_data({"e": "pv"}, version="1-0-99")), resolver)
    assert message["schemaKey"] == "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-99"
    assert isinstance(message["error"], dict) and message["error"]["error"] == "ResolutionError"


INVALID_PAYLOAD_DATA = [
    ("empty-list", payload_data()),
    ("missing-required", payload_data({"e": "pv"})),
    ("unknown-parameter", payload_data({"e": "pv", "p": "web", "tv": "t", "cv": "x"})),
    ("non-string-value", payload_data({"e": "pv", "p": "web", "tv": 3})),
    ("null-value", payload_data({"e": "pv", "p": "web", "tv": None})),
    ("data-not-an-array", '{"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": {}}'),
]


@pytest.mark.parametrize("body", [b for _, b in INVALID_PAYLOAD_DATA], ids=[i for i, _ in INVALID_PAYLOAD_DATA])
def test_invalid_payload_data_is_an_iglu_validation_error(body: str, resolver: Resolver) -> None:
    [message] = failure_messages(post(body), resolver)
    assert message["schemaKey"] == "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
    assert isinstance(message["error"], dict) and message["error"]["error"] == "ValidationError"
    assert message["error"]["dataReports"]


# payload_data's schema rejects these before Tp2Adapter's own checks run; the checks are kept for
# payload_data versions that would allow them, so they are tested directly.
EVENTS_CHECKS: list[tuple[str, Any, list[dict[str, Any]]]] = [
    ("object", {"e": "pv"}, [im("body", '{"e":"pv"}', "json is not an array")]),
    ("element-not-object", [{"e": "pv"}, "x"], [im("body", '[{"e":"pv"},"x"]', "json is not an array")]),
    ("empty", [], [im("body", "[]", "empty list of events")]),
    ("null-and-non-string", [{"e": None, "p": 1}, {"tv": ["a"]}],
     [im("e", None, "value cannot be null"), im("p", "1", "value is not a string"),
      im("tv", '["a"]', "value is not a string")]),
]


@pytest.mark.parametrize(("data", "messages"), [(d, m) for _, d, m in EVENTS_CHECKS], ids=[i for i, _, _ in EVENTS_CHECKS])
def test_tp2_event_checks(data: Any, messages: list[dict[str, Any]]) -> None:
    with pytest.raises(AdapterFailure) as caught:
        _events(data, {})
    assert caught.value.messages == messages
