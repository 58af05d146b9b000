"""EnrichedEvent: the field table, TSV rendering and round trip, the SDK 3.x JSON, and the Python SDK reading our TSV."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plowline.event import CONTEXTS_SCHEMA, FIELD_KINDS, FIELD_NAMES, UNSTRUCT_EVENT_SCHEMA, EnrichedEvent, FieldKind
from plowline.event_format import shred_key

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "enrich.md"
SPEC_KINDS = {
    "String": FieldKind.STRING,
    "Integer": FieldKind.INTEGER,
    "Float": FieldKind.FLOAT,
    "BigDecimal": FieldKind.DECIMAL,
    "Byte 0/1": FieldKind.BOOLEAN,
    "Timestamp": FieldKind.TIMESTAMP,
    "SDJ JSON": FieldKind.JSON,
}
T0 = datetime(2013, 11, 26, 0, 3, 57, 885000, tzinfo=UTC)


def column(event: EnrichedEvent, name: str) -> str:
    return event.to_tsv().split("\t")[FIELD_NAMES.index(name)]


# --- the field table ------------------------------------------------------------------------------


def test_fields_match_the_spec_table_in_order_and_kind() -> None:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("### 1.2") : text.index("### 1.3")]
    rows = re.findall(r"^\| (\d+) \| (\w+) \| ([^|]+?) \|", section, flags=re.MULTILINE)
    assert [int(number) for number, _, _ in rows] == list(range(1, 132))
    assert tuple(name for _, name, _ in rows) == FIELD_NAMES
    assert {name: SPEC_KINDS[kind] for _, name, kind in rows} == FIELD_KINDS


def test_an_empty_event_is_131_empty_columns() -> None:
    line = EnrichedEvent().to_tsv()
    assert line == "\t" * 130
    assert EnrichedEvent.from_tsv(line) == EnrichedEvent()


# --- TSV rendering (spec 1.1) ---------------------------------------------------------------------

RENDERING = [
    ("collector_tstamp", datetime(2013, 3, 25, 2, 3, 37, 342999, tzinfo=UTC), "2013-03-25 02:03:37.342"),
    ("collector_tstamp", datetime(2013, 11, 26, 0, 2, 5, tzinfo=UTC), "2013-11-26 00:02:05.000"),
    ("etl_tstamp", datetime(2013, 3, 25, 4, 3, 37, 342000, tzinfo=timezone(timedelta(hours=2))), "2013-03-25 02:03:37.342"),
    ("true_tstamp", datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02 03:04:05.000"),
    ("br_features_pdf", True, "1"),
    ("br_cookies", False, "0"),
    ("txn_id", 41828, "41828"),
    ("page_urlport", 80, "80"),
    ("geo_latitude", 47.2513, "47.2513"),
    ("geo_longitude", -122.4124, "-122.4124"),
    ("geo_latitude", 47.0, "47.0"),
    ("geo_latitude", 0.00001, "0.00001"),
    ("geo_longitude", -1.5e-7, "-0.00000015"),
    ("tr_total", Decimal("35708.23"), "35708.23"),
    ("ti_price", Decimal("39.90"), "39.90"),
    ("tr_tax", Decimal("8E+3"), "8000"),
    ("se_value", Decimal("-0.5"), "-0.5"),
    ("page_title", "Tab\there", "Tab    here"),
    ("page_title", "line\r\nbreak\x00\x1f\x7f", "linebreak"),
    ("page_title", "Ünïcødé ☃ 日本語 \u00a0\u0085", "Ünïcødé ☃ 日本語 \u00a0\u0085"),
    ("app_id", "", ""),
    ("contexts", [], ""),
    (
        "contexts",
        [{"schema": "iglu:com.acme/ctx/jsonschema/1-0-0", "data": {"a": "x\ty\n"}}],
        '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",'
        '"data":[{"schema":"iglu:com.acme/ctx/jsonschema/1-0-0","data":{"a":"x\\ty\\n"}}]}',
    ),
    (
        "unstruct_event",
        {"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1", "data": {"targetUrl": "http://a.b/"}},
        '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
        '"data":{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1","data":{"targetUrl":"http://a.b/"}}}',
    ),
    (
        "derived_contexts",
        [{"schema": "iglu:com.acme/price/jsonschema/1-0-0", "data": {"amount": Decimal("9.90")}}],
        '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",'
        '"data":[{"schema":"iglu:com.acme/price/jsonschema/1-0-0","data":{"amount":9.90}}]}',
    ),
]


@pytest.mark.parametrize(("name", "value", "expected"), RENDERING, ids=[f"{n}={v!r}"[:60] for n, v, _ in RENDERING])
def test_tsv_rendering(name: str, value: Any, expected: str) -> None:
    assert column(EnrichedEvent(**{name: value}), name) == expected


def test_wrapper_schemas() -> None:
    assert CONTEXTS_SCHEMA == "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
    assert UNSTRUCT_EVENT_SCHEMA == "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"


def test_an_empty_string_is_an_empty_column_and_reads_back_as_none() -> None:
    event = EnrichedEvent(app_id="", page_title="\n\r", contexts=[])
    assert EnrichedEvent.from_tsv(event.to_tsv()) == EnrichedEvent()


# --- TSV parsing ----------------------------------------------------------------------------------


def test_from_tsv_reads_a_snowplow_line() -> None:
    columns = [""] * 131
    values = {
        "collector_tstamp": "2013-11-26 00:02:05",  # the SDK tests' form, without milliseconds
        "etl_tstamp": "2017-01-26 00:01:25.292",
        "event_id": "c6ef3124-b53a-4b13-a233-0088f79dcbcb",
        "txn_id": "41828",
        "geo_latitude": "37.443604",
        "se_value": "8000",
        "br_features_pdf": "1",
        "br_features_flash": "0",
        "contexts": '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}',
        "unstruct_event": '{"data":{"schema":"iglu:a.b/c/jsonschema/1-0-0","data":{}},"schema":"iglu:x/y/jsonschema/1-0-0"}',
    }
    for name, text in values.items():
        columns[FIELD_NAMES.index(name)] = text
    event = EnrichedEvent.from_tsv("\t".join(columns) + "\n")
    assert event == EnrichedEvent(
        collector_tstamp=datetime(2013, 11, 26, 0, 2, 5, tzinfo=UTC),
        etl_tstamp=datetime(2017, 1, 26, 0, 1, 25, 292000, tzinfo=UTC),
        event_id="c6ef3124-b53a-4b13-a233-0088f79dcbcb",
        txn_id=41828,
        geo_latitude=37.443604,
        se_value=Decimal("8000"),
        br_features_pdf=True,
        br_features_flash=False,
        contexts=None,  # an empty contexts array is no contexts
        unstruct_event={"schema": "iglu:a.b/c/jsonschema/1-0-0", "data": {}},
    )
    assert event.collector_tstamp is not None and event.collector_tstamp.tzinfo is UTC


@pytest.mark.parametrize("count", [0, 130, 132])
def test_from_tsv_rejects_a_wrong_field_count(count: int) -> None:
    received = max(count, 1)  # "".split("\t") is one empty field
    with pytest.raises(ValueError, match=rf"^Expected 131 fields, received {received} fields\.$"):
        EnrichedEvent.from_tsv("\t".join(["x"] * count))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("txn_id", "12a"),
        ("geo_latitude", "north"),
        ("se_value", "1,5"),
        ("br_cookies", "true"),
        ("collector_tstamp", "2013-13-01 00:00:00.000"),
        ("contexts", "{not json"),
        ("contexts", '{"schema":"iglu:x/y/jsonschema/1-0-0","data":{}}'),
        ("unstruct_event", '{"schema":"iglu:x/y/jsonschema/1-0-0","data":[]}'),
        ("unstruct_event", '{"schema":"iglu:x/y/jsonschema/1-0-0","data":{"data":{}}}'),
        ("contexts", '{"schema":"iglu:x/y/jsonschema/1-0-0","data":[{"schema":"iglu:a/b/jsonschema/1-0-0"}]}'),
        ("derived_contexts", "[]"),
    ],
)
def test_from_tsv_names_the_bad_field(name: str, text: str) -> None:
    columns = [""] * 131
    columns[FIELD_NAMES.index(name)] = text
    with pytest.raises(ValueError, match=rf"^Invalid value for field {name} \(column {FIELD_NAMES.index(name) + 1}\)"):
        EnrichedEvent.from_tsv("\t".join(columns))


# --- property: the TSV round trip -----------------------------------------------------------------

IGLU_URI = st.from_regex(
    r"\Aiglu:[a-zA-Z0-9_.-]{1,20}/[a-zA-Z0-9_-]{1,20}/jsonschema/[1-9][0-9]{0,2}-(0|[1-9][0-9]{0,2})-(0|[1-9][0-9]{0,2})\Z"
)
ANY_CHAR = st.characters(codec="utf-8")  # lone surrogates cannot be encoded as UTF-8
CLEAN_CHAR = st.characters(exclude_categories=("Cs", "Cc"))
JSON_SCALAR = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(ANY_CHAR, max_size=20)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(ANY_CHAR, max_size=10), inner, max_size=3),
    max_leaves=8,
)
ENTITY = st.fixed_dictionaries({"schema": IGLU_URI, "data": st.dictionaries(st.text(ANY_CHAR, max_size=10), JSON_VALUE, max_size=4)})
MILLIS = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)
DECIMAL = st.builds(lambda digits, exponent: Decimal(digits).scaleb(exponent), st.integers(-(10**12), 10**12), st.integers(-8, 4))


def events(strings: st.SearchStrategy[str], timestamps: st.SearchStrategy[datetime]) -> st.SearchStrategy[EnrichedEvent]:
    by_kind: dict[FieldKind, st.SearchStrategy[Any]] = {
        FieldKind.STRING: strings,
        FieldKind.INTEGER: st.integers(-(2**31), 2**31 - 1),
        FieldKind.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
        FieldKind.DECIMAL: DECIMAL,
        FieldKind.BOOLEAN: st.booleans(),
        FieldKind.TIMESTAMP: timestamps,
    }
    json_fields = {
        "contexts": st.lists(ENTITY, min_size=1, max_size=3),
        "derived_contexts": st.lists(ENTITY, min_size=1, max_size=3),
        "unstruct_event": ENTITY,
    }
    values = {name: st.none() | (json_fields[name] if kind is FieldKind.JSON else by_kind[kind]) for name, kind in FIELD_KINDS.items()}
    return st.fixed_dictionaries(values).map(lambda fields: EnrichedEvent(**fields))


ANY_EVENT = events(st.text(ANY_CHAR, max_size=30), st.datetimes(timezones=st.just(UTC)))
CLEAN_EVENT = events(st.text(CLEAN_CHAR, min_size=1, max_size=30), MILLIS)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(ANY_EVENT)
def test_tsv_round_trip_of_any_values(event: EnrichedEvent) -> None:
    line = event.to_tsv()
    assert line.count("\t") == 130
    assert "\n" not in line and "\r" not in line  # JSON escapes them; string fields drop them
    strings = [text for text, kind in zip(line.split("\t"), FIELD_KINDS.values(), strict=True) if kind is FieldKind.STRING]
    assert not any(re.search("[\x00-\x1f\x7f]", text) for text in strings)
    assert EnrichedEvent.from_tsv(line).to_tsv() == line


@PROPERTY
@given(CLEAN_EVENT)
def test_tsv_round_trip_is_lossless_for_clean_values(event: EnrichedEvent) -> None:
    assert EnrichedEvent.from_tsv(event.to_tsv()) == event


# --- the Scala Analytics SDK 3.x JSON (spec 1.4) --------------------------------------------------

WEB_PAGE = {
    "genre": "blog",
    "inLanguage": "en-US",
    "datePublished": "2014-11-06T00:00:00Z",
    "author": "Fred Blundun",
    "breadcrumb": ["blog", "releases"],
    "keywords": ["snowplow", "javascript", "tracker", "event"],
}
PERFORMANCE_TIMING = {"navigationStart": 1415358089861, "redirectStart": 0, "domComplete": 0}
LINK_CLICK = {"targetUrl": "http://www.example.com", "elementClasses": ["foreground"], "elementId": "exampleLink"}
UA_PARSER = {"useragentFamily": "IE", "useragentMajor": "7", "useragentPatch": None, "osFamily": "Windows XP"}


def sdk_example_event() -> EnrichedEvent:
    """The page view of the Scala Analytics SDK's EventSpec, with a few more kinds of field set."""
    return EnrichedEvent(
        app_id="angry-birds",
        platform="web",
        etl_tstamp=datetime(2017, 1, 26, 0, 1, 25, 292000, tzinfo=UTC),
        collector_tstamp=datetime(2013, 11, 26, 0, 2, 5, tzinfo=UTC),
        dvce_created_tstamp=datetime(2013, 11, 26, 0, 3, 57, 885999, tzinfo=UTC),
        event="page_view",
        event_id="c6ef3124-b53a-4b13-a233-0088f79dcbcb",
        txn_id=41828,
        v_collector="clj-tomcat-0.1.0",
        v_etl="serde-0.5.2",
        user_ipaddress="92.231.54.234",
        domain_sessionidx=3,
        geo_latitude=37.443604,
        geo_longitude=-122.4124,
        page_url="http://www.snowplowanalytics.com",
        page_title="",
        page_urlport=80,
        contexts=[
            {"schema": "iglu:org.schema/WebPage/jsonschema/1-0-0", "data": WEB_PAGE},
            {"schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0", "data": PERFORMANCE_TIMING},
        ],
        se_value=Decimal("39.90"),
        unstruct_event={"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1", "data": LINK_CLICK},
        tr_total=Decimal("8E+3"),
        br_features_pdf=True,
        br_features_flash=False,
        derived_contexts=[{"schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0", "data": UA_PARSER}],
        derived_tstamp=datetime(2013, 11, 26, 0, 3, 57, 886000, tzinfo=UTC),
        true_tstamp=datetime(2013, 11, 26, 0, 3, 57, tzinfo=UTC),
    )


