"""The Iglu webhook adapter (com.snowplowanalytics.iglu/v1): EX09-EX11 and Enrich's IgluAdapter cases."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from plowline.iglu.resolver import Resolver
from tests.enrich.adapters.conftest import failure_messages, raw_events
from tests.enrich.adapters.examples import Example, example

PATH = "/com.snowplowanalytics.iglu/v1"
SOCIAL = "iglu:com.snowplowanalytics.snowplow/social_interaction/jsonschema/1-0-0"
SCHEMA = "schema=" + quote(SOCIAL, safe="")
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
EXPECTED_ANY = "expected one of application/json, application/json; charset=utf-8, application/x-www-form-urlencoded"
EXPECTED_JSON = "expected one of application/json, application/json; charset=utf-8"


def webhook(querystring: str | None, body: str | None = None, content_type: str | None = None) -> bytes:
    headers = [f"Content-Type: {content_type}"] if content_type else []
    return Example("POST" if body is not None else "GET", PATH, querystring, headers, body).record(
        content_type=content_type)


def ue_pr(schema: str, data: Any) -> str:
    return json.dumps({"schema": UNSTRUCT, "data": {"schema": schema, "data": data}}, separators=(",", ":"),
                      ensure_ascii=False)


def events(record: bytes, resolver: Resolver) -> list[dict[str, str | None]]:
    made = raw_events(record, resolver)
    assert all((event.vendor, event.version) == ("com.snowplowanalytics.iglu", "v1") for event in made)
    return [event.parameters for event in made]


def test_ex09_get_with_schema_in_querystring(resolver: Resolver) -> None:
    assert events(example("EX09").record(), resolver) == [{
        "tv": "com.snowplowanalytics.iglu-v1",
        "e": "ue",
        "p": "mob",
        "ue_pr": ue_pr(SOCIAL, {"network": "twitter", "action": "retweet"}),
        "aid": "mobile-attribution",
    }]


def test_ex10_post_self_describing_body(resolver: Resolver) -> None:
    assert events(example("EX10").record(), resolver) == [{
        "tv": "com.snowplowanalytics.iglu-v1",
        "e": "ue",
        "p": "app",
        "ue_pr": ue_pr(SOCIAL, {"network": "twitter", "action": "retweet"}),
    }]


def test_ex11_post_form_body_with_schema_in_querystring(resolver: Resolver) -> None:
    assert events(example("EX11").record(), resolver) == [{
        "tv": "com.snowplowanalytics.iglu-v1",
        "e": "ue",
        "p": "srv",
        "ue_pr": ue_pr(SOCIAL, {"network": "twitter", "action": "retweet"}),
    }]


def test_event_order_of_parameters(resolver: Resolver) -> None:
    [parameters] = events(webhook(f"url=u&{SCHEMA}&nuid=n&aid=a&cv=c&eid=e&ttm=t&p=web&x=1"), resolver)
    assert list(parameters) == ["tv", "e", "p", "ue_pr", "url", "nuid", "aid", "cv", "eid", "ttm"]


def test_get_data_leaves_out_the_copied_identifiers_but_keeps_eid_ttm_url(resolver: Resolver) -> None:
    [parameters] = events(webhook(f"{SCHEMA}&nuid=n&aid=a&cv=c&p=web&eid=e&ttm=t&url=u&x=1"), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, {"eid": "e", "ttm": "t", "url": "u", "x": "1"})
    assert {k: parameters[k] for k in ("nuid", "aid", "cv", "eid", "ttm", "url", "p")} == {
        "nuid": "n", "aid": "a", "cv": "c", "eid": "e", "ttm": "t", "url": "u", "p": "web"}


def test_get_empty_and_valueless_parameters_become_null(resolver: Resolver) -> None:
    [parameters] = events(webhook(f"{SCHEMA}&a=&b&c=%20"), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, {"a": None, "b": None, "c": " "})


def test_get_without_other_parameters_has_empty_data(resolver: Resolver) -> None:
    [parameters] = events(webhook(SCHEMA), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, {})


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_object_body_is_the_data(content_type: str, resolver: Resolver) -> None:
    [parameters] = events(webhook(SCHEMA, '{"network": "x", "n": 1.5, "ok": true, "nested": {"a": [null]}}',
                                  content_type), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, {"network": "x", "n": 1.5, "ok": True, "nested": {"a": [None]}})
    assert parameters["p"] == "app"


def test_json_array_body_is_one_event_per_element(resolver: Resolver) -> None:
    made = events(webhook(f"{SCHEMA}&aid=a", '[{"a": 1}, {"b": ""}, "text"]', "application/json"), resolver)
    assert [p["ue_pr"] for p in made] == [ue_pr(SOCIAL, {"a": 1}), ue_pr(SOCIAL, {"b": ""}), ue_pr(SOCIAL, "text")]
    assert all(p["aid"] == "a" for p in made)


def test_form_body_keeps_empty_strings_and_nulls(resolver: Resolver) -> None:
    [parameters] = events(webhook(SCHEMA, "a=&b&c=x+y&c=%C3%A9", "application/x-www-form-urlencoded"), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, {"a": "", "b": None, "c": "é"})


def test_self_describing_body_ignores_other_members(resolver: Resolver) -> None:
    body = json.dumps({"schema": SOCIAL, "data": {"network": "x"}, "extra": 1})
    [parameters] = events(webhook("p=web&aid=a", body, "application/json"), resolver)
    assert parameters == {"tv": "com.snowplowanalytics.iglu-v1", "e": "ue", "p": "web",
                          "ue_pr": ue_pr(SOCIAL, {"network": "x"}), "aid": "a"}


def test_schema_in_querystring_wins_over_a_self_describing_body(resolver: Resolver) -> None:
    body = json.dumps({"schema": "iglu:com.acme/other/jsonschema/1-0-0", "data": {}})
    [parameters] = events(webhook(SCHEMA, body, "application/json"), resolver)
    assert parameters["ue_pr"] == ue_pr(SOCIAL, json.loads(body))


def im(field: str, value: str | None, expectation: str) -> dict[str, Any]:
    return {"field": field, "value": value, "expectation": expectation}


VIOLATIONS: list[tuple[str, bytes, list[dict[str, Any]]]] = [
    ("nothing", webhook(None), [im("schema", None, "empty `schema` field"), im("body", None, "empty body")]),
    ("schema-without-value", webhook("schema&a=1"),
     [im("schema", None, "empty `schema` field"), im("body", None, "empty body")]),
    ("body-without-content-type", webhook(SCHEMA, "a=1"), [im("contentType", None, EXPECTED_ANY)]),
    ("bad-schema-uri", webhook("schema=nope"), [im("schema", "nope", "INVALID_IGLUURI")]),
    ("schema-with-other-content-type", webhook(SCHEMA, "a", "text/plain"), [im("contentType", "text/plain", EXPECTED_ANY)]),
    ("sdj-with-form-content-type", webhook(None, "a=1", "application/x-www-form-urlencoded"),
     [im("contentType", "application/x-www-form-urlencoded", EXPECTED_JSON)]),
    ("sdj-with-utf8-upper-case", webhook(None, "{}", "application/json; charset=UTF-8"),
     [im("contentType", "application/json; charset=UTF-8", EXPECTED_JSON)]),
    ("empty-array", webhook(SCHEMA, "[]", "application/json"), [im("body", "[]", "empty array of events")]),
    ("empty-object", webhook(SCHEMA, "{}", "application/json"), [im("body", "{}", "has no key-value pairs")]),
    ("scalar-body", webhook(SCHEMA, "42", "application/json"), [im("body", "42", "has no key-value pairs")]),
    ("form-not-a-uri-query", webhook(SCHEMA, "a=b c", "application/x-www-form-urlencoded"),
     [im("body", "a=b c", "Illegal character in query at index 21: http://localhost/?a=b c")]),
    ("form-bad-escape", webhook(SCHEMA, "a=%G1", "application/x-www-form-urlencoded"),
     [im("body", "a=%G1", "Malformed escape pair at index 20: http://localhost/?a=%G1")]),
    ("sdj-not-self-describing", webhook(None, '{"a": 1}', "application/json"),
     [{"json": {"a": 1}, "error": "INVALID_DATA_PAYLOAD"}]),
    ("sdj-without-data", webhook(None, json.dumps({"schema": SOCIAL}), "application/json"),
     [{"json": {"schema": SOCIAL}, "error": "INVALID_DATA_PAYLOAD"}]),
    ("sdj-bad-uri", webhook(None, '{"schema": "iglu:x", "data": {}}', "application/json"),
     [{"json": {"schema": "iglu:x", "data": {}}, "error": "INVALID_IGLUURI"}]),
    ("sdj-array", webhook(None, "[]", "application/json"), [{"json": [], "error": "INVALID_DATA_PAYLOAD"}]),
]


@pytest.mark.parametrize(("record", "messages"), [(r, m) for _, r, m in VIOLATIONS], ids=[i for i, _, _ in VIOLATIONS])
def test_violations(record: bytes, messages: list[dict[str, Any]], resolver: Resolver) -> None:
    assert failure_messages(record, resolver) == messages


@pytest.mark.parametrize("querystring", [SCHEMA, None], ids=["with-schema", "self-describing"])
def test_body_that_is_not_json(querystring: str | None, resolver: Resolver) -> None:
    [message] = failure_messages(webhook(querystring, "{nope", "application/json"), resolver)
    assert (message["field"], message["value"]) == ("body", "{nope")
    assert str(message["error"]).startswith("invalid json: ")
