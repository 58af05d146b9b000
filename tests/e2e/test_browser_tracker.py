"""Acceptance: npm's official `@snowplow/browser-tracker` in headless Chromium, cross-origin, with the `sp` cookie."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.support import (
    JS_DIR,
    NODE_MODULES,
    TP2_PATH,
    assert_request_facts,
    assert_uuid4,
    contexts_of,
    events_by_eid,
    events_of,
    require_js_deps,
    run_node,
    unstruct_of,
    wait_for_events,
)
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("PLOWLINE_CHROMIUM", "/usr/bin/chromium")
BROWSER_TRACKER_VERSION = "4.10.1"  # pinned in tests/e2e/js/package.json
CONTEXT_SCHEMA = "iglu:com.acme/e2e_context/jsonschema/1-0-0"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_site(tmp_path: Path) -> Iterator[str]:
    """The test page and the tracker's UMD bundle, served from a free loopback port (another origin than the collector)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(JS_DIR / "browser_page.html", site / "index.html")
    shutil.copy(NODE_MODULES / "@snowplow" / "browser-tracker" / "dist" / "index.umd.min.js", site / "sp.js")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_browser_tracker_in_chromium_lands_in_raw_log(tmp_path: Path, page_site: str, cookie_collector: CollectorProcess) -> None:
    require_js_deps()
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} is missing: run `bash scripts/install-test-deps.sh` (apt package chromium)")
    started_ms = int(time.time() * 1000)
    collector_url = cookie_collector.base_url
    page_url = f"{page_site}/index.html?collector={collector_url}"

    result = run_node(["browser_run.mjs", page_url, collector_url, str(tmp_path / "chromium-profile"), "30000"], timeout_s=90)
    assert result.returncode == 0, f"browser run failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    report = json.loads(result.stdout)
    state = report["state"]
    assert state["error"] is None and state["failures"] == [], report
    assert state["href"] == page_url
    sent = {event["eid"]: event for event in state["sent"]}
    assert len(sent) == 3 and [event["e"] for event in state["sent"]] == ["pv", "se", "ue"], state["sent"]

    records = wait_for_events(cookie_collector, len(sent))
    logged = events_by_eid(records)
    assert set(logged) == set(sent), "events the browser sent != events in the raw log"
    # The page view is sent alone; the tracker may batch the next two while that request is in flight.
    assert len(records) in (2, 3), records
    assert [event["e"] for event in events_of(records[0])] == ["pv"]

    # The request facts: POST tp2 from Chromium on loopback, cross-origin with an Origin header.
    user_agent = state["userAgent"]
    assert "Chrome/" in user_agent, user_agent
    for record in records:
        assert_request_facts(record, path=TP2_PATH, user_agent=user_agent, started_ms=started_ms)
        assert record.content_type == "application/json; charset=utf-8"
        assert record.header("Origin") == page_site
        assert (record.referer_uri or "").startswith(page_site + "/"), record.referer_uri

    # The browser kept the cookie from the first response: one network user id on every request.
    nuid = assert_uuid4(records[0].network_user_id)
    assert [record.network_user_id for record in records] == [nuid] * len(records)
    sent_cookies = [(record.header("Cookie") or "").split(";") for record in records]
    assert not any(part.startswith("sp=") for part in sent_cookies[0]), "the first request cannot have the cookie yet"
    for parts in sent_cookies[1:]:
        assert f"sp={nuid}" in parts, sent_cookies
    sp_cookies = [cookie for cookie in report["cookies"] if cookie["name"] == "sp"]
    assert [cookie["value"] for cookie in sp_cookies] == [nuid]
    assert sp_cookies[0]["httpOnly"] is True and sp_cookies[0]["sameSite"] == "Lax" and sp_cookies[0]["secure"] is False

    # CORS as the browser saw it: each POST answered 200 with the page's origin echoed and credentials allowed.
    posts = [response for response in report["responses"] if response["method"] == "POST"]
    assert len(posts) == state["requests"] == len(records), report["responses"]
    for response in posts:
        assert response["url"] == collector_url + TP2_PATH
        assert response["status"] == 200
        assert response["headers"].get("access-control-allow-origin") == page_site
        assert response["headers"].get("access-control-allow-credentials") == "true"

    # The JSON POST needs a preflight (cached for Access-Control-Max-Age afterwards); Chromium reports it via CDP.
    assert report["preflights"], "no CORS preflight seen: the POST would not have needed credentials checks"
    for preflight in report["preflights"]:
        assert preflight["url"] == collector_url + TP2_PATH and preflight["status"] == 200, preflight
        headers = {name.lower(): value for name, value in preflight["headers"].items()}
        assert headers.get("access-control-allow-origin") == page_site
        assert headers.get("access-control-allow-credentials") == "true"
        assert "content-type" in headers.get("access-control-allow-headers", "").lower()

    # The events: what the tracker sent arrived field for field, with the page's URL and our values.
    for eid, built in sent.items():
        event = logged[eid]
        assert {key: value for key, value in event.items() if key != "stm"} == {k: v for k, v in built.items() if k != "stm"}
        assert event["stm"].isdigit()
        assert event["url"] == page_url
        assert event.get("page") == ("Plowline e2e page" if event["e"] == "pv" else None)
        assert event["cookie"] == "1", "the browser reported cookies disabled"
        assert (event["tna"], event["aid"], event["p"]) == ("e2e-browser", "plowline-e2e-browser", "web")
        assert event["tv"] == f"js-{BROWSER_TRACKER_VERSION}"
        assert event["uid"] == "browser-user-1"
        assert_uuid4(event["duid"])
        assert_uuid4(event["sid"])
        own = [c for c in contexts_of(event) if c["schema"] == CONTEXT_SCHEMA]
        assert own == [{"schema": CONTEXT_SCHEMA, "data": {"step": {"pv": "page_view", "se": "struct", "ue": "self_describing"}[event["e"]], "runner": "browser"}}]
        assert any(c["schema"].startswith("iglu:com.snowplowanalytics.snowplow/web_page/") for c in contexts_of(event))
    se = next(event for event in logged.values() if event["e"] == "se")
    assert (se["se_ca"], se["se_ac"], se["se_la"], se["se_pr"], float(se["se_va"])) == ("e2e", "click", "label & ünïcode", "prop", 42.5)
    ue = next(event for event in logged.values() if event["e"] == "ue")
    assert unstruct_of(ue) == {"schema": "iglu:com.acme/e2e_event/jsonschema/1-0-0", "data": {"text": "ünïcode ✓", "n": 3}}
    # One browser session: the same domain user id and session on all three events.
    assert len({(event["duid"], event["sid"]) for event in logged.values()}) == 1