def test_to_json_worked_example() -> None:
    atomic = [name for name, kind in FIELD_KINDS.items() if kind is not FieldKind.JSON]
    expected: dict[str, Any] = dict.fromkeys(atomic, None)  # every atomic field, null when empty
    expected.update(
        {
            "app_id": "angry-birds",
            "platform": "web",
            "etl_tstamp": "2017-01-26T00:01:25.292Z",
            "collector_tstamp": "2013-11-26T00:02:05Z",  # zero millis dropped, as Instant.toString
            "dvce_created_tstamp": "2013-11-26T00:03:57.885Z",  # the TSV's milliseconds
            "event": "page_view",
            "event_id": "c6ef3124-b53a-4b13-a233-0088f79dcbcb",
            "txn_id": 41828,
            "v_collector": "clj-tomcat-0.1.0",
            "v_etl": "serde-0.5.2",
            "user_ipaddress": "92.231.54.234",
            "domain_sessionidx": 3,
            "geo_latitude": 37.443604,
            "geo_longitude": -122.4124,
            "page_url": "http://www.snowplowanalytics.com",
            "page_title": None,  # "" is an empty column
            "page_urlport": 80,
            "se_value": 39.9,
            "tr_total": 8000.0,
            "br_features_pdf": True,
            "br_features_flash": False,
            "derived_tstamp": "2013-11-26T00:03:57.886Z",
            "true_tstamp": "2013-11-26T00:03:57Z",
            "contexts_org_schema_web_page_1": [{**WEB_PAGE, "_schema_version": "1-0-0"}],
            "contexts_org_w3_performance_timing_1": [{**PERFORMANCE_TIMING, "_schema_version": "1-0-0"}],
            "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1": [{**UA_PARSER, "_schema_version": "1-0-0"}],
            "unstruct_event_com_snowplowanalytics_snowplow_link_click_1": LINK_CLICK,
            "geo_location": "37.443604,-122.4124",
        }
    )
    assert len(expected) == 128 + 4 + 1
    assert sdk_example_event().to_json() == expected


