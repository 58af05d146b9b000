"""Validation: Snowplow data reports, NotIglu codes, criteria, superseding, depth, schema issues, caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plowline.iglu.errors import CriterionMismatch, NotIglu, ResolutionError, ValidationError
from plowline.iglu.repositories import LocalRepository
from plowline.iglu.resolver import Resolver
from plowline.iglu.validation import ValidatedSdj, json_depth_exceeds, json_path
from plowline.schema_key import SchemaCriterion, SchemaKey, SchemaVer
from tests.iglu.conftest import IGLU_CENTRAL, LINK_CLICK, WEB_PAGE, write_schema

UUID = "0b7b0a3d-ddc2-4a7c-a1cf-2a6e8d6b9f4b"


@pytest.fixture(scope="module")
def central() -> Resolver:
    """Embedded schemas, then the Iglu Central snapshot as a local repository."""
    return Resolver([LocalRepository(IGLU_CENTRAL)])


def reports(resolver: Resolver, uri: str, data: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        resolver.validate(SchemaKey.parse(uri), data)
    assert info.value.data_reports is not None
    return info.value.data_reports


def test_valid_context(central: Resolver) -> None:
    validated = central.validate_sdj({"schema": WEB_PAGE, "data": {"id": UUID}})
    assert validated == ValidatedSdj(SchemaKey.parse(WEB_PAGE), {"id": UUID}, None)


def test_every_error_is_reported_with_snowplows_shape(central: Resolver) -> None:
    data = {"elementId": 5, "elementClasses": None, "targetUrl": "", "extra": 1, "more": 2}
    assert sorted(reports(central, LINK_CLICK, data), key=lambda r: r["message"]) == [
        {"message": "$.elementClasses: null found, array expected", "path": "$.elementClasses", "keyword": "type",
         "targets": ["null", "array"]},
        {"message": "$.elementId: integer found, string expected", "path": "$.elementId", "keyword": "type",
         "targets": ["integer", "string"]},
        {"message": "$.extra: is not defined in the schema and the schema does not allow additional properties",
         "path": "$", "keyword": "additionalProperties", "targets": ["extra"]},
        {"message": "$.more: is not defined in the schema and the schema does not allow additional properties",
         "path": "$", "keyword": "additionalProperties", "targets": ["more"]},
        {"message": "$.targetUrl: must be at least 1 characters long", "path": "$.targetUrl", "keyword": "minLength",
         "targets": ["1"]},
    ]


def test_required_names_the_missing_property(central: Resolver) -> None:
    assert reports(central, WEB_PAGE, {}) == [
        {"message": "$.id: is missing but it is required", "path": "$", "keyword": "required", "targets": ["id"]}]


def test_error_json_matches_iglu_client(central: Resolver) -> None:
    with pytest.raises(ValidationError) as info:
        central.validate_sdj({"schema": WEB_PAGE, "data": {"id": "not-a-uuid"}})
    assert info.value.to_json() == {
        "schemaKey": WEB_PAGE,
        "error": {"error": "ValidationError", "dataReports": [{
            "message": "$.id: does not match the regex pattern "
                       "^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$",
            "path": "$.id", "keyword": "pattern",
            "targets": ["^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$"]}]},
    }


@pytest.fixture
def kinds(tmp_path: Path) -> Resolver:
    """One schema exercising most draft-04 keywords."""
    write_schema(tmp_path, "iglu:com.acme/kinds/jsonschema/1-0-0", {
        "type": "object",
        "properties": {
            "s": {"type": ["string", "null"], "maxLength": 3, "minLength": 2},
            "n": {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 2},
            "x": {"type": "number", "maximum": 5, "exclusiveMaximum": True},
            "e": {"enum": ["a", 1, None]},
            "f": {"type": "string", "format": "date-time"},
            "u": {"type": "string", "format": "uuid"},
            "ip": {"type": "string", "format": "ipv4"},
            "items": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": True,
                      "items": {"type": "object", "properties": {"k": {"type": "integer"}}}},
            "o": {"type": "object", "minProperties": 1, "maxProperties": 1},
            "one": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        },
    })
    return Resolver([LocalRepository(tmp_path)])


@pytest.mark.parametrize(("data", "expected"), [
    ({"s": "abcd"}, ("$.s: may only be 3 characters long", "$.s", "maxLength", ["3"])),
    ({"s": "a"}, ("$.s: must be at least 2 characters long", "$.s", "minLength", ["2"])),
    ({"s": 1}, ("$.s: integer found, [string, null] expected", "$.s", "type", ["integer", "[string, null]"])),
    ({"n": -2}, ("$.n: must have a minimum value of 0", "$.n", "minimum", ["0"])),
    ({"n": 12}, ("$.n: must have a maximum value of 10", "$.n", "maximum", ["10"])),
    ({"n": 3}, ("$.n: must be multiple of 2", "$.n", "multipleOf", ["2"])),
    ({"x": 5}, ("$.x: must have an exclusive maximum value of 5", "$.x", "exclusiveMaximum", ["5"])),
    ({"e": "b"}, ("$.e: does not have a value in the enumeration [a, 1, null]", "$.e", "enum", ["[a, 1, null]"])),
    ({"f": "yesterday"}, ("$.f: does not match the date-time pattern (date-time)", "$.f", "format",
                          ["date-time", "(date-time)"])),
    ({"u": "nope"}, ("$.u: does not match the uuid pattern (uuid)", "$.u", "format", ["uuid", "(uuid)"])),
    ({"items": []}, ("$.items: there must be a minimum of 1 items in the array", "$.items", "minItems", ["1"])),
    ({"items": [{"k": 1}, {"k": 2}, {"k": 3}]}, ("$.items: there must be a maximum of 2 items in the array", "$.items", "maxItems",
                               ["2"])),
    ({"items": [{"k": 1}, {"k": 1}]}, ("$.items: the items in the array must be unique", "$.items", "uniqueItems",
                                       [])),
    ({"items": [{"k": "1"}]}, ("$.items[0].k: string found, integer expected", "$.items[0].k", "type",
                               ["string", "integer"])),
    ({"o": {}}, ("$.o: should have a minimum of 1 properties", "$.o", "minProperties", ["1"])),
    ({"o": {"a": 1, "b": 2}}, ("$.o: may only have a maximum of 1 properties", "$.o", "maxProperties", ["1"])),
])
def test_keyword_reports(kinds: Resolver, data: dict[str, Any], expected: tuple[str, str, str, list[str]]) -> None:
    key = SchemaKey.parse("iglu:com.acme/kinds/jsonschema/1-0-0")
    kinds.validate(key, {"s": "ab", "n": 2, "x": 4.5, "e": None, "f": "2024-01-02T03:04:05Z", "u": UUID,
                         "ip": "10.0.0.1", "items": [{"k": 1}], "o": {"a": 1}, "one": 1.5})
    with pytest.raises(ValidationError) as info:
        kinds.validate(key, data)
    message, path, keyword, targets = expected
    assert info.value.data_reports == [{"message": message, "path": path, "keyword": keyword, "targets": targets}]


def test_one_of_and_ip_format(kinds: Resolver) -> None:
    key = SchemaKey.parse("iglu:com.acme/kinds/jsonschema/1-0-0")
    with pytest.raises(ValidationError) as info:
        kinds.validate(key, {"one": 3, "ip": "1.2.3.999"})
    by_keyword = {report["keyword"]: report for report in info.value.data_reports or []}
    assert by_keyword["oneOf"]["message"].startswith("$.one: should be valid to one and only one of schema")
    assert by_keyword["format"]["targets"][0] == "ipv4"


@pytest.mark.parametrize(("instance", "code"), [
    ("a string", "INVALID_DATA_PAYLOAD"),
    ([], "INVALID_DATA_PAYLOAD"),
    ({"schema": WEB_PAGE}, "INVALID_DATA_PAYLOAD"),
    ({"data": {}}, "INVALID_DATA_PAYLOAD"),
    ({"schema": 5, "data": {}}, "INVALID_DATA_PAYLOAD"),
    ({"schema": WEB_PAGE, "data": {}, "extra": 1}, "INVALID_DATA_PAYLOAD"),
    ({"schema": "com.acme/x/jsonschema/1-0-0", "data": {}}, "INVALID_IGLUURI"),
    ({"schema": "iglu:com.acme/x/jsonschema", "data": {}}, "INVALID_IGLUURI"),
    ({"schema": "iglu:com.acme/x/jsonschema/1-0", "data": {}}, "INVALID_SCHEMAVER"),
    ({"schema": "iglu:com.acme/x/jsonschema/1-a-0", "data": {}}, "INVALID_SCHEMAVER"),
])
def test_not_iglu_codes(central: Resolver, instance: Any, code: str) -> None:
    with pytest.raises(NotIglu) as info:
        central.validate_sdj(instance)
    assert info.value.code == code
    assert info.value.to_json() == {"json": instance, "error": code}


def test_not_iglu_code_is_stable_when_the_uri_repeats(central: Resolver) -> None:
    for _ in range(3):
        with pytest.raises(NotIglu) as info:
            central.validate_sdj({"schema": "iglu:com.acme/x/jsonschema/1-0", "data": {}})
        assert info.value.code == "INVALID_SCHEMAVER"


def test_criterion_mismatch(central: Resolver) -> None:
    criterion = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*")
    with pytest.raises(CriterionMismatch) as info:
        central.validate_sdj({"schema": WEB_PAGE, "data": {"id": UUID}}, criterion)
    assert info.value.to_json() == {"schemaKey": WEB_PAGE, "schemaCriterion": str(criterion)}
    contexts = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
                "data": [{"schema": WEB_PAGE, "data": {"id": UUID}}]}
    assert central.validate_sdj(contexts, criterion).key.name == "contexts"


def test_unknown_schema_is_a_resolution_error(central: Resolver) -> None:
    with pytest.raises(ResolutionError):
        central.validate_sdj({"schema": "iglu:com.acme/unknown/jsonschema/1-0-0", "data": {}})


def test_superseded_schema_validates_with_the_newer_version(acme_repo: Path) -> None:
    resolver = Resolver([LocalRepository(acme_repo)])
    event = "iglu:com.acme/event/jsonschema/1-0-0"
    validated = resolver.validate_sdj({"schema": event, "data": {"name": "x", "count": 3}})
    assert validated.key.uri == event
    assert validated.superseded_by == SchemaVer(1, 0, 1)
    with pytest.raises(ValidationError) as info:
        resolver.validate_sdj({"schema": event, "data": {"name": "x", "count": "3"}})
    assert info.value.superseded_by == "1-0-1"
    assert info.value.to_json()["error"]["supersededBy"] == "1-0-1"
    assert info.value.key.uri == event
    plain = resolver.validate_sdj({"schema": "iglu:com.acme/event/jsonschema/1-0-1", "data": {"name": "x"}})
    assert plain.superseded_by is None


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_max_json_depth(acme_repo: Path) -> None:
    resolver = Resolver([LocalRepository(acme_repo)], max_json_depth=50)
    ping = "iglu:com.acme/ping/jsonschema/1-0-0"
    resolver.validate_sdj({"schema": ping, "data": nested(49)})  # 1 (the SDJ) + 49 = 50
    with pytest.raises(ValidationError) as info:
        resolver.validate_sdj({"schema": ping, "data": nested(50)})
    assert info.value.data_reports == [{"message": "$: the JSON is nested deeper than the maximum depth of 50",
                                        "path": "$", "keyword": "maxDepth", "targets": ["50"]}]


def test_json_depth_counts_arrays_and_objects() -> None:
    assert not json_depth_exceeds(1, 0)
    assert not json_depth_exceeds({"a": [1]}, 2)
    assert json_depth_exceeds({"a": [1]}, 1)
    assert json_depth_exceeds([[[[]]]], 3)
    assert not json_depth_exceeds([[], [[]], {"a": {"b": 1}}], 3)


def test_json_path() -> None:
    assert json_path([]) == "$"
    assert json_path(["a", 0, "b-c"]) == "$.a[0].b-c"


def test_invalid_schema_gives_schema_issues(tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/bad/jsonschema/1-0-0",
                 {"type": "object", "properties": {"a": {"type": "strin"}, "b": {"maxLength": -1}}})
    resolver = Resolver([LocalRepository(tmp_path)])
    with pytest.raises(ValidationError) as info:
        resolver.validate_sdj({"schema": "iglu:com.acme/bad/jsonschema/1-0-0", "data": {}})
    issues = info.value.schema_issues
    assert issues is not None and info.value.data_reports is None
    assert {issue["path"] for issue in issues} == {"$.properties.a.type", "$.properties.b.maxLength"}
    assert all(set(issue) == {"path", "message"} for issue in issues)
    assert info.value.to_json()["error"] == {"error": "ValidationError", "schemaIssues": issues}


def test_bad_regex_is_a_schema_issue(tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/bad/jsonschema/1-0-0", {"properties": {"a": {"pattern": "(["}}})
    with pytest.raises(ValidationError) as info:
        Resolver([LocalRepository(tmp_path)]).validate(SchemaKey.parse("iglu:com.acme/bad/jsonschema/1-0-0"), {})
    assert info.value.schema_issues


def test_iglu_refs_resolve_through_the_resolver(tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/inner/jsonschema/1-0-0", {"type": "string", "maxLength": 2})
    write_schema(tmp_path, "iglu:com.acme/outer/jsonschema/1-0-0", {"properties": {
        "x": {"$ref": "http://iglucentral.com/schemas/com.acme/inner/jsonschema/1-0-0#"}}})
    resolver = Resolver([LocalRepository(tmp_path)])
    outer = SchemaKey.parse("iglu:com.acme/outer/jsonschema/1-0-0")
    resolver.validate(outer, {"x": "ok"})
    with pytest.raises(ValidationError) as info:
        resolver.validate(outer, {"x": "too long"})
    assert info.value.data_reports is not None and info.value.data_reports[0]["keyword"] == "maxLength"


def test_non_iglu_refs_are_schema_issues(tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/outer/jsonschema/1-0-0", {"$ref": "http://example.com/schema.json"})
    with pytest.raises(ValidationError) as info:
        Resolver([LocalRepository(tmp_path)]).validate(SchemaKey.parse("iglu:com.acme/outer/jsonschema/1-0-0"), {})
    assert info.value.schema_issues and "Iglu schema URLs" in info.value.schema_issues[0]["message"]


def test_compiled_validator_is_cached_per_key(central: Resolver, monkeypatch: pytest.MonkeyPatch) -> None:
    from plowline.iglu.validation import compile_schema as original

    compiled: list[str] = []

    def counting(key: SchemaKey, schema: dict[str, Any], retrieve: Any) -> Any:
        compiled.append(key.uri)
        return original(key, schema, retrieve)

    monkeypatch.setattr("plowline.iglu.resolver.compile_schema", counting)
    resolver = Resolver([LocalRepository(IGLU_CENTRAL)], cache_size=0)  # schema re-read each time: equality reuse
    for _ in range(5):
        resolver.validate_sdj({"schema": WEB_PAGE, "data": {"id": UUID}})
        with pytest.raises(ValidationError):
            resolver.validate_sdj({"schema": WEB_PAGE, "data": {}})
    assert compiled == [WEB_PAGE]


def test_schema_issues_are_cached_and_reraised_fresh(tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/bad/jsonschema/1-0-0", {"type": "strin"})
    resolver = Resolver([LocalRepository(tmp_path)])
    key = SchemaKey.parse("iglu:com.acme/bad/jsonschema/1-0-0")
    errors = []
    for _ in range(2):
        with pytest.raises(ValidationError) as info:
            resolver.validate(key, {})
        errors.append(info.value)
    assert errors[0] is not errors[1] and errors[0].schema_issues == errors[1].schema_issues
