"""The load loop: a stream Source into a loader Sink, acking each batch once the loader made it durable."""

from __future__ import annotations

from collections.abc import Callable

from plowline.observability import get_logger
from plowline.streams import Sink, Source

log = get_logger("load")


async def run_loader(
    source: Source, sink: Sink, batch_size: int = 1000, max_wait_s: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Copy records until `should_stop()` or the source closes; return how many were loaded."""
    loaded = 0
    async for batch in source.batches(batch_size, max_wait_s):
        await sink.write(list(batch.records))
        await source.ack(batch)
        loaded += len(batch.records)
        if should_stop():
            break
    return loaded
