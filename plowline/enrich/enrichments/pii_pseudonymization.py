"""PII pseudonymization: replace configured atomic fields and JSONPath-selected entity values by salted hashes."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import orjson

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.jsonpath import InvalidJsonPath, JsonPath
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import InvalidSchemaKey, SchemaCriterion, SchemaKey

#: Atomic fields the config schema (pii_enrichment_config 2-0-x) allows as `pojo` fields.
POJO_FIELDS = (
    "user_id", "user_ipaddress", "user_fingerprint", "domain_userid", "network_userid", "ip_organization",
    "ip_domain", "tr_orderid", "ti_orderid", "mkt_term", "mkt_content", "se_category", "se_action", "se_label",
    "se_property", "mkt_clickid", "refr_domain_userid", "domain_sessionid",
)
JSON_FIELDS = ("contexts", "derived_contexts", "unstruct_event")
HASH_FUNCTIONS: dict[str, str] = {
    "MD2": "md2", "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
}
_ANONYMOUS_HEADER = "sp-anonymous"
_MAX_CACHED_SCHEMAS = 1024

Hasher = Callable[[str], str]


def make_hasher(hash_function: str, salt: str) -> Hasher:
    """Lowercase hex digest of UTF-8(value + salt), as Snowplow's DigestUtils-based strategy computes it."""
    algorithm = HASH_FUNCTIONS[hash_function]
    constructor = getattr(hashlib, algorithm, None)

    def digest(value: str) -> str:
        # Java's getBytes(UTF-8) turns a lone surrogate into '?'; errors="replace" does the same.
        data = (value + salt).encode("utf-8", "replace")
        if constructor is None:
            return hashlib.new(algorithm, data).hexdigest()
        return constructor(data).hexdigest()  # type: ignore[no-any-return]

    return digest


@dataclass(slots=True)
class JsonRule:
    """Pseudonymize the values `path` selects in the `data` of entities of `field` whose schema matches."""

    field: str
    criterion: SchemaCriterion
    path: JsonPath
    _verdicts: dict[str, bool] = dataclasses.field(default_factory=dict)

    def matches(self, uri: Any) -> bool:
        if not isinstance(uri, str):
            return False
        verdict = self._verdicts.get(uri)
        if verdict is None:
            try:
                verdict = self.criterion.matches(SchemaKey.parse(uri))
            except InvalidSchemaKey:
                verdict = False
            if len(self._verdicts) >= _MAX_CACHED_SCHEMAS:
                self._verdicts.clear()
            self._verdicts[uri] = verdict
        return verdict


class PiiPseudonymization:
    """Hashes PII in place: atomic (`pojo`) fields and JSONPath-selected values (`json`) of entities.

    Runs last among the enrichments. A JSONPath hashes every selected string and the string elements
    of every selected array; numbers, booleans, objects and nulls are left as they are, and nothing
    missing is created. With `anonymousOnly`, events are only touched when a `SP-Anonymous` header
    came with the request.

    Emits nothing: enrich 6.x no longer sends the legacy `pii_transformation` event (`emitEvent`),
    so the config's `emitEvent` is accepted and ignored.
    """

    config_name: ClassVar[str] = "pii_enrichment_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-*")

    def __init__(self, pojo_fields: Sequence[str], json_rules: Sequence[JsonRule], hasher: Hasher,
                 anonymous_only: bool = False) -> None:
        self.pojo_fields = tuple(pojo_fields)
        self.json_rules = tuple(json_rules)
        self.hasher = hasher
        self.anonymous_only = anonymous_only

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        """`anonymousOnly` sits beside `parameters` in Snowplow's file; the config loader passes it in here."""
        prefix = f"{cls.config_name}.parameters"
        hasher = _strategy(parameters.get("strategy"), f"{prefix}.strategy")
        rules = parameters.get("pii")
        if not isinstance(rules, list):
            raise EnrichmentConfigError(f"{prefix}.pii", f"must be a list of fields to pseudonymize, got {rules!r}",
                                        'e.g. "pii": [{"pojo": {"field": "user_id"}}]')
        pojo_fields: list[str] = []
        json_rules: list[JsonRule] = []
        for index, rule in enumerate(rules):
            key = f"{prefix}.pii[{index}]"
            if not isinstance(rule, Mapping) or len(rule) != 1 or not {"pojo", "json"} & set(rule):
                raise EnrichmentConfigError(key, f'must be either {{"pojo": ...}} or {{"json": ...}}, got {rule!r}',
                                            'e.g. {"pojo": {"field": "user_id"}}')
            if "pojo" in rule:
                pojo_fields.append(_pojo_field(rule["pojo"], f"{key}.pojo"))
            else:
                json_rules.append(_json_rule(rule["json"], f"{key}.json"))
        anonymous_only = parameters.get("anonymousOnly", False)
        if not isinstance(anonymous_only, bool):
            raise EnrichmentConfigError(
                f"{cls.config_name}.anonymousOnly", f"must be true or false, got {anonymous_only!r}",
                "set it to true to pseudonymize only events sent with the SP-Anonymous header")
        return cls(pojo_fields, json_rules, hasher, anonymous_only)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        if self.anonymous_only and not _anonymous(raw.headers):
            return []
        hasher = self.hasher
        for name in self.pojo_fields:
            value = getattr(event, name)
            if value is not None:
                setattr(event, name, hasher(value))
        for rule in self.json_rules:
            if rule.field == "unstruct_event":
                entity = event.unstruct_event
                if entity is not None and rule.matches(entity.get("schema")):
                    event.unstruct_event = self._pseudonymized(rule, entity)
                continue
            entities = event.contexts if rule.field == "contexts" else event.derived_contexts
            if not entities:
                continue
            for index, entity in enumerate(entities):
                if isinstance(entity, dict) and rule.matches(entity.get("schema")):
                    entities[index] = self._pseudonymized(rule, entity)
        return []

    def _pseudonymized(self, rule: JsonRule, entity: dict[str, Any]) -> dict[str, Any]:
        """A new entity: another enrichment may share (cache) the original, so it is never changed in place."""
        if "data" not in entity:
            return entity
        data = orjson.loads(orjson.dumps(entity["data"]))
        return {"schema": entity["schema"], "data": rule.path.map_matches(data, self._hash_value)}

    def _hash_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.hasher(value)
        if isinstance(value, list):
            return [self.hasher(item) if isinstance(item, str) else item for item in value]
        return value


