"""PII pseudonymization: salted hashes of atomic fields and JSONPath-selected entity values, Snowplow's way."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from plowline.enrich.enrichments.pii_pseudonymization import POJO_FIELDS, PiiPseudonymization, make_hasher
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent

DATA = Path(__file__).resolve().parents[2] / "data" / "enrichments" / "pii_pseudonymization"
IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central" / "schemas"
CONFIG = Draft4Validator(json.loads(
    (IGLU_CENTRAL / "com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-1").read_text()))
SIGNUP = "iglu:com.acme/signup/jsonschema/1-0-2"


class NoAssets:
    def path(self, uri: str, database: str) -> Path:
        raise AssertionError("PII pseudonymization reads no files")


def build(pii: list[dict[str, Any]], hash_function: str = "SHA-256", salt: str = "pepper",
          anonymous_only: bool | None = None) -> PiiPseudonymization:
    data: dict[str, Any] = {
        "vendor": "com.snowplowanalytics.snowplow.enrichments", "name": "pii_enrichment_config", "enabled": True,
        "emitEvent": False,
        "parameters": {"pii": pii, "strategy": {"pseudonymize": {"hashFunction": hash_function, "salt": salt}}},
    }
    if anonymous_only is not None:
        data["anonymousOnly"] = anonymous_only
    CONFIG.validate(data)
    parameters = dict(data["parameters"])
    if anonymous_only is not None:  # what the config loader does with the top-level key
        parameters["anonymousOnly"] = anonymous_only
    return PiiPseudonymization.from_config(parameters, NoAssets())


def sha256(value: str, salt: str = "pepper") -> str:
    return hashlib.sha256((value + salt).encode()).hexdigest()


def raw(*headers: str) -> RawEvent:
    return RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, headers=list(headers))


def json_rule(field: str, criterion: str, path: str) -> dict[str, Any]:
    return {"json": {"field": field, "schemaCriterion": criterion, "jsonPath": path}}


def test_spec_vector_sha1_of_ip_plus_salt() -> None:
    event = EnrichedEvent(user_ipaddress="216.160.83.56")
    build([{"pojo": {"field": "user_ipaddress"}}], "SHA-1", "pink123").enrich(event, raw())
    assert event.user_ipaddress == "17803d07577023208861c69cbccbdfc0a041b06c"


@pytest.mark.parametrize(("function", "algorithm"), [
    ("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256"), ("SHA-384", "sha384"), ("SHA-512", "sha512"),
], ids=["md5", "sha1", "sha256", "sha384", "sha512"])
def test_hash_functions_are_lowercase_hex_of_value_plus_salt(function: str, algorithm: str) -> None:
    assert make_hasher(function, "salt")("jo@example.com") == hashlib.new(algorithm, b"jo@example.comsalt").hexdigest()


def test_md2_is_rejected_at_start_up_with_a_clear_error() -> None:
    if "md2" in hashlib.algorithms_available:
        pytest.skip("this OpenSSL still provides MD2")
    with pytest.raises(EnrichmentConfigError) as error:
        build([{"pojo": {"field": "user_id"}}], "MD2")
    assert error.value.key == "pii_enrichment_config.parameters.strategy.pseudonymize.hashFunction"
    assert "MD2" in error.value.problem and "SHA-256" in error.value.fix


def test_every_allowed_pojo_field_is_hashed_and_nulls_stay_null() -> None:
    enrichment = build([{"pojo": {"field": name}} for name in POJO_FIELDS])
    event = EnrichedEvent()
    for name in POJO_FIELDS[:-1]:  # the last one stays None
        setattr(event, name, f"value-{name}")
    enrichment.enrich(event, raw())
    for name in POJO_FIELDS[:-1]:
        assert getattr(event, name) == sha256(f"value-{name}")
    assert getattr(event, POJO_FIELDS[-1]) is None


def test_snowplow_example_config_file() -> None:
    config = json.loads((DATA / "pii_enrichment_config.json").read_text())["data"]
    enrichment = PiiPseudonymization.from_config(config["parameters"], NoAssets())
    event = EnrichedEvent(
        user_id="jon.doe@example.com", user_ipaddress="70.46.123.145",
        unstruct_event={"schema": "iglu:com.google.analytics.measurement-protocol/user/jsonschema/1-0-0",
                        "data": {"clientId": "1234.5678", "userId": "jdoe", "ipOverride": "1.2.3.4"}})
    assert enrichment.enrich(event, raw()) == []  # enrich 6.x emits no pii_transformation event

    def sha1(value: str) -> str:
        return hashlib.sha1((value + "pepper123").encode()).hexdigest()

    assert event.user_id == sha1("jon.doe@example.com")
    assert event.user_ipaddress == sha1("70.46.123.145")
    assert event.unstruct_event == {
        "schema": "iglu:com.google.analytics.measurement-protocol/user/jsonschema/1-0-0",
        "data": {"clientId": sha1("1234.5678"), "userId": sha1("jdoe"), "ipOverride": "1.2.3.4"}}


@pytest.mark.parametrize(("path", "data", "expected"), [
    ("$.email", {"email": "jo@x.io", "n": 1}, {"email": sha256("jo@x.io"), "n": 1}),
    ("$.user.email", {"user": {"email": "jo@x.io"}}, {"user": {"email": sha256("jo@x.io")}}),
    ("$.emails", {"emails": ["a", 2, None, "b"]}, {"emails": [sha256("a"), 2, None, sha256("b")]}),
    ("$.emails[*]", {"emails": ["a", 2, "b"]}, {"emails": [sha256("a"), 2, sha256("b")]}),
    ("$..email", {"email": "a", "friends": [{"email": "b"}, {"name": "c"}]},
     {"email": sha256("a"), "friends": [{"email": sha256("b")}, {"name": "c"}]}),
    ("$.age", {"age": 42}, {"age": 42}),
    ("$.profile", {"profile": {"email": "a"}}, {"profile": {"email": "a"}}),
    ("$.email", {"email": None}, {"email": None}),
    ("$.missing.deep", {"present": "a"}, {"present": "a"}),
    ("$.['email', 'phone']", {"email": "a", "phone": "b", "name": "c"},
     {"email": sha256("a"), "phone": sha256("b"), "name": "c"}),
    ("$.people[?(@.role == 'admin')].email", {"people": [{"role": "admin", "email": "a"}, {"role": "x", "email": "b"}]},
     {"people": [{"role": "admin", "email": sha256("a")}, {"role": "x", "email": "b"}]}),
], ids=["field", "nested", "array-of-strings", "array-wildcard", "recursive-descent", "number-untouched",
        "object-untouched", "null-untouched", "missing-path-creates-nothing", "bracket-union", "filter"])
def test_json_paths_in_unstruct_event(path: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    event = EnrichedEvent(unstruct_event={"schema": SIGNUP, "data": data})
    build([json_rule("unstruct_event", "iglu:com.acme/signup/jsonschema/1-*-*", path)]).enrich(event, raw())
    assert event.unstruct_event == {"schema": SIGNUP, "data": expected}


@pytest.mark.parametrize(("criterion", "hashed"), [
    ("iglu:com.acme/signup/jsonschema/1-*-*", True),
    ("iglu:com.acme/signup/jsonschema/1-0-*", True),
    ("iglu:com.acme/signup/jsonschema/1-0-2", True),
    ("iglu:com.acme/signup/jsonschema/1-1-*", False),
    ("iglu:com.acme/signup/jsonschema/2-*-*", False),
    ("iglu:com.acme/other/jsonschema/1-*-*", False),
], ids=["any-minor", "revision", "exact", "other-revision", "other-model", "other-name"])
def test_schema_criterion_selects_entities(criterion: str, hashed: bool) -> None:
    event = EnrichedEvent(unstruct_event={"schema": SIGNUP, "data": {"email": "a"}})
    build([json_rule("unstruct_event", criterion, "$.email")]).enrich(event, raw())
    assert event.unstruct_event is not None
    assert event.unstruct_event["data"]["email"] == (sha256("a") if hashed else "a")


def test_contexts_and_derived_contexts_only_matching_entities_change() -> None:
    shared = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"email": "derived@x.io"}}
    event = EnrichedEvent(
        contexts=[{"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"email": "a@x.io"}},
                  {"schema": "iglu:com.acme/page/jsonschema/1-0-0", "data": {"email": "page@x.io"}},
                  {"schema": "not an iglu uri", "data": {"email": "x"}},
                  {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"email": "b@x.io"}}],
        derived_contexts=[shared])
    original_shared = copy.deepcopy(shared)
    build([json_rule("contexts", "iglu:com.acme/user/jsonschema/1-*-*", "$.email"),
           json_rule("derived_contexts", "iglu:com.acme/user/jsonschema/1-*-*", "$.email")]).enrich(event, raw())
    assert event.contexts is not None and event.derived_contexts is not None
    assert [entity["data"]["email"] for entity in event.contexts] == [sha256("a@x.io"), "page@x.io", "x", sha256("b@x.io")]
    assert event.derived_contexts == [{"schema": shared["schema"], "data": {"email": sha256("derived@x.io")}}]
    # Another enrichment may cache the entity it returned: it must not be changed behind its back.
    assert shared == original_shared


@pytest.mark.parametrize(("anonymous_only", "headers", "hashed"), [
    (False, (), True),
    (True, (), False),
    (True, ("SP-Anonymous: *",), True),
    (True, ("sp-anonymous: *",), True),
    (True, ("X-SP-Anonymous: *",), False),
], ids=["always", "anonymous-only-without-header", "anonymous-only-with-header", "header-name-case-insensitive",
        "other-header"])
def test_anonymous_only_mode(anonymous_only: bool, headers: tuple[str, ...], hashed: bool) -> None:
    event = EnrichedEvent(user_id="jo")
    build([{"pojo": {"field": "user_id"}}], anonymous_only=anonymous_only).enrich(event, raw(*headers))
    assert event.user_id == (sha256("jo") if hashed else "jo")


@pytest.mark.parametrize(("parameters", "key"), [
    ({"strategy": {"pseudonymize": {"hashFunction": "SHA-256", "salt": "s"}}}, "parameters.pii"),
    ({"pii": [], "strategy": {}}, "parameters.strategy"),
    ({"pii": [], "strategy": {"pseudonymize": {"hashFunction": "SHA-3", "salt": "s"}}},
     "parameters.strategy.pseudonymize.hashFunction"),
    ({"pii": [], "strategy": {"pseudonymize": {"hashFunction": "MD5"}}}, "parameters.strategy.pseudonymize.salt"),
    ({"pii": [{"pojo": {"field": "useragent"}}], "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}},
     "parameters.pii[0].pojo.field"),
    ({"pii": [{"other": {}}], "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}}, "parameters.pii[0]"),
    ({"pii": [{"pojo": {"field": "user_id"}, "json": {}}], "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}},
     "parameters.pii[0]"),
    ({"pii": [json_rule("atomic", "iglu:a/b/jsonschema/1-*-*", "$.x")],
      "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}}, "parameters.pii[0].json.field"),
    ({"pii": [json_rule("contexts", "iglu:a/b/jsonschema/1-0", "$.x")],
      "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}}, "parameters.pii[0].json.schemaCriterion"),
    ({"pii": [json_rule("contexts", "iglu:a/b/jsonschema/1-*-*", "email")],
      "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}}, "parameters.pii[0].json.jsonPath"),
    ({"pii": [json_rule("contexts", "iglu:a/b/jsonschema/1-*-*", "$.a[")],
      "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}}, "parameters.pii[0].json.jsonPath"),
    ({"pii": [], "strategy": {"pseudonymize": {"hashFunction": "MD5", "salt": ""}}, "anonymousOnly": "yes"},
     "anonymousOnly"),
], ids=["pii-missing", "strategy-empty", "unknown-hash", "salt-missing", "pojo-not-allowed", "neither-pojo-nor-json",
        "both-pojo-and-json", "json-field-unknown", "bad-criterion", "path-without-dollar", "path-syntax-error",
        "anonymous-only-not-boolean"])
def test_bad_config_names_the_parameter_and_the_fix(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as error:
        PiiPseudonymization.from_config(parameters, NoAssets())
    assert error.value.key == f"pii_enrichment_config.{key}"
    assert error.value.fix


@given(st.text(), st.text(max_size=20))
def test_hash_is_deterministic_hex_and_salt_sensitive(value: str, salt: str) -> None:
    hashed = make_hasher("SHA-256", salt)(value)
    assert hashed == make_hasher("SHA-256", salt)(value)
    assert len(hashed) == 64 and set(hashed) <= set("0123456789abcdef")
    assert hashed != make_hasher("SHA-256", salt + "x")(value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["x", "y@z"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c-d"]), children, max_size=3),
    max_leaves=12)


@given(_json, st.sampled_from(["$.a", "$.a.b", "$['a']", "$.['a', 'b']", "$.a['b','c-d']", "$.c-d.a", "$.a.b.a"]))
def test_field_chain_fast_path_matches_jsonpath_ng(data: Any, text: str) -> None:
    from plowline.enrich.jsonpath import JsonPath

    fast = JsonPath.parse(text)
    assert fast._steps is not None
    generic = JsonPath(fast.text, fast._compiled, None)
    assert fast.find(data) == generic.find(data)

    def tag(value: Any) -> Any:
        return f"<{value}>" if isinstance(value, str) else None

    assert fast.map_matches(copy.deepcopy(data), tag) == generic.map_matches(copy.deepcopy(data), tag)


@pytest.mark.parametrize("text", ["$", "$.a[*]", "$..a", "$.a[0]", "$.*", "$.a[?(@.b == 1)]"],
                         ids=["root", "wildcard-index", "descendants", "index", "star", "filter"])
def test_other_expressions_use_jsonpath_ng(text: str) -> None:
    from plowline.enrich.jsonpath import JsonPath

    assert JsonPath.parse(text)._steps is None
