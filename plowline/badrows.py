"""Bad rows: failures as Snowplow self-describing JSON (iglu:com.snowplowanalytics.snowplow.badrows/...).

A bad row keeps what is needed to recover the input later. Every type lives here so that each
subsystem builds them the same way; the shapes follow Iglu Central's badrows schemas at the
versions Snowplow's badrows library 2.x emits (spec/enrich.md 4). Builders return the row as a
dict (`serialize` makes the compact JSON line); failure `messages` are passed through exactly as
the caller built them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

import orjson

from plowline import event_format as fmt
from plowline.event import FIELD_KINDS, EnrichedEvent, FieldKind

__all__ = [
    "ADAPTER_FAILURES",
    "COLLECTOR_PAYLOAD_FORMAT_VIOLATION",
    "ENRICHMENT_FAILURES",
    "GENERIC_ERROR",
    "SCHEMA_VIOLATIONS",
    "SIZE_VIOLATION",
    "TRACKER_PROTOCOL_VIOLATIONS",
    "Processor",
    "adapter_failures",
    "collector_payload_format_violation",
    "collector_payload_json",
    "enrichment_failures",
    "generic_error",
    "iso_timestamp",
    "partially_enriched_event",
    "schema_violations",
    "serialize",
    "size_violation",
    "tracker_protocol_violations",
]

BADROWS_VENDOR = "iglu:com.snowplowanalytics.snowplow.badrows"
SIZE_VIOLATION = f"{BADROWS_VENDOR}/size_violation/jsonschema/1-0-0"
COLLECTOR_PAYLOAD_FORMAT_VIOLATION = f"{BADROWS_VENDOR}/collector_payload_format_violation/jsonschema/1-0-0"
ADAPTER_FAILURES = f"{BADROWS_VENDOR}/adapter_failures/jsonschema/1-0-0"
TRACKER_PROTOCOL_VIOLATIONS = f"{BADROWS_VENDOR}/tracker_protocol_violations/jsonschema/1-0-0"
SCHEMA_VIOLATIONS = f"{BADROWS_VENDOR}/schema_violations/jsonschema/2-0-0"
ENRICHMENT_FAILURES = f"{BADROWS_VENDOR}/enrichment_failures/jsonschema/2-0-0"
GENERIC_ERROR = f"{BADROWS_VENDOR}/generic_error/jsonschema/1-0-0"

#: What the collector's size_violation expectations have always started with.
COLLECTOR_EXPECTATION_PREFIX = "oversized collector payload: "

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Processor:
    """The `processor` object of every bad row: which component produced it."""

    artifact: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"artifact": self.artifact, "version": self.version}


def iso_timestamp(when: datetime | None = None) -> str:
    """Bad-row timestamps: ISO 8601 in UTC with milliseconds and a Z, as Snowplow writes them."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@overload
def size_violation(
    processor: Processor,
    maximum_allowed_size_bytes: int,
    actual_size_bytes: int,
    expectation: str,
    payload: str,
    when: datetime | None = None,
    *,
    as_dict: Literal[False] = False,
    expectation_prefix: str = COLLECTOR_EXPECTATION_PREFIX,
) -> bytes: ...
@overload
def size_violation(
    processor: Processor,
    maximum_allowed_size_bytes: int,
    actual_size_bytes: int,
    expectation: str,
    payload: str,
    when: datetime | None = None,
    *,
    as_dict: Literal[True],
    expectation_prefix: str = COLLECTOR_EXPECTATION_PREFIX,
) -> dict[str, Any]: ...
def size_violation(
    processor: Processor,
    maximum_allowed_size_bytes: int,
    actual_size_bytes: int,
    expectation: str,
    payload: str,
    when: datetime | None = None,
    *,
    as_dict: bool = False,
    expectation_prefix: str = COLLECTOR_EXPECTATION_PREFIX,
) -> bytes | dict[str, Any]:
    """A `size_violation` bad row (1-0-0): a record too large for its sink. `payload` is the
    record's first maxRecordSize/10 characters. Serialised bytes by default (the collector's use);
    `as_dict=True` returns the dict like every other builder. Enrich passes `expectation_prefix=""`:
    its records are not collector payloads."""
    row = _row(
        SIZE_VIOLATION,
        processor,
        {
            "timestamp": iso_timestamp(when),
            "maximumAllowedSizeBytes": maximum_allowed_size_bytes,
            "actualSizeBytes": actual_size_bytes,
            "expectation": expectation_prefix + expectation,
        },
        payload,
    )
    return row if as_dict else orjson.dumps(row)


