"""JSON Schema draft-04 validation with jsonschema-rs, compiled once per schema, reported in Snowplow's shapes."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from threading import Lock
from typing import Any

import jsonschema_rs
import orjson
from jsonschema_rs import ValidationErrorKind as Kind

from plowline.iglu.errors import NotIglu, ValidationError
from plowline.schema_key import InvalidSchemaKey, SchemaKey, SchemaVer

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "CompiledSchema",
    "ValidatedSdj",
    "ValidatorCache",
    "compile_schema",
    "depth_report",
    "json_depth_exceeds",
    "json_path",
    "reports_for",
    "schema_issues",
    "split_sdj",
]

DEFAULT_MAX_JSON_DEPTH = 50
"""Enrich 6.x `validation.maxJsonDepth` (spec/enrich.md 2.9)."""

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# networknt's own patterns appear in Snowplow's format messages; ipv4 is the only one spelled out.
_FORMAT_PATTERNS = {
    "ipv4": r"^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\.){3}"
            r"([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$",
}


def _is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


# jsonschema-rs knows no "uuid" format in draft 4; Iglu's validator checks it, and trackers rely on it.
_EXTRA_FORMATS: dict[str, Callable[..., bool]] = {"uuid": _is_uuid}


@dataclass(frozen=True, slots=True)
class ValidatedSdj:
    """A self-describing JSON that passed validation; `superseded_by` is the version actually used, if any."""

    key: SchemaKey
    data: Any
    superseded_by: SchemaVer | None = None


def json_path(parts: Iterable[str | int]) -> str:
    """JSONPath as networknt writes it: `$.a.b[0]`."""
    out = ["$"]
    for part in parts:
        out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(out)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _listing(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_plain(value) for value in values) + "]"


def _number(value: Any) -> str:
    return _plain(value)


def _schema_at(schema: Any, location: Iterable[str | int]) -> Any:
    node = schema
    for part in location:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _report(message: str, path: str, keyword: str, targets: list[str]) -> dict[str, Any]:
    return {"message": message, "path": path, "keyword": keyword, "targets": targets}


def reports_for(error: jsonschema_rs.ValidationError, schema: Any) -> list[dict[str, Any]]:
    """Turn one jsonschema-rs error into Snowplow data reports.

    Reports follow Snowplow's Iglu client, which uses networknt json-schema-validator with message texts
    frozen at its 1.0.76 wording: `{"message": "$.a.b: ...", "path": "$.a", "keyword": "...", "targets": [...]}`.
    `required` and `additionalProperties` give one report per property, with the object's path as `path`.
    """
    path = json_path(error.instance_path)
    kind = error.kind
    match kind:
        case Kind.Required(property=name):
            return [_report(f"{path}.{name}: is missing but it is required", path, "required", [name])]
        case Kind.AdditionalProperties(unexpected=names):
            return [
                _report(
                    f"{path}.{name}: is not defined in the schema and the schema does not allow additional properties",
                    path, "additionalProperties", [name],
                )
                for name in names
            ]
        case Kind.Type(types=types):
            found = _json_type(error.instance)
            declared = _schema_at(schema, error.schema_path)  # jsonschema-rs sorts types; networknt keeps the order
            if isinstance(declared, list) and sorted(map(str, declared)) == sorted(types):
                types = [str(name) for name in declared]
            expected = types[0] if len(types) == 1 else "[" + ", ".join(types) + "]"
            return [_report(f"{path}: {found} found, {expected} expected", path, "type", [found, expected])]
        case Kind.Enum(options=options):
            listed = _listing(options)
            return [_report(f"{path}: does not have a value in the enumeration {listed}", path, "enum", [listed])]
        case Kind.MaxLength(limit=limit):
            return [_report(f"{path}: may only be {limit} characters long", path, "maxLength", [str(limit)])]
        case Kind.MinLength(limit=limit):
            return [_report(f"{path}: must be at least {limit} characters long", path, "minLength", [str(limit)])]
        case Kind.Maximum(limit=limit):
            return [_report(f"{path}: must have a maximum value of {_number(limit)}", path, "maximum",
                            [_number(limit)])]
        case Kind.Minimum(limit=limit):
            return [_report(f"{path}: must have a minimum value of {_number(limit)}", path, "minimum",
                            [_number(limit)])]
        case Kind.ExclusiveMaximum(limit=limit):
            return [_report(f"{path}: must have an exclusive maximum value of {_number(limit)}", path,
                            "exclusiveMaximum", [_number(limit)])]
        case Kind.ExclusiveMinimum(limit=limit):
            return [_report(f"{path}: must have an exclusive minimum value of {_number(limit)}", path,
                            "exclusiveMinimum", [_number(limit)])]
        case Kind.Pattern(pattern=pattern):
            return [_report(f"{path}: does not match the regex pattern {pattern}", path, "pattern", [pattern])]
        case Kind.Format(format=name):
            pattern = _FORMAT_PATTERNS.get(name, f"({name})")
            return [_report(f"{path}: does not match the {name} pattern {pattern}", path, "format", [name, pattern])]
        case Kind.MaxItems(limit=limit):
            return [_report(f"{path}: there must be a maximum of {limit} items in the array", path, "maxItems",
                            [str(limit)])]
        case Kind.MinItems(limit=limit):
            return [_report(f"{path}: there must be a minimum of {limit} items in the array", path, "minItems",
                            [str(limit)])]
        case Kind.UniqueItems():
            return [_report(f"{path}: the items in the array must be unique", path, "uniqueItems", [])]
        case Kind.MaxProperties(limit=limit):
            return [_report(f"{path}: may only have a maximum of {limit} properties", path, "maxProperties",
                            [str(limit)])]
        case Kind.MinProperties(limit=limit):
            return [_report(f"{path}: should have a minimum of {limit} properties", path, "minProperties",
                            [str(limit)])]
        case Kind.MultipleOf(multiple_of=factor):
            return [_report(f"{path}: must be multiple of {_number(factor)}", path, "multipleOf", [_number(factor)])]
        case Kind.AdditionalItems(limit=limit):
            return [_report(f"{path}[{limit}]: no validator found at this index", path, "additionalItems",
                            [str(limit)])]
        case Kind.Not(schema=negated):
            text = _plain(negated)
            return [_report(f"{path}: should not be valid to the schema {text}", path, "not", [text])]
        case Kind.AnyOf():
            text = _plain(_schema_at(schema, error.schema_path))
            return [_report(f"{path}: should be valid to any of the schemas {text}", path, "anyOf", [text])]
        case Kind.OneOfMultipleValid():
            text = _plain(_schema_at(schema, error.schema_path))
            return [_report(
                f"{path}: should be valid to one and only one of schema, but more than one are valid: {text}",
                path, "oneOf", [text],
            )]
        case Kind.OneOfNotValid():
            text = _plain(_schema_at(schema, error.schema_path))
            return [_report(f"{path}: should be valid to one and only one of the schemas {text}", path, "oneOf",
                            [text])]
        case _:
            return [_report(f"{path}: {error.message}", path, kind.name, [])]


class CompiledSchema:
    """A compiled validator and the schema it came from."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: dict[str, Any], validator: jsonschema_rs.Validator) -> None:
        self.schema = schema
        self._validator = validator

    def data_reports(self, data: Any) -> list[dict[str, Any]]:
        """Every violation in `data` (empty when valid); the valid case takes one fast pass."""
        if self._validator.is_valid(data):
            return []
        return [report for error in self._validator.iter_errors(data) for report in reports_for(error, self.schema)]


