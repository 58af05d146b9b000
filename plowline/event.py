"""EnrichedEvent: the canonical 131-field Snowplow enriched event, with its TSV and SDK JSON forms.

Fields are named and ordered exactly as in Snowplow's TSV (spec/enrich.md 1.2). Values are held
typed: strings, ints, floats, Decimals, booleans, timezone-aware UTC datetimes, and for the three
JSON columns the entities themselves (`contexts` and `derived_contexts` are lists of
self-describing JSON objects, `unstruct_event` is the inner self-describing event), which the TSV
renders wrapped in Snowplow's `contexts/1-0-1` and `unstruct_event/1-0-0` envelopes.

TSV (`to_tsv`/`from_tsv`, spec 1.1): None is an empty column, and an empty column reads back as
None, so an empty string (or one that TSV-safe cleaning empties) also reads back as None. Strings
are cleaned on output (TAB → 4 spaces, ASCII control characters removed), so no value can break
the line. Timestamps keep milliseconds only. `from_tsv(e.to_tsv()).to_tsv() == e.to_tsv()` always.

JSON (`to_json`): Plowline follows the Scala Analytics SDK 3.x lossy shape (the choice asked for
in spec 5.2), not the Python SDK 0.2.3 one: every atomic field is present (null when empty),
timestamps are Instant strings, decimals are numbers, booleans are booleans; `contexts` and
`derived_contexts` are shredded into `contexts_<vendor>_<name>_<model>` arrays of data objects
each carrying `_schema_version` ("M-R-A"), `unstruct_event` into
`unstruct_event_<vendor>_<name>_<model>`, and `geo_location` is "lat,lon". One deliberate
difference: where contexts and derived_contexts share a key the Scala SDK keeps only the derived
ones (a map overwrite); Plowline keeps both, contexts first.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any

from plowline import event_format as fmt
from plowline.event_format import CONTEXTS_SCHEMA, UNSTRUCT_EVENT_SCHEMA

__all__ = [
    "CONTEXTS_SCHEMA",
    "FIELD_KINDS",
    "FIELD_NAMES",
    "UNSTRUCT_EVENT_SCHEMA",
    "EnrichedEvent",
    "FieldKind",
]


class FieldKind(enum.Enum):
    """How a field is typed in Python and rendered in TSV."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    JSON = "json"


