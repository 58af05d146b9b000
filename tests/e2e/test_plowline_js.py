"""Acceptance: plowline.js in headless Debian Chromium → a real collector → the real enrich pipeline.

The test page (js/plowline_page.html) loads plowline.js with the loader snippet and queues `newTracker`, a global
context and a page view before the script has loaded. Chromium is driven step by step (js/browser_driver.mjs), so
a test can stop and restart the collector, reload the page or let a session time out between steps. Every event
must reach the collector's raw log exactly once and come out of enrich as a good event with the fields the tracker
sent: page views, page pings with scroll offsets, link clicks, form focus/change/submit (password and deny-listed
fields never sent), structured and self-describing events with global and per-event contexts, the first-party
session kept across reloads and renewed after the timeout, an outage survived through the localStorage queue, and
anonymous tracking without identifiers.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from plowline.enrich.pipeline import Pipeline
from plowline.event import EnrichedEvent
from plowline.payload import CollectorPayload
from tests.conftest import INSECURE_COOKIE
from tests.e2e.support import (
    ACME_CONTEXT_SCHEMA,
    ACME_EVENT_SCHEMA,
    JS_DIR,
    REPO_ROOT,
    TP2_PATH,
    BrowserDriver,
    assert_enriched_from,
    assert_sdk_parses,
    assert_uuid4,
    contexts_of,
    derived_entities,
    enrich_records,
    events_by_eid,
    events_of,
    raw_records,
    serve_directory,
    unstruct_of,
    wait_for_events,
)
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

SCRIPT = REPO_ROOT / "plowline" / "trackers" / "js" / "plowline.js"
VERSION = re.search(r"const VERSION = '([^']+)';", SCRIPT.read_text())[1]  # type: ignore[index]
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
FOCUS_FORM = "iglu:com.snowplowanalytics.snowplow/focus_form/jsonschema/1-0-0"
CHANGE_FORM = "iglu:com.snowplowanalytics.snowplow/change_form/jsonschema/1-0-0"
SUBMIT_FORM = "iglu:com.snowplowanalytics.snowplow/submit_form/jsonschema/1-0-0"
UA_PARSER_CONTEXT = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-"
GLOBAL_CONTEXT = {"schema": ACME_CONTEXT_SCHEMA, "data": {"step": "global", "runner": "browser"}}
ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"
IDENTIFIERS = ("duid", "sid", "vid", "uid", "nuid", "tnuid", "ip")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The test page (index.html) and a self-hosted copy of plowline.js, on their own loopback origin."""
    directory = tmp_path / "site"
    directory.mkdir()
    shutil.copy(JS_DIR / "plowline_page.html", directory / "index.html")
    shutil.copy(SCRIPT, directory / "plowline.js")
    (directory / "other.html").write_text("<!doctype html><title>other</title>")
    with serve_directory(directory) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserDriver]:
    driver = BrowserDriver(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.close()


def page_url(site: str, collector: CollectorProcess, *, script: str | None = None, options: dict[str, Any] | None = None,
             **params: str) -> str:
    query = {"collector": collector.base_url, "script": script or f"{site}/plowline.js",
             "options": json.dumps({"appId": "plowline-e2e-js", **(options or {})}), **params}
    return f"{site}/index.html?{urlencode(query)}"


def load(browser: BrowserDriver, url: str) -> None:
    assert browser("goto", url=url) == url
    browser("wait", expr="window.plowline && window.plowline.version")


def sent(browser: BrowserDriver) -> list[dict[str, str]]:
    """The events this page's tracker got a 200 for, in order."""
    events: list[dict[str, str]] = browser("eval", expr="window.__plowline.sent")
    return events


def wait_sent(browser: BrowserDriver, count: int) -> list[dict[str, str]]:
    browser("wait", expr=f"window.__plowline.sent.length >= {count}")
    return sent(browser)


def queued(browser: BrowserDriver) -> list[str]:
    """The eids the tracker holds until the collector acknowledges them."""
    eids: list[str] = browser("eval", expr="window.plowline((t) => t.e2e.getQueuedEvents().map((e) => e.eid))")
    return eids


def enrich_all(pipeline: Pipeline, collector: CollectorProcess, eids: set[str]) -> tuple[
        dict[str, EnrichedEvent], dict[str, dict[str, str]], dict[str, CollectorPayload]]:
    """The raw log must hold exactly these events, once each; enrich must make a good event of every one."""
    records = wait_for_events(collector, len(eids))
    raw = events_by_eid(records)  # fails on an event seen twice
    assert set(raw) == eids, "events in the raw log != the events the browser tracked"
    record_of = {event["eid"]: record for record in records for event in events_of(record)}
    good, bad = enrich_records(pipeline, raw_records(collector))
    assert bad == [], json.dumps(bad, indent=1)[:4000]
    assert set(good) == eids
    for eid, enriched in good.items():
        assert_enriched_from(enriched, raw[eid], record_of[eid])
        assert_sdk_parses(enriched)
    return good, raw, record_of


def assert_browser_event(enriched: EnrichedEvent, raw: dict[str, str], user_agent: str) -> None:
    """What every plowline.js event carries, whatever its type."""
    assert (enriched.app_id, enriched.name_tracker, enriched.platform) == ("plowline-e2e-js", "e2e", "web")
    assert enriched.v_tracker == f"plowline-js-{VERSION}"
    assert raw["cookie"] == "1" and enriched.br_cookies is True
    assert enriched.useragent == user_agent
    assert (enriched.os_family, enriched.dvce_type) == ("Linux", "Computer")
    [ua_parser] = derived_entities(enriched, UA_PARSER_CONTEXT)
    assert ua_parser["osFamily"] == "Linux"
    assert enriched.br_lang == raw["lang"] and enriched.os_timezone == raw["tz"] and enriched.doc_charset == "UTF-8"
    assert (enriched.br_viewwidth, enriched.br_viewheight) == (1000, 700)
    assert f"{enriched.dvce_screenwidth}x{enriched.dvce_screenheight}" == raw["res"]
    assert (enriched.doc_width, enriched.doc_height) == (3000, 4000)
    assert enriched.br_colordepth == raw["cd"]
    assert raw["stm"].isdigit() and int(raw["dtm"]) <= int(raw["stm"])
    assert enriched.dvce_created_tstamp is not None and enriched.derived_tstamp is not None


def web_page_id(enriched: EnrichedEvent) -> str:
    [web_page] = [entity["data"] for entity in enriched.contexts or [] if entity["schema"] == WEB_PAGE]
    return str(uuid.UUID(web_page["id"]))


def test_page_view_struct_and_self_describing_events(site: str, cookie_collector: CollectorProcess,
                                                     enrich_pipeline: Pipeline, browser: BrowserDriver) -> None:
    # The snippet loads plowline.js from the collector itself, as a site would.
    url = page_url(site, cookie_collector, script=f"{cookie_collector.base_url}/plowline.js", user="js-user-1")
    load(browser, url)
    assert browser("eval", expr="window.__plowline.queuedBeforeLoad") is True, "the commands did not wait for the script"
    script_entry = browser("eval", expr=f"performance.getEntriesByName({json.dumps(cookie_collector.base_url + '/plowline.js')}).length")
    assert script_entry == 1
    [page_view] = wait_sent(browser, 1)
    se_eid = browser("eval", expr="""window.plowline('trackStructEvent', {category: 'e2e', action: 'click',
        label: 'label & ünïcode', property: 'prop', value: 42.5,
        context: [{schema: 'iglu:com.acme/e2e_context/jsonschema/1-0-0', data: {step: 'struct', runner: 'browser'}}]})""")
    ue_eid = browser("eval", expr="""window.plowline('trackSelfDescribingEvent', {
        event: {schema: 'iglu:com.acme/e2e_event/jsonschema/1-0-0', data: {text: 'ünïcode ✓', n: 3}},
        context: [{schema: 'iglu:com.acme/e2e_context/jsonschema/1-0-0', data: {step: 'self_describing', runner: 'browser'}},
                  {schema: 'iglu:com.acme/e2e_context/jsonschema/1-0-0', data: {index: 7}}]})""")
    acknowledged = wait_sent(browser, 3)
    assert [event["eid"] for event in acknowledged] == [page_view["eid"], se_eid, ue_eid]
    user_agent = browser("eval", expr="navigator.userAgent")

    good, raw, records = enrich_all(enrich_pipeline, cookie_collector, {page_view["eid"], se_eid, ue_eid})
    for eid, enriched in good.items():
        assert_browser_event(enriched, raw[eid], user_agent)
        # Tracker protocol on the wire: a tp2 POST batch of payload_data 1-0-4, base64url contexts (cx), and a v4 eid.
        record = records[eid]
        assert record.path == TP2_PATH and record.content_type == "application/json; charset=utf-8"
        assert json.loads(record.body or "")["schema"] == "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
        assert "cx" in raw[eid] and "co" not in raw[eid]
        assert_uuid4(eid)
        assert enriched.user_id == "js-user-1"
        assert enriched.page_url == url and enriched.page_urlpath == "/index.html"
        assert_uuid4(enriched.domain_userid)
        assert_uuid4(enriched.domain_sessionid)
        assert enriched.domain_sessionidx == 1
        # The browser kept the collector's cookie: the same network user id as the record.
        assert enriched.network_userid == record.network_user_id
        assert GLOBAL_CONTEXT in (enriched.contexts or [])
    pv, se, ue = good[page_view["eid"]], good[se_eid], good[ue_eid]
    assert pv.event == "page_view" and pv.page_title == "Plowline.js e2e page"
    assert (se.page_title, ue.page_title) == (None, None)
    assert {"schema": ACME_CONTEXT_SCHEMA, "data": {"step": "page_view", "runner": "browser"}} in (pv.contexts or [])
    # One page view: the web_page context's id on every event is the same.
    assert len({web_page_id(event) for event in good.values()}) == 1
    assert len({(event.domain_userid, event.domain_sessionid) for event in good.values()}) == 1
    assert (se.event, se.se_category, se.se_action, se.se_label, se.se_property, se.se_value) == (
        "struct", "e2e", "click", "label & ünïcode", "prop", Decimal("42.5"))
    assert ue.event == "unstruct"
    assert ue.unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"text": "ünïcode ✓", "n": 3}}
    assert "ue_px" in raw[ue_eid] and "ue_pr" not in raw[ue_eid]
    assert (ue.event_vendor, ue.event_name, ue.event_format, ue.event_version) == ("com.acme", "e2e_event", "jsonschema", "1-0-0")
    assert [entity for entity in ue.contexts or [] if entity["schema"] == ACME_CONTEXT_SCHEMA] == [
        {"schema": ACME_CONTEXT_SCHEMA, "data": {"step": "self_describing", "runner": "browser"}},
        {"schema": ACME_CONTEXT_SCHEMA, "data": {"index": 7}},
        GLOBAL_CONTEXT,
    ]
    # The tracker's first-party cookie holds the ids it sent.
    cookies = browser("cookies", urls=[site])
    [id_cookie] = [cookie for cookie in cookies if cookie["name"].startswith("_sp_id.")]
    assert id_cookie["value"].split(".")[0] == pv.domain_userid
    assert id_cookie["value"].split(".")[4] == pv.domain_sessionid