def collector_payload_format_violation(
    processor: Processor,
    loader: str,
    message: Mapping[str, Any] | str,
    payload: str | bytes,
    when: datetime | None = None,
) -> dict[str, Any]:
    """`collector_payload_format_violation` (1-0-0): a raw record that cannot be read.

    `loader` is "thrift", "cloudfront", "clj-tomcat", "ndjson" or "tsv". `message` is
    `{"error": …}` or `{"payloadField", "value", "expectation"}`; a str means `{"error": str}`.
    `payload` is the record: raw bytes are base64-encoded (standard alphabet), a str is kept.
    """
    if isinstance(payload, bytes):
        payload = base64.b64encode(payload).decode("ascii")
    failure_message = {"error": message} if isinstance(message, str) else dict(message)
    failure = {"timestamp": iso_timestamp(when), "loader": loader, "message": failure_message}
    return _row(COLLECTOR_PAYLOAD_FORMAT_VIOLATION, processor, failure, payload)


def adapter_failures(
    processor: Processor,
    vendor: str,
    version: str,
    messages: Sequence[Mapping[str, Any]],
    payload: Mapping[str, Any],
    when: datetime | None = None,
) -> dict[str, Any]:
    """`adapter_failures` (1-0-0): a non-tracker-protocol adapter refused the request.
    `payload` is the CollectorPayload JSON (`collector_payload_json`)."""
    return _adapter_row(ADAPTER_FAILURES, processor, vendor, version, messages, payload, when)


def tracker_protocol_violations(
    processor: Processor,
    vendor: str,
    version: str,
    messages: Sequence[Mapping[str, Any]],
    payload: Mapping[str, Any],
    when: datetime | None = None,
) -> dict[str, Any]:
    """`tracker_protocol_violations` (1-0-0): the tp2 / r-tp2 adapter refused the request.
    `payload` is the CollectorPayload JSON (`collector_payload_json`)."""
    return _adapter_row(TRACKER_PROTOCOL_VIOLATIONS, processor, vendor, version, messages, payload, when)


def schema_violations(
    processor: Processor,
    messages: Sequence[Mapping[str, Any]],
    enriched: Mapping[str, Any],
    raw: Mapping[str, Any],
    when: datetime | None = None,
) -> dict[str, Any]:
    """`schema_violations` (2-0-0): invalid co/cx/ue, atomic field errors, invalid derived entities.
    `enriched` is `partially_enriched_event(event)`; `raw` the RawEvent JSON."""
    failure = {"timestamp": iso_timestamp(when), "messages": list(messages)}
    return _row(SCHEMA_VIOLATIONS, processor, failure, {"enriched": dict(enriched), "raw": dict(raw)})


def enrichment_failures(
    processor: Processor,
    messages: Sequence[Mapping[str, Any]],
    enriched: Mapping[str, Any],
    raw: Mapping[str, Any],
    when: datetime | None = None,
) -> dict[str, Any]:
    """`enrichment_failures` (2-0-0): an enrichment failed. Each message is
    `{"enrichment": {"schemaKey", "identifier"} | None, "message": {…}}`."""
    failure = {"timestamp": iso_timestamp(when), "messages": list(messages)}
    return _row(ENRICHMENT_FAILURES, processor, failure, {"enriched": dict(enriched), "raw": dict(raw)})