@dataclass(slots=True)
class EnrichedEvent:
    """One enriched event. Every field defaults to None (an empty TSV column)."""

    app_id: str | None = None
    platform: str | None = None
    etl_tstamp: datetime | None = None
    collector_tstamp: datetime | None = None
    dvce_created_tstamp: datetime | None = None
    event: str | None = None
    event_id: str | None = None
    txn_id: int | None = None
    name_tracker: str | None = None
    v_tracker: str | None = None
    v_collector: str | None = None
    v_etl: str | None = None
    user_id: str | None = None
    user_ipaddress: str | None = None
    user_fingerprint: str | None = None
    domain_userid: str | None = None
    domain_sessionidx: int | None = None
    network_userid: str | None = None
    geo_country: str | None = None
    geo_region: str | None = None
    geo_city: str | None = None
    geo_zipcode: str | None = None
    geo_latitude: float | None = None
    geo_longitude: float | None = None
    geo_region_name: str | None = None
    ip_isp: str | None = None
    ip_organization: str | None = None
    ip_domain: str | None = None
    ip_netspeed: str | None = None
    page_url: str | None = None
    page_title: str | None = None
    page_referrer: str | None = None
    page_urlscheme: str | None = None
    page_urlhost: str | None = None
    page_urlport: int | None = None
    page_urlpath: str | None = None
    page_urlquery: str | None = None
    page_urlfragment: str | None = None
    refr_urlscheme: str | None = None
    refr_urlhost: str | None = None
    refr_urlport: int | None = None
    refr_urlpath: str | None = None
    refr_urlquery: str | None = None
    refr_urlfragment: str | None = None
    refr_medium: str | None = None
    refr_source: str | None = None
    refr_term: str | None = None
    mkt_medium: str | None = None
    mkt_source: str | None = None
    mkt_term: str | None = None
    mkt_content: str | None = None
    mkt_campaign: str | None = None
    contexts: list[dict[str, Any]] | None = None
    se_category: str | None = None
    se_action: str | None = None
    se_label: str | None = None
    se_property: str | None = None
    se_value: Decimal | None = None
    unstruct_event: dict[str, Any] | None = None
    tr_orderid: str | None = None
    tr_affiliation: str | None = None
    tr_total: Decimal | None = None
    tr_tax: Decimal | None = None
    tr_shipping: Decimal | None = None
    tr_city: str | None = None
    tr_state: str | None = None
    tr_country: str | None = None
    ti_orderid: str | None = None
    ti_sku: str | None = None
    ti_name: str | None = None
    ti_category: str | None = None
    ti_price: Decimal | None = None
    ti_quantity: int | None = None
    pp_xoffset_min: int | None = None
    pp_xoffset_max: int | None = None
    pp_yoffset_min: int | None = None
    pp_yoffset_max: int | None = None
    useragent: str | None = None
    br_name: str | None = None
    br_family: str | None = None
    br_version: str | None = None
    br_type: str | None = None
    br_renderengine: str | None = None
    br_lang: str | None = None
    br_features_pdf: bool | None = None
    br_features_flash: bool | None = None
    br_features_java: bool | None = None
    br_features_director: bool | None = None
    br_features_quicktime: bool | None = None
    br_features_realplayer: bool | None = None
    br_features_windowsmedia: bool | None = None
    br_features_gears: bool | None = None
    br_features_silverlight: bool | None = None
    br_cookies: bool | None = None
    br_colordepth: str | None = None
    br_viewwidth: int | None = None
    br_viewheight: int | None = None
    os_name: str | None = None
    os_family: str | None = None
    os_manufacturer: str | None = None
    os_timezone: str | None = None
    dvce_type: str | None = None
    dvce_ismobile: bool | None = None
    dvce_screenwidth: int | None = None
    dvce_screenheight: int | None = None
    doc_charset: str | None = None
    doc_width: int | None = None
    doc_height: int | None = None
    tr_currency: str | None = None
    tr_total_base: Decimal | None = None
    tr_tax_base: Decimal | None = None
    tr_shipping_base: Decimal | None = None
    ti_currency: str | None = None
    ti_price_base: Decimal | None = None
    base_currency: str | None = None
    geo_timezone: str | None = None
    mkt_clickid: str | None = None
    mkt_network: str | None = None
    etl_tags: str | None = None
    dvce_sent_tstamp: datetime | None = None
    refr_domain_userid: str | None = None
    refr_dvce_tstamp: datetime | None = None
    derived_contexts: list[dict[str, Any]] | None = None
    domain_sessionid: str | None = None
    derived_tstamp: datetime | None = None
    event_vendor: str | None = None
    event_name: str | None = None
    event_format: str | None = None
    event_version: str | None = None
    event_fingerprint: str | None = None
    true_tstamp: datetime | None = None

    def to_tsv(self) -> str:
        """The canonical enriched TSV line (no trailing newline): 131 TAB-separated columns."""
        values = _values(self)
        # Fast path: when every string column is printable (no TAB, no control character: the usual
        # case), they go in as they are, without render_string's call for each of them (~43 an event).
        if all(map(str.isprintable, filter(None, _string_columns(values)))):
            return "\t".join([
                "" if value is None else value if render is None else render(value)
                for render, value in zip(_TSV_RENDER_FAST, values, strict=True)
            ])
        pairs = zip(_TSV_RENDER, values, strict=True)
        return "\t".join(["" if value is None else render(value) for render, value in pairs])

    @classmethod
    def from_tsv(cls, line: str) -> EnrichedEvent:
        """Parse a TSV line (a trailing newline is ignored). Raises ValueError naming the bad field."""
        columns = line.rstrip("\r\n").split("\t")
        if len(columns) != len(FIELD_NAMES):
            raise ValueError(f"Expected {len(FIELD_NAMES)} fields, received {len(columns)} fields.")
        try:
            return cls(*[None if text == "" else parse(text) for parse, text in zip(_TSV_PARSE, columns, strict=True)])
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise ValueError(_parse_failure(columns)) from exc

    def to_json(self) -> dict[str, Any]:
        """The Scala Analytics SDK 3.x lossy JSON of this event (see the module docstring)."""
        values = _values(self)
        out: dict[str, Any] = {
            name: None if values[index] is None else convert(values[index]) for index, name, convert in _JSON_ATOMIC
        }
        if self.contexts:
            fmt.shred_contexts(self.contexts, out)
        if self.derived_contexts:
            fmt.shred_contexts(self.derived_contexts, out)
        if self.unstruct_event:
            fmt.shred_unstruct(self.unstruct_event, out)
        if self.geo_latitude is not None and self.geo_longitude is not None:
            out["geo_location"] = f"{fmt.render_float(self.geo_latitude)},{fmt.render_float(self.geo_longitude)}"
        return out


