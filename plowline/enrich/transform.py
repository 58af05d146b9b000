"""Tracker parameters → atomic fields: the conversion table of spec/enrich.md 2.4.

Each parameter maps to one converter and one or two fields. A conversion that fails does not stop
the others: every failure is collected as an atomic-field parse error (reported in a
schema_violations bad row against the atomic schema, as enrich 6.x does).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from plowline.event import EnrichedEvent

EVENT_TYPES = {
    "se": "struct", "ev": "struct", "ue": "unstruct", "ad": "ad_impression", "tr": "transaction",
    "ti": "transaction_item", "pv": "page_view", "pp": "page_ping",
}
PLATFORMS = frozenset({"web", "iot", "app", "mob", "pc", "cnsl", "tv", "srv", "headset"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DIMENSIONS = re.compile(r"(\d+)x(\d+)")
_IP_SPLIT = re.compile(r"[,| ]")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: the last Redshift-compatible instant


class ConversionError(ValueError):
    """One parameter that could not be converted; the message is Snowplow's."""


@dataclass(frozen=True, slots=True)
class AtomicParseError:
    """A failed conversion: which parameter, its value and why (→ a data report on the atomic schema)."""

    parameter: str
    value: str
    message: str


def tsv_safe(value: str) -> str | None:
    """Snowplow's cleaning of tracker strings: TAB → 4 spaces, control characters removed, empty → None."""
    if value.isprintable():  # holds no TAB and no control character: the usual case, one C call
        return value or None
    if "\t" in value:
        value = value.replace("\t", "    ")
    if _CONTROL.search(value):
        value = _CONTROL.sub("", value)
    return value or None


def to_int(value: str) -> int | None:
    if value.lower() == "null":
        return None
    text = value[1:] if value[:1] == "+" else value
    if not text.lstrip("-").isdigit() or not text.isascii():
        raise ConversionError(f"Cannot be converted to java.lang.Integer: {value}")
    number = int(text)
    if not _INT_MIN <= number <= _INT_MAX:
        raise ConversionError(f"Cannot be converted to java.lang.Integer: {value}")
    return number


def to_decimal(value: str) -> Decimal | None:
    if value.lower() == "null":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ConversionError(f"Cannot be converted to java.math.BigDecimal: {value}") from None
    if not number.is_finite() or not value.strip() == value:
        raise ConversionError(f"Cannot be converted to java.math.BigDecimal: {value}")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        number = number.quantize(Decimal(1))  # a negative scale is rendered with scale 0
    return number


def to_boolean(value: str) -> bool:
    if value == "1":
        return True
    if value == "0":
        return False
    raise ConversionError(f"Cannot convert [{value}] to boolean, only 1 or 0.")


@lru_cache(maxsize=1024)  # the events of one request share `stm`: one datetime for them all
def to_timestamp(value: str) -> datetime:
    try:
        millis = int(value)
    except ValueError:
        raise ConversionError(f"Not in the expected format: ms since epoch: {value}") from None
    return timestamp_from_millis(millis, value)


@lru_cache(maxsize=1024)  # the events of one request share their collector time
def timestamp_from_millis(millis: int, shown: object = None) -> datetime:
    if not -62135596800000 <= millis <= _MAX_TIMESTAMP_MS:
        raise ConversionError(f"Formatting as {shown if shown is not None else millis} is not Redshift-compatible")
    return _EPOCH + timedelta(milliseconds=millis)  # exact, and faster than fromtimestamp + replace


def to_uuid(value: str) -> str:
    # Snowplow keeps a UUID only if it is already canonical once lower-cased (what uuid.UUID would
    # print back): the 8-4-4-4-12 hex pattern says exactly that, without building a UUID object.
    lowered = value.lower()
    if _CANONICAL_UUID.fullmatch(lowered) is None:
        raise ConversionError(f"Not a valid UUID: {value}")
    return lowered


def to_event(value: str) -> str:
    try:
        return EVENT_TYPES[value]
    except KeyError:
        raise ConversionError(f"Not a valid event type: {value}") from None


def to_platform(value: str) -> str:
    if value not in PLATFORMS:
        raise ConversionError(f"Not a valid platform: {value}")
    return value


def first_ip(value: str) -> str | None:
    return tsv_safe(_IP_SPLIT.split(value, maxsplit=1)[0])


