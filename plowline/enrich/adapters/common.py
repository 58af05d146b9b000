"""Helpers the adapters share: Snowplow's failure message objects, JSON parsing, SDJ wrappers."""

from __future__ import annotations

from typing import Any

import orjson

from plowline.iglu.errors import NotIglu
from plowline.iglu.validation import json_depth_exceeds
from plowline.schema_key import InvalidSchemaKey, SchemaKey

UNSTRUCT_EVENT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
MAX_JSON_DEPTH = 50  # Enrich's validation.maxJsonDepth default


class InvalidJson(ValueError):
    """Text that is not JSON; `str()` is the message for a NotJson failure (`invalid json: …`)."""


def input_data(field: str, value: str | None, expectation: str) -> dict[str, Any]:
    """FailureDetails InputData: a field's value did not meet an expectation."""
    return {"field": field, "value": value, "expectation": expectation}


def not_json(field: str, value: str | None, error: str) -> dict[str, Any]:
    """FailureDetails NotJson: a field that should hold JSON does not."""
    return {"field": field, "value": value, "error": error}


def parse_json(text: str) -> Any:
    """Parse JSON text; raise InvalidJson for bad syntax or nesting deeper than MAX_JSON_DEPTH."""
    return parse_json_bounded(text)[0]


def parse_json_bounded(text: str) -> tuple[Any, int]:
    """`parse_json`, and a bound on the value's nesting: the opening brackets of the text (those
    inside strings only raise it). Passed to `Resolver.validate_sdj`, it spares a second walk."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"invalid json: {exc}") from None
    brackets = text.count("{") + text.count("[")
    # A document with few brackets cannot be deep: skip the walk for ordinary payloads. The walk is
    # the resolver's own, so a body and the entities in it are held to one limit.
    if brackets > MAX_JSON_DEPTH and json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise InvalidJson(f"invalid json: deeper than {MAX_JSON_DEPTH}")
    return value, brackets


def compact(value: Any) -> str:
    """JSON without spaces, key order kept (circe's `noSpaces`)."""
    return orjson.dumps(value).decode("utf-8")


def sdj(schema: str, data: Any) -> dict[str, Any]:
    """A self-describing JSON, `schema` first as Iglu core writes it."""
    return {"schema": schema, "data": data}


def unstruct_event(schema: str, data: Any) -> str:
    """The `ue_pr` text wrapping one self-describing event."""
    return compact(sdj(UNSTRUCT_EVENT_SCHEMA, sdj(schema, data)))


def parse_sdj(value: Any) -> tuple[SchemaKey, Any]:
    """Iglu core's `SelfDescribingData.parse`: (schema key, data) of an object with a string
    `schema` and a `data` member (others are ignored); NotIglu otherwise. No validation."""
    if not isinstance(value, dict) or not isinstance(value.get("schema"), str):
        raise NotIglu(value, "INVALID_DATA_PAYLOAD")
    try:
        key = SchemaKey.parse(value["schema"])
    except InvalidSchemaKey as exc:
        raise NotIglu(value, exc.code) from None
    if "data" not in value:
        raise NotIglu(value, "INVALID_DATA_PAYLOAD")
    return key, value["data"]
