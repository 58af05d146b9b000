"""The Iglu webhook adapter (com.snowplowanalytics.iglu/v1): any self-describing event sent as a webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from plowline.enrich.adapters.common import (
    InvalidJson,
    input_data,
    not_json,
    parse_json,
    parse_sdj,
    unstruct_event,
)
from plowline.enrich.errors import AdapterFailure
from plowline.enrich.loader import parse_form
from plowline.iglu.errors import NotIglu
from plowline.schema_key import InvalidSchemaKey, SchemaKey

if TYPE_CHECKING:
    from plowline.enrich.loader import CollectorRequest
    from plowline.enrich.raw_event import RawEvent
    from plowline.iglu.resolver import Resolver

TRACKER_VERSION = "com.snowplowanalytics.iglu-v1"
JSON_CONTENT_TYPES = ("application/json", "application/json; charset=utf-8")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Querystring parameters copied onto the event (Enrich's Adapter.AcceptedQueryParameters).
COPIED_PARAMETERS = frozenset({"nuid", "aid", "cv", "eid", "ttm", "url"})
# Querystring parameters that are not event data in a GET webhook.
_NOT_DATA = frozenset({"nuid", "aid", "cv", "p"})
_EXPECTED_ANY = "expected one of " + ", ".join((*JSON_CONTENT_TYPES, FORM_CONTENT_TYPE))
_EXPECTED_JSON = "expected one of " + ", ".join(JSON_CONTENT_TYPES)


class IgluWebhookAdapter:
    """Enrich's IgluAdapter. Accepted requests, each making `e=ue` events with
    `tv=com.snowplowanalytics.iglu-v1` and the querystring's `p`, `nuid`, `aid`, `cv`, `eid`, `ttm`, `url`:

    * `schema` in the querystring, no body: the other parameters (but `nuid`, `aid`, `cv`, `p`) are
      the event's data, `""` and valueless ones as null (EX09);
    * `schema` in the querystring, JSON body: an object is the data, an array one event per element;
    * `schema` in the querystring, form body: the form's fields are the data (EX11);
    * no `schema`, JSON body: the body is the self-describing event itself (EX10).

    Without a `p` parameter the platform is `app`, but `srv` for a form body. That is Enrich's code;
    Snowplow's documentation says `srv` for every case (protocol.md 7.9), and the code is followed.
    """

    vendor: ClassVar[str] = "com.snowplowanalytics.iglu"
    version: ClassVar[str] = "v1"

    def to_raw_events(self, request: CollectorRequest, resolver: Resolver) -> list[RawEvent]:
        parameters = request.parameters()
        schema = parameters.get("schema")
        body, content_type = request.body, request.content_type
        if body is not None and content_type is None:
            raise AdapterFailure([input_data("contentType", None, _EXPECTED_ANY)])
        if schema is not None:
            return _with_schema(request, schema, {k: v for k, v in parameters.items() if k != "schema"})
        if body is None:
            raise AdapterFailure([input_data("schema", None, "empty `schema` field"),
                                  input_data("body", None, "empty body")])
        if content_type not in JSON_CONTENT_TYPES:
            raise AdapterFailure([input_data("contentType", content_type, _EXPECTED_JSON)])
        value = _json_body(body)
        try:
            key, data = parse_sdj(value)
        except NotIglu as exc:
            raise AdapterFailure([exc.to_json()]) from None
        return [request.raw_event(_event_parameters(parameters, key.uri, data, "app"))]


def _with_schema(request: CollectorRequest, schema: str, parameters: dict[str, str | None]) -> list[RawEvent]:
    try:
        key = SchemaKey.parse(schema)
    except InvalidSchemaKey as exc:
        raise AdapterFailure([input_data("schema", schema, exc.code)]) from None
    body, content_type = request.body, request.content_type
    if body is None:
        data = {name: value or None for name, value in parameters.items() if name not in _NOT_DATA}
        return [request.raw_event(_event_parameters(parameters, key.uri, data, "app"))]
    if content_type in JSON_CONTENT_TYPES:
        value = _json_body(body)
        if isinstance(value, list):
            if not value:
                raise AdapterFailure([input_data("body", body, "empty array of events")])
            return [request.raw_event(_event_parameters(parameters, key.uri, item, "app")) for item in value]
        if not isinstance(value, dict) or not value:
            raise AdapterFailure([input_data("body", body, "has no key-value pairs")])
        return [request.raw_event(_event_parameters(parameters, key.uri, value, "app"))]
    if content_type == FORM_CONTENT_TYPE:
        form = parse_form(body)
        if isinstance(form, str):
            raise AdapterFailure([input_data("body", body, form)])
        return [request.raw_event(_event_parameters(parameters, key.uri, form, "srv"))]
    raise AdapterFailure([input_data("contentType", content_type, _EXPECTED_ANY)])


def _json_body(body: str) -> Any:
    try:
        return parse_json(body)
    except InvalidJson as exc:
        raise AdapterFailure([not_json("body", body, str(exc))]) from None


def _event_parameters(
    parameters: dict[str, str | None], schema: str, data: Any, platform: str
) -> dict[str, str | None]:
    """Enrich's `buildUnstructEventParams`: tv, e, p, ue_pr, then the copied querystring parameters."""
    event: dict[str, str | None] = {
        "tv": TRACKER_VERSION,
        "e": "ue",
        "p": parameters.get("p", platform),
        "ue_pr": unstruct_event(schema, data),
    }
    for name, value in parameters.items():
        if name in COPIED_PARAMETERS:
            event[name] = value
    return event