#: The 131 field names in TSV order.
FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(EnrichedEvent))

#: Each field's kind, in TSV order.
FIELD_KINDS: dict[str, FieldKind] = {
    "app_id": FieldKind.STRING,
    "platform": FieldKind.STRING,
    "etl_tstamp": FieldKind.TIMESTAMP,
    "collector_tstamp": FieldKind.TIMESTAMP,
    "dvce_created_tstamp": FieldKind.TIMESTAMP,
    "event": FieldKind.STRING,
    "event_id": FieldKind.STRING,
    "txn_id": FieldKind.INTEGER,
    "name_tracker": FieldKind.STRING,
    "v_tracker": FieldKind.STRING,
    "v_collector": FieldKind.STRING,
    "v_etl": FieldKind.STRING,
    "user_id": FieldKind.STRING,
    "user_ipaddress": FieldKind.STRING,
    "user_fingerprint": FieldKind.STRING,
    "domain_userid": FieldKind.STRING,
    "domain_sessionidx": FieldKind.INTEGER,
    "network_userid": FieldKind.STRING,
    "geo_country": FieldKind.STRING,
    "geo_region": FieldKind.STRING,
    "geo_city": FieldKind.STRING,
    "geo_zipcode": FieldKind.STRING,
    "geo_latitude": FieldKind.FLOAT,
    "geo_longitude": FieldKind.FLOAT,
    "geo_region_name": FieldKind.STRING,
    "ip_isp": FieldKind.STRING,
    "ip_organization": FieldKind.STRING,
    "ip_domain": FieldKind.STRING,
    "ip_netspeed": FieldKind.STRING,
    "page_url": FieldKind.STRING,
    "page_title": FieldKind.STRING,
    "page_referrer": FieldKind.STRING,
    "page_urlscheme": FieldKind.STRING,
    "page_urlhost": FieldKind.STRING,
    "page_urlport": FieldKind.INTEGER,
    "page_urlpath": FieldKind.STRING,
    "page_urlquery": FieldKind.STRING,
    "page_urlfragment": FieldKind.STRING,
    "refr_urlscheme": FieldKind.STRING,
    "refr_urlhost": FieldKind.STRING,
    "refr_urlport": FieldKind.INTEGER,
    "refr_urlpath": FieldKind.STRING,
    "refr_urlquery": FieldKind.STRING,
    "refr_urlfragment": FieldKind.STRING,
    "refr_medium": FieldKind.STRING,
    "refr_source": FieldKind.STRING,
    "refr_term": FieldKind.STRING,
    "mkt_medium": FieldKind.STRING,
    "mkt_source": FieldKind.STRING,
    "mkt_term": FieldKind.STRING,
    "mkt_content": FieldKind.STRING,
    "mkt_campaign": FieldKind.STRING,
    "contexts": FieldKind.JSON,
    "se_category": FieldKind.STRING,
    "se_action": FieldKind.STRING,
    "se_label": FieldKind.STRING,
    "se_property": FieldKind.STRING,
    "se_value": FieldKind.DECIMAL,
    "unstruct_event": FieldKind.JSON,
    "tr_orderid": FieldKind.STRING,
    "tr_affiliation": FieldKind.STRING,
    "tr_total": FieldKind.DECIMAL,
    "tr_tax": FieldKind.DECIMAL,
    "tr_shipping": FieldKind.DECIMAL,
    "tr_city": FieldKind.STRING,
    "tr_state": FieldKind.STRING,
    "tr_country": FieldKind.STRING,
    "ti_orderid": FieldKind.STRING,
    "ti_sku": FieldKind.STRING,
    "ti_name": FieldKind.STRING,
    "ti_category": FieldKind.STRING,
    "ti_price": FieldKind.DECIMAL,
    "ti_quantity": FieldKind.INTEGER,
    "pp_xoffset_min": FieldKind.INTEGER,
    "pp_xoffset_max": FieldKind.INTEGER,
    "pp_yoffset_min": FieldKind.INTEGER,
    "pp_yoffset_max": FieldKind.INTEGER,
    "useragent": FieldKind.STRING,
    "br_name": FieldKind.STRING,
    "br_family": FieldKind.STRING,
    "br_version": FieldKind.STRING,
    "br_type": FieldKind.STRING,
    "br_renderengine": FieldKind.STRING,
    "br_lang": FieldKind.STRING,
    "br_features_pdf": FieldKind.BOOLEAN,
    "br_features_flash": FieldKind.BOOLEAN,
    "br_features_java": FieldKind.BOOLEAN,
    "br_features_director": FieldKind.BOOLEAN,
    "br_features_quicktime": FieldKind.BOOLEAN,
    "br_features_realplayer": FieldKind.BOOLEAN,
    "br_features_windowsmedia": FieldKind.BOOLEAN,
    "br_features_gears": FieldKind.BOOLEAN,
    "br_features_silverlight": FieldKind.BOOLEAN,
    "br_cookies": FieldKind.BOOLEAN,
    "br_colordepth": FieldKind.STRING,
    "br_viewwidth": FieldKind.INTEGER,
    "br_viewheight": FieldKind.INTEGER,
    "os_name": FieldKind.STRING,
    "os_family": FieldKind.STRING,
    "os_manufacturer": FieldKind.STRING,
    "os_timezone": FieldKind.STRING,
    "dvce_type": FieldKind.STRING,
    "dvce_ismobile": FieldKind.BOOLEAN,
    "dvce_screenwidth": FieldKind.INTEGER,
    "dvce_screenheight": FieldKind.INTEGER,
    "doc_charset": FieldKind.STRING,
    "doc_width": FieldKind.INTEGER,
    "doc_height": FieldKind.INTEGER,
    "tr_currency": FieldKind.STRING,
    "tr_total_base": FieldKind.DECIMAL,
    "tr_tax_base": FieldKind.DECIMAL,
    "tr_shipping_base": FieldKind.DECIMAL,
    "ti_currency": FieldKind.STRING,
    "ti_price_base": FieldKind.DECIMAL,
    "base_currency": FieldKind.STRING,
    "geo_timezone": FieldKind.STRING,
    "mkt_clickid": FieldKind.STRING,
    "mkt_network": FieldKind.STRING,
    "etl_tags": FieldKind.STRING,
    "dvce_sent_tstamp": FieldKind.TIMESTAMP,
    "refr_domain_userid": FieldKind.STRING,
    "refr_dvce_tstamp": FieldKind.TIMESTAMP,
    "derived_contexts": FieldKind.JSON,
    "domain_sessionid": FieldKind.STRING,
    "derived_tstamp": FieldKind.TIMESTAMP,
    "event_vendor": FieldKind.STRING,
    "event_name": FieldKind.STRING,
    "event_format": FieldKind.STRING,
    "event_version": FieldKind.STRING,
    "event_fingerprint": FieldKind.STRING,
    "true_tstamp": FieldKind.TIMESTAMP,
}