@cache
def _draft4_meta() -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft4Validator({"$ref": "http://json-schema.org/draft-04/schema#"})


def schema_issues(schema: Any) -> list[dict[str, Any]]:
    """Problems that make `schema` unusable as a draft-04 JSON Schema, as Snowplow's `schemaIssues`."""
    issues = []
    for error in _draft4_meta().iter_errors(schema):
        for report in reports_for(error, None):
            issues.append({"path": report["path"], "message": report["message"]})
    return issues


def compile_schema(key: SchemaKey, schema: dict[str, Any], retrieve: Callable[[str], Any]) -> CompiledSchema:
    """Compile `schema` (draft 4, formats checked). Raise ValidationError with `schema_issues` if unusable.

    `retrieve(uri)` answers external `$ref`s; it may raise, which becomes a schema issue.
    """
    issues = schema_issues(schema)
    if issues:
        raise ValidationError(key, schema_issues=issues)
    try:
        validator = jsonschema_rs.Draft4Validator(
            schema, validate_formats=True, formats=_EXTRA_FORMATS, retriever=retrieve
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        message = str(exc).split("\n", 1)[0]
        raise ValidationError(key, schema_issues=[{"path": "$", "message": message}]) from exc
    return CompiledSchema(schema, validator)


class ValidatorCache:
    """LRU of compiled schemas (or the ValidationError a schema raised) per SchemaKey.

    An entry is reused while the resolver hands back the same schema: by identity (its cache hit) or, after
    a cache refresh, by equality, so a TTL expiry re-fetches the schema but recompiles only if it changed.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[SchemaKey, tuple[dict[str, Any], CompiledSchema | ValidationError]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: SchemaKey, schema: dict[str, Any]) -> CompiledSchema | ValidationError | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            cached_schema, compiled = entry
            if cached_schema is not schema:
                if cached_schema != schema:
                    del self._entries[key]
                    return None
                self._entries[key] = (schema, compiled)
            self._entries.move_to_end(key)
            return compiled

    def put(self, key: SchemaKey, schema: dict[str, Any], compiled: CompiledSchema | ValidationError) -> None:
        with self._lock:
            self._entries[key] = (schema, compiled)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """True if objects and arrays nest more than `max_depth` deep (`{"a": 1}` is depth 1)."""
    return not _within(value, max_depth)


def _within(value: Any, budget: int) -> bool:
    # Recursion is bounded by the budget, so hostile nesting cannot exhaust the stack.
    if isinstance(value, dict):
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return True
    if budget <= 0:
        return False
    budget -= 1
    for child in children:  # noqa: SIM110 - a plain loop is twice as fast as all() on small JSON
        if isinstance(child, (dict, list)) and not _within(child, budget):
            return False
    return True


def depth_report(max_depth: int) -> dict[str, Any]:
    """The data report for JSON nested deeper than allowed."""
    return _report(f"$: the JSON is nested deeper than the maximum depth of {max_depth}", "$", "maxDepth",
                   [str(max_depth)])


_KEYS: dict[str, SchemaKey | tuple[str, str]] = {}
_KEYS_LIMIT = 10_000


def _parse_key(uri: str) -> SchemaKey:
    # Events repeat a handful of schema URIs; parsing each once keeps the regex off the hot path.
    parsed = _KEYS.get(uri)
    if parsed is None:
        try:
            parsed = SchemaKey.parse(uri)
        except InvalidSchemaKey as exc:
            parsed = (str(exc), exc.code)
        if len(_KEYS) >= _KEYS_LIMIT:
            _KEYS.clear()
        _KEYS[uri] = parsed
    if isinstance(parsed, tuple):
        raise InvalidSchemaKey(*parsed)
    return parsed


def split_sdj(instance: Any) -> tuple[SchemaKey, Any]:
    """Check the self-describing shape `{"schema": "iglu:…", "data": …}`; raise NotIglu with Iglu's code."""
    if not (isinstance(instance, dict) and len(instance) == 2 and "data" in instance
            and isinstance(instance.get("schema"), str)):
        raise NotIglu(instance, "INVALID_DATA_PAYLOAD",
                      'not a self-describing JSON: expected exactly {"schema": "iglu:…", "data": …}')
    try:
        key = _parse_key(instance["schema"])
    except InvalidSchemaKey as exc:
        raise NotIglu(instance, exc.code, str(exc)) from exc
    return key, instance["data"]
