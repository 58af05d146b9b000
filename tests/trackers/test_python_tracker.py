"""Plowline's Python tracker against a real collector and the real enrich pipeline.

Every event type (page view, page ping, structured, self-describing, screen view, link click, ecommerce
transaction and item), with entities, a true timestamp and a subject with every field, over POST (base64) and
GET (plain JSON), must come out of enrich as good events under the tracker's eids with the tracker's fields.
Outages: the collector is stopped in the middle of a batch and restarted on the same port, and the tracker
process itself exits with events only in its on-disk buffer; every event must still arrive exactly once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from plowline.enrich.pipeline import Pipeline
from plowline.trackers.python import (
    LINK_CLICK_SCHEMA,
    SCREEN_VIEW_SCHEMA,
    TRACKER_VERSION,
    AsyncEmitter,
    EcommerceItem,
    EcommerceTransaction,
    Emitter,
    LinkClick,
    MemoryBuffer,
    PagePing,
    PageView,
    RetryPolicy,
    ScreenView,
    SelfDescribing,
    SelfDescribingJson,
    SqliteBuffer,
    StructuredEvent,
    Subject,
    Tracker,
)
from tests.e2e.support import ACME_CONTEXT_SCHEMA, ACME_EVENT_SCHEMA, REPO_ROOT, assert_url_parts, millis
from tests.support.collector_process import CollectorProcess, free_port
from tests.trackers.support import enrich_tracked, wait_until

pytestmark = pytest.mark.e2e

FAST_RETRY = RetryPolicy(base_delay=0.05, max_delay=0.5)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
SUBJECT = Subject(
    platform="srv", user_id="user-ü 7", screen_resolution=(1920, 1080), viewport=(1280, 720), color_depth=24,
    timezone="Europe/Zurich", language="de-CH", ip_address="203.0.113.7", useragent=UA,
    domain_userid="d0d0d0d0-0000-4000-8000-00000000d001", network_userid="a1a1a1a1-0000-4000-8000-00000000a001",
    domain_session_id="5e55105e-0000-4000-8000-000000005e55", domain_session_index=3,
)
TRUE_TIME = 1_760_000_000.125  # seconds: ttm = 1760000000125


def context(index: int) -> list[SelfDescribingJson]:
    return [SelfDescribingJson(ACME_CONTEXT_SCHEMA, {"index": index, "runner": "python"})]


def track_every_type(tracker: Tracker) -> dict[str, str]:
    """One event of each type; returns eid → what it was. The transaction's items are found by type."""
    tracked = {
        tracker.track(PageView(page_url="https://shop.example/äbc?q=ü&x=1#top", page_title="Päge & more",
                               referrer="https://ref.example/", context=context(0), true_timestamp=TRUE_TIME)): "pv",
        tracker.track(PagePing(page_url="https://shop.example/p", page_title="Ping", min_x=0, max_x=10, min_y=20,
                               max_y=300, context=context(1))): "pp",
        tracker.track(StructuredEvent(category="shop", action="add", label="label, & more", property_="sku-1",
                                      value=Decimal("12.50"), context=context(2))): "se",
        tracker.track(SelfDescribing(event=SelfDescribingJson(ACME_EVENT_SCHEMA, {"index": 3, "text": "ünï ✓"}),
                                     context=context(3))): "ue",
        tracker.track(ScreenView(name="checkout", id_="0b1e7c3a-1111-4111-8111-000000000001", type_="modal",
                                 previous_name="cart", context=context(4))): "screen_view",
        tracker.track(LinkClick(target_url="https://out.example/x?y=1", element_id="buy", element_classes=["a", "b"],
                                element_content="Buy")): "link_click",
        tracker.track(EcommerceTransaction(
            order_id="order-9", total_value=Decimal("27.98"), affiliation="web", tax_value=Decimal("2.10"),
            shipping=Decimal("5"), city="Zürich", state="ZH", country="CH", currency="CHF", true_timestamp=TRUE_TIME,
            items=[EcommerceItem(sku="sku-1", name="Hat", category="clothes", price=Decimal("11.49"), quantity=2,
                                 context=context(7))],
        )): "tr",
    }
    return tracked


