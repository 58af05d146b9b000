"""Helpers for the tracker tests: wait-until polling, and the raw log → enriched events, each tracked eid once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from plowline.enrich.pipeline import Pipeline
from plowline.event import EnrichedEvent
from plowline.payload import CollectorPayload
from tests.e2e.support import (
    assert_enriched_from,
    enrich_records,
    events_by_eid,
    events_of,
    raw_records,
    wait_for_events,
)
from tests.support.collector_process import CollectorProcess


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail after a generous deadline (never a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not {what} after {timeout_s}s")
        time.sleep(0.05)


def enrich_tracked(
    pipeline: Pipeline, collector: CollectorProcess, expected_eids: set[str], timeout_s: float = 60.0
) -> tuple[dict[str, EnrichedEvent], dict[str, dict[str, str]], dict[str, CollectorPayload]]:
    """Wait for the tracked events in the raw log, then enrich every raw record.

    Fails unless each expected eid is in the raw log exactly once (events_by_eid fails on a duplicate), nothing
    else is there, every event enriches to a good event under its eid, and each good event carries the tracker's
    fields (assert_enriched_from). Returns the enriched events, the raw tracker-protocol events and the raw record
    of each, keyed by eid.
    """
    payloads = wait_for_events(collector, len(expected_eids), timeout_s)
    raw = events_by_eid(payloads)
    assert set(raw) == expected_eids, f"raw log eids differ: missing {expected_eids - set(raw)}, extra {set(raw) - expected_eids}"
    record_of = {event["eid"]: payload for payload in payloads for event in events_of(payload)}
    good, bad = enrich_records(pipeline, raw_records(collector))
    assert bad == [], json.dumps(bad, indent=1)[:4000]
    assert set(good) == expected_eids, "enriched event_ids != the tracked eids"
    for eid, enriched in good.items():
        assert_enriched_from(enriched, raw[eid], record_of[eid])
    return good, raw, record_of