def test_page_pings_link_clicks_and_forms(site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline,
                                          browser: BrowserDriver) -> None:
    load(browser, page_url(site, cookie_collector, pageview="no"))
    browser("eval", expr="""window.plowline('enableActivityTracking', {minimumVisitLength: 1, heartbeatDelay: 1}),
        window.plowline('enableLinkClickTracking', {trackContent: true}),
        window.plowline('enableFormTracking', {fields: {denylist: ['card']}}),
        window.plowline('trackPageView')""")
    # Activity since the page view: the next heartbeat sends a ping with the scroll range seen since.
    browser("eval", expr="window.scrollTo(300, 800)")
    browser("wait", expr="window.__plowline.sent.filter((e) => e.e === 'pp').length >= 1")
    browser("eval", expr="window.scrollTo(0, 1500)")
    browser("wait", expr="window.__plowline.sent.filter((e) => e.e === 'pp').length >= 2")
    browser("eval", expr="window.plowline('disableActivityTracking')")

    browser("click", selector="#to-part2")
    browser("focus", selector="#email")
    browser("fill", selector="#email", value="a@b.example")
    browser("fill", selector="#password", value="hunter2-secret")
    browser("fill", selector="#card", value="4111111111111111")
    browser("select", selector="#plan", value="pro")
    browser("fill", selector="#notes", value="hello")
    browser("check", selector="#newsletter")
    browser("click", selector="#send")
    browser("wait", expr="window.__plowline.sent.some((e) => e.ue_px && atob(e.ue_px.replace(/-/g, '+').replace(/_/g, '/'))"
                         ".includes('submit_form'))")
    browser("wait", expr="window.plowline((t) => t.e2e.getQueuedEvents().length === 0)")
    eids = {event["eid"] for event in sent(browser)}
    user_agent = browser("eval", expr="navigator.userAgent")

    good, raw, _ = enrich_all(enrich_pipeline, cookie_collector, eids)
    for eid, enriched in good.items():
        assert_browser_event(enriched, raw[eid], user_agent)
        # Neither the password nor the deny-listed field is in any event, under any encoding.
        decoded = json.dumps({key: (unstruct_of(raw[eid]) if key == "ue_px" else value) for key, value in raw[eid].items()})
        assert "hunter2" not in decoded and "4111111111111111" not in decoded and '"password"' not in decoded
        assert '"card"' not in decoded
    by_kind: dict[str, list[EnrichedEvent]] = {}
    for enriched in sorted(good.values(), key=lambda event: (event.dvce_created_tstamp, event.event_id)):
        kind = enriched.event_name if enriched.event == "unstruct" else enriched.event
        by_kind.setdefault(kind or "", []).append(enriched)
    [page_view] = by_kind["page_view"]
    assert len({web_page_id(event) for event in good.values()}) == 1, "every event belongs to the one page view"

    pings = by_kind["page_ping"]
    assert len(pings) >= 2
    offsets = [(p.pp_xoffset_min, p.pp_xoffset_max, p.pp_yoffset_min, p.pp_yoffset_max) for p in pings]
    assert offsets[0] == (0, 300, 0, 800), offsets
    assert offsets[1] == (0, 300, 800, 1500), offsets
    assert all(ping.page_url == page_view.page_url for ping in pings)

    [click] = by_kind["link_click"]
    assert click.unstruct_event == {"schema": LINK_CLICK, "data": {
        "targetUrl": page_view.page_url + "#part2", "elementId": "to-part2", "elementClasses": ["nav", "internal"],
        "elementContent": "Part two"}}
    assert (click.event_vendor, click.event_version) == ("com.snowplowanalytics.snowplow", "1-0-1")

    def fields(kind: str) -> list[dict[str, Any]]:
        return [event.unstruct_event["data"] for event in by_kind.get(kind, []) if event.unstruct_event]

    focused = fields("focus_form")
    assert {"formId": "signup", "elementId": "email", "nodeName": "INPUT", "elementType": "email",
            "elementClasses": ["field"], "value": ""} in focused
    assert {entry["elementId"] for entry in focused} <= {"email", "plan", "notes", "newsletter"}
    changed = fields("change_form")
    assert {"formId": "signup", "elementId": "plan", "nodeName": "SELECT", "elementClasses": [], "value": "pro"} in changed
    assert {"formId": "signup", "elementId": "newsletter", "nodeName": "INPUT", "type": "checkbox",
            "elementClasses": [], "value": "yes"} in changed
    assert {entry["elementId"] for entry in changed} <= {"email", "plan", "notes", "newsletter"}
    assert {"email", "plan", "newsletter"} <= {entry["elementId"] for entry in changed}
    [submitted] = fields("submit_form")
    assert submitted == {"formId": "signup", "formClasses": ["signup", "wide"], "elements": [
        {"name": "email", "value": "a@b.example", "nodeName": "INPUT", "type": "email"},
        {"name": "plan", "value": "pro", "nodeName": "SELECT"},
        {"name": "notes", "value": "hello", "nodeName": "TEXTAREA"},
        {"name": "newsletter", "value": "yes", "nodeName": "INPUT", "type": "checkbox"},
    ]}


