"""Acceptance: official Snowplow trackers → a real collector → the real enrich pipeline → enriched events.

Python's `snowplow-tracker`, npm's `@snowplow/node-tracker` and `@snowplow/browser-tracker` (headless Chromium)
send page views from a UTM-tagged URL with a Google search referrer, structured events and self-describing events,
each with a custom context. The collector's raw records go through `Pipeline.process` with the default enrichments,
resolving schemas offline (Iglu Central's snapshot and a com.acme test repository). Every event must come out good,
once, under the tracker's eid, with the tracker's fields, the URL and referrer parts, the campaign and referer
attribution, the UA-derived fields and contexts; and PyPI's `snowplow-analytics-sdk` must read each TSV line.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from snowplow_tracker import Subject

from plowline.enrich.pipeline import Pipeline
from plowline.event import EnrichedEvent
from plowline.payload import CollectorPayload
from tests.e2e.support import (
    ACME_CONTEXT_SCHEMA,
    ACME_EVENT_SCHEMA,
    UTM,
    assert_campaign,
    assert_enriched_from,
    assert_google_referrer,
    assert_sdk_parses,
    assert_url_parts,
    derived_entities,
    enrich_records,
    events_by_eid,
    events_of,
    raw_records,
    require_js_deps,
    run_browser,
    run_node,
    track_python_events,
    wait_for_events,
)
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

UA_PARSER_CONTEXT = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-"
WEB_PAGE_CONTEXT = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-"
FIREFOX_MAC_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0"
PYTHON_DUID = "d0d0d0d0-0000-4000-8000-0000000e2e01"


def assert_no_page(enriched: EnrichedEvent) -> None:
    """A server-side structured or self-describing event: no page, so no URL parts, referer or campaign."""
    assert (enriched.page_url, enriched.page_title, enriched.page_referrer) == (None, None, None)
    assert_url_parts(enriched, "page", None)
    assert_url_parts(enriched, "refr", None)
    assert (enriched.refr_medium, enriched.refr_source, enriched.refr_term) == (None, None, None)
    assert_campaign(enriched, None)


def assert_shredded(enriched: EnrichedEvent, parsed: dict[str, Any], context: dict[str, Any]) -> None:
    """The Scala-SDK-shaped JSON and the Python SDK both shred our context and event under the right keys."""
    ours = enriched.to_json()
    assert ours["contexts_com_acme_e2e_context_1"] == [{**context, "_schema_version": "1-0-0"}]
    assert parsed["contexts_com_acme_e2e_context_1"] == [context]
    assert len(ours["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"]) == 1
    if enriched.event == "unstruct":
        data = enriched.unstruct_event["data"]  # type: ignore[index]
        assert ours["unstruct_event_com_acme_e2e_event_1"] == parsed["unstruct_event_com_acme_e2e_event_1"] == data
    else:
        assert not [key for key in ours if key.startswith("unstruct_event_")]


def enrich_all(
    pipeline: Pipeline, collector: CollectorProcess, count: int
) -> tuple[dict[str, EnrichedEvent], dict[str, dict[str, str]], dict[str, CollectorPayload]]:
    """Wait for `count` events in the raw log, enrich every record; all must be good. Returns the enriched events,
    the raw tracker-protocol events and the raw record of each, all keyed by eid."""
    payloads = wait_for_events(collector, count)
    raw = events_by_eid(payloads)
    assert len(raw) == count, f"{len(raw)} events in the raw log, expected {count}"
    record_of = {event["eid"]: payload for payload in payloads for event in events_of(payload)}
    good, bad = enrich_records(pipeline, raw_records(collector))
    assert bad == [], json.dumps(bad, indent=1)[:4000]
    assert set(good) == set(raw), "enriched event_ids != the trackers' eids"
    for eid, enriched in good.items():
        assert_enriched_from(enriched, raw[eid], record_of[eid])
    return good, raw, record_of


@pytest.mark.parametrize("method", ["post", "get"])
def test_python_tracker_events_enrich(cookie_collector: CollectorProcess, enrich_pipeline: Pipeline, method: str) -> None:
    page_url = "http://shop.example:8080/landing/spring?" + urlencode(UTM) + "&i={i}#offer"
    referrer = "https://www.google.com/search?q=snowplow+pipeline&hl=en"
    subject = (Subject().set_user_id("user-ü 42").set_ip_address("203.0.113.9").set_useragent(FIREFOX_MAC_UA)
               .set_lang("de-CH").set_timezone("Europe/Zurich").set_screen_resolution(1920, 1080)
               .set_domain_user_id(PYTHON_DUID))
    run = track_python_events(cookie_collector.base_url, 9, method=method, page_url=page_url, referrer=referrer, subject=subject)
    assert run.failed == [] and run.acknowledged == set(run.tracked)

    good, raw, _ = enrich_all(enrich_pipeline, cookie_collector, len(run.tracked))
    for eid, (kind, index) in run.tracked.items():
        enriched = good[eid]
        assert enriched.event == {"pv": "page_view", "se": "struct", "ue": "unstruct"}[kind]
        assert (enriched.app_id, enriched.name_tracker, enriched.platform) == ("plowline-e2e-py", "e2e-py", "pc")
        assert (enriched.v_tracker or "").startswith("py-")
        assert (enriched.user_id, enriched.user_ipaddress, enriched.domain_userid) == ("user-ü 42", "203.0.113.9", PYTHON_DUID)
        assert (enriched.br_lang, enriched.os_timezone) == ("de-CH", "Europe/Zurich")
        assert (enriched.dvce_screenwidth, enriched.dvce_screenheight) == (1920, 1080)
        # The `ua` parameter wins over the request's User-Agent (python-requests) for the UA enrichments.
        assert enriched.useragent == FIREFOX_MAC_UA
        assert (enriched.br_family, enriched.br_type, enriched.os_family, enriched.dvce_type) == (
            "Firefox", "Browser", "Mac OS X", "Computer")
        assert enriched.dvce_ismobile is False
        [ua_parser] = derived_entities(enriched, UA_PARSER_CONTEXT)
        assert (ua_parser["useragentFamily"], ua_parser["useragentMajor"], ua_parser["osFamily"]) == ("Firefox", "125", "Mac OS X")
        assert enriched.contexts == [{"schema": ACME_CONTEXT_SCHEMA, "data": {"index": index, "runner": "python"}}]
        if kind == "pv":
            url = page_url.replace("{i}", str(index))
            assert (enriched.page_url, enriched.page_title) == (url, f"Päge {index}")
            assert_url_parts(enriched, "page", url)
            assert (enriched.page_urlhost, enriched.page_urlport, enriched.page_urlfragment) == ("shop.example", 8080, "offer")
            assert enriched.page_urlquery == f"utm_source=newsletter&utm_medium=email&utm_campaign=spring&i={index}"
            assert_google_referrer(enriched, referrer, "snowplow pipeline")
            assert_campaign(enriched, UTM)
        else:
            assert_no_page(enriched)
        if kind == "se":
            assert (enriched.se_category, enriched.se_action, enriched.se_label, enriched.se_property, enriched.se_value) == (
                "e2e", f"action-{index}", "label & more", "prop", Decimal(str(index + 0.5)))
        if kind == "ue":
            assert enriched.unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"index": index, "text": "ünïcode ✓"}}
            assert (enriched.event_vendor, enriched.event_name, enriched.event_format, enriched.event_version) == (
                "com.acme", "e2e_event", "jsonschema", "1-0-0")
        parsed = assert_sdk_parses(enriched)
        assert_shredded(enriched, parsed, {"index": index, "runner": "python"})
        assert raw[eid]["e"] == kind
    # One client keeping the collector's cookie: one network user id; each event has its own fingerprint.
    assert len({enriched.network_userid for enriched in good.values()}) == 1
    assert len({enriched.event_fingerprint for enriched in good.values()}) == len(good)


@pytest.mark.parametrize("method", ["post", "get"])
def test_node_tracker_events_enrich(collector: CollectorProcess, enrich_pipeline: Pipeline, method: str) -> None:
    require_js_deps()
    utm = {**UTM, "utm_term": "boots", "utm_content": "hero"}
    page_url = "https://shop.example/page/{i}?" + urlencode(utm)
    referrer = "https://www.google.com/search?q=winter+boots"
    count = 6
    result = run_node(["node_tracker.mjs", collector.base_url, str(count), method, page_url, referrer])
    assert result.returncode == 0, f"node tracker failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    report = json.loads(result.stdout)
    assert report["failures"] == []
    tracked = [event["eid"] for event in report["tracked"]]
    assert sorted(report["sent"]) == sorted(tracked)

    good, _, _ = enrich_all(enrich_pipeline, collector, count)
    for index, eid in enumerate(tracked):
        enriched = good[eid]
        kind = ("pv", "se", "ue")[index % 3]
        assert enriched.event == {"pv": "page_view", "se": "struct", "ue": "unstruct"}[kind]
        assert (enriched.app_id, enriched.name_tracker, enriched.platform) == ("plowline-e2e-node", "e2e-node", "srv")
        assert (enriched.v_tracker or "").startswith("node-")
        assert enriched.domain_userid == "d0d0d0d0-0000-4000-8000-00000000e2e0"
        assert (enriched.useragent, enriched.user_ipaddress) == ("node", "127.0.0.1")  # Node's fetch: `User-Agent: node`
        assert enriched.contexts == [{"schema": ACME_CONTEXT_SCHEMA, "data": {"index": index, "runner": "node"}}]
        if kind == "pv":
            url = page_url.replace("{i}", str(index))
            assert (enriched.page_url, enriched.page_title) == (url, f"Page {index} \u2013 ünïcode")
            assert_url_parts(enriched, "page", url)
            assert (enriched.page_urlscheme, enriched.page_urlport, enriched.page_urlpath) == ("https", 443, f"/page/{index}")
            assert_google_referrer(enriched, referrer, "winter boots")
            assert_campaign(enriched, utm)
        else:
            assert_no_page(enriched)
        if kind == "se":
            assert (enriched.se_category, enriched.se_action, enriched.se_label, enriched.se_property, enriched.se_value) == (
                "e2e", f"action-{index}", "label with spaces & symbols", "prop", Decimal(str(index + 0.5)))
        if kind == "ue":
            assert enriched.unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"index": index, "text": "ünïcode ✓"}}
            assert (enriched.event_vendor, enriched.event_name, enriched.event_format, enriched.event_version) == (
                "com.acme", "e2e_event", "jsonschema", "1-0-0")
        parsed = assert_sdk_parses(enriched)
        assert_shredded(enriched, parsed, {"index": index, "runner": "node"})


def test_browser_tracker_events_enrich(
    tmp_path: Path, page_site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline
) -> None:
    referrer = "https://www.google.com/search?q=plowline+browser&source=hp"
    query = urlencode({"collector": cookie_collector.base_url, **UTM, "referrer": referrer})
    page_url = f"{page_site}/index.html?{query}"
    report = run_browser(page_url, cookie_collector.base_url, tmp_path / "chromium-profile")
    state = report["state"]
    assert state["href"] == page_url
    sent = [event["eid"] for event in state["sent"]]
    assert [event["e"] for event in state["sent"]] == ["pv", "se", "ue"]

    good, raw, record_of = enrich_all(enrich_pipeline, cookie_collector, len(sent))
    user_agent = state["userAgent"]
    steps = {"page_view": "page_view", "struct": "struct", "unstruct": "self_describing"}
    page_view_ids = set()
    for eid in sent:
        enriched = good[eid]
        assert (enriched.app_id, enriched.name_tracker, enriched.platform) == ("plowline-e2e-browser", "e2e-browser", "web")
        assert (enriched.v_tracker or "").startswith("js-")
        assert enriched.user_id == "browser-user-1"
        assert enriched.network_userid == record_of[eid].network_user_id
        # Every browser event has the page: its URL parts, the campaign from its utm_ parameters, the set referrer.
        assert enriched.page_url == page_url
        assert_url_parts(enriched, "page", page_url)
        assert (enriched.page_urlscheme, enriched.page_urlhost, enriched.page_urlpath) == ("http", "127.0.0.1", "/index.html")
        assert enriched.page_urlport == urlsplit(page_site).port
        assert enriched.page_urlquery == query
        assert enriched.page_title == ("Plowline e2e page" if enriched.event == "page_view" else None)
        assert_google_referrer(enriched, referrer, "plowline browser")
        assert_campaign(enriched, UTM)
        # What the browser tells about itself.
        assert enriched.useragent == user_agent and "Linux" in user_agent and "Chrome/" in user_agent
        assert (enriched.br_family, enriched.br_type, enriched.br_renderengine) == ("Chrome", "Browser", "BLINK")
        assert (enriched.os_family, enriched.dvce_type, enriched.dvce_ismobile) == ("Linux", "Computer", False)
        [ua_parser] = derived_entities(enriched, UA_PARSER_CONTEXT)
        # ua-parser (uap-core) names headless Chromium apart; user_agent_utils counts it as Chrome.
        assert ua_parser["useragentFamily"] == ("HeadlessChrome" if "HeadlessChrome/" in user_agent else "Chrome"), ua_parser
        assert ua_parser["useragentMajor"] == user_agent.split("Chrome/")[1].split(".")[0]
        assert ua_parser["osFamily"] == "Linux"
        fields = raw[eid]
        assert enriched.br_lang == fields["lang"] and enriched.br_cookies is True
        assert enriched.os_timezone == fields["tz"] and enriched.doc_charset == fields["cs"]
        assert f"{enriched.br_viewwidth}x{enriched.br_viewheight}" == fields["vp"]
        assert f"{enriched.dvce_screenwidth}x{enriched.dvce_screenheight}" == fields["res"]
        assert f"{enriched.doc_width}x{enriched.doc_height}" == fields["ds"]
        assert enriched.br_colordepth == fields["cd"]
        assert (enriched.domain_userid, enriched.domain_sessionid) == (fields["duid"], fields["sid"])
        # Contexts: our entity and the tracker's web_page entity, as sent.
        step = steps[enriched.event or ""]
        contexts = enriched.contexts or []
        assert [c for c in contexts if c["schema"] == ACME_CONTEXT_SCHEMA] == [
            {"schema": ACME_CONTEXT_SCHEMA, "data": {"step": step, "runner": "browser"}}]
        [web_page] = [c["data"] for c in contexts if c["schema"].startswith(WEB_PAGE_CONTEXT)]
        page_view_ids.add(web_page["id"])
        if enriched.event == "struct":
            assert (enriched.se_category, enriched.se_action, enriched.se_label, enriched.se_property, enriched.se_value) == (
                "e2e", "click", "label & ünïcode", "prop", Decimal("42.5"))
        if enriched.event == "unstruct":
            assert enriched.unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"text": "ünïcode ✓", "n": 3}}
            assert (enriched.event_vendor, enriched.event_name, enriched.event_version) == ("com.acme", "e2e_event", "1-0-0")
        parsed = assert_sdk_parses(enriched)
        assert_shredded(enriched, parsed, {"step": step, "runner": "browser"})
        assert parsed["contexts_com_snowplowanalytics_snowplow_web_page_1"] == [web_page]
    assert len(page_view_ids) == 1, "one page view: every event carries the same web_page id"
    assert len({good[eid].network_userid for eid in sent}) == 1, "the browser kept the collector's cookie"
