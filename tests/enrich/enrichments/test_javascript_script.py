"""JavaScript enrichment: real Snowplow user scripts run unchanged in V8, with Snowplow's event API and failures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from plowline.enrich.enrichments.javascript_script import JavascriptScript
from plowline.enrich.errors import EnrichmentConfigError, EnrichmentFailure, EventDropped
from plowline.enrich.raw_event import RawEvent
from plowline.event import CONTEXTS_SCHEMA, UNSTRUCT_EVENT_SCHEMA, EnrichedEvent

DATA = Path(__file__).resolve().parents[2] / "data" / "enrichments" / "javascript_script"
IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central" / "schemas"
CONFIG = Draft4Validator(json.loads(
    (IGLU_CENTRAL / "com.snowplowanalytics.snowplow/javascript_script_config/jsonschema/1-0-1").read_text()))
NO_HEADERS = RawEvent("com.snowplowanalytics.snowplow", "tp2", {})


class NoAssets:
    def path(self, uri: str, database: str) -> Path:
        raise AssertionError("the JavaScript enrichment reads no files")


def config_for(source: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"script": base64.b64encode(source.encode()).decode()}
    if config is not None:
        parameters["config"] = config
    data = {"vendor": "com.snowplowanalytics.snowplow", "name": "javascript_script_config", "enabled": True,
            "parameters": parameters}
    CONFIG.validate(data)
    return parameters


_compiled: dict[tuple[str, str], JavascriptScript] = {}


def script(name: str, config: dict[str, Any] | None = None) -> JavascriptScript:
    """Each script compiles once per test session, as enrich builds it once per process."""
    key = (name, json.dumps(config))
    if key not in _compiled:
        source = (DATA / name).read_text()
        _compiled[key] = JavascriptScript.from_config(config_for(source, config), NoAssets())
    return _compiled[key]


def run(enrichment: JavascriptScript, event: EnrichedEvent, raw: RawEvent = NO_HEADERS) -> list[dict[str, Any]]:
    return list(enrichment.enrich(event, raw))


def test_docs_configuration_example_runs_from_its_base64() -> None:
    parameters = json.loads((DATA / "javascript_script_config.json").read_text())["data"]["parameters"]
    enrichment = JavascriptScript.from_config(parameters, NoAssets())
    assert run(enrichment, EnrichedEvent(app_id="shop", platform="web")) == [
        {"schema": "iglu:com.acme/foo/jsonschema/1-0-0", "data": {"appIdUpper": "SHOP"}}]
    assert run(enrichment, EnrichedEvent(platform="web")) == []
    with pytest.raises(EnrichmentFailure) as failure:
        run(enrichment, EnrichedEvent(app_id="shop", platform="server"))
    assert failure.value.messages == [{"error": "Error during execution of JavaScript function: "
                                                "[Server-side event has invalid app_id: shop]"}]


@pytest.mark.parametrize(("ip", "source"), [("1.2.3.4", "internal"), ("9.9.9.9", "external"), (None, "external")],
                         ids=["internal", "external", "no-ip"])
def test_docs_traffic_source_example(ip: str | None, source: str) -> None:
    assert run(script("traffic_source.js"), EnrichedEvent(user_ipaddress=ip)) == [
        {"schema": "iglu:com.acme/traffic_source/jsonschema/1-0-0", "data": {"traffic_source": source}}]


@pytest.mark.parametrize(("useragent", "expected"), [
    ("Mozilla/5.0 (compatible; Googlebot/2.1)", {"isBot": True, "isMobile": False, "length": 39}),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148",
     {"isBot": False, "isMobile": True, "length": 68}),
    (None, None),
], ids=["bot", "mobile", "no-useragent-returns-null"])
def test_context_from_useragent(useragent: str | None, expected: dict[str, Any] | None) -> None:
    entities = run(script("useragent_context.js"), EnrichedEvent(useragent=useragent))
    assert entities == ([] if expected is None else
                        [{"schema": "iglu:com.acme/useragent_summary/jsonschema/1-0-0", "data": expected}])


def test_drop_discards_listed_app_ids_only_for_that_event() -> None:
    enrichment = script("drop_app_ids.js", {"droppedAppIds": ["test-app", "qa"]})
    with pytest.raises(EventDropped):
        run(enrichment, EnrichedEvent(app_id="qa"))
    assert run(enrichment, EnrichedEvent(app_id="shop")) == []  # the drop did not stick to the script
    with pytest.raises(EventDropped):
        run(enrichment, EnrichedEvent(app_id="test-app"))


def test_setters_change_atomic_fields_unstruct_event_and_contexts() -> None:
    event = EnrichedEvent(
        app_id="shop", geo_country="US", geo_latitude=47.25, geo_longitude=-122.3, txn_id=41,
        tr_total=Decimal("12.50"), br_features_pdf=True,
        unstruct_event={"schema": "iglu:com.acme/signup/jsonschema/1-0-0", "data": {"plan": "free"}},
        contexts=[{"schema": "iglu:com.acme/counter/jsonschema/1-0-0", "data": {"count": 1}},
                  {"schema": "iglu:com.acme/unwanted/jsonschema/1-0-0", "data": {}}])
    assert run(script("set_fields.js"), event) == []
    assert event.app_id == "shop-rewritten"
    assert event.mkt_source == "Facegoog"
    assert (event.geo_latitude, event.geo_longitude) == (None, None)
    assert event.txn_id == 42
    assert event.tr_total == Decimal("25")
    assert event.br_features_pdf is False
    assert event.dvce_created_tstamp == datetime(2024, 4, 30, 23, 59, 59, 123000, tzinfo=UTC)
    assert event.unstruct_event == {"schema": "iglu:com.acme/signup/jsonschema/1-0-0", "data": {"plan": "gold"}}
    assert event.contexts == [{"schema": "iglu:com.acme/counter/jsonschema/1-0-0", "data": {"count": 2}}]


def test_getters_return_what_the_java_pojo_would() -> None:
    derived = [{"schema": "iglu:org.ietf/http_header/jsonschema/1-0-0", "data": {"name": "Host", "value": "x"}}]
    event = EnrichedEvent(
        app_id="shop", collector_tstamp=datetime(2013, 3, 25, 2, 3, 37, 342000, tzinfo=UTC), txn_id=7,
        geo_latitude=47.2513, tr_total=Decimal("35708.23"), br_cookies=True, br_features_pdf=False,
        contexts=[{"schema": "iglu:com.acme/a/jsonschema/1-0-0", "data": {"k": 1}}],
        unstruct_event={"schema": "iglu:com.acme/e/jsonschema/1-0-0", "data": {"v": "x"}},
        derived_contexts=derived)
    [probe] = run(script("probe_getters.js"), event)
    data = probe["data"]
    assert data["app_id"] == data["app_id_property"] == "shop"
    assert data["user_id"] is None
    assert data["collector_tstamp"] == "2013-03-25 02:03:37.342"
    assert data["refr_dvce_tstamp"] is None
    assert (data["txn_id"], data["txn_id_type"]) == (7, "number")
    assert data["geo_latitude"] == 47.2513
    assert (data["tr_total"], data["tr_total_type"]) == (35708.23, "number")
    assert (data["br_cookies"], data["br_features_pdf"]) == (1, 0)
    assert json.loads(data["contexts"]) == {"schema": CONTEXTS_SCHEMA, "data": event.contexts}
    assert json.loads(data["unstruct_event"]) == {"schema": UNSTRUCT_EVENT_SCHEMA, "data": event.unstruct_event}
    assert json.loads(data["derived_contexts"]) == {"schema": CONTEXTS_SCHEMA, "data": derived}


def test_json_getters_are_null_when_empty() -> None:
    [probe] = run(script("probe_getters.js"), EnrichedEvent(contexts=[], derived_contexts=[]))
    assert (probe["data"]["contexts"], probe["data"]["unstruct_event"], probe["data"]["derived_contexts"]) == (None, None, None)


def test_docs_iab_filter_example_reads_derived_contexts() -> None:
    verdict: dict[str, Any] = {"spiderOrRobot": True, "category": "SPIDER_OR_ROBOT", "reason": "FAILED_IP_EXCLUDE",
                               "primaryImpact": "UNKNOWN"}
    robot = {"schema": "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0", "data": verdict}
    with pytest.raises(EnrichmentFailure) as failure:
        run(script("iab_filter.js"), EnrichedEvent(derived_contexts=[robot]))
    assert "Filtered a spider/bot event" in failure.value.messages[0]["error"]
    human = {"schema": robot["schema"], "data": {**verdict, "spiderOrRobot": False}}
    assert run(script("iab_filter.js"), EnrichedEvent(derived_contexts=[human])) == []


def test_erase_derived_contexts_then_return_edited_copies() -> None:
    yauaa = {"schema": "iglu:nl.basjes/yauaa_context/jsonschema/1-0-4", "data": {"deviceBrand": "Apple"}}
    header = {"schema": "iglu:org.ietf/http_header/jsonschema/1-0-0", "data": {"name": "Host", "value": "x"}}
    derived = [yauaa, header]
    event = EnrichedEvent(derived_contexts=derived)
    returned = run(script("erase_derived.js"), event)
    assert event.derived_contexts == [] and event.derived_contexts is derived  # the pipeline's own list, emptied
    assert returned == [{"schema": yauaa["schema"], "data": {"deviceBrand": "test1"}}]
    assert yauaa["data"] == {"deviceBrand": "Apple"}  # the script only ever saw copies


def test_headers_are_passed_as_name_value_lines() -> None:
    raw = RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, headers=["Host: c.example.com", "x-jwt:  abc.def.ghi "])
    assert run(script("headers_jwt.js"), EnrichedEvent(), raw) == [
        {"schema": "iglu:com.acme/jwt/jsonschema/1-0-0", "data": {"token": "abc.def.ghi"}}]
    assert run(script("headers_jwt.js"), EnrichedEvent()) == []


def test_modern_javascript_syntax() -> None:
    enrichment = script("modern_syntax.js", {"tag": "t1", "nested": {"label": "L"}})
    assert run(enrichment, EnrichedEvent(page_url="https://shop.example.com/x")) == [
        {"schema": "iglu:com.acme/page_section/jsonschema/1-0-0",
         "data": {"scheme": "https", "section": "shop", "tag": "t1", "label": "L", "sum": 6}}]
    default_params = script("modern_syntax.js")
    assert run(default_params, EnrichedEvent())[0]["data"] == {
        "scheme": "none", "section": "other", "tag": "none", "label": "unlabelled", "sum": 6}


@pytest.mark.parametrize(("app_id", "message"), [
    ("string", "Error during execution of JavaScript function: [Server-side event has invalid app_id: string]"),
    ("error", "Error during execution of JavaScript function: [Error: boom]"),
    ("type-error", "Error during execution of JavaScript function: [TypeError: Cannot read properties of null"),
    ("java", "Error during execution of JavaScript function: [ReferenceError: org is not defined]"),
    ("recursion", "Error during execution of JavaScript function: [RangeError: Maximum call stack size exceeded]"),
], ids=["thrown-string", "thrown-error", "type-error", "java-interop-unavailable", "stack-overflow"])
def test_exceptions_are_enrichment_failures_with_the_js_message(app_id: str, message: str) -> None:
    with pytest.raises(EnrichmentFailure) as failure:
        run(script("throws.js"), EnrichedEvent(app_id=app_id))
    [error] = failure.value.messages
    assert error["error"].startswith(message)


@pytest.mark.parametrize(("app_id", "message"), [
    ("object", 'Output of JavaScript function [{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{}}] could be '
               "parsed as JSON but is not read as an array"),
    ("string", 'Output of JavaScript function ["hello"] could be parsed as JSON but is not read as an array'),
    ("number", "Output of JavaScript function [42] could be parsed as JSON but is not read as an array"),
    ("no-data", "Resulting contexts are not self-desribing. Error(s): [error code:[INVALID_DATA_PAYLOAD],"
                'json:[{"schema":"iglu:com.acme/x/jsonschema/1-0-0"}]]'),
    ("bad-uri", 'Resulting contexts are not self-desribing. Error(s): [error code:[INVALID_IGLUURI],'
                'json:[{"schema":"com.acme/x/1-0-0","data":{}}]]'),
    ("bad-version", "Resulting contexts are not self-desribing. Error(s): [error code:[INVALID_SCHEMAVER],"
                    'json:[{"schema":"iglu:com.acme/x/jsonschema/1-0","data":{}}]]'),
    ("not-object", "Resulting contexts are not self-desribing. Error(s): [error code:[INVALID_DATA_PAYLOAD],"
                   'json:["iglu:com.acme/x/jsonschema/1-0-0"]]'),
    ("circular", "Error during execution of JavaScript function: [Could not serialise the returned value: TypeError"),
], ids=["object", "string", "number", "entity-without-data", "bad-iglu-uri", "bad-schemaver", "not-an-object",
        "circular-structure"])
def test_bad_return_values_are_enrichment_failures(app_id: str, message: str) -> None:
    with pytest.raises(EnrichmentFailure) as failure:
        run(script("bad_returns.js"), EnrichedEvent(app_id=app_id))
    assert failure.value.messages[0]["error"].startswith(message)


def test_return_values_follow_json_stringify() -> None:
    assert run(script("bad_returns.js"), EnrichedEvent(app_id="nan")) == [
        {"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {"n": None}}]
    assert run(script("bad_returns.js"), EnrichedEvent(app_id="undefined")) == []


@pytest.mark.parametrize(("body", "field", "expectation"), [
    ("event.setTxn_id('many')", "txn_id", "an integer"),
    ("event.setTxn_id(1.5)", "txn_id", "an integer"),
    ("event.setGeo_latitude('north')", "geo_latitude", "a number"),
    ("event.setTr_total('lots')", "tr_total", "a decimal number"),
    ("event.setBr_cookies('yes')", "br_cookies", "1 or 0"),
    ("event.setCollector_tstamp('yesterday')", "collector_tstamp", "a timestamp"),
    ("event.setContexts('not json')", "contexts", "valid JSON"),
    ("event.setContexts(JSON.stringify({schema: 'iglu:com.acme/x/jsonschema/1-0-0', data: []}))", "contexts",
     "a self-describing JSON with schema iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*"),
    ("event.setUnstruct_event(JSON.stringify({schema: 'iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0', data: []}))",
     "unstruct_event", "and dict data"),
    ("event.setContexts({})", "contexts", "valid JSON"),
], ids=["integer-from-word", "integer-from-fraction", "float-from-word", "decimal-from-word", "flag-from-word",
        "timestamp-from-word", "contexts-not-json", "contexts-wrong-wrapper", "unstruct-data-not-object",
        "contexts-object-not-string"])
def test_values_a_field_cannot_hold_are_failures_naming_the_field(body: str, field: str, expectation: str) -> None:
    enrichment = JavascriptScript(f"function process(event) {{ {body}; }}")
    with pytest.raises(EnrichmentFailure) as failure:
        enrichment.enrich(EnrichedEvent(), NO_HEADERS)
    [message] = failure.value.messages
    assert message["field"] == field and expectation in message["expectation"]


@pytest.mark.parametrize(("body", "field", "expected"), [
    ("event.setApp_id(42)", "app_id", "42"),
    ("event.setApp_id(true)", "app_id", "true"),
    ("event.setApp_id('tab\\there')", "app_id", "tab    here"),
    ("event.setApp_id('')", "app_id", None),
    ("event.setApp_id(undefined)", "app_id", None),
    ("event.setTxn_id('17')", "txn_id", 17),
    ("event.setGeo_longitude('-0.5')", "geo_longitude", -0.5),
    ("event.setTr_tax(0.1)", "tr_tax", Decimal("0.1")),
    ("event.setTr_tax('39.90')", "tr_tax", Decimal("39.90")),
    ("event.setBr_cookies(true)", "br_cookies", True),
    ("event.setDvce_sent_tstamp('2024-05-01T10:00:00Z')", "dvce_sent_tstamp", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("event.setContexts(null)", "contexts", None),
    ("event.setDerived_contexts('{}')", "derived_contexts", [{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {}}]),
], ids=["string-from-number", "string-from-boolean", "string-tsv-safe", "empty-string-is-null", "undefined-is-null",
        "integer-from-string", "float-from-string", "decimal-from-float", "decimal-keeps-scale", "flag-from-boolean",
        "iso-timestamp", "contexts-cleared", "set-derived-contexts-is-ignored"])
def test_values_are_converted_like_the_pojo_setters(body: str, field: str, expected: Any) -> None:
    event = EnrichedEvent(app_id="before", derived_contexts=[{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {}}],
                          contexts=[{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {}}])
    JavascriptScript(f"function process(event) {{ {body}; }}").enrich(event, NO_HEADERS)
    assert getattr(event, field) == expected


def test_getter_after_setter_sees_the_new_value() -> None:
    source = """function process(event) {
      event.setContexts(JSON.stringify({schema: 'iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0', data: []}));
      event.setUser_id('u');
      return [{schema: 'iglu:com.acme/x/jsonschema/1-0-0', data: {c: event.getContexts(), u: event.getUser_id()}}];
    }"""
    [entity] = JavascriptScript(source).enrich(EnrichedEvent(), NO_HEADERS)
    assert entity["data"] == {"c": '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}',
                              "u": "u"}


def test_no_state_leaks_between_events() -> None:
    source = """
    var seen = 0;  // the script's own globals persist, as with Snowplow's compiled script
    function process(event, params) {
      seen += 1;
      const before = {appId: event.getApp_id(), flag: params.flag === undefined ? null : params.flag,
                      derived: event.getDerived_contexts()};
      params.flag = 'mutated';
      if (event.getApp_id() === 'first') { event.setUser_id('set-by-first'); event.eraseDerived_contexts(); }
      return [{schema: 'iglu:com.acme/x/jsonschema/1-0-0', data: {before, userId: event.getUser_id(), seen}}];
    }"""
    enrichment = JavascriptScript(source, {"other": 1})
    derived = [{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {}}]
    first = enrichment.enrich(EnrichedEvent(app_id="first", derived_contexts=list(derived)), NO_HEADERS)
    second_event = EnrichedEvent(app_id="second", derived_contexts=list(derived))
    second = enrichment.enrich(second_event, NO_HEADERS)
    assert first[0]["data"]["userId"] == "set-by-first"
    assert second[0]["data"] == {
        "before": {"appId": "second", "flag": None,
                   "derived": json.dumps({"schema": CONTEXTS_SCHEMA, "data": derived}, separators=(",", ":"))},
        "userId": None, "seen": 2}
    assert second_event.derived_contexts == derived


def test_several_scripts_have_separate_globals() -> None:
    first = JavascriptScript("var label = 'one'; function process() { return [{schema: 'iglu:a/b/jsonschema/1-0-0', data: {label}}]; }")
    second = JavascriptScript("var label = 'two'; function process() { return [{schema: 'iglu:a/b/jsonschema/1-0-0', data: {label}}]; }")
    assert first.enrich(EnrichedEvent(), NO_HEADERS)[0]["data"] == {"label": "one"}
    assert second.enrich(EnrichedEvent(), NO_HEADERS)[0]["data"] == {"label": "two"}


@pytest.mark.parametrize(("parameters", "problem"), [
    ({}, "missing or empty"),
    ({"script": ""}, "missing or empty"),
    ({"script": "***"}, "not base64"),
    ({"script": base64.b64encode(b"   ").decode()}, "decoded script is empty"),
    ({"script": base64.b64encode(b"function process(event) {").decode()}, "SyntaxError"),
    ({"script": base64.b64encode(b"function handle(event) { return []; }").decode()}, "does not define a function process"),
    ({"script": base64.b64encode(b"var process = 3;").decode()}, "does not define a function process"),
    ({"script": base64.b64encode(b"const x = java.lang.System; function process() {}").decode()}, "ReferenceError"),
    ({"script": base64.b64encode(b"function process() {}").decode(), "config": [1]}, "must be an object"),
], ids=["missing", "empty", "not-base64", "blank-script", "syntax-error", "no-process-function", "process-not-a-function",
        "top-level-throws", "config-not-an-object"])
def test_bad_config_fails_at_start_up_naming_the_parameter(parameters: dict[str, Any], problem: str) -> None:
    with pytest.raises(EnrichmentConfigError) as error:
        JavascriptScript.from_config(parameters, NoAssets())
    assert error.value.key.startswith("javascript_script_config.parameters.")
    assert problem in error.value.problem and error.value.fix


def test_compile_error_message_points_at_the_line() -> None:
    source = "function process(event) {\n  return [;\n}\n"
    with pytest.raises(EnrichmentConfigError) as error:
        JavascriptScript.from_config({"script": base64.b64encode(source.encode()).decode()}, NoAssets())
    assert error.value.key == "javascript_script_config.parameters.script"
    assert "@ 2" in error.value.problem


def test_url_safe_base64_and_missing_padding_are_accepted() -> None:
    source = "function process(event) { return [{schema: 'iglu:a/b/jsonschema/1-0-0', data: {q: '??>>'}}]; }"
    encoded = base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")
    enrichment = JavascriptScript.from_config({"script": encoded}, NoAssets())
    assert enrichment.enrich(EnrichedEvent(), NO_HEADERS) == [{"schema": "iglu:a/b/jsonschema/1-0-0", "data": {"q": "??>>"}}]


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_any_string_survives_the_round_trip_through_v8(value: str) -> None:
    enrichment = script("probe_getters.js")
    [probe] = enrichment.enrich(EnrichedEvent(app_id=value), NO_HEADERS)
    assert probe["data"]["app_id"] == value