def test_session_kept_across_reloads_and_renewed_after_timeout(
        site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline, browser: BrowserDriver) -> None:
    timeout_s = 8  # small, yet far longer than a reload takes on a busy machine
    load(browser, page_url(site, cookie_collector, options={"sessionCookieTimeout": timeout_s}))
    [first] = wait_sent(browser, 1)
    browser("reload")
    [second] = wait_sent(browser, 1)
    # No event for longer than the session timeout: the next page view starts session 2 for the same user.
    time.sleep(timeout_s + 1)
    browser("reload")
    [third] = wait_sent(browser, 1)

    good, _, _ = enrich_all(enrich_pipeline, cookie_collector, {first["eid"], second["eid"], third["eid"]})
    one, two, three = good[first["eid"]], good[second["eid"]], good[third["eid"]]
    assert all(event.event == "page_view" for event in (one, two, three))
    assert one.domain_userid == two.domain_userid == three.domain_userid
    assert_uuid4(one.domain_userid)
    assert (one.domain_sessionid, one.domain_sessionidx) == (two.domain_sessionid, 1)
    assert three.domain_sessionidx == 2
    assert three.domain_sessionid not in (None, one.domain_sessionid)
    assert_uuid4(three.domain_sessionid)
    # Each load is its own page view.
    assert len({web_page_id(event) for event in (one, two, three)}) == 3


