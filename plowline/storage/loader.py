"""The load loop: a stream Source into a Loader, acking each batch once the loader stored it.

A store that is down (TransportError) makes the loop retry the same batch with backoff; nothing is
acked until it is stored, and loaders skip what a retry stores twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from plowline.errors import TransientError
from plowline.observability import get_logger
from plowline.storage.base import Loader
from plowline.streams import Source

log = get_logger("load")
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


async def run_loader(
    source: Source, loader: Loader, batch_size: int = 1000, max_wait_s: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Copy records until `should_stop()` or the source closes; return how many were loaded.

    A stream that cannot be read (a broker restarting) is read again with backoff. A batch stored
    but not acked (the ack failed) is delivered again later, and the loader stores it once.
    """
    loaded = 0
    failures = 0
    while True:
        try:
            async for batch in source.batches(batch_size, max_wait_s):
                failures = 0
                attempt = 0
                while True:
                    try:
                        await loader.write(list(batch.records))
                        break
                    except TransientError as exc:
                        delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                        attempt += 1
                        log.warning("load failed; retrying", loader=loader.name, kind=loader.kind, error=str(exc),
                                    attempt=attempt, in_s=delay)
                        await asyncio.sleep(delay)
                try:
                    await source.ack(batch)
                except TransientError as exc:
                    log.warning("ack failed; the batch will be delivered again", loader=loader.name,
                                kind=loader.kind, error=str(exc))
                loaded += len(batch.records)
                if should_stop():
                    return loaded
            return loaded
        except TransientError as exc:
            delay = RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)]
            failures += 1
            log.warning("reading the stream failed; retrying", loader=loader.name, kind=loader.kind,
                        error=str(exc), attempt=failures, in_s=delay)
            await asyncio.sleep(delay)
