"""Running loaders: wire the enriched and bad streams to the configured loaders until told to stop."""

from __future__ import annotations

import asyncio
import signal

from plowline.config import Settings
from plowline.observability import get_logger
from plowline.storage.files import FilesLoader
from plowline.storage.loader import run_loader
from plowline.streams import open_source

log = get_logger("load")
CONSUMER_GROUP = "archive"


async def serve_archive(settings: Settings) -> None:
    """Enriched TSV and bad rows into files under DATA_DIR, until SIGINT/SIGTERM."""
    root = settings.data_dir.resolve()
    sources = [open_source(settings.enriched_stream_url(), CONSUMER_GROUP),
               open_source(settings.bad_stream_url(), CONSUMER_GROUP)]
    sinks = [FilesLoader(root, "enriched"), FilesLoader(root, "bad")]
    loop = asyncio.get_running_loop()

    closing: list[asyncio.Task[None]] = []

    def stop() -> None:
        closing.extend(loop.create_task(source.close()) for source in sources)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("archive loader started", root=str(root))
    try:
        await asyncio.gather(*(run_loader(source, sink) for source, sink in zip(sources, sinks, strict=True)))
    finally:
        for source in sources:
            await source.close()
        log.info("archive loader stopped")
