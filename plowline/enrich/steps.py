"""The enrichment steps in Snowplow enrich 6.x's order (spec/enrich.md 2.3 phase 2): the STEPS tuple.

A step is a function of the event being built. Built-in steps derive fields every pipeline needs;
enrichment steps call the configured enrichment of that name, if any. The order is this tuple's,
not the registry's and not the configuration's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from plowline.enrich.enrichments.base import Enrichment
from plowline.enrich.errors import EnrichmentFailure
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.transform import ConversionError, timestamp_from_millis, tsv_safe
from plowline.enrich.urls import parse_sp_param
from plowline.event import EnrichedEvent

_SCHEMA_FIELDS = {
    "page_view": ("com.snowplowanalytics.snowplow", "page_view"),
    "page_ping": ("com.snowplowanalytics.snowplow", "page_ping"),
    "transaction": ("com.snowplowanalytics.snowplow", "transaction"),
    "transaction_item": ("com.snowplowanalytics.snowplow", "transaction_item"),
    "struct": ("com.google.analytics", "event"),
}


@dataclass(slots=True)
class EventState:
    """One event while it goes through the steps, with the failures they report."""

    event: EnrichedEvent
    raw: RawEvent
    enrichments: Mapping[str, Enrichment]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, message: dict[str, Any], enrichment: dict[str, Any] | None = None) -> None:
        self.failures.append({"enrichment": enrichment, "message": message})


Step = Callable[[EventState], None]


@dataclass(frozen=True, slots=True)
class UrlParts:
    url: str
    scheme: str | None
    host: str | None
    port: int | None
    path: str | None
    query: str | None
    fragment: str | None


@lru_cache(maxsize=4096)
def split_url(text: str) -> UrlParts:
    """Parse a URL as enrich does: spaces become %20, components are kept raw, ports default by scheme.

    Cached (the parts are immutable): a page view's pings and other events repeat its page URL and
    referrer, so most events find theirs already split.
    """
    cleaned = text.strip().replace(" ", "%20")
    try:
        parts = urlsplit(cleaned)
        port = parts.port
    except ValueError as exc:
        raise ConversionError(f"Could not parse URI: {exc}") from None
    host = parts.hostname
    if port is None and host:
        port = 443 if parts.scheme.lower() == "https" else 80
    return UrlParts(
        url=cleaned,
        scheme=parts.scheme or None,
        host=host,
        port=port if host else None,
        path=tsv_safe(parts.path) if parts.path else None,
        query=tsv_safe(parts.query) if parts.query else None,
        fragment=tsv_safe(parts.fragment) if parts.fragment else None,
    )


def check_v_collector(state: EventState) -> None:
    if not state.event.v_collector:
        state.fail({"field": "v_collector", "value": None, "expectation": "v_collector should be set"})


def page_uri(state: EventState) -> None:
    """page_url from the tracker's `url`, else the collector's Referer header; then its parts."""
    event = state.event
    source = event.page_url or state.raw.referer_uri
    if not source:
        return
    try:
        parts = split_url(source)
    except ConversionError as exc:
        event.page_url = None
        state.fail({"field": "page_url", "value": source, "expectation": str(exc)})
        return
    event.page_url = tsv_safe(parts.url)
    event.page_urlscheme, event.page_urlhost, event.page_urlport = parts.scheme, parts.host, parts.port
    event.page_urlpath, event.page_urlquery, event.page_urlfragment = parts.path, parts.query, parts.fragment


def derived_tstamp(state: EventState) -> None:
    """true_tstamp if set; else collector - (sent - created) when created < sent; else collector (2.5)."""
    event = state.event
    if event.true_tstamp is not None:
        event.derived_tstamp = event.true_tstamp
        return
    created, sent, collector = event.dvce_created_tstamp, event.dvce_sent_tstamp, event.collector_tstamp
    if created is not None and sent is not None and collector is not None and created < sent:
        event.derived_tstamp = collector - (sent - created)
    else:
        event.derived_tstamp = collector


def referer_uri(state: EventState) -> None:
    event = state.event
    if not event.page_referrer:
        return
    try:
        parts = split_url(event.page_referrer)
    except ConversionError as exc:
        state.fail({"field": "page_referrer", "value": event.page_referrer, "expectation": str(exc)})
        return
    event.page_referrer = tsv_safe(parts.url)
    event.refr_urlscheme, event.refr_urlhost, event.refr_urlport = parts.scheme, parts.host, parts.port
    event.refr_urlpath, event.refr_urlquery, event.refr_urlfragment = parts.path, parts.query, parts.fragment


def cross_domain(state: EventState) -> None:
    """refr_domain_userid / refr_dvce_tstamp from the page URL's `_sp` parameter (always parsed)."""
    query = state.event.page_urlquery
    if not query or "_sp=" not in query:
        return
    parts = parse_sp_param(query)
    if parts is None:
        return
    state.event.refr_domain_userid = tsv_safe(parts.domain_user_id) if parts.domain_user_id else None
    if parts.timestamp:
        try:
            state.event.refr_dvce_tstamp = timestamp_from_millis(int(parts.timestamp))
        except (ValueError, ConversionError):
            state.fail({"field": "sp_dtm", "value": parts.timestamp,
                        "expectation": "Not in the expected format: ms since epoch"})


