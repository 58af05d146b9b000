"""Value codecs of the enriched event: TSV text per field kind, and the Scala Analytics SDK 3.x JSON.

Pure functions with no knowledge of `EnrichedEvent`, so `plowline.event` can build its per-field
tables from them once at import. Rules are spec/enrich.md 1.1 (TSV) and 1.4 (SDK JSON).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT_EVENT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"

_CONTEXTS_PREFIX = '{"schema":"' + CONTEXTS_SCHEMA + '","data":'
_UNSTRUCT_PREFIX = '{"schema":"' + UNSTRUCT_EVENT_SCHEMA + '","data":'
# Java's \p{Cntrl}: the ASCII control characters only.
_CONTROL = re.compile("[\x00-\x1f\x7f]")

Render = Callable[[Any], str]
Parse = Callable[[str], Any]


# --- TSV rendering (value is never None here) ------------------------------------------------------


def render_string(value: str) -> str:
    """TSV-safe: a TAB becomes 4 spaces, then control characters are removed (may leave "")."""
    if value.isprintable():  # fast path: a printable string holds no control character
        return value
    return _CONTROL.sub("", value.replace("\t", "    "))


def render_int(value: int) -> str:
    return str(int(value))


def render_float(value: float) -> str:
    """Like Java's Float.toString for coordinates (`47.2513`), but never in scientific notation."""
    text = repr(float(value))
    if "e" in text or "n" in text:  # exponent, inf or nan
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        text = format(Decimal(text), "f")
    return text


def render_decimal(value: Decimal) -> str:
    """Plain notation with the scale kept (`39.90`); a negative scale gives an integer (`8E+3` → `8000`)."""
    return format(value, "f")


def render_bool(value: bool) -> str:
    return "1" if value else "0"


def render_timestamp(value: datetime) -> str:
    """`yyyy-MM-dd HH:mm:ss.SSS` in UTC; a naive datetime is taken to be UTC already."""
    # The same datetime object recurs (a batch's etl_tstamp; a request's collector and sent times,
    # which enrich's conversions share): remember the text by identity. The entry holds the object,
    # so its id cannot be reused by another while it is remembered.
    entry = _RENDERED.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    utc = value.astimezone(UTC) if value.tzinfo is not UTC and value.tzinfo is not None else value
    text = utc.isoformat(" ", "milliseconds")[:23]
    if len(_RENDERED) >= 1024:
        _RENDERED.clear()
    _RENDERED[id(value)] = (value, text)
    return text


_RENDERED: dict[int, tuple[datetime, str]] = {}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """Compact JSON text (orjson; Decimals as plain numbers)."""
    return orjson.dumps(value, default=_json_default).decode()


def render_contexts(value: list[dict[str, Any]]) -> str:
    """Entities wrapped in `contexts/1-0-1`; an empty list is an empty column."""
    if not value:
        return ""
    return _CONTEXTS_PREFIX + dumps(value) + "}"


def render_unstruct(value: dict[str, Any]) -> str:
    """The inner self-describing event wrapped in `unstruct_event/1-0-0`."""
    if not value:
        return ""
    return _UNSTRUCT_PREFIX + dumps(value) + "}"


# --- TSV parsing (text is never "" here) -----------------------------------------------------------


def parse_bool(text: str) -> bool:
    if text == "1":
        return True
    if text == "0":
        return False
    raise ValueError("expected 1 or 0")


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _envelope_data(text: str) -> Any:
    envelope = orjson.loads(text)
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise ValueError("expected a self-describing JSON with a data field")
    return envelope["data"]


def _is_entity(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("schema"), str) and "data" in value


def parse_contexts(text: str) -> list[dict[str, Any]] | None:
    data = _envelope_data(text)
    if not isinstance(data, list) or not all(_is_entity(entity) for entity in data):
        raise ValueError("contexts data must be an array of self-describing JSON objects")
    return data or None


def parse_unstruct(text: str) -> dict[str, Any]:
    data = _envelope_data(text)
    if not _is_entity(data):
        raise ValueError("unstruct_event data must be a self-describing JSON object")
    return data  # type: ignore[no-any-return]


# --- Scala Analytics SDK 3.x lossy JSON ------------------------------------------------------------


def sdk_string(value: str) -> str | None:
    """The string the SDK reads back from the TSV: cleaned, and null when that leaves nothing."""
    return render_string(value) or None


def sdk_timestamp(value: datetime) -> str:
    """java.time.Instant.toString of the TSV's millisecond value: `…:05Z`, `…:25.292Z`."""
    text = render_timestamp(value)
    return text[:10] + "T" + (text[11:19] if text.endswith(".000") else text[11:23]) + "Z"


def sdk_float(value: float | Decimal) -> float:
    return float(value)


_SEPARATORS = re.compile(r"[.\-]")
_CAMEL = re.compile(r"([^A-Z_])([A-Z])")


@functools.lru_cache(maxsize=4096)
def shred_key(prefix: str, schema: str) -> tuple[str, str]:
    """`(prefix + vendor_name_model, "M-R-A")` for an Iglu URI, named as the Scala SDK does:
    `.`/`-` → `_` in vendor and name, camelCase name → snake_case, lower-cased."""
    parts = schema[5:].split("/") if schema.startswith("iglu:") else []
    if len(parts) != 4 or not all(parts) or len(version := parts[3].split("-")) != 3:
        raise ValueError(f"not an Iglu schema URI: {schema!r}")
    vendor = _SEPARATORS.sub("_", parts[0]).lower()
    name = _CAMEL.sub(r"\1_\2", _SEPARATORS.sub("_", parts[1])).lower()
    return f"{prefix}{vendor}_{name}_{version[0]}", parts[3]


def shred_contexts(entities: list[dict[str, Any]], into: dict[str, Any]) -> None:
    """Append each entity's data, plus `_schema_version`, to its `contexts_…` key in `into`."""
    for entity in entities:
        key, version = shred_key("contexts_", entity["schema"])
        data = entity.get("data")
        # circe's deepMerge: an object gains the key; anything else is replaced by the key alone.
        item = {**data, "_schema_version": version} if isinstance(data, dict) else {"_schema_version": version}
        into.setdefault(key, []).append(item)


def shred_unstruct(entity: dict[str, Any], into: dict[str, Any]) -> None:
    key, _ = shred_key("unstruct_event_", entity["schema"])
    into[key] = entity.get("data")
