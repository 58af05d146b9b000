"""The collector's Prometheus metrics (aggregated across worker processes by /metrics)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Histogram


@dataclass(frozen=True)
class CollectorMetrics:
    requests: Counter
    records_written: Counter
    bad_rows: Counter
    sink_write_seconds: Histogram
    sink_failures: Counter


@functools.cache
def collector_metrics() -> CollectorMetrics:
    """The metric objects, created once per process (the registry refuses duplicates)."""
    return CollectorMetrics(
        requests=Counter(
            "plowline_collector_requests", "HTTP requests by route and status", ["route", "status"]
        ),
        records_written=Counter(
            "plowline_collector_records_written", "Records made durable, by stream", ["stream"]
        ),
        bad_rows=Counter("plowline_collector_bad_rows", "Bad rows written, by type", ["type"]),
        sink_write_seconds=Histogram(
            "plowline_collector_sink_write_seconds",
            "Time from handing records to a sink until they are durable",
            ["stream"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        sink_failures=Counter(
            "plowline_collector_sink_failures", "Writes a sink could not make durable", ["stream"]
        ),
    )
