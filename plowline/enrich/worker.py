"""The enrich loop: raw Source → Pipeline → enriched and bad Sinks → ack, acking only after both are durable."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from plowline import badrows
from plowline.enrich.metrics import EnrichMetrics
from plowline.enrich.pipeline import Outcome, Pipeline
from plowline.errors import TransientError
from plowline.iglu.errors import RepositoryUnavailable
from plowline.observability import get_logger
from plowline.streams import Batch, Sink, Source

log = get_logger("enrich")


@dataclass(slots=True)
class Serialized:
    """A batch's results, ready for the sinks."""

    good: list[bytes]
    bad: list[bytes]
    events_in: int
    dropped: int


def process_batch(pipeline: Pipeline, records: list[bytes] | tuple[bytes, ...], good_max_bytes: int) -> Serialized:
    """Enrich every record of a batch. Pure apart from the clock; never raises for bad input."""
    etl_tstamp = datetime.now(UTC)
    good: list[bytes] = []
    bad: list[bytes] = []
    events_in = dropped = 0
    for record in records:
        outcome = _process_one(pipeline, record, etl_tstamp)
        events_in += outcome.events_in
        dropped += outcome.dropped
        for event in outcome.good:
            line = event.to_tsv().encode("utf-8")
            if len(line) > good_max_bytes:
                # Enrich 6.x checks the serialised event against its sink's limit too.
                bad.append(orjson.dumps(badrows.size_violation(
                    pipeline.processor, good_max_bytes, len(line),
                    f"event passed enrichment but exceeded the maximum allowed size of {good_max_bytes}",
                    line[: good_max_bytes // 10].decode("utf-8", errors="replace"),
                    as_dict=True, expectation_prefix="")))
            else:
                good.append(line)
        bad.extend(orjson.dumps(row) for row in outcome.bad)
    return Serialized(good, bad, events_in, dropped)


def _process_one(pipeline: Pipeline, record: bytes, etl_tstamp: datetime) -> Outcome:
    try:
        return pipeline.process(record, etl_tstamp)
    except TransientError:
        raise  # an Iglu repository is unreachable: retry the batch later, never a bad row
    except Exception as exc:
        # A bug, not bad data: the input is kept whole in a generic_error bad row so nothing is
        # lost and it can be replayed once fixed. Counted and logged with the traceback.
        log.exception("pipeline error", error=repr(exc))
        row = badrows.generic_error(pipeline.processor, [f"unexpected error in enrich: {exc!r}"],
                                    base64.b64encode(record).decode("ascii"))
        return Outcome(bad=[row], events_in=1)


async def run_worker(
    source: Source,
    good_sink: Sink,
    bad_sink: Sink,
    pipeline: Pipeline,
    metrics: EnrichMetrics,
    max_records: int = 500,
    max_wait_s: float = 0.1,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Consume until `should_stop()`; each batch is acked only once its good and bad output is durable.

    A raw stream that cannot be read (a broker restarting) is read again with backoff.
    """
    failures = 0
    while True:
        try:
            async for batch in source.batches(max_records, max_wait_s):
                failures = 0
                await handle_batch(batch, source, good_sink, bad_sink, pipeline, metrics)
                if should_stop():
                    return
            return
        except TransientError as exc:
            delay = RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)]
            failures += 1
            log.warning("reading the raw stream failed; retrying", error=str(exc), attempt=failures, in_s=delay)
            await asyncio.sleep(delay)


RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Attempts of a batch while an Iglu repository is unreachable before its events become bad rows.
IGLU_RETRIES = 6
#: How long a worker stays in degraded mode after giving up on an Iglu outage.
DEGRADED_S = 60.0


async def _write_outputs(serialized: Serialized, good_sink: Sink, bad_sink: Sink) -> None:
    writes: list[Any] = []
    if serialized.good:
        writes.append(good_sink.write(serialized.good))
    if serialized.bad:
        writes.append(bad_sink.write(serialized.bad))
    await asyncio.gather(*writes)


async def _back_off(attempt: int, exc: Exception, metrics: EnrichMetrics) -> int:
    delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
    metrics.retries.inc()
    log.warning("batch failed; retrying", error=str(exc), attempt=attempt + 1, in_s=delay)
    await asyncio.sleep(delay)
    return attempt + 1


async def handle_batch(
    batch: Batch, source: Source, good_sink: Sink, bad_sink: Sink, pipeline: Pipeline, metrics: EnrichMetrics
) -> None:
    """Enrich, persist both outputs, then ack. A transient failure (an unreachable Iglu repository, a
    sink that cannot write) retries the whole batch with backoff: nothing is acked until it is done.

    An Iglu outage that outlasts IGLU_RETRIES attempts puts the worker in degraded mode for
    DEGRADED_S: events whose schemas cannot be fetched become schema violations (which keep the
    input for recovery) instead of stalling the pipeline for as long as the outage lasts.
    """
    started = time.perf_counter()
    attempt = 0
    degraded = time.monotonic() < pipeline.degraded_until
    while True:
        pipeline.unavailable_as_failure = degraded
        try:
            serialized = await asyncio.to_thread(
                process_batch, pipeline, list(batch.records), good_sink.max_record_bytes
            )
            await _write_outputs(serialized, good_sink, bad_sink)
            break
        except RepositoryUnavailable as exc:
            if attempt >= IGLU_RETRIES:
                log.error("Iglu repository unavailable; degraded mode", error=str(exc), for_s=DEGRADED_S)
                degraded = True
                pipeline.degraded_until = time.monotonic() + DEGRADED_S
                continue
            attempt = await _back_off(attempt, exc, metrics)
        except TransientError as exc:
            attempt = await _back_off(attempt, exc, metrics)
        finally:
            pipeline.unavailable_as_failure = False
    try:
        await source.ack(batch)
    except TransientError as exc:
        # Its output is durable; unacked, the batch is delivered again and loaders store each event once.
        log.warning("ack failed; the batch will be delivered again", error=str(exc))
    metrics.observe(
        records=len(batch.records), events=serialized.events_in, good=len(serialized.good),
        bad=len(serialized.bad), dropped=serialized.dropped, seconds=time.perf_counter() - started,
    )