@pytest.mark.parametrize(("method", "encode_base64"), [("post", True), ("post", False), ("get", True), ("get", False)])
def test_every_event_type_enriches(collector: CollectorProcess, enrich_pipeline: Pipeline, method: str,
                                   encode_base64: bool) -> None:
    delivered: list[str] = []
    emitter = Emitter(collector.base_url, method=method, batch_size=3, retry=FAST_RETRY,  # type: ignore[arg-type]
                      on_success=delivered.extend)
    tracker = Tracker(emitter, namespace="plowline-test", app_id="shop-backend", subject=SUBJECT,
                      encode_base64=encode_base64)
    tracked = track_every_type(tracker)
    assert emitter.close(timeout=60), f"{emitter.pending} events not delivered"
    assert (emitter.rejected, emitter.dropped) == (0, 0)
    assert len(delivered) == emitter.acknowledged == 8  # 7 tracked + 1 transaction item

    all_eids = set(delivered)
    assert set(tracked) <= all_eids
    good, raw, _ = enrich_tracked(enrich_pipeline, collector, all_eids)
    for eid, event in raw.items():
        assert not (encode_base64 and ({"co", "ue_pr"} & set(event))), event
        assert not (not encode_base64 and ({"cx", "ue_px"} & set(event))), event
        enriched = good[eid]
        assert (enriched.app_id, enriched.name_tracker, enriched.v_tracker, enriched.platform) == (
            "shop-backend", "plowline-test", TRACKER_VERSION, "srv")
        # Every Subject field, as its enriched field.
        assert (enriched.user_id, enriched.user_ipaddress, enriched.useragent) == ("user-ü 7", "203.0.113.7", UA)
        assert (enriched.dvce_screenwidth, enriched.dvce_screenheight, enriched.br_viewwidth, enriched.br_viewheight) == (
            1920, 1080, 1280, 720)
        assert (enriched.br_colordepth, enriched.os_timezone, enriched.br_lang) == ("24", "Europe/Zurich", "de-CH")
        assert (enriched.domain_userid, enriched.network_userid) == (SUBJECT.domain_userid, SUBJECT.network_userid)
        assert (enriched.domain_sessionid, enriched.domain_sessionidx) == (SUBJECT.domain_session_id, 3)
        assert enriched.br_family == "Firefox"
        assert uuid.UUID(eid).version == 4

    by_kind = {kind: good[eid] for eid, kind in tracked.items()}
    page_view = by_kind["pv"]
    assert (page_view.event, page_view.page_title, page_view.page_referrer) == ("page_view", "Päge & more", "https://ref.example/")
    assert page_view.page_url == "https://shop.example/äbc?q=ü&x=1#top"
    assert_url_parts(page_view, "refr", "https://ref.example/")
    assert millis(page_view.true_tstamp) == millis(page_view.derived_tstamp) == 1_760_000_000_125
    assert page_view.contexts == [{"schema": ACME_CONTEXT_SCHEMA, "data": {"index": 0, "runner": "python"}}]

    ping = by_kind["pp"]
    assert (ping.event, ping.page_url, ping.page_title) == ("page_ping", "https://shop.example/p", "Ping")
    assert (ping.pp_xoffset_min, ping.pp_xoffset_max, ping.pp_yoffset_min, ping.pp_yoffset_max) == (0, 10, 20, 300)
    assert ping.true_tstamp is None

    struct = by_kind["se"]
    assert (struct.se_category, struct.se_action, struct.se_label, struct.se_property, struct.se_value) == (
        "shop", "add", "label, & more", "sku-1", Decimal("12.50"))

    assert by_kind["ue"].unstruct_event == {"schema": ACME_EVENT_SCHEMA, "data": {"index": 3, "text": "ünï ✓"}}
    screen = by_kind["screen_view"]
    assert screen.unstruct_event == {"schema": SCREEN_VIEW_SCHEMA, "data": {
        "name": "checkout", "id": "0b1e7c3a-1111-4111-8111-000000000001", "type": "modal", "previousName": "cart"}}
    assert (screen.event_vendor, screen.event_name) == ("com.snowplowanalytics.mobile", "screen_view")
    click = by_kind["link_click"]
    assert click.unstruct_event == {"schema": LINK_CLICK_SCHEMA, "data": {
        "targetUrl": "https://out.example/x?y=1", "elementId": "buy", "elementClasses": ["a", "b"], "elementContent": "Buy"}}
    assert click.contexts is None

    transaction = by_kind["tr"]
    assert (transaction.event, transaction.tr_orderid, transaction.tr_affiliation, transaction.tr_total,
            transaction.tr_tax, transaction.tr_shipping, transaction.tr_city, transaction.tr_state, transaction.tr_country,
            transaction.tr_currency) == ("transaction", "order-9", "web", Decimal("27.98"), Decimal("2.10"),
                                         Decimal("5"), "Zürich", "ZH", "CH", "CHF")
    [item] = [event for event in good.values() if event.event == "transaction_item"]
    assert (item.ti_orderid, item.ti_sku, item.ti_name, item.ti_category, item.ti_price, item.ti_quantity,
            item.ti_currency) == ("order-9", "sku-1", "Hat", "clothes", Decimal("11.49"), 2, "CHF")
    # The items share the transaction's dtm and ttm, so they join back to it.
    assert (item.dvce_created_tstamp, item.true_tstamp) == (transaction.dvce_created_tstamp, transaction.true_tstamp)
    assert item.contexts == [{"schema": ACME_CONTEXT_SCHEMA, "data": {"index": 7, "runner": "python"}}]


