"""Acceptance: npm's official `@snowplow/node-tracker` sends to a running collector; every event lands in the raw log."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.support import (
    GET_PATH,
    TP2_PATH,
    assert_request_facts,
    contexts_of,
    events_by_eid,
    require_js_deps,
    run_node,
    unstruct_of,
    wait_for_events,
)
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

EVENTS = 10  # node_tracker.mjs cycles page view, structured, self-describing; each with a context
NODE_TRACKER_VERSION = "4.8.0"  # pinned in tests/e2e/js/package.json


@pytest.mark.parametrize("method", ["post", "get"])
def test_node_tracker_events_land_in_raw_log(collector: CollectorProcess, method: str) -> None:
    require_js_deps()
    started_ms = int(time.time() * 1000)
    result = run_node(["node_tracker.mjs", collector.base_url, str(EVENTS), method])
    assert result.returncode == 0, f"node tracker failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    report = json.loads(result.stdout)
    assert report["version"] == NODE_TRACKER_VERSION
    assert report["failures"] == []
    tracked = {event["eid"]: event for event in report["tracked"]}
    assert len(tracked) == EVENTS and sorted(report["sent"]) == sorted(tracked)

    # GET sends one request per event; POST batches, so wait for events rather than records.
    records = wait_for_events(collector, EVENTS)
    logged = events_by_eid(records)
    assert set(logged) == set(tracked), "events sent != events in the raw log"
    if method == "get":
        assert len(records) == EVENTS
    else:
        assert 1 <= len(records) <= EVENTS

    for record in records:
        # Node's fetch (undici) sends `User-Agent: node`.
        assert_request_facts(record, path=GET_PATH if method == "get" else TP2_PATH, user_agent="node", started_ms=started_ms)
        if method == "post":
            assert record.content_type == "application/json; charset=utf-8"
            assert record.header("Content-Type") == "application/json; charset=UTF-8"
        # Node keeps no cookies, so the collector gives every request a fresh network user id.
        assert record.header("Cookie") is None
    nuids = [record.network_user_id for record in records]
    assert len(set(nuids)) == len(nuids), f"network user ids repeated across cookieless requests: {nuids}"

    for eid, built in tracked.items():
        event = logged[eid]
        # Everything the tracker built arrived unchanged; the emitter only adds `stm` (sent timestamp).
        assert {key: value for key, value in event.items() if key != "stm"} == built
        assert event["stm"].isdigit() and int(event["stm"]) >= int(event["dtm"])
        index = list(tracked).index(eid)
        assert event["e"] == ("pv", "se", "ue")[index % 3]
        assert (event["tna"], event["aid"], event["p"]) == ("e2e-node", "plowline-e2e-node", "srv")
        assert event["tv"] == f"node-{NODE_TRACKER_VERSION}"
        assert event["duid"] == "d0d0d0d0-0000-4000-8000-00000000e2e0"
        assert ("cx" in event) == (method == "get"), "base64 is on for GET and off for POST in node_tracker.mjs"
        assert contexts_of(event) == [{"schema": "iglu:com.acme/e2e_context/jsonschema/1-0-0",
                                       "data": {"index": index, "runner": "node"}}]
        if event["e"] == "pv":
            assert event["url"] == f"http://shop.example/page/{index}?q=a%20b&x=1"
            assert event["page"] == f"Page {index} \u2013 ünïcode"
            assert event["refr"] == "http://ref.example/"
        elif event["e"] == "se":
            assert (event["se_ca"], event["se_ac"], event["se_la"], event["se_pr"]) == (
                "e2e", f"action-{index}", "label with spaces & symbols", "prop")
            assert float(event["se_va"]) == index + 0.5
        else:
            assert unstruct_of(event) == {"schema": "iglu:com.acme/e2e_event/jsonschema/1-0-0",
                                          "data": {"index": index, "text": "ünïcode ✓"}}

