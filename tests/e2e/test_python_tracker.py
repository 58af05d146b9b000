"""Acceptance: PyPI's official `snowplow-tracker` sends to a running collector; every event lands in the raw log."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from snowplow_tracker import (
    AsyncEmitter,
    Emitter,
    PageView,
    SelfDescribing,
    SelfDescribingJson,
    StructuredEvent,
    Subject,
    Tracker,
)

from tests.e2e.support import (
    GET_PATH,
    TP2_PATH,
    assert_request_facts,
    assert_uuid4,
    contexts_of,
    events_by_eid,
    unstruct_of,
)
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

ROUNDS = 3  # each round tracks a page view, a structured event and a self-describing event
POST_BATCH = 4
EVENT_SCHEMA = "iglu:com.acme/e2e_event/jsonschema/1-0-0"
CONTEXT_SCHEMA = "iglu:com.acme/e2e_context/jsonschema/1-0-0"


@pytest.mark.parametrize("emitter_class", [Emitter, AsyncEmitter], ids=["Emitter", "AsyncEmitter"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_python_tracker_events_land_in_raw_log(cookie_collector: CollectorProcess, emitter_class: type[Emitter], method: str) -> None:
    started_ms = int(time.time() * 1000)
    sent: list[dict[str, Any]] = []
    failed: list[Any] = []
    session = requests.Session()
    emitter = emitter_class(
        cookie_collector.base_url, method=method,  # type: ignore[arg-type]
        batch_size=POST_BATCH if method == "post" else 1,
        on_success=sent.extend, on_failure=lambda ok, events: failed.append((ok, events)),
        request_timeout=10, session=session,
    )
    subject = (
        Subject().set_user_id("user-ü 42").set_ip_address("203.0.113.9").set_lang("de-CH")
        .set_timezone("Europe/Zurich").set_screen_resolution(1920, 1080).set_platform("srv")
    )
    tracker = Tracker("e2e-py", emitter, subject=subject, app_id="plowline-e2e-py", encode_base64=(method == "get"))

    expected: dict[str, tuple[str, int]] = {}  # eid -> (kind, index)
    for index in range(ROUNDS * 3):
        context = [SelfDescribingJson(CONTEXT_SCHEMA, {"index": index, "runner": "python"})]
        kind = ("pv", "se", "ue")[index % 3]
        event: PageView | StructuredEvent | SelfDescribing
        if kind == "pv":
            event = PageView(page_url=f"http://shop.example/p/{index}?q=a b&x=1", page_title=f"Päge {index}",
                             referrer="http://ref.example/", context=context)
        elif kind == "se":
            event = StructuredEvent(category="e2e", action=f"action-{index}", label="label & more",
                                    property_="prop", value=index + 0.5, context=context)
        else:
            event = SelfDescribing(SelfDescribingJson(EVENT_SCHEMA, {"index": index, "text": "ünïcode ✓"}), context=context)
        eid = tracker.track(event)
        assert eid is not None
        expected[eid] = (kind, index)
    tracker.flush()  # blocking: the emitter's sync_flush returns once every request has been answered
    session.close()

    assert failed == [], f"the collector refused requests: {failed}"
    assert sorted(str(e["eid"]) for e in sent) == sorted(expected), "the tracker did not report every event as sent"

    requests_expected = len(expected) if method == "get" else -(-len(expected) // POST_BATCH)
    records = cookie_collector.wait_for_records(requests_expected, timeout_s=10)
    assert len(records) == requests_expected, f"{len(records)} raw records for {requests_expected} requests"
    logged = events_by_eid(records)
    assert set(logged) == set(expected), "events sent != events in the raw log"

    user_agent = f"python-requests/{requests.__version__}"
    for record in records:
        assert_request_facts(record, path=GET_PATH if method == "get" else TP2_PATH, user_agent=user_agent, started_ms=started_ms)
        if method == "post":
            assert record.content_type == "application/json; charset=utf-8"
            assert record.querystring in (None, "")

    # The session kept the collector's cookie: one network user id, sent back on every later request.
    nuids = {record.network_user_id for record in records}
    assert len(nuids) == 1, f"network_userid changed although the client kept the cookie: {nuids}"
    nuid = assert_uuid4(records[0].network_user_id)
    assert session.cookies.get("sp") == nuid
    with_cookie = [record for record in records if record.header("Cookie") == f"sp={nuid}"]
    assert len(with_cookie) == len(records) - 1, [record.header("Cookie") for record in records]

    # Each logged event is exactly what the tracker sent (its stm included), field for field.
    for payload in sent:
        assert logged[str(payload["eid"])] == {key: str(value) for key, value in payload.items()}

    for eid, (kind, index) in expected.items():
        event_fields = logged[eid]
        assert event_fields["e"] == kind
        assert event_fields["tna"] == "e2e-py"
        assert event_fields["aid"] == "plowline-e2e-py"
        assert event_fields["tv"].startswith("py-")
        assert event_fields["p"] == "srv"
        assert event_fields["uid"] == "user-ü 42"
        assert event_fields["ip"] == "203.0.113.9"
        assert event_fields["lang"] == "de-CH"
        assert event_fields["tz"] == "Europe/Zurich"
        assert event_fields["res"] == "1920x1080"
        assert event_fields["dtm"].isdigit() and int(event_fields["dtm"]) >= started_ms - 1000
        assert event_fields["stm"].isdigit()
        assert ("cx" in event_fields) == (method == "get") and ("co" in event_fields) == (method == "post")
        assert contexts_of(event_fields) == [{"schema": CONTEXT_SCHEMA, "data": {"index": index, "runner": "python"}}]
        if kind == "pv":
            assert event_fields["url"] == f"http://shop.example/p/{index}?q=a b&x=1"
            assert event_fields["page"] == f"Päge {index}"
            assert event_fields["refr"] == "http://ref.example/"
        elif kind == "se":
            assert (event_fields["se_ca"], event_fields["se_ac"], event_fields["se_la"], event_fields["se_pr"]) == (
                "e2e", f"action-{index}", "label & more", "prop")
            assert float(event_fields["se_va"]) == index + 0.5
        else:
            assert unstruct_of(event_fields) == {"schema": EVENT_SCHEMA, "data": {"index": index, "text": "ünïcode ✓"}}
