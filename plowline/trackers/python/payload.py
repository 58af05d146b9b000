"""Tracker-protocol encoding: self-describing JSON, the contexts/unstruct wrappers, base64url, the POST envelope."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
GET_PATH = "/i"
PAYLOAD_DATA_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
#: The Python tracker's entities wrapper (1-0-1 allows an empty array; the JS tracker sends 1-0-0).
CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT_EVENT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
#: Content type of a tp2 POST: one of the three exact values Enrich's tp2 adapter accepts (spec §1.1).
POST_CONTENT_TYPE = "application/json; charset=utf-8"

_ENVELOPE_HEAD = b'{"schema":"' + PAYLOAD_DATA_SCHEMA.encode() + b'","data":['
_ENVELOPE_TAIL = b"]}"
#: Bytes a POST body adds around its events: the envelope plus one comma per event after the first.
ENVELOPE_BYTES = len(_ENVELOPE_HEAD) + len(_ENVELOPE_TAIL)
#: What `stm` adds to an encoded event: `,"stm":"` + 13 digits + `"`.
STM_BYTES = len(b',"stm":"') + 13 + 1


@dataclass(frozen=True, slots=True)
class SelfDescribingJson:
    """An Iglu self-describing JSON: `schema` (an `iglu:vendor/name/format/version` URI) and its `data`."""

    schema: str
    data: Any

    def __post_init__(self) -> None:
        if not self.schema.startswith("iglu:") or self.schema.count("/") != 3:
            raise ValueError(f"not an Iglu schema URI (iglu:vendor/name/jsonschema/1-0-0): {self.schema!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "data": self.data}


def to_json_text(value: Any) -> str:
    """Compact UTF-8 JSON text, as trackers send it (no spaces, non-ASCII kept as is)."""
    return orjson.dumps(value).decode("utf-8")


def base64url(text: str) -> str:
    """The UTF-8 bytes of `text` in base64 with the URL-safe alphabet (RFC 4648 §5), `=` padding stripped.

    Enrich decodes leniently (padding optional, either alphabet), so the shorter unpadded form is as good
    and needs no percent-encoding in a GET querystring (spec §2.5).
    """
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def sdj_parameter(wrapper: Mapping[str, Any], plain: str, encoded: str, encode_base64: bool) -> dict[str, str]:
    """One wrapper SDJ as its tracker parameter: `{encoded: base64url}` or `{plain: json}`."""
    text = to_json_text(wrapper)
    return {encoded: base64url(text)} if encode_base64 else {plain: text}


def contexts_parameter(entities: Iterable[SelfDescribingJson], encode_base64: bool) -> dict[str, str]:
    """`cx`/`co`: the entities wrapped in contexts/1-0-1; nothing at all when there are no entities."""
    data = [entity.to_dict() for entity in entities]
    if not data:
        return {}
    return sdj_parameter({"schema": CONTEXTS_SCHEMA, "data": data}, "co", "cx", encode_base64)


def unstruct_parameter(event: SelfDescribingJson, encode_base64: bool) -> dict[str, str]:
    """`ue_px`/`ue_pr`: the self-describing event wrapped in unstruct_event/1-0-0."""
    return sdj_parameter({"schema": UNSTRUCT_EVENT_SCHEMA, "data": event.to_dict()}, "ue_pr", "ue_px", encode_base64)


def millis(moment: float | datetime) -> str:
    """A tracker timestamp: whole milliseconds since the Unix epoch, as text. Floats are seconds (time.time())."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else float(moment)
    return str(round(seconds * 1000))


def encode_event(parameters: Mapping[str, str]) -> bytes:
    """One event as stored in a buffer: its JSON object (without `stm`, which is set at send time)."""
    return orjson.dumps(parameters)


def with_stm(encoded: bytes, stm: str) -> bytes:
    """An encoded event with `stm` appended (the object is never empty: `e`, `p` and `tv` are required)."""
    return encoded[:-1] + b',"stm":"' + stm.encode("ascii") + b'"}'


def post_body(encoded_events: Sequence[bytes], stm: str) -> bytes:
    """The tp2 POST body: payload_data 1-0-4 whose `data` is the events, each stamped with the same `stm`."""
    return _ENVELOPE_HEAD + b",".join(with_stm(event, stm) for event in encoded_events) + _ENVELOPE_TAIL


def batch_bytes(sizes: Iterable[int]) -> int:
    """The size of a POST body holding events of these encoded sizes (envelope, commas and `stm` included)."""
    total = ENVELOPE_BYTES
    for index, size in enumerate(sizes):
        total += size + STM_BYTES + (1 if index else 0)
    return total


def get_parameters(encoded: bytes, stm: str) -> dict[str, str]:
    """The querystring pairs of a GET `/i` request for one buffered event, `stm` first as the JS tracker does."""
    parameters: dict[str, str] = orjson.loads(encoded)
    return {"stm": stm, **parameters}
