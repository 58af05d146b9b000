"""Built-in steps: URL parts, derived_tstamp, event_vendor/name/format/version, cross-domain _sp."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plowline.enrich.raw_event import RawEvent
from plowline.enrich.steps import (
    STEPS,
    EventState,
    cross_domain,
    derived_tstamp,
    page_uri,
    referer_uri,
    schema_fields,
    split_url,
)
from plowline.event import EnrichedEvent


def state(event: EnrichedEvent, referer: str | None = None) -> EventState:
    raw = RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, referer_uri=referer)
    return EventState(event, raw, {})


def ms(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_spec_example_derived_tstamp() -> None:
    event = EnrichedEvent(collector_tstamp=ms("2013-11-26 23:35:30.000"), dvce_created_tstamp=ms("2013-11-26 23:35:27.571"),
                          dvce_sent_tstamp=ms("2013-11-26 23:35:27.572"))
    derived_tstamp(state(event))
    assert event.derived_tstamp == ms("2013-11-26 23:35:29.999")


@pytest.mark.parametrize(("created", "sent", "true", "expected"), [
    (None, None, None, "collector"),
    ("2020-01-01 00:00:02", "2020-01-01 00:00:01", None, "collector"),  # created >= sent
    ("2020-01-01 00:00:01", None, None, "collector"),
    (None, None, "2019-05-05 05:05:05", "true"),
])
def test_derived_tstamp_rules(created: str | None, sent: str | None, true: str | None, expected: str) -> None:
    collector = ms("2020-01-01 00:00:10")
    event = EnrichedEvent(collector_tstamp=collector, dvce_created_tstamp=created and ms(created),
                          dvce_sent_tstamp=sent and ms(sent), true_tstamp=true and ms(true))
    derived_tstamp(state(event))
    assert event.derived_tstamp == (collector if expected == "collector" else event.true_tstamp)


def test_page_url_parts_and_default_ports() -> None:
    event = EnrichedEvent(page_url="https://www.acme.com/shop/bikes?utm_source=x&b=c d#top")
    page_uri(state(event))
    assert event.page_url == "https://www.acme.com/shop/bikes?utm_source=x&b=c%20d#top"
    assert (event.page_urlscheme, event.page_urlhost, event.page_urlport) == ("https", "www.acme.com", 443)
    assert (event.page_urlpath, event.page_urlquery, event.page_urlfragment) == ("/shop/bikes", "utm_source=x&b=c%20d", "top")
    plain = EnrichedEvent(page_url="http://acme.com:8080")
    page_uri(state(plain))
    assert plain.page_urlport == 8080 and plain.page_urlpath is None


def test_page_url_falls_back_to_the_referer_header() -> None:
    event = EnrichedEvent()
    page_uri(state(event, referer="http://example.com/from-header"))
    assert event.page_url == "http://example.com/from-header"
    assert event.page_urlport == 80


def test_unparsable_url_is_an_enrichment_failure() -> None:
    event = EnrichedEvent(page_url="http://[::1/broken")
    current = state(event)
    page_uri(current)
    assert current.failures[0]["message"]["field"] == "page_url"


def test_referrer_parts() -> None:
    event = EnrichedEvent(page_referrer="https://www.google.com/search?q=bikes")
    referer_uri(state(event))
    assert (event.refr_urlhost, event.refr_urlpath, event.refr_urlquery) == ("www.google.com", "/search", "q=bikes")


@pytest.mark.parametrize(("event_type", "vendor", "name"), [
    ("page_view", "com.snowplowanalytics.snowplow", "page_view"),
    ("page_ping", "com.snowplowanalytics.snowplow", "page_ping"),
    ("struct", "com.google.analytics", "event"),
    ("transaction_item", "com.snowplowanalytics.snowplow", "transaction_item"),
])
def test_schema_fields(event_type: str, vendor: str, name: str) -> None:
    event = EnrichedEvent(event=event_type)
    schema_fields(state(event))
    assert (event.event_vendor, event.event_name, event.event_format, event.event_version) == (vendor, name, "jsonschema", "1-0-0")


def test_schema_fields_of_unstruct_and_unknown() -> None:
    event = EnrichedEvent(event="unstruct", unstruct_event={"schema": "iglu:com.acme/email_open/jsonschema/1-2-0", "data": {}})
    schema_fields(state(event))
    assert (event.event_vendor, event.event_name, event.event_version) == ("com.acme", "email_open", "1-2-0")
    odd = EnrichedEvent(event="ad_impression")
    current = state(odd)
    schema_fields(current)
    assert "doesn't match any of" in current.failures[0]["message"]["error"]


def test_cross_domain_sp_parameter() -> None:
    event = EnrichedEvent(page_urlquery="a=1&_sp=a7b9e6f8-1c2d-4e5f-8a9b-0c1d2e3f4a5b.1697175843762")
    cross_domain(state(event))
    assert event.refr_domain_userid == "a7b9e6f8-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    assert event.refr_dvce_tstamp == ms("2023-10-13 05:44:03.762")
    bad = EnrichedEvent(page_urlquery="_sp=abc.notatime")
    current = state(bad)
    cross_domain(current)
    assert current.failures[0]["message"]["field"] == "sp_dtm"


def test_split_url_rejects_broken_ports() -> None:
    with pytest.raises(ValueError, match="Could not parse URI"):
        split_url("http://host:99999999/")


def test_steps_follow_snowplow_order() -> None:
    names = [step.__name__ for step in STEPS]
    assert names.index("page_uri") < names.index("derived_tstamp") < names.index("enrichment_iab_spiders_and_robots_enrichment")
    assert names.index("enrichment_ip_lookups") < names.index("enrichment_javascript_script_config") < names.index("enrichment_anon_ip")
    assert names.index("enrichment_anon_ip") < names.index("enrichment_pii_enrichment_config") == len(names) - 1
