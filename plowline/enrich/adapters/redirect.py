"""The redirect adapter (r/tp2): a click-tracking GET whose `u` becomes a uri_redirect event or entity."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any, ClassVar

from plowline.enrich.adapters.common import (
    CONTEXTS_SCHEMA,
    InvalidJson,
    compact,
    input_data,
    not_json,
    parse_json,
    sdj,
    unstruct_event,
)
from plowline.enrich.errors import AdapterFailure

if TYPE_CHECKING:
    from plowline.enrich.loader import CollectorRequest
    from plowline.enrich.raw_event import RawEvent
    from plowline.iglu.resolver import Resolver

URI_REDIRECT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0"
TRACKER_VERSION = "r-tp2"
DEFAULT_PLATFORM = "web"
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/\-_]")


class RedirectAdapter:
    """Enrich's RedirectAdapter. `u` is required and removed; without `e` the event becomes `e=ue`
    with a uri_redirect `ue_pr`; with `e` the uri_redirect entity is put first in the existing
    contexts (`cx` decoded and re-encoded, else `co`) or in a new `co` (contexts 1-0-1).

    Where Enrich's code has no answer (it would throw), Plowline treats `cx` without a value as
    absent and `co` without a value like an empty `co`.
    """

    vendor: ClassVar[str] = "r"
    version: ClassVar[str] = "tp2"

    def to_raw_events(self, request: CollectorRequest, resolver: Resolver) -> list[RawEvent]:
        original = request.parameters()
        if not original:
            raise AdapterFailure([input_data("querystring", None, "empty querystring: not a valid URI redirect")])
        uri = original.get("u")
        if uri is None:
            shown = "&".join(f"{name}={'null' if value is None else value}" for name, value in original.items())
            raise AdapterFailure([input_data("querystring", shown, "missing `u` parameter: not a valid URI redirect")])
        entity = sdj(URI_REDIRECT_SCHEMA, {"uri": uri})
        parameters = {name: value for name, value in original.items() if name != "u"}
        if "e" not in original:
            parameters["e"] = "ue"
            parameters["ue_pr"] = unstruct_event(URI_REDIRECT_SCHEMA, {"uri": uri})
        elif original.get("cx") is not None:
            parameters["cx"] = _prepend_to_cx(entity, original["cx"] or "")
        elif original.get("co"):
            parameters["co"] = _prepend_to_co(entity, original["co"] or "")
        else:
            parameters["co"] = compact(sdj(CONTEXTS_SCHEMA, [entity]))
        parameters["tv"] = TRACKER_VERSION
        parameters["p"] = original.get("p", DEFAULT_PLATFORM)
        return [request.raw_event(parameters)]


def _prepend_to_co(entity: dict[str, Any], existing: str) -> str:
    """The contexts JSON with `entity` first in its `data` array; left as it is (re-serialised) when
    it has no `data` array, as Enrich does."""
    try:
        contexts = parse_json(existing)
    except InvalidJson as exc:
        raise AdapterFailure([not_json("co|cx", existing, str(exc))]) from None
    if isinstance(contexts, dict) and isinstance(contexts.get("data"), list):
        contexts["data"] = [entity, *contexts["data"]]
    return compact(contexts)


def _prepend_to_cx(entity: dict[str, Any], existing: str) -> str:
    """Like `_prepend_to_co` inside base64url. Decoding is commons-codec's lenient one (both
    alphabets, padding optional, other characters skipped); the result is unpadded base64url on one
    line (commons-codec would also break it into 76-character CRLF lines, which no decoder needs)."""
    return _encode_base64url(_prepend_to_co(entity, _decode_base64url(existing)))


def _decode_base64url(text: str) -> str:
    text = _NOT_BASE64.sub("", text.split("=", 1)[0]).replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        text = text[:-1]  # six bits cannot make a byte: commons-codec drops them
    return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")


def _encode_base64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")