@pytest.mark.parametrize(
    ("schema", "key"),
    [
        ("iglu:org.w3/PerformanceTiming/jsonschema/1-0-0", "contexts_org_w3_performance_timing_1"),
        ("iglu:org.schema/WebPage/jsonschema/1-0-0", "contexts_org_schema_web_page_1"),
        ("iglu:com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0", "contexts_com_snowplowanalytics_self_desc_schema_1"),
        ("iglu:com.acme/ABTest/jsonschema/3-2-1", "contexts_com_acme_abtest_3"),
        ("iglu:com.acme/my-event_Name/jsonschema/10-0-0", "contexts_com_acme_my_event_name_10"),
        ("iglu:Com.ACME/userId2Value/jsonschema/1-0-0", "contexts_com_acme_user_id2_value_1"),
    ],
)
def test_shredded_key_names(schema: str, key: str) -> None:
    assert shred_key("contexts_", schema) == (key, schema.rsplit("/", 1)[1])


def test_shredding_merges_revisions_of_one_model_and_keeps_derived_after_contexts() -> None:
    event = EnrichedEvent(
        contexts=[
            {"schema": "iglu:com.acme/ctx/jsonschema/1-0-0", "data": {"n": 1}},
            {"schema": "iglu:com.acme/ctx/jsonschema/2-0-0", "data": {"n": 2}},
            {"schema": "iglu:com.acme/ctx/jsonschema/1-1-0", "data": {"n": 3}},
        ],
        derived_contexts=[{"schema": "iglu:com.acme/ctx/jsonschema/1-0-2", "data": {"n": 4}}],
    )
    out = event.to_json()
    assert out["contexts_com_acme_ctx_1"] == [
        {"n": 1, "_schema_version": "1-0-0"},
        {"n": 3, "_schema_version": "1-1-0"},
        {"n": 4, "_schema_version": "1-0-2"},
    ]
    assert out["contexts_com_acme_ctx_2"] == [{"n": 2, "_schema_version": "2-0-0"}]
    assert "contexts" not in out and "derived_contexts" not in out and "unstruct_event" not in out


