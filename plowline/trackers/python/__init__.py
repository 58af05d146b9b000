"""Plowline's Python tracker: events → tracker protocol (tp2 POST or GET `/i`) → a collector, buffered and retried.

    from plowline.trackers.python import Emitter, PageView, SqliteBuffer, Subject, Tracker

    with Emitter("http://127.0.0.1:9090", buffer=SqliteBuffer("/var/lib/app/events.db")) as emitter:
        tracker = Tracker(emitter, namespace="shop", app_id="shop-backend", subject=Subject(platform="srv"))
        tracker.track(PageView(page_url="https://shop.example/"))
    # leaving the block flushes: it waits (up to 30 s) until the collector acknowledged every event

Importing this package has no side effects: it configures no logging and starts no thread (an emitter's
sending thread starts with its first event, and only if `flush_interval` is set).
"""

from plowline.trackers.python.buffer import BufferedEvent, BufferLocked, EventBuffer, MemoryBuffer, SqliteBuffer
from plowline.trackers.python.emitters import AsyncEmitter, Emitter
from plowline.trackers.python.events import (
    LINK_CLICK_SCHEMA,
    SCREEN_VIEW_SCHEMA,
    EcommerceItem,
    EcommerceTransaction,
    Event,
    LinkClick,
    PagePing,
    PageView,
    ScreenView,
    SelfDescribing,
    StructuredEvent,
)
from plowline.trackers.python.payload import SelfDescribingJson
from plowline.trackers.python.retry import RetryPolicy, Verdict, classify_status
from plowline.trackers.python.subject import Subject
from plowline.trackers.python.tracker import TRACKER_VERSION, Tracker

__all__ = [
    "LINK_CLICK_SCHEMA",
    "SCREEN_VIEW_SCHEMA",
    "TRACKER_VERSION",
    "AsyncEmitter",
    "BufferLocked",
    "BufferedEvent",
    "EcommerceItem",
    "EcommerceTransaction",
    "Emitter",
    "Event",
    "EventBuffer",
    "LinkClick",
    "MemoryBuffer",
    "PagePing",
    "PageView",
    "RetryPolicy",
    "ScreenView",
    "SelfDescribing",
    "SelfDescribingJson",
    "SqliteBuffer",
    "StructuredEvent",
    "Subject",
    "Tracker",
    "Verdict",
    "classify_status",
]
