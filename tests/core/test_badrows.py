"""Bad rows: every builder's output is valid against its Iglu Central schema, under the exact schema URI."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft4Validator

from plowline import badrows
from plowline.event import FIELD_KINDS, FIELD_NAMES, EnrichedEvent, FieldKind

BADROWS = Path(__file__).resolve().parents[3] / "shared" / "iglu-central" / "schemas" / "com.snowplowanalytics.snowplow.badrows"
PROCESSOR = badrows.Processor("plowline-enrich", "0.1.0")
WHEN = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_valid(row: dict[str, Any], uri: str) -> dict[str, Any]:
    """The row is `{"schema": uri, "data": …}`, its data valid against that schema file, and it serialises."""
    assert list(row) == ["schema", "data"]
    assert row["schema"] == uri
    vendor, name, _, version = uri.removeprefix("iglu:").split("/")
    schema = json.loads((BADROWS / name / "jsonschema" / version).read_text(encoding="utf-8"))
    assert schema["self"] == {"vendor": vendor, "name": name, "format": "jsonschema", "version": version}
    Draft4Validator.check_schema(schema)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in Draft4Validator(schema).iter_errors(row["data"])]
    assert not errors
    assert orjson.loads(badrows.serialize(row)) == row
    return row["data"]  # type: ignore[no-any-return]


def collector_payload() -> dict[str, Any]:
    return badrows.collector_payload_json(
        vendor="com.snowplowanalytics.snowplow",
        version="tp2",
        querystring=[("e", "pv"), ("flag", None)],
        content_type="application/json; charset=UTF-8",
        body='{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[]}',
        collector="ssc-2.8.0-kinesis",
        encoding="UTF-8",
        hostname="collector.acme.com",
        timestamp=1364177017342,
        ip_address="92.231.54.234",
        useragent="Mozilla/5.0",
        referer_uri="https://acme.com/",
        headers=["Host: collector.acme.com", "X-Forwarded-For: 92.231.54.234"],
        network_user_id="ecdff4d0-9175-40ac-a8bb-325c49733607",
    )


RAW_EVENT = {
    "vendor": "com.snowplowanalytics.snowplow",
    "version": "tp2",
    "parameters": [{"name": "e", "value": "pv"}, {"name": "flag", "value": None}],
    "contentType": "application/json",
    "loaderName": "thrift",
    "encoding": "UTF-8",
    "hostname": "collector.acme.com",
    "timestamp": "2013-03-25T02:03:37.342Z",
    "ipAddress": "92.231.54.234",
    "useragent": "Mozilla/5.0",
    "refererUri": None,
    "headers": ["Host: collector.acme.com"],
    "userId": "ecdff4d0-9175-40ac-a8bb-325c49733607",
}
SAMPLES: dict[FieldKind, Any] = {
    FieldKind.STRING: "text\twith tab",
    FieldKind.INTEGER: 41828,
    FieldKind.FLOAT: 47.2513,
    FieldKind.DECIMAL: Decimal("39.90"),
    FieldKind.BOOLEAN: True,
    FieldKind.TIMESTAMP: datetime(2013, 3, 25, 2, 3, 37, 342999, tzinfo=UTC),
}


def full_event() -> EnrichedEvent:
    """Every one of the 131 fields set."""
    values = {name: SAMPLES.get(kind) for name, kind in FIELD_KINDS.items()}
    values["br_cookies"] = False
    values["contexts"] = [{"schema": "iglu:com.acme/ctx/jsonschema/1-0-0", "data": {"a": 1}}]
    values["derived_contexts"] = [{"schema": "iglu:com.acme/derived/jsonschema/1-0-0", "data": {"b": None}}]
    values["unstruct_event"] = {"schema": "iglu:com.acme/ev/jsonschema/1-0-0", "data": {"c": "x"}}
    return EnrichedEvent(**values)


# --- one test per bad-row type --------------------------------------------------------------------


def test_size_violation_keeps_the_collector_form() -> None:
    line = badrows.size_violation(PROCESSOR, 1000, 2000, "Payload exceeds max size", "abc", WHEN)
    assert isinstance(line, bytes)
    data = assert_valid(orjson.loads(line), badrows.SIZE_VIOLATION)
    assert data["failure"] == {
        "timestamp": "2020-01-02T03:04:05.678Z",
        "maximumAllowedSizeBytes": 1000,
        "actualSizeBytes": 2000,
        "expectation": "oversized collector payload: Payload exceeds max size",
    }
    assert data["payload"] == "abc"


def test_size_violation_as_a_dict_with_its_own_expectation() -> None:
    row = badrows.size_violation(PROCESSOR, 10, 20, "event too big", "ab", as_dict=True, expectation_prefix="")
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0")
    assert data["failure"]["expectation"] == "event too big"
    assert ISO.match(data["failure"]["timestamp"])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"error": "error deserializing raw event: Cannot read. Remote side has closed."}, None),
        ({"payloadField": "querystring", "value": "a=%%", "expectation": "well-formed querystring"}, None),
        ({"payloadField": "networkUserId", "value": None, "expectation": "a valid UUID"}, None),
        ("path has no vendor", {"error": "path has no vendor"}),
    ],
    ids=["fallback", "field", "null-value", "string"],
)
def test_collector_payload_format_violation(message: Any, expected: dict[str, Any] | None) -> None:
    record = b"\x0b\x00\xc8not thrift\xff"
    row = badrows.collector_payload_format_violation(PROCESSOR, "thrift", message, record, WHEN)
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/collector_payload_format_violation/jsonschema/1-0-0")
    assert data["processor"] == {"artifact": "plowline-enrich", "version": "0.1.0"}
    assert data["failure"] == {"timestamp": "2020-01-02T03:04:05.678Z", "loader": "thrift", "message": expected or message}
    assert base64.b64decode(data["payload"]) == record


def test_collector_payload_format_violation_keeps_a_text_payload() -> None:
    row = badrows.collector_payload_format_violation(PROCESSOR, "cloudfront", {"error": "bad line"}, "a\tb")
    assert assert_valid(row, badrows.COLLECTOR_PAYLOAD_FORMAT_VIOLATION)["payload"] == "a\tb"


def test_collector_payload_json() -> None:
    assert collector_payload() == {
        "vendor": "com.snowplowanalytics.snowplow",
        "version": "tp2",
        "querystring": [{"name": "e", "value": "pv"}, {"name": "flag", "value": None}],
        "contentType": "application/json; charset=UTF-8",
        "body": '{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[]}',
        "collector": "ssc-2.8.0-kinesis",
        "encoding": "UTF-8",
        "hostname": "collector.acme.com",
        "timestamp": "2013-03-25T02:03:37.342Z",
        "ipAddress": "92.231.54.234",
        "useragent": "Mozilla/5.0",
        "refererUri": "https://acme.com/",
        "headers": ["Host: collector.acme.com", "X-Forwarded-For: 92.231.54.234"],
        "networkUserId": "ecdff4d0-9175-40ac-a8bb-325c49733607",
    }
    minimal = badrows.collector_payload_json("com.acme", "v1", [], None, None, "ssc-2.8.0-kinesis", "UTF-8")
    assert minimal["timestamp"] is None and minimal["headers"] == [] and minimal["networkUserId"] is None


ADAPTER_MESSAGES: list[dict[str, Any]] = [
    {"field": "body", "value": None, "expectation": "empty body: not a valid Mailgun payload"},
    {"field": "body", "value": "{oops", "error": "unexpected character"},
    {"json": {"no": "schema"}, "error": "INVALID_SCHEMA"},
    {"actual": "foo.bar", "expectedMapping": {"sent": "iglu:com.mailgun/message_sent/jsonschema/1-0-0"}, "expectation": "no schema for this event type"},
]


def test_adapter_failures() -> None:
    row = badrows.adapter_failures(PROCESSOR, "com.mailgun", "v1", ADAPTER_MESSAGES, collector_payload(), WHEN)
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/adapter_failures/jsonschema/1-0-0")
    assert data["failure"] == {"timestamp": "2020-01-02T03:04:05.678Z", "vendor": "com.mailgun", "version": "v1", "messages": ADAPTER_MESSAGES}
    assert data["payload"] == collector_payload()


IGLU_VALIDATION_ERROR: dict[str, Any] = {
    "schemaKey": "iglu:com.acme/ev/jsonschema/1-0-0",
    "error": {
        "error": "ValidationError",
        "dataReports": [{"message": "$.a: is missing but it is required", "path": "$", "keyword": "required", "targets": ["a"]}],
    },
}
TRACKER_MESSAGES: list[dict[str, Any]] = [
    {"field": "e", "value": None, "expectation": "no event type"},
    {"field": "ue_pr", "value": "{", "error": "invalid json"},
    {"json": [], "error": "INVALID_DATA_PAYLOAD"},
    {"schemaKey": "iglu:com.acme/x/jsonschema/1-0-0", "schemaCriterion": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-*-*"},
    IGLU_VALIDATION_ERROR,
]


def test_tracker_protocol_violations() -> None:
    row = badrows.tracker_protocol_violations(
        PROCESSOR, "com.snowplowanalytics.snowplow", "tp2", TRACKER_MESSAGES, collector_payload(), WHEN
    )
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/tracker_protocol_violations/jsonschema/1-0-0")
    assert data["failure"]["messages"] == TRACKER_MESSAGES
    assert data["failure"]["vendor"] == "com.snowplowanalytics.snowplow" and data["failure"]["version"] == "tp2"


def test_schema_violations() -> None:
    messages = TRACKER_MESSAGES[1:]
    enriched = badrows.partially_enriched_event(full_event())
    row = badrows.schema_violations(PROCESSOR, messages, enriched, RAW_EVENT, WHEN)
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0")
    assert data["failure"] == {"timestamp": "2020-01-02T03:04:05.678Z", "messages": messages}
    assert data["payload"] == {"enriched": enriched, "raw": RAW_EVENT}


def test_enrichment_failures() -> None:
    messages: list[dict[str, Any]] = [
        {
            "enrichment": {"schemaKey": "iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1", "identifier": "anon_ip"},
            "message": {"field": "user_ipaddress", "value": "1.2.3", "expectation": "a valid IP address"},
        },
        {"enrichment": None, "message": {"error": "v_collector should be set"}},
        {"enrichment": None, "message": IGLU_VALIDATION_ERROR},
    ]
    enriched = badrows.partially_enriched_event(EnrichedEvent(event_id="c6ef3124-b53a-4b13-a233-0088f79dcbcb"))
    row = badrows.enrichment_failures(PROCESSOR, messages, enriched, RAW_EVENT, WHEN)
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/enrichment_failures/jsonschema/2-0-0")
    assert data["failure"]["messages"] == messages
    assert data["payload"]["raw"] == RAW_EVENT


def test_generic_error() -> None:
    row = badrows.generic_error(PROCESSOR, ["unexpected error in enrich: KeyError('x')"], "AAEC", WHEN)
    data = assert_valid(row, "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0")
    assert data["failure"] == {"timestamp": "2020-01-02T03:04:05.678Z", "errors": ["unexpected error in enrich: KeyError('x')"]}
    assert data["payload"] == "AAEC"


def test_the_schema_check_catches_a_bad_row() -> None:
    row = badrows.generic_error(PROCESSOR, [], "x")  # generic_error needs at least one error
    with pytest.raises(AssertionError):
        assert_valid(row, badrows.GENERIC_ERROR)


# --- PartiallyEnrichedEvent -----------------------------------------------------------------------


def test_partially_enriched_event_of_a_full_event() -> None:
    event = full_event()
    enriched = badrows.partially_enriched_event(event)
    assert tuple(enriched) == FIELD_NAMES
    tsv = dict(zip(FIELD_NAMES, event.to_tsv().split("\t"), strict=True))
    assert enriched["txn_id"] == "41828"  # a string in the badrows library
    assert enriched["domain_sessionidx"] == 41828
    assert enriched["geo_latitude"] == 47.2513
    assert enriched["se_value"] == "39.90"
    assert enriched["br_features_pdf"] == 1 and enriched["br_cookies"] == 0
    assert enriched["collector_tstamp"] == "2013-03-25 02:03:37.342"
    assert enriched["app_id"] == "text\twith tab"  # JSON needs no TSV cleaning: kept as it was
    for name in ("contexts", "derived_contexts", "unstruct_event"):
        assert enriched[name] == tsv[name]


def test_partially_enriched_event_of_an_empty_event_is_all_null() -> None:
    assert badrows.partially_enriched_event(EnrichedEvent(contexts=[])) == dict.fromkeys(FIELD_NAMES)


def test_iso_timestamp() -> None:
    assert badrows.iso_timestamp(WHEN) == "2020-01-02T03:04:05.678Z"
    assert ISO.match(badrows.iso_timestamp())