def generic_error(
    processor: Processor,
    errors: Sequence[str],
    payload: str,
    when: datetime | None = None,
) -> dict[str, Any]:
    """`generic_error` (1-0-0): anything else (e.g. a bug); `payload` is the input as text."""
    return _row(GENERIC_ERROR, processor, {"timestamp": iso_timestamp(when), "errors": list(errors)}, payload)


def collector_payload_json(
    vendor: str,
    version: str,
    querystring: Sequence[tuple[str, str | None]],
    content_type: str | None,
    body: str | None,
    collector: str,
    encoding: str,
    hostname: str | None = None,
    timestamp: int | None = None,
    ip_address: str | None = None,
    useragent: str | None = None,
    referer_uri: str | None = None,
    headers: Sequence[str] = (),
    network_user_id: str | None = None,
) -> dict[str, Any]:
    """The badrows CollectorPayload JSON (payload of adapter_failures / tracker_protocol_violations).
    `querystring` keeps a name without `=` as `(name, None)`; `timestamp` is epoch milliseconds."""
    return {
        "vendor": vendor,
        "version": version,
        "querystring": [{"name": name, "value": value} for name, value in querystring],
        "contentType": content_type,
        "body": body,
        "collector": collector,
        "encoding": encoding,
        "hostname": hostname,
        "timestamp": None if timestamp is None else iso_timestamp(_EPOCH + timedelta(milliseconds=timestamp)),
        "ipAddress": ip_address,
        "useragent": useragent,
        "refererUri": referer_uri,
        "headers": list(headers),
        "networkUserId": network_user_id,
    }


def partially_enriched_event(event: EnrichedEvent) -> dict[str, Any]:
    """The badrows PartiallyEnrichedEvent: all 131 fields by name, null when unset. Integers and
    coordinates are numbers, booleans 1/0; txn_id, decimals, timestamps and the JSON columns are
    strings rendered as in the TSV; other strings are kept as they are."""
    return {name: None if (value := getattr(event, name)) is None else convert(value) for name, convert in _PARTIAL}


def serialize(row: Mapping[str, Any]) -> bytes:
    """A bad row as one compact JSON line (without the newline)."""
    return orjson.dumps(row)


def _row(schema: str, processor: Processor, failure: dict[str, Any], payload: Any) -> dict[str, Any]:
    return {"schema": schema, "data": {"processor": processor.to_json(), "failure": failure, "payload": payload}}


def _adapter_row(
    schema: str,
    processor: Processor,
    vendor: str,
    version: str,
    messages: Sequence[Mapping[str, Any]],
    payload: Mapping[str, Any],
    when: datetime | None,
) -> dict[str, Any]:
    failure = {"timestamp": iso_timestamp(when), "vendor": vendor, "version": version, "messages": list(messages)}
    return _row(schema, processor, failure, dict(payload))


def _as_string(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


# How each field appears in a PartiallyEnrichedEvent (the badrows schema types them).
_PARTIAL_KIND: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.STRING: _as_string,
    FieldKind.INTEGER: int,
    FieldKind.FLOAT: float,
    FieldKind.DECIMAL: fmt.render_decimal,
    FieldKind.BOOLEAN: lambda value: 1 if value else 0,
    FieldKind.TIMESTAMP: fmt.render_timestamp,
}
_PARTIAL_NAMED: dict[str, Callable[[Any], Any]] = {
    "txn_id": fmt.render_int,  # Option[String] in the badrows library
    "contexts": lambda value: fmt.render_contexts(value) or None,
    "derived_contexts": lambda value: fmt.render_contexts(value) or None,
    "unstruct_event": lambda value: fmt.render_unstruct(value) or None,
}
_PARTIAL: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
    (name, _PARTIAL_NAMED.get(name) or _PARTIAL_KIND[kind]) for name, kind in FIELD_KINDS.items()
)