def test_to_json_without_a_coordinate_has_no_geo_location() -> None:
    out = EnrichedEvent(geo_latitude=1.5).to_json()
    assert "geo_location" not in out and out["geo_latitude"] == 1.5 and out["geo_longitude"] is None


def test_to_json_rejects_an_entity_without_an_iglu_uri() -> None:
    with pytest.raises(ValueError, match="not an Iglu schema URI"):
        EnrichedEvent(contexts=[{"schema": "com.acme/x/jsonschema/1-0-0", "data": {}}]).to_json()


@PROPERTY
@given(CLEAN_EVENT)
def test_to_json_equals_the_json_of_the_tsv_read_back(event: EnrichedEvent) -> None:
    assert EnrichedEvent.from_tsv(event.to_tsv()).to_json() == event.to_json()


# --- PyPI snowplow-analytics-sdk 0.2.3 reads every line we write --------------------------------


def sdk_transform() -> Any:
    with warnings.catch_warnings():  # the 2017 package has invalid escape sequences in its regexes
        warnings.simplefilter("ignore")
        module = pytest.importorskip(
            "snowplow_analytics_sdk.event_transformer", reason="snowplow-analytics-sdk is not installed (dev dependency)"
        )
    return module


def sdk_name(name: str) -> str:
    return "refr_device_tstamp" if name == "refr_dvce_tstamp" else name  # the SDK's typo