def decode_base64_json(value: str) -> str:
    """cx / ue_px: base64 with the URL-safe or standard alphabet, padding optional → the JSON text."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise ConversionError(f"Could not base64 decode: {exc}") from None


@lru_cache(maxsize=1024)  # a session repeats its screen, viewport and document sizes
def _dimensions(value: str) -> tuple[int, int]:
    match = _DIMENSIONS.fullmatch(value)
    if match is None:
        raise ConversionError(f"Does not conform to regex (\\d+)x(\\d+): {value}")
    return to_int(match.group(1)) or 0, to_int(match.group(2)) or 0


Setter = Callable[[EnrichedEvent, str], None]


def _string(field: str) -> Setter:
    def set_string(event: EnrichedEvent, value: str) -> None:
        setattr(event, field, tsv_safe(value))

    return set_string


def _converted(field: str, convert: Callable[[str], Any]) -> Setter:
    def set_converted(event: EnrichedEvent, value: str) -> None:
        setattr(event, field, convert(value))

    return set_converted


def _pair(first: str, second: str) -> Setter:
    def set_pair(event: EnrichedEvent, value: str) -> None:
        width, height = _dimensions(value)
        setattr(event, first, width)
        setattr(event, second, height)

    return set_pair


_STRINGS = {
    "aid": "app_id", "uid": "user_id", "duid": "domain_userid", "nuid": "network_userid", "ua": "useragent",
    "fp": "user_fingerprint", "tna": "name_tracker", "tv": "v_tracker", "cv": "v_collector", "lang": "br_lang",
    "cd": "br_colordepth", "tz": "os_timezone", "refr": "page_referrer", "url": "page_url", "page": "page_title",
    "cs": "doc_charset", "se_ca": "se_category", "se_ac": "se_action", "se_la": "se_label", "se_pr": "se_property",
    "ev_ca": "se_category", "ev_ac": "se_action", "ev_la": "se_label", "ev_pr": "se_property",
    "tr_id": "tr_orderid", "tr_af": "tr_affiliation", "tr_ci": "tr_city", "tr_st": "tr_state", "tr_co": "tr_country",
    "ti_id": "ti_orderid", "ti_sk": "ti_sku", "ti_nm": "ti_name", "ti_na": "ti_name", "ti_ca": "ti_category",
    "tr_cu": "tr_currency", "ti_cu": "ti_currency",
}
_INTS = {"tid": "txn_id", "vid": "domain_sessionidx", "ti_qu": "ti_quantity", "pp_mix": "pp_xoffset_min",
         "pp_max": "pp_xoffset_max", "pp_miy": "pp_yoffset_min", "pp_may": "pp_yoffset_max"}
_DECIMALS = {"se_va": "se_value", "ev_va": "se_value", "tr_tt": "tr_total", "tr_tx": "tr_tax",
             "tr_sh": "tr_shipping", "ti_pr": "ti_price"}
_BOOLEANS = {"f_pdf": "br_features_pdf", "f_fla": "br_features_flash", "f_java": "br_features_java",
             "f_dir": "br_features_director", "f_qt": "br_features_quicktime", "f_realp": "br_features_realplayer",
             "f_wma": "br_features_windowsmedia", "f_gears": "br_features_gears", "f_ag": "br_features_silverlight",
             "cookie": "br_cookies"}
_TIMESTAMPS = {"dtm": "dvce_created_tstamp", "stm": "dvce_sent_tstamp", "ttm": "true_tstamp"}

#: parameter → how it sets the event. `co`/`cx`/`ue_pr`/`ue_px` and `tnuid` are handled separately.
CONVERSIONS: dict[str, Setter] = {
    **{param: _string(field) for param, field in _STRINGS.items()},
    **{param: _converted(field, to_int) for param, field in _INTS.items()},
    **{param: _converted(field, to_decimal) for param, field in _DECIMALS.items()},
    **{param: _converted(field, to_boolean) for param, field in _BOOLEANS.items()},
    **{param: _converted(field, to_timestamp) for param, field in _TIMESTAMPS.items()},
    "e": _converted("event", to_event),
    "p": _converted("platform", to_platform),
    "eid": _converted("event_id", to_uuid),
    "sid": _converted("domain_sessionid", to_uuid),
    "ip": _converted("user_ipaddress", first_ip),
    "res": _pair("dvce_screenwidth", "dvce_screenheight"),
    "vp": _pair("br_viewwidth", "br_viewheight"),
    "ds": _pair("doc_width", "doc_height"),
}


def apply_parameters(event: EnrichedEvent, parameters: dict[str, str | None]) -> list[AtomicParseError]:
    """Set the atomic fields the parameters carry; return every conversion that failed."""
    errors: list[AtomicParseError] = []
    for name, value in parameters.items():
        if value is None:
            continue
        setter = CONVERSIONS.get(name)
        if setter is None:
            continue
        try:
            setter(event, value)
        except ConversionError as exc:
            errors.append(AtomicParseError(name, value, str(exc)))
    tnuid = parameters.get("tnuid")
    if tnuid is not None:
        event.network_userid = tsv_safe(tnuid)  # applied last: it wins over the cookie and nuid
    return errors