def test_events_queued_while_the_collector_is_down_arrive_once(
        site: str, tmp_path: Path, enrich_pipeline: Pipeline, browser: BrowserDriver) -> None:
    data_dir = tmp_path / "outage-data"
    collector = CollectorProcess(data_dir, env=INSECURE_COOKIE).start()
    try:
        load(browser, page_url(site, collector, options={"retryBaseMs": 200, "retryMaxMs": 1000}))
        [page_view] = wait_sent(browser, 1)
        collector.stop()
        during = [browser("eval", expr=expr) for expr in (
            "window.plowline('trackStructEvent', {category: 'e2e', action: 'offline-1'})",
            "window.plowline('trackStructEvent', {category: 'e2e', action: 'offline-2', value: 2})",
            "window.plowline('trackSelfDescribingEvent', {event: {schema: 'iglu:com.acme/e2e_event/jsonschema/1-0-0',"
            " data: {n: 1}}})",
        )]
        browser("wait", expr="window.__plowline.failures.some((f) => f.willRetry && f.status === 0)")
        assert set(during) <= set(queued(browser))
        # The page goes away with the events undelivered; the next page finds them in localStorage.
        browser("reload")
        browser("wait", expr="window.__plowline.failures.length >= 1")
        waiting = queued(browser)
        assert set(during) < set(waiting) and len(waiting) == 4, waiting
        assert sent(browser) == []
        collector = CollectorProcess(data_dir, port=collector.port, env=INSECURE_COOKIE).start()
        browser("wait", expr="window.plowline((t) => t.e2e.getQueuedEvents().length === 0)")
        delivered = {event["eid"] for event in sent(browser)}
        assert delivered == set(waiting)
        good, raw, _ = enrich_all(enrich_pipeline, collector, {page_view["eid"], *waiting})
        # Once the collector is back, the stored events go out together: one POST carries several.
        assert max(len(events_of(record)) for record in collector.records()) > 1
        assert [raw[eid]["se_ac"] for eid in during[:2]] == ["offline-1", "offline-2"]
        assert good[during[1]].se_value == Decimal(2)
        assert good[during[2]].unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"n": 1}}
        # Tracked on the first page: they keep its page view id, and their device time is before the restart.
        assert {web_page_id(good[eid]) for eid in during} == {web_page_id(good[page_view["eid"]])}
    finally:
        collector.stop()