def assert_sdk_reads(event: EnrichedEvent) -> dict[str, Any]:
    line = event.to_tsv()
    out: dict[str, Any] = sdk_transform().transform(line)
    columns = line.split("\t")
    for name, kind, text in zip(FIELD_NAMES, FIELD_KINDS.values(), columns, strict=True):
        if kind is FieldKind.JSON:
            continue
        if text == "":
            assert sdk_name(name) not in out
        elif kind is FieldKind.INTEGER:
            assert out[name] == int(text)
        elif kind is FieldKind.BOOLEAN:
            assert out[name] is (text == "1")
        elif kind is FieldKind.TIMESTAMP:
            assert out[sdk_name(name)] == text.replace(" ", "T") + "Z"
        elif kind in (FieldKind.FLOAT, FieldKind.DECIMAL) and name != "se_value":
            assert out[name] == float(text)
        else:
            assert out[name] == text
    ours = event.to_json()
    for key, value in out.items():
        if key.startswith("unstruct_event_") and "-" not in key:
            assert ours[key] == value
    return out


def test_python_sdk_field_order_is_ours() -> None:
    names = [name for name, _ in sdk_transform().ENRICHED_EVENT_FIELD_TYPES]
    assert names == [sdk_name(name) for name in FIELD_NAMES]


def test_python_sdk_reads_a_typical_line() -> None:
    out = assert_sdk_reads(sdk_example_event())
    assert out["geo_location"] == "37.443604,-122.4124"
    assert out["se_value"] == "39.90"  # a string in this SDK
    assert out["tr_total"] == 8000.0
    assert out["contexts_org_schema_web_page_1"] == [WEB_PAGE]
    assert out["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"] == [UA_PARSER]
    assert out["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"] == LINK_CLICK


@PROPERTY
@given(ANY_EVENT)
def test_python_sdk_reads_any_line_we_write(event: EnrichedEvent) -> None:
    assert_sdk_reads(event)
