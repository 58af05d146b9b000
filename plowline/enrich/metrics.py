"""Enrich's Prometheus metrics: records read, events in, good, bad, dropped, and batch latency."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Histogram


@dataclass(frozen=True)
class EnrichMetrics:
    records: Counter
    events: Counter
    good: Counter
    bad: Counter
    dropped: Counter
    batch_seconds: Histogram
    retries: Counter

    def observe(self, records: int, events: int, good: int, bad: int, dropped: int, seconds: float) -> None:
        self.records.inc(records)
        self.events.inc(events)
        self.good.inc(good)
        self.bad.inc(bad)
        self.dropped.inc(dropped)
        self.batch_seconds.observe(seconds)


@functools.cache
def enrich_metrics() -> EnrichMetrics:
    """The metric objects, created once per process."""
    return EnrichMetrics(
        records=Counter("plowline_enrich_raw_records", "Raw records read"),
        events=Counter("plowline_enrich_events_in", "Raw events in (each event of a tp2 batch counts)"),
        good=Counter("plowline_enrich_good_events", "Enriched events written"),
        bad=Counter("plowline_enrich_bad_rows", "Bad rows written"),
        dropped=Counter("plowline_enrich_dropped_events", "Events dropped on purpose by a script"),
        batch_seconds=Histogram("plowline_enrich_batch_seconds", "Time to enrich and persist one batch"),
        retries=Counter("plowline_enrich_batch_retries", "Batches retried after a transient failure"),
    )
