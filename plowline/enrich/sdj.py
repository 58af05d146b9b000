"""Self-describing JSON carried by tracker parameters: unstruct_event (ue_pr/ue_px) and contexts (co/cx).

Parsed, checked against the wrapper schema, then each inner entity resolved and validated through
Iglu, as spec/enrich.md 2.3 phase 1 and protocol.md 2.6 describe. Invalid entities are dropped one
by one, each leaving a message for the schema_violations bad row.

Choices where Snowplow is ambiguous (protocol.md 7.6 and 7.7):
* an empty `co`/`cx`/`ue_pr`/`ue_px` value is treated as absent (real trackers never send one);
* when both the plain and the base64 variant are present, the base64 one (`cx`, `ue_px`) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plowline.enrich.adapters.common import InvalidJson, parse_json_bounded
from plowline.enrich.transform import ConversionError, decode_base64_json
from plowline.iglu.errors import CriterionMismatch, IgluError, NotIglu, RepositoryUnavailable
from plowline.iglu.resolver import Resolver
from plowline.schema_key import SchemaCriterion

CONTEXTS_CRITERION = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*")
UNSTRUCT_CRITERION = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*")
VALIDATION_INFO = "iglu:com.snowplowanalytics.iglu/validation_info/jsonschema/1-0-0"


@dataclass(slots=True)
class Extracted:
    """What the SDJ parameters of one event yield."""

    unstruct_event: dict[str, Any] | None = None
    contexts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    validation_info: list[dict[str, Any]] = field(default_factory=list)


def _text(parameters: dict[str, str | None], plain: str, encoded: str, out: Extracted) -> tuple[str, str] | None:
    raw_encoded = parameters.get(encoded)
    if raw_encoded:
        try:
            return encoded, decode_base64_json(raw_encoded)
        except ConversionError as exc:
            out.messages.append({"field": encoded, "value": raw_encoded, "error": str(exc)})
            return None
    raw_plain = parameters.get(plain)
    if raw_plain:
        return plain, raw_plain
    return None


def _parse(name: str, text: str, out: Extracted) -> tuple[Any, int] | None:
    """The parsed JSON and a bound on its nesting (see parse_json_bounded), or None with a message."""
    try:
        return parse_json_bounded(text)
    except InvalidJson as exc:
        out.messages.append({"field": name, "value": text, "error": str(exc)})
        return None


def _unavailable(entity: Any, exc: RepositoryUnavailable) -> dict[str, Any]:
    schema = entity.get("schema") if isinstance(entity, dict) else None
    return {"schemaKey": schema, "error": {"error": "ResolutionError", "lookupHistory": [
        {"repository": "unavailable", "errors": [{"error": "RepoFailure", "message": str(exc)}], "attempts": 1}]}}


def validate_entity(
    resolver: Resolver,
    entity: Any,
    out: Extracted,
    unavailable_as_failure: bool = False,
    depth_known_within: int | None = None,
) -> dict[str, Any] | None:
    """Validate one inner SDJ; return it (rewritten to a superseding version if any) or None.

    An unreachable repository raises (the batch is retried) unless `unavailable_as_failure`, which
    the worker sets once retrying has gone on too long: then it is a schema violation, kept for recovery.
    """
    try:
        validated = resolver.validate_sdj(entity, depth_known_within=depth_known_within)
    except (NotIglu, CriterionMismatch, IgluError) as exc:
        out.messages.append(exc.to_json())
        return None
    except RepositoryUnavailable as exc:
        if not unavailable_as_failure:
            raise
        out.messages.append(_unavailable(entity, exc))
        return None
    if validated.superseded_by is not None:
        key = validated.key
        new_uri = f"iglu:{key.vendor}/{key.name}/{key.format}/{validated.superseded_by}"
        out.validation_info.append(
            {
                "schema": VALIDATION_INFO,
                "data": {"originalSchema": key.uri, "validatedWith": str(validated.superseded_by)},
            }
        )
        return {"schema": new_uri, "data": entity["data"]}
    return entity  # type: ignore[no-any-return]


def _wrapper(resolver: Resolver, value: Any, criterion: SchemaCriterion, out: Extracted, depth: int) -> Any:
    try:
        resolver.validate_sdj(value, criterion, depth_known_within=depth)  # an embedded schema: never unavailable
    except (NotIglu, CriterionMismatch, IgluError) as exc:
        out.messages.append(exc.to_json())
        return None
    return value["data"]


def extract(parameters: dict[str, str | None], resolver: Resolver, unavailable_as_failure: bool = False) -> Extracted:
    """Parse and validate ue_pr/ue_px, then co/cx (Snowplow's order)."""
    out = Extracted()
    found = _text(parameters, "ue_pr", "ue_px", out)
    if found is not None:
        parsed = _parse(found[0], found[1], out)
        if parsed is not None:
            value, depth = parsed
            inner = _wrapper(resolver, value, UNSTRUCT_CRITERION, out, depth)
            if inner is not None:
                out.unstruct_event = validate_entity(resolver, inner, out, unavailable_as_failure, depth)
    found = _text(parameters, "co", "cx", out)
    if found is not None:
        parsed = _parse(found[0], found[1], out)
        if parsed is not None:
            value, depth = parsed
            entities = _wrapper(resolver, value, CONTEXTS_CRITERION, out, depth)
            for entity in entities or ():
                valid = validate_entity(resolver, entity, out, unavailable_as_failure, depth)
                if valid is not None:
                    out.contexts.append(valid)
    return out