async def test_async_emitter_delivers(collector: CollectorProcess, enrich_pipeline: Pipeline) -> None:
    async with AsyncEmitter(collector.base_url, batch_size=4, retry=FAST_RETRY) as emitter:
        tracker = Tracker(emitter, namespace="async", app_id="async-app")
        eids = {tracker.track(StructuredEvent(category="async", action=f"a{i}", value=i)) for i in range(10)}
        await asyncio.sleep(0)  # the full batches' send tasks start
        assert await emitter.flush(timeout=60)
        assert emitter.acknowledged == 10
    good, _, _ = enrich_tracked(enrich_pipeline, collector, eids)
    assert sorted(event.se_action or "" for event in good.values()) == sorted(f"a{i}" for i in range(10))


@pytest.mark.parametrize("sending", ["inline", "thread"])
def test_collector_outage_mid_batch(tmp_path: Path, enrich_pipeline: Pipeline, sending: str) -> None:
    """Stop the collector between two batches with part of a batch buffered, keep tracking, restart it on the same
    port: every event arrives once. Inline sending is flushed explicitly; the sending thread recovers by itself."""
    collector = CollectorProcess(tmp_path / "data").start()
    emitter = Emitter(collector.base_url, batch_size=5, retry=FAST_RETRY, buffer=MemoryBuffer(1000),
                      flush_interval=0.1 if sending == "thread" else None)
    tracker = Tracker(emitter, namespace="outage", app_id="outage")
    eids: set[str] = set()
    try:
        eids |= {tracker.track(PageView(page_url=f"https://shop.example/{i}")) for i in range(7)}
        wait_until(lambda: emitter.acknowledged >= 5, 60, "the first batch acknowledged")
        collector.stop()
        eids |= {tracker.track(StructuredEvent(category="outage", action=f"a{i}", value=i)) for i in range(13)}
        wait_until(lambda: emitter.failed_requests >= 1, 60, "failing against the stopped collector")
        assert emitter.acknowledged < len(eids)
        collector = CollectorProcess(tmp_path / "data", port=collector.port).start()
        if sending == "inline":
            assert emitter.flush(timeout=60)
        else:
            wait_until(lambda: emitter.pending == 0, 60, "delivered by the sending thread")
        assert emitter.acknowledged == len(eids) == 20
        assert emitter.close(timeout=30)
        good, _, _ = enrich_tracked(enrich_pipeline, collector, eids)
        assert len(good) == 20
    finally:
        emitter.close(timeout=0)
        collector.stop()


_TRACK_AND_EXIT = textwrap.dedent("""
    import json, os, sys
    from plowline.trackers.python import Emitter, PageView, RetryPolicy, SqliteBuffer, StructuredEvent, Tracker
    collector, buffer_path = sys.argv[1], sys.argv[2]
    emitter = Emitter(collector, batch_size=4, retry=RetryPolicy(base_delay=0.05, max_delay=0.2),
                      buffer=SqliteBuffer(buffer_path))
    tracker = Tracker(emitter, namespace="restart", app_id="restart")
    eids = [tracker.track(PageView(page_url=f"https://shop.example/{i}")) for i in range(6)]
    eids += [tracker.track(StructuredEvent(category="restart", action=f"a{i}", value=i)) for i in range(6)]
    assert not emitter.flush(timeout=1.0)   # the collector is down: nothing can be delivered
    print(json.dumps({"eids": eids, "failed_requests": emitter.failed_requests, "pending": emitter.pending}))
    sys.stdout.flush()
    os._exit(0)                              # no close(): as if the process were killed
""")


def test_disk_buffer_survives_tracker_restart(tmp_path: Path, enrich_pipeline: Pipeline) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    buffer_path = tmp_path / "tracker" / "events.db"
    done = subprocess.run([sys.executable, "-c", _TRACK_AND_EXIT, base_url, str(buffer_path)], check=False, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    eids = set(report["eids"])
    assert len(eids) == 12 and report["pending"] == 12 and report["failed_requests"] >= 1

    collector = CollectorProcess(tmp_path / "data", port=port).start()
    try:
        assert collector.records() == []
        with Emitter(base_url, batch_size=5, retry=FAST_RETRY, buffer=SqliteBuffer(buffer_path)) as emitter:
            assert emitter.pending == 12
            assert emitter.flush(timeout=60)
            assert emitter.acknowledged == 12
        good, _, _ = enrich_tracked(enrich_pipeline, collector, eids)
        assert {event.event for event in good.values()} == {"page_view", "struct"}
        # Delivered events are gone from the file: a third tracker has nothing to send.
        reopened = SqliteBuffer(buffer_path)
        try:
            assert len(reopened) == 0
        finally:
            reopened.close()
    finally:
        collector.stop()
