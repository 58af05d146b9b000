"""Snowplow tracker protocol adapters: TP1 (GET /i) and TP2 (GET or POST payload_data batches)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from plowline.enrich.adapters.common import InvalidJson, compact, input_data, not_json, parse_json_bounded
from plowline.enrich.errors import AdapterFailure
from plowline.iglu.errors import CriterionMismatch, IgluError, NotIglu
from plowline.schema_key import SchemaCriterion

if TYPE_CHECKING:
    from plowline.enrich.loader import CollectorRequest
    from plowline.enrich.raw_event import RawEvent
    from plowline.iglu.resolver import Resolver

SNOWPLOW = "com.snowplowanalytics.snowplow"
# Compared as exact strings, as Enrich's Tp2Adapter does.
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8")
PAYLOAD_DATA = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*")
_EXPECTED_CONTENT_TYPE = "expected one of " + ", ".join(CONTENT_TYPES)


class Tp1Adapter:
    """Tracker protocol v1: one event in a GET querystring."""

    vendor: ClassVar[str] = SNOWPLOW
    version: ClassVar[str] = "tp1"

    def to_raw_events(self, request: CollectorRequest, resolver: Resolver) -> list[RawEvent]:
        parameters = request.parameters()
        if not parameters:
            # Enrich's Tp1Adapter really says "URI redirect" here.
            raise AdapterFailure([input_data("querystring", None, "empty querystring: not a valid URI redirect")])
        return [request.raw_event(parameters)]


class Tp2Adapter:
    """Tracker protocol v2: a GET querystring is one event; a POST body is a payload_data batch
    whose every event also gets the querystring's parameters (which win on a clash)."""

    vendor: ClassVar[str] = SNOWPLOW
    version: ClassVar[str] = "tp2"

    def to_raw_events(self, request: CollectorRequest, resolver: Resolver) -> list[RawEvent]:
        querystring = request.parameters()
        body, content_type = request.body, request.content_type
        # The cases in Enrich's order: the first that applies decides.
        if body is None and not querystring:
            raise AdapterFailure([
                input_data("body", None, "empty body: not a valid tracker protocol event"),
                input_data("querystring", None, "empty querystring: not a valid tracker protocol event"),
            ])
        if content_type is not None and content_type not in CONTENT_TYPES:
            raise AdapterFailure([input_data("contentType", content_type, _EXPECTED_CONTENT_TYPE)])
        if body is not None and content_type is None:
            raise AdapterFailure([input_data("contentType", None, _EXPECTED_CONTENT_TYPE)])
        if body is None and content_type is not None:
            # "track protocol" (sic) is Enrich's wording.
            raise AdapterFailure([input_data("body", None, "empty body: not a valid track protocol event")])
        if body is None:
            return [request.raw_event(querystring)]
        return [request.raw_event(parameters) for parameters in _events(_payload_data(body, resolver), querystring)]


def _payload_data(body: str, resolver: Resolver) -> Any:
    """The `data` of the body's payload_data SDJ: JSON, then self-describing, then valid, then the
    right schema; the first failing check is the violation."""
    try:
        instance, nesting = parse_json_bounded(body)
    except InvalidJson as exc:
        raise AdapterFailure([not_json("body", body, str(exc))]) from None
    try:
        # Validation comes before the criterion check, as in Enrich's Tp2Adapter: an unknown or
        # invalid schema is an IgluError even when it is not payload_data at all.
        validated = resolver.validate_sdj(instance, depth_known_within=nesting)
    except (NotIglu, IgluError) as exc:
        raise AdapterFailure([exc.to_json()]) from None
    if not PAYLOAD_DATA.matches(validated.key):
        raise AdapterFailure([CriterionMismatch(validated.key, PAYLOAD_DATA).to_json()])
    return instance["data"]


def _events(data: Any, querystring: dict[str, str | None]) -> list[dict[str, str | None]]:
    """Each element of `data` as parameters, the querystring merged on top."""
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise AdapterFailure([input_data("body", compact(data), "json is not an array")])
    if not data:
        raise AdapterFailure([input_data("body", compact(data), "empty list of events")])
    failures: list[dict[str, Any]] = []
    for item in data:
        for name, value in item.items():
            if not isinstance(value, str):
                failures.append(input_data(name, None, "value cannot be null") if value is None
                                else input_data(name, compact(value), "value is not a string"))
    if failures:
        raise AdapterFailure(failures)
    # Every value is a string now; the parsed objects are this request's own, so they are used as they are.
    return [{**item, **querystring} for item in data] if querystring else data