def _anonymous(headers: list[str]) -> bool:
    return any(header[:12].lower() == _ANONYMOUS_HEADER for header in headers)


def _strategy(strategy: Any, key: str) -> Hasher:
    pseudonymize = strategy.get("pseudonymize") if isinstance(strategy, Mapping) else None
    if not isinstance(pseudonymize, Mapping):
        raise EnrichmentConfigError(
            key, f'must be {{"pseudonymize": {{"hashFunction": ..., "salt": ...}}}}, got {strategy!r}',
            'e.g. "strategy": {"pseudonymize": {"hashFunction": "SHA-256", "salt": "pepper"}}')
    function = pseudonymize.get("hashFunction")
    if function not in HASH_FUNCTIONS:
        raise EnrichmentConfigError(f"{key}.pseudonymize.hashFunction", f"unknown hash function {function!r}",
                                    f"use one of {', '.join(HASH_FUNCTIONS)}")
    if function == "MD2" and "md2" not in hashlib.algorithms_available:
        raise EnrichmentConfigError(
            f"{key}.pseudonymize.hashFunction", "MD2 is not available: this Python's hashlib (OpenSSL 3) has no MD2",
            "use SHA-256 (or MD5, SHA-1, SHA-384, SHA-512); values hashed with MD2 before will not match new hashes")
    salt = pseudonymize.get("salt")
    if not isinstance(salt, str):
        raise EnrichmentConfigError(f"{key}.pseudonymize.salt", f"must be a string, got {salt!r}",
                                    'set a secret salt, e.g. "salt": "pepper"')
    return make_hasher(function, salt)


def _pojo_field(pojo: Any, key: str) -> str:
    name = pojo.get("field") if isinstance(pojo, Mapping) else None
    if name not in POJO_FIELDS:
        raise EnrichmentConfigError(f"{key}.field", f"{name!r} is not a field that can be pseudonymized",
                                    f"use one of {', '.join(POJO_FIELDS)}")
    return name  # type: ignore[no-any-return]


def _json_rule(spec: Any, key: str) -> JsonRule:
    if not isinstance(spec, Mapping):
        raise EnrichmentConfigError(
            key, f"must be an object with field, schemaCriterion and jsonPath, got {spec!r}",
            'e.g. {"field": "unstruct_event", "schemaCriterion": "iglu:com.acme/signup/jsonschema/1-*-*", '
            '"jsonPath": "$.email"}')
    name = spec.get("field")
    if name not in JSON_FIELDS:
        raise EnrichmentConfigError(f"{key}.field", f"{name!r} is not a JSON field",
                                    f"use one of {', '.join(JSON_FIELDS)}")
    criterion_text = spec.get("schemaCriterion")
    try:
        criterion = SchemaCriterion.parse(criterion_text if isinstance(criterion_text, str) else "")
    except InvalidSchemaKey:
        raise EnrichmentConfigError(f"{key}.schemaCriterion", f"{criterion_text!r} is not a schema criterion",
                                    'write it like "iglu:com.acme/signup/jsonschema/1-*-*"') from None
    try:
        path = JsonPath.parse(spec.get("jsonPath"))  # type: ignore[arg-type]  # parse() rejects non-strings
    except InvalidJsonPath as exc:
        raise EnrichmentConfigError(f"{key}.jsonPath", str(exc),
                                    'write a JSONPath like "$.email" or "$.user.emails[*]"') from None
    return JsonRule(name, criterion, path)
