"""Acceptance: the dashboard in headless Debian Chromium over `plowline up` fed by real trackers.

The official browser tracker (in Chromium) and the Python tracker send events, and one request that enrich must
reject; once the warehouse holds them, the dashboard (on the collector's port) is driven by playwright-core
(tests/e2e/js/dashboard_run.mjs): it must load without console errors or failed requests, show the totals, draw
the traffic chart, list top pages / referrers / campaigns / browsers, refresh by itself, filter the feed to one
event type, open an event to its full JSON, and list bad rows with their failure messages. Screenshots are kept
under test-artifacts/dashboard/ at the repository root.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.dashboard_support import start_plowline_up, wait_for
from tests.e2e.support import (
    REPO_ROOT,
    UTM,
    require_chromium,
    require_js_deps,
    run_browser,
    run_node,
    serve_test_page,
    track_python_events,
)
from tests.support.plowline_cli import PlowlineProcess

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
PAGE_URL = "https://shop.example/spring/{i}?" + "&".join(f"{key}={value}" for key, value in UTM.items())
REFERRER = "https://www.google.com/search?q=spring+sale"


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[PlowlineProcess, str]]:
    process, base_url = start_plowline_up(tmp_path, micro=False, extra_env={"PLOWLINE_DASHBOARD__REFRESH_S": "1"})
    try:
        yield process, base_url
    finally:
        assert process.stop() == 0, process.log()[-4000:]


def summary(base_url: str) -> dict[str, Any]:
    response = httpx.get(base_url + "/dashboard/api/summary", timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_dashboard_in_chromium(pipeline: tuple[PlowlineProcess, str], tmp_path: Path) -> None:
    require_js_deps()
    require_chromium()
    process, base_url = pipeline
    python = track_python_events(base_url, 6, method="post", batch_size=3, page_url=PAGE_URL, referrer=REFERRER,
                                 namespace="dash-py", app_id="dash-py")
    assert python.failed == [] and python.acknowledged == set(python.tracked)
    with serve_test_page(tmp_path / "site") as site:
        browser = run_browser(f"{site}/index.html?collector={base_url}", base_url, tmp_path / "tracker-profile")
    browser_eids = {event["eid"] for event in browser["state"]["sent"]}
    assert len(browser_eids) == 3
    assert httpx.get(base_url + "/i", params={"e": "zz", "aid": "dash-bad"}, timeout=10).status_code == 200
    expected = len(python.tracked) + len(browser_eids)
    totals = wait_for(lambda: summary(base_url), lambda s: s["events"] >= expected and s["bad"] >= 1,
                      f"{expected} events and a bad row in the warehouse\n{process.log()[-4000:]}")
    assert (totals["events"], totals["bad"]) == (expected, 1)

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    result = run_node(["dashboard_run.mjs", f"{base_url}/dashboard/", str(ARTIFACTS), "30000"], timeout_s=120)
    report: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    print(f"dashboard screenshots: {ARTIFACTS}")
    assert result.returncode == 0 and "error" not in report, f"{result.stdout}\n{result.stderr}"

    # Loads cleanly.
    assert report["title"] == "Plowline dashboard"
    assert report["consoleErrors"] == [] and report["failedRequests"] == [], report
    # Charts and tables show the data.
    assert report["summary"]["events"] == expected and report["summary"]["bad"] == 1
    assert report["summary"]["page_views"] == 3  # two from Python, one from the browser
    assert sum(report["bars"]) == expected and sum(report["badBars"]) == 1
    pages = {row["label"]: row["count"] for row in report["tops"]["pages"]}
    assert pages["shop.example/spring/0"] == 1 and pages["shop.example/spring/3"] == 1
    assert [row["label"] for row in report["tops"]["referrers"]] == ["www.google.com"]
    assert [(row["label"], row["count"]) for row in report["tops"]["campaigns"]] == [("spring", 2)]  # the two Python page views
    browsers = {row["label"]: row["count"] for row in report["tops"]["browsers"]}
    assert browsers.get("Chrome") == 3, browsers  # the browser tracker's events: HeadlessChrome's user agent
    assert sum(row["count"] for row in report["tops"]["devices"]) == expected
    assert report["autoRefreshed"] is True
    feed_ids = {row["id"] for row in report["feed"] if row["status"] == "good"}
    assert feed_ids == set(python.tracked) | browser_eids
    # The filter works.
    structs = {eid for eid, (kind, _) in python.tracked.items() if kind == "se"} | {
        event["eid"] for event in browser["state"]["sent"] if event["e"] == "se"}
    assert {row["id"] for row in report["structFeed"]} == structs
    # An event opens to its full enriched JSON.
    opened = report["opened"]
    assert opened["event_id"] == report["structFeed"][0]["id"] and opened["event"] == "struct"
    assert opened["se_category"] == "e2e" and "contexts_com_acme_e2e_context_1" in opened
    assert report["openedTitle"] == f"Event {opened['event_id']}"
    # Bad rows are browsable with their failure messages.
    assert [row["type"] for row in report["badFeed"]] == ["schema_violations"]
    assert any("Not a valid event type: zz" in message for message in report["badMessages"]), report["badMessages"]
    assert report["badRow"]["schema"].startswith("iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/")
    for path in report["screenshots"]:
        assert Path(path).stat().st_size > 10_000, path
    assert len(report["screenshots"]) == 4