assert len(FIELD_NAMES) == 131 and tuple(FIELD_KINDS) == FIELD_NAMES

# Per-field codecs, looked up once here so the hot path does no type dispatch.
_TSV_RENDERERS: dict[FieldKind, Callable[[Any], str]] = {
    FieldKind.STRING: fmt.render_string,
    FieldKind.INTEGER: fmt.render_int,
    FieldKind.FLOAT: fmt.render_float,
    FieldKind.DECIMAL: fmt.render_decimal,
    FieldKind.BOOLEAN: fmt.render_bool,
    FieldKind.TIMESTAMP: fmt.render_timestamp,
}
_TSV_PARSERS: dict[FieldKind, Callable[[str], Any]] = {
    FieldKind.STRING: str,
    FieldKind.INTEGER: int,
    FieldKind.FLOAT: float,
    FieldKind.DECIMAL: Decimal,
    FieldKind.BOOLEAN: fmt.parse_bool,
    FieldKind.TIMESTAMP: fmt.parse_timestamp,
}
_SDK_CONVERTERS: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.STRING: fmt.sdk_string,
    FieldKind.INTEGER: int,
    FieldKind.FLOAT: fmt.sdk_float,
    FieldKind.DECIMAL: fmt.sdk_float,
    FieldKind.BOOLEAN: bool,
    FieldKind.TIMESTAMP: fmt.sdk_timestamp,
}
_JSON_RENDER: dict[str, Callable[[Any], str]] = {
    "contexts": fmt.render_contexts,
    "derived_contexts": fmt.render_contexts,
    "unstruct_event": fmt.render_unstruct,
}
_JSON_PARSE: dict[str, Callable[[str], Any]] = {
    "contexts": fmt.parse_contexts,
    "derived_contexts": fmt.parse_contexts,
    "unstruct_event": fmt.parse_unstruct,
}