def test_anonymous_tracking_sends_no_identifiers(site: str, cookie_collector: CollectorProcess,
                                                 enrich_pipeline: Pipeline, browser: BrowserDriver) -> None:
    load(browser, page_url(site, cookie_collector, options={"anonymousTracking": True}, user="must-not-be-sent"))
    [page_view] = wait_sent(browser, 1)
    se_eid = browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'anonymous'})")
    wait_sent(browser, 2)

    good, raw, records = enrich_all(enrich_pipeline, cookie_collector, {page_view["eid"], se_eid})
    for eid, enriched in good.items():
        assert not set(IDENTIFIERS) & set(raw[eid]), raw[eid]
        record = records[eid]
        assert record.header("SP-Anonymous") == "*"
        assert record.header("Cookie") is None
        assert record.network_user_id == ANONYMOUS_NUID
        assert (enriched.user_id, enriched.domain_userid, enriched.domain_sessionid, enriched.domain_sessionidx) == (
            None, None, None, None)
        assert enriched.network_userid == ANONYMOUS_NUID
        assert enriched.user_ipaddress in (None, "unknown")
        assert GLOBAL_CONTEXT in contexts_of(raw[eid])
    # Nothing identifying is stored in the browser either: no first-party id cookie, no collector cookie.
    assert browser("cookies", urls=[site, cookie_collector.base_url]) == []


