"""Atomic field length limits (enrich 6.x defaults, spec/enrich.md 2.8) and the check after enrichment."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter, gt, length_hint
from typing import Any

from plowline.event import EnrichedEvent

ATOMIC_SCHEMA = "iglu:com.snowplowanalytics.snowplow/atomic/jsonschema/1-0-0"

#: Maximum length of each string field; fields not listed are unlimited.
ATOMIC_FIELD_LIMITS: dict[str, int] = {
    "app_id": 255,
    "platform": 255,
    "event": 128,
    "event_id": 36,
    "name_tracker": 128,
    "v_tracker": 100,
    "v_collector": 100,
    "v_etl": 100,
    "user_id": 255,
    "user_ipaddress": 128,
    "user_fingerprint": 128,
    "domain_userid": 128,
    "network_userid": 128,
    "geo_country": 2,
    "geo_region": 3,
    "geo_city": 75,
    "geo_zipcode": 15,
    "geo_region_name": 100,
    "ip_isp": 100,
    "ip_organization": 128,
    "ip_domain": 128,
    "ip_netspeed": 100,
    "page_url": 10000,
    "page_title": 2000,
    "page_referrer": 10000,
    "page_urlscheme": 16,
    "page_urlhost": 255,
    "page_urlpath": 3000,
    "page_urlquery": 6000,
    "page_urlfragment": 3000,
    "refr_urlscheme": 16,
    "refr_urlhost": 255,
    "refr_urlpath": 6000,
    "refr_urlquery": 6000,
    "refr_urlfragment": 3000,
    "refr_medium": 25,
    "refr_source": 50,
    "refr_term": 255,
    "mkt_clickid": 1000,
    "mkt_network": 64,
    "mkt_medium": 255,
    "mkt_source": 255,
    "mkt_term": 255,
    "mkt_content": 500,
    "mkt_campaign": 255,
    "se_category": 1000,
    "se_action": 1000,
    "se_label": 4096,
    "se_property": 1000,
    "tr_orderid": 255,
    "tr_affiliation": 255,
    "tr_city": 255,
    "tr_state": 255,
    "tr_country": 255,
    "ti_orderid": 255,
    "ti_sku": 255,
    "ti_name": 255,
    "ti_category": 255,
    "useragent": 1000,
    "br_name": 50,
    "br_family": 50,
    "br_version": 50,
    "br_type": 50,
    "br_renderengine": 50,
    "br_lang": 255,
    "br_colordepth": 12,
    "os_name": 50,
    "os_family": 50,
    "os_manufacturer": 50,
    "os_timezone": 255,
    "dvce_type": 50,
    "doc_charset": 128,
    "tr_currency": 3,
    "ti_currency": 3,
    "base_currency": 3,
    "geo_timezone": 64,
    "etl_tags": 500,
    "refr_domain_userid": 128,
    "domain_sessionid": 128,
    "event_vendor": 1000,
    "event_name": 1000,
    "event_format": 128,
    "event_version": 128,
    "event_fingerprint": 128,
}


def length_violations(event: EnrichedEvent, limits: dict[str, int] = ATOMIC_FIELD_LIMITS) -> list[dict[str, Any]]:
    """Data reports for every string field longer than its limit (no truncation, as enrich 3.x+)."""
    names, maxima, getter = _limit_plan(limits)
    values = getter(event)
    # Usually nothing is too long: say so in one pass that stays in C (length_hint is len for a
    # string and 0 for None), then look closer only when something may be.
    if not any(map(gt, map(length_hint, values), maxima)):
        return []
    reports = []
    # One C-level attrgetter call fetches every checked field: this runs once per event.
    for name, limit, value in zip(names, maxima, values, strict=True):
        if value is not None and type(value) is str and len(value) > limit:
            reports.append({
                "message": f"Field is longer than maximum allowed size {limit}",
                "path": name,
                "keyword": "atomic_field_length_exceeded",
                "targets": [],
            })
    return reports


#: Per limits dict (treated as immutable once in use): its names, maxima and one getter for all fields.
_PLANS: dict[int, tuple[dict[str, int], tuple[str, ...], tuple[int, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _limit_plan(
    limits: dict[str, int],
) -> tuple[tuple[str, ...], tuple[int, ...], Callable[[Any], tuple[Any, ...]]]:
    plan = _PLANS.get(id(limits))
    if plan is None or plan[0] is not limits or len(plan[1]) != len(limits):
        names = tuple(limits)
        getter: Callable[[Any], tuple[Any, ...]]
        if len(names) > 1:
            getter = attrgetter(*names)
        else:  # attrgetter of one name returns the value itself, of none it cannot be built
            getter = (lambda event: (getattr(event, names[0]),)) if names else (lambda event: ())
        plan = (limits, names, tuple(limits.values()), getter)
        if len(_PLANS) > 16:
            _PLANS.clear()
        _PLANS[id(limits)] = plan
    return plan[1], plan[2], plan[3]