_values: Callable[[EnrichedEvent], tuple[Any, ...]] = attrgetter(*FIELD_NAMES)
_TSV_RENDER: tuple[Callable[[Any], str], ...] = tuple(
    _JSON_RENDER[name] if kind is FieldKind.JSON else _TSV_RENDERERS[kind] for name, kind in FIELD_KINDS.items()
)
_string_columns: Callable[[tuple[Any, ...]], tuple[Any, ...]] = itemgetter(
    *[index for index, kind in enumerate(FIELD_KINDS.values()) if kind is FieldKind.STRING]
)
#: As _TSV_RENDER, with None for the string columns (see to_tsv's fast path).
_TSV_RENDER_FAST: tuple[Callable[[Any], str] | None, ...] = tuple(
    None if kind is FieldKind.STRING else render for render, kind in zip(_TSV_RENDER, FIELD_KINDS.values(), strict=True)
)
_TSV_PARSE: tuple[Callable[[str], Any], ...] = tuple(
    _JSON_PARSE[name] if kind is FieldKind.JSON else _TSV_PARSERS[kind] for name, kind in FIELD_KINDS.items()
)
_JSON_ATOMIC: tuple[tuple[int, str, Callable[[Any], Any]], ...] = tuple(
    (index, name, _SDK_CONVERTERS[kind])
    for index, (name, kind) in enumerate(FIELD_KINDS.items())
    if kind is not FieldKind.JSON
)


def _parse_failure(columns: list[str]) -> str:
    """Find the first column that does not parse, for an error message that names it."""
    for index, (name, parse, text) in enumerate(zip(FIELD_NAMES, _TSV_PARSE, columns, strict=True)):
        if text:
            try:
                parse(text)
            except (ValueError, ArithmeticError, TypeError) as exc:
                reason = str(exc) or type(exc).__name__
                return f"Invalid value for field {name} (column {index + 1}): {text[:200]!r}: {reason}"
    return "Invalid TSV line"