def test_get_method_and_cookieless_mode(site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline,
                                        browser: BrowserDriver) -> None:
    load(browser, page_url(site, cookie_collector, options={"eventMethod": "get", "stateStorageStrategy": "none"}))
    [page_view] = wait_sent(browser, 1)
    se_eid = browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'get', value: 1.5})")
    wait_sent(browser, 2)

    good, raw, records = enrich_all(enrich_pipeline, cookie_collector, {page_view["eid"], se_eid})
    for eid, enriched in good.items():
        record = records[eid]
        # GET /i, one event per request: stm first, the base64url contexts last (as Snowplow's JS tracker).
        assert record.path == "/i" and record.body is None
        assert (record.querystring or "").startswith("stm=")
        assert (record.querystring or "").rsplit("&", 1)[1].startswith("cx=")
        assert not {"duid", "sid", "vid"} & set(raw[eid])
        assert (enriched.domain_userid, enriched.domain_sessionid, enriched.domain_sessionidx) == (None, None, None)
        assert GLOBAL_CONTEXT in (enriched.contexts or [])
    assert good[se_eid].se_value == Decimal("1.5")
    # Cookieless: the tracker stored nothing on the device (the collector's own `sp` cookie is the collector's).
    assert [cookie["name"] for cookie in browser("cookies", urls=[site])] == ["sp"]
    assert browser("eval", expr="Object.keys(localStorage)") == []


def test_opt_out_cookie_stops_tracking(site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline,
                                       browser: BrowserDriver) -> None:
    url = page_url(site, cookie_collector, options={"optOutCookie": "plowline_opt_out"})
    browser("goto", url=f"{site}/other.html")
    browser("eval", expr="document.cookie = 'plowline_opt_out=1; path=/'")
    load(browser, url)
    assert browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'opted-out'})") is None
    assert queued(browser) == []
    browser("eval", expr="document.cookie = 'plowline_opt_out=; path=/; max-age=0'")
    eid = browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'opted-in'})")
    [event] = wait_sent(browser, 1)
    assert event["eid"] == eid
    good, _, _ = enrich_all(enrich_pipeline, cookie_collector, {eid})
    assert good[eid].se_action == "opted-in"


def test_do_not_track_is_respected_when_configured(tmp_path: Path, site: str, cookie_collector: CollectorProcess) -> None:
    profile = tmp_path / "dnt-profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps({"enable_do_not_track": True}))
    driver = BrowserDriver(profile)
    try:
        load(driver, page_url(site, cookie_collector, options={"respectDoNotTrack": True}))
        assert driver("eval", expr="navigator.doNotTrack") == "1"
        assert driver("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'dnt'})") is None
        assert driver("eval", expr="window.plowline((t) => t.e2e.getQueuedEvents().length)") == 0
        # The same browser without respectDoNotTrack tracks.
        load(driver, page_url(site, cookie_collector))
        [event] = wait_sent(driver, 1)
        assert event["e"] == "pv"
    finally:
        driver.close()
    assert len(events_by_eid(cookie_collector.records())) == 1