def schema_fields(state: EventState) -> None:
    """event_vendor, event_name, event_format, event_version (2.6)."""
    event = state.event
    known = _SCHEMA_FIELDS.get(event.event or "")
    if known is not None:
        event.event_vendor, event.event_name = known
        event.event_format, event.event_version = "jsonschema", "1-0-0"
    elif event.event == "unstruct":
        if event.unstruct_event is not None:
            uri = str(event.unstruct_event.get("schema", ""))
            vendor, name, fmt, version = uri.removeprefix("iglu:").split("/")
            event.event_vendor, event.event_name, event.event_format, event.event_version = vendor, name, fmt, version
    else:
        state.fail({"error": (
            f"Trying to extract the schema of the enriched event but event type [{event.event}] doesn't match "
            "any of page_view, page_ping, struct, transaction, transaction_item and unstruct")})


def enrichment(name: str) -> Step:
    """The step that runs the configured enrichment called `name`, if it is configured."""

    def run(state: EventState) -> None:
        configured = state.enrichments.get(name)
        if configured is None:
            return
        try:
            entities = configured.enrich(state.event, state.raw)
        except EnrichmentFailure as failure:
            identity = {"schemaKey": str(configured.supported_schema), "identifier": name}
            for message in failure.messages:
                state.fail(message, identity)
            return
        if entities:
            if state.event.derived_contexts is None:
                state.event.derived_contexts = []
            state.event.derived_contexts.extend(entities)

    run.__name__ = f"enrichment_{name}"
    return run


#: Phase 2, in enrich 6.x's order. Enrichments Plowline does not ship are not listed.
STEPS: tuple[Step, ...] = (
    check_v_collector,                       # 1  v_collector must be set
    page_uri,                                # 2  page_url and its parts
    derived_tstamp,                          # 3  derived_tstamp
    enrichment("iab_spiders_and_robots_enrichment"),  # 4  before IP anonymisation
    enrichment("user_agent_utils_config"),   # 5  legacy br_/os_/dvce_ fields
    enrichment("ua_parser_config"),          # 6  ua_parser_context
    referer_uri,                             # 8  page_referrer parts
    enrichment("referer_parser"),            # 8  refr_medium/source/term
    enrichment("campaign_attribution"),      # 10 mkt_* from the page URL query
    cross_domain,                            # 11 refr_domain_userid, refr_dvce_tstamp
    enrichment("cross_navigation_config"),   # 11 cross_navigation entity
    enrichment("event_fingerprint_config"),  # 12 event_fingerprint
    enrichment("cookie_extractor_config"),   # 13 http_cookie entities
    enrichment("http_header_extractor_config"),  # 14 http_header entities
    schema_fields,                           # 17 event_vendor/name/format/version
    enrichment("ip_lookups"),                # 18 geo_*, ip_*
    enrichment("javascript_script_config"),  # 21 user scripts
    enrichment("anon_ip"),                   # 24 anonymise user_ipaddress
    enrichment("pii_enrichment_config"),     # 25 pseudonymise PII
)