def test_cross_domain_linker(tmp_path: Path, site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline,
                             browser: BrowserDriver) -> None:
    load(browser, page_url(site, cookie_collector, linker="elsewhere"))
    [page_view] = wait_sent(browser, 1)
    duid = browser("eval", expr="window.plowline((t) => t.e2e.getDomainUserId())")
    assert_uuid4(duid)
    browser("click", selector="#elsewhere")
    browser("wait", expr="location.pathname === '/other.html'")
    landed = browser("eval", expr="location.href")
    match = re.fullmatch(rf"{re.escape(site)}/other\.html\?from=index&_sp={duid}\.(\d+)", landed)
    assert match, landed
    # Another browser (no cookies of this site yet) lands on a page with that `_sp`: it keeps the same user id,
    # and enrich reads the linker into refr_domain_userid / refr_dvce_tstamp.
    other = BrowserDriver(tmp_path / "second-profile")
    try:
        url = page_url(site, cookie_collector) + f"&_sp={duid}.{match[1]}"
        load(other, url)
        [linked] = wait_sent(other, 1)
    finally:
        other.close()
    good, _, _ = enrich_all(enrich_pipeline, cookie_collector, {page_view["eid"], linked["eid"]})
    arrived = good[linked["eid"]]
    assert arrived.domain_userid == duid == good[page_view["eid"]].domain_userid
    assert arrived.domain_sessionid != good[page_view["eid"]].domain_sessionid
    assert arrived.refr_domain_userid == duid
    assert arrived.refr_dvce_tstamp is not None and round(arrived.refr_dvce_tstamp.timestamp() * 1000) == int(match[1])


def test_tabs_keep_their_own_queues_and_a_closed_tab_hands_its_events_over(
        site: str, tmp_path: Path, enrich_pipeline: Pipeline, browser: BrowserDriver) -> None:
    data_dir = tmp_path / "tabs-data"
    collector = CollectorProcess(data_dir, env=INSECURE_COOKIE).start()
    try:
        url = page_url(site, collector, options={"retryBaseMs": 200, "retryMaxMs": 1000})
        load(browser, url)
        [first_view] = wait_sent(browser, 1)
        collector.stop()
        in_first = browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'tab-1'})")
        browser("wait", expr="window.__plowline.failures.length >= 1")
        assert browser("open") == 1
        load(browser, url)
        browser("wait", expr="window.__plowline.failures.length >= 1")
        in_second = browser("eval", expr="window.plowline('trackStructEvent', {category: 'e2e', action: 'tab-2'})")
        # Both tabs are alive: each sends only its own events, none takes the other's.
        second_queue = queued(browser)
        assert in_second in second_queue and in_first not in second_queue and len(second_queue) == 2
        browser("tab", index=0)
        assert queued(browser) == [in_first]
        # The first tab closes with its event unsent; the second takes it over and delivers everything once.
        browser("closeTab")
        browser("wait", expr=f"window.plowline((t) => t.e2e.getQueuedEvents().some((e) => e.eid === {json.dumps(in_first)}))")
        collector = CollectorProcess(data_dir, port=collector.port, env=INSECURE_COOKIE).start()
        browser("wait", expr="window.plowline((t) => t.e2e.getQueuedEvents().length === 0)")
        assert browser("eval", expr="Object.keys(localStorage).filter((key) => key.startsWith('plowline_queue.'))") == []
        good, _, _ = enrich_all(enrich_pipeline, collector, {first_view["eid"], in_first, *second_queue})
        assert {good[in_first].se_action, good[in_second].se_action} == {"tab-1", "tab-2"}
    finally:
        collector.stop()


def test_buffered_events_leave_with_the_page(site: str, cookie_collector: CollectorProcess, enrich_pipeline: Pipeline,
                                             browser: BrowserDriver) -> None:
    # A buffer of 10: nothing is sent while the page is open with fewer events than that.
    load(browser, page_url(site, cookie_collector, options={"bufferSize": 10}))
    eids = [browser("eval", expr="window.plowline((t) => t.e2e.getQueuedEvents()[0].eid)")]
    eids += [browser("eval", expr=f"window.plowline('trackStructEvent', {{category: 'e2e', action: 'buffered-{i}'}})")
             for i in range(3)]
    assert queued(browser) == eids and sent(browser) == []
    assert cookie_collector.records() == []
    # Leaving for a page without the tracker: the page-hide flush (fetch keepalive) is the only way out.
    browser("click", selector="#elsewhere")
    browser("wait", expr="location.pathname === '/other.html'")
    records = wait_for_events(cookie_collector, len(eids))
    assert [[event["eid"] for event in events_of(record)] for record in records] == [eids], "one POST with all four"
    good, _, _ = enrich_all(enrich_pipeline, cookie_collector, set(eids))
    assert [good[eid].se_action for eid in eids[1:]] == ["buffered-0", "buffered-1", "buffered-2"]
